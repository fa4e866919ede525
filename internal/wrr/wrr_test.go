package wrr

import (
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
)

// cycle returns one full cycle of s.
func cycle(s *Schedule) []int {
	out := make([]int, s.Len())
	for i := range out {
		out[i] = s.Pick(uint64(i))
	}
	return out
}

func TestProportions(t *testing.T) {
	tests := []struct {
		weights []uint32
		calls   int
	}{
		{[]uint32{1, 2, 3}, 6000},
		{[]uint32{5, 1, 1}, 7000},
		{[]uint32{1, 1, 1, 1, 4}, 8000},
		{[]uint32{10, 20, 30, 40}, 10000},
		{[]uint32{1, 100}, 10100},
		{[]uint32{7, 3, 0, 2}, 13000}, // 0 counts as 1
		{[]uint32{3, 3, 3}, 3000},
	}
	for _, tt := range tests {
		t.Run(fmtWeights(tt.weights), func(t *testing.T) {
			s := New(tt.weights)
			counts := make([]int, len(tt.weights))
			var ctr atomic.Uint64
			for range tt.calls {
				counts[s.Pick(ctr.Add(1))]++
			}
			var sum float64
			for _, w := range tt.weights {
				sum += float64(max(w, 1))
			}
			for i, w := range tt.weights {
				want := float64(tt.calls) * float64(max(w, 1)) / sum
				if math.Abs(float64(counts[i])-want) > 0.03*want {
					t.Errorf("backend %d (weight %d): %d picks of %d, want %.0f ± 3 %%", i, w, counts[i], tt.calls, want)
				}
			}
		})
	}
}

// nginx's own examples: 5:1:1 is the sequence given in the commit that
// introduced smooth weighted round-robin; 1:2:3 worked by hand.
func TestNginxSequences(t *testing.T) {
	tests := []struct {
		weights []uint32
		want    []int
	}{
		{[]uint32{5, 1, 1}, []int{0, 0, 1, 0, 2, 0, 0}},
		{[]uint32{1, 2, 3}, []int{2, 1, 0, 2, 1, 2}},
		{[]uint32{100, 200, 300}, []int{2, 1, 0, 2, 1, 2}}, // reduced by the gcd
	}
	for _, tt := range tests {
		if got := cycle(New(tt.weights)); !slices.Equal(got, tt.want) {
			t.Errorf("New(%v) cycle = %v, want %v", tt.weights, got, tt.want)
		}
	}
}

// maxRuns returns, for each backend, the longest run of consecutive picks
// of it, counting runs that wrap from the end of the cycle to the start.
func maxRuns(order []int, n int) []int {
	runs := make([]int, n)
	run, prev := 0, -1
	for k := range 2 * len(order) {
		i := order[k%len(order)]
		if i == prev {
			run++
		} else {
			run, prev = 1, i
		}
		runs[i] = min(max(runs[i], run), len(order))
	}
	return runs
}

func TestSmoothOneTwoThree(t *testing.T) {
	runs := maxRuns(cycle(New([]uint32{1, 2, 3})), 3)
	for i, r := range runs {
		if r > 2 {
			t.Errorf("1:2:3: backend %d picked %d times in a row, want at most 2", i, r)
		}
	}
}

// What smooth weighted round-robin guarantees, checked over many weight sets:
//
//   - Each cycle picks backend i exactly weights[i] times.
//   - A backend is never a whole pick ahead of its fair share: after k picks
//     its count c satisfies c - k*share < 1. (Proof: a backend is picked only
//     when its current weight is the largest, hence at least total/n > 0, so
//     its current weight, total*(k*share - c), stays above -total.)
//
// How far a backend can fall behind is not bounded by a constant that we know
// of: measured, up to 1.5 picks with two tiers of weights and 1.93 with three
// tiers over 47 backends. For the sets here (up to 13 backends) it stays below
// 2, asserted as a regression guard, and with it every run of r consecutive
// picks of backend i has r*(1 - share) < 1 + 2.
func TestSmoothnessBounds(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	for range 2000 {
		w := make([]uint32, 2+rng.IntN(12))
		for i := range w {
			w[i] = 1 + uint32(rng.IntN(1+rng.IntN(100)))
		}
		s := New(w)
		order := cycle(s)
		red := make([]float64, len(w)) // reduced weights, as the schedule uses
		for _, i := range order {
			red[i]++
		}
		total := float64(len(order))
		c := make([]float64, len(w))
		for k, i := range order {
			c[i]++
			for j := range w {
				dev := c[j] - float64(k+1)*red[j]/total
				if dev >= 1 || dev <= -2 {
					t.Fatalf("weights %v: after %d picks backend %d is %.3f picks off its share, want in (-2, 1)", w, k+1, j, dev)
				}
			}
		}
		for j := range w {
			var sum float64
			for _, x := range w {
				sum += float64(x)
			}
			if got, want := red[j]/total, float64(w[j])/sum; math.Abs(got-want) > 1e-9 {
				t.Fatalf("weights %v: backend %d share %.6f, want %.6f", w, j, got, want)
			}
		}
		for j, r := range maxRuns(order, len(w)) {
			if share := red[j] / total; share < 1 && float64(r)*(1-share) >= 3 {
				t.Fatalf("weights %v: backend %d (share %.3f) picked %d times in a row", w, j, share, r)
			}
		}
	}
}

func TestEqualWeightsAreTrivial(t *testing.T) {
	for _, w := range [][]uint32{{1}, {1, 1, 1}, {5, 5, 5, 5}, {0, 1, 0}} {
		s := New(w)
		if s.order != nil {
			t.Errorf("New(%v) stored a schedule, want plain round-robin", w)
		}
		want := make([]int, len(w))
		for i := range want {
			want[i] = i
		}
		if got := cycle(s); !slices.Equal(got, want) {
			t.Errorf("New(%v) cycle = %v, want %v", w, got, want)
		}
	}
}

func TestZeroWeightIsOne(t *testing.T) {
	if got, want := cycle(New([]uint32{0, 2})), cycle(New([]uint32{1, 2})); !slices.Equal(got, want) {
		t.Errorf("0:2 cycle = %v, want that of 1:2, %v", got, want)
	}
}

func TestLargeWeightsAreCapped(t *testing.T) {
	tests := []struct {
		name    string
		weights []uint32
		maxLen  int
	}{
		{"reduced by gcd, not capped", []uint32{1 << 30, 3 << 30}, 4},
		{"coprime, large", []uint32{1_000_003, 2_000_003, 3_000_017}, MaxLen + 3},
		{"max uint32", []uint32{math.MaxUint32, math.MaxUint32 - 1, 1}, MaxLen + 3},
		{"many backends", slices.Repeat([]uint32{1, 2}, 3000), 9000},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := New(tt.weights)
			if s.Len() > tt.maxLen {
				t.Fatalf("Len = %d, want at most %d", s.Len(), tt.maxLen)
			}
			counts := make([]int, len(tt.weights))
			for _, i := range cycle(s) {
				counts[i]++
			}
			var sum float64
			for _, w := range tt.weights {
				sum += float64(w)
			}
			for i, w := range tt.weights {
				if counts[i] == 0 {
					t.Fatalf("backend %d never picked", i)
				}
				got, want := float64(counts[i])/float64(s.Len()), float64(w)/sum
				// Half a slot of rounding, or one slot if the fair share is
				// below one.
				if e := math.Abs(got - want); e > 0.5/float64(MaxLen)+1e-9 && !(want < 1/float64(s.Len()) && counts[i] == 1) {
					t.Errorf("backend %d: share %.6f, want %.6f ± %.6f", i, got, want, 0.5/float64(MaxLen))
				}
			}
		})
	}
}

func TestEmpty(t *testing.T) {
	for name, s := range map[string]*Schedule{"nil": nil, "zero": {}, "New(nil)": New(nil)} {
		if got := s.Pick(3); got != -1 {
			t.Errorf("%s: Pick = %d, want -1", name, got)
		}
		if got := s.Len(); got != 0 {
			t.Errorf("%s: Len = %d, want 0", name, got)
		}
	}
}

func TestPickWrapsAnyCounter(t *testing.T) {
	s := New([]uint32{1, 2, 3})
	base := cycle(s)
	for _, n := range []uint64{6, 7, 1<<63 + 2, math.MaxUint64} {
		if got, want := s.Pick(n), base[n%6]; got != want {
			t.Errorf("Pick(%d) = %d, want %d", n, got, want)
		}
	}
}

func TestPickZeroAllocs(t *testing.T) {
	s := New([]uint32{1, 2, 3})
	var n uint64
	if a := testing.AllocsPerRun(100, func() { n++; s.Pick(n) }); a != 0 {
		t.Errorf("Pick allocates %v times, want 0", a)
	}
}

func TestConcurrentPicks(t *testing.T) {
	s := New([]uint32{1, 2, 3})
	var ctr atomic.Uint64
	var mu sync.Mutex
	counts := make([]int, 3)
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			local := make([]int, 3)
			for range 1500 {
				local[s.Pick(ctr.Add(1))]++
			}
			mu.Lock()
			for i, c := range local {
				counts[i] += c
			}
			mu.Unlock()
		})
	}
	wg.Wait()
	// 6000 consecutive counter values cover 1000 whole cycles, whatever the
	// interleaving.
	if want := []int{1000, 2000, 3000}; !slices.Equal(counts, want) {
		t.Errorf("counts = %v, want %v", counts, want)
	}
}
