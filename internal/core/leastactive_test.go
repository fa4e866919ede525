package core_test

import (
	"fmt"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/grpcpool/grpcpool/internal/core"
	"github.com/grpcpool/grpcpool/internal/coretest"
)

func manyKeys(n int) []string {
	keys := make([]string, n)
	for i := range keys {
		keys[i] = fmt.Sprintf("b%03d", i)
	}
	return keys
}

// resolvedFake is newFake with keys resolved and every connection READY.
func resolvedFake(t *testing.T, cfg core.Config, keys ...string) *coretest.Fake {
	t.Helper()
	f := coretest.New(t, cfg)
	f.Resolve(keys...)
	return f
}

// requireLoads asserts that every backend of keys carries want streams.
func requireLoads(t *testing.T, f *coretest.Fake, want int64, keys ...string) {
	t.Helper()
	for i, l := range f.Loads(keys...) {
		require.EqualValues(t, want, l, "backend %d", i)
	}
}

func maxOverMean(ls []int64) float64 {
	var sum, top int64
	for _, l := range ls {
		sum += l
		top = max(top, l)
	}
	return float64(top) * float64(len(ls)) / float64(sum)
}

// Above the exact scan, the load floor keeps LeastActive exact: 200
// backends with 10 never-ending streams each end at 10 each.
func TestLeastActiveIsExactOverTwoHundredBackends(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		keys := manyKeys(200)
		f := resolvedFake(t, core.Config{Size: 1, Policy: core.LeastActive}, keys...)
		f.OpenStreams(t, 2000)
		ls := f.Loads(keys...)
		require.LessOrEqual(t, maxOverMean(ls), 1.05, "%v", ls)
		requireLoads(t, f, 10, keys...)
	})
}

// Scale-up at scale: 100 backends join 100 that carry 10 streams each;
// the next 1,000 streams all go to the new ones.
func TestLeastActiveFillsNewBackendsAtScale(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		keys := manyKeys(200)
		f := resolvedFake(t, core.Config{Size: 1, Policy: core.LeastActive}, keys[:100]...)
		f.OpenStreams(t, 1000)
		f.Resolve(keys...)
		f.OpenStreams(t, 1000)
		requireLoads(t, f, 10, keys...)
	})
}

// A stream that ends lowers the floor: the next stream goes to the
// backend it left, though every other backend is at the same level.
func TestLeastActiveRefillsWhereAStreamEnded(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		keys := manyKeys(100)
		f := resolvedFake(t, core.Config{Size: 1, Policy: core.LeastActive}, keys...)
		var held []*core.Conn
		for range 500 {
			r, o := f.Picker().Pick(core.PickInfo{})
			require.Equal(t, core.Picked, o)
			r.Conn.Backend.Streams.Add(1)
			held = append(held, r.Conn)
		}
		for i := range 50 {
			c := held[i*7]
			c.Backend.Streams.Add(-1)
			c.Release()
			r, o := f.Picker().Pick(core.PickInfo{})
			require.Equal(t, core.Picked, o)
			require.Same(t, c.Backend, r.Conn.Backend, "end %d: the new stream goes where one ended", i)
			r.Conn.Backend.Streams.Add(1)
		}
		requireLoads(t, f, 5, keys...)
	})
}

// LeastActive follows weights above the exact scan too: a weight-100
// backend among 64, 65 or 200 weight-1 ones takes one call at 0, like each
// of them, and then every call until it carries 100 to their 1: of light
// + 100 calls, 100.
func TestLeastActiveFollowsWeightsAboveTheExactScan(t *testing.T) {
	for _, light := range []int{63, 64, 65, 200} {
		t.Run(fmt.Sprintf("%d light backends", light), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				keys := append(manyKeys(light), "heavy")
				gs := coretest.Groups(keys...)
				gs[light].Weight = 100
				f := coretest.New(t, core.Config{Size: 1, Policy: core.LeastActive})
				f.Do(func(k *core.Core, now time.Time) { k.Resolved(now, gs) })
				f.ReadyAll()
				f.OpenStreams(t, light+100)
				got := f.Backend("heavy").Streams.Load()
				want := int64(100)
				require.Equalf(t, want, got, "streams on the weight-100 backend: got %d, want %d", got, want)
			})
		})
	}
}
