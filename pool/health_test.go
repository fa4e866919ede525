package pool_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/grpcpool/grpcpool/example/echopb"
	"github.com/grpcpool/grpcpool/internal/backend"
	"github.com/grpcpool/grpcpool/internal/testutil"
	"github.com/grpcpool/grpcpool/pool"
	"github.com/grpcpool/grpcpool/server"
)

// hcBackends starts n Echo servers on loopback TCP; those with health[i]
// register the health service (SERVING). A missing entry means true.
func hcBackends(t testing.TB, n int, health ...bool) []*backend.Server {
	t.Helper()
	return testutil.StartBackendsWith(t, n, func(i int) backend.Options {
		return backend.Options{Name: fmt.Sprintf("h%d", i), Health: i >= len(health) || health[i]}
	})
}

// hcPool is a pool over bs that checks health of service, once every
// backend is ready, healthy and reached by calls.
func hcPool(t testing.TB, bs []*backend.Server, service string, opts ...pool.Option) *pool.Pool {
	t.Helper()
	p, _ := testutil.ReadyPool(t, bs, append([]pool.Option{pool.WithHealthCheck(service)}, opts...)...)
	hcWaitHealthy(t, p, len(bs), len(bs))
	polWarm(t, p, len(bs))
	return p
}

// hcWaitHealthy waits until want of the pool's n backends are healthy.
func hcWaitHealthy(t testing.TB, p *pool.Pool, n, want int) {
	t.Helper()
	testutil.WaitFor(t, fmt.Sprintf("%d of %d backends healthy", want, n), func() bool {
		st := p.Stats()
		healthy := 0
		for _, b := range st.Backends {
			if b.Healthy && b.Ready > 0 {
				healthy++
			}
		}
		return len(st.Backends) == n && healthy == want
	})
}

// hcHealthy reports whether the pool sees the backend at addr as healthy.
// transportReady counts b's connections whose transport is READY, serving
// or not (BackendStats.Ready counts only those that take calls).
func transportReady(b pool.BackendStats) int {
	n := 0
	for _, c := range b.Conns {
		if c.State == connectivity.Ready && !c.Draining {
			n++
		}
	}
	return n
}

func hcHealthy(p *pool.Pool, addr string) bool {
	b, ok := testutil.Find(p, addr)
	return ok && b.Healthy
}

// A backend whose health turns NOT_SERVING takes no new calls once the
// pool has heard (within milliseconds on loopback); SERVING brings it
// back. For the server as a whole ("") and for one service.
func TestHealthNotServingTakesNoCalls(t *testing.T) {
	t.Parallel()
	for _, service := range []string{"", echopb.Echo_ServiceDesc.ServiceName} {
		t.Run(fmt.Sprintf("service=%q", service), func(t *testing.T) {
			t.Parallel()
			bs := hcBackends(t, 3)
			p := hcPool(t, bs, service)
			ctx := testutil.Context(t)
			c := echopb.NewEchoClient(p)
			sick := bs[0]

			start := time.Now()
			sick.Health().SetServingStatus(service, healthpb.HealthCheckResponse_NOT_SERVING)
			// Call until the pool reports it unhealthy, noting when the
			// last call reached it.
			var lastHit time.Duration
			// How soon the pool hears it is a timing figure (milliseconds on
			// an idle machine): logged; the wait is bounded by the test's
			// context.
			pace := time.NewTicker(time.Millisecond) // not to hog the CPU
			defer pace.Stop()
			for hcHealthy(p, sick.Addr()) {
				if polCall(t, ctx, c) == sick.Name() {
					lastHit = time.Since(start)
				}
				require.NoError(t, ctx.Err(), "the pool still sees the backend healthy after NOT_SERVING")
				<-pace.C
			}
			learned := time.Since(start)
			t.Logf("NOT_SERVING: pool knew after %v; last call on the backend %v after the change", learned, lastHit)
			// Stats shows a report a moment before calls pick from the
			// snapshot it builds: wait for 6 calls in a row elsewhere
			// (round-robin over 3 would put 2 of them on it).
			for run := 0; run < 6; {
				require.NoError(t, ctx.Err(), "calls still reach the backend after the pool saw NOT_SERVING")
				if polCall(t, ctx, c) == sick.Name() {
					run = 0
				} else {
					run++
				}
			}
			before := polUnaryCounts(bs, nil)
			for range 150 {
				polCall(t, ctx, c)
			}
			got := polUnaryCounts(bs, before)
			require.Falsef(t, got[0] != 0 || got[1]+got[2] != 150, "calls after NOT_SERVING per backend = %v, want [0 75 75]", got)

			start = time.Now()
			sick.Health().SetServingStatus(service, healthpb.HealthCheckResponse_SERVING)
			testutil.WaitFor(t, "the backend healthy again", func() bool { return hcHealthy(p, sick.Addr()) })
			t.Logf("SERVING: pool knew after %v", time.Since(start))
			polWarm(t, p, 3)
			before = polUnaryCounts(bs, nil)
			for range 150 {
				polCall(t, ctx, c)
			}
			if got := polUnaryCounts(bs, before); got[0] < 45 {
				require.Fail(t, fmt.Sprintf("calls after SERVING per backend = %v, want about 50 each", got))
			}
		})
	}
}

// A server without the health service (Unimplemented) is treated as
// serving, next to one that has it.
func TestHealthWithoutHealthServiceIsServing(t *testing.T) {
	t.Parallel()
	bs := hcBackends(t, 2, false, true)
	p := hcPool(t, bs, "")
	ctx := testutil.Context(t)
	c := echopb.NewEchoClient(p)
	before := polUnaryCounts(bs, nil)
	for range 100 {
		polCall(t, ctx, c)
	}
	got := polUnaryCounts(bs, before)
	require.Falsef(t, got[0] != 50 || got[1] != 50, "calls per backend = %v, want [50 50]", got)
	for _, b := range p.Stats().Backends {
		require.Truef(t, b.Healthy, "Stats: %s not healthy", b.Addr)
	}
}

// With every backend not serving, a call fails at once with Unavailable
// and a message that names health checking; a call that asked to wait
// for ready goes through when one backend serves again.
func TestHealthAllNotServingFailsUnavailable(t *testing.T) {
	t.Parallel()
	bs := hcBackends(t, 2)
	p := hcPool(t, bs, "")
	ctx := testutil.Context(t)
	c := echopb.NewEchoClient(p)
	for _, b := range bs {
		b.Health().SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)
	}
	hcWaitHealthy(t, p, 2, 0)
	testutil.WaitFor(t, "calls failing", func() bool {
		_, err := c.Unary(ctx, &echopb.EchoRequest{})
		return err != nil
	})

	// A call that waited would end at its context's deadline with
	// DeadlineExceeded; one that fails at once ends with Unavailable.
	start := time.Now()
	_, err := c.Unary(ctx, &echopb.EchoRequest{})
	t.Logf("the call failed after %v", time.Since(start))
	st := status.Convert(err)
	require.Falsef(t, st.Code() != codes.Unavailable || !strings.Contains(st.Message(), "not serving"), "got %v, want Unavailable naming health (\"not serving\")", err)
	t.Logf("error: %v", err)

	waited := make(chan error, 1)
	go func() {
		_, err := c.Unary(ctx, &echopb.EchoRequest{}, grpc.WaitForReady(true))
		waited <- err
	}()
	bs[1].Health().SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	if err := <-waited; err != nil {
		require.Fail(t, fmt.Sprintf("WaitForReady call after SERVING: %v", err))
	}
	if got := polCall(t, ctx, c); got != bs[1].Name() {
		require.Fail(t, fmt.Sprintf("call went to %s, want the serving %s", got, bs[1].Name()))
	}
}

// A service the server does not know is SERVICE_UNKNOWN, which is not
// serving either.
func TestHealthUnknownServiceIsNotServing(t *testing.T) {
	t.Parallel()
	bs := hcBackends(t, 1)
	r, target := testutil.ManualTarget(testutil.AddrsOf(bs)...)
	p := testutil.NewPool(t, target, pool.WithResolvers(r), pool.WithHealthCheck("no.such.Service"))
	ctx := testutil.Context(t)
	var err error
	testutil.WaitFor(t, "calls failing as not serving", func() bool {
		_, err = echopb.NewEchoClient(p).Unary(ctx, &echopb.EchoRequest{})
		return status.Code(err) == codes.Unavailable && strings.Contains(err.Error(), "not serving")
	})
	if bs[0].Unary() != 0 {
		require.Fail(t, fmt.Sprintf("%d calls reached the backend", bs[0].Unary()))
	}
}

// hcLoad is a paced load of unary calls, counting failures.
type hcLoad struct {
	calls, failed atomic.Int64
	firstErr      atomic.Value
	stop          chan struct{}
	wg            sync.WaitGroup

	mu       sync.Mutex     // guards next and inflight
	next     int64          // sequence number of the next call
	inflight map[int64]bool // calls started and not yet returned
}

// mark returns the sequence number the next call will have.
func (l *hcLoad) mark() int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.next
}

// doneBefore reports whether every call numbered below m has returned.
func (l *hcLoad) doneBefore(m int64) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for id := range l.inflight {
		if id < m {
			return false
		}
	}
	return true
}

// startHCLoad runs workers goroutines, each making one call every period.
func startHCLoad(ctx context.Context, c echopb.EchoClient, workers int, period time.Duration) *hcLoad {
	l := &hcLoad{stop: make(chan struct{}), inflight: map[int64]bool{}}
	for range workers {
		l.wg.Go(func() {
			tick := time.NewTicker(period)
			defer tick.Stop()
			for {
				select {
				case <-l.stop:
					return
				case <-tick.C:
				}
				l.calls.Add(1)
				l.mu.Lock()
				id := l.next
				l.next++
				l.inflight[id] = true
				l.mu.Unlock()
				_, err := c.Unary(ctx, &echopb.EchoRequest{})
				l.mu.Lock()
				delete(l.inflight, id)
				l.mu.Unlock()
				if err != nil {
					l.failed.Add(1)
					l.firstErr.CompareAndSwap(nil, err)
				}
			}
		})
	}
	return l
}

func (l *hcLoad) end() {
	close(l.stop)
	l.wg.Wait()
}

// hcStream is one long-lived Bidi stream of the shutdown test, pinging its
// backend until told to end, then opening a new one.
type hcStream struct {
	first    string // backend of the first stream; set before opened.Done
	pings    atomic.Int64
	endFirst chan struct{}

	mu     sync.Mutex
	second string // backend of the reopened stream
	err    error  // nil while all is well
}

func (s *hcStream) fail(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.err = err
}

// state returns the reopened stream's backend and the error, if any.
func (s *hcStream) state() (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.second, s.err
}

func (s *hcStream) run(ctx context.Context, c echopb.EchoClient, period time.Duration, stop <-chan struct{}, opened *sync.WaitGroup) {
	st, err := c.Bidi(ctx)
	if err == nil {
		err = st.Send(&echopb.EchoRequest{Message: "0"})
	}
	var r *echopb.EchoResponse
	if err == nil {
		r, err = st.Recv()
	}
	if err != nil {
		s.fail(fmt.Errorf("opening: %w", err))
		opened.Done()
		return
	}
	s.first = r.Backend
	opened.Done()
	tick := time.NewTicker(period)
	defer tick.Stop()
	for done := false; !done; {
		select {
		case <-s.endFirst:
			done = true
			continue
		case <-stop:
			done = true
			continue
		case <-tick.C:
		}
		if err := st.Send(&echopb.EchoRequest{Message: "ping"}); err != nil {
			_, err = st.Recv()
			s.fail(fmt.Errorf("Send: %w", err))
			return
		}
		if _, err := st.Recv(); err != nil {
			s.fail(fmt.Errorf("Recv: %w", err))
			return
		}
		s.pings.Add(1)
	}
	// End it the way a client that learned its server is draining does:
	// half-close, and read until the server ends the stream.
	if err := st.CloseSend(); err != nil {
		s.fail(fmt.Errorf("CloseSend: %w", err))
		return
	}
	if _, err := st.Recv(); !errors.Is(err, io.EOF) {
		s.fail(fmt.Errorf("after CloseSend: %v, want io.EOF", err))
		return
	}
	select {
	case <-stop:
		return
	default:
	}
	// Reopen: a new stream goes to a serving backend.
	st2, err := c.Bidi(ctx)
	if err == nil {
		err = st2.Send(&echopb.EchoRequest{Message: "again"})
	}
	if err == nil {
		r, err = st2.Recv()
	}
	if err != nil {
		s.fail(fmt.Errorf("reopening: %w", err))
		return
	}
	s.mu.Lock()
	s.second = r.Backend
	s.mu.Unlock()
	<-stop
	_ = st2.CloseSend()
	_, _ = st2.Recv()
}

// The graceful shutdown recipe end to end: 3 backends with health, a pool
// that checks it, ~1,000 unary calls/s and 100 Bidi streams pinging every
// 100 ms. One backend shuts down with server.GracefulStop (NOT_SERVING,
// wait, GracefulStop). Not one unary call fails; new calls and streams go
// elsewhere from NOT_SERVING on; streams on the stopping backend live on
// through NOT_SERVING and the GOAWAY, and GracefulStop waits for them. The
// test's stream goroutines end them (CloseSend, then io.EOF from the
// server) once the pool's connections to the backend got the GOAWAY, and
// reopen them, on other backends; GracefulStop then returns nil, without
// its hard-stop fallback.
func TestGracefulShutdownWithHealthCheck(t *testing.T) {
	t.Parallel()
	bs := hcBackends(t, 3)
	p := hcPool(t, bs, "")
	ctx := testutil.Context(t)
	c := echopb.NewEchoClient(p)
	stopping := bs[0]

	loadStart := time.Now()
	load := startHCLoad(ctx, c, 10, 10*time.Millisecond) // ~1,000 calls/s
	loadEnded := false
	defer func() {
		if !loadEnded {
			load.end()
		}
	}()

	const nStreams = 100
	streams := make([]*hcStream, nStreams)
	stop := make(chan struct{})
	var opened, running sync.WaitGroup
	opened.Add(nStreams)
	for i := range streams {
		streams[i] = &hcStream{endFirst: make(chan struct{})}
		running.Go(func() { streams[i].run(ctx, c, 100*time.Millisecond, stop, &opened) })
	}
	stopped := false
	defer func() {
		if !stopped {
			close(stop)
			running.Wait()
		}
	}()
	opened.Wait()
	var onStopping []*hcStream
	for i, s := range streams {
		_, err := s.state()
		require.NoErrorf(t, err, "stream %d: %v", i, err)
		if s.first == stopping.Name() {
			onStopping = append(onStopping, s)
		}
	}
	require.False(t, len(onStopping) == 0, "no stream on the backend to stop")
	testutil.WaitFor(t, "load on every backend", func() bool { return stopping.Unary() > 100 && bs[1].Unary() > 100 && bs[2].Unary() > 100 })

	const wait = 500 * time.Millisecond
	start := time.Now()
	shutdown := make(chan error, 1)
	go func() {
		// Bounded by the test's context only: the scenario until the
		// streams end takes well over 10 s beside other work under -race.
		shutdown <- server.GracefulStop(ctx, stopping.GRPC(), stopping.Health(), wait)
	}()

	testutil.WaitFor(t, "the pool to see NOT_SERVING", func() bool { return !hcHealthy(p, stopping.Addr()) })
	learned := time.Since(start)
	// Calls picked before the pool heard may still arrive. The pool
	// publishes the picker without the backend under the lock Stats takes,
	// so calls started from now on pick without it: once the earlier calls
	// have returned, the backend takes no more unary calls.
	mark := load.mark()
	testutil.WaitFor(t, "the calls started before the pool saw NOT_SERVING to return", func() bool { return load.doneBefore(mark) })
	quiet := time.Since(start)
	unaryAt := stopping.Unary()
	// New streams after NOT_SERVING go elsewhere.
	for i, s := range testutil.OpenBidi(t, ctx, c, 20) {
		if err := s.Send(&echopb.EchoRequest{}); err != nil {
			require.Fail(t, fmt.Sprintf("new stream %d: Send: %v", i, err))
		}
		r, err := s.Recv()
		require.NoErrorf(t, err, "new stream %d: Recv: %v", i, err)
		require.Falsef(t, r.Backend == stopping.Name(), "new stream %d opened after NOT_SERVING went to the stopping backend", i)
		_ = s.CloseSend()
	}

	// The GOAWAY: the pool's connections to the backend leave READY.
	testutil.WaitFor(t, "GOAWAY from the stopping backend", func() bool {
		b, ok := testutil.Find(p, stopping.Addr())
		return ok && transportReady(b) == 0
	})
	goaway := time.Since(start)
	require.Falsef(t, goaway < wait, "GOAWAY after %v, before the wait of %v ended", goaway, wait)
	// Its streams are still open and answering; GracefulStop waits.
	base := make([]int64, len(onStopping))
	for i, s := range onStopping {
		base[i] = s.pings.Load()
	}
	testutil.WaitFor(t, "a ping on every stream after the GOAWAY", func() bool {
		for i, s := range onStopping {
			_, err := s.state()
			require.NoErrorf(t, err, "stream %d on the stopping backend failed: %v", i, err)
			if s.pings.Load() <= base[i] {
				return false
			}
		}
		return true
	})
	select {
	case err := <-shutdown:
		require.Fail(t, fmt.Sprintf("GracefulStop returned %v with %d streams open", err, stopping.ActiveStreams()))
	default:
	}
	if n := stopping.ActiveStreams(); n != int64(len(onStopping)) {
		require.Fail(t, fmt.Sprintf("%d streams open on the stopping backend, want %d", n, len(onStopping)))
	}
	got := stopping.Unary()
	require.EqualValuesf(t, unaryAt, got, "%d unary calls reached the stopping backend after it went quiet", got-unaryAt)

	// The clients end their streams; the server ends them; GracefulStop
	// returns.
	ending := time.Now()
	for _, s := range onStopping {
		close(s.endFirst)
	}
	var stopErr error
	select {
	case stopErr = <-shutdown:
	case <-ctx.Done():
		require.Fail(t, "GracefulStop did not return after the streams ended")
	}
	took, afterEnd := time.Since(start), time.Since(ending)
	require.Falsef(t, stopErr != nil, "GracefulStop = %v, want nil (no hard stop)", stopErr)
	testutil.WaitFor(t, "streams reopened", func() bool {
		for _, s := range onStopping {
			if second, err := s.state(); second == "" && err == nil {
				return false
			}
		}
		return true
	})
	// Keep the load on a little longer, on the two backends left.
	other := bs[1].Unary() + bs[2].Unary()
	testutil.WaitFor(t, "load on the rest", func() bool { return bs[1].Unary()+bs[2].Unary() > other+200 })
	load.end()
	loadEnded = true
	elapsed := time.Since(loadStart)
	close(stop)
	running.Wait()
	stopped = true

	for i, s := range streams {
		second, err := s.state()
		require.NoErrorf(t, err, "stream %d (on %s): %v", i, s.first, err)
		require.Falsef(t, s.first == stopping.Name() && second == stopping.Name(), "stream %d reopened on the stopped backend", i)
	}
	t.Logf("%d unary calls at %.0f/s, %d failed; %d of %d streams on the stopping backend, %d pings in all; "+
		"pool saw NOT_SERVING after %v, backend quiet by %v, GOAWAY after %v, GracefulStop returned %v after the streams ended (%v in all, wait %v)",
		load.calls.Load(), float64(load.calls.Load())/elapsed.Seconds(), load.failed.Load(), len(onStopping), nStreams, hcPings(streams),
		learned.Round(time.Microsecond), quiet.Round(time.Millisecond), goaway.Round(time.Millisecond),
		afterEnd.Round(time.Millisecond), took.Round(time.Millisecond), wait)
	if n := load.failed.Load(); n != 0 {
		require.Fail(t, fmt.Sprintf("%d of %d unary calls failed; first: %v", n, load.calls.Load(), load.firstErr.Load()))
	}
}

func hcPings(ss []*hcStream) int64 {
	var n int64
	for _, s := range ss {
		n += s.pings.Load()
	}
	return n
}

// A connection that reconnects, to a new server process on the same
// address, takes calls only once that server has said it is serving: the
// health report of the old process does not carry over.
func TestHealthReconnectNeedsAFreshReport(t *testing.T) {
	t.Parallel()
	// The restarted server listens on the port the first one had, which
	// stays bound in between.
	port := testutil.NewPort(t)
	bs := []*backend.Server{
		testutil.StartBackendOn(t, port, backend.Options{Name: "h0", Health: true}),
		testutil.StartBackend(t, backend.Options{Name: "h1", Health: true}),
	}
	p := hcPool(t, bs, "", pool.WithDialOptions(polFastReconnect))
	ctx := testutil.Context(t)
	c := echopb.NewEchoClient(p)
	addr, name := bs[0].Addr(), bs[0].Name()

	bs[0].Stop() // a crash: no NOT_SERVING first
	testutil.WaitFor(t, "the pool to see the connections break", func() bool {
		b, ok := testutil.Find(p, addr)
		return ok && transportReady(b) == 0
	})
	// The new process is up but not serving yet (warming up).
	restarted := testutil.StartBackendOn(t, port, backend.Options{Name: name, Health: true})
	restarted.Health().SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)

	// Calls, paced so as not to hog the CPU, until the connection has
	// been back for 500 ms.
	var reconnected time.Time
	pace := time.NewTicker(time.Millisecond)
	defer pace.Stop()
	for {
		require.NoError(t, ctx.Err(), "the pool did not reconnect")
		polCall(t, ctx, c)
		if b, ok := testutil.Find(p, addr); ok && transportReady(b) > 0 && reconnected.IsZero() {
			reconnected = time.Now()
		}
		if !reconnected.IsZero() && time.Since(reconnected) > 500*time.Millisecond {
			break
		}
		<-pace.C
	}
	n := restarted.Unary()
	require.Zerof(t, n, "%d calls reached the restarted server while it reported NOT_SERVING", n)
	restarted.Health().SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	testutil.WaitFor(t, "calls on the restarted server", func() bool {
		polCall(t, ctx, c)
		return restarted.Unary() > 0
	})
}

// poolGoroutines counts the goroutines running code of package pool, and
// says in which of its functions they are, innermost first.
func poolGoroutines() (int, map[string]int) {
	buf := make([]byte, 4<<20)
	buf = buf[:runtime.Stack(buf, true)]
	const pkg = "github.com/grpcpool/grpcpool/pool."
	n, where := 0, map[string]int{}
	for _, g := range strings.Split(string(buf), "\n\n") {
		i := strings.Index(g, pkg)
		if i < 0 {
			continue
		}
		n++
		fn, _, _ := strings.Cut(g[i+len(pkg):], "(0x")
		where[fn]++
	}
	return n, where
}

// With health checking, a connection closed while it is not
// READY (its pod went away, then its address was removed) must not leave
// its health-watch goroutine behind: the pool's goroutines track its live
// connections across any number of rolling restarts.
func TestHealthWatchGoroutinesEndWithTheirConnections(t *testing.T) {
	// Not parallel: it counts the process's goroutines.
	stable := testutil.StartBackend(t, backend.Options{Health: true})
	r, target := testutil.ManualTarget(stable.Addr())
	p := testutil.NewPool(t, target, pool.WithResolvers(r), pool.WithSize(2), pool.WithHealthCheck(""))
	ctx := testutil.ContextFor(t, 20*time.Second)
	waitReadyConns(t, ctx, p, stable.Addr(), 2)
	base, baseWhere := poolGoroutines()
	for i := range 4 {
		pod := testutil.StartBackend(t, backend.Options{Health: true})
		r.UpdateState(testutil.State(stable.Addr(), pod.Addr()))
		waitReadyConns(t, ctx, p, pod.Addr(), 2)
		pod.Stop() // the pod goes away...
		for b, ok := testutil.Find(p, pod.Addr()); ok && b.Ready > 0; b, ok = testutil.Find(p, pod.Addr()) {
			require.NoError(t, ctx.Err(), "restart %d: the pod's connections leaving READY", i)
			time.Sleep(5 * time.Millisecond)
		}
		r.UpdateState(testutil.State(stable.Addr())) // ...then its address is removed
		for _, ok := testutil.Find(p, pod.Addr()); ok; _, ok = testutil.Find(p, pod.Addr()) {
			require.NoError(t, ctx.Err(), "restart %d: the removed backend leaving Stats", i)
			time.Sleep(5 * time.Millisecond)
		}
	}
	wait := testutil.ContextFor(t, 3*time.Second)
	for {
		n, where := poolGoroutines()
		if n <= base {
			return
		}
		require.Falsef(t, wait.Err() != nil, "after 4 restarts the pool runs %d goroutines, %d before, for the same live connections: %v (before: %v)", n, base, where, baseWhere)
		time.Sleep(10 * time.Millisecond)
	}
}

// waitReadyConns waits until the backend at addr has n ready connections.
func waitReadyConns(t testing.TB, ctx context.Context, p *pool.Pool, addr string, n int) {
	t.Helper()
	for b, ok := testutil.Find(p, addr); !ok || b.Ready < n || !b.Healthy; b, ok = testutil.Find(p, addr) {
		require.NoError(t, ctx.Err(), "%s with %d ready connections: %+v", addr, n, b)
		time.Sleep(5 * time.Millisecond)
	}
}

// A connection whose health Watch never answers must not
// stay "starting" for ever: the first health report is bounded, and a
// fail-fast call then gets an answer instead of waiting until its deadline
// (ten minutes here): Unavailable with a message about health, or, if the
// pool chooses to treat a silent health service as serving once the bound
// has passed, a success.
func TestHealthWatchThatNeverAnswersIsBounded(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		mute := func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
			if info.FullMethod == "/grpc.health.v1.Health/Watch" {
				<-ss.Context().Done() // never a report
				return ss.Context().Err()
			}
			return h(srv, ss)
		}
		p, _ := bufPool(t, backend.Options{Health: true, ServerOptions: []grpc.ServerOption{grpc.StreamInterceptor(mute)}},
			pool.WithSize(1), pool.WithHealthCheck(""))
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()
		_, err := echoUnary(ctx, echopb.NewEchoClient(p))
		if err != nil {
			require.Equal(t, codes.Unavailable, status.Code(err), "a fail-fast call on a backend whose health never answers: %v", err)
			require.Contains(t, status.Convert(err).Message(), "health")
		}
	})
}
