package core

import (
	"fmt"
	"time"

	"google.golang.org/grpc/connectivity"
)

// State is a connection's one effective state: every question of the form
// "can this connection take a call?" reads it, and it changes only through
// Core.setState.
//
//	          dial
//	            │
//	            ▼
//	        Starting ──────────────┬──────────────┐
//	   first    │ transport READY  │ first attempt│ no health report
//	   attempt  │ (and serving)    │ failed       │ in time
//	            ▼                  ▼              ▼
//	          Ready ◀──────────▶ Failing     NotServing
//	            ▲  ╲                ▲             ▲
//	            │   ╲ transport     │             │ health NOT_SERVING
//	            │    ╲ lost         │             │
//	            │     ▼             │             │
//	            └── Connecting ─────┘             │
//	            └──────────────────────────────────┘ health SERVING
//
//	any of them ──retire──▶ Draining ──nothing in flight, or drain timeout──▶ Closed
type State uint8

const (
	// Starting: the connection's first attempt has not ended yet (with
	// health checking, its server has not yet sent a first report). Calls
	// wait for a starting pool rather than failing.
	Starting State = iota
	// Ready: the transport is READY and its server serving; the only state
	// that takes new calls.
	Ready
	// NotServing: the transport is READY but health checking reports the
	// server NOT_SERVING (or sent no first report in time).
	NotServing
	// Connecting: it was settled once and is connecting again (IDLE or
	// CONNECTING).
	Connecting
	// Failing: the last connection attempt failed (TRANSIENT_FAILURE).
	Failing
	// Draining: retired; it takes no new calls and closes when the calls
	// it carries end or the drain timeout passes.
	Draining
	// Closed: its connection is closed; it is forgotten right after.
	Closed
)

var stateNames = [...]string{"starting", "ready", "not_serving", "connecting", "failing", "draining", "closed"}

// String returns the state's name as Stats and metrics show it.
func (s State) String() string {
	if int(s) < len(stateNames) {
		return stateNames[s]
	}
	return fmt.Sprintf("State(%d)", int(s))
}

// Live reports whether a connection in s counts toward its backend's size:
// it is not retired.
func (s State) Live() bool { return s < Draining }

// derive is the effective state of a live connection from its transport
// and health.
func (k *Core) derive(c *Conn) State {
	switch c.transport {
	case connectivity.Ready:
		switch {
		case !k.cfg.HealthCheck:
			return Ready
		case c.reported && c.serving:
			return Ready
		case c.reported:
			return NotServing
		case !c.settled:
			return Starting
		default:
			return Connecting // reconnected; its server has not reported yet
		}
	case connectivity.TransientFailure:
		return Failing
	default:
		if !c.settled {
			return Starting
		}
		return Connecting
	}
}

// update re-derives c's state and acts on what changed, then publishes.
func (k *Core) update(now time.Time, c *Conn) {
	k.setState(now, c, k.derive(c))
	k.publish()
}

// setState is the one setter of a connection's effective state, and where
// the decisions that follow a change are made, each in the file of its
// concern: a recycle's replacement that became Ready retires the
// connection it replaces, one that cannot serve is given up (recycle.go);
// a growth that became Ready ends, one that failed backs off (growth.go).
// The backend's entry in the pickers is rebuilt, its slow start tracked
// (slowstart.go), the change logged (log.go) and, unless the Core is
// closing, reported to the Observer.
func (k *Core) setState(now time.Time, c *Conn, s State) {
	if c.state == s {
		return
	}
	from := c.state
	c.state = s
	b := c.Backend
	k.touch(b)
	k.trackReady(now, b, from, s)
	if k.closed {
		return
	}
	k.logState(c, from, s)
	k.cfg.Observer.ConnState(c, from, s)
	switch s {
	case Ready:
		k.replacementReady(now, c)
		k.growthReady(c)
	case Failing, NotServing:
		k.replacementCannotServe(now, c)
		if s == Failing {
			k.growthFailed(now, c)
		}
	}
}
