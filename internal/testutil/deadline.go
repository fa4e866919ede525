package testutil

import (
	"context"
	"sync"
	"testing"
)

// expiring is a context whose deadline passes when the test says.
type expiring struct {
	context.Context // Background: no deadline, no values
	done            chan struct{}
	once            sync.Once
}

func (c *expiring) Done() <-chan struct{} { return c.done }

func (c *expiring) Err() error {
	select {
	case <-c.done:
		return context.DeadlineExceeded
	default:
		return nil
	}
}

func (c *expiring) expire() { c.once.Do(func() { close(c.done) }) }

// ExpiringContext returns a context whose deadline passes when the test
// calls expire, not at a time: its Done channel closes and its Err
// becomes context.DeadlineExceeded then, as when a deadline passes, so
// gRPC ends what runs on it with codes.DeadlineExceeded. It reports no
// deadline (the server is sent none), so nothing ends on it before the
// test says, however slow the machine. It expires at the test's cleanup
// at the latest.
func ExpiringContext(t testing.TB) (ctx context.Context, expire func()) {
	t.Helper()
	c := &expiring{Context: context.Background(), done: make(chan struct{})}
	t.Cleanup(c.expire)
	return c, c.expire
}
