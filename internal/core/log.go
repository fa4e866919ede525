package core

import "time"

// warnEvery is the least time between two warnings about one backend's
// connections; the changes between them are logged at debug level and
// counted in the next warning, so a fleet that flaps does not flood the
// log.
const warnEvery = 10 * time.Second

// logState logs a connection's state change: at warn level, with its
// cause, when it stops or starts serving, at most once per warnEvery per
// backend; at debug level otherwise.
func (k *Core) logState(c *Conn, from, to State) {
	b := c.Backend
	warn := to == Failing || to == NotServing || to == Ready && (from == Failing || from == NotServing)
	if warn && (b.warnedAt.IsZero() || k.at.Sub(b.warnedAt) >= warnEvery) {
		args := []any{"target", k.cfg.Target, "addr", b.Addr(), "conn", c.ID, "from", from.String(), "to", to.String()}
		if c.lastErr != nil && to != Ready {
			args = append(args, "err", c.lastErr)
		}
		if b.unwarned > 0 {
			args = append(args, "changes_not_logged", b.unwarned)
		}
		k.log.Warn("grpcpool: connection "+to.String(), args...)
		b.warnedAt, b.unwarned = k.at, 0
		return
	}
	if warn {
		b.unwarned++
	}
	args := []any{"target", k.cfg.Target, "addr", b.Addr(), "conn", c.ID, "from", from.String()}
	if c.lastErr != nil {
		args = append(args, "err", c.lastErr)
	}
	if c.why != "" {
		args = append(args, "why", c.why)
	}
	k.log.Debug("grpcpool: connection "+to.String(), args...)
}
