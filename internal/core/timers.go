package core

import "time"

// TimerKind names what a Timer is for.
type TimerKind uint8

// The timers the Core schedules.
const (
	AgeTimer     TimerKind = iota // a connection reached its max age: recycle it
	ReplaceTimer                  // a recycle's replacement did not become ready in time
	DrainTimer                    // a draining connection's drain timeout passed
	HealthTimer                   // a READY connection sent no first health report in time
	ProbeTimer                    // an open breaker's timeout passed: offer it half-open
	LimitTimer                    // a learned stream limit expired
	GrowTimer                     // a failed growth's backoff ended
	IdleTimer                     // the periodic idle shrink
	RampTimer                     // a backend's slow start window ended
)

// A Timer is a scheduled event; Core.Fire handles it.
type Timer struct {
	Kind    TimerKind
	Conn    *Conn
	Backend *Backend
}

// Fire handles a timer the Core scheduled: each kind has a handler named
// for it, in the file of its concern.
func (k *Core) Fire(now time.Time, t Timer) {
	k.at = now
	if k.closed {
		return
	}
	// A timer of a backend or of a connection rebuilds that backend's
	// entry; the idle check publishes only what its shrink changed.
	c, b := t.Conn, t.Backend
	if b == nil && c != nil {
		b = c.Backend
	}
	if b != nil {
		k.touch(b)
	}
	switch t.Kind {
	case AgeTimer:
		k.recycle(now, c) // recycle.go
	case ReplaceTimer:
		k.replaceTimedOut(now, c) // recycle.go
	case DrainTimer:
		k.drainTimedOut(now, c) // drain.go
	case HealthTimer:
		k.healthTimedOut(now, c) // health.go
	case ProbeTimer:
		k.probeDue(t.Backend) // breaker.go
	case LimitTimer:
		k.limitExpired(t.Backend) // limits.go
	case GrowTimer:
		// growth.go: the backoff ended; the touch above lets the pickers
		// ask for growth again.
	case IdleTimer:
		k.idleDue(now) // idle.go
	case RampTimer:
		// slowstart.go: the window ended; the touch above rebuilds the
		// backend's entry at its full share.
	}
}

type stopper func() bool

func (s stopper) stop() {
	if s != nil {
		s()
	}
}

// stopTimers stops every timer of c.
func (c *Conn) stopTimers() {
	c.ageTimer.stop()
	c.drainTimer.stop()
	c.healthTimer.stop()
	c.replaceTimer.stop()
}
