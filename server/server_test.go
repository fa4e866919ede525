package server_test

import (
	"context"
	"errors"
	"io"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/resolver/manual"
	"google.golang.org/grpc/status"

	"github.com/grpcpool/grpcpool/example/echopb"
	"github.com/grpcpool/grpcpool/internal/backend"
	"github.com/grpcpool/grpcpool/pool"
	"github.com/grpcpool/grpcpool/server"
)

// testTimeout bounds every wait in these tests.
const testTimeout = 10 * time.Second

func listen(t *testing.T, health bool) *backend.Server {
	t.Helper()
	s, err := backend.Listen(backend.Options{Name: "srv", Health: health})
	if err != nil {
		t.Fatalf("Listen: %v", err)
	}
	t.Cleanup(s.Stop)
	return s
}

func dial(t *testing.T, addr string) *grpc.ClientConn {
	t.Helper()
	cc, err := grpc.NewClient("passthrough:///"+addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatalf("NewClient(%q): %v", addr, err)
	}
	t.Cleanup(func() { _ = cc.Close() })
	return cc
}

func testContext(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), testTimeout)
	t.Cleanup(cancel)
	return ctx
}

// stopAsync runs server.GracefulStop in a goroutine; the channel yields its
// result.
func stopAsync(ctx context.Context, s *backend.Server, wait time.Duration) <-chan error {
	done := make(chan error, 1)
	go func() { done <- server.GracefulStop(ctx, s.GRPC(), s.Health(), wait) }()
	return done
}

// openBidi opens a Bidi stream and waits for one echo.
func openBidi(t *testing.T, ctx context.Context, c echopb.EchoClient) grpc.BidiStreamingClient[echopb.EchoRequest, echopb.EchoResponse] {
	t.Helper()
	st, err := c.Bidi(ctx)
	if err != nil {
		t.Fatalf("Bidi: %v", err)
	}
	ping(t, st)
	return st
}

func ping(t *testing.T, st grpc.BidiStreamingClient[echopb.EchoRequest, echopb.EchoResponse]) {
	t.Helper()
	if err := st.Send(&echopb.EchoRequest{Message: "ping"}); err != nil {
		t.Fatalf("Send: %v", err)
	}
	if _, err := st.Recv(); err != nil {
		t.Fatalf("Recv: %v", err)
	}
}

func closeBidi(t *testing.T, st grpc.BidiStreamingClient[echopb.EchoRequest, echopb.EchoResponse]) {
	t.Helper()
	if err := st.CloseSend(); err != nil {
		t.Fatalf("CloseSend: %v", err)
	}
	if _, err := st.Recv(); err != io.EOF {
		t.Fatalf("Recv after CloseSend = %v, want io.EOF", err)
	}
}

// healthPool is a pool over addrs that watches their health, once every
// backend is healthy.
func healthPool(t *testing.T, addrs ...string) *pool.Pool {
	t.Helper()
	r := manual.NewBuilderWithScheme("servertest")
	var rs resolver.State
	for _, a := range addrs {
		rs.Addresses = append(rs.Addresses, resolver.Address{Addr: a})
	}
	r.InitialState(rs)
	p, err := pool.New(r.Scheme()+":///svc.test:50051",
		pool.WithResolvers(r),
		pool.WithDialOptions(grpc.WithTransportCredentials(insecure.NewCredentials())),
		pool.WithHealthCheck(""))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	waitUntil(t, "every backend healthy", func() bool {
		st := p.Stats()
		for _, b := range st.Backends {
			if b.Ready == 0 || !b.Healthy {
				return false
			}
		}
		return len(st.Backends) == len(addrs)
	})
	return p
}

// waitUntil polls cond until it holds, failing the test after testTimeout.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(testTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// The order of the steps: NOT_SERVING at once, serving during the wait,
// then a GracefulStop that waits for the open stream and returns nil when
// it ends.
func TestGracefulStopSteps(t *testing.T) {
	s := listen(t, true)
	ctx := testContext(t)
	cc := dial(t, s.Addr())
	echo := echopb.NewEchoClient(cc)
	st := openBidi(t, ctx, echo)

	wctx, wcancel := context.WithCancel(ctx)
	defer wcancel()
	watch, err := healthpb.NewHealthClient(cc).Watch(wctx, &healthpb.HealthCheckRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if r, err := watch.Recv(); err != nil || r.Status != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("first health report = %v, %v; want SERVING", r, err)
	}

	const wait = 400 * time.Millisecond
	start := time.Now()
	done := stopAsync(ctx, s, wait)

	r, err := watch.Recv()
	if err != nil || r.Status != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Fatalf("health report = %v, %v; want NOT_SERVING", r, err)
	}
	if d := time.Since(start); d >= wait {
		t.Fatalf("NOT_SERVING reported after %v, want before the wait (%v) ends", d, wait)
	}
	t.Logf("NOT_SERVING reached the watcher after %v", time.Since(start))
	// The health server ignores changes from now on.
	s.Health().SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	if r, err := healthpb.NewHealthClient(cc).Check(ctx, &healthpb.HealthCheckRequest{}); err != nil || r.Status != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Fatalf("Check after SetServingStatus(SERVING) = %v, %v; want NOT_SERVING", r, err)
	}
	// A watcher that ends its watch on NOT_SERVING (as a pool does when the
	// connection gets GOAWAY) does not hold the server up.
	wcancel()

	// During the wait everything is served: new unary calls, the stream.
	if _, err := echo.Unary(ctx, &echopb.EchoRequest{}); err != nil {
		t.Fatalf("Unary during the wait: %v", err)
	}
	ping(t, st)

	// After the wait GracefulStop runs and waits for the stream.
	tm := time.NewTimer(wait + 300*time.Millisecond)
	defer tm.Stop()
	select {
	case err := <-done:
		t.Fatalf("GracefulStop returned %v with a stream open", err)
	case <-tm.C:
	}
	ping(t, st) // the stream still works after the GOAWAY
	closeBidi(t, st)
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("GracefulStop = %v, want nil", err)
		}
	case <-ctx.Done():
		t.Fatal("GracefulStop did not return after the last stream ended")
	}
	if d := time.Since(start); d < wait {
		t.Fatalf("GracefulStop returned after %v, before the wait of %v", d, wait)
	}
	cctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	if _, err := echo.Unary(cctx, &echopb.EchoRequest{}); status.Code(err) != codes.Unavailable {
		t.Fatalf("Unary after stop = %v, want Unavailable", err)
	}
}

// A stream its client never ends: when ctx ends, Stop cuts it and
// GracefulStop returns ctx's error.
func TestGracefulStopFallsBackToStop(t *testing.T) {
	s := listen(t, true)
	ctx := testContext(t)
	st := openBidi(t, ctx, echopb.NewEchoClient(dial(t, s.Addr())))

	sctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := server.GracefulStop(sctx, s.GRPC(), s.Health(), 100*time.Millisecond)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("GracefulStop = %v, want context.DeadlineExceeded", err)
	}
	if d := time.Since(start); d < 500*time.Millisecond || d > 3*time.Second {
		t.Fatalf("GracefulStop took %v, want about the context's 500ms", d)
	}
	_, err = st.Recv()
	if code := status.Code(err); code != codes.Unavailable && code != codes.Canceled {
		t.Fatalf("Recv on the cut stream = %v, want Unavailable", err)
	}
	if n := s.ActiveStreams(); n != 0 {
		t.Fatalf("%d streams still open on the server", n)
	}
}

// A context that ends during the wait stops the server at once.
func TestGracefulStopContextEndsDuringWait(t *testing.T) {
	s := listen(t, true)
	ctx, cancel := context.WithTimeout(testContext(t), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := server.GracefulStop(ctx, s.GRPC(), s.Health(), time.Minute)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("GracefulStop = %v, want context.DeadlineExceeded", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("GracefulStop took %v, want about 100ms", d)
	}
	// Stopped: a new client cannot connect.
	cctx, ccancel := context.WithTimeout(testContext(t), time.Second)
	defer ccancel()
	_, err = echopb.NewEchoClient(dial(t, s.Addr())).Unary(cctx, &echopb.EchoRequest{})
	if status.Code(err) != codes.Unavailable {
		t.Fatalf("Unary after stop = %v, want Unavailable", err)
	}
}

func TestGracefulStopEdgeCases(t *testing.T) {
	t.Run("nil server", func(t *testing.T) {
		if err := server.GracefulStop(context.Background(), nil, nil, time.Second); !errors.Is(err, server.ErrNilServer) {
			t.Fatalf("got %v, want ErrNilServer", err)
		}
	})
	t.Run("nil health, no wait, idle", func(t *testing.T) {
		s := listen(t, false)
		start := time.Now()
		if err := server.GracefulStop(testContext(t), s.GRPC(), nil, 0); err != nil {
			t.Fatalf("got %v, want nil", err)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Fatalf("took %v", d)
		}
	})
	t.Run("negative wait", func(t *testing.T) {
		s := listen(t, true)
		if err := server.GracefulStop(testContext(t), s.GRPC(), s.Health(), -time.Hour); err != nil {
			t.Fatalf("got %v, want nil", err)
		}
	})
	t.Run("context already ended", func(t *testing.T) {
		s := listen(t, true)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if err := server.GracefulStop(ctx, s.GRPC(), s.Health(), 0); !errors.Is(err, context.Canceled) {
			t.Fatalf("got %v, want context.Canceled", err)
		}
	})
	t.Run("called twice", func(t *testing.T) {
		s := listen(t, true)
		ctx := testContext(t)
		if err := server.GracefulStop(ctx, s.GRPC(), s.Health(), 0); err != nil {
			t.Fatal(err)
		}
		if err := server.GracefulStop(ctx, s.GRPC(), s.Health(), 0); err != nil {
			t.Fatalf("second call = %v, want nil", err)
		}
	})
}

// A pool that watches health moves its calls away during the wait and
// does not keep the server waiting: not one of its calls fails, and
// GracefulStop returns soon after the wait.
func TestGracefulStopWithAHealthCheckingPool(t *testing.T) {
	a, b := listen(t, true), listen(t, true)
	p := healthPool(t, a.Addr(), b.Addr())
	ctx := testContext(t)
	echo := echopb.NewEchoClient(p)

	var calls, failed atomic.Int64
	var firstErr atomic.Value
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			tick := time.NewTicker(2 * time.Millisecond)
			defer tick.Stop()
			for {
				select {
				case <-stop:
					return
				case <-tick.C:
				}
				calls.Add(1)
				if _, err := echo.Unary(ctx, &echopb.EchoRequest{}); err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err)
				}
			}
		})
	}
	defer func() { close(stop); wg.Wait() }()
	waitUntil(t, "calls on both backends", func() bool { return a.Unary() > 10 && b.Unary() > 10 })

	const wait = 300 * time.Millisecond
	start := time.Now()
	if err := server.GracefulStop(ctx, a.GRPC(), a.Health(), wait); err != nil {
		t.Fatalf("GracefulStop = %v, want nil", err)
	}
	took := time.Since(start)
	t.Logf("GracefulStop took %v with wait %v; %d calls, %d failed", took, wait, calls.Load(), failed.Load())
	if took > wait+2*time.Second {
		t.Fatalf("GracefulStop took %v: the pool's health watch held the server up", took)
	}
	before := b.Unary()
	waitUntil(t, "more calls on the other backend", func() bool { return b.Unary() > before+50 })
	if n := failed.Load(); n != 0 {
		t.Fatalf("%d of %d calls failed; first: %v", n, calls.Load(), firstErr.Load())
	}
}
