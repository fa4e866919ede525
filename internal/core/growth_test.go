package core

import (
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"
)

// A pick that waits for a growth is woken when the core has handled the
// request, whatever it decided: here the slot it found full was freed
// before the core got to it, so the core adds no connection, and the
// waiting pick gets a new picker at once, with room on it.
func TestGrowthWaitEndsWhenTheCoreDeclinesToGrow(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFake(t, Config{Size: 1, MaxSize: 4, MaxStreams: 1})
		f.do(func(k *Core, now time.Time) { k.Resolved(now, groupsOf("a")) })
		f.readyAll()
		held, o := f.picker().Pick(PickInfo{})
		require.Equal(t, Picked, o)
		var asked *Backend
		p := f.picker()
		_, o = p.Pick(PickInfo{Grow: func(b *Backend) { asked = b }})
		require.Equal(t, WaitGrowth, o)
		require.NotNil(t, asked)
		held.Conn.Release() // room appears before the core handles the growth
		f.do(func(k *Core, now time.Time) { k.Grow(now, asked) })
		require.Len(t, f.dials, 1, "room appeared: no connection is added")
		require.True(t, p.Stale(), "the picker the growth wait is on is replaced")
		r, o := f.picker().Pick(PickInfo{Grow: func(*Backend) { t.Error("growth asked again") }})
		require.Equal(t, Picked, o)
		require.False(t, r.Overflow)
		r.Conn.Release()
	})
}
