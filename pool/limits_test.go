package pool_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/grpcpool/grpcpool/example/echopb"
	"github.com/grpcpool/grpcpool/internal/backend"
	"github.com/grpcpool/grpcpool/internal/testutil"
	"github.com/grpcpool/grpcpool/pool"
)

// The figures of issue 5: a server admits serverLimit streams per
// connection (HTTP/2 MAX_CONCURRENT_STREAMS); a client wants wantStreams
// long-lived streams, and each must have had its first echo within
// openWindow. On an idle machine they all have it within 2 s (the tests
// log when the last did); openWindow is a margin a busy machine cannot
// exceed, since a stream the pool did not place elsewhere waits in gRPC
// until an earlier one ends, and none ends before the test releases them.
const (
	serverLimit = 100
	wantStreams = 300
	openWindow  = 20 * time.Second
)

// limitedServer is one Echo backend with grpc.MaxConcurrentStreams(100),
// whose interceptors count, per client connection (the peer's address),
// the streams open and the unary calls received.
type limitedServer struct {
	*backend.Server

	mu      sync.Mutex // guards the maps
	open    map[string]int
	maxOpen map[string]int
	unary   map[string]int
}

func startLimited(t testing.TB) *limitedServer {
	t.Helper()
	ls := &limitedServer{open: map[string]int{}, maxOpen: map[string]int{}, unary: map[string]int{}}
	s, err := backend.Listen(backend.Options{Name: "limited", ServerOptions: []grpc.ServerOption{
		grpc.MaxConcurrentStreams(serverLimit),
		grpc.ChainStreamInterceptor(ls.streamInterceptor),
		grpc.ChainUnaryInterceptor(ls.unaryInterceptor),
	}})
	require.NoErrorf(t, err, "backend: %v", err)
	t.Cleanup(s.Stop)
	ls.Server = s
	return ls
}

func peerOf(ctx context.Context) string {
	if p, ok := peer.FromContext(ctx); ok {
		return p.Addr.String()
	}
	return "?"
}

func (ls *limitedServer) streamInterceptor(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, h grpc.StreamHandler) error {
	k := peerOf(ss.Context())
	ls.mu.Lock()
	ls.open[k]++
	ls.maxOpen[k] = max(ls.maxOpen[k], ls.open[k])
	ls.mu.Unlock()
	defer func() {
		ls.mu.Lock()
		ls.open[k]--
		ls.mu.Unlock()
	}()
	return h(srv, ss)
}

func (ls *limitedServer) unaryInterceptor(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	ls.mu.Lock()
	ls.unary[peerOf(ctx)]++
	ls.mu.Unlock()
	return h(ctx, req)
}

// perConn returns, for each client connection that carried a stream, the
// streams open on it now and the most it ever carried at once.
func (ls *limitedServer) perConn() (open map[string]int, most int) {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	open = map[string]int{}
	for k, n := range ls.open {
		if n > 0 {
			open[k] = n
		}
	}
	for _, n := range ls.maxOpen {
		most = max(most, n)
	}
	return open, most
}

// A burst is n Bidi streams opened at once, one goroutine each: Bidi, Send,
// Recv. A stream that had its echo stays open until release, then ends
// with CloseSend and io.EOF.
type burst struct {
	t       testing.TB
	start   time.Time
	echoed  chan time.Duration // one per stream that had its first echo
	release chan struct{}
	cancel  context.CancelFunc
	wg      sync.WaitGroup

	mu   sync.Mutex // guards errs
	errs []error
}

func openBurst(t testing.TB, c echopb.EchoClient, n int) *burst {
	t.Helper()
	ctx, cancel := context.WithCancel(testutil.Context(t))
	b := &burst{t: t, echoed: make(chan time.Duration, n), release: make(chan struct{}), cancel: cancel}
	t.Cleanup(b.stop)
	b.start = time.Now()
	for range n {
		b.wg.Add(1)
		go func() {
			defer b.wg.Done()
			if err := b.one(ctx, c); err != nil {
				b.mu.Lock()
				b.errs = append(b.errs, err)
				b.mu.Unlock()
			}
		}()
	}
	return b
}

func (b *burst) one(ctx context.Context, c echopb.EchoClient) error {
	s, err := c.Bidi(ctx)
	if err != nil {
		return err
	}
	if err := s.Send(&echopb.EchoRequest{Message: "hi"}); err != nil {
		_, err = s.Recv() // the status is on Recv
		return err
	}
	if _, err := s.Recv(); err != nil {
		return err
	}
	b.echoed <- time.Since(b.start)
	select {
	case <-b.release:
	case <-ctx.Done():
		return ctx.Err()
	}
	if err := s.CloseSend(); err != nil {
		return err
	}
	if _, err := s.Recv(); err != io.EOF {
		return err
	}
	return nil
}

// waitOpen returns how many streams had their echo within window of the
// burst's start, and when the last of them did. It returns as soon as want
// have; echoes it reads that came too late are dropped.
func (b *burst) waitOpen(want int, window time.Duration) (opened int, last time.Duration) {
	timer := time.NewTimer(time.Until(b.start.Add(window)))
	defer timer.Stop()
	count := func(d time.Duration) {
		if d <= window {
			opened++
			last = max(last, d)
		}
	}
	for opened < want {
		select {
		case d := <-b.echoed:
			count(d)
		case <-timer.C:
			// Take what arrived in time but was not read yet.
			for opened < want {
				select {
				case d := <-b.echoed:
					count(d)
				default:
					return opened, last
				}
			}
		}
	}
	return opened, last
}

// end releases every stream and waits until all have ended; it returns
// the errors they ended with.
func (b *burst) end() []error {
	b.t.Helper()
	close(b.release)
	done := make(chan struct{})
	go func() { b.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		require.Fail(b.t, "streams did not end within 20 s of their release")
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.errs
}

// stop cancels every stream still open and waits for the goroutines.
func (b *burst) stop() {
	b.cancel()
	b.wg.Wait()
}

func (b *burst) failures() []error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]error(nil), b.errs...)
}

// connsOf returns the pool's connections to its only backend.
func connsOf(t testing.TB, p *pool.Pool) (pool.BackendStats, []pool.ConnStats) {
	t.Helper()
	st := p.Stats()
	require.EqualValuesf(t, 1, len(st.Backends), "%d backends in Stats, want 1", len(st.Backends))
	return st.Backends[0], st.Backends[0].Conns
}

func actives(cs []pool.ConnStats) []int64 {
	out := make([]int64, len(cs))
	for i, c := range cs {
		out[i] = c.Active
	}
	return out
}

func sortedCounts(m map[string]int) []int {
	out := make([]int, 0, len(m))
	for _, n := range m {
		out = append(out, n)
	}
	sort.Ints(out)
	return out
}

// spreadStreams is the common part of the configured and the learned
// case: 300 streams from a pool of size 1 all open within 2 s, on at least
// 3 connections, none carrying more than 100 by the pool's count or the
// server's.
func spreadStreams(t *testing.T, opts ...pool.Option) (*pool.Pool, *limitedServer) {
	ls := startLimited(t)
	p, _ := testutil.ReadyPool(t, []*backend.Server{ls.Server}, append([]pool.Option{pool.WithSize(1)}, opts...)...)
	b := openBurst(t, echopb.NewEchoClient(p), wantStreams)
	opened, last := b.waitOpen(wantStreams, openWindow)
	t.Logf("%d of %d streams open within %v (last at %v)", opened, wantStreams, openWindow, last.Round(time.Millisecond))
	if opened != wantStreams {
		require.Fail(t, fmt.Sprintf("%d of %d streams open within %v, want all (failures: %v)", opened, wantStreams, openWindow, b.failures()))
	}
	bs, cs := connsOf(t, p)
	server, most := ls.perConn()
	t.Logf("pool: %d conns, active %v, limit %d; server: open per conn %v, most at once %d",
		len(cs), actives(cs), bs.StreamLimit, sortedCounts(server), most)
	assert.Falsef(t, bs.Ready < 3, "Ready = %d conns, want ≥ 3", bs.Ready)
	assert.EqualValuesf(t, wantStreams, bs.ActiveStreams, "ActiveStreams = %d, want %d", bs.ActiveStreams, wantStreams)
	for _, c := range cs {
		assert.Falsef(t, c.Active > serverLimit, "conn %d: Active = %d, want ≤ %d", c.ID, c.Active, serverLimit)
	}
	if len(server) < 3 || most > serverLimit || ls.ActiveStreams() != wantStreams {
		assert.Fail(t, fmt.Sprintf("server: %d streams on %d conns %v, most on one %d; want %d on ≥ 3, none above %d", ls.ActiveStreams(), len(server), sortedCounts(server), most, wantStreams, serverLimit))
	}
	if errs := b.end(); len(errs) > 0 {
		require.Fail(t, fmt.Sprintf("%d streams failed, first: %v", len(errs), errs[0]))
	}
	return p, ls
}

// With WithMaxStreamsPerConn(100) the pool opens connections as the first
// ones fill, and never puts a 101st stream on one.
func TestMaxStreamsPerConnConfigured(t *testing.T) {
	t.Parallel()
	p, _ := spreadStreams(t, pool.WithMaxStreamsPerConn(serverLimit))
	bs, _ := connsOf(t, p)
	assert.EqualValuesf(t, serverLimit, bs.StreamLimit, "StreamLimit = %d, want %d", bs.StreamLimit, serverLimit)
}

// Without WithMaxStreamsPerConn the pool learns the server's limit from
// the NewStreams that stall on the first connection.
func TestStreamLimitLearned(t *testing.T) {
	t.Parallel()
	p, _ := spreadStreams(t)
	bs, cs := connsOf(t, p)
	assert.EqualValuesf(t, serverLimit, bs.StreamLimit, "learned StreamLimit = %d, want %d", bs.StreamLimit, serverLimit)
	for _, c := range cs {
		assert.EqualValuesf(t, serverLimit, c.Limit, "conn %d: Limit = %d, want %d", c.ID, c.Limit, serverLimit)
	}
}

// A stream alone on a connection when it is placed can still be overtaken:
// others placed after it reach gRPC's transport first and take the
// server's every slot. It must be rescued like the rest, not wait in gRPC
// until a stream ends. Here a client interceptor holds the first stream
// for 300 ms inside NewStream, after the pool placed it, while 300 others
// are opened.
func TestStreamLimitLearnedLoneStreamOvertaken(t *testing.T) {
	t.Parallel()
	ls := startLimited(t)
	var first atomic.Bool
	hold := grpc.WithStreamInterceptor(func(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn,
		method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
		if first.CompareAndSwap(false, true) {
			select {
			case <-time.After(300 * time.Millisecond):
			case <-ctx.Done():
			}
		}
		return streamer(ctx, desc, cc, method, opts...)
	})
	p, _ := testutil.ReadyPool(t, []*backend.Server{ls.Server}, pool.WithSize(1), pool.WithDialOptions(hold))
	client := echopb.NewEchoClient(p)
	lone := openBurst(t, client, 1)
	testutil.WaitFor(t, "the lone stream placed", func() bool { return activeStreams(p) == 1 })
	rest := openBurst(t, client, wantStreams)
	opened, last := rest.waitOpen(wantStreams, openWindow)
	t.Logf("%d of %d streams open within %v (last at %v)", opened, wantStreams, openWindow, last.Round(time.Millisecond))
	assert.EqualValuesf(t, wantStreams, opened, "%d of %d streams open within %v, want all", opened, wantStreams, openWindow)
	// The lone stream started before the others: its window ends earlier.
	if n, _ := lone.waitOpen(1, openWindow); n != 1 {
		bs, cs := connsOf(t, p)
		assert.Fail(t, fmt.Sprintf("the lone stream did not open within %v of its start (pool: %d conns, active %v, limit %d; server: %d open)", openWindow, len(cs), actives(cs), bs.StreamLimit, ls.ActiveStreams()))
	}
	for _, b := range []*burst{lone, rest} {
		if errs := b.failures(); len(errs) > 0 {
			require.Fail(t, fmt.Sprintf("%d streams failed, first: %v", len(errs), errs[0]))
		}
	}
}

// Once the streams end, the connections opened for them close after the
// idle timeout, back to the WithSize floor.
func TestShrinkAfterStreamsEnd(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name string
		opts []pool.Option
	}{
		{"configured", []pool.Option{pool.WithMaxStreamsPerConn(serverLimit)}},
		{"learned", nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p, ls := spreadStreams(t, append(tt.opts, pool.WithIdleTimeout(200*time.Millisecond))...)
			ended := time.Now()
			testutil.WaitFor(t, "the pool back to 1 connection", func() bool {
				bs, cs := connsOf(t, p)
				return len(cs) == 1 && bs.Ready == 1
			})
			t.Logf("back to 1 connection %v after the streams ended", time.Since(ended).Round(time.Millisecond))
			// The floor still works, and still knows the limit.
			_, err := echopb.NewEchoClient(p).Unary(testutil.Context(t), &echopb.EchoRequest{})
			require.NoErrorf(t, err, "Unary after shrinking: %v", err)
			if bs, _ := connsOf(t, p); bs.StreamLimit != serverLimit {
				assert.Fail(t, fmt.Sprintf("StreamLimit after shrinking = %d, want %d", bs.StreamLimit, serverLimit))
			}
			n := ls.ActiveStreams()
			assert.Zerof(t, n, "server: %d streams open, want 0", n)
		})
	}
}

// With WithMaxSize(2) the pool opens 2 connections and no more; the
// streams beyond their 200 are placed on them anyway, where gRPC queues
// them: none fails, and each opens as soon as an earlier stream ends.
func TestMaxSizeCapsGrowth(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name string
		opts []pool.Option
	}{
		{"configured", []pool.Option{pool.WithMaxStreamsPerConn(serverLimit)}},
		{"learned", nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ls := startLimited(t)
			p, _ := testutil.ReadyPool(t, []*backend.Server{ls.Server},
				append([]pool.Option{pool.WithSize(1), pool.WithMaxSize(2)}, tt.opts...)...)
			b := openBurst(t, echopb.NewEchoClient(p), wantStreams)
			opened, last := b.waitOpen(2*serverLimit, openWindow)
			t.Logf("%d streams open within %v (the 200th at %v)", opened, openWindow, last.Round(time.Millisecond))
			if opened != 2*serverLimit {
				require.Fail(t, fmt.Sprintf("%d streams open within %v, want %d (failures: %v)", opened, openWindow, 2*serverLimit, b.failures()))
			}
			// Every stream is placed: 200 open, 100 queued in gRPC.
			testutil.WaitFor(t, "all 300 streams placed", func() bool {
				bs, _ := connsOf(t, p)
				return bs.ActiveStreams == wantStreams
			})
			bs, cs := connsOf(t, p)
			server, most := ls.perConn()
			t.Logf("pool: %d conns, active %v; server: open per conn %v, most at once %d", len(cs), actives(cs), sortedCounts(server), most)
			assert.Falsef(t, len(cs) != 2 || bs.Ready != 2, "%d conns (%d ready), want 2", len(cs), bs.Ready)
			if got := ls.ActiveStreams(); got != 2*serverLimit {
				assert.Fail(t, fmt.Sprintf("server: %d streams open, want %d", got, 2*serverLimit))
			}
			if errs := b.failures(); len(errs) > 0 {
				require.Fail(t, fmt.Sprintf("%d streams failed, first: %v", len(errs), errs[0]))
			}
			// Ending the open streams lets the queued ones in.
			if errs := b.end(); len(errs) > 0 {
				require.Fail(t, fmt.Sprintf("%d streams failed, first: %v", len(errs), errs[0]))
			}
			if got := len(b.echoed); got != wantStreams-2*serverLimit {
				assert.Fail(t, fmt.Sprintf("%d queued streams had their echo, want %d", got, wantStreams-2*serverLimit))
			}
		})
	}
}

// Without WithMaxSize a backend grows to max(8 × size, 16) connections, as
// WithMaxSize documents. A limit of 1 stream per connection and streams
// opened until there are 16 connections, then 8 more (on a server without
// a limit, so every stream opens), shows the ceiling.
func TestMaxSizeDefault(t *testing.T) {
	t.Parallel()
	bs := testutil.StartBackends(t, 1)
	p, _ := testutil.ReadyPool(t, bs, pool.WithSize(1), pool.WithMaxStreamsPerConn(1))
	c := echopb.NewEchoClient(p)
	ctx := testutil.Context(t)
	want := max(8*1, 16)
	// Streams one after another: each that finds every connection full
	// asks for one more. Beside other work a growth can outlast a call's
	// wait for it, and that call overflows instead; the next one asks
	// again. So open on until the cap is reached, then 8 more.
	for n := 0; len(p.Stats().Backends[0].Conns) < want; n++ {
		require.Lessf(t, n, 8*want, "%d streams opened and %d connections, want %d", n, len(p.Stats().Backends[0].Conns), want)
		testutil.OpenBidi(t, ctx, c, 1)
	}
	testutil.OpenBidi(t, ctx, c, 8)
	_, cs := connsOf(t, p)
	require.Lenf(t, cs, want, "connections with WithSize(1) and no WithMaxSize, want max(8 × 1, 16) = %d (active %v)", want, actives(cs))
}

// With a configured limit, unary calls never go to a connection that
// carries its limit of streams (there gRPC would queue them behind the
// streams): they go to a connection with room, here the one the pool opens
// for them. The calls keep arriving, one every few tens of microseconds,
// while that connection is being opened and published; at most 50 are in
// flight, so it never fills.
func TestUnaryAvoidsFullConnWithStreamLimit(t *testing.T) {
	t.Parallel()
	ls := startLimited(t)
	p, _ := testutil.ReadyPool(t, []*backend.Server{ls.Server},
		pool.WithSize(1), pool.WithMaxSize(2), pool.WithMaxStreamsPerConn(serverLimit))
	client := echopb.NewEchoClient(p)
	ctx := testutil.Context(t)
	b := openBurst(t, client, serverLimit) // fills the one connection
	opened, _ := b.waitOpen(serverLimit, openWindow)
	require.EqualValuesf(t, serverLimit, opened, "%d of %d streams open, want all", opened, serverLimit)
	full, _ := ls.perConn()
	require.EqualValuesf(t, 1, len(full), "streams on %d connections %v, want 1", len(full), full)
	// 300 calls, at most 50 in flight: the new connection always has room.
	// A call queued in gRPC behind the streams waits until they end, which
	// is after every call returned: its timeout is a margin a busy machine
	// cannot exceed, not a latency bound.
	var g sync.WaitGroup
	errs := make([]error, 300)
	sem := make(chan struct{}, 50)
	for i := range errs {
		sem <- struct{}{}
		g.Go(func() {
			defer func() { <-sem }()
			cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			_, errs[i] = client.Unary(cctx, &echopb.EchoRequest{})
		})
		time.Sleep(20 * time.Microsecond)
	}
	g.Wait()
	ls.mu.Lock()
	unary := map[string]int{}
	for k, n := range ls.unary {
		unary[k] = n
	}
	ls.mu.Unlock()
	_, cs := connsOf(t, p)
	t.Logf("pool: active per conn %v; server: unary calls per conn %v, streams per conn %v", actives(cs), unary, full)
	failed := 0
	for _, err := range errs {
		if err != nil {
			failed++
		}
	}
	if failed > 0 {
		assert.Fail(t, fmt.Sprintf("%d of %d unary calls beside 100 streams failed (none reached the server: queued in gRPC on the full connection), first: %v", failed, len(errs), errors.Join(errs...)))
	}
	for k := range full {
		if unary[k] > 0 {
			assert.Fail(t, fmt.Sprintf("%d unary calls went to the connection carrying 100 streams", unary[k]))
		}
	}
	assert.EqualValuesf(t, 1, len(unary), "unary calls on %d connections %v, want 1 (the one with room)", len(unary), unary)
	if errs := b.end(); len(errs) > 0 {
		require.Fail(t, fmt.Sprintf("%d streams failed, first: %v", len(errs), errs[0]))
	}
}

// The baseline the pool fixes: through one plain grpc.ClientConn the
// server's 100 streams open, and the other 200 of the 300 stay waiting in
// gRPC for the server to admit them (none opens in the second after the
// 100th: each holds its stream until the burst stops, so none can).
func TestSingleClientConnStreamLimitBaseline(t *testing.T) {
	t.Parallel()
	ls := startLimited(t)
	cc, err := grpc.NewClient(ls.Addr(), testutil.Insecure)
	require.NoError(t, err)
	t.Cleanup(func() { _ = cc.Close() })
	b := openBurst(t, echopb.NewEchoClient(cc), wantStreams)
	opened, last := b.waitOpen(serverLimit, openWindow)
	require.EqualValuesf(t, serverLimit, opened, "%d of %d streams open within %v, want %d", opened, wantStreams, openWindow, serverLimit)
	more, _ := b.waitOpen(wantStreams-serverLimit, last+time.Second)
	t.Logf("one grpc.ClientConn: %d of %d streams open, %d more in the next second", opened, wantStreams, more)
	require.Zerof(t, more, "%d more streams opened past the server's limit of %d", more, serverLimit)
	if errs := b.failures(); len(errs) > 0 {
		require.Fail(t, fmt.Sprintf("%d streams failed, first: %v", len(errs), errs[0]))
	}
	b.stop() // cancels the queued ones too
	for _, err := range b.failures() {
		assert.Falsef(t, status.Code(err) != codes.Canceled && !errors.Is(err, context.Canceled), "stream ended with %v, want Canceled", err)
	}
}
