package record_test

import (
	"context"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/grpcpool/grpcpool/internal/coretest/record"
)

// WaitForPicker returns the first picker, from the last published on,
// that satisfies its condition, and gives up when its context ends: inside
// a bubble at once, however long the deadline.
func TestWaitForPicker(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var s record.Seam[string, int]
		s.Publish(1)
		s.Publish(2)
		ctx, cancel := context.WithTimeout(t.Context(), time.Hour)
		defer cancel()
		p, err := s.WaitForPicker(ctx, func(int) bool { return true })
		require.NoError(t, err)
		require.Equal(t, 2, p, "the last picker published")

		time.AfterFunc(time.Minute, func() {
			s.Lock()
			defer s.Unlock()
			s.Publish(3)
			s.Publish(4)
			s.Publish(5)
		})
		p, err = s.WaitForPicker(ctx, func(p int) bool { return p > 2 && p%2 == 0 })
		require.NoError(t, err)
		require.Equal(t, 4, p)

		start := time.Now()
		_, err = s.WaitForPicker(ctx, func(p int) bool { return p > 5 })
		require.ErrorIs(t, err, context.DeadlineExceeded)
		require.Equal(t, time.Hour, time.Since(start)+time.Minute, "bounded by ctx's deadline")
		require.Equal(t, []int{1, 2, 3, 4, 5}, s.Published())
	})
}

// The seam records what it is asked, in order, and runs timers with its
// lock held on the bubble's clock; a stopped timer never runs.
func TestSeamRecordsAndRunsTimers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var s record.Seam[string, int]
		s.Lock()
		s.Dial("a")
		s.Dial("b")
		s.Close("a")
		s.Connect("b")
		s.ResolveNow()
		s.ResolveNow()
		s.Unlock()
		require.Equal(t, []string{"a", "b"}, s.Dials())
		require.Equal(t, []string{"a"}, s.Closes())
		require.Equal(t, 1, s.Connects())
		require.Equal(t, 2, s.Resolves())

		start := time.Now()
		var fired []time.Duration
		s.AfterFunc(time.Second, func(now time.Time) {
			require.False(t, s.TryLock(), "timers run with the lock held")
			fired = append(fired, now.Sub(start))
		})
		stop := s.AfterFunc(2*time.Second, func(time.Time) { fired = append(fired, -1) })
		require.True(t, stop(), "a pending timer stops")
		time.Sleep(time.Minute)
		s.Lock()
		defer s.Unlock()
		require.Equal(t, []time.Duration{time.Second}, fired)
	})
}
