package backend_test

import (
	"context"
	"errors"
	"io"
	"math"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/grpcpool/grpcpool/example/echopb"
	"github.com/grpcpool/grpcpool/internal/backend"
	"github.com/grpcpool/grpcpool/internal/testutil"
)

// testTimeout bounds every wait in these tests.
const testTimeout = 10 * time.Second

func dial(t *testing.T, addr string) *grpc.ClientConn {
	t.Helper()
	cc, err := grpc.NewClient("passthrough:///"+addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatalf("NewClient(%q): %v", addr, err)
	}
	t.Cleanup(func() { cc.Close() })
	return cc
}

// callKind runs one RPC of a kind to completion and returns its responses.
type callKind struct {
	name string
	call func(ctx context.Context, c echopb.EchoClient) ([]*echopb.EchoResponse, error)
}

var kinds = []callKind{
	{"Unary", func(ctx context.Context, c echopb.EchoClient) ([]*echopb.EchoResponse, error) {
		r, err := c.Unary(ctx, &echopb.EchoRequest{Message: "hi"})
		if err != nil {
			return nil, err
		}
		return []*echopb.EchoResponse{r}, nil
	}},
	{"ServerStream", func(ctx context.Context, c echopb.EchoClient) ([]*echopb.EchoResponse, error) {
		st, err := c.ServerStream(ctx, &echopb.EchoRequest{Message: "hi", Count: 3})
		if err != nil {
			return nil, err
		}
		var out []*echopb.EchoResponse
		for {
			r, err := st.Recv()
			if errors.Is(err, io.EOF) {
				return out, nil
			}
			if err != nil {
				return out, err
			}
			out = append(out, r)
		}
	}},
	{"ClientStream", func(ctx context.Context, c echopb.EchoClient) ([]*echopb.EchoResponse, error) {
		st, err := c.ClientStream(ctx)
		if err != nil {
			return nil, err
		}
		for _, m := range []string{"a", "b", "c"} {
			if err := st.Send(&echopb.EchoRequest{Message: m}); err != nil {
				break // the real error comes from CloseAndRecv
			}
		}
		r, err := st.CloseAndRecv()
		if err != nil {
			return nil, err
		}
		return []*echopb.EchoResponse{r}, nil
	}},
	{"Bidi", func(ctx context.Context, c echopb.EchoClient) ([]*echopb.EchoResponse, error) {
		st, err := c.Bidi(ctx)
		if err != nil {
			return nil, err
		}
		var out []*echopb.EchoResponse
		for _, m := range []string{"a", "b"} {
			if err := st.Send(&echopb.EchoRequest{Message: m}); err != nil {
				break // the real error comes from Recv
			}
			r, err := st.Recv()
			if err != nil {
				return out, err
			}
			out = append(out, r)
		}
		if err := st.CloseSend(); err != nil {
			return out, err
		}
		if _, err := st.Recv(); !errors.Is(err, io.EOF) {
			return out, err
		}
		return out, nil
	}},
}

func TestModeOK(t *testing.T) {
	s := testutil.StartBackend(t, backend.Options{Name: "b1"})
	c := echopb.NewEchoClient(dial(t, s.Addr()))
	want := map[string][]string{
		"Unary":        {"hi"},
		"ServerStream": {"hi", "hi", "hi"},
		"ClientStream": {"a,b,c"},
		"Bidi":         {"a", "b"},
	}
	for _, k := range kinds {
		t.Run(k.name, func(t *testing.T) {
			rs, err := k.call(testutil.ContextFor(t, testTimeout), c)
			if err != nil {
				t.Fatalf("got error %v, want nil", err)
			}
			if len(rs) != len(want[k.name]) {
				t.Fatalf("got %d responses, want %d", len(rs), len(want[k.name]))
			}
			for i, r := range rs {
				if r.GetMessage() != want[k.name][i] || r.GetBackend() != "b1" {
					t.Errorf("response %d: got (%q, %q), want (%q, %q)", i, r.GetMessage(), r.GetBackend(), want[k.name][i], "b1")
				}
			}
		})
	}
	if got, want := s.Calls(), int64(4); got != want {
		t.Errorf("Calls: got %d, want %d", got, want)
	}
	if got, want := s.Unary(), int64(1); got != want {
		t.Errorf("Unary: got %d, want %d", got, want)
	}
	if got, want := s.Streams(), int64(3); got != want {
		t.Errorf("Streams: got %d, want %d", got, want)
	}
	testutil.WaitFor(t, "ActiveStreams == 0", func() bool { return s.ActiveStreams() == 0 })
	if got, want := s.Mode(), backend.ModeOK; got != want {
		t.Errorf("Mode: got %v, want %v", got, want)
	}
}

func TestServerStreamCount(t *testing.T) {
	s := testutil.StartBackend(t, backend.Options{})
	c := echopb.NewEchoClient(dial(t, s.Addr()))
	for _, count := range []int32{-1, 0, 1, 5} {
		st, err := c.ServerStream(testutil.ContextFor(t, testTimeout), &echopb.EchoRequest{Message: "x", Count: count})
		if err != nil {
			t.Fatalf("ServerStream: %v", err)
		}
		n := int32(0)
		for {
			_, err := st.Recv()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatalf("Recv: %v", err)
			}
			n++
		}
		if want := max(count, 0); n != want {
			t.Errorf("Count %d: got %d responses, want %d", count, n, want)
		}
	}
}

func TestNameDefaultsToAddr(t *testing.T) {
	s := testutil.StartBackend(t, backend.Options{})
	if got, want := s.Name(), s.Addr(); got != want {
		t.Fatalf("Name: got %q, want %q", got, want)
	}
	r, err := echopb.NewEchoClient(dial(t, s.Addr())).Unary(testutil.ContextFor(t, testTimeout), &echopb.EchoRequest{})
	if err != nil {
		t.Fatalf("Unary: %v", err)
	}
	if got, want := r.GetBackend(), s.Addr(); got != want {
		t.Errorf("Backend: got %q, want %q", got, want)
	}
}

func TestModeFail(t *testing.T) {
	s := testutil.StartBackend(t, backend.Options{Name: "b1"})
	c := echopb.NewEchoClient(dial(t, s.Addr()))
	for _, code := range []codes.Code{codes.Unavailable, codes.Internal, codes.InvalidArgument} {
		s.SetFail(code)
		if got, want := s.Mode(), backend.ModeFail; got != want {
			t.Fatalf("Mode: got %v, want %v", got, want)
		}
		for _, k := range kinds {
			t.Run(code.String()+"/"+k.name, func(t *testing.T) {
				rs, err := k.call(testutil.ContextFor(t, testTimeout), c)
				if got := status.Code(err); got != code {
					t.Fatalf("got code %v (%v), want %v", got, err, code)
				}
				if len(rs) != 0 {
					t.Errorf("got %d responses, want 0: streams fail at start", len(rs))
				}
			})
		}
	}
	if got, want := s.Calls(), int64(12); got != want {
		t.Errorf("Calls: got %d, want %d (failed calls count)", got, want)
	}
	s.SetFail(codes.OK)
	if got, want := s.Mode(), backend.ModeOK; got != want {
		t.Errorf("SetFail(OK): Mode got %v, want %v", got, want)
	}
	if _, err := c.Unary(testutil.ContextFor(t, testTimeout), &echopb.EchoRequest{}); err != nil {
		t.Errorf("after SetFail(OK): got %v, want nil", err)
	}
}

func TestModeFailOpenStream(t *testing.T) {
	s := testutil.StartBackend(t, backend.Options{})
	c := echopb.NewEchoClient(dial(t, s.Addr()))
	st, err := c.Bidi(testutil.ContextFor(t, testTimeout))
	if err != nil {
		t.Fatalf("Bidi: %v", err)
	}
	if err := st.Send(&echopb.EchoRequest{Message: "a"}); err != nil {
		t.Fatalf("Send: %v", err)
	}
	if _, err := st.Recv(); err != nil {
		t.Fatalf("Recv: %v", err)
	}
	s.SetFail(codes.Unavailable)
	if err := st.Send(&echopb.EchoRequest{Message: "b"}); err != nil {
		t.Fatalf("Send: %v", err)
	}
	if _, err := st.Recv(); status.Code(err) != codes.Unavailable {
		t.Fatalf("Recv after SetFail: got %v, want code %v", err, codes.Unavailable)
	}
}

func TestModeBlackHole(t *testing.T) {
	s := testutil.StartBackend(t, backend.Options{})
	c := echopb.NewEchoClient(dial(t, s.Addr()))
	// Connect first, so that the short deadlines below run out on the
	// server and not while dialing.
	if _, err := c.Unary(testutil.ContextFor(t, testTimeout), &echopb.EchoRequest{}); err != nil {
		t.Fatalf("Unary: %v", err)
	}
	s.SetBlackHole()
	if got, want := s.Mode(), backend.ModeBlackHole; got != want {
		t.Fatalf("Mode: got %v, want %v", got, want)
	}
	for _, k := range kinds {
		t.Run(k.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
			defer cancel()
			if _, err := k.call(ctx, c); status.Code(err) != codes.DeadlineExceeded {
				t.Fatalf("got %v, want code %v", err, codes.DeadlineExceeded)
			}
		})
	}
	if got, want := s.Calls(), int64(5); got != want {
		t.Errorf("Calls: got %d, want %d", got, want)
	}
	testutil.WaitFor(t, "ActiveStreams == 0", func() bool { return s.ActiveStreams() == 0 })

	// A black-holed stream stays open on the server until the client gives up.
	ctx, cancel := context.WithCancel(testutil.ContextFor(t, testTimeout))
	if _, err := c.Bidi(ctx); err != nil {
		t.Fatalf("Bidi: %v", err)
	}
	testutil.WaitFor(t, "ActiveStreams == 1", func() bool { return s.ActiveStreams() == 1 })
	cancel()
	testutil.WaitFor(t, "ActiveStreams == 0", func() bool { return s.ActiveStreams() == 0 })

	s.SetOK()
	if _, err := c.Unary(testutil.ContextFor(t, testTimeout), &echopb.EchoRequest{}); err != nil {
		t.Errorf("after SetOK: got %v, want nil", err)
	}
}

func TestModeDelay(t *testing.T) {
	const d = 100 * time.Millisecond
	s := testutil.StartBackend(t, backend.Options{})
	c := echopb.NewEchoClient(dial(t, s.Addr()))
	s.SetDelay(d)
	if got, want := s.Mode(), backend.ModeDelay; got != want {
		t.Fatalf("Mode: got %v, want %v", got, want)
	}
	for _, k := range kinds {
		t.Run(k.name, func(t *testing.T) {
			start := time.Now()
			if _, err := k.call(testutil.ContextFor(t, testTimeout), c); err != nil {
				t.Fatalf("got %v, want nil", err)
			}
			if got := time.Since(start); got < d {
				t.Errorf("took %v, want at least %v", got, d)
			}
		})
	}
	ctx, cancel := context.WithTimeout(t.Context(), d/4)
	defer cancel()
	if _, err := c.Unary(ctx, &echopb.EchoRequest{}); status.Code(err) != codes.DeadlineExceeded {
		t.Errorf("deadline below delay: got %v, want code %v", err, codes.DeadlineExceeded)
	}
	s.SetDelay(0)
	if got, want := s.Mode(), backend.ModeOK; got != want {
		t.Errorf("SetDelay(0): Mode got %v, want %v", got, want)
	}
}

func TestActiveStreamsAllKinds(t *testing.T) {
	s := testutil.StartBackend(t, backend.Options{})
	c := echopb.NewEchoClient(dial(t, s.Addr()))
	ctx, cancel := context.WithCancel(testutil.ContextFor(t, testTimeout))
	defer cancel()
	if _, err := c.Bidi(ctx); err != nil {
		t.Fatalf("Bidi: %v", err)
	}
	if _, err := c.ClientStream(ctx); err != nil {
		t.Fatalf("ClientStream: %v", err)
	}
	testutil.WaitFor(t, "ActiveStreams == 2", func() bool { return s.ActiveStreams() == 2 })
	s.SetDelay(time.Hour) // holds the server stream before its first response
	if _, err := c.ServerStream(ctx, &echopb.EchoRequest{Count: 1}); err != nil {
		t.Fatalf("ServerStream: %v", err)
	}
	testutil.WaitFor(t, "ActiveStreams == 3", func() bool { return s.ActiveStreams() == 3 })
	cancel()
	testutil.WaitFor(t, "ActiveStreams == 0", func() bool { return s.ActiveStreams() == 0 })
	if got, want := s.Streams(), int64(3); got != want {
		t.Errorf("Streams: got %d, want %d", got, want)
	}
}

func TestHealth(t *testing.T) {
	t.Run("on", func(t *testing.T) {
		s := testutil.StartBackend(t, backend.Options{Health: true})
		if s.Health() == nil {
			t.Fatal("Health: got nil, want a server")
		}
		h := healthpb.NewHealthClient(dial(t, s.Addr()))
		for _, svc := range []string{"", echopb.Echo_ServiceDesc.ServiceName} {
			r, err := h.Check(testutil.ContextFor(t, testTimeout), &healthpb.HealthCheckRequest{Service: svc})
			if err != nil {
				t.Fatalf("Check(%q): %v", svc, err)
			}
			if got, want := r.GetStatus(), healthpb.HealthCheckResponse_SERVING; got != want {
				t.Errorf("Check(%q): got %v, want %v", svc, got, want)
			}
		}
		s.Health().SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)
		r, err := h.Check(testutil.ContextFor(t, testTimeout), &healthpb.HealthCheckRequest{})
		if err != nil {
			t.Fatalf("Check: %v", err)
		}
		if got, want := r.GetStatus(), healthpb.HealthCheckResponse_NOT_SERVING; got != want {
			t.Errorf("after SetServingStatus: got %v, want %v", got, want)
		}
		if got := s.Calls(); got != 0 {
			t.Errorf("Calls: got %d, want 0 (health checks are not counted)", got)
		}
	})
	t.Run("off", func(t *testing.T) {
		s := testutil.StartBackend(t, backend.Options{})
		if s.Health() != nil {
			t.Fatal("Health: got a server, want nil")
		}
		_, err := healthpb.NewHealthClient(dial(t, s.Addr())).Check(testutil.ContextFor(t, testTimeout), &healthpb.HealthCheckRequest{})
		if got, want := status.Code(err), codes.Unimplemented; got != want {
			t.Errorf("Check: got %v, want code %v", err, want)
		}
	})
}

func TestStop(t *testing.T) {
	s := testutil.StartBackend(t, backend.Options{})
	c := echopb.NewEchoClient(dial(t, s.Addr()))
	ctx, cancel := context.WithCancel(testutil.ContextFor(t, testTimeout))
	defer cancel()
	st, err := c.Bidi(ctx)
	if err != nil {
		t.Fatalf("Bidi: %v", err)
	}
	testutil.WaitFor(t, "ActiveStreams == 1", func() bool { return s.ActiveStreams() == 1 })
	s.Stop()
	s.Stop()
	s.GracefulStop()
	if _, err := st.Recv(); status.Code(err) != codes.Unavailable {
		t.Errorf("open stream after Stop: got %v, want code %v", err, codes.Unavailable)
	}
	if got := s.ActiveStreams(); got != 0 {
		t.Errorf("ActiveStreams after Stop: got %d, want 0", got)
	}
	if _, err := c.Unary(testutil.ContextFor(t, testTimeout), &echopb.EchoRequest{}); status.Code(err) != codes.Unavailable {
		t.Errorf("Unary after Stop: got %v, want code %v", err, codes.Unavailable)
	}
}

func TestGracefulStopWaitsForStreams(t *testing.T) {
	s := testutil.StartBackend(t, backend.Options{Health: true})
	c := echopb.NewEchoClient(dial(t, s.Addr()))
	st, err := c.Bidi(testutil.ContextFor(t, testTimeout))
	if err != nil {
		t.Fatalf("Bidi: %v", err)
	}
	if err := st.Send(&echopb.EchoRequest{Message: "a"}); err != nil {
		t.Fatalf("Send: %v", err)
	}
	if _, err := st.Recv(); err != nil {
		t.Fatalf("Recv: %v", err)
	}
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		s.GracefulStop()
	}()
	// The open stream is still served while the server drains.
	if err := st.Send(&echopb.EchoRequest{Message: "b"}); err != nil {
		t.Fatalf("Send while draining: %v", err)
	}
	r, err := st.Recv()
	if err != nil {
		t.Fatalf("Recv while draining: %v", err)
	}
	if got, want := r.GetMessage(), "b"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	if err := st.CloseSend(); err != nil {
		t.Fatalf("CloseSend: %v", err)
	}
	if _, err := st.Recv(); !errors.Is(err, io.EOF) {
		t.Fatalf("Recv after CloseSend: got %v, want io.EOF", err)
	}
	select {
	case <-stopped:
	case <-testutil.ContextFor(t, testTimeout).Done():
		t.Fatal("GracefulStop did not return after the last stream ended")
	}
	if _, err := c.Unary(testutil.ContextFor(t, testTimeout), &echopb.EchoRequest{}); err == nil {
		t.Error("Unary after GracefulStop: got nil error")
	}
}

func TestGracefulStopTimeout(t *testing.T) {
	s := testutil.StartBackend(t, backend.Options{})
	c := echopb.NewEchoClient(dial(t, s.Addr()))
	s.SetBlackHole()
	errc := make(chan error, 1)
	go func() {
		// No deadline: only the hard stop ends this call.
		_, err := c.Unary(context.Background(), &echopb.EchoRequest{})
		errc <- err
	}()
	testutil.WaitFor(t, "Calls == 1", func() bool { return s.Calls() == 1 })
	s.GracefulStopTimeout(50 * time.Millisecond)
	select {
	case err := <-errc:
		if err == nil {
			t.Error("black-holed call: got nil error after hard stop")
		}
	case <-testutil.ContextFor(t, testTimeout).Done():
		t.Fatal("black-holed call did not end after GracefulStopTimeout")
	}
}

func TestConcurrentModeChanges(t *testing.T) {
	s := testutil.StartBackend(t, backend.Options{})
	c := echopb.NewEchoClient(dial(t, s.Addr()))
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := range 200 {
			switch i % 4 {
			case 0:
				s.SetOK()
			case 1:
				s.SetFail(codes.Unavailable)
			case 2:
				s.SetDelay(time.Millisecond)
			case 3:
				s.SetBlackHole()
			}
			_ = s.Mode()
		}
		s.SetOK()
	})
	for range 4 {
		wg.Go(func() {
			for range 25 {
				ctx, cancel := context.WithTimeout(t.Context(), 20*time.Millisecond)
				_, _ = c.Unary(ctx, &echopb.EchoRequest{})
				cancel()
				_ = s.Calls() + s.Unary() + s.ActiveStreams()
			}
		})
	}
	wg.Wait()
	// A call can time out before it reaches the server, so only an upper
	// bound holds.
	if got, limit := s.Calls(), int64(100); got > limit {
		t.Errorf("Calls: got %d, want at most %d", got, limit)
	}
}

func TestMaxOverMean(t *testing.T) {
	inf := math.Inf(1)
	tests := []struct {
		counts []int64
		want   float64
	}{
		{nil, inf},
		{[]int64{0, 0, 0}, inf},
		{[]int64{5}, 1},
		{[]int64{10, 10, 10}, 1},
		{[]int64{30, 0, 0}, 3},
		{[]int64{20, 10, 0}, 2},
		{[]int64{15, 10, 5}, 1.5},
	}
	for _, tt := range tests {
		if got := backend.MaxOverMean(tt.counts); got != tt.want {
			t.Errorf("MaxOverMean(%v): got %v, want %v", tt.counts, got, tt.want)
		}
	}
}

func TestModeString(t *testing.T) {
	tests := []struct {
		m    backend.Mode
		want string
	}{
		{backend.ModeOK, "ModeOK"},
		{backend.ModeFail, "ModeFail"},
		{backend.ModeBlackHole, "ModeBlackHole"},
		{backend.ModeDelay, "ModeDelay"},
		{backend.Mode(9), "Mode(9)"},
	}
	for _, tt := range tests {
		if got := tt.m.String(); got != tt.want {
			t.Errorf("Mode(%d).String(): got %q, want %q", int(tt.m), got, tt.want)
		}
	}
}
