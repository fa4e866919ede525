package core

import "time"

// Retiring and draining: a retired connection takes no new call and
// closes once nothing is in flight on it, or its drain timeout passes; its
// backend's floor is restored at once.

// Retire stops c taking new calls; it closes once nothing is in flight on
// it, or the drain timeout passes. Its backend's floor is restored.
func (k *Core) Retire(now time.Time, c *Conn, why string) {
	k.at = now
	k.retire(now, c, why)
	k.publish()
}

func (k *Core) retire(now time.Time, c *Conn, why string) {
	if !c.state.Live() {
		return
	}
	b := c.Backend
	c.why = why
	active := c.Hot.retire()
	k.cfg.Observer.Retired(c, why)
	c.ageTimer.stop()
	c.healthTimer.stop()
	k.setState(now, c, Draining)
	k.recycleRetired(c)
	if b.growing == c {
		b.growing = nil
	}
	k.log.Debug("grpcpool: draining connection", "target", k.cfg.Target, "addr", b.Addr(), "conn", c.ID, "why", why, "active", active)
	if active == 0 {
		k.closeConn(now, c)
	} else if k.cfg.DrainTimeout > 0 {
		c.drainTimer = k.seam.After(k.cfg.DrainTimeout, Timer{Kind: DrainTimer, Conn: c})
	}
	k.ensureFloor(now, b)
}

// Drained reports that a draining connection has nothing in flight.
func (k *Core) Drained(now time.Time, c *Conn) {
	k.at = now
	if c.state == Draining && c.Active() == 0 {
		k.closeConn(now, c)
	}
}

// drainTimedOut handles a DrainTimer: c's drain timeout cuts what it still
// carries.
func (k *Core) drainTimedOut(now time.Time, c *Conn) {
	if c.state == Draining {
		k.log.Info("grpcpool: drain timeout cut calls", "target", k.cfg.Target, "addr", c.Backend.Addr(), "conn", c.ID, "active", c.Active())
		k.closeConn(now, c)
	}
}

// closeConn closes a draining connection and forgets it.
func (k *Core) closeConn(now time.Time, c *Conn) {
	c.drainTimer.stop()
	b := c.Backend
	if b.removed && len(b.conns) == 1 && b.conns[0] == c {
		b.gone.Store(true) // before the observer hears of the close
	}
	k.setState(now, c, Closed)
	for i, x := range b.conns {
		if x == c {
			b.conns = append(b.conns[:i:i], b.conns[i+1:]...)
			break
		}
	}
	k.seam.Close(c)
	k.dropIfDone(b)
}

// dropIfDone forgets a removed backend once its last connection closed.
func (k *Core) dropIfDone(b *Backend) {
	if !b.removed || len(b.conns) > 0 {
		return
	}
	for i, x := range k.retired {
		if x == b {
			k.retired = append(k.retired[:i:i], k.retired[i+1:]...)
			return
		}
	}
}
