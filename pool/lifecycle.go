package pool

import (
	"context"
	"slices"
	"time"

	"google.golang.org/grpc/connectivity"
)

// recycleReadyTimeout bounds how long a recycle waits for the replacement
// connection; if it is not READY by then the old one stays and the recycle is
// tried again later.
const recycleReadyTimeout = 30 * time.Second

// retireLocked stops c taking new calls and closes it once the calls it
// carries end, or the drain timeout passes. The caller rebuilds the
// snapshot.
func (p *Pool) retireLocked(c *conn, why string) {
	if c.draining.Swap(true) {
		return
	}
	c.retireWhy = why
	if c.ageTimer != nil {
		c.ageTimer.Stop()
	}
	p.log.Debug("grpcpool: draining connection", "addr", c.b.addr(), "conn", c.id, "why", why, "active", c.active.Load())
	p.goLocked(func() { p.drain(c) })
}

func (p *Pool) drain(c *conn) {
	if c.active.Load() == 0 {
		c.signalDrained()
	}
	var timeout <-chan time.Time
	if d := p.o.drainTimeout; d > 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		timeout = t.C
	}
	cut := false
	select {
	case <-c.drained:
	case <-timeout:
		cut = true
	case <-p.ctx.Done():
		return // Close closes it
	}
	_ = c.cc.Close()
	p.mu.Lock()
	defer p.mu.Unlock()
	if cut {
		p.log.Debug("grpcpool: drain timeout cut calls", "addr", c.b.addr(), "conn", c.id, "active", c.active.Load())
	}
	p.log.Debug("grpcpool: connection closed", "addr", c.b.addr(), "conn", c.id, "why", c.retireWhy)
	b := c.b
	b.conns = slices.DeleteFunc(b.conns, func(x *conn) bool { return x == c })
	if b.removed && len(b.conns) == 0 {
		p.retired = slices.DeleteFunc(p.retired, func(x *backend) bool { return x == b })
	}
}

// scheduleAgeLocked arms c's max-age timer.
func (p *Pool) scheduleAgeLocked(c *conn) {
	if p.o.maxConnAge <= 0 {
		return
	}
	c.ageTimer = time.AfterFunc(jitter(p.o.maxConnAge), func() {
		p.goAsync(func() { p.recycle(c) })
	})
}

// recycle replaces c, which has reached its max age: it opens a new
// connection to the same backend, waits until it is READY, then retires c.
// One connection per backend is replaced at a time, so a backend never
// loses capacity.
func (p *Pool) recycle(c *conn) {
	b := c.b
	p.mu.Lock()
	if p.closing || b.removed || c.draining.Load() {
		p.mu.Unlock()
		return
	}
	if b.replacing {
		// Another connection of b is being replaced: try again shortly,
		// soon enough that short ages are still kept.
		c.ageTimer = time.AfterFunc(jitter(min(time.Second, max(p.o.maxConnAge/10, 10*time.Millisecond))), func() {
			p.goAsync(func() { p.recycle(c) })
		})
		p.mu.Unlock()
		return
	}
	b.replacing = true
	nc := p.addConnLocked(b)
	p.mu.Unlock()

	ok := false
	if nc != nil {
		ctx, cancel := context.WithTimeout(p.ctx, recycleReadyTimeout)
		select {
		case <-nc.readyCh():
			ok = true
		case <-ctx.Done():
		}
		cancel()
	}

	p.mu.Lock()
	defer p.mu.Unlock()
	b.replacing = false
	if p.closing {
		return
	}
	if !ok {
		p.log.Debug("grpcpool: replacement not ready; keeping the old connection", "addr", b.addr(), "conn", c.id)
		if nc != nil {
			p.retireLocked(nc, "replacement not ready")
		}
		p.scheduleAgeLocked(c)
		p.rebuildLocked()
		return
	}
	p.log.Debug("grpcpool: connection recycled", "addr", b.addr(), "old", c.id, "new", nc.id, "age", time.Since(c.created).Round(time.Millisecond))
	p.retireLocked(c, "max age")
	p.rebuildLocked()
}

// idleLoop drains connections above the size floor that carried nothing
// for the idle timeout.
func (p *Pool) idleLoop() {
	defer p.wg.Done()
	every := max(p.o.idleTimeout/4, 10*time.Millisecond)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-p.ctx.Done():
			return
		case now := <-t.C:
			p.retireIdle(now)
		}
	}
}

func (p *Pool) retireIdle(now time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	changed := false
	for _, b := range p.order {
		live := 0
		for _, c := range b.conns {
			if !c.draining.Load() {
				live++
			}
		}
		for _, c := range b.conns {
			if live <= p.o.size || c.draining.Load() {
				continue
			}
			if u := c.uses.Load(); u != c.idleUses || c.active.Load() > 0 {
				c.idleUses, c.idleSince = u, now
				continue
			}
			if now.Sub(c.idleSince) >= p.o.idleTimeout && connectivity.State(c.state.Load()) != connectivity.Connecting {
				p.retireLocked(c, "idle")
				p.log.Info("grpcpool: shrinking backend", "addr", b.addr(), "conns", live-1)
				live--
				changed = true
			}
		}
	}
	if changed {
		p.rebuildLocked()
	}
}
