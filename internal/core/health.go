package core

import (
	"fmt"
	"time"

	"google.golang.org/grpc/connectivity"
)

// Health checking: a connection takes calls only once its server reports
// SERVING, and one whose server sends no first report in time is
// NotServing.

// Health records a health report for c: serving or not. Reports for a
// connection that is not READY are stale and ignored.
func (k *Core) Health(now time.Time, c *Conn, serving bool, err error) {
	k.at = now
	if k.closed || !k.cfg.HealthCheck || !c.state.Live() || c.transport != connectivity.Ready {
		return
	}
	c.healthTimer.stop()
	c.serving, c.reported, c.settled = serving, true, true
	if !serving {
		c.lastErr = err
	} else {
		c.lastErr = nil
	}
	k.update(now, c)
}

// healthTimedOut handles a HealthTimer: c, READY, got no first health
// report within the health timeout.
func (k *Core) healthTimedOut(now time.Time, c *Conn) {
	if c.state.Live() && c.transport == connectivity.Ready && !c.reported {
		c.reported, c.serving, c.settled = true, false, true
		c.lastErr = fmt.Errorf("no health report within %v", k.cfg.HealthTimeout)
		k.setState(now, c, k.derive(c))
	}
}
