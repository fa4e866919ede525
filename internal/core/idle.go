package core

import "time"

// The idle shrink: connections above the size floor that carried nothing
// for the idle timeout are retired, checked every quarter of it.

func (k *Core) idleEvery() time.Duration { return max(k.cfg.IdleTimeout/4, 10*time.Millisecond) }

// idleDue handles the IdleTimer: a shrink, and the next one scheduled.
func (k *Core) idleDue(now time.Time) {
	k.shrinkIdle(now)
	k.idle = k.seam.After(k.idleEvery(), Timer{Kind: IdleTimer})
}

// shrinkIdle retires connections above the floor that carried nothing
// for the idle timeout. It never takes a backend below its floor of live
// connections, nor of ready ones, and never touches a recycle's pair.
func (k *Core) shrinkIdle(now time.Time) {
	for _, b := range k.order {
		live, ready := 0, 0
		for _, c := range b.conns {
			if c.state.Live() && c.replaces == nil {
				live++
				if c.state == Ready {
					ready++
				}
			}
		}
		for _, c := range append([]*Conn(nil), b.conns...) {
			if live <= k.cfg.Size || !c.state.Live() || c.replaces != nil || c == b.recycling || c == b.growing || c.state == Starting {
				continue
			}
			if u := c.uses.Load(); u != c.idleUses || c.Active() > 0 {
				c.idleUses, c.idleSince = u, now
				continue
			}
			if now.Sub(c.idleSince) < k.cfg.IdleTimeout {
				continue
			}
			if c.state == Ready && ready-1 < k.cfg.Size {
				continue
			}
			if c.state == Ready {
				ready--
			}
			live--
			k.log.Info("grpcpool: shrinking backend", "target", k.cfg.Target, "addr", b.Addr(), "conns", live)
			k.retire(now, c, "idle")
		}
	}
}
