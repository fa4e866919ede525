package eventq_test

import (
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/grpcpool/grpcpool/internal/eventq"
)

// owner is what a door is to its queue: a lock around a core (here a log
// of what was applied) and a flush after each batch.
type owner struct {
	mu      sync.Mutex
	applied []int
	flushes []int // len(applied) at each flush
}

func start(t *testing.T, o *owner) (*eventq.Queue, func()) {
	q := eventq.New(&o.mu, func() { o.flushes = append(o.flushes, len(o.applied)) }, nil)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() { q.Run(stop) })
	return q, func() { close(stop); wg.Wait() }
}

func TestEventsAreAppliedInOrderUnderTheLockAndFlushedPerBatch(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		o := &owner{}
		q, stop := start(t, o)
		defer stop()
		o.mu.Lock() // the owner is busy: the events queue up behind it
		for i := range 5 {
			q.Push(func(time.Time) { o.applied = append(o.applied, i) })
		}
		o.mu.Unlock()
		synctest.Wait()
		o.mu.Lock()
		defer o.mu.Unlock()
		if want := []int{0, 1, 2, 3, 4}; !slices.Equal(o.applied, want) {
			t.Fatalf("applied %v, want %v", o.applied, want)
		}
		if len(o.flushes) == 0 || o.flushes[len(o.flushes)-1] != 5 {
			t.Fatalf("flushes at %v, want the last one after all 5 events", o.flushes)
		}
		if len(o.flushes) > 2 {
			t.Errorf("%d flushes for 5 events pushed while the owner was busy, want at most 2 (one per batch)", len(o.flushes))
		}
	})
}

func TestAfterPushesOnceItsTimePassesAndStopCancelsIt(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		o := &owner{}
		q, stop := start(t, o)
		defer stop()
		var at time.Time
		begin := time.Now()
		q.After(time.Second, func(now time.Time) { at = now; o.applied = append(o.applied, 1) })
		cancel := q.After(2*time.Second, func(time.Time) { o.applied = append(o.applied, 2) })
		time.Sleep(1500 * time.Millisecond)
		if !cancel() {
			t.Fatal("stop of a pending event reported it was not pending")
		}
		time.Sleep(time.Second)
		synctest.Wait()
		o.mu.Lock()
		defer o.mu.Unlock()
		if !slices.Equal(o.applied, []int{1}) {
			t.Fatalf("applied %v, want [1]", o.applied)
		}
		if got := at.Sub(begin); got != time.Second {
			t.Errorf("event applied at +%v, want +1s", got)
		}
	})
}

func TestEventsPushedAfterRunReturnedAreDropped(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		o := &owner{}
		q, stop := start(t, o)
		stop()
		q.Push(func(time.Time) { o.applied = append(o.applied, 1) })
		synctest.Wait()
		if len(o.applied) != 0 {
			t.Fatalf("applied %v after Run returned, want nothing", o.applied)
		}
	})
}
