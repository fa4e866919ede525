package core_test

import (
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/connectivity"

	"github.com/grpcpool/grpcpool/internal/core"
	"github.com/grpcpool/grpcpool/internal/coretest"
	"github.com/grpcpool/grpcpool/internal/coretest/record"
)

// rampShares makes perSecond picks (released at once) in each of secs
// seconds and returns the share of backend key in each second.
func rampShares(t *testing.T, f *coretest.Fake, key string, secs, perSecond int) []float64 {
	t.Helper()
	var out []float64
	for range secs {
		n := 0
		for range perSecond {
			r, o := f.Picker().Pick(core.PickInfo{})
			require.Equal(t, core.Picked, o)
			if r.Conn.Backend.Key == key {
				n++
			}
			r.Conn.Release()
			time.Sleep(time.Second / time.Duration(perSecond))
		}
		out = append(out, float64(n)/float64(perSecond))
	}
	return out
}

// A backend added to three warm ones ramps over the window: it starts at
// the 10 % floor of its full share (a quarter), grows linearly, and takes
// exactly its share once the window has passed.
func TestSlowStartRampsANewBackend(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const window = 10 * time.Second
		// A seeded generator: the fake's default sequence is too regular
		// for a draw every fourth pick.
		f := coretest.New(t, core.Config{Size: 1, SlowStart: window, Rand: record.Seeded(1)})
		f.Resolve("a", "b", "c")
		time.Sleep(window) // the three are warm
		f.Resolve("a", "b", "c", "new")
		shares := rampShares(t, f, "new", 10, 2000)
		t.Logf("share of the new backend per second: %.3f", shares)
		for s, got := range shares {
			// Over second s the factor runs from s/10 to (s+1)/10 (at
			// least 0.1): the share is a quarter of its mean.
			want := 0.25 * max((float64(s)+0.5)/10, 0.1)
			if s == 0 {
				want = 0.25 * 0.1
			}
			require.InDelta(t, want, got, 0.015, "second %d: %.3f", s, shares)
		}
		// Past the window: round-robin exact.
		byB, _ := f.PickN(t, 400, core.PickInfo{})
		require.Equal(t, map[string]int{"a": 100, "b": 100, "c": 100, "new": 100}, byB)
	})
}

// When every backend is new (the pool is starting), none ramps.
func TestSlowStartNotWhenEveryBackendIsNew(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := coretest.New(t, core.Config{Size: 1, SlowStart: 10 * time.Second})
		f.Resolve("a", "b", "c", "d")
		byB, _ := f.PickN(t, 400, core.PickInfo{})
		require.Equal(t, map[string]int{"a": 100, "b": 100, "c": 100, "d": 100}, byB)
	})
}

// LeastActive counts a ramping backend's load against its reduced
// weight: with 300 streams on three warm backends, a new one at the start
// of its ramp takes streams until it carries a tenth of theirs.
func TestSlowStartWithLeastActive(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := coretest.New(t, core.Config{Size: 1, Policy: core.LeastActive, SlowStart: 10 * time.Second})
		f.Resolve("a", "b", "c")
		f.OpenStreams(t, 300)
		time.Sleep(10 * time.Second)
		f.Resolve("a", "b", "c", "new")
		f.OpenStreams(t, 10)
		require.Equal(t, []int64{100, 100, 100, 10}, f.Loads("a", "b", "c", "new"))
		f.OpenStreams(t, 3)
		require.Equal(t, []int64{101, 101, 101, 10}, f.Loads("a", "b", "c", "new"))
	})
}

// A backend whose only connection reconnects after a GOAWAY (READY, IDLE,
// CONNECTING, READY: the server's max connection age) has not come back
// from a failure: it keeps its full share, without a new ramp.
func TestSlowStartNotAfterAReconnect(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := coretest.New(t, core.Config{Size: 1, SlowStart: 10 * time.Second})
		f.Resolve("a", "b")
		time.Sleep(20 * time.Second) // both warm
		b := f.Backend("b").Conns()[0]
		f.Do(func(k *core.Core, now time.Time) { k.ConnState(now, b, connectivity.Idle, nil) })
		f.Do(func(k *core.Core, now time.Time) { k.ConnState(now, b, connectivity.Connecting, nil) })
		time.Sleep(time.Millisecond)
		f.Do(func(k *core.Core, now time.Time) { k.ConnState(now, b, connectivity.Ready, nil) })
		byB, _ := f.PickN(t, 400, core.PickInfo{})
		require.Equal(t, map[string]int{"a": 200, "b": 200}, byB)
	})
}

// A backend whose connection failed (TRANSIENT_FAILURE) and came back
// ramps again.
func TestSlowStartAfterAFailure(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := coretest.New(t, core.Config{Size: 1, SlowStart: 10 * time.Second, Rand: record.Seeded(2)})
		f.Resolve("a", "b")
		time.Sleep(20 * time.Second)
		b := f.Backend("b").Conns()[0]
		f.Do(func(k *core.Core, now time.Time) { k.ConnState(now, b, connectivity.Idle, nil) })
		f.Do(func(k *core.Core, now time.Time) { k.ConnState(now, b, connectivity.Connecting, nil) })
		f.Do(func(k *core.Core, now time.Time) {
			k.ConnState(now, b, connectivity.TransientFailure, errors.New("connection refused"))
		})
		time.Sleep(time.Second)
		f.Do(func(k *core.Core, now time.Time) { k.ConnState(now, b, connectivity.Ready, nil) })
		byB, _ := f.PickN(t, 1000, core.PickInfo{})
		require.Less(t, byB["b"], 150, "%v", byB)
	})
}
