package subset

import (
	"cmp"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The fleet of the simulation: 1,000 clients × 300 backends, subset 30,
// so 30,000 connections and a mean of 100 per backend.
const (
	simClients  = 1000
	simBackends = 300
	simSize     = 30
	// balanceTol is the spread allowed around the mean load.
	balanceTol = 0.10
)

// A scheme maps (keys, index, count, size) to a client's subset.
type scheme struct {
	name   string
	choose func(keys []string, index, count, size int) []string
}

var ours = scheme{"Select (rings, 4 windows per anchor)", func(keys []string, i, _, k int) []string { return Select(keys, i, k) }}

// Schemes measured for contrast; only Select's figures are asserted.
var contrast = []scheme{
	{"random (rendezvous per client)", randomSubset},
	{"SRE book (shuffle per round)", sreSubset},
	{"deterministic aperture (rank ring)", apertureSubset},
	{"rings, 1 window per anchor", func(keys []string, i, _, k int) []string { return oneAnchor(keys, i, k) }},
}

func simKeys(n int) []string {
	keys := make([]string, n)
	for i := range keys {
		keys[i] = fmt.Sprintf("10.%d.%d.%d:50051", i/62500+1, i/250%250, i%250+1)
	}
	slices.Sort(keys)
	return keys
}

// fleet is every client's subset.
type fleet [][]string

func assign(s scheme, keys []string, count, size int) fleet {
	f := make(fleet, count)
	for i := range f {
		f[i] = s.choose(keys, i, count, size)
	}
	return f
}

// loads counts the connections each backend carries.
func (f fleet) loads() map[string]int {
	n := make(map[string]int)
	for _, sub := range f {
		for _, k := range sub {
			n[k]++
		}
	}
	return n
}

// spread returns the least and most loaded backend relative to the mean,
// over all of keys (a backend nobody picked counts as 0).
func (f fleet) spread(keys []string) (lo, hi float64) {
	n := f.loads()
	total := 0
	for _, c := range n {
		total += c
	}
	mean := float64(total) / float64(len(keys))
	lo, hi = math.Inf(1), 0
	for _, k := range keys {
		r := float64(n[k]) / mean
		lo, hi = min(lo, r), max(hi, r)
	}
	return lo, hi
}

// moved counts the connections of before that after no longer has: for
// each client of before (after[who[i]] is the same client's subset after
// the change, who[i] < 0 when it left), the backends it dropped. Each
// client keeps size connections, so every dropped one is also one opened
// elsewhere, except those of a client that left.
func moved(before, after fleet, who []int) int {
	m := 0
	for i, sub := range before {
		var keep []string
		if who[i] >= 0 {
			keep = after[who[i]]
		}
		for _, k := range sub {
			if !slices.Contains(keep, k) {
				m++
			}
		}
	}
	return m
}

func identity(n int) []int {
	w := make([]int, n)
	for i := range w {
		w[i] = i
	}
	return w
}

func without(keys []string, i int) []string {
	return slices.Concat(keys[:i], keys[i+1:])
}

// churn measures one scheme: its spread, and the worst ratio of moved
// connections to the minimum over several single changes.
type churn struct {
	lo, hi           float64
	addMoved, addMin int
	rmMoved, rmMin   int
	leaveFill        int // one client leaves, the last client takes its index
	leaveShift       int // one client leaves, the indexes above it shift down
	leaveMin         int
	afterLo, afterHi float64 // worst spread after any of the changes
}

// measure runs the changes of the simulation against s.
//
// The minimum any scheme must move, per change (each client keeps size
// connections, so a connection dropped is one opened elsewhere):
//   - a backend removed: every connection it carried must go, so the
//     minimum is its load before the change;
//   - a backend added: the fleet stays balanced only if the new backend
//     carries at least (1 − balanceTol) × the new mean, count×size/(B+1),
//     and each of those connections replaces one the client had: that many
//     must move;
//   - a client leaves: its size connections end; nothing else has to (the
//     backends it used lose one each, which keeps them within the spread),
//     so the minimum is size.
func measure(s scheme, keys []string, extra string, count, size int, changes []int) churn {
	base := assign(s, keys, count, size)
	var c churn
	c.lo, c.hi = base.spread(keys)
	c.afterLo, c.afterHi = c.lo, c.hi
	track := func(f fleet, ks []string) {
		lo, hi := f.spread(ks)
		c.afterLo, c.afterHi = min(c.afterLo, lo), max(c.afterHi, hi)
	}
	worse := func(m, lim int, pm, plim *int) {
		if *plim == 0 || m*(*plim) > (*pm)*lim {
			*pm, *plim = m, lim
		}
	}

	added := append(slices.Clone(keys), extra)
	slices.Sort(added)
	af := assign(s, added, count, size)
	track(af, added)
	addMin := int(math.Ceil((1 - balanceTol) * float64(count*size) / float64(len(added))))
	worse(moved(base, af, identity(count)), addMin, &c.addMoved, &c.addMin)

	loads := base.loads()
	for _, j := range changes {
		rk := without(keys, j)
		rf := assign(s, rk, count, size)
		track(rf, rk)
		worse(moved(base, rf, identity(count)), loads[keys[j]], &c.rmMoved, &c.rmMin)
	}

	c.leaveMin = size
	// Select does not depend on the count, but a scheme may: assign again.
	fill := assign(s, keys, count-1, size)
	track(fill, keys)
	for _, leaver := range changes {
		// The last client takes the leaver's index.
		who := identity(count)
		who[leaver] = -1
		if leaver != count-1 {
			who[count-1] = leaver
		}
		c.leaveFill = max(c.leaveFill, moved(base, fill, who))
		// The indexes above the leaver shift down by one.
		for i := leaver + 1; i < count; i++ {
			who[i] = i - 1
		}
		c.leaveShift = max(c.leaveShift, moved(base, fill, who))
	}
	return c
}

func (c churn) String() string {
	return fmt.Sprintf("spread %.2f–%.2f of the mean (after changes %.2f–%.2f); backend added: %d moved (min %d, ×%.2f); "+
		"backend removed: %d moved (min %d, ×%.2f); client leaves, last takes its index: %d (min %d, ×%.2f); "+
		"indexes shift down: %d (×%.2f)",
		c.lo, c.hi, c.afterLo, c.afterHi,
		c.addMoved, c.addMin, ratio(c.addMoved, c.addMin),
		c.rmMoved, c.rmMin, ratio(c.rmMoved, c.rmMin),
		c.leaveFill, c.leaveMin, ratio(c.leaveFill, c.leaveMin),
		c.leaveShift, ratio(c.leaveShift, c.leaveMin))
}

func ratio(a, b int) float64 { return float64(a) / float64(b) }

// simChanges are the backends removed and the clients that leave, one at a
// time: both ends and points between.
var simChanges = []int{0, 150, 151, 299}

// TestSimulation is the fleet of the design target: 1,000 clients × 300
// backends, subset 30. Select keeps every backend within ±10 % of the mean
// load and moves at most twice the minimum any scheme must move when a
// backend is added or removed and when a client leaves (the membership
// giving its index to the last client).
func TestSimulation(t *testing.T) {
	t.Parallel()
	keys := simKeys(simBackends)
	extra := "10.1.9.9:50051"
	require.NotContains(t, keys, extra)

	c := measure(ours, keys, extra, simClients, simSize, simChanges)
	t.Logf("%s: %v", ours.name, c)
	assert.GreaterOrEqual(t, c.lo, 1-balanceTol, "least loaded backend")
	assert.LessOrEqual(t, c.hi, 1+balanceTol, "most loaded backend")
	assert.LessOrEqual(t, c.addMoved, 2*c.addMin, "moved when a backend is added")
	assert.LessOrEqual(t, c.rmMoved, 2*c.rmMin, "moved when a backend is removed")
	assert.LessOrEqual(t, c.leaveFill, 2*c.leaveMin, "moved when a client leaves")

	if !testing.Verbose() {
		return // the contrast is a report for -v (docs/fleets.md); nothing asserts it
	}
	for _, s := range contrast {
		t.Logf("%s: %v", s.name, measure(s, keys, extra, simClients, simSize, simChanges[:3]))
	}
}

// randomSubset is random subsetting with a per-client seed: the size
// backends with the highest hash of (client, key), as a rendezvous
// subsetter does.
func randomSubset(keys []string, i, _, k int) []string {
	return topByScore(keys, k, mix(uint64(i)*golden+7))
}

func topByScore(keys []string, k int, seed uint64) []string {
	return nearest(keys, k, func(key string) uint64 { return score(key, seed) })
}

// nearest returns the k keys with the smallest dist.
func nearest(keys []string, k int, dist func(string) uint64) []string {
	type kd struct {
		d   uint64
		key string
	}
	s := make([]kd, len(keys))
	for i, key := range keys {
		s[i] = kd{dist(key), key}
	}
	slices.SortFunc(s, func(a, b kd) int { return cmp.Compare(a.d, b.d) })
	out := make([]string, min(k, len(s)))
	for i := range out {
		out[i] = s[i].key
	}
	return out
}

// sreSubset is the SRE book's deterministic subsetting: rounds of
// len(keys)/k clients, each round shuffles the sorted keys with its own
// seed and gives each client a slice.
func sreSubset(keys []string, i, _, k int) []string {
	per := max(len(keys)/k, 1)
	round, pos := i/per, i%per
	s := slices.Clone(keys)
	rand.New(rand.NewPCG(uint64(round), 0)).Shuffle(len(s), func(a, b int) { s[a], s[b] = s[b], s[a] })
	return s[pos*k : pos*k+k]
}

// apertureSubset is Finagle's deterministic aperture reduced to whole
// connections: client i sits at i/count on the ring of sorted backends and
// takes the k that follow.
func apertureSubset(keys []string, i, count, k int) []string {
	start := i * len(keys) / count
	out := make([]string, k)
	for j := range out {
		out[j] = keys[(start+j)%len(keys)]
	}
	return out
}

// oneAnchor is Select with one client per anchor (RoundSize anchors per
// round, evenly spaced): no shifted windows, a wider spread.
func oneAnchor(keys []string, index, size int) []string {
	round := uint64(index / RoundSize)
	seed := mix(round*golden + 1)
	step := ^uint64(0)/uint64(RoundSize) + 1
	anchor := uint64(index%RoundSize)*step + seed%step
	return nearest(keys, size, func(key string) uint64 { return score(key, seed) - anchor })
}

// TestShapes measures the spread of other fleet shapes against random
// subsetting's (for docs/fleets.md), and holds Select to a narrower spread
// than random subsetting on each.
func TestShapes(t *testing.T) {
	t.Parallel()
	for _, f := range []struct{ clients, backends, size int }{
		{1000, 100, 30}, {1000, 300, 10}, {1000, 300, 100}, {1000, 1000, 30}, {200, 50, 5},
	} {
		keys := simKeys(f.backends)
		lo, hi := assign(ours, keys, f.clients, f.size).spread(keys)
		rlo, rhi := assign(contrast[0], keys, f.clients, f.size).spread(keys)
		t.Logf("%d clients × %d backends, subset %d (mean %.0f): Select %.2f–%.2f, random %.2f–%.2f",
			f.clients, f.backends, f.size, float64(f.clients*f.size)/float64(f.backends), lo, hi, rlo, rhi)
		assert.Less(t, hi-lo, rhi-rlo, "%v: Select spreads wider than random subsetting", f)
	}
}
