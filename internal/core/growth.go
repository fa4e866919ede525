package core

import "time"

// Growth: a backend whose connections are all full gets one more, up to
// its maximum size; a growth that fails backs off before the next.

// Grow adds a connection to b because a pick found all of its connections
// full, unless one is being added, b is at its maximum size, the last
// growth failed within its backoff, or room appeared meanwhile. Whatever
// it decides, it publishes a new picker: the calls waiting for the growth
// pick again from it.
func (k *Core) Grow(now time.Time, b *Backend) {
	k.at = now
	defer b.growReq.Store(false)
	k.touch(b)
	if k.closed || b.removed || b.growing != nil || now.Before(b.growAfter) || liveCount(b) >= k.cfg.MaxSize {
		return
	}
	for _, c := range b.conns {
		if c.state == Ready && !c.Full() {
			return // room appeared meanwhile
		}
	}
	nc := k.dial(now, b)
	nc.grow = true
	b.growing = nc
	k.touch(b)
	k.log.Info("grpcpool: growing backend", "target", k.cfg.Target, "addr", b.Addr(), "conns", liveCount(b), "limit", nc.Limit())
	k.publish()
}

// growthReady ends b's growth, now that its connection c is Ready: the
// growth landed.
func (k *Core) growthReady(c *Conn) {
	if b := c.Backend; b.growing == c {
		b.growing, b.growFails = nil, 0
		k.landed++
	}
}

// growthFailed gives up b's growth, now that its connection c failed: c is
// retired, and b does not grow again for a backoff (GrowBackoff,
// doubling, up to 30 times it), so calls overflow at once instead of
// waiting for doomed growths.
func (k *Core) growthFailed(now time.Time, c *Conn) {
	b := c.Backend
	if b.growing != c {
		return
	}
	b.growing = nil
	b.growFails++
	back := min(k.cfg.GrowBackoff<<min(b.growFails-1, 5), 30*k.cfg.GrowBackoff)
	b.growAfter = now.Add(back)
	k.seam.After(back, Timer{Kind: GrowTimer, Backend: b})
	k.log.Info("grpcpool: growing backend failed", "target", k.cfg.Target, "addr", b.Addr(), "err", c.lastErr, "retry_in", back)
	k.retire(now, c, "growth_failed")
}
