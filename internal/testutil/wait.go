package testutil

import (
	"context"
	"testing"
	"time"
)

const (
	// DefaultTimeout bounds Context and WaitFor: generous, since a wait that
	// holds does not pay it, and a scenario that takes 5 s on an idle
	// machine takes ten times that beside other work under -race.
	DefaultTimeout = 2 * time.Minute
	// waitForBound is how long WaitFor polls before failing the test.
	waitForBound = 90 * time.Second
	// pollEvery is how often WaitFor and Hold re-check.
	pollEvery = 5 * time.Millisecond
)

// Context returns a context that ends after DefaultTimeout (2 min) or at
// the test's cleanup, whichever is first.
func Context(t testing.TB) context.Context {
	t.Helper()
	return ContextFor(t, DefaultTimeout)
}

// ContextFor returns a context that ends after d or at the test's cleanup,
// whichever is first.
func ContextFor(t testing.TB, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// WaitFor polls cond every 5 ms until it holds, failing the test with what
// after 90 s.
func WaitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitForBound)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(pollEvery)
	}
}

// WaitCtx polls cond every 5 ms until it holds, failing the test with what
// when ctx ends first.
func WaitCtx(t testing.TB, ctx context.Context, what string, cond func() bool) {
	t.Helper()
	WaitCtxEvery(t, ctx, pollEvery, what, cond)
}

// WaitCtxEvery is WaitCtx polling every every, for a cond that costs
// more than a glance.
func WaitCtxEvery(t testing.TB, ctx context.Context, every time.Duration, what string, cond func() bool) {
	t.Helper()
	tick := time.NewTicker(every)
	defer tick.Stop()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("waiting for %s: %v", what, ctx.Err())
		case <-tick.C:
		}
	}
}

// Hold checks inv every 5 ms for d and fails the test at the first
// violation: an invariant that must hold throughout a scenario.
func Hold(t testing.TB, d time.Duration, inv func() error) {
	t.Helper()
	end := time.Now().Add(d)
	tick := time.NewTicker(pollEvery)
	defer tick.Stop()
	for time.Now().Before(end) {
		if err := inv(); err != nil {
			t.Fatal(err)
		}
		<-tick.C
	}
}
