// Package eventq is how events from other goroutines reach a decision core
// that its owner serialises under one lock: a connection's state change
// reported on grpc's goroutine, a timer, a pick asking for growth, a call
// ending on a retired connection. Push never blocks and never takes the
// core's lock; one goroutine per owner (Run) applies the queued events in
// order, in batches, under that lock, and flushes the core once per batch.
//
// Both doors use it: the pool (package pool) and the load-balancing policy
// (package lb). A door runs one Queue, so it has one event goroutine
// whatever the number of its connections.
package eventq

import (
	"sync"
	"time"
)

// Queue is a queue of core events. Its methods are safe for concurrent use.
type Queue struct {
	mu   sync.Mutex // guards q and done
	q    []func(time.Time)
	done bool
	wake chan struct{}

	lock  sync.Locker      // the core's lock, held while a batch is applied
	flush func()           // publishes the core's picker after a batch; called with lock held
	now   func() time.Time // the time passed to each event
}

// New returns a Queue whose events are applied under lock, each batch
// followed by flush (with lock still held). now gives the time passed to
// each event; nil means time.Now.
func New(lock sync.Locker, flush func(), now func() time.Time) *Queue {
	if now == nil {
		now = time.Now
	}
	return &Queue{wake: make(chan struct{}, 1), lock: lock, flush: flush, now: now}
}

// Push queues f, to be applied by Run under the lock with the time it is
// applied at. It never blocks; after Run has returned it drops f.
func (e *Queue) Push(f func(now time.Time)) {
	e.mu.Lock()
	if e.done {
		e.mu.Unlock()
		return
	}
	e.q = append(e.q, f)
	e.mu.Unlock()
	select {
	case e.wake <- struct{}{}:
	default:
	}
}

// After pushes f once d has passed, and returns a function that cancels
// it, reporting whether it was still pending. The wait costs a runtime
// timer, not a goroutine.
func (e *Queue) After(d time.Duration, f func(now time.Time)) (stop func() bool) {
	return time.AfterFunc(d, func() { e.Push(f) }).Stop
}

// Run applies events until stop is closed; events pushed later are
// dropped. Call it on one goroutine of its own.
func (e *Queue) Run(stop <-chan struct{}) {
	for {
		select {
		case <-stop:
			e.mu.Lock()
			e.done, e.q = true, nil
			e.mu.Unlock()
			return
		case <-e.wake:
		}
		for {
			e.mu.Lock()
			q := e.q
			e.q = nil
			e.mu.Unlock()
			if len(q) == 0 {
				break
			}
			e.lock.Lock()
			for _, f := range q {
				f(e.now())
			}
			e.flush()
			e.lock.Unlock()
		}
	}
}
