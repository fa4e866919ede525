package grpcpool_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/grpcpool/grpcpool/internal/testmain"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/resolver/manual"
	"google.golang.org/grpc/stats"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"

	"github.com/grpcpool/grpcpool/example/echopb"
	"github.com/grpcpool/grpcpool/internal/testutil"
	"github.com/grpcpool/grpcpool/pool"
)

func TestMain(m *testing.M) {
	testmain.Run(m)
}

// echoServer answers the Echo service and reflects what a call carried:
// its metadata (as header and trailer), its deadline, and a requested
// status code.
type echoServer struct {
	echopb.UnimplementedEchoServer
	name string
}

const (
	failKey     = "x-fail-code"
	deadlineKey = "x-deadline-ms"
)

func (e *echoServer) reflect(ctx context.Context) error {
	md, _ := metadata.FromIncomingContext(ctx)
	out := metadata.MD{}
	for k, v := range md {
		if len(k) > 2 && k[:2] == "x-" {
			out[k] = v
		}
	}
	if dl, ok := ctx.Deadline(); ok {
		out.Set(deadlineKey, fmt.Sprint(time.Until(dl).Milliseconds()))
	}
	if err := grpc.SendHeader(ctx, out); err != nil {
		return err
	}
	grpc.SetTrailer(ctx, metadata.Pairs("x-backend", e.name))
	if v := md.Get(failKey); len(v) > 0 {
		var c int
		fmt.Sscan(v[0], &c)
		return status.Error(codes.Code(c), "requested failure")
	}
	return nil
}

func (e *echoServer) Unary(ctx context.Context, r *echopb.EchoRequest) (*echopb.EchoResponse, error) {
	if err := e.reflect(ctx); err != nil {
		return nil, err
	}
	return &echopb.EchoResponse{Message: r.Message, Backend: e.name}, nil
}

func (e *echoServer) ServerStream(r *echopb.EchoRequest, s grpc.ServerStreamingServer[echopb.EchoResponse]) error {
	if err := e.reflect(s.Context()); err != nil {
		return err
	}
	for i := range r.Count {
		if err := s.Send(&echopb.EchoResponse{Message: fmt.Sprint(r.Message, i), Backend: e.name}); err != nil {
			return err
		}
	}
	return nil
}

func (e *echoServer) ClientStream(s grpc.ClientStreamingServer[echopb.EchoRequest, echopb.EchoResponse]) error {
	if err := e.reflect(s.Context()); err != nil {
		return err
	}
	n := 0
	for {
		if _, err := s.Recv(); err == io.EOF {
			return s.SendAndClose(&echopb.EchoResponse{Message: fmt.Sprint(n), Backend: e.name})
		} else if err != nil {
			return err
		}
		n++
	}
}

func (e *echoServer) Bidi(s grpc.BidiStreamingServer[echopb.EchoRequest, echopb.EchoResponse]) error {
	if err := e.reflect(s.Context()); err != nil {
		return err
	}
	for {
		r, err := s.Recv()
		if err == io.EOF {
			return nil
		} else if err != nil {
			return err
		}
		if err := s.Send(&echopb.EchoResponse{Message: r.Message, Backend: e.name}); err != nil {
			return err
		}
	}
}

// fleet is a set of Echo servers on bufconn listeners, named b0, b1, ...,
// reached through a manual resolver.
type fleet struct {
	mu   sync.Mutex
	lis  map[string]*bufconn.Listener
	r    *manual.Resolver
	srvs []*grpc.Server
}

func newFleet(t *testing.T, n int) *fleet {
	t.Helper()
	f := &fleet{lis: map[string]*bufconn.Listener{}}
	f.r = testutil.NewScheme("fleet")
	var addrs []resolver.Address
	for i := range n {
		name := fmt.Sprintf("b%d", i)
		l := bufconn.Listen(1 << 20)
		s := grpc.NewServer()
		echopb.RegisterEchoServer(s, &echoServer{name: name})
		go func() { _ = s.Serve(l) }()
		t.Cleanup(s.Stop)
		f.lis[name] = l
		f.srvs = append(f.srvs, s)
		addrs = append(addrs, resolver.Address{Addr: name})
	}
	f.r.InitialState(resolver.State{Addresses: addrs})
	return f
}

func (f *fleet) dial(ctx context.Context, addr string) (net.Conn, error) {
	f.mu.Lock()
	l := f.lis[addr]
	f.mu.Unlock()
	if l == nil {
		return nil, fmt.Errorf("no backend %q", addr)
	}
	return l.DialContext(ctx)
}

func (f *fleet) pool(t *testing.T, opts ...pool.Option) *pool.Pool {
	t.Helper()
	opts = append([]pool.Option{
		pool.WithResolvers(f.r),
		pool.WithDialOptions(
			testutil.Insecure,
			grpc.WithContextDialer(f.dial),
		),
	}, opts...)
	p, err := pool.New(f.r.Scheme()+":///echo.test", opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := p.WaitForReady(ctx); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestAllFourKindsOfCall(t *testing.T) {
	p := newFleet(t, 3).pool(t)
	c := echopb.NewEchoClient(p)
	ctx := testutil.Context(t)

	r, err := c.Unary(ctx, &echopb.EchoRequest{Message: "u"})
	if err != nil || r.Message != "u" {
		t.Fatalf("Unary = %v, %v", r, err)
	}

	ss, err := c.ServerStream(ctx, &echopb.EchoRequest{Message: "s", Count: 3})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for {
		m, err := ss.Recv()
		if err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		got = append(got, m.Message)
	}
	if fmt.Sprint(got) != "[s0 s1 s2]" {
		t.Fatalf("ServerStream got %v, want [s0 s1 s2]", got)
	}

	cs, err := c.ClientStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for range 4 {
		if err := cs.Send(&echopb.EchoRequest{}); err != nil {
			t.Fatal(err)
		}
	}
	if r, err := cs.CloseAndRecv(); err != nil || r.Message != "4" {
		t.Fatalf("ClientStream = %v, %v, want 4", r, err)
	}

	bs, err := c.Bidi(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if err := bs.Send(&echopb.EchoRequest{Message: fmt.Sprint(i)}); err != nil {
			t.Fatal(err)
		}
		if m, err := bs.Recv(); err != nil || m.Message != fmt.Sprint(i) {
			t.Fatalf("Bidi echo %d = %v, %v", i, m, err)
		}
	}
	_ = bs.CloseSend()
	if _, err := bs.Recv(); err != io.EOF {
		t.Fatalf("Bidi end = %v, want io.EOF", err)
	}
}

func TestMetadataDeadlinesAndStatusPassThrough(t *testing.T) {
	p := newFleet(t, 2).pool(t)
	c := echopb.NewEchoClient(p)
	ctx, cancel := context.WithTimeout(testutil.Context(t), 5*time.Second)
	defer cancel()
	ctx = metadata.AppendToOutgoingContext(ctx, "x-user", "alice", "x-trace", "t1")

	var header, trailer metadata.MD
	if _, err := c.Unary(ctx, &echopb.EchoRequest{}, grpc.Header(&header), grpc.Trailer(&trailer)); err != nil {
		t.Fatal(err)
	}
	if got := header.Get("x-user"); len(got) != 1 || got[0] != "alice" {
		t.Fatalf("header x-user = %v, want [alice]", got)
	}
	var ms int
	fmt.Sscan(header.Get(deadlineKey)[0], &ms)
	if ms <= 4000 || ms > 5000 {
		t.Fatalf("server saw a deadline %d ms away, want about 5000", ms)
	}
	if len(trailer.Get("x-backend")) != 1 {
		t.Fatalf("trailer = %v, want x-backend", trailer)
	}

	// Stream metadata both ways.
	s, err := c.Bidi(ctx)
	if err != nil {
		t.Fatal(err)
	}
	h, err := s.Header()
	if err != nil || h.Get("x-trace")[0] != "t1" {
		t.Fatalf("stream header = %v, %v", h, err)
	}
	_ = s.CloseSend()
	_, _ = s.Recv()
	if len(s.Trailer().Get("x-backend")) != 1 {
		t.Fatalf("stream trailer = %v", s.Trailer())
	}

	// Every status code comes back unchanged, for unary calls and streams.
	for code := codes.Canceled; code <= codes.Unauthenticated; code++ {
		fctx := metadata.AppendToOutgoingContext(ctx, failKey, fmt.Sprint(int(code)))
		_, err := c.Unary(fctx, &echopb.EchoRequest{})
		if st := status.Convert(err); st.Code() != code || st.Message() != "requested failure" {
			t.Fatalf("Unary failing with %v came back as %v", code, err)
		}
		ss, err := c.ServerStream(fctx, &echopb.EchoRequest{Count: 1})
		if err == nil {
			_, err = ss.Recv()
		}
		if status.Code(err) != code {
			t.Fatalf("ServerStream failing with %v came back as %v", code, err)
		}
	}

	// The caller's deadline is the call's deadline.
	short, cancel2 := context.WithTimeout(ctx, time.Nanosecond)
	defer cancel2()
	time.Sleep(time.Millisecond)
	if _, err := c.Unary(short, &echopb.EchoRequest{}); status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("Unary past its deadline = %v, want DeadlineExceeded", err)
	}
}

// countingHandler is a stats.Handler that counts RPCs.
type countingHandler struct{ begins atomic.Int64 }

func (h *countingHandler) TagRPC(ctx context.Context, _ *stats.RPCTagInfo) context.Context {
	return ctx
}
func (h *countingHandler) HandleRPC(_ context.Context, s stats.RPCStats) {
	if _, ok := s.(*stats.Begin); ok {
		h.begins.Add(1)
	}
}
func (h *countingHandler) TagConn(ctx context.Context, _ *stats.ConnTagInfo) context.Context {
	return ctx
}
func (h *countingHandler) HandleConn(context.Context, stats.ConnStats) {}

func TestInterceptorsAndStatsHandlersRun(t *testing.T) {
	f := newFleet(t, 2)
	var unary, stream atomic.Int64
	h := &countingHandler{}
	p := f.pool(t, pool.WithDialOptions(
		grpc.WithChainUnaryInterceptor(func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
			unary.Add(1)
			return invoker(ctx, method, req, reply, cc, opts...)
		}),
		grpc.WithChainStreamInterceptor(func(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
			stream.Add(1)
			return streamer(ctx, desc, cc, method, opts...)
		}),
		grpc.WithStatsHandler(h),
	))
	c := echopb.NewEchoClient(p)
	ctx := testutil.Context(t)
	for range 5 {
		if _, err := c.Unary(ctx, &echopb.EchoRequest{}); err != nil {
			t.Fatal(err)
		}
	}
	s, err := c.ServerStream(ctx, &echopb.EchoRequest{Count: 1})
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := s.Recv(); err != nil {
			break
		}
	}
	if unary.Load() != 5 || stream.Load() != 1 || h.begins.Load() != 6 {
		t.Fatalf("unary, stream interceptors, stats begins = %d, %d, %d, want 5, 1, 6", unary.Load(), stream.Load(), h.begins.Load())
	}
}

// 64 goroutines make every kind of call while the resolver keeps changing
// the address set; run with -race. Calls may fail only while no address is
// resolved, and never with anything but Unavailable.
func TestConcurrentCallsWhileAddressesChange(t *testing.T) {
	f := newFleet(t, 4)
	p := f.pool(t, pool.WithSize(2), pool.WithPolicy(pool.LeastActive))
	c := echopb.NewEchoClient(p)
	end := time.Now().Add(3 * time.Second)
	ctx := testutil.Context(t) // per call; the load stops by the clock, never by cutting calls

	var calls, bad atomic.Int64
	var firstBad atomic.Value
	var wg sync.WaitGroup
	for g := range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(end) {
				var err error
				switch g % 4 {
				case 0:
					_, err = c.Unary(ctx, &echopb.EchoRequest{Message: "x"}, grpc.WaitForReady(true))
				case 1:
					var s grpc.ServerStreamingClient[echopb.EchoResponse]
					if s, err = c.ServerStream(ctx, &echopb.EchoRequest{Count: 2}, grpc.WaitForReady(true)); err == nil {
						for err == nil {
							_, err = s.Recv()
						}
						if err == io.EOF {
							err = nil
						}
					}
				case 2:
					var s grpc.ClientStreamingClient[echopb.EchoRequest, echopb.EchoResponse]
					if s, err = c.ClientStream(ctx, grpc.WaitForReady(true)); err == nil {
						_ = s.Send(&echopb.EchoRequest{})
						_, err = s.CloseAndRecv()
					}
				case 3:
					var s grpc.BidiStreamingClient[echopb.EchoRequest, echopb.EchoResponse]
					if s, err = c.Bidi(ctx, grpc.WaitForReady(true)); err == nil {
						_ = s.Send(&echopb.EchoRequest{})
						if _, err = s.Recv(); err == nil {
							_ = s.CloseSend()
							_, err = s.Recv()
							if err == io.EOF {
								err = nil
							}
						}
					}
				}
				calls.Add(1)
				if err != nil {
					bad.Add(1)
					firstBad.CompareAndSwap(nil, err.Error())
				}
			}
		}()
	}
	// Change the address set all the while: every backend stays resolved in
	// at least one of each pair of updates, so removed ones drain.
	all := []string{"b0", "b1", "b2", "b3"}
	for time.Now().Before(end) {
		k := 1 + rand.IntN(len(all))
		perm := rand.Perm(len(all))[:k]
		var addrs []resolver.Address
		for _, i := range perm {
			addrs = append(addrs, resolver.Address{Addr: all[i]})
		}
		f.r.UpdateState(resolver.State{Addresses: addrs})
		time.Sleep(20 * time.Millisecond)
	}
	wg.Wait()
	t.Logf("%d calls, %d failed", calls.Load(), bad.Load())
	if bad.Load() > 0 {
		t.Fatalf("%d of %d calls failed while addresses changed; first: %v", bad.Load(), calls.Load(), firstBad.Load())
	}
	if calls.Load() < 640 {
		t.Fatalf("only %d calls completed", calls.Load())
	}
	f.r.UpdateState(resolver.State{Addresses: []resolver.Address{{Addr: "b0"}}})
	waitCtx, cancel2 := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel2()
	for {
		var active int64
		for _, b := range p.Stats().Backends {
			active += b.Active()
		}
		if active == 0 {
			break
		}
		if waitCtx.Err() != nil {
			t.Fatalf("%d calls still counted active after all ended", active)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := p.Close(); err != nil && !errors.Is(err, context.Canceled) {
		t.Fatalf("Close: %v", err)
	}
}
