// Package record is the part of coretest's fake seam that does not name the
// decision core's types: what the core asked for, every picker it
// published, its timers on the clock of the synctest bubble the test runs
// in, and a bounded wait for a picker. It is generic so that the core's own
// package-internal tests, which cannot import coretest (coretest imports
// the core), share it.
package record

import (
	"context"
	"math/rand/v2"
	"sync"
	"time"
)

// Seam records what a decision core asks of its seam, over the core's
// connection type C and picker type P. Its zero value is ready to use.
//
// Its lock (Lock, Unlock) stands for the serialisation the core's caller
// holds (the pool's event goroutine, the balancer's serializer): the core
// calls Dial, Connect, Close, Publish and ResolveNow with it held, timers
// started with AfterFunc take it, and so must every test that drives the
// core. The accessors (Dials, Published, …) take it too: call them outside
// the core's calls. Seam is safe for concurrent use under those rules.
type Seam[C, P any] struct {
	sync.Mutex // guards the core the test drives and the fields below

	dials     []C
	closes    []C
	connects  int
	resolves  int
	published []P
	changed   chan struct{} // closed and replaced by each Publish; nil until a waiter asks
}

// Dial records that c's connection was started.
func (s *Seam[C, P]) Dial(c C) { s.dials = append(s.dials, c) }

// Connect records a request to reconnect an idle connection.
func (s *Seam[C, P]) Connect(C) { s.connects++ }

// Close records that c's connection was closed.
func (s *Seam[C, P]) Close(c C) { s.closes = append(s.closes, c) }

// ResolveNow records a request for a new resolution.
func (s *Seam[C, P]) ResolveNow() { s.resolves++ }

// Publish records p and wakes WaitForPicker.
func (s *Seam[C, P]) Publish(p P) {
	s.published = append(s.published, p)
	if s.changed != nil {
		close(s.changed)
		s.changed = nil
	}
}

// AfterFunc runs fn with the lock held and the bubble's time after d (the
// clock of the synctest bubble the test runs in, so timers fire as soon
// as every goroutine of the bubble is blocked). It returns a function that
// cancels it, reporting whether it was still pending.
func (s *Seam[C, P]) AfterFunc(d time.Duration, fn func(now time.Time)) func() bool {
	return time.AfterFunc(d, func() {
		s.Lock()
		defer s.Unlock()
		fn(time.Now())
	}).Stop
}

// Dials returns the connections dialled so far, in order.
func (s *Seam[C, P]) Dials() []C {
	s.Lock()
	defer s.Unlock()
	return append([]C(nil), s.dials...)
}

// Closes returns the connections closed so far, in order.
func (s *Seam[C, P]) Closes() []C {
	s.Lock()
	defer s.Unlock()
	return append([]C(nil), s.closes...)
}

// Connects returns how many reconnects were asked for.
func (s *Seam[C, P]) Connects() int {
	s.Lock()
	defer s.Unlock()
	return s.connects
}

// Resolves returns how many resolutions were asked for.
func (s *Seam[C, P]) Resolves() int {
	s.Lock()
	defer s.Unlock()
	return s.resolves
}

// Published returns every picker published so far, in order.
func (s *Seam[C, P]) Published() []P {
	s.Lock()
	defer s.Unlock()
	return append([]P(nil), s.published...)
}

// WaitForPicker returns the first of the last picker published and those
// published after it that satisfies ok, or ctx's error once ctx ends. Inside
// a synctest bubble a deadline on ctx is reached as soon as nothing else
// can run, so the wait is bounded without taking wall-clock time.
func (s *Seam[C, P]) WaitForPicker(ctx context.Context, ok func(P) bool) (P, error) {
	s.Lock()
	next := max(len(s.published)-1, 0)
	s.Unlock()
	for {
		s.Lock()
		pending := s.published[next:]
		next = len(s.published)
		if s.changed == nil {
			s.changed = make(chan struct{})
		}
		changed := s.changed
		s.Unlock()
		for _, p := range pending {
			if ok(p) {
				return p, nil
			}
		}
		select {
		case <-changed:
		case <-ctx.Done():
			var zero P
			return zero, ctx.Err()
		}
	}
}

// Exact returns the randomness and the jitter that make a core's decisions
// exact: a fixed sequence of numbers (Weyl's, spread over all 64 bits)
// and no jitter.
func Exact() (rand func() uint64, jitter func(time.Duration) time.Duration) {
	var n uint64
	return func() uint64 { n++; return n * 0x9E3779B97F4A7C15 },
		func(d time.Duration) time.Duration { return d }
}

// Seeded returns a fixed random sequence from seed (a PCG's), safe for
// concurrent use: for tests whose draws must not be as regular as Exact's.
func Seeded(seed uint64) func() uint64 {
	var mu sync.Mutex
	r := rand.New(rand.NewPCG(seed, seed))
	return func() uint64 {
		mu.Lock()
		defer mu.Unlock()
		return r.Uint64()
	}
}
