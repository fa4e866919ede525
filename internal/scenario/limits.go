package scenario

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/peer"

	"github.com/grpcpool/grpcpool/example/echopb"
	"github.com/grpcpool/grpcpool/internal/backend"
	"github.com/grpcpool/grpcpool/pool"
)

// StreamLimitConfig configures RunStreamLimit. The zero value gives the
// documented sizes: 300 streams against a server that admits 100 per
// connection, counted after 2 s.
type StreamLimitConfig struct {
	// Streams is how many long-lived Bidi streams are opened at once.
	// Default 300.
	Streams int
	// ServerLimit is the server's grpc.MaxConcurrentStreams (HTTP/2
	// SETTINGS_MAX_CONCURRENT_STREAMS). Default 100.
	ServerLimit uint32
	// Window is how long the streams have to open: a stream counts as open
	// when its first echo is back. Default 2 s.
	Window time.Duration
	// Conns is how many grpc.ClientConns the fixed round-robin pool
	// dials. Default 2.
	Conns int
	// StallTimeout is the pool's WithStreamStallTimeout in the run that
	// learns the limit. Default pool.DefaultStreamStallTimeout (500 ms).
	StallTimeout time.Duration
	// Logger receives the pools' logs. Nil discards them.
	Logger *slog.Logger
}

func (c StreamLimitConfig) withDefaults() StreamLimitConfig {
	if c.Streams <= 0 {
		c.Streams = 300
	}
	if c.ServerLimit == 0 {
		c.ServerLimit = 100
	}
	if c.Window <= 0 {
		c.Window = 2 * time.Second
	}
	if c.Conns <= 0 {
		c.Conns = 2
	}
	if c.StallTimeout <= 0 {
		c.StallTimeout = pool.DefaultStreamStallTimeout
	}
	return c
}

// RunStreamLimit opens cfg.Streams long-lived Bidi streams at once against
// one server that admits cfg.ServerLimit streams per connection, and counts
// how many are open (had their first echo) within cfg.Window, through:
//   - one grpc.ClientConn: gRPC queues every stream beyond the limit until
//     an earlier one ends;
//   - a fixed pool of cfg.Conns grpc.ClientConns taken in turn (as
//     googleapis' transport/grpc pool does): cfg.Conns × the limit;
//   - the pool with WithSize(1) and WithMaxStreamsPerConn(limit): it opens
//     connections as the first ones fill;
//   - the pool with WithSize(1) and no configured limit: it learns the
//     limit from the streams that stall, after cfg.StallTimeout.
//
// Streams are counted per client connection on the server.
func RunStreamLimit(ctx context.Context, cfg StreamLimitConfig, progress Progress) (*Table, error) {
	cfg = cfg.withDefaults()
	limit := int(cfg.ServerLimit)
	t := &Table{
		Title: fmt.Sprintf("MAX_CONCURRENT_STREAMS: %d long-lived streams opened at once, server admits %d per connection",
			cfg.Streams, cfg.ServerLimit),
		Header: []string{"client", fmt.Sprintf("open within %v", cfg.Window), "last opened at", "conns used", "most on one conn", "limit in Stats", "failed"},
		Notes: []string{
			"open: the stream's first echo came back; conns used and most on one conn are counted on the server, per client connection.",
			fmt.Sprintf("streams not open within %v are queued by gRPC (none fails); they open when earlier ones end.", cfg.Window),
		},
	}
	type client struct {
		name string
		open func(addr string) (grpc.ClientConnInterface, func() (int64, error), error)
	}
	plain := func(addr string, n int) (grpc.ClientConnInterface, func() (int64, error), error) {
		rr, err := dialFixed(ctx, addr, n)
		if err != nil {
			return nil, nil, err
		}
		return rr, func() (int64, error) { return -1, rr.Close() }, nil
	}
	pooled := func(opts ...pool.Option) func(addr string) (grpc.ClientConnInterface, func() (int64, error), error) {
		return func(addr string) (grpc.ClientConnInterface, func() (int64, error), error) {
			all := append([]pool.Option{pool.WithSize(1)}, opts...)
			p, err := newPool(ctx, manualResolver([]string{addr}), cfg.Logger, all...)
			if err != nil {
				return nil, nil, err
			}
			return p, func() (int64, error) {
				var l int64
				for _, b := range p.Stats().Backends {
					l = max(l, b.StreamLimit)
				}
				return l, p.Close()
			}, nil
		}
	}
	clients := []client{
		{"one grpc.ClientConn", func(addr string) (grpc.ClientConnInterface, func() (int64, error), error) {
			return plain(addr, 1)
		}},
		{fmt.Sprintf("round-robin over %d grpc.ClientConns", cfg.Conns), func(addr string) (grpc.ClientConnInterface, func() (int64, error), error) {
			return plain(addr, cfg.Conns)
		}},
		{fmt.Sprintf("grpcpool, WithMaxStreamsPerConn(%d)", limit), pooled(pool.WithMaxStreamsPerConn(limit))},
		{"grpcpool, limit learned", pooled(pool.WithStreamStallTimeout(cfg.StallTimeout))},
	}
	for _, c := range clients {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		progress.say("stream limit: %s: opening %d streams", c.name, cfg.Streams)
		r, err := measureStreamLimit(ctx, cfg, c.open)
		if err != nil {
			return nil, fmt.Errorf("scenario: stream limit, %s: %w", c.name, err)
		}
		last, lim := "-", "-"
		if r.opened > 0 {
			last = ms(r.last)
		}
		if r.limit >= 0 {
			lim = fmt.Sprint(r.limit)
		}
		progress.say("stream limit: %s: %d of %d open within %v", c.name, r.opened, cfg.Streams, cfg.Window)
		t.AddRow(c.name, fmt.Sprintf("%d / %d", r.opened, cfg.Streams), last, r.conns, r.most, lim, r.failed)
	}
	return t, nil
}

// streamLimitResult is what one run of RunStreamLimit measured.
type streamLimitResult struct {
	opened int           // streams open within the window
	last   time.Duration // when the last of them opened
	conns  int           // client connections that carried streams (server side)
	most   int           // most streams one connection carried at once (server side)
	limit  int64         // the pool's stream limit in Stats; -1: not a pool
	failed int           // streams that failed (the run's own cancellation aside)
}

func measureStreamLimit(ctx context.Context, cfg StreamLimitConfig,
	open func(addr string) (grpc.ClientConnInterface, func() (int64, error), error)) (streamLimitResult, error) {
	res := streamLimitResult{limit: -1}
	count := newPeerCount()
	srv, err := backend.Listen(backend.Options{Name: "limited", ServerOptions: []grpc.ServerOption{
		grpc.MaxConcurrentStreams(cfg.ServerLimit),
		grpc.ChainStreamInterceptor(count.intercept),
	}})
	if err != nil {
		return res, fmt.Errorf("starting backend: %w", err)
	}
	defer srv.Stop()
	cc, closeClient, err := open(srv.Addr())
	if err != nil {
		return res, err
	}
	closed := false
	defer func() {
		if !closed {
			_, _ = closeClient()
		}
	}()

	// Every stream opens at once, holds on after its echo, and ends when
	// the run does.
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	echoed := make(chan time.Duration, cfg.Streams)
	var failed atomic.Int64
	var wg sync.WaitGroup
	client := echopb.NewEchoClient(cc)
	start := time.Now()
	for range cfg.Streams {
		wg.Go(func() {
			err := holdStream(sctx, client, start, echoed)
			if err != nil && sctx.Err() == nil {
				failed.Add(1)
			}
		})
	}
	timer := time.NewTimer(cfg.Window)
	defer timer.Stop()
	took := func(d time.Duration) {
		if d <= cfg.Window { // an echo read late may have come too late
			res.opened++
			res.last = max(res.last, d)
		}
	}
wait:
	for res.opened < cfg.Streams {
		select {
		case d := <-echoed:
			took(d)
		case <-timer.C:
			break wait
		case <-ctx.Done():
			cancel()
			wg.Wait()
			return res, ctx.Err()
		}
	}
	// Count what arrived in time but was not read yet.
	for drained := false; !drained && res.opened < cfg.Streams; {
		select {
		case d := <-echoed:
			took(d)
		default:
			drained = true
		}
	}
	res.conns, res.most = count.snapshot()
	cancel()
	wg.Wait()
	res.failed = int(failed.Load())
	closed = true
	if res.limit, err = closeClient(); err != nil {
		return res, fmt.Errorf("closing the client: %w", err)
	}
	return res, nil
}

// holdStream opens one Bidi stream, reports when its first echo came back,
// and holds it open until ctx ends.
func holdStream(ctx context.Context, c echopb.EchoClient, start time.Time, echoed chan<- time.Duration) error {
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
	echoed <- time.Since(start)
	<-ctx.Done()
	return nil
}

// peerCount counts, on the server, the streams each client connection
// (the peer's address) has open, and the most it had at once.
type peerCount struct {
	mu   sync.Mutex // guards open and most
	open map[string]int
	most map[string]int
}

func newPeerCount() *peerCount {
	return &peerCount{open: map[string]int{}, most: map[string]int{}}
}

func (pc *peerCount) intercept(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, h grpc.StreamHandler) error {
	k := "?"
	if p, ok := peer.FromContext(ss.Context()); ok {
		k = p.Addr.String()
	}
	pc.mu.Lock()
	pc.open[k]++
	pc.most[k] = max(pc.most[k], pc.open[k])
	pc.mu.Unlock()
	defer func() {
		pc.mu.Lock()
		pc.open[k]--
		pc.mu.Unlock()
	}()
	return h(srv, ss)
}

// snapshot returns how many connections ever carried a stream, and the
// most streams one carried at once.
func (pc *peerCount) snapshot() (conns, most int) {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	for _, n := range pc.most {
		most = max(most, n)
	}
	return len(pc.most), most
}

// fixedPool is the pool of googleapis' transport/grpc
// (roundRobinConnPool): n grpc.ClientConns dialed up front, each call and
// stream on the next one in turn, whatever they carry. It is safe for
// concurrent use.
type fixedPool struct {
	conns []*grpc.ClientConn
	next  atomic.Uint32
}

var _ grpc.ClientConnInterface = (*fixedPool)(nil)

// dialFixed dials n grpc.ClientConns to addr and waits until all are
// READY, so a measurement does not start on a half-connected client.
func dialFixed(ctx context.Context, addr string, n int) (*fixedPool, error) {
	fp := &fixedPool{}
	for range n {
		cc, err := grpc.NewClient(addr, insecureCreds)
		if err != nil {
			_ = fp.Close()
			return nil, err
		}
		fp.conns = append(fp.conns, cc)
		cc.Connect()
	}
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	for _, cc := range fp.conns {
		for s := cc.GetState(); s != connectivity.Ready; s = cc.GetState() {
			if !cc.WaitForStateChange(wctx, s) {
				_ = fp.Close()
				return nil, fmt.Errorf("connection to %s not ready: %v", addr, s)
			}
		}
	}
	return fp, nil
}

func (fp *fixedPool) conn() *grpc.ClientConn {
	return fp.conns[fp.next.Add(1)%uint32(len(fp.conns))]
}

func (fp *fixedPool) Invoke(ctx context.Context, method string, args, reply any, opts ...grpc.CallOption) error {
	return fp.conn().Invoke(ctx, method, args, reply, opts...)
}

func (fp *fixedPool) NewStream(ctx context.Context, desc *grpc.StreamDesc, method string, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	return fp.conn().NewStream(ctx, desc, method, opts...)
}

// Close closes every connection.
func (fp *fixedPool) Close() error {
	var errs []error
	for _, cc := range fp.conns {
		errs = append(errs, cc.Close())
	}
	return errors.Join(errs...)
}

var _ io.Closer = (*fixedPool)(nil)
