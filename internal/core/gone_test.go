package core_test

import (
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/grpcpool/grpcpool/internal/core"
	"github.com/grpcpool/grpcpool/internal/coretest"
)

// A removed backend whose last connection the drain timeout closes with a
// call on it is gone at once, and LastCallEnded says so to exactly one
// caller once that call has ended — not before, and not twice.
func TestLastCallEndedOnceAfterTheDrainTimeoutCuts(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := coretest.New(t, core.Config{Size: 1, DrainTimeout: time.Second})
		f.Resolve("a")
		a := f.Backend("a")
		r, o := f.Picker().Pick(core.PickInfo{})
		require.Equal(t, core.Picked, o)
		a.Calls.Add(1) // as the pool counts a call it placed
		f.Do(func(k *core.Core, now time.Time) { k.Resolved(now, coretest.Groups("b")) })
		require.False(t, a.Gone(), "draining, not gone")
		require.False(t, a.LastCallEnded())

		time.Sleep(time.Second)
		synctest.Wait()
		require.True(t, a.Gone(), "the drain timeout closed its last connection")
		require.False(t, a.LastCallEnded(), "its call is still in flight")

		a.Calls.Add(-1)
		r.Conn.Release()
		require.True(t, a.LastCallEnded())
		require.False(t, a.LastCallEnded(), "said once")
	})
}
