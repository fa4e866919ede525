package core

import (
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/grpcpool/grpcpool/breaker"
)

var errDown = status.Error(codes.Unavailable, "backend down")

// halfOpenBackend makes a Core over one backend "a" with a breaker (see
// withBreakers) and makes it half-open.
func halfOpenBackend(t *testing.T) (*fakeSeam, *Backend) {
	t.Helper()
	var f *fakeSeam
	f = newFake(t, withBreakers(t, Config{Size: 1}, &f))
	f.do(func(k *Core, now time.Time) { k.Resolved(now, groupsOf("a")) })
	f.readyAll()
	b := f.backend("a")
	halfOpen(t, b)
	return f, b
}

// halfOpen opens b's breaker (withBreakers') with a failure and waits out
// its open timeout: b is half-open, its probe slot free.
func halfOpen(t *testing.T, b *Backend) {
	t.Helper()
	done, err := b.Breaker.Allow()
	require.NoError(t, err)
	done(errDown)
	synctest.Wait()
	require.Equal(t, breaker.StateOpen, b.BreakerState())
	time.Sleep(time.Second + time.Millisecond)
	synctest.Wait()
	require.Equal(t, breaker.StateHalfOpen, b.BreakerState())
}

// A silent stream (its server sends nothing until its first event) placed
// on a half-open backend as its probe gives the probe slot back once it
// has gone StreamProbeTimeout without an answer, counted neither success
// nor failure: the unary call that comes next is the probe, and closes
// the breaker. Until then calls are refused (the probe is out).
func TestSilentStreamProbeGivesItsSlotBack(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f, a := halfOpenBackend(t)

		r, o := f.picker().Pick(PickInfo{})
		require.Equal(t, Picked, o)
		var silent StreamReport
		silent.Start(r) // never answered
		defer r.Conn.Release()

		time.Sleep(StreamProbeTimeout - time.Millisecond)
		synctest.Wait()
		_, o = f.picker().Pick(PickInfo{})
		require.Equal(t, Fail, o, "the stream's probe is still out")

		time.Sleep(time.Millisecond)
		synctest.Wait()
		require.Equal(t, breaker.StateHalfOpen, a.BreakerState(), "an unanswered stream is no failure")
		r2, o := f.picker().Pick(PickInfo{})
		require.Equal(t, Picked, o, "the probe slot is free again: %v", f.picker().FailErr())
		r2.Conn.Release()
		r2.Done(nil)
		synctest.Wait()
		require.Equal(t, breaker.StateClosed, a.BreakerState(), "the unary probe closed the breaker")

		_, first := silent.Take()
		require.False(t, first, "the breaker heard of the stream when it gave its slot back")
	})
}

// A stream probe that its backend answers in time reports a success at
// the answer, which closes the breaker; nothing more is reported later.
func TestAnsweredStreamProbeClosesTheBreaker(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f, a := halfOpenBackend(t)

		r, o := f.picker().Pick(PickInfo{})
		require.Equal(t, Picked, o)
		defer r.Conn.Release()
		var s StreamReport
		s.Start(r)
		time.Sleep(StreamProbeTimeout / 2)
		s.Answered()
		synctest.Wait()
		require.Equal(t, breaker.StateClosed, a.BreakerState())
		time.Sleep(StreamProbeTimeout)
		synctest.Wait()
		_, first := s.Take()
		require.False(t, first)
		require.Equal(t, breaker.Counts{}, a.Breaker.Counts(), "nothing reported after the answer")
	})
}
