package scenario

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"

	"github.com/grpcpool/grpcpool/example/echopb"
	"github.com/grpcpool/grpcpool/internal/backend"
	"github.com/grpcpool/grpcpool/pool"
)

// DirectConfig configures RunDirect. The zero value gives the documented
// sizes.
type DirectConfig struct {
	// Backends the resolver reports. Default 6.
	Backends int
	// Streams is how many long-lived Bidi streams each client opens.
	// Default 600.
	Streams int
	// Calls is how many unary calls each client makes. Default 10000.
	Calls int
	// Concurrency is how many unary calls are in flight at once. Default 8.
	Concurrency int
	// Rounds splits the unary calls: in each round every client makes
	// Calls/Rounds of them in turn. Default 20.
	Rounds int
	// PoolOptions are added to every pool's options. The tests add
	// pool.WithStreamStallTimeout(0), so that a stream slowed by a busy
	// machine is not taken for one stalled at a stream limit and moved.
	PoolOptions []pool.Option
	// Policy, when set, is the one policy of the pools, at the default size
	// and at WithSize(1); unset, the pools are RoundRobin (at both sizes),
	// LeastActive and PeakEWMA.
	Policy *pool.Policy
	// Logger receives the pools' logs. Nil discards them.
	Logger *slog.Logger
}

// WithDefaults returns c with every zero field set to its default.
func (c DirectConfig) WithDefaults() DirectConfig {
	if c.Backends <= 0 {
		c.Backends = 6
	}
	if c.Streams <= 0 {
		c.Streams = 600
	}
	if c.Calls <= 0 {
		c.Calls = 10000
	}
	if c.Concurrency <= 0 {
		c.Concurrency = 8
	}
	if c.Rounds <= 0 {
		c.Rounds = 20
	}
	c.Rounds = min(c.Rounds, c.Calls)
	return c
}

// DirectResult is what RunDirect measured.
type DirectResult struct {
	Config   DirectConfig // with the defaults filled in
	Backends []string     // the backends' names, in Streams and Unary order
	Clients  []DirectClient
	// The clients whose calls/s the table compares with round_robin's:
	// the pool with the first policy, at its default size and at
	// WithSize(1).
	pool, pool1 string
}

// DirectClient is one client's run of RunDirect.
type DirectClient struct {
	Name  string
	Conns int // connections the client keeps: 1 for pick_first, 1 per backend for round_robin, WithSize per backend for the pool
	// Streams is the long-lived streams open on each backend, counted on
	// the servers; Unary the unary calls each received.
	Streams, Unary []int64
	P50, P99       time.Duration // unary latency
	CallsPerSec    float64       // unary calls/s over the run
}

// StreamsMaxOverMean is the most streams on one backend over the mean.
func (c DirectClient) StreamsMaxOverMean() float64 { return backend.MaxOverMean(c.Streams) }

// UnaryMaxOverMean is the most unary calls on one backend over the mean.
func (c DirectClient) UnaryMaxOverMean() float64 { return backend.MaxOverMean(c.Unary) }

// Client returns the client named name, or false.
func (r *DirectResult) Client(name string) (DirectClient, bool) {
	return byName(r.Clients, func(c DirectClient) string { return c.Name }, name)
}

// The clients of RunDirect, by name.
const (
	DirectPickFirst   = "grpc pick_first"
	DirectRoundRobin  = "grpc round_robin"
	DirectPoolRR      = "pool RoundRobin"
	DirectPoolRRSize1 = "pool RoundRobin, WithSize(1)"
	DirectPoolLA      = "pool LeastActive"
	DirectPoolPE      = "pool PeakEWMA"
)

// directPoolNames returns the names of the pool with policy p at the
// default size and at WithSize(1).
func directPoolNames(p pool.Policy) (string, string) {
	return "pool " + policyName(p), "pool " + policyName(p) + ", WithSize(1)"
}

// ratio returns a's calls/s over b's, or 0 when either is missing.
func (r *DirectResult) ratio(a, b string) float64 {
	ca, ok1 := r.Client(a)
	cb, ok2 := r.Client(b)
	if !ok1 || !ok2 || cb.CallsPerSec == 0 {
		return 0
	}
	return ca.CallsPerSec / cb.CallsPerSec
}

// Table renders the result.
func (r *DirectResult) Table() *Table {
	cfg := r.Config
	t := &Table{
		Title: fmt.Sprintf("Direct: %d backends resolved, %d long-lived streams, %d unary calls (%d in flight)",
			cfg.Backends, cfg.Streams, cfg.Calls, cfg.Concurrency),
		Header: []string{"client", "conns", "streams max/mean", "calls max/mean", "p50", "p99", "calls/s"},
	}
	for _, c := range r.Clients {
		t.AddRow(c.Name, c.Conns, c.StreamsMaxOverMean(), c.UnaryMaxOverMean(), ms(c.P50), ms(c.P99), fmt.Sprintf("%.0f", c.CallsPerSec))
	}
	t.Notes = append(t.Notes,
		"max/mean of the streams and unary calls each backend counted: 1.00 is an even spread, "+fmt.Sprint(cfg.Backends)+".00 all on one backend",
		fmt.Sprintf("calls/s on loopback, client and servers sharing the machine's cores, measures client overhead; "+
			"the clients took turns in %d rounds, so the machine's load fell on all alike. "+
			"With as many connections as round_robin (WithSize(1)) the pool made %.2f× its calls/s; "+
			"at its default WithSize(%d), twice the connections on the same cores, %.2f×. "+
			"On a busy machine the ratios still move from run to run: compare several runs",
			cfg.Rounds, r.ratio(r.pool1, DirectRoundRobin), pool.DefaultSize, r.ratio(r.pool, DirectRoundRobin)),
		"with every address resolved, round_robin spreads calls as well as the pool; the pool's gain is in the other tables")
	return t
}

// Summary says in one line what the run showed.
func (r *DirectResult) Summary() string {
	var parts []string
	for _, n := range [][2]string{{DirectPickFirst, "pick_first"}, {DirectRoundRobin, "round_robin"}, {r.pool, "pool"}} {
		if c, ok := r.Client(n[0]); ok {
			parts = append(parts, fmt.Sprintf("%s %.2f", n[1], c.StreamsMaxOverMean()))
		}
	}
	return fmt.Sprintf("direct: max/mean streams %s; calls/s, equal conns: %.2f×",
		strings.Join(parts, ", "), r.ratio(r.pool1, DirectRoundRobin))
}

// RunDirect compares clients that see every backend address (a headless
// service, a static list): grpc-go with pick_first (its default), grpc-go
// with round_robin, and the pool with RoundRobin (at its default size and
// at WithSize(1), as many connections as round_robin), with LeastActive
// and with PeakEWMA, or with cfg.Policy at both sizes. Each opens
// long-lived streams (counted per backend on the servers, one client at a
// time) and makes unary calls (spread, latency, calls/s), the clients
// taking turns in cfg.Rounds rounds.
func RunDirect(ctx context.Context, cfg DirectConfig, progress Progress) (*DirectResult, error) {
	cfg = cfg.WithDefaults()
	f, err := startFleet(cfg.Backends)
	if err != nil {
		return nil, err
	}
	defer f.stop()
	res := &DirectResult{Config: cfg, Backends: f.names(), pool: DirectPoolRR, pool1: DirectPoolRRSize1}
	type client struct {
		name  string
		conns int
		all   bool // balances per call, so warming up reaches every backend
		open  func() (grpc.ClientConnInterface, func() error, error)
	}
	grpcClient := func(opts ...grpc.DialOption) func() (grpc.ClientConnInterface, func() error, error) {
		return func() (grpc.ClientConnInterface, func() error, error) {
			all := append([]grpc.DialOption{insecureCreds, grpc.WithResolvers(manualResolver(f.addrs()))}, opts...)
			cc, err := grpc.NewClient(manualTarget, all...)
			if err != nil {
				return nil, nil, err
			}
			return cc, cc.Close, nil
		}
	}
	poolClient := func(size int, pol pool.Policy) func() (grpc.ClientConnInterface, func() error, error) {
		return func() (grpc.ClientConnInterface, func() error, error) {
			opts := append([]pool.Option{pool.WithPolicy(pol), pool.WithSize(size)}, cfg.PoolOptions...)
			p, err := newPool(ctx, manualResolver(f.addrs()), cfg.Logger, opts...)
			if err != nil {
				return nil, nil, err
			}
			if err := waitAllReady(ctx, p, cfg.Backends, size); err != nil {
				_ = p.Close()
				return nil, nil, err
			}
			return p, p.Close, nil
		}
	}
	n, size := cfg.Backends, pool.DefaultSize
	clients := []client{
		{DirectPickFirst, 1, false, grpcClient()},
		{DirectRoundRobin, n, true, grpcClient(grpc.WithDefaultServiceConfig(roundRobinConfig))},
		{DirectPoolRR, n * size, true, poolClient(size, pool.RoundRobin)},
		{DirectPoolRRSize1, n, true, poolClient(1, pool.RoundRobin)},
		{DirectPoolLA, n * size, true, poolClient(size, pool.LeastActive)},
		{DirectPoolPE, n * size, true, poolClient(size, pool.PeakEWMA)},
	}
	if cfg.Policy != nil {
		res.pool, res.pool1 = directPoolNames(*cfg.Policy)
		clients = append(clients[:2],
			client{res.pool, n * size, true, poolClient(size, *cfg.Policy)},
			client{res.pool1, n, true, poolClient(1, *cfg.Policy)})
	}
	// Every client is connected and warmed up first; the streams are
	// counted one client at a time; the unary calls run in rounds, each
	// client taking its turn in every round, so that a change in the
	// machine's load falls on all of them alike.
	type open struct {
		client
		cc    grpc.ClientConnInterface
		close func() error
		lat   []time.Duration
		took  time.Duration
		dc    DirectClient
	}
	var opened []*open
	defer func() {
		for _, o := range opened {
			_ = o.close()
		}
	}()
	for _, c := range clients {
		progress.say("%s: connecting", c.name)
		cc, closeCC, err := c.open()
		if err != nil {
			return nil, fmt.Errorf("scenario: direct: %s: %w", c.name, err)
		}
		o := &open{client: c, cc: cc, close: closeCC}
		opened = append(opened, o)
		if err := warmUp(ctx, f, echopb.NewEchoClient(cc), c.all); err != nil {
			return nil, fmt.Errorf("scenario: direct: %s: %w", c.name, err)
		}
	}
	for _, o := range opened {
		progress.say("%s: opening %d streams", o.name, cfg.Streams)
		streams, err := measureStreams(ctx, f, o.cc, cfg.Streams)
		if err != nil {
			return nil, fmt.Errorf("scenario: direct: %s: %w", o.name, err)
		}
		o.dc = DirectClient{Name: o.name, Conns: o.conns, Streams: streams, Unary: make([]int64, cfg.Backends)}
	}
	for r := range cfg.Rounds {
		calls := cfg.Calls / cfg.Rounds
		if r < cfg.Calls%cfg.Rounds {
			calls++
		}
		progress.say("unary calls, round %d of %d", r+1, cfg.Rounds)
		for i := range opened {
			o := opened[(i+r)%len(opened)]
			before := f.unary()
			lat, took, err := unaryLoad(ctx, echopb.NewEchoClient(o.cc), calls, cfg.Concurrency)
			if err != nil {
				return nil, fmt.Errorf("scenario: direct: %s: %w", o.name, err)
			}
			for j, n := range sub(f.unary(), before) {
				o.dc.Unary[j] += n
			}
			o.lat = append(o.lat, lat...)
			o.took += took
		}
	}
	for _, o := range opened {
		slices.Sort(o.lat)
		o.dc.P50, o.dc.P99 = percentile(o.lat, 50), percentile(o.lat, 99)
		o.dc.CallsPerSec = float64(len(o.lat)) / o.took.Seconds()
		res.Clients = append(res.Clients, o.dc)
	}
	return res, nil
}

// warmUp makes calls until the client is connected and, for per-call
// balancers (all), until every backend has answered, so no client starts
// on a half-connected set.
func warmUp(ctx context.Context, f *fleet, ec echopb.EchoClient, all bool) error {
	before := f.unary()
	return waitUntil(ctx, 10*time.Second, func() bool {
		_ = unaryCall(ctx, ec, time.Second)
		got := sub(f.unary(), before)
		if !all {
			return sum(got) > 0
		}
		return !slices.Contains(got, 0)
	}, func() string { return "warm-up calls per backend: " + counts(sub(f.unary(), before)) })
}

// unaryLoad makes n unary calls, conc at a time, and returns each call's
// latency and the time all took. Any failed call is an error.
func unaryLoad(ctx context.Context, ec echopb.EchoClient, n, conc int) ([]time.Duration, time.Duration, error) {
	lat := make([]time.Duration, n)
	var next atomic.Int64
	var errs errCount
	start := time.Now()
	var wg sync.WaitGroup
	for range conc {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				t0 := time.Now()
				if err := unaryCall(ctx, ec, 5*time.Second); err != nil {
					errs.add(err)
				}
				lat[i] = time.Since(t0)
			}
		})
	}
	wg.Wait()
	took := time.Since(start)
	if errs.count() > 0 {
		return nil, 0, fmt.Errorf("%d of %d unary calls failed: %v", errs.count(), n, &errs)
	}
	return lat, took, nil
}
