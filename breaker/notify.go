package breaker

import (
	"sync"
	"sync/atomic"
)

// transition is one state change waiting to be reported.
type transition struct{ from, to State }

// notifier hands state changes to the onChange callback of New outside
// gobreaker's lock, one at a time and in order.
//
// gobreaker reports changes with its mutex held, so a callback run there
// could not call back into the Breaker. Changes are queued instead
// (enqueueLocked) and delivered by flush, which every method of Breaker
// calls after gobreaker returns. One goroutine at a time delivers; others
// that find it busy leave their changes to it.
type notifier struct {
	fn func(name string, from, to State) // nil: nothing is queued

	// pending is len(queue), readable without mu so that flush costs one
	// atomic load when there is nothing to deliver.
	pending atomic.Int32

	mu         sync.Mutex   // guards queue and delivering
	queue      []transition // changes not yet delivered, oldest first
	delivering bool         // a goroutine is running the delivery loop
}

// enqueueLocked queues a change. Called with gobreaker's mutex held; takes
// n.mu (lock order: gobreaker's mutex, then n.mu; never the reverse).
func (n *notifier) enqueueLocked(from, to State) {
	if n.fn == nil {
		return
	}
	n.mu.Lock()
	n.queue = append(n.queue, transition{from, to})
	n.pending.Store(int32(len(n.queue)))
	n.mu.Unlock()
}

// flush delivers queued changes unless another goroutine is already doing
// so. It must be called without gobreaker's mutex held.
func (n *notifier) flush(name string) {
	if n.pending.Load() == 0 {
		return
	}
	n.mu.Lock()
	if n.delivering {
		n.mu.Unlock()
		return
	}
	n.delivering = true
	for len(n.queue) > 0 {
		t := n.queue[0]
		n.queue = append(n.queue[:0], n.queue[1:]...)
		n.pending.Store(int32(len(n.queue)))
		n.mu.Unlock()
		n.deliver(name, t)
		n.mu.Lock()
	}
	n.delivering = false
	n.mu.Unlock()
}

// deliver calls fn without n.mu held. If fn panics, the panic goes on up,
// but delivering is reset first so that later changes are still delivered.
func (n *notifier) deliver(name string, t transition) {
	ok := false
	defer func() {
		if !ok {
			n.mu.Lock()
			n.delivering = false
			n.mu.Unlock()
		}
	}()
	n.fn(name, t.from, t.to)
	ok = true
}
