package harness

import (
	"context"
	"fmt"
	"testing"
	"time"
)

const (
	// pollEvery is how often Poll re-checks.
	pollEvery = 50 * time.Millisecond
	// startTimeout bounds how long a component may take to answer after it
	// was started or reconfigured.
	startTimeout = 30 * time.Second
)

// Poll calls cond every 50ms until it returns nil or ctx ends; then it
// returns the last error of cond, wrapped with the context's error.
func Poll(ctx context.Context, cond func() error) error {
	tick := time.NewTicker(pollEvery)
	defer tick.Stop()
	for {
		err := cond()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w; last: %w", ctx.Err(), err)
		case <-tick.C:
		}
	}
}

// Eventually polls cond for at most timeout and fails the test with what
// and the last error of cond when it never returns nil. It returns how long
// the wait took.
func Eventually(t testing.TB, timeout time.Duration, what string, cond func() error) time.Duration {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	start := time.Now()
	if err := Poll(ctx, cond); err != nil {
		t.Fatalf("%s: not within %v: %v", what, timeout, err)
	}
	return time.Since(start)
}
