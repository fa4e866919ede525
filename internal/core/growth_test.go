package core_test

import (
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/connectivity"

	"github.com/grpcpool/grpcpool/internal/core"
	"github.com/grpcpool/grpcpool/internal/coretest"
)

// A pick that waits for a growth is woken when the core has handled the
// request, whatever it decided: here the slot it found full was freed
// before the core got to it, so the core adds no connection, and the
// waiting pick gets a new picker at once, with room on it.
func TestGrowthWaitEndsWhenTheCoreDeclinesToGrow(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := coretest.New(t, core.Config{Size: 1, MaxSize: 4, MaxStreams: 1})
		f.Resolve("a")
		held, o := f.Picker().Pick(core.PickInfo{})
		require.Equal(t, core.Picked, o)
		var asked *core.Backend
		p := f.Picker()
		_, o = p.Pick(core.PickInfo{Grow: func(b *core.Backend) { asked = b }})
		require.Equal(t, core.WaitGrowth, o)
		require.NotNil(t, asked)
		held.Conn.Release() // room appears before the core handles the growth
		f.Do(func(k *core.Core, now time.Time) { k.Grow(now, asked) })
		require.Len(t, f.Dials(), 1, "room appeared: no connection is added")
		require.True(t, p.Stale(), "the picker the growth wait is on is replaced")
		r, o := f.Picker().Pick(core.PickInfo{Grow: func(*core.Backend) { assert.Fail(t, "growth asked again") }})
		require.Equal(t, core.Picked, o)
		require.False(t, r.Overflow)
		r.Conn.Release()
	})
}

// A picker's GrowthsLanded counts the growths whose connection became
// Ready: not the growths begun, not those that failed, not the requests the
// core declined, not the backend's first connection. A call waiting for
// growth tells by it that a growth it waited for landed.
func TestPickerCountsGrowthsLanded(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := coretest.New(t, core.Config{Size: 1, MaxSize: 3, MaxStreams: 1})
		f.Resolve("a")
		a := f.Backend("a")
		landed := func() uint64 { return f.Picker().GrowthsLanded() }
		require.Zero(t, landed(), "the first connection is no growth")
		held, o := f.Picker().Pick(core.PickInfo{})
		require.Equal(t, core.Picked, o)
		f.Do(func(k *core.Core, now time.Time) { k.Grow(now, a) })
		require.Zero(t, landed(), "a growth began: none landed")
		f.Do(func(k *core.Core, now time.Time) {
			conns := a.Conns()
			k.ConnState(now, conns[len(conns)-1], connectivity.TransientFailure, errors.New("connection refused"))
		})
		require.Zero(t, landed(), "the growth failed: none landed")
		time.Sleep(time.Second) // the growth's backoff
		f.Do(func(k *core.Core, now time.Time) { k.Grow(now, a) })
		f.Do(func(k *core.Core, now time.Time) { k.Grow(now, a) })
		require.Zero(t, landed(), "the next growth began, the request after it declined: none landed")
		f.ReadyAll()
		require.EqualValues(t, 1, landed(), "the growth's connection is ready: it landed")
		f.Do(func(k *core.Core, now time.Time) { k.Grow(now, a) })
		require.EqualValues(t, 1, landed(), "room on the new connection: no growth")
		r, o := f.Picker().Pick(core.PickInfo{})
		require.Equal(t, core.Picked, o)
		f.Do(func(k *core.Core, now time.Time) { k.Grow(now, a) })
		require.EqualValues(t, 1, landed(), "both full: the next growth began")
		f.ReadyAll()
		require.EqualValues(t, 2, landed(), "and landed")
		held.Conn.Release()
		r.Conn.Release()
	})
}

// A backend is Growing from the growth's beginning until its connection
// is ready or fails: what a caller bounding the wait for a growth asks
// before it overflows the calls waiting.
func TestBackendGrowsUntilItsNewConnectionIsReadyOrFails(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := coretest.New(t, core.Config{Size: 1, MaxSize: 3, MaxStreams: 1})
		f.Resolve("a")
		a := f.Backend("a")
		growing := func() (g bool) {
			f.Do(func(*core.Core, time.Time) { g = a.Growing() })
			return g
		}
		require.False(t, growing())
		held, o := f.Picker().Pick(core.PickInfo{})
		require.Equal(t, core.Picked, o)
		f.Do(func(k *core.Core, now time.Time) { k.Grow(now, a) })
		require.True(t, growing(), "a growth began")
		f.ReadyAll()
		require.False(t, growing(), "its connection is ready")
		r, o := f.Picker().Pick(core.PickInfo{})
		require.Equal(t, core.Picked, o)
		f.Do(func(k *core.Core, now time.Time) { k.Grow(now, a) })
		require.True(t, growing(), "the next growth began")
		f.Do(func(k *core.Core, now time.Time) {
			conns := a.Conns()
			k.ConnState(now, conns[len(conns)-1], connectivity.TransientFailure, errors.New("connection refused"))
		})
		require.False(t, growing(), "its connection failed")
		held.Conn.Release()
		r.Conn.Release()
	})
}
