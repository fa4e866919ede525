package core_test

import (
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/status"

	"github.com/grpcpool/grpcpool/internal/core"
	"github.com/grpcpool/grpcpool/internal/coretest"
)

// A resolved backend gets its floor of connections; they take calls once
// READY, and calls wait while they start.
func TestFloorAndStart(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := coretest.New(t, core.Config{Size: 2})
		require.True(t, f.Picker().Wait(), "before the first resolution calls wait")
		f.Do(func(k *core.Core, now time.Time) { k.Resolved(now, coretest.Groups("a", "b")) })
		require.Len(t, f.Dials(), 4)
		_, o := f.Picker().Pick(core.PickInfo{})
		require.Equal(t, core.Wait, o, "while connections start, calls wait")
		f.ReadyAll()
		r, o := f.Picker().Pick(core.PickInfo{})
		require.Equal(t, core.Picked, o)
		require.NotNil(t, r.Conn)
		require.Equal(t, []core.State{core.Ready, core.Ready}, f.States(f.Backend("a")))
	})
}

// A recycle and the idle shrink together never take a
// backend below its floor, the connection being replaced is never drained
// before its replacement serves, and a connect outage during the recycle
// leaves the old connection serving until recycles succeed again.
func TestRecycleAndIdleShrinkKeepTheFloor(t *testing.T) {
	for _, size := range []int{1, 2} {
		synctest.Test(t, func(t *testing.T) {
			f := coretest.New(t, core.Config{Size: size, MaxSize: 4, IdleTimeout: 50 * time.Millisecond,
				MaxConnAge: time.Second, ReplaceTimeout: 30 * time.Second})
			f.Resolve("a")
			b := f.Backend("a")
			time.Sleep(time.Second + time.Millisecond) // every connection reaches its age
			synctest.Wait()
			ss := f.States(b)
			require.Equal(t, size, coretest.Count(ss, core.Ready), "the old connections keep serving: %v", ss)
			require.Equal(t, 1, coretest.Count(ss, core.Starting), "one replacement at a time: %v", ss)
			// The replacement cannot connect for 20 s (an outage); the idle
			// shrink runs every 12.5 ms meanwhile.
			time.Sleep(20 * time.Second)
			synctest.Wait()
			ss = f.States(b)
			require.Equal(t, size, coretest.Count(ss, core.Ready), "no idle shrink under a recycle: %v", ss)
			// The replacement fails: the old connection stays.
			f.Do(func(k *core.Core, now time.Time) {
				for _, c := range b.Conns() {
					if c.State() == core.Starting {
						k.ConnState(now, c, connectivity.TransientFailure, errors.New("connection refused"))
					}
				}
			})
			ss = f.States(b)
			require.Equal(t, size, coretest.Count(ss, core.Ready), "%v", ss)
			require.Equal(t, size, f.Live(b), "%v", ss)
			// After the outage the recycles go on: every connection is
			// replaced, one at a time, and the floor holds throughout.
			old := f.Conns(b)
			for range 30 { // 3 s: replacements connect at once again
				time.Sleep(100 * time.Millisecond)
				synctest.Wait()
				f.ReadyAll()
				ss = f.States(b)
				require.GreaterOrEqual(t, coretest.Count(ss, core.Ready), size, "%v", ss)
			}
			for _, c := range old {
				require.Contains(t, f.Closes(), c, "recycled after the outage")
			}
		})
	}
}

// A recycle swaps a connection only for a replacement that is Ready
// (health included); one that lands on a NOT_SERVING server is given up
// and the old connection stays.
func TestRecycleNeedsAServingReplacement(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := coretest.New(t, core.Config{Size: 1, HealthCheck: true, MaxConnAge: time.Second})
		f.Do(func(k *core.Core, now time.Time) { k.Resolved(now, coretest.Groups("a")) })
		b := f.Backend("a")
		f.Do(func(k *core.Core, now time.Time) {
			c := b.Conns()[0]
			k.ConnState(now, c, connectivity.Ready, nil)
			k.Health(now, c, true, nil)
		})
		require.Equal(t, []core.State{core.Ready}, f.States(b))
		time.Sleep(time.Second)
		synctest.Wait()
		f.Do(func(k *core.Core, now time.Time) {
			nc := b.Conns()[1]
			k.ConnState(now, nc, connectivity.Ready, nil)
			k.Health(now, nc, false, errors.New("NOT_SERVING"))
		})
		ss := f.States(b)
		require.Equal(t, core.State(core.Ready), ss[0], "the old connection keeps serving: %v", ss)
		require.Equal(t, 1, coretest.Count(ss, core.Ready))
		// Next time the replacement serves: the old one retires.
		time.Sleep(time.Second)
		synctest.Wait()
		f.Do(func(k *core.Core, now time.Time) {
			nc := b.Conns()[len(b.Conns())-1]
			k.ConnState(now, nc, connectivity.Ready, nil)
			k.Health(now, nc, true, nil)
		})
		f.Lock()
		require.Len(t, b.Conns(), 1)
		require.Equal(t, core.Ready, b.Conns()[0].State())
		f.Unlock()
	})
}

// Every retirement restores the floor: a connection retired by any path is
// replaced by a new one.
func TestRetireRestoresFloor(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := coretest.New(t, core.Config{Size: 2})
		f.Resolve("a")
		b := f.Backend("a")
		f.Do(func(k *core.Core, now time.Time) { k.Retire(now, b.Conns()[0], "test") })
		require.Len(t, f.Dials(), 3)
		require.Equal(t, 2, f.Live(b))
	})
}

// A growth whose connection fails is given up at once and
// not tried again before its backoff ends.
func TestFailedGrowthBacksOff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := coretest.New(t, core.Config{Size: 1, MaxSize: 4, MaxStreams: 1, GrowBackoff: time.Second})
		f.Resolve("a")
		b := f.Backend("a")
		r, o := f.Picker().Pick(core.PickInfo{})
		require.Equal(t, core.Picked, o)
		var asked int
		grow := func(*core.Backend) { asked++ }
		_, o = f.Picker().Pick(core.PickInfo{Grow: grow})
		require.Equal(t, core.WaitGrowth, o, "a full backend that may grow asks to")
		require.Equal(t, 1, asked)
		f.Do(func(k *core.Core, now time.Time) { k.Grow(now, b) })
		require.Len(t, f.Dials(), 2)
		f.Do(func(k *core.Core, now time.Time) {
			k.ConnState(now, b.Conns()[1], connectivity.TransientFailure, errors.New("refused"))
		})
		over, o := f.Picker().Pick(core.PickInfo{Grow: grow})
		require.Equal(t, core.Picked, o, "after a failed growth calls do not wait for another")
		require.True(t, over.Overflow, "the call overflows onto the full connection at once")
		require.Same(t, r.Conn, over.Conn)
		over.Conn.Release()
		require.Equal(t, 1, asked)
		f.Do(func(k *core.Core, now time.Time) { k.Grow(now, b) })
		require.Len(t, f.Dials(), 2, "no growth within the backoff")
		time.Sleep(time.Second)
		synctest.Wait()
		f.Do(func(k *core.Core, now time.Time) { k.Grow(now, b) })
		require.Len(t, f.Dials(), 3, "growth again after the backoff")
		r.Conn.Release()
	})
}

// One stall teaches nothing; a second at the same count
// learns the limit, which expires after its lifetime.
func TestStreamLimitNeedsARepeatedStall(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := coretest.New(t, core.Config{Size: 1, MaxSize: 4, LearnLimits: true, LimitTTL: time.Minute})
		f.Resolve("a")
		b := f.Backend("a")
		var learned bool
		f.Do(func(k *core.Core, now time.Time) { learned = k.Stalled(now, b.Conns()[0], 3, 1) })
		require.False(t, learned, "one stall (a slow credentials refresh) teaches nothing")
		f.Do(func(k *core.Core, now time.Time) { learned = k.Stalled(now, b.Conns()[0], 2, 1) })
		require.False(t, learned, "stalls at different counts teach nothing")
		f.Do(func(k *core.Core, now time.Time) { learned = k.Stalled(now, b.Conns()[0], 2, 1) })
		require.False(t, learned, "the same call stalling again (its credentials are slow) teaches nothing")
		f.Do(func(k *core.Core, now time.Time) { learned = k.Stalled(now, b.Conns()[0], 2, 2) })
		require.True(t, learned, "another call stalling at the same count confirms the limit")
		f.Lock()
		require.EqualValues(t, 2, b.Limit())
		require.EqualValues(t, 2, b.Conns()[0].Limit())
		f.Unlock()
		time.Sleep(time.Minute)
		synctest.Wait()
		f.Lock()
		require.EqualValues(t, 0, b.Limit(), "a learned limit expires")
		require.EqualValues(t, 0, b.Conns()[0].Limit())
		f.Unlock()
	})
}

// A READY connection whose server never sends a first
// health report becomes NotServing after the health timeout, and calls
// then fail at once saying why instead of waiting.
func TestFirstHealthReportIsBounded(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := coretest.New(t, core.Config{Size: 1, HealthCheck: true, HealthTimeout: 5 * time.Second})
		f.Resolve("a")
		_, o := f.Picker().Pick(core.PickInfo{})
		require.Equal(t, core.Wait, o)
		time.Sleep(5 * time.Second)
		synctest.Wait()
		p := f.Picker()
		_, o = p.Pick(core.PickInfo{})
		require.Equal(t, core.Fail, o)
		require.Contains(t, p.FailErr().Error(), "no health report within 5s")
	})
}

// The Unavailable message names backends and
// connections correctly and carries the last connection error.
func TestWhyMessage(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := coretest.New(t, core.Config{Size: 2})
		f.Do(func(k *core.Core, now time.Time) { k.Resolved(now, coretest.Groups("a")) })
		f.Do(func(k *core.Core, now time.Time) {
			for _, c := range k.Backends()[0].Conns() {
				k.ConnState(now, c, connectivity.TransientFailure, errors.New("x509: certificate is not valid for 127.0.0.1"))
			}
		})
		p := f.Picker()
		_, o := p.Pick(core.PickInfo{})
		require.Equal(t, core.Fail, o)
		err := p.FailErr()
		assert.Equal(t, codes.Unavailable, status.Code(err))
		assert.Contains(t, err.Error(), `any of 1 backend of "fake:///test": 1 backend failing to connect`)
		assert.Contains(t, err.Error(), "last connection error: x509: certificate is not valid")
		require.Positive(t, f.Resolves(), "a failing connection asks for re-resolution")
	})
}

// A removed backend drains: its idle connections close at once, busy ones
// when their calls end; its entry goes with the last.
func TestRemovedBackendDrains(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := coretest.New(t, core.Config{Size: 2, DrainTimeout: time.Minute})
		f.Resolve("a", "b")
		a := f.Backend("a")
		busy := a.Conns()[0]
		require.True(t, busy.Acquire())
		f.Do(func(k *core.Core, now time.Time) { k.Resolved(now, coretest.Groups("b")) })
		require.Equal(t, []core.State{core.Draining}, f.States(a))
		require.False(t, busy.Acquire(), "a draining connection takes no new call")
		require.True(t, busy.Release())
		f.Do(func(k *core.Core, now time.Time) { k.Drained(now, busy) })
		require.Equal(t, []string{"b"}, f.Keys(), "a's entry went with its last connection")
	})
}

// A draining connection is closed after the drain timeout
// even when a caller abandoned its stream.
func TestDrainTimeoutCloses(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := coretest.New(t, core.Config{Size: 1, DrainTimeout: 15 * time.Minute})
		f.Resolve("a")
		c := f.Backend("a").Conns()[0]
		require.True(t, c.Acquire()) // never released
		f.Do(func(k *core.Core, now time.Time) { k.Resolved(now, nil) })
		time.Sleep(15 * time.Minute)
		synctest.Wait()
		require.Equal(t, core.Closed, c.State())
		require.Empty(t, f.Keys())
	})
}
