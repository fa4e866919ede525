package core_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/grpcpool/grpcpool/internal/core"
)

func TestTriedRemove(t *testing.T) {
	a, b, c := &core.Backend{}, &core.Backend{}, &core.Backend{}
	var tr core.Tried
	tr.Add(a)
	tr.Add(b)
	tr.Add(c)
	tr.Remove(b)
	require.False(t, tr.Has(b), "after Remove(b)")
	require.True(t, tr.Has(a) && tr.Has(c), "after Remove(b)")
	require.Equal(t, 2, tr.Len(), "after Remove(b)")
	tr.Remove(b) // not there: nothing changes
	tr.Remove(a)
	tr.Remove(c)
	require.Zero(t, tr.Len(), "after removing every backend")
	tr.Add(b)
	require.True(t, tr.Has(b), "Add after Remove")
	require.Equal(t, 1, tr.Len(), "Add after Remove")
}
