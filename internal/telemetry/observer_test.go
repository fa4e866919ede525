package telemetry_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/resolver"

	"github.com/grpcpool/grpcpool/internal/core"
	"github.com/grpcpool/grpcpool/internal/telemetry"
)

// seam stands in for real connections; the test fires timers itself.
type seam struct {
	dials  []*core.Conn
	timers []core.Timer
}

func (s *seam) Dial(c *core.Conn)    { s.dials = append(s.dials, c) }
func (s *seam) Connect(*core.Conn)   {}
func (s *seam) Close(*core.Conn)     {}
func (s *seam) Publish(*core.Picker) {}
func (s *seam) ResolveNow()          {}
func (s *seam) After(_ time.Duration, t core.Timer) func() bool {
	s.timers = append(s.timers, t)
	return func() bool { return true }
}

func (s *seam) timer(t *testing.T, kind core.TimerKind, c *core.Conn) core.Timer {
	t.Helper()
	for _, tm := range s.timers {
		if tm.Kind == kind && tm.Conn == c {
			return tm
		}
	}
	t.Fatalf("no timer of kind %d for conn %d", kind, c.ID)
	return core.Timer{}
}

func group(addr string) core.Group {
	return core.Group{Key: addr, Addrs: []resolver.Address{{Addr: addr}}}
}

// The core's decisions reach the metrics: a recycle, a drain the timeout
// cut, a removed backend whose value goes to the next one.
func TestCoreObserver(t *testing.T) {
	r, rd := newRecorder(t, "t", 1)
	s := &seam{}
	k := core.New(core.Config{
		Target: "t", Size: 1, MaxSize: 1, DrainTimeout: time.Minute,
		Jitter:   func(d time.Duration) time.Duration { return d },
		Observer: telemetry.CoreObserver{R: r},
	}, s)
	require.NoError(t, r.RegisterGauges(func(o telemetry.GaugeObserver) {
		telemetry.ObserveBackends(o, k.Backends(), 100, false)
	}))
	now := time.Now()
	k.Resolved(now, []core.Group{group(addr1)})
	require.Len(t, s.dials, 1)
	c := s.dials[0]
	k.ConnState(now, c, connectivity.Ready, nil)
	k.Flush()
	st := "grpcpool.connection.state="
	conns := gauges(t, collect(t, rd), telemetry.Connections, "{connection}")
	assert.Equal(t, int64(1), conns[attrs("grpcpool.target=t", b1, st+"ready")])
	assert.Equal(t, map[string]int64{attrs("grpcpool.target=t", b1): 100},
		gauges(t, collect(t, rd), telemetry.StreamLimits, "{stream}"), "no limit learned: the configured one")

	// With breakers, each backend's breaker state; without a configured
	// or learned limit, no stream limit.
	r2, rd2 := newRecorder(t, "t", 1)
	require.NoError(t, r2.RegisterGauges(func(o telemetry.GaugeObserver) {
		telemetry.ObserveBackends(o, k.Backends(), 0, true)
	}))
	got2 := collect(t, rd2)
	assert.Equal(t, int64(1), gauges(t, got2, telemetry.BreakerStates, "{backend}")[attrs("grpcpool.target=t", b1, "grpcpool.breaker.state=closed")])
	assert.NotContains(t, got2, telemetry.StreamLimits)

	require.True(t, c.Acquire())
	k.Retire(now, c, "max_age")
	k.Fire(now.Add(time.Minute), s.timer(t, core.DrainTimer, c))
	k.Flush()
	got := collect(t, rd)
	assert.Equal(t, map[string]int64{attrs("grpcpool.target=t", b1, "grpcpool.reason=max_age"): 1},
		sums(t, got, telemetry.Recycles, "{connection}", true))
	assert.Equal(t, map[string]int64{attrs("grpcpool.target=t", b1): 1},
		sums(t, got, telemetry.DrainTimeouts, "{connection}", true))

	// With the limit of 1 taken, a second backend is other; once the
	// first is removed and closed, a third gets its own value.
	r.Recycle(addr2, "idle")
	k.Resolved(now, nil)
	k.Flush()
	r.Recycle(addr3, "idle")
	got = collect(t, rd)
	recycles := sums(t, got, telemetry.Recycles, "{connection}", true)
	assert.Equal(t, int64(1), recycles[attrs("grpcpool.target=t", other, "grpcpool.reason=idle")])
	assert.Equal(t, int64(1), recycles[attrs("grpcpool.target=t", "grpcpool.backend="+addr3, "grpcpool.reason=idle")])
	assert.Positive(t, recycles[attrs("grpcpool.target=t", b1, "grpcpool.reason=removed")], "the replacement was retired as removed: %v", recycles)
}
