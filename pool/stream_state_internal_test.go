package pool

import (
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A stream's one state moves only forward, through its one setter: the
// stall timer gives up only a stream gRPC has not admitted, a stalled or
// ended stream never opens, and each flag is new once.
func TestStreamStateTransitions(t *testing.T) {
	st := &stream{}
	st.admit()
	assert.Equal(t, phaseAdmitted, st.load().phase())
	assert.False(t, st.stall(), "the stall timer gave up an admitted stream")
	s, ok := st.markOpen()
	require.True(t, ok)
	assert.Equal(t, phaseAdmitted, s.phase())
	_, first := st.mark(flagAnswered)
	assert.True(t, first)
	_, first = st.mark(flagAnswered)
	assert.False(t, first, "answered twice")
	s = st.markEnded()
	assert.Equal(t, phaseOpen, s.phase())
	assert.True(t, s.has(flagAnswered))
	assert.Equal(t, phaseEnded, st.load().phase())

	st = &stream{}
	require.True(t, st.stall())
	assert.False(t, st.stall(), "stalled twice")
	st.admit()
	assert.Equal(t, phaseNew, st.load().phase(), "a stalled stream was admitted")
	s, ok = st.markOpen()
	assert.False(t, ok, "a stalled stream opened")
	assert.True(t, s.has(flagStalled))

	st = &stream{}
	st.markEnded()
	_, ok = st.markOpen()
	assert.False(t, ok, "an ended stream opened")
	assert.False(t, st.stall(), "an ended stream stalled")
}

// Whichever of NewStream's return (held) and gRPC's finish (Ended) comes
// second sees the other, and only that one: the call ends exactly once.
func TestStreamHeldAndEndedMeetOnce(t *testing.T) {
	for i := range 2000 {
		st := &stream{}
		var heldSaw, endSaw bool
		var wg sync.WaitGroup
		wg.Go(func() {
			s, _ := st.mark(flagHeld)
			heldSaw = s.phase() == phaseEnded
		})
		wg.Go(func() {
			endSaw = st.markEnded().has(flagHeld)
		})
		wg.Wait()
		require.True(t, heldSaw != endSaw, "run %d: held saw the end %v, the end saw held %v", i, heldSaw, endSaw)
	}
}
