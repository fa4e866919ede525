package core

import (
	"fmt"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/grpcpool/grpcpool/breaker"
)

// openStreams acquires n never-ending calls through the current picker
// and counts them per backend, as LeastActive sees them.
func openStreams(t *testing.T, f *fakeSeam, n int) {
	t.Helper()
	for range n {
		r, o := f.picker().Pick(PickInfo{})
		require.Equal(t, Picked, o)
		r.Conn.Backend.Streams.Add(1)
	}
}

func loads(f *fakeSeam, keys ...string) []int64 {
	out := make([]int64, len(keys))
	for i, k := range keys {
		out[i] = f.backend(k).Streams.Load()
	}
	return out
}

// LeastActive is exact: after 3 backends join 3 that carry 300 streams,
// the next 300 streams even the fleet out completely.
func TestLeastActiveIsExactAfterScaleUp(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFake(t, Config{Size: 2, Policy: LeastActive})
		f.do(func(k *Core, now time.Time) { k.Resolved(now, groupsOf("a", "b", "c")) })
		f.readyAll()
		openStreams(t, f, 300)
		require.Equal(t, []int64{100, 100, 100}, loads(f, "a", "b", "c"))
		f.do(func(k *Core, now time.Time) { k.Resolved(now, groupsOf("a", "b", "c", "d", "e", "f")) })
		f.readyAll()
		openStreams(t, f, 300)
		require.Equal(t, []int64{100, 100, 100, 100, 100, 100}, loads(f, "a", "b", "c", "d", "e", "f"))
	})
}

// 60 backends (the exact scan) with 10 streams each: exact.
func TestLeastActiveIsExactOverSixtyBackends(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFake(t, Config{Size: 1, Policy: LeastActive})
		keys := make([]string, 60)
		for i := range keys {
			keys[i] = fmt.Sprintf("b%03d", i)
		}
		f.do(func(k *Core, now time.Time) { k.Resolved(now, groupsOf(keys...)) })
		f.readyAll()
		openStreams(t, f, 600)
		for i, l := range loads(f, keys...) {
			require.EqualValues(t, 10, l, "backend %d", i)
		}
	})
}

// Review item 3: with weights 1:10 and the heavy backend refusing (its
// breaker's probe is out), every call goes to the light one; a retry goes
// to a backend not tried yet.
func TestWeightedRoundRobinTriesEveryDistinctBackend(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFake(t, Config{Size: 1, NewBreaker: func(b *Backend) *breaker.Breaker {
			brk, err := breaker.New(b.Key, breaker.Settings{}, nil)
			require.NoError(t, err)
			return brk
		}})
		gs := groupsOf("light", "heavy")
		gs[1].Weight = 10
		f.do(func(k *Core, now time.Time) { k.Resolved(now, gs) })
		f.readyAll()
		heavy := f.backend("heavy")
		// Hold the heavy backend's breaker half-open with its probe out.
		heavy.StoreBreakerState(breaker.StateHalfOpen)
		f.do(func(k *Core, now time.Time) { k.BreakerChanged(now, heavy) })
		light := 0
		for range 100 {
			r, o := f.picker().Pick(PickInfo{})
			require.Equal(t, Picked, o)
			if r.Conn.Backend.Key == "light" {
				light++
			}
			r.Conn.Release()
			if r.Done != nil {
				r.Done(nil)
			}
		}
		require.Positive(t, light)
		var tr Tried
		tr.Add(f.backend("light"))
		for range 20 {
			r, o := f.picker().Pick(PickInfo{Tried: &tr})
			require.Equal(t, Picked, o)
			require.Equal(t, "heavy", r.Conn.Backend.Key, "a retry goes to the backend not tried")
			r.Conn.Release()
		}
	})
}

// Review item 12: a key whose owner is still making its first connection
// waits for it rather than going to another backend.
func TestConsistentHashWaitsForStartingOwner(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFake(t, Config{Size: 1, Policy: ConsistentHash})
		f.do(func(k *Core, now time.Time) { k.Resolved(now, groupsOf("a", "b", "c")) })
		b := f.backend("b")
		f.do(func(k *Core, now time.Time) {
			for _, key := range []string{"a", "c"} {
				k.ConnState(now, k.backends[key].conns[0], 2 /* READY */, nil)
			}
		})
		// Find a key owned by b.
		var key string
		p := f.picker()
		for i := range 1000 {
			kk := fmt.Sprint("key", i)
			if p.pol.(*consistentHash).ring.Lookup(kk) == 1 {
				key = kk
				break
			}
		}
		require.NotEmpty(t, key)
		_, o := p.Pick(PickInfo{Key: key, HasKey: true})
		require.Equal(t, Wait, o, "the owner is starting: wait for it")
		f.do(func(k *Core, now time.Time) { k.ConnState(now, b.conns[0], 2, nil) })
		r, o := f.picker().Pick(PickInfo{Key: key, HasKey: true})
		require.Equal(t, Picked, o)
		require.Equal(t, "b", r.Conn.Backend.Key)
	})
}

// A breaker change the core hears of late never undoes a later one: the
// pickers act on the state stored when the breaker changed.
func TestLateBreakerReportDoesNotUndoALaterChange(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFake(t, Config{Size: 1, NewBreaker: func(b *Backend) *breaker.Breaker {
			brk, err := breaker.New(b.Key, breaker.Settings{}, nil)
			require.NoError(t, err)
			return brk
		}})
		f.do(func(k *Core, now time.Time) { k.Resolved(now, groupsOf("a")) })
		f.readyAll()
		a := f.backend("a")
		a.StoreBreakerState(breaker.StateOpen)
		a.StoreBreakerState(breaker.StateClosed) // it closed again before the core heard it opened
		f.do(func(k *Core, now time.Time) { k.BreakerChanged(now, a) })
		r, o := f.picker().Pick(PickInfo{})
		require.Equal(t, Picked, o)
		require.Equal(t, "a", r.Conn.Backend.Key)
	})
}

// ConsistentHash over the fake: 2,000 keys spread over 5 backends within
// 10 % of the mean, and a 6th backend takes only its own share of keys,
// from every other backend, and no key moves elsewhere.
func TestConsistentHashSpreadAndAdd(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		keys := make([]string, 2000)
		for i := range keys {
			keys[i] = fmt.Sprintf("user-%016x", uint64(i)*0x9E3779B97F4A7C15)
		}
		f := newFake(t, Config{Size: 1, Policy: ConsistentHash})
		ids := []string{"10.0.0.1:50051", "10.0.0.2:50051", "10.0.0.3:50051", "10.0.0.4:50051", "10.0.0.5:50051", "10.0.0.6:50051"}
		owners := func() []string {
			out := make([]string, len(keys))
			for i, k := range keys {
				r, o := f.picker().Pick(PickInfo{Key: k, HasKey: true})
				require.Equal(t, Picked, o)
				out[i] = r.Conn.Backend.Key
				r.Conn.Release()
			}
			return out
		}
		f.do(func(k *Core, now time.Time) { k.Resolved(now, groupsOf(ids[:5]...)) })
		f.readyAll()
		before := owners()
		counts := map[string]int{}
		for _, o := range before {
			counts[o]++
		}
		most := 0
		for _, n := range counts {
			most = max(most, n)
		}
		require.Len(t, counts, 5)
		require.LessOrEqual(t, float64(most)/(float64(len(keys))/5), 1.10, "%v", counts)
		f.do(func(k *Core, now time.Time) { k.Resolved(now, groupsOf(ids...)) })
		f.readyAll()
		after := owners()
		moved := 0
		for i := range keys {
			if after[i] != before[i] {
				moved++
				require.Equal(t, ids[5], after[i], "key %q moved from %s to another old backend", keys[i], before[i])
			}
		}
		require.LessOrEqual(t, float64(moved)/float64(len(keys)), 1.0/6+0.02, "moved %d of %d", moved, len(keys))
		require.Positive(t, moved)
	})
}

// Weighted LeastActive follows the weights as far as there is
// concurrency to compare: with nothing in flight every backend is idle at
// each pick and the calls spread evenly; with 12 calls in flight, ended
// oldest first, the calls follow the weights 1:2:3.
func TestWeightedLeastActiveFollowsWeightsUnderConcurrency(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFake(t, Config{Size: 1, Policy: LeastActive})
		gs := groupsOf("w1", "w2", "w3")
		for i := range gs {
			gs[i].Weight = uint32(i + 1)
		}
		f.do(func(k *Core, now time.Time) { k.Resolved(now, gs) })
		f.readyAll()
		run := func(inFlight, calls int) map[string]int {
			got := map[string]int{}
			var q []Result
			for range calls {
				r, o := f.picker().Pick(PickInfo{})
				require.Equal(t, Picked, o)
				r.Conn.Backend.Calls.Add(1)
				got[r.Conn.Backend.Key]++
				q = append(q, r)
				if len(q) > inFlight {
					r := q[0]
					q = q[1:]
					r.Conn.Backend.Calls.Add(-1)
					r.Conn.Release()
				}
			}
			for _, r := range q {
				r.Conn.Backend.Calls.Add(-1)
				r.Conn.Release()
			}
			return got
		}
		seq := run(0, 600)
		for _, k := range []string{"w1", "w2", "w3"} {
			require.InDelta(t, 200, seq[k], 20, "sequential calls at weights 1:2:3: %v", seq)
		}
		conc := run(12, 1200)
		require.Less(t, conc["w1"], conc["w2"], "%v", conc)
		require.Less(t, conc["w2"], conc["w3"], "%v", conc)
		require.GreaterOrEqual(t, float64(conc["w3"]), 0.4*1200, "%v", conc)
	})
}

// A pick keeps its caller's PickInfo and Tried on the caller's stack
// (the pool's call loop holds its Tried there): under every policy, with
// zones and without, a first attempt and a retry with a key allocate
// nothing. A pick that let any of them escape, by passing a pointer to
// them, or the key's string, through the policy interface, allocates one.
func TestPickKeepsCallerStateOnStack(t *testing.T) {
	for _, policy := range policies {
		for _, zones := range []string{"off", "a/1-4-4"} {
			t.Run(fmt.Sprintf("%s/zones=%s", policyName(policy), zones), func(t *testing.T) {
				f := zoneBenchCore(t, policy, 9, zones)
				p := f.k.Picker()
				tried := f.k.Backends()[0]
				for _, retry := range []bool{false, true} {
					allocs := testing.AllocsPerRun(200, func() { pickOnStack(p, tried, retry) })
					require.Zero(t, allocs, "retry %v", retry)
				}
			})
		}
	}
}

// pickOnStack picks and releases as the pool does, with its PickInfo and
// Tried local: a retry after an attempt on tried, with a key.
//
//go:noinline
func pickOnStack(p *Picker, tried *Backend, retry bool) {
	var tr Tried
	info := PickInfo{}
	if retry {
		tr.Add(tried)
		info = PickInfo{Key: "user-1234", HasKey: true, Tried: &tr}
	}
	r, o := p.Pick(info)
	if o == Picked {
		r.Conn.Release()
	}
}

// Backends that join a fleet with estimates in one batch are each seeded
// with the median of the fleet's estimates, the same for every one of
// them: seeding one with the median leaves the median as it was, so the
// picker build takes it once.
func TestPeakEWMASeedsABatchWithOneMedian(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFake(t, Config{Size: 1, Policy: PeakEWMA})
		f.do(func(k *Core, now time.Time) { k.Resolved(now, groupsOf("a", "b", "c", "d")) })
		f.readyAll()
		for i, key := range []string{"a", "b", "c", "d"} {
			f.backend(key).Observe(time.Duration(1<<i)*time.Millisecond, false, 0) // 1, 2, 4, 8 ms
		}
		f.do(func(k *Core, now time.Time) { k.Resolved(now, groupsOf("a", "b", "c", "d", "n1", "n2", "n3")) })
		f.readyAll()
		now := f.k.clock.now()
		for _, key := range []string{"n1", "n2", "n3"} {
			require.InDelta(t, float64(3*time.Millisecond), f.backend(key).ewma.estimate(now), 1, "backend %s", key)
		}
	})
}
