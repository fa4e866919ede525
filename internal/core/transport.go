package core

import (
	"time"

	"google.golang.org/grpc/connectivity"
)

// ConnState records a connectivity state c's connection reported, with the
// error of a failed attempt.
func (k *Core) ConnState(now time.Time, c *Conn, s connectivity.State, err error) {
	k.at = now
	if k.closed || c.state == Closed || s == connectivity.Shutdown {
		return
	}
	prev := c.transport
	c.transport = s
	switch s {
	case connectivity.Ready:
		c.lastErr = nil
		c.reported = false
		if !k.cfg.HealthCheck {
			c.settled = true
		} else if k.cfg.HealthTimeout > 0 && c.state != Draining {
			c.healthTimer.stop()
			c.healthTimer = k.seam.After(k.cfg.HealthTimeout, Timer{Kind: HealthTimer, Conn: c})
		}
	case connectivity.TransientFailure:
		c.settled = true
		if err != nil {
			c.lastErr = err
		}
		k.seam.ResolveNow()
	case connectivity.Idle:
		// The server went away or sent GOAWAY: a pool keeps its
		// connections warm, so it reconnects now, not on the next call.
		if c.state != Draining {
			k.seam.Connect(c)
		}
	}
	if prev == connectivity.Ready && s != connectivity.Ready {
		c.healthTimer.stop()
	}
	if c.state == Draining {
		return
	}
	k.update(now, c)
}
