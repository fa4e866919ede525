package lb

import (
	"testing"
	"time"

	"google.golang.org/grpc/resolver"

	"github.com/grpcpool/grpcpool/internal/core"
	"github.com/grpcpool/grpcpool/internal/testutil"
)

// TestMaxConnAgeReplacesReadyBeforeSwapThenDrains drives a recycle with the
// policy's timers in the test's hands. When a connection reaches its age,
// a replacement is dialed and the old one keeps taking calls until the
// replacement is READY (the server holds it back meanwhile); then the old
// one takes no new calls and closes once its stream has ended — even past
// the drain timeout, since grpc shuts a SubConn down gracefully.
func TestMaxConnAgeReplacesReadyBeforeSwapThenDrains(t *testing.T) {
	s, g := startGated(t, 2)
	ft := &fakeTimers{}
	name := register(ft, nil)
	cc, _ := dial(t, []*server{s}, serviceConfig(name, Config{Size: 2, Policy: LeastActive, MaxConnAge: time.Hour}))
	waitConns(t, []*server{s}, 2)
	streams := testutil.OpenStreams(t, cc, 2) // one on each connection
	defer func() {
		for _, st := range streams {
			st.Cancel()
		}
	}()

	if n := ft.fire(core.AgeTimer); n != 2 {
		t.Fatalf("fired %d age timers, want 2 (one per connection)", n)
	}
	// The replacement of the first connection is held back by the server:
	// both old connections keep taking calls.
	testutil.WaitFor(t, "the replacement's connection to reach the server", func() bool { return g.n.Load() == 3 })
	mustCall(t, cc, 20)
	if got := s.conns.open.Load(); got != 2 {
		t.Fatalf("%d connections open while the replacement is not ready, want the 2 old ones", got)
	}

	g.release()
	// Ready: the old connection retires; its stream keeps it open.
	testutil.WaitFor(t, "the replacement to be made", func() bool { return s.conns.open.Load() == 3 })
	testutil.WaitFor(t, "a drain timeout to be armed for the retired connection", func() bool { return ft.count(core.DrainTimer) == 1 })
	for _, st := range streams {
		if _, err := st.RoundTrip("still there"); err != nil {
			t.Fatalf("stream on a retired connection: %v", err)
		}
	}
	if got := s.conns.open.Load(); got != 3 {
		t.Fatalf("%d connections open while the retired one carries a stream, want 3", got)
	}

	// The drain timeout ends the policy's wait: it shuts the SubConn
	// down, and grpc's shutdown is graceful, so the stream still runs
	// and the connection closes after it.
	ft.fire(core.DrainTimer)
	for _, st := range streams {
		if _, err := st.RoundTrip("after the drain timeout"); err != nil {
			t.Fatalf("stream after the drain timeout: %v", err)
		}
	}
	testutil.EndAll(t, streams)
	testutil.WaitFor(t, "the retired connection to close after its stream", func() bool { return s.conns.open.Load() == 2 })
	if got := s.conns.total.Load(); got != 3 {
		t.Errorf("%d connections made, want 3", got)
	}
}

// TestRetiredConnectionClosesWhenItsLastCallEnds: a retired connection
// with nothing in flight closes at once; one with a stream closes when
// the stream ends, with no timer.
func TestRetiredConnectionClosesWhenItsLastCallEnds(t *testing.T) {
	ss := startServers(t, 1)
	ft := &fakeTimers{}
	name := register(ft, nil)
	cc, _ := dial(t, ss, serviceConfig(name, Config{Size: 1, MaxConnAge: time.Hour}))
	waitConns(t, ss, 1)
	st := testutil.OpenStreams(t, cc, 1)[0]
	ft.fire(core.AgeTimer)
	testutil.WaitFor(t, "the replacement", func() bool { return ss[0].conns.open.Load() == 2 })
	mustCall(t, cc, 5)
	testutil.WaitFor(t, "a drain timeout for the retired connection", func() bool { return ft.count(core.DrainTimer) == 1 })
	if err := st.End(); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, "the retired connection to close after its stream", func() bool { return ss[0].conns.open.Load() == 1 })
	if n := ft.count(core.DrainTimer); n != 0 {
		t.Errorf("%d drain timeouts still armed after the retired connection closed, want 0", n)
	}
}

// TestPeriodicReResolution: the policy asks the resolver to resolve again
// each resolve interval, whether or not a connection broke; what the
// resolver then reports gets connections.
func TestPeriodicReResolution(t *testing.T) {
	ss := startServers(t, 2)
	ft := &fakeTimers{}
	name := register(ft, nil)
	cc, r := dial(t, ss[:1], serviceConfig(name, Config{Size: 2, ResolveInterval: time.Minute}))
	resolved := make(chan struct{}, 8)
	r.ResolveNowCallback = func(resolver.ResolveNowOptions) {
		r.UpdateState(testutil.State(addrsOf(ss)...))
		resolved <- struct{}{}
	}
	waitConns(t, ss[:1], 2)
	for round := range 2 {
		if n := ft.fire(resolveTimer); n != 1 {
			t.Fatalf("round %d: fired %d resolve timers, want 1", round, n)
		}
		select {
		case <-resolved:
		case <-testutil.Context(t).Done():
			t.Fatalf("round %d: the resolver was not asked to resolve again", round)
		}
	}
	waitConns(t, ss, 2)
	mustCall(t, cc, 10)
	if ss[1].Unary() == 0 {
		t.Error("the backend the re-resolution found got no calls")
	}
}

// TestSlowStartRampsANewBackend: a backend that joins a warm fleet gets a
// tenth of its share at first (slowStart), its full share once the window
// has passed. The policy's clock is the test's.
func TestSlowStartRampsANewBackend(t *testing.T) {
	ss := startServers(t, 3)
	ft := &fakeTimers{}
	clk := &fakeClock{}
	name := register(ft, clk)
	cc, r := dial(t, ss[:2], serviceConfig(name, Config{Size: 1, Policy: LeastActive, SlowStart: time.Hour}))
	waitConns(t, ss[:2], 1)
	// Both are READY in the policy (a backend answers only once its
	// connection is); then they have been ready for a whole window.
	testutil.WaitFor(t, "both first backends to answer", func() bool {
		mustCall(t, cc, 1)
		return ss[0].Unary() > 0 && ss[1].Unary() > 0
	})
	clk.advance(2 * time.Hour)
	r.UpdateState(testutil.State(addrsOf(ss)...))
	// The new backend's entry in the pickers ramps, and schedules the
	// ramp's end.
	testutil.WaitFor(t, "the ramp's end to be scheduled", func() bool { return ft.count(core.RampTimer) == 1 })

	first := testutil.OpenStreams(t, cc, 42)
	defer testutil.EndAll(t, first)
	got := testutil.ByBackend(first, namesOf(ss))
	if got[2] < 1 || got[2] > 3 || got[0]+got[1] != 42-got[2] {
		t.Fatalf("42 streams spread %v, want the ramping backend at about a tenth of the others' share (1 to 3)", got)
	}

	clk.advance(time.Hour)
	if n := ft.fire(core.RampTimer); n != 1 {
		t.Fatalf("fired %d ramp timers, want 1", n)
	}
	more := testutil.OpenStreams(t, cc, 42)
	defer testutil.EndAll(t, more)
	all := activeOf(ss)
	for i, n := range all {
		if n != 28 {
			t.Fatalf("84 streams spread %v after the ramp, want 28 each (%s has %d)", all, ss[i].Name(), n)
		}
	}
}

// TestChangedConfigReplacesTheConnections: a resolver's new service config
// with other settings replaces every connection; calls go on through the
// new ones, and the old ones close.
func TestChangedConfigReplacesTheConnections(t *testing.T) {
	ss := startServers(t, 2)
	cc, r := dial(t, ss, ServiceConfig(Config{Size: 2}))
	waitConns(t, ss, 2)
	mustCall(t, cc, 10)
	st := testutil.State(addrsOf(ss)...)
	st.ServiceConfig = r.CC().ParseServiceConfig(ServiceConfig(Config{Size: 3}))
	if st.ServiceConfig.Err != nil {
		t.Fatal(st.ServiceConfig.Err)
	}
	r.UpdateState(st)
	waitConns(t, ss, 3)
	mustCall(t, cc, 10)
	for _, s := range ss {
		if got := s.conns.total.Load(); got != 5 {
			t.Errorf("%s: %d connections made, want 2 then 3 new", s.Name(), got)
		}
	}
	// The same config again changes nothing.
	r.UpdateState(st)
	mustCall(t, cc, 10)
	for _, s := range ss {
		if got := s.conns.total.Load(); got != 5 {
			t.Errorf("%s: %d connections made after the same config again, want still 5", s.Name(), got)
		}
	}
}
