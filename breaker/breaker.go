package breaker

import (
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/sony/gobreaker/v2"
)

// Errors returned by [Breaker.Allow]. Allow returns them as they are, so
// both == and [errors.Is] work.
var (
	// ErrOpen means the breaker is open: the backend failed recently and
	// gets no calls until [Breaker.OpenUntil].
	ErrOpen = errors.New("breaker: circuit open")
	// ErrTooManyProbes means the breaker is half-open and has already let
	// its [Settings.HalfOpenProbes] probe calls through.
	ErrTooManyProbes = errors.New("breaker: too many half-open probes")
)

// State is the state of a [Breaker].
type State int

// The states of a [Breaker], with the same values as gobreaker's.
const (
	// StateClosed lets every call through and counts failures.
	StateClosed State = iota
	// StateHalfOpen lets [Settings.HalfOpenProbes] probe calls through to
	// find out whether the backend has recovered.
	StateHalfOpen
	// StateOpen rejects every call with [ErrOpen].
	StateOpen
)

// String returns "closed", "half-open" or "open".
func (s State) String() string {
	switch s {
	case StateClosed:
		return "closed"
	case StateHalfOpen:
		return "half-open"
	case StateOpen:
		return "open"
	default:
		return fmt.Sprintf("State(%d)", int(s))
	}
}

func fromGobreaker(s gobreaker.State) State {
	switch s {
	case gobreaker.StateClosed:
		return StateClosed
	case gobreaker.StateHalfOpen:
		return StateHalfOpen
	default:
		return StateOpen
	}
}

// Counts are the numbers of calls a [Breaker] has seen in its current
// state: they are cleared on every state change and, when
// [Settings.Interval] is set, every Interval while closed. A call is
// counted when it is reported, in the state in which it was admitted;
// results of calls admitted before the last clear are dropped.
type Counts struct {
	Requests             uint32 // calls admitted by Allow
	TotalSuccesses       uint32 // calls reported as Success
	TotalFailures        uint32 // calls reported as Failure
	TotalExclusions      uint32 // calls reported as Ignore
	ConsecutiveSuccesses uint32 // Successes since the last Failure
	ConsecutiveFailures  uint32 // Failures since the last Success
}

// Breaker is a circuit breaker for one backend. It is safe for concurrent
// use. Create one with [New]; the zero Breaker is not usable.
type Breaker struct {
	name     string
	timeout  time.Duration
	classify func(error) Outcome
	cb       *gobreaker.TwoStepCircuitBreaker[struct{}]

	// openUntil is when the breaker, if open, becomes half-open; nil when
	// it is not open. Written by onStateChangeLocked only.
	openUntil atomic.Pointer[time.Time]

	notify notifier
}

// Sentinel errors handed to gobreaker in place of the caller's error, once
// the call has been classified: gobreaker then needs no classification
// under its lock.
var (
	errFailed  = errors.New("breaker: call failed")
	errIgnored = errors.New("breaker: call ignored")
)

func isSuccessful(err error) bool { return err == nil }
func isExcluded(err error) bool   { return err == errIgnored }

// New returns a closed Breaker for the backend called name, configured by
// s (zero fields take their defaults, see [Settings]). It returns an error
// wrapping [ErrInvalidSettings] if s is invalid.
//
// onChange, if not nil, is called after each state change with name and
// the old and new states. Calls are made one at a time and in the order
// of the changes, without any lock of the Breaker held, so onChange may
// call the Breaker's methods; it runs on the goroutine of a call to Allow,
// done, State or Counts (not necessarily the one that caused the change,
// which may return before onChange has run) and delays that call, so it
// should be quick. Changes are only seen when the Breaker is used: see the
// package documentation.
func New(name string, s Settings, onChange func(name string, from, to State)) (*Breaker, error) {
	if err := s.Validate(); err != nil {
		return nil, err
	}
	s = s.WithDefaults()
	b := &Breaker{
		name:     name,
		timeout:  s.OpenTimeout,
		classify: s.Classify,
		notify:   notifier{fn: onChange},
	}
	trip := s.ConsecutiveFailures
	b.cb = gobreaker.NewTwoStepCircuitBreaker[struct{}](gobreaker.Settings{
		Name:        name,
		MaxRequests: s.HalfOpenProbes,
		Interval:    s.Interval,
		Timeout:     s.OpenTimeout,
		ReadyToTrip: func(c gobreaker.Counts) bool {
			return c.ConsecutiveFailures >= trip
		},
		OnStateChange: b.onStateChangeLocked,
		IsSuccessful:  isSuccessful,
		IsExcluded:    isExcluded,
	})
	return b, nil
}

// onStateChangeLocked is gobreaker's OnStateChange hook; gobreaker calls it
// with its own mutex held, so it only records the change.
func (b *Breaker) onStateChangeLocked(_ string, from, to gobreaker.State) {
	if to == gobreaker.StateOpen {
		// gobreaker opens until now+timeout and moves to half-open once
		// that instant is strictly in the past; one nanosecond more makes
		// OpenUntil the first instant at which the breaker is half-open,
		// even on a clock that did not move since gobreaker read it.
		t := time.Now().Add(b.timeout + time.Nanosecond)
		b.openUntil.Store(&t)
	} else {
		b.openUntil.Store(nil)
	}
	b.notify.enqueueLocked(fromGobreaker(from), fromGobreaker(to))
}

// Name returns the name given to [New].
func (b *Breaker) Name() string { return b.name }

// Allow reports whether a call may go to the backend now.
//
// If it may, Allow returns a done function and a nil error. done must be
// called once the call has ended, with its final error (nil for success;
// for a stream, the error it ended with, nil for io.EOF); it classifies
// the error with [Settings.Classify] and records the outcome. Until done
// is called a half-open probe keeps its slot, so a call whose done is
// never called can keep a half-open breaker rejecting calls forever. Only
// the first call of done counts; later calls do nothing, so a stream that
// can end by several routes may call it from each. done is safe for
// concurrent use. An outcome reported after the breaker has changed state
// since Allow (or after an Interval clear) is dropped.
//
// If it may not, Allow returns a nil done and [ErrOpen] (open) or
// [ErrTooManyProbes] (half-open with all probe slots in use).
//
// Allow allocates (see BenchmarkAllowDone): gobreaker's done closure, and
// the once-only guard around it.
func (b *Breaker) Allow() (done func(err error), err error) {
	gdone, err := b.cb.Allow()
	b.notify.flush(b.name)
	if err != nil {
		switch {
		case errors.Is(err, gobreaker.ErrOpenState):
			return nil, ErrOpen
		case errors.Is(err, gobreaker.ErrTooManyRequests):
			return nil, ErrTooManyProbes
		default:
			return nil, fmt.Errorf("breaker: %w", err)
		}
	}
	c := &call{b: b, done: gdone}
	return c.finish, nil
}

// call is one call admitted by Allow.
type call struct {
	b        *Breaker
	done     func(error) // gobreaker's
	finished atomic.Bool
}

func (c *call) finish(err error) {
	if c.finished.Swap(true) {
		return
	}
	switch c.b.classify(err) {
	case Success:
		c.done(nil)
	case Ignore:
		c.done(errIgnored)
	default:
		c.done(errFailed)
	}
	c.b.notify.flush(c.b.name)
}

// State returns the current state, first moving an open breaker whose
// [Breaker.OpenUntil] has passed to half-open (and closed-state counts
// past their Interval to zero).
func (b *Breaker) State() State {
	s := b.cb.State()
	b.notify.flush(b.name)
	return fromGobreaker(s)
}

// Counts returns the counts of the current state (see [Counts]), after
// the same lazy update as [Breaker.State].
func (b *Breaker) Counts() Counts {
	b.cb.State() // apply pending time-based changes first
	c := b.cb.Counts()
	b.notify.flush(b.name)
	return Counts{
		Requests:             c.Requests,
		TotalSuccesses:       c.TotalSuccesses,
		TotalFailures:        c.TotalFailures,
		TotalExclusions:      c.TotalExclusions,
		ConsecutiveSuccesses: c.ConsecutiveSuccesses,
		ConsecutiveFailures:  c.ConsecutiveFailures,
	}
}

// OpenUntil returns, when the breaker was last seen open, the first
// instant at which it will let a probe through: the time it opened plus
// [Settings.OpenTimeout] (after [Settings.WithDefaults]). It returns the
// zero Time when the breaker is closed or half-open. The breaker only
// becomes half-open when it is next used (gobreaker has no timer), so a
// caller that stopped sending calls to an open backend should arrange to
// call [Breaker.State] (or Allow) at OpenUntil, e.g. with
// time.AfterFunc(time.Until(b.OpenUntil()), ...). A time in the past
// means the next use moves the breaker to half-open.
func (b *Breaker) OpenUntil() time.Time {
	if t := b.openUntil.Load(); t != nil {
		return *t
	}
	return time.Time{}
}
