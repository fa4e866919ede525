package pool

import (
	"context"
	"time"
)

// DefaultStreamStallTimeout is how long a NewStream may wait, on a
// connection that already carries other calls, before the pool concludes
// the server's MAX_CONCURRENT_STREAMS is reached: it then takes the
// connection's current count as its limit and places the stream elsewhere.
const DefaultStreamStallTimeout = 500 * time.Millisecond

// WithStreamStallTimeout sets how long a NewStream may wait on a busy
// connection before the pool learns that the connection is full (see
// WithMaxStreamsPerConn). Default 500 ms (DefaultStreamStallTimeout); 0
// turns learning off. Negative values make New fail.
func WithStreamStallTimeout(d time.Duration) Option {
	return optionFunc(func(o *options) {
		if d < 0 {
			o.fail("WithStreamStallTimeout(%v): must not be negative", d)
			return
		}
		o.learnStreamLimit = d
	})
}

// limitFor is the stream limit a new connection to b starts with.
func (p *Pool) limitFor(b *backend) int64 {
	if l := b.limit.Load(); l > 0 {
		return l
	}
	return int64(p.o.maxStreams)
}

// learnLimit records that c stopped admitting streams while it carried n:
// every connection of its backend takes n as its limit from now on.
func (p *Pool) learnLimit(c *conn, n int64) {
	if n < 1 || p.o.maxStreams > 0 {
		return
	}
	b := c.b
	for {
		old := b.limit.Load()
		if old > 0 && old <= n {
			// Another stall taught b first: make sure c is marked full
			// before this stream is placed again.
			if l := c.limit.Load(); l == 0 || l > old {
				c.limit.Store(old)
			}
			return
		}
		if b.limit.CompareAndSwap(old, n) {
			break
		}
	}
	p.mu.Lock()
	l := b.limit.Load() // not n: a lower value may have been learned meanwhile
	for _, x := range b.conns {
		x.limit.Store(l)
	}
	p.mu.Unlock()
	p.log.Info("grpcpool: learned stream limit", "addr", b.addr(), "conn", c.id, "limit", n)
	p.requestGrow(b)
}

// requestGrow opens one more connection to b in the background, unless one
// is being opened already or b is at its maximum size.
func (p *Pool) requestGrow(b *backend) {
	if !b.growReq.CompareAndSwap(false, true) {
		return
	}
	p.goAsync(func() {
		defer func() {
			b.growReq.Store(false)
			p.rebuild() // wake calls waiting on this growth, whatever came of it
		}()
		p.mu.Lock()
		if p.closing || b.removed || p.liveConnsLocked(b) >= p.o.maxSize {
			p.mu.Unlock()
			return
		}
		nc := p.addConnLocked(b)
		if nc == nil {
			p.mu.Unlock()
			return
		}
		p.log.Info("grpcpool: growing backend", "addr", b.addr(), "conns", p.liveConnsLocked(b), "limit", nc.limit.Load())
		p.mu.Unlock()
		ctx, cancel := context.WithTimeout(p.ctx, recycleReadyTimeout)
		defer cancel()
		select {
		case <-nc.readyCh():
			// Publish nc before growReq clears (deferred above): a caller
			// that then finds no growth under way finds its snapshot
			// replaced too, and looks again rather than overflowing.
			p.rebuild()
		case <-nc.drained:
		case <-ctx.Done():
		}
	})
}

func (p *Pool) liveConnsLocked(b *backend) int {
	n := 0
	for _, c := range b.conns {
		if !c.draining.Load() {
			n++
		}
	}
	return n
}

// growOrOverflow is called when no connection in s had room. It asks every
// full backend below its maximum size to grow, and reports wait=true when a
// growth is under way (the caller waits for the next snapshot). Otherwise
// it places the call on the least-loaded connection despite its limit (gRPC
// then queues it, as it would without the pool).
func (p *Pool) growOrOverflow(s *snapshot) (pk pick, ok, wait bool) {
	if stale(s) {
		return pick{}, false, true // look again: a growth may have just published a connection
	}
	anyFull := false
	for _, pb := range s.backends {
		full := true
		for _, c := range pb.conns {
			if !c.full() {
				full = false
				break
			}
		}
		if !full {
			continue
		}
		anyFull = true
		p.mu.Lock()
		room := !pb.b.removed && p.liveConnsLocked(pb.b) < p.o.maxSize
		p.mu.Unlock()
		if room {
			p.requestGrow(pb.b)
			wait = true
		} else if pb.b.growReq.Load() {
			wait = true
		}
	}
	if !anyFull || wait {
		return pick{}, false, wait
	}
	if stale(s) {
		// A growth may have just published a connection with room: look
		// again before placing the call beyond a limit.
		return pick{}, false, true
	}
	var best *pickBackend
	var bc *conn
	for _, pb := range s.backends {
		for _, c := range pb.conns {
			if bc == nil || c.active.Load() < bc.active.Load() {
				best, bc = pb, c
			}
		}
	}
	var done func(error)
	if brk := best.b.brk; brk != nil {
		var err error
		if done, err = brk.Allow(); err != nil {
			return pick{}, false, false
		}
	}
	if !bc.acquire() {
		if done != nil {
			done(errNotSent)
		}
		return pick{}, false, false
	}
	return pick{c: bc, done: done, overflow: true}, true, false
}

// stale reports whether a newer snapshot than s has been published.
func stale(s *snapshot) bool {
	select {
	case <-s.changed:
		return true
	default:
		return false
	}
}
