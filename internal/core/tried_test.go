package core_test

import (
	"testing"

	"github.com/grpcpool/grpcpool/internal/core"
)

func TestTriedRemove(t *testing.T) {
	a, b, c := &core.Backend{}, &core.Backend{}, &core.Backend{}
	var tr core.Tried
	tr.Add(a)
	tr.Add(b)
	tr.Add(c)
	tr.Remove(b)
	if tr.Has(b) || !tr.Has(a) || !tr.Has(c) || tr.Len() != 2 {
		t.Fatalf("after Remove(b): has a %v, b %v, c %v, len %d; want true, false, true, 2", tr.Has(a), tr.Has(b), tr.Has(c), tr.Len())
	}
	tr.Remove(b) // not there: nothing changes
	tr.Remove(a)
	tr.Remove(c)
	if tr.Len() != 0 {
		t.Fatalf("len %d after removing every backend, want 0", tr.Len())
	}
	tr.Add(b)
	if !tr.Has(b) || tr.Len() != 1 {
		t.Fatalf("Add after Remove: has b %v, len %d", tr.Has(b), tr.Len())
	}
}
