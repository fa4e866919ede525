package core

import "fmt"

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
