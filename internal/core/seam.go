package core

import "time"

// Seam is how the Core acts on real connections. Its methods are called
// with the Core's caller's serialisation held, so they must not call back
// into the Core synchronously; events they cause are reported later.
type Seam interface {
	// Dial starts c's connection. Its connectivity states are reported
	// with Core.ConnState, its health reports with Core.Health.
	Dial(c *Conn)
	// Connect asks c's idle connection to connect again.
	Connect(c *Conn)
	// Close closes c's connection. Nothing is reported for c after it.
	Close(c *Conn)
	// Publish makes p the picker calls read.
	Publish(p *Picker)
	// ResolveNow asks the resolver for a new resolution.
	ResolveNow()
	// After schedules Core.Fire(t) after d and returns a function that
	// cancels it (reporting whether it was still pending).
	After(d time.Duration, t Timer) func() bool
}

// Observer hears the Core's decisions. Its methods are called with the
// Core's caller's serialisation held, so they must be quick and must not
// call back into the Core.
type Observer interface {
	// ConnState: c's effective state changed.
	ConnState(c *Conn, from, to State)
	// Retired: c was retired, for reason (max_age, idle, removed,
	// replacement_failed, replacement_not_ready, growth_failed, …).
	Retired(c *Conn, reason string)
	// LimitLearned: b's stream limit per connection is now limit (0: it
	// expired).
	LimitLearned(b *Backend, limit int64)
}

type nopObserver struct{}

func (nopObserver) ConnState(*Conn, State, State) {}
func (nopObserver) Retired(*Conn, string)         {}
func (nopObserver) LimitLearned(*Backend, int64)  {}
