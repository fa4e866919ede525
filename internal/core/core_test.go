package core

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/status"
)

// A resolved backend gets its floor of connections; they take calls once
// READY, and calls wait while they start.
func TestFloorAndStart(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFake(t, Config{Size: 2})
		require.True(t, f.picker().Wait(), "before the first resolution calls wait")
		f.do(func(k *Core, now time.Time) { k.Resolved(now, groupsOf("a", "b")) })
		require.Len(t, f.dials, 4)
		_, o := f.picker().Pick(PickInfo{})
		require.Equal(t, Wait, o, "while connections start, calls wait")
		f.readyAll()
		r, o := f.picker().Pick(PickInfo{})
		require.Equal(t, Picked, o)
		require.NotNil(t, r.Conn)
		requireStates(t, f, f.backend("a"), Ready, Ready)
	})
}

// Review item 1: a recycle and the idle shrink together never take a
// backend below its floor, the connection being replaced is never drained
// before its replacement serves, and a connect outage during the recycle
// leaves the old connection serving.
func TestRecycleAndIdleShrinkKeepTheFloor(t *testing.T) {
	for _, size := range []int{1, 2} {
		synctest.Test(t, func(t *testing.T) {
			f := newFake(t, Config{Size: size, MaxSize: 4, IdleTimeout: 50 * time.Millisecond,
				MaxConnAge: time.Second, ReplaceTimeout: 30 * time.Second})
			f.do(func(k *Core, now time.Time) { k.Resolved(now, groupsOf("a")) })
			f.readyAll()
			b := f.backend("a")
			time.Sleep(time.Second + time.Millisecond) // every connection reaches its age
			synctest.Wait()
			ss := f.states(b)
			require.Equal(t, size, count(ss, Ready), "the old connections keep serving: %v", ss)
			require.Equal(t, 1, count(ss, Starting), "one replacement at a time: %v", ss)
			// The replacement cannot connect for 20 s (an outage); the idle
			// shrink runs every 12.5 ms meanwhile.
			time.Sleep(20 * time.Second)
			synctest.Wait()
			ss = f.states(b)
			require.Equal(t, size, count(ss, Ready), "no idle shrink under a recycle: %v", ss)
			// The replacement fails: the old connection stays.
			f.do(func(k *Core, now time.Time) {
				for _, c := range b.conns {
					if c.state == Starting {
						k.ConnState(now, c, connectivity.TransientFailure, errors.New("connection refused"))
					}
				}
			})
			ss = f.states(b)
			require.Equal(t, size, count(ss, Ready), "%v", ss)
			require.Equal(t, size, liveCountLocked(f, b), "%v", ss)
		})
	}
}

func liveCountLocked(f *fakeSeam, b *Backend) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return liveCount(b)
}

// A recycle swaps a connection only for a replacement that is Ready
// (health included); one that lands on a NOT_SERVING server is given up
// and the old connection stays (review item 10).
func TestRecycleNeedsAServingReplacement(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFake(t, Config{Size: 1, HealthCheck: true, MaxConnAge: time.Second})
		f.do(func(k *Core, now time.Time) { k.Resolved(now, groupsOf("a")) })
		b := f.backend("a")
		f.do(func(k *Core, now time.Time) {
			c := b.conns[0]
			k.ConnState(now, c, connectivity.Ready, nil)
			k.Health(now, c, true, nil)
		})
		requireStates(t, f, b, Ready)
		time.Sleep(time.Second)
		synctest.Wait()
		f.do(func(k *Core, now time.Time) {
			nc := b.conns[1]
			k.ConnState(now, nc, connectivity.Ready, nil)
			k.Health(now, nc, false, errors.New("NOT_SERVING"))
		})
		ss := f.states(b)
		require.Equal(t, State(Ready), ss[0], "the old connection keeps serving: %v", ss)
		require.Equal(t, 1, count(ss, Ready))
		// Next time the replacement serves: the old one retires.
		time.Sleep(time.Second)
		synctest.Wait()
		f.do(func(k *Core, now time.Time) {
			nc := b.conns[len(b.conns)-1]
			k.ConnState(now, nc, connectivity.Ready, nil)
			k.Health(now, nc, true, nil)
		})
		f.mu.Lock()
		require.Len(t, b.conns, 1)
		require.Equal(t, Ready, b.conns[0].state)
		f.mu.Unlock()
	})
}

// Every retirement restores the floor: a connection retired by any path is
// replaced by a new one.
func TestRetireRestoresFloor(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFake(t, Config{Size: 2})
		f.do(func(k *Core, now time.Time) { k.Resolved(now, groupsOf("a")) })
		f.readyAll()
		b := f.backend("a")
		f.do(func(k *Core, now time.Time) { k.Retire(now, b.conns[0], "test") })
		require.Len(t, f.dials, 3)
		require.Equal(t, 2, liveCountLocked(f, b))
	})
}

// Review item 18: the idle shrink retires surplus connections, but never a
// READY one that would leave fewer READY connections than the floor; a
// failing surplus connection goes first.
func TestIdleShrinkCountsOnlyReadyForTheFloor(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFake(t, Config{Size: 2, MaxSize: 4, IdleTimeout: 40 * time.Millisecond})
		f.do(func(k *Core, now time.Time) { k.Resolved(now, groupsOf("a")) })
		f.readyAll()
		b := f.backend("a")
		f.do(func(k *Core, now time.Time) {
			c := k.dial(now, b) // a third connection, which then fails
			k.ConnState(now, c, connectivity.TransientFailure, errors.New("refused"))
		})
		time.Sleep(200 * time.Millisecond)
		synctest.Wait()
		requireStates(t, f, b, Ready, Ready)
	})
}

// Review item 7: a growth whose connection fails is given up at once and
// not tried again before its backoff ends.
func TestFailedGrowthBacksOff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFake(t, Config{Size: 1, MaxSize: 4, MaxStreams: 1, GrowBackoff: time.Second})
		f.do(func(k *Core, now time.Time) { k.Resolved(now, groupsOf("a")) })
		f.readyAll()
		b := f.backend("a")
		r, o := f.picker().Pick(PickInfo{})
		require.Equal(t, Picked, o)
		var asked int
		grow := func(*Backend) { asked++ }
		_, o = f.picker().Pick(PickInfo{Grow: grow})
		require.Equal(t, WaitGrowth, o, "a full backend that may grow asks to")
		require.Equal(t, 1, asked)
		f.do(func(k *Core, now time.Time) { k.Grow(now, b) })
		require.Len(t, f.dials, 2)
		f.do(func(k *Core, now time.Time) {
			k.ConnState(now, b.conns[1], connectivity.TransientFailure, errors.New("refused"))
		})
		_, o = f.picker().Pick(PickInfo{Grow: grow})
		require.NotEqual(t, WaitGrowth, o, "after a failed growth calls do not wait for another")
		require.Equal(t, 1, asked)
		f.do(func(k *Core, now time.Time) { k.Grow(now, b) })
		require.Len(t, f.dials, 2, "no growth within the backoff")
		time.Sleep(time.Second)
		synctest.Wait()
		f.do(func(k *Core, now time.Time) { k.Grow(now, b) })
		require.Len(t, f.dials, 3, "growth again after the backoff")
		r.Conn.Release()
	})
}

// Review item 2: one stall teaches nothing; a second at the same count
// learns the limit, which expires after its lifetime.
func TestStreamLimitNeedsARepeatedStall(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFake(t, Config{Size: 1, MaxSize: 4, LearnLimits: true, LimitTTL: time.Minute})
		f.do(func(k *Core, now time.Time) { k.Resolved(now, groupsOf("a")) })
		f.readyAll()
		b := f.backend("a")
		var learned bool
		f.do(func(k *Core, now time.Time) { learned = k.Stalled(now, b.conns[0], 3, 1) })
		require.False(t, learned, "one stall (a slow credentials refresh) teaches nothing")
		f.do(func(k *Core, now time.Time) { learned = k.Stalled(now, b.conns[0], 2, 1) })
		require.False(t, learned, "stalls at different counts teach nothing")
		f.do(func(k *Core, now time.Time) { learned = k.Stalled(now, b.conns[0], 2, 1) })
		require.False(t, learned, "the same call stalling again (its credentials are slow) teaches nothing")
		f.do(func(k *Core, now time.Time) { learned = k.Stalled(now, b.conns[0], 2, 2) })
		require.True(t, learned, "another call stalling at the same count confirms the limit")
		f.mu.Lock()
		require.EqualValues(t, 2, b.limit)
		require.EqualValues(t, 2, b.conns[0].Limit())
		f.mu.Unlock()
		time.Sleep(time.Minute)
		synctest.Wait()
		f.mu.Lock()
		require.EqualValues(t, 0, b.limit, "a learned limit expires")
		require.EqualValues(t, 0, b.conns[0].Limit())
		f.mu.Unlock()
	})
}

// Review item 19: a READY connection whose server never sends a first
// health report becomes NotServing after the health timeout, and calls
// then fail at once saying why instead of waiting.
func TestFirstHealthReportIsBounded(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFake(t, Config{Size: 1, HealthCheck: true, HealthTimeout: 5 * time.Second})
		f.do(func(k *Core, now time.Time) { k.Resolved(now, groupsOf("a")) })
		f.readyAll()
		_, o := f.picker().Pick(PickInfo{})
		require.Equal(t, Wait, o)
		time.Sleep(5 * time.Second)
		synctest.Wait()
		p := f.picker()
		_, o = p.Pick(PickInfo{})
		require.Equal(t, Fail, o)
		require.Contains(t, p.FailErr().Error(), "no health report within 5s")
	})
}

// Review items 13 and 16: the Unavailable message names backends and
// connections correctly and carries the last connection error.
func TestWhyMessage(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFake(t, Config{Size: 2})
		f.do(func(k *Core, now time.Time) { k.Resolved(now, groupsOf("a")) })
		f.do(func(k *Core, now time.Time) {
			for _, c := range k.backends["a"].conns {
				k.ConnState(now, c, connectivity.TransientFailure, errors.New("x509: certificate is not valid for 127.0.0.1"))
			}
		})
		p := f.picker()
		_, o := p.Pick(PickInfo{})
		require.Equal(t, Fail, o)
		err := p.FailErr()
		assert.Equal(t, codes.Unavailable, status.Code(err))
		assert.Contains(t, err.Error(), `any of 1 backend of "fake:///test": 1 backend failing to connect`)
		assert.Contains(t, err.Error(), "last connection error: x509: certificate is not valid")
		require.Positive(t, f.resolves, "a failing connection asks for re-resolution")
	})
}

// A removed backend drains: its idle connections close at once, busy ones
// when their calls end; its entry goes with the last.
func TestRemovedBackendDrains(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFake(t, Config{Size: 2, DrainTimeout: time.Minute})
		f.do(func(k *Core, now time.Time) { k.Resolved(now, groupsOf("a", "b")) })
		f.readyAll()
		a := f.backend("a")
		busy := a.conns[0]
		require.True(t, busy.Acquire())
		f.do(func(k *Core, now time.Time) { k.Resolved(now, groupsOf("b")) })
		requireStates(t, f, a, Draining)
		require.False(t, busy.Acquire(), "a draining connection takes no new call")
		require.True(t, busy.Release())
		f.do(func(k *Core, now time.Time) { k.Drained(now, busy) })
		f.mu.Lock()
		require.Empty(t, f.k.retired)
		f.mu.Unlock()
	})
}

// Review item 20: a draining connection is closed after the drain timeout
// even when a caller abandoned its stream.
func TestDrainTimeoutCloses(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFake(t, Config{Size: 1, DrainTimeout: 15 * time.Minute})
		f.do(func(k *Core, now time.Time) { k.Resolved(now, groupsOf("a")) })
		f.readyAll()
		c := f.backend("a").conns[0]
		require.True(t, c.Acquire()) // never released
		f.do(func(k *Core, now time.Time) { k.Resolved(now, nil) })
		time.Sleep(15 * time.Minute)
		synctest.Wait()
		f.mu.Lock()
		require.Equal(t, Closed, c.state)
		require.Empty(t, f.k.retired)
		f.mu.Unlock()
	})
}

// State changes that stop or start a backend serving are warned about
// with their cause, at most once per warnEvery per backend; a flapping
// backend's other changes are counted in the next warning.
func TestStateWarningsAreRateLimited(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var buf safeBuffer
		f := newFake(t, Config{Size: 1, Log: slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelWarn}))})
		f.do(func(k *Core, now time.Time) { k.Resolved(now, groupsOf("a")) })
		c := f.backend("a").conns[0]
		for range 5 {
			f.do(func(k *Core, now time.Time) {
				k.ConnState(now, c, connectivity.TransientFailure, errors.New("connection refused"))
				k.ConnState(now, c, connectivity.Ready, nil)
			})
			time.Sleep(time.Second)
		}
		require.Equal(t, 1, strings.Count(buf.String(), "level=WARN"), buf.String())
		require.Contains(t, buf.String(), "err=\"connection refused\"")
		require.Contains(t, buf.String(), "target=fake:///test")
		time.Sleep(warnEvery)
		f.do(func(k *Core, now time.Time) {
			k.ConnState(now, c, connectivity.TransientFailure, errors.New("connection refused"))
		})
		require.Equal(t, 2, strings.Count(buf.String(), "level=WARN"), buf.String())
		require.Contains(t, buf.String(), "changes_not_logged=9")
	})
}

type safeBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *safeBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *safeBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
