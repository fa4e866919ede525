package scenario

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
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
	// Clients, if not empty, names the clients to run (StreamLimitOneConn,
	// StreamLimitFixed, StreamLimitSet, StreamLimitLearned). Default all.
	Clients []string
	// Policy, when set, is the pools' policy. Default the pool's default.
	Policy *pool.Policy
	// Logger receives the pools' logs. Nil discards them.
	Logger *slog.Logger
}

// WithDefaults returns c with every zero field set to its default.
func (c StreamLimitConfig) WithDefaults() StreamLimitConfig {
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

// StreamLimitResult is what RunStreamLimit measured.
type StreamLimitResult struct {
	Config  StreamLimitConfig // with the defaults filled in
	Clients []StreamLimitClient
}

// StreamLimitClient is one client's run of RunStreamLimit.
type StreamLimitClient struct {
	Name   string
	Opened int           // streams open (first echo back) within the window
	Last   time.Duration // when the last of them opened
	Conns  int           // client connections that carried streams, counted on the server
	Most   int           // most streams one connection carried at once, on the server
	Limit  int64         // the pool's stream limit in Stats; -1: not a pool
	Failed int           // streams that failed (the run's own cancellation aside)
}

// Client returns the client named name, or false.
func (r *StreamLimitResult) Client(name string) (StreamLimitClient, bool) {
	return byName(r.Clients, func(c StreamLimitClient) string { return c.Name }, name)
}

// The clients of RunStreamLimit, by name.
const (
	StreamLimitOneConn = "one grpc.ClientConn"
	StreamLimitFixed   = "fixed pool of ClientConns"
	StreamLimitSet     = "pool, limit set"
	StreamLimitLearned = "pool, limit learned"
)

// Table renders the result.
func (r *StreamLimitResult) Table() *Table {
	cfg := r.Config
	t := &Table{
		Title: fmt.Sprintf("MAX_CONCURRENT_STREAMS: %d long-lived streams opened at once, server admits %d per connection",
			cfg.Streams, cfg.ServerLimit),
		Header: []string{"client", fmt.Sprintf("open in %v", cfg.Window), "last open", "conns", "most/conn", "limit in Stats", "failed"},
	}
	for _, c := range r.Clients {
		last, lim := "-", "-"
		if c.Opened > 0 {
			last = ms(c.Last)
		}
		if c.Limit >= 0 {
			lim = fmt.Sprint(c.Limit)
		}
		t.AddRow(c.Name, fmt.Sprintf("%d / %d", c.Opened, cfg.Streams), last, c.Conns, c.Most, lim, c.Failed)
	}
	t.Notes = append(t.Notes,
		fmt.Sprintf("%s: %d grpc.ClientConns taken in turn, as googleapis' transport/grpc pool; %s: WithSize(1), WithMaxStreamsPerConn(%d); "+
			"%s: WithSize(1), learned from streams stalled past WithStreamStallTimeout(%v)",
			StreamLimitFixed, cfg.Conns, StreamLimitSet, cfg.ServerLimit, StreamLimitLearned, cfg.StallTimeout),
		"open: the stream's first echo came back; conns and most/conn are counted on the server, per client connection",
		fmt.Sprintf("streams not open within %v are queued by gRPC (none fails); they open when earlier ones end", cfg.Window))
	if cfg.Policy != nil {
		t.Notes = append(t.Notes, "the pools' policy: "+policyName(*cfg.Policy))
	}
	return t
}

// Summary says in one line what the run showed.
func (r *StreamLimitResult) Summary() string {
	var parts []string
	for _, n := range [][2]string{{StreamLimitOneConn, "ClientConn"}, {StreamLimitFixed, "fixed pool"}, {StreamLimitSet, "pool"}, {StreamLimitLearned, "learning"}} {
		if c, ok := r.Client(n[0]); ok {
			parts = append(parts, fmt.Sprintf("%s %d", n[1], c.Opened))
		}
	}
	return fmt.Sprintf("streamlimit: open of %d (%d per conn): %s", r.Config.Streams, r.Config.ServerLimit, strings.Join(parts, ", "))
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
func RunStreamLimit(ctx context.Context, cfg StreamLimitConfig, progress Progress) (*StreamLimitResult, error) {
	cfg = cfg.WithDefaults()
	limit := int(cfg.ServerLimit)
	res := &StreamLimitResult{Config: cfg}
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
			all := append(append([]pool.Option{pool.WithSize(1)}, opts...), policyOption(cfg.Policy)...)
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
		{StreamLimitOneConn, func(addr string) (grpc.ClientConnInterface, func() (int64, error), error) {
			return plain(addr, 1)
		}},
		{StreamLimitFixed, func(addr string) (grpc.ClientConnInterface, func() (int64, error), error) {
			return plain(addr, cfg.Conns)
		}},
		{StreamLimitSet, pooled(pool.WithMaxStreamsPerConn(limit))},
		{StreamLimitLearned, pooled(pool.WithStreamStallTimeout(cfg.StallTimeout))},
	}
	for _, c := range clients {
		if len(cfg.Clients) > 0 && !slices.Contains(cfg.Clients, c.name) {
			continue
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		progress.say("stream limit: %s: opening %d streams", c.name, cfg.Streams)
		r, err := measureStreamLimit(ctx, cfg, c.open)
		if err != nil {
			return nil, fmt.Errorf("scenario: stream limit, %s: %w", c.name, err)
		}
		progress.say("stream limit: %s: %d of %d open within %v", c.name, r.Opened, cfg.Streams, cfg.Window)
		r.Name = c.name
		res.Clients = append(res.Clients, r)
	}
	return res, nil
}

func measureStreamLimit(ctx context.Context, cfg StreamLimitConfig,
	open func(addr string) (grpc.ClientConnInterface, func() (int64, error), error)) (StreamLimitClient, error) {
	res := StreamLimitClient{Limit: -1}
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
			res.Opened++
			res.Last = max(res.Last, d)
		}
	}
wait:
	for res.Opened < cfg.Streams {
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
	for drained := false; !drained && res.Opened < cfg.Streams; {
		select {
		case d := <-echoed:
			took(d)
		default:
			drained = true
		}
	}
	res.Conns, res.Most = count.snapshot()
	cancel()
	wg.Wait()
	res.Failed = int(failed.Load())
	closed = true
	if res.Limit, err = closeClient(); err != nil {
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
