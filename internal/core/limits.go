package core

import "time"

// Stream limits: a connection's known limit is the configured one, or the
// one its backend learned from stalled streams, which expires.

func (k *Core) limitFor(b *Backend) int64 {
	if b.limit > 0 {
		return b.limit
	}
	return k.cfg.MaxStreams
}

// Stalled reports that a stream of call (an identity the caller chooses,
// the same for every attempt of one call) waited on c, past the stall
// timeout, while n streams were open on it: evidence that the server's
// MAX_CONCURRENT_STREAMS is n. One call's stalls prove nothing (a slow
// credentials refresh, a reconnect, an interceptor): a limit is learned
// when a stall of another call on the backend, within the limit's
// lifetime, comes at the same count. It reports whether the backend's
// limit is now known (learned now or before, at most n).
func (k *Core) Stalled(now time.Time, c *Conn, n int64, call uint64) bool {
	k.at = now
	b := c.Backend
	if k.closed || !k.cfg.LearnLimits || k.cfg.MaxStreams > 0 || n < 1 || b.removed {
		return false
	}
	if b.limit > 0 && b.limit <= n {
		if l := c.Limit(); l == 0 || l > b.limit {
			c.limit.Store(b.limit)
		}
		return true
	}
	ttl := k.cfg.LimitTTL
	if ttl <= 0 {
		ttl = 5 * time.Minute
	}
	if b.stallN != n || b.stallCall == call || now.Sub(b.stallAt) > ttl {
		b.stallN, b.stallAt, b.stallCall = n, now, call
		k.log.Debug("grpcpool: stream stalled; limit not yet confirmed", "target", k.cfg.Target, "addr", b.Addr(), "conn", c.ID, "open", n)
		return false
	}
	b.stallN = 0
	b.limit = n
	for _, x := range b.conns {
		x.limit.Store(n)
	}
	k.touch(b)
	b.limitTimer.stop()
	b.limitTimer = k.seam.After(ttl, Timer{Kind: LimitTimer, Backend: b})
	k.log.Info("grpcpool: learned stream limit", "target", k.cfg.Target, "addr", b.Addr(), "conn", c.ID, "limit", n)
	k.cfg.Observer.LimitLearned(b, n)
	k.publish()
	k.Grow(now, b)
	return true
}

// BreakerChanged reports that b's breaker changed state; the state it is
// in now was stored with BackendHot.StoreBreakerState when it changed (so

// limitExpired handles a LimitTimer: b's learned limit expired, and is
// learned again from the next stalls.
func (k *Core) limitExpired(b *Backend) {
	if b.limit > 0 {
		k.log.Info("grpcpool: learned stream limit expired", "target", k.cfg.Target, "addr", b.Addr(), "limit", b.limit)
		b.limit = 0
		for _, x := range b.conns {
			x.limit.Store(k.cfg.MaxStreams)
		}
		k.cfg.Observer.LimitLearned(b, 0)
	}
}
