package chash

import (
	"math"
	"slices"
	"sync"
	"testing"
)

// The requirement tests use fixed addresses and fixed key seeds, so they are
// deterministic; TestVnodeSweep (-compare) shows how they fare over other
// address sets.

func TestBalance(t *testing.T) {
	ids := backendIDs(5, 0)
	keys := randomKeys(10_000, 1)
	got := maxOverMean(assign(ringCand{New(ids, nil)}, ids, keys), len(ids))
	if got > 1.10 {
		t.Errorf("max/mean keys per backend = %.3f, want <= 1.10", got)
	}
	t.Logf("10,000 keys over 5 backends: max/mean = %.3f", got)
}

func TestAddBackendMovesOnlyItsShare(t *testing.T) {
	keys := randomKeys(10_000, 1)
	ids := backendIDs(5, 0)
	more := backendIDs(6, 0)
	before := assign(ringCand{New(ids, nil)}, ids, keys)
	after := assign(ringCand{New(more, nil)}, more, keys)
	moved := 0
	for i := range keys {
		if before[i] == after[i] {
			continue
		}
		moved++
		if after[i] != more[5] {
			t.Fatalf("key %q moved from %s to %s, want only moves to the new backend %s", keys[i], before[i], after[i], more[5])
		}
	}
	if got, limit := float64(moved)/float64(len(keys)), 1.0/6+0.02; got > limit {
		t.Errorf("moved %.4f of keys, want <= %.4f", got, limit)
	}
}

func TestRemoveBackendMovesOnlyItsKeys(t *testing.T) {
	keys := randomKeys(10_000, 1)
	ids := backendIDs(5, 0)
	before := assign(ringCand{New(ids, nil)}, ids, keys)
	for r := range ids {
		rest := slices.Delete(slices.Clone(ids), r, r+1)
		after := assign(ringCand{New(rest, nil)}, rest, keys)
		for i := range keys {
			if before[i] != ids[r] && before[i] != after[i] {
				t.Fatalf("removing %s moved key %q from %s to %s", ids[r], keys[i], before[i], after[i])
			}
		}
	}
}

// Placement follows identities, not indexes: the same ids in another order
// (a resolver may return them in any order) own the same keys.
func TestPlacementIgnoresOrder(t *testing.T) {
	keys := randomKeys(2_000, 4)
	ids := backendIDs(7, 0)
	weights := []uint32{1, 2, 3, 1, 1, 5, 2}
	want := assign(ringCand{New(ids, weights)}, ids, keys)

	perm := []int{3, 6, 0, 5, 1, 4, 2}
	ids2, weights2 := make([]string, len(ids)), make([]uint32, len(ids))
	for i, p := range perm {
		ids2[i], weights2[i] = ids[p], weights[p]
	}
	got := assign(ringCand{New(ids2, weights2)}, ids2, keys)
	if !slices.Equal(got, want) {
		t.Errorf("placement changed with the order of ids")
	}
}

// Placement must be the same in every process and every release: a change
// reshuffles every session. These values pin it.
func TestPlacementIsStable(t *testing.T) {
	tb := New([]string{"10.0.0.1:443", "10.0.0.2:443", "10.0.0.3:443"}, nil)
	got := []int{tb.Lookup("alice"), tb.Lookup("bob"), tb.Lookup("carol"), tb.Lookup("dave"), tb.Lookup("erin"), tb.Lookup("")}
	want := []int{2, 0, 0, 0, 1, 1}
	if !slices.Equal(got, want) {
		t.Errorf("Lookup of fixed keys = %v, want %v", got, want)
	}
}

func TestLookupFuncFallbackIsRemoval(t *testing.T) {
	keys := randomKeys(5_000, 5)
	ids := backendIDs(6, 0)
	tb := New(ids, nil)
	for down := range ids {
		rest := slices.Delete(slices.Clone(ids), down, down+1)
		without := New(rest, nil)
		for _, k := range keys {
			got := tb.LookupFunc(k, func(i int) bool { return i != down })
			if want := rest[without.Lookup(k)]; ids[got] != want {
				t.Fatalf("key %q with %s down: LookupFunc gave %s, want %s (its owner once %s is removed)", k, ids[down], ids[got], want, ids[down])
			}
			// Healed: back to the own backend.
			if got, want := tb.LookupFunc(k, func(int) bool { return true }), tb.Lookup(k); got != want {
				t.Fatalf("key %q healthy: LookupFunc = %d, want Lookup = %d", k, got, want)
			}
		}
	}
}

// preference returns key's full preference order by rejecting every backend:
// LookupFunc offers each backend once, in order.
func preference(tb *Table, key string) []int {
	var order []int
	if got := tb.LookupFunc(key, func(i int) bool { order = append(order, i); return false }); got != -1 {
		panic("LookupFunc accepted a rejected backend")
	}
	return order
}

func TestLookupFuncOrder(t *testing.T) {
	ids := backendIDs(8, 0)
	tb := New(ids, nil)
	for _, k := range randomKeys(500, 6) {
		order := preference(tb, k)
		if len(order) != len(ids) {
			t.Fatalf("key %q: preference %v, want each of %d backends once", k, order, len(ids))
		}
		seen := map[int]bool{}
		for _, i := range order {
			if seen[i] {
				t.Fatalf("key %q: ok called twice for %d: %v", k, i, order)
			}
			seen[i] = true
		}
		if order[0] != tb.Lookup(k) {
			t.Fatalf("key %q: preference starts with %d, want Lookup = %d", k, order[0], tb.Lookup(k))
		}
		if again := preference(tb, k); !slices.Equal(again, order) {
			t.Fatalf("key %q: preference %v then %v, want deterministic", k, order, again)
		}
		// Each position's backend is the one picked when all before it are down.
		for pos, want := range order {
			down := order[:pos]
			got := tb.LookupFunc(k, func(i int) bool { return !slices.Contains(down, i) })
			if got != want {
				t.Fatalf("key %q with %v down: got %d, want %d", k, down, got, want)
			}
		}
	}
}

// Above dedupLimit backends, LookupFunc no longer remembers rejected backends
// but must still return the first acceptable one in ring order.
func TestLookupFuncLargeTable(t *testing.T) {
	const n = dedupLimit + 88
	tb := New(backendIDs(n, 0), nil)
	for _, k := range randomKeys(200, 7) {
		// Reject three quarters of the backends; brute-force the answer.
		ok := func(i int) bool { return i%4 == 3 }
		want := -1
		for s, i := 0, tb.find(Hash(k)); s < len(tb.ring); s, i = s+1, (i+1)%len(tb.ring) {
			if o := int(tb.ring[i] & tb.mask); ok(o) {
				want = o
				break
			}
		}
		if got := tb.LookupFunc(k, ok); got != want {
			t.Fatalf("key %q: LookupFunc = %d, want %d", k, got, want)
		}
	}
	if got := tb.LookupFunc("k", func(int) bool { return false }); got != -1 {
		t.Errorf("all rejected: LookupFunc = %d, want -1", got)
	}
}

func TestWeights(t *testing.T) {
	tests := []struct {
		name    string
		weights []uint32
		maxErr  float64 // largest relative error of a share allowed
	}{
		{"1:2:3", []uint32{1, 2, 3}, 0.05},
		{"1:1:1:1:4", []uint32{1, 1, 1, 1, 4}, 0.05},
		{"1:10", []uint32{1, 10}, 0.05},
		{"100:150:250", []uint32{100, 150, 250}, 0.05},
		{"scaled to fit: 1:2000", []uint32{1, 2000}, 0.10},
		{"zero is one", []uint32{0, 1, 2}, 0.05},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tb := New(backendIDs(len(tt.weights), 0), tt.weights)
			var sum float64
			for _, w := range tt.weights {
				sum += float64(max(w, 1))
			}
			for i, got := range shares(tb) {
				want := float64(max(tt.weights[i], 1)) / sum
				if e := math.Abs(got-want) / want; e > tt.maxErr {
					t.Errorf("backend %d (weight %d): share %.4f, want %.4f ± %.0f %%", i, tt.weights[i], got, want, 100*tt.maxErr)
				}
			}
		})
	}
}

func TestVnodeCounts(t *testing.T) {
	tests := []struct {
		name    string
		n       int
		weights []uint32
		want    []int
	}{
		{"nil weights", 3, nil, []int{2048, 2048, 2048}},
		{"equal weights", 2, []uint32{7, 7}, []int{2048, 2048}},
		{"zero is one", 2, []uint32{0, 1}, []int{2048, 2048}},
		{"relative to smallest", 3, []uint32{2, 3, 5}, []int{2048, 3072, 5120}},
		{"capped, at least one", 2, []uint32{1, math.MaxUint32}, []int{1, maxRingSize}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, total := vnodeCounts(tt.n, tt.weights, vnodesPerMinWeight, maxRingSize)
			if !slices.Equal(got, tt.want) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
			sum := 0
			for _, c := range got {
				sum += c
			}
			if total != sum {
				t.Errorf("total %d, want %d", total, sum)
			}
		})
	}
}

func TestRingIsSorted(t *testing.T) {
	for _, n := range []int{1, 2, 5, 33, 100} {
		tb := New(backendIDs(n, 0), nil)
		if !slices.IsSorted(tb.ring) {
			t.Errorf("%d backends: ring not sorted", n)
		}
		for b := 0; b+1 < len(tb.start); b++ {
			for i := tb.start[b]; i < tb.start[b+1]; i++ {
				if got := tb.ring[i] >> tb.shift; got != uint64(b) {
					t.Fatalf("%d backends: entry %d in bucket %d, want %d", n, i, b, got)
				}
			}
		}
		if int(tb.start[len(tb.start)-1]) != len(tb.ring) {
			t.Errorf("%d backends: index ends at %d, want %d", n, tb.start[len(tb.start)-1], len(tb.ring))
		}
	}
}

func TestEdgeCases(t *testing.T) {
	never := func(int) bool { return false }
	always := func(int) bool { return true }
	for name, tb := range map[string]*Table{"nil": nil, "zero": {}, "no ids": New(nil, nil)} {
		if got := tb.Lookup("k"); got != -1 {
			t.Errorf("%s table: Lookup = %d, want -1", name, got)
		}
		if got := tb.LookupFunc("k", always); got != -1 {
			t.Errorf("%s table: LookupFunc = %d, want -1", name, got)
		}
		if got := tb.Len(); got != 0 {
			t.Errorf("%s table: Len = %d, want 0", name, got)
		}
	}

	one := New([]string{"a:1"}, []uint32{0})
	if got := one.Lookup("k"); got != 0 {
		t.Errorf("one backend: Lookup = %d, want 0", got)
	}
	if got := one.LookupFunc("k", never); got != -1 {
		t.Errorf("one backend down: LookupFunc = %d, want -1", got)
	}

	// Duplicate ids: the lower index owns the keys, the other is its fallback.
	dup := New([]string{"b:1", "a:1", "a:1"}, nil)
	for _, k := range randomKeys(200, 8) {
		if got := dup.Lookup(k); got == 2 {
			t.Fatalf("duplicate id: key %q owned by index 2, want the lower index 1", k)
		}
		if dup.Lookup(k) == 1 {
			if got := dup.LookupFunc(k, func(i int) bool { return i != 1 }); got != 2 {
				t.Fatalf("duplicate id: key %q falls back to %d, want 2", k, got)
			}
		}
	}
}

func TestNewPanicsOnLengthMismatch(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("New with len(weights) != len(ids) did not panic")
		}
	}()
	New([]string{"a", "b"}, []uint32{1})
}

func TestZeroAllocs(t *testing.T) {
	tb := New(backendIDs(10, 0), nil)
	down := tb.Lookup("key")
	healthy := make([]bool, 10)
	for i := range healthy {
		healthy[i] = i != down
	}
	ok := func(i int) bool { return healthy[i] }
	for name, f := range map[string]func(){
		"Lookup":              func() { tb.Lookup("key") },
		"LookupFunc":          func() { tb.LookupFunc("other", ok) },
		"LookupFunc fallback": func() { tb.LookupFunc("key", ok) },
	} {
		if n := testing.AllocsPerRun(100, f); n != 0 {
			t.Errorf("%s allocates %v times per call, want 0", name, n)
		}
	}
}

func TestConcurrentLookups(t *testing.T) {
	tb := New(backendIDs(20, 0), nil)
	keys := randomKeys(1_000, 9)
	want := make([]int, len(keys))
	for i, k := range keys {
		want[i] = tb.Lookup(k)
	}
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for i, k := range keys {
				if got := tb.LookupFunc(k, func(j int) bool { return j%2 == 0 || j == want[i] }); got != want[i] {
					t.Errorf("key %q: got %d, want %d", k, got, want[i])
					return
				}
			}
		})
	}
	wg.Wait()
}
