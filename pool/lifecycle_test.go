package pool_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/status"

	"github.com/grpcpool/grpcpool/example/echopb"
	"github.com/grpcpool/grpcpool/internal/backend"
	"github.com/grpcpool/grpcpool/internal/testutil"
	"github.com/grpcpool/grpcpool/keepalive"
	"github.com/grpcpool/grpcpool/pool"
)

// pollResolver reports its current addresses only when asked to resolve:
// like DNS, nothing is pushed.
type pollResolver struct {
	scheme   string
	mu       sync.Mutex
	addrs    []string
	cc       resolver.ClientConn
	resolves atomic.Int64
}

func (r *pollResolver) Scheme() string { return r.scheme }

func (r *pollResolver) Build(_ resolver.Target, cc resolver.ClientConn, _ resolver.BuildOptions) (resolver.Resolver, error) {
	r.mu.Lock()
	r.cc = cc
	r.mu.Unlock()
	r.ResolveNow(resolver.ResolveNowOptions{})
	return r, nil
}

func (r *pollResolver) ResolveNow(resolver.ResolveNowOptions) {
	r.resolves.Add(1)
	r.mu.Lock()
	defer r.mu.Unlock()
	_ = r.cc.UpdateState(resolver.State{Addresses: testutil.Addrs(r.addrs...)})
}

func (r *pollResolver) set(addrs ...string) {
	r.mu.Lock()
	r.addrs = addrs
	r.mu.Unlock()
}

func (r *pollResolver) Close() {}

func TestResolveIntervalFollowsAPollingResolver(t *testing.T) {
	t.Parallel()
	bs := testutil.StartBackends(t, 3)
	r := &pollResolver{scheme: "poll", addrs: []string{bs[0].Addr()}}
	p := testutil.NewPool(t, "poll:///svc", pool.WithResolvers(r), pool.WithResolveInterval(100*time.Millisecond))
	ctx := testutil.Context(t)
	require.NoError(t, p.WaitForReady(ctx))
	r.set(testutil.AddrsOf(bs)...) // nothing is pushed: the pool must ask
	testutil.WaitFor(t, "3 backends ready", func() bool {
		n := 0
		for _, b := range p.Stats().Backends {
			if b.Ready > 0 {
				n++
			}
		}
		return n == 3
	})
	client := echopb.NewEchoClient(p)
	for range 30 {
		_, err := client.Unary(ctx, &echopb.EchoRequest{})
		require.NoError(t, err)
	}
	for _, b := range bs[1:] {
		if b.Unary() == 0 {
			require.Fail(t, fmt.Sprintf("added backend %s got no calls", b.Name()))
		}
	}
	if n := r.resolves.Load(); n < 2 {
		require.Fail(t, fmt.Sprintf("resolver asked %d times, want periodic re-resolution", n))
	}
}

func TestRemovedAddressDrainsWithoutFailures(t *testing.T) {
	t.Parallel()
	bs := testutil.StartBackends(t, 3)
	p, r := testutil.ReadyPool(t, bs)
	ctx := testutil.Context(t)
	client := echopb.NewEchoClient(p)
	streams := testutil.OpenBidi(t, ctx, client, 6) // 2 per backend
	before := bs[2].Calls()

	r.UpdateState(resolver.State{Addresses: testutil.Addrs(bs[0].Addr(), bs[1].Addr())})
	testutil.WaitFor(t, "b2 draining", func() bool {
		for _, b := range p.Stats().Backends {
			if b.Addr == bs[2].Addr() {
				return b.Removed && b.Draining > 0
			}
		}
		return false
	})
	// New calls go to the others only.
	for range 20 {
		_, err := client.Unary(ctx, &echopb.EchoRequest{})
		require.NoErrorf(t, err, "Unary while draining: %v", err)
	}
	got := bs[2].Calls()
	require.EqualValuesf(t, before, got, "removed backend got %d new calls", got-before)
	// Streams on it keep working until they end.
	for i, s := range streams {
		if err := s.Send(&echopb.EchoRequest{Message: "still"}); err != nil {
			require.Fail(t, fmt.Sprintf("stream %d Send while draining: %v", i, err))
		}
		if _, err := s.Recv(); err != nil {
			require.Fail(t, fmt.Sprintf("stream %d Recv while draining: %v", i, err))
		}
	}
	for _, s := range streams {
		_ = s.CloseSend()
		_, err := s.Recv()
		require.EqualValuesf(t, io.EOF, err, "stream end = %v, want io.EOF", err)
	}
	testutil.WaitFor(t, "removed backend gone from Stats", func() bool {
		for _, b := range p.Stats().Backends {
			if b.Addr == bs[2].Addr() {
				return false
			}
		}
		return true
	})
}

func TestDrainTimeoutCutsWhatIsLeft(t *testing.T) {
	t.Parallel()
	bs := testutil.StartBackends(t, 2)
	p, r := testutil.ReadyPool(t, bs, pool.WithDrainTimeout(200*time.Millisecond))
	ctx := testutil.Context(t)
	streams := testutil.OpenBidi(t, ctx, echopb.NewEchoClient(p), 2)
	r.UpdateState(resolver.State{Addresses: testutil.Addrs(bs[0].Addr())})
	// The stream on the removed backend is cut when the timeout passes.
	cut := 0
	for _, s := range streams {
		done := make(chan error, 1)
		go func() {
			_, err := s.Recv() // nothing was sent: only an end comes
			done <- err
		}()
		select {
		case err := <-done:
			if status.Code(err) == codes.Canceled || status.Code(err) == codes.Unavailable {
				cut++
			}
		case <-time.After(2 * time.Second):
		}
	}
	require.EqualValuesf(t, 1, cut, "%d streams cut by the drain timeout, want 1 (the one on the removed backend)", cut)
}

// Connections recycled every 150 ms, while calls and a long-lived stream
// go on, fail no call: the load runs until every connection has been
// replaced three times (16 connections seen, 4 at a time).
func TestMaxConnAgeRecyclesWithoutFailures(t *testing.T) {
	t.Parallel()
	bs := testutil.StartBackends(t, 2)
	const size, generations = 2, 4
	p, _ := testutil.ReadyPool(t, bs, pool.WithSize(size), pool.WithMaxConnAge(150*time.Millisecond))
	client := echopb.NewEchoClient(p)
	ctx := testutil.Context(t) // per call; the load stops when asked, never by cutting calls
	var stop atomic.Bool

	var calls, failed atomic.Int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	// Eight callers, each making a call every 2 ms at most: a call in
	// flight through every recycle, without taking every core from the
	// tests that run alongside.
	for range 8 {
		wg.Go(func() {
			tick := time.NewTicker(2 * time.Millisecond)
			defer tick.Stop()
			for !stop.Load() {
				_, err := client.Unary(ctx, &echopb.EchoRequest{})
				if err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
				}
				calls.Add(1)
				<-tick.C
			}
		})
	}
	// A long-lived stream rides through every recycle of its connection.
	s := testutil.OpenBidi(t, context.Background(), client, 1)[0]
	seen := map[uint64]bool{}
	for len(seen) < len(bs)*size*generations {
		if ctx.Err() != nil {
			stop.Store(true)
			wg.Wait()
			require.Fail(t, fmt.Sprintf("only %d connections seen: connections were not recycled", len(seen)))
		}
		for _, b := range p.Stats().Backends {
			live := 0
			for _, c := range b.Conns {
				seen[c.ID] = true
				if !c.Draining {
					live++
				}
			}
			assert.Falsef(t, live < size || live > size+1, "backend %s has %d live connections, want %d or %d (one replaced at a time)", b.Addr, live, size, size+1)
		}
		time.Sleep(10 * time.Millisecond)
	}
	stop.Store(true)
	wg.Wait()
	if err := s.Send(&echopb.EchoRequest{}); err != nil {
		require.Fail(t, fmt.Sprintf("old stream Send after recycles: %v", err))
	}
	if _, err := s.Recv(); err != nil {
		require.Fail(t, fmt.Sprintf("old stream Recv after recycles: %v", err))
	}
	_ = s.CloseSend()
	t.Logf("%d calls, %d failed, %d connections seen", calls.Load(), failed.Load(), len(seen))
	if failed.Load() > 0 {
		require.Fail(t, fmt.Sprintf("%d calls failed during recycling; first: %v", failed.Load(), firstErr.Load()))
	}
}

func TestMaxStreamAgeEndsStreamsToRebalance(t *testing.T) {
	t.Parallel()
	bs := testutil.StartBackends(t, 1)
	// 2 s: the first stream's open and echo must end before its max age
	// ends it, beside other work too.
	p, _ := testutil.ReadyPool(t, bs, pool.WithMaxStreamAge(2*time.Second))
	ctx := testutil.Context(t)
	// The stream's age starts after start, so however slow the machine
	// the stream lives at least its max age (less its 10 % jitter) from it.
	start := time.Now()
	s := testutil.OpenBidi(t, ctx, echopb.NewEchoClient(p), 1)[0]
	_, err := s.Recv()
	st := status.Convert(err)
	require.Falsef(t, st.Code() != codes.Unavailable || !strings.Contains(st.Message(), "rebalance"), "Recv = %v, want Unavailable saying it was ended to rebalance", err)
	el := time.Since(start)
	require.Falsef(t, el < 1500*time.Millisecond, "stream ended after %v, before its max age", el)
	testutil.WaitFor(t, "stream no longer counted", func() bool { return activeStreams(p) == 0 })
	// A stream that ends by itself before its max age is not touched.
	start = time.Now()
	s2 := testutil.OpenBidi(t, ctx, echopb.NewEchoClient(p), 1)[0]
	_ = s2.CloseSend()
	_, err = s2.Recv()
	if life := time.Since(start); err != io.EOF {
		// Only a stream that outlived its max age may be ended by it: on a
		// machine slow enough that its open, echo and close took that long.
		require.GreaterOrEqualf(t, life, 1500*time.Millisecond, "short stream = %v after %v, want io.EOF", err, life)
		require.Containsf(t, status.Convert(err).Message(), "rebalance", "short stream = %v, want io.EOF", err)
	}
}

func TestStatsAndLogsFollowTheLifecycle(t *testing.T) {
	t.Parallel()
	bs := testutil.StartBackends(t, 2)
	rec := testutil.NewLogRecorder()
	p, r := testutil.ReadyPool(t, bs, pool.WithMaxConnAge(100*time.Millisecond), pool.WithLogger(slog.New(rec)))
	testutil.WaitFor(t, "a recycle", func() bool { return rec.HasMessage("connection recycled") })
	r.UpdateState(resolver.State{Addresses: testutil.Addrs(bs[0].Addr())})
	testutil.WaitFor(t, "removal logged", func() bool { return rec.HasMessage("backend removed") && rec.HasMessage("draining connection") })
	for _, want := range []string{"backend added", "connection closed"} {
		testutil.WaitFor(t, want, func() bool { return rec.HasMessage(want) })
	}
	st := p.Stats()
	if st.Backends[0].OldestConnAge <= 0 || st.Backends[0].OldestConnAge > time.Second {
		require.Fail(t, fmt.Sprintf("OldestConnAge = %v, want within the max age", st.Backends[0].OldestConnAge))
	}
}

func TestKeepaliveConfigApplies(t *testing.T) {
	t.Parallel()
	cfg := keepalive.Config{}
	s, err := backend.Listen(backend.Options{Name: "ka", ServerOptions: cfg.ServerOptions()})
	require.NoError(t, err)
	t.Cleanup(s.Stop)
	p, _ := testutil.ReadyPool(t, []*backend.Server{s}, pool.WithKeepalive(cfg))
	if _, err := echopb.NewEchoClient(p).Unary(testutil.Context(t), &echopb.EchoRequest{}, grpc.WaitForReady(true)); err != nil {
		require.Fail(t, fmt.Sprint(err))
	}
}
