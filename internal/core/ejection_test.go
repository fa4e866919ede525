package core_test

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

	"github.com/grpcpool/grpcpool/internal/core"
	"github.com/grpcpool/grpcpool/internal/coretest"
)

var errDown = status.Error(codes.Unavailable, "backend down")

// breakerFake returns a fake whose backends have breakers that open after
// one failure for openTimeout; their changes reach the Core as the pool's
// do (an event applied under the lock).
func breakerFake(t *testing.T, cfg core.Config, openTimeout time.Duration) *coretest.Fake {
	t.Helper()
	return coretest.NewWithBreakers(t, cfg, breaker.Settings{ConsecutiveFailures: 1, OpenTimeout: openTimeout})
}

// call makes one call through the current picker: it fails with errDown
// while down, and reports whether it was placed and succeeded.
func call(f *coretest.Fake, down bool) (placed, ok bool) {
	r, o := f.Picker().Pick(core.PickInfo{})
	if o != core.Picked {
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
		{"capped", core.DefaultMaxEjectPercent, 0},
		{"uncapped", 0, 10*time.Second - 2*time.Second},
	} {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				f := breakerFake(t, core.Config{Size: 1, MaxEjectPercent: tt.pct, PanicPercent: core.DefaultPanicPercent}, 10*time.Second)
				keys := []string{"a", "b", "c", "d"}
				f.Resolve(keys...)
				start := time.Now()
				for time.Since(start) < 2*time.Second {
					call(f, true)
					time.Sleep(10 * time.Millisecond)
				}
				for _, key := range keys {
					require.Equal(t, breaker.StateOpen, f.Backend(key).BreakerState(), key)
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
		f := breakerFake(t, core.Config{Size: 1, MaxEjectPercent: 10, PanicPercent: 50}, time.Minute)
		keys := manyKeys(20)
		f.Resolve(keys...)
		for _, key := range keys[:3] {
			b := f.Backend(key)
			done, err := b.Breaker.Allow()
			require.NoError(t, err)
			done(errDown)
			synctest.Wait()
			time.Sleep(time.Second)
		}
		byB, _ := f.PickN(t, 18*10, core.PickInfo{})
		require.Len(t, byB, 18, "18 backends take calls: %v", byB)
		require.Zero(t, byB[keys[0]])
		require.Zero(t, byB[keys[1]])
		require.Equal(t, 10, byB[keys[2]], "the breaker that opened last stays in: past its breaker, it takes its share")
	})
}

// Backends that refuse connections are not ejected: they cannot be
// picked, and with none that can, calls fail at once, cap or not.
func TestRefusingBackendsAreNotKeptIn(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := breakerFake(t, core.Config{Size: 1, MaxEjectPercent: 10, PanicPercent: 50}, time.Minute)
		f.Do(func(k *core.Core, now time.Time) { k.Resolved(now, coretest.Groups("a", "b")) })
		f.Do(func(k *core.Core, now time.Time) {
			for _, b := range k.Backends() {
				k.ConnState(now, b.Conns()[0], connectivity.TransientFailure, errors.New("connection refused"))
			}
		})
		p := f.Picker()
		_, o := p.Pick(core.PickInfo{})
		require.Equal(t, core.Fail, o)
		require.Contains(t, p.FailErr().Error(), fmt.Sprintf("%s to any of 2 backends", core.MsgNotReady))
	})
}
