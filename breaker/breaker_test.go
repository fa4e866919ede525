package breaker_test

import (
	"context"
	"errors"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/grpcpool/grpcpool/breaker"
)

var (
	errUnavailable = status.Error(codes.Unavailable, "backend down")
	errNotFound    = status.Error(codes.NotFound, "no such thing")
	errCanceled    = status.Error(codes.Canceled, "caller went away")
)

func newBreaker(t *testing.T, s breaker.Settings, onChange func(string, breaker.State, breaker.State)) *breaker.Breaker {
	t.Helper()
	b, err := breaker.New("backend-1", s, onChange)
	if err != nil {
		t.Fatalf("New(%+v) = %v", s, err)
	}
	return b
}

// call makes one call through b that ends with err; it fails the test if
// b rejects the call.
func call(t *testing.T, b *breaker.Breaker, err error) {
	t.Helper()
	done, aerr := b.Allow()
	if aerr != nil {
		t.Fatalf("Allow() = %v, want nil (state %v)", aerr, b.State())
	}
	done(err)
}

func wantState(t *testing.T, b *breaker.Breaker, want breaker.State) {
	t.Helper()
	if got := b.State(); got != want {
		t.Fatalf("State() = %v, want %v", got, want)
	}
}

func wantReject(t *testing.T, b *breaker.Breaker, want error) {
	t.Helper()
	done, err := b.Allow()
	if !errors.Is(err, want) || err != want {
		t.Fatalf("Allow() error = %v, want %v", err, want)
	}
	if done != nil {
		t.Fatalf("Allow() done = non-nil with error %v, want nil", err)
	}
}

// recorder records onChange calls.
type recorder struct {
	mu  sync.Mutex
	got []string
}

func (r *recorder) onChange(name string, from, to breaker.State) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got = append(r.got, name+": "+from.String()+" -> "+to.String())
}

func (r *recorder) changes() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.got)
}

func TestTripsAfterConsecutiveFailures(t *testing.T) {
	b := newBreaker(t, breaker.Settings{ConsecutiveFailures: 3}, nil)

	call(t, b, errUnavailable)
	call(t, b, errUnavailable)
	wantState(t, b, breaker.StateClosed)
	call(t, b, errNotFound) // a request error is a success: the run restarts
	if got := b.Counts().ConsecutiveFailures; got != 0 {
		t.Fatalf("ConsecutiveFailures after a success = %d, want 0", got)
	}
	call(t, b, errUnavailable)
	call(t, b, errUnavailable)
	call(t, b, errCanceled) // ignored: neither ends nor extends the run
	call(t, b, context.Canceled)
	c := b.Counts()
	if c.ConsecutiveFailures != 2 || c.TotalExclusions != 2 || c.TotalSuccesses != 1 || c.TotalFailures != 4 || c.Requests != 7 {
		t.Fatalf("Counts() = %+v, want 2 consecutive failures, 2 exclusions, 1 success, 4 failures, 7 requests", c)
	}
	wantState(t, b, breaker.StateClosed)
	if got := b.OpenUntil(); !got.IsZero() {
		t.Fatalf("OpenUntil() of a closed breaker = %v, want zero", got)
	}

	call(t, b, errUnavailable)
	wantState(t, b, breaker.StateOpen)
	wantReject(t, b, breaker.ErrOpen)
	if got := b.Counts(); got != (breaker.Counts{}) {
		t.Errorf("Counts() after opening = %+v, want zero", got)
	}
}

func TestDefaultTripsAfterFive(t *testing.T) {
	b := newBreaker(t, breaker.Settings{}, nil)
	for range 4 {
		call(t, b, errUnavailable)
	}
	wantState(t, b, breaker.StateClosed)
	call(t, b, context.DeadlineExceeded)
	wantState(t, b, breaker.StateOpen)
}

func TestHalfOpenLetsProbesThrough(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const timeout = 5 * time.Second
		b := newBreaker(t, breaker.Settings{ConsecutiveFailures: 1, OpenTimeout: timeout, HalfOpenProbes: 2}, nil)
		opened := time.Now()
		call(t, b, errUnavailable)
		if got, want := b.OpenUntil(), opened.Add(timeout+time.Nanosecond); !got.Equal(want) {
			t.Fatalf("OpenUntil() = %v, want %v", got, want)
		}

		time.Sleep(timeout) // gobreaker needs the timeout strictly passed
		wantReject(t, b, breaker.ErrOpen)
		time.Sleep(time.Until(b.OpenUntil()))
		wantState(t, b, breaker.StateHalfOpen)
		if got := b.OpenUntil(); !got.IsZero() {
			t.Fatalf("OpenUntil() of a half-open breaker = %v, want zero", got)
		}

		done1, err := b.Allow()
		if err != nil {
			t.Fatalf("first probe: Allow() = %v, want nil", err)
		}
		done2, err := b.Allow()
		if err != nil {
			t.Fatalf("second probe: Allow() = %v, want nil", err)
		}
		wantReject(t, b, breaker.ErrTooManyProbes)

		done1(nil)
		wantState(t, b, breaker.StateHalfOpen) // one of two probes succeeded
		wantReject(t, b, breaker.ErrTooManyProbes)
		done2(nil)
		wantState(t, b, breaker.StateClosed)
		call(t, b, nil)
	})
}

func TestHalfOpenProbeFailureReopens(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const timeout = time.Second
		b := newBreaker(t, breaker.Settings{ConsecutiveFailures: 2, OpenTimeout: timeout, HalfOpenProbes: 3}, nil)
		call(t, b, errUnavailable)
		call(t, b, errUnavailable)
		wantState(t, b, breaker.StateOpen)
		time.Sleep(time.Until(b.OpenUntil()))
		wantState(t, b, breaker.StateHalfOpen)

		call(t, b, nil)
		reopened := time.Now()
		call(t, b, status.Error(codes.Internal, "oops"))
		wantState(t, b, breaker.StateOpen)
		wantReject(t, b, breaker.ErrOpen)
		if got, want := b.OpenUntil(), reopened.Add(timeout+time.Nanosecond); !got.Equal(want) {
			t.Fatalf("OpenUntil() after reopening = %v, want %v", got, want)
		}
		time.Sleep(time.Until(b.OpenUntil()))
		wantState(t, b, breaker.StateHalfOpen)
	})
}

func TestIgnoreFreesProbeSlot(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newBreaker(t, breaker.Settings{ConsecutiveFailures: 1, OpenTimeout: time.Second}, nil)
		call(t, b, errUnavailable)
		time.Sleep(time.Until(b.OpenUntil()))
		wantState(t, b, breaker.StateHalfOpen)

		done, err := b.Allow()
		if err != nil {
			t.Fatalf("probe: Allow() = %v, want nil", err)
		}
		wantReject(t, b, breaker.ErrTooManyProbes)
		done(errCanceled)
		// Neither a success (still half-open) nor a failure (not open)...
		wantState(t, b, breaker.StateHalfOpen)
		if got := b.Counts(); got.TotalExclusions != 1 || got.TotalSuccesses != 0 || got.TotalFailures != 0 {
			t.Fatalf("Counts() = %+v, want 1 exclusion and nothing else", got)
		}
		// ...and the slot is free again.
		done, err = b.Allow()
		if err != nil {
			t.Fatalf("probe after an ignored one: Allow() = %v, want nil", err)
		}
		done(context.Canceled)
		call(t, b, nil)
		wantState(t, b, breaker.StateClosed)
	})
}

func TestOnChange(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var r recorder
		b := newBreaker(t, breaker.Settings{ConsecutiveFailures: 1, OpenTimeout: time.Second}, r.onChange)
		call(t, b, errUnavailable)
		time.Sleep(time.Until(b.OpenUntil()))
		call(t, b, errUnavailable) // the probe fails
		time.Sleep(time.Until(b.OpenUntil()))
		wantState(t, b, breaker.StateHalfOpen)
		call(t, b, nil)
		want := []string{
			"backend-1: closed -> open",
			"backend-1: open -> half-open",
			"backend-1: half-open -> open",
			"backend-1: open -> half-open",
			"backend-1: half-open -> closed",
		}
		if got := r.changes(); !slices.Equal(got, want) {
			t.Errorf("onChange calls = %q, want %q", got, want)
		}
	})
}

func TestOnChangeMayUseBreaker(t *testing.T) {
	var (
		b      *breaker.Breaker
		states []breaker.State
	)
	onChange := func(_ string, _, to breaker.State) {
		// With gobreaker's lock held this would deadlock.
		states = append(states, b.State())
		_ = b.Counts()
		_ = b.OpenUntil()
		if d, err := b.Allow(); err == nil {
			d(nil)
		}
	}
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		b = newBreaker(t, breaker.Settings{ConsecutiveFailures: 1, OpenTimeout: time.Hour}, onChange)
		done, err := b.Allow()
		if err != nil {
			t.Errorf("Allow() = %v", err)
			return
		}
		done(errUnavailable)
	}()
	select {
	case <-finished:
	case <-time.After(10 * time.Second):
		t.Fatal("deadlock: onChange calling into the breaker did not return")
	}
	if want := []breaker.State{breaker.StateOpen}; !slices.Equal(states, want) {
		t.Errorf("states seen in onChange = %v, want %v", states, want)
	}
}

func TestDoneCountsOnce(t *testing.T) {
	b := newBreaker(t, breaker.Settings{ConsecutiveFailures: 3}, nil)
	done, err := b.Allow()
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() { done(errUnavailable) })
	}
	wg.Wait()
	done(errUnavailable)
	if got := b.Counts(); got.TotalFailures != 1 || got.ConsecutiveFailures != 1 {
		t.Errorf("Counts() after 5 calls of one done = %+v, want 1 failure", got)
	}
}

func TestStaleOutcomeDropped(t *testing.T) {
	b := newBreaker(t, breaker.Settings{ConsecutiveFailures: 1, OpenTimeout: time.Hour}, nil)
	done1, err1 := b.Allow()
	done2, err2 := b.Allow()
	if err1 != nil || err2 != nil {
		t.Fatalf("Allow() = %v, %v", err1, err2)
	}
	done1(errUnavailable)
	wantState(t, b, breaker.StateOpen)
	done2(nil) // admitted while closed: must not count in the open state
	if got := b.Counts(); got != (breaker.Counts{}) {
		t.Errorf("Counts() = %+v, want zero", got)
	}
	wantState(t, b, breaker.StateOpen)
}

func TestIntervalClearsCounts(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newBreaker(t, breaker.Settings{ConsecutiveFailures: 3, Interval: 10 * time.Second}, nil)
		call(t, b, errUnavailable)
		call(t, b, errUnavailable)
		time.Sleep(11 * time.Second)
		if got := b.Counts(); got != (breaker.Counts{}) {
			t.Fatalf("Counts() after Interval = %+v, want zero", got)
		}
		call(t, b, errUnavailable)
		call(t, b, errUnavailable)
		wantState(t, b, breaker.StateClosed)
		call(t, b, errUnavailable)
		wantState(t, b, breaker.StateOpen)
	})
}

func TestCustomClassifier(t *testing.T) {
	classify := func(err error) breaker.Outcome {
		switch status.Code(err) {
		case codes.ResourceExhausted:
			return breaker.Failure
		case codes.Unavailable:
			return breaker.Outcome(42) // not a valid Outcome: a failure
		}
		return breaker.DefaultClassifier(err)
	}
	b := newBreaker(t, breaker.Settings{ConsecutiveFailures: 2, Classify: classify}, nil)
	call(t, b, status.Error(codes.ResourceExhausted, "slow down"))
	if got := b.Counts().ConsecutiveFailures; got != 1 {
		t.Fatalf("ConsecutiveFailures = %d, want 1", got)
	}
	call(t, b, errUnavailable)
	wantState(t, b, breaker.StateOpen)
}

func TestConcurrentUse(t *testing.T) {
	var (
		mu    sync.Mutex
		last  = breaker.StateClosed
		bad   []string
		count int
	)
	onChange := func(_ string, from, to breaker.State) {
		mu.Lock()
		defer mu.Unlock()
		// Changes are reported one at a time and in order: each starts
		// where the previous one ended.
		if from != last || from == to {
			bad = append(bad, from.String()+" -> "+to.String()+" after "+last.String())
		}
		last = to
		count++
	}
	b := newBreaker(t, breaker.Settings{ConsecutiveFailures: 3, OpenTimeout: time.Millisecond, HalfOpenProbes: 2}, onChange)
	errs := []error{nil, errUnavailable, errUnavailable, errCanceled, errNotFound}
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 2000 {
				done, err := b.Allow()
				if err != nil {
					if err != breaker.ErrOpen && err != breaker.ErrTooManyProbes {
						t.Errorf("Allow() = %v", err)
						return
					}
					continue
				}
				done(errs[rand.IntN(len(errs))])
			}
		})
	}
	wg.Go(func() {
		for range 2000 {
			_ = b.State()
			_ = b.Counts()
			_ = b.OpenUntil()
		}
	})
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	if len(bad) > 0 {
		t.Errorf("onChange calls out of order: %q", bad)
	}
	if count == 0 {
		t.Errorf("no state change in %d calls; the test exercised nothing", 8*2000)
	}
	t.Logf("%d state changes", count)
}

func TestAllowAllocs(t *testing.T) {
	b := newBreaker(t, breaker.Settings{}, nil)
	n := testing.AllocsPerRun(1000, func() {
		done, err := b.Allow()
		if err != nil {
			t.Fatal(err)
		}
		done(nil)
	})
	// gobreaker's done closure, our call record and its method value.
	if n > 3 {
		t.Errorf("allocs per Allow+done = %v, want at most 3", n)
	}
}
