package core

import (
	"errors"
	"fmt"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/status"

	"github.com/grpcpool/grpcpool/breaker"
)

var errDown = status.Error(codes.Unavailable, "backend down")

// breakerFake returns a fake whose backends have breakers that open after
// one failure for openTimeout; their changes reach the Core as the pool's
// do (an event applied under the lock).
func breakerFake(t *testing.T, cfg Config, openTimeout time.Duration) *fakeSeam {
	t.Helper()
	var f *fakeSeam
	cfg.NewBreaker = func(b *Backend) *breaker.Breaker {
		brk, err := breaker.New(b.Key, breaker.Settings{ConsecutiveFailures: 1, OpenTimeout: openTimeout}, func(_ string, _, to breaker.State) {
			b.StoreBreakerState(to)
			go f.do(func(k *Core, now time.Time) { k.BreakerChanged(now, b) })
		})
		require.NoError(t, err)
		return brk
	}
	f = newFake(t, cfg)
	return f
}

// call makes one call through the current picker: it fails with errDown
// while down, and reports whether it was placed and succeeded.
func call(f *fakeSeam, down bool) (placed, ok bool) {
	r, o := f.picker().Pick(PickInfo{})
	if o != Picked {
		return false, false
	}
	r.Conn.Release()
	err := error(nil)
	if down {
		err = errDown
	}
	if r.Done != nil {
		r.Done(err)
	}
	synctest.Wait() // the breaker's change reaches the Core
	return true, err == nil
}

// Every backend fails for 2 s and every breaker opens; with ejection
// capped (and the panic threshold), calls succeed again as soon as the
// backends recover, not after the 10 s open timeout. Without the cap they
// fail until it.
func TestCappedEjectionRecoversFromAFleetWideBlip(t *testing.T) {
	for _, tt := range []struct {
		name      string
		pct       int
		recovered time.Duration // when calls succeed again after recovery
	}{
		{"capped", DefaultMaxEjectPercent, 0},
		{"uncapped", 0, 10*time.Second - 2*time.Second},
	} {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				f := breakerFake(t, Config{Size: 1, MaxEjectPercent: tt.pct, PanicPercent: DefaultPanicPercent}, 10*time.Second)
				keys := []string{"a", "b", "c", "d"}
				f.do(func(k *Core, now time.Time) { k.Resolved(now, groupsOf(keys...)) })
				f.readyAll()
				start := time.Now()
				for time.Since(start) < 2*time.Second {
					call(f, true)
					time.Sleep(10 * time.Millisecond)
				}
				for _, key := range keys {
					require.Equal(t, breaker.StateOpen, f.backend(key).BreakerState(), key)
				}
				recovery := time.Now()
				var first time.Duration = -1
				for time.Since(recovery) < 10*time.Second {
					if _, ok := call(f, false); ok && first < 0 {
						first = time.Since(recovery)
					}
					time.Sleep(10 * time.Millisecond)
				}
				t.Logf("first success %v after recovery", first)
				require.GreaterOrEqual(t, first, tt.recovered)
				require.Less(t, first, tt.recovered+time.Second)
			})
		})
	}
}

// The cap: of 20 backends, 3 with open breakers (under the panic
// threshold), only 2 (10 %) are out — those whose breakers opened first;
// the third takes calls past its breaker.
func TestEjectionIsCapped(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := breakerFake(t, Config{Size: 1, MaxEjectPercent: 10, PanicPercent: 50}, time.Minute)
		keys := manyKeys(20)
		f.do(func(k *Core, now time.Time) { k.Resolved(now, groupsOf(keys...)) })
		f.readyAll()
		for _, key := range keys[:3] {
			b := f.backend(key)
			done, err := b.Breaker.Allow()
			require.NoError(t, err)
			done(errDown)
			synctest.Wait()
			time.Sleep(time.Second)
		}
		p := f.picker()
		require.Len(t, p.backends, 18)
		in := map[string]bool{}
		for _, pb := range p.backends {
			in[pb.b.Key] = true
		}
		require.False(t, in[keys[0]])
		require.False(t, in[keys[1]])
		require.True(t, in[keys[2]], "the breaker that opened last stays in")
		byB, _ := pickN(t, f, 18*10, PickInfo{})
		require.Equal(t, 10, byB[keys[2]], "past its breaker, it takes its share")
	})
}

// Backends that refuse connections are not ejected: they cannot be
// picked, and with none that can, calls fail at once, cap or not.
func TestRefusingBackendsAreNotKeptIn(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := breakerFake(t, Config{Size: 1, MaxEjectPercent: 10, PanicPercent: 50}, time.Minute)
		f.do(func(k *Core, now time.Time) { k.Resolved(now, groupsOf("a", "b")) })
		f.do(func(k *Core, now time.Time) {
			for _, b := range k.order {
				k.ConnState(now, b.conns[0], connectivity.TransientFailure, errors.New("connection refused"))
			}
		})
		p := f.picker()
		_, o := p.Pick(PickInfo{})
		require.Equal(t, Fail, o)
		require.Contains(t, p.FailErr().Error(), fmt.Sprintf("%s to any of 2 backends", MsgNotReady))
	})
}
