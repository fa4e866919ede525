package core

import "time"

// Recycling: a connection that reaches its max age is replaced by a new
// one to the same backend, and retired only once the new one is Ready (one
// per backend at a time); a replacement that cannot serve, or is not ready
// in time, is given up and the old connection stays.

// recycle replaces c, which reached its max age: a new connection to the
// same backend is dialed, and c is retired only once the new one is Ready.
// One connection per backend is replaced at a time.
func (k *Core) recycle(now time.Time, c *Conn) {
	b := c.Backend
	if !c.state.Live() || b.removed {
		return
	}
	if b.recycling != nil {
		// Another connection of b is being replaced: try again shortly,
		// soon enough that short ages are still kept.
		d := k.cfg.Jitter(min(time.Second, max(k.cfg.MaxConnAge/10, 10*time.Millisecond)))
		c.ageTimer = k.seam.After(d, Timer{Kind: AgeTimer, Conn: c})
		return
	}
	b.recycling = c
	nc := k.dial(now, b)
	nc.replaces = c
	nc.replaceTimer = k.seam.After(k.cfg.ReplaceTimeout, Timer{Kind: ReplaceTimer, Conn: nc})
}

// rearmAge gives a connection that was to be replaced, and stays, another
// max age.
func (k *Core) rearmAge(c *Conn) {
	if c.state.Live() && k.cfg.MaxConnAge > 0 {
		c.ageTimer = k.seam.After(k.cfg.Jitter(k.cfg.MaxConnAge), Timer{Kind: AgeTimer, Conn: c})
	}
}

// replacementReady retires the connection c replaces, now that c is Ready.
func (k *Core) replacementReady(now time.Time, c *Conn) {
	old := c.replaces
	if old == nil {
		return
	}
	b := c.Backend
	c.replaces = nil
	c.replaceTimer.stop()
	b.recycling = nil
	k.log.Debug("grpcpool: connection recycled", "target", k.cfg.Target, "addr", b.Addr(), "old", old.ID, "new", c.ID)
	k.retire(now, old, "max_age")
}

// replacementCannotServe gives up the recycle c is the replacement of, now
// that c is Failing or NotServing: it landed on a backend that cannot serve
// (behind a VIP, another process), so the old connection stays.
func (k *Core) replacementCannotServe(now time.Time, c *Conn) {
	if c.replaces != nil {
		k.giveUpReplace(now, c, "replacement_failed")
	}
}

// replaceTimedOut handles a ReplaceTimer: nc was not Ready within the
// replace timeout.
func (k *Core) replaceTimedOut(now time.Time, nc *Conn) {
	if nc.replaces != nil && nc.state.Live() {
		k.giveUpReplace(now, nc, "replacement_not_ready")
	}
}

// giveUpReplace retires the replacement nc and keeps the connection it was
// to replace, which tries again after another max age.
func (k *Core) giveUpReplace(now time.Time, nc *Conn, why string) {
	old := nc.replaces
	nc.replaces = nil
	nc.replaceTimer.stop()
	b := nc.Backend
	b.recycling = nil
	k.log.Debug("grpcpool: replacement not ready; keeping the old connection", "target", k.cfg.Target, "addr", b.Addr(), "conn", old.ID, "why", why)
	k.retire(now, nc, why)
	k.rearmAge(old)
}

// recycleRetired ends the recycle c is part of, now that c is retired by
// another path: when c was being replaced, its replacement simply takes
// its place; when c was the replacement, the old connection stays and
// tries again after another max age.
func (k *Core) recycleRetired(c *Conn) {
	b := c.Backend
	if nc := k.replacementOf(c); nc != nil {
		nc.replaces = nil
		nc.replaceTimer.stop()
		b.recycling = nil
	}
	if old := c.replaces; old != nil {
		c.replaces = nil
		c.replaceTimer.stop()
		b.recycling = nil
		k.rearmAge(old)
	}
}

func (k *Core) replacementOf(c *Conn) *Conn {
	for _, x := range c.Backend.conns {
		if x.replaces == c {
			return x
		}
	}
	return nil
}
