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
	// Logger receives the pools' logs. Nil discards them.
	Logger *slog.Logger
}

func (c DirectConfig) withDefaults() DirectConfig {
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
	return c
}

// RunDirect compares clients that see every backend address (a headless
// service, a static list): grpc-go with pick_first (its default), grpc-go
// with round_robin, and the pool with RoundRobin and with LeastActive. Each
// opens long-lived streams (counted per backend on the servers) and then
// makes unary calls (spread and latency).
func RunDirect(ctx context.Context, cfg DirectConfig, progress Progress) (*Table, error) {
	cfg = cfg.withDefaults()
	f, err := startFleet(cfg.Backends)
	if err != nil {
		return nil, err
	}
	defer f.stop()
	t := &Table{
		Title: fmt.Sprintf("Direct: %d backends resolved, %d long-lived streams, %d unary calls (%d in flight)",
			cfg.Backends, cfg.Streams, cfg.Calls, cfg.Concurrency),
		Header: []string{"client", "streams max/mean", "streams per backend", "unary max/mean", "unary p50", "unary p99", "calls/s"},
	}
	type client struct {
		name string
		all  bool // balances per call, so warming up reaches every backend
		open func() (grpc.ClientConnInterface, func() error, error)
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
	poolClient := func(pol pool.Policy) func() (grpc.ClientConnInterface, func() error, error) {
		return func() (grpc.ClientConnInterface, func() error, error) {
			p, err := newPool(ctx, manualResolver(f.addrs()), cfg.Logger, pool.WithPolicy(pol))
			if err != nil {
				return nil, nil, err
			}
			if err := waitAllReady(ctx, p, cfg.Backends, pool.DefaultSize); err != nil {
				_ = p.Close()
				return nil, nil, err
			}
			return p, p.Close, nil
		}
	}
	clients := []client{
		{"grpc pick_first", false, grpcClient()},
		{"grpc round_robin", true, grpcClient(grpc.WithDefaultServiceConfig(roundRobinConfig))},
		{"pool RoundRobin", true, poolClient(pool.RoundRobin)},
		{"pool LeastActive", true, poolClient(pool.LeastActive)},
	}
	for _, c := range clients {
		progress.say("%s: connecting", c.name)
		cc, closeCC, err := c.open()
		if err != nil {
			return nil, fmt.Errorf("scenario: direct: %s: %w", c.name, err)
		}
		row, err := runDirectClient(ctx, cfg, f, cc, c.all, func(format string, args ...any) {
			progress.say("%s: "+format, append([]any{c.name}, args...)...)
		})
		_ = closeCC()
		if err != nil {
			return nil, fmt.Errorf("scenario: direct: %s: %w", c.name, err)
		}
		t.AddRow(append([]any{c.name}, row...)...)
	}
	t.Notes = append(t.Notes,
		"streams per backend ("+strings.Join(f.names(), " / ")+") counted on the servers; unary spread from the servers' call counts",
		"max/mean 1.00 is an even spread, "+fmt.Sprint(cfg.Backends)+".00 is all on one backend; latency is loopback, so it shows client overhead")
	return t, nil
}

func runDirectClient(ctx context.Context, cfg DirectConfig, f *fleet, cc grpc.ClientConnInterface, all bool, progress Progress) ([]any, error) {
	ec := echopb.NewEchoClient(cc)
	// Warm up: connect, and for per-call balancers until every backend has
	// answered, so no client starts on a half-connected set.
	before := f.unary()
	err := waitUntil(ctx, 10*time.Second, func() bool {
		_ = unaryCall(ctx, ec, time.Second)
		got := sub(f.unary(), before)
		if !all {
			return sum(got) > 0
		}
		return !slices.Contains(got, 0)
	}, func() string { return "warm-up calls per backend: " + counts(sub(f.unary(), before)) })
	if err != nil {
		return nil, err
	}

	progress.say("opening %d streams", cfg.Streams)
	streams, err := measureStreams(ctx, f, cc, cfg.Streams)
	if err != nil {
		return nil, err
	}

	progress.say("%d unary calls", cfg.Calls)
	before = f.unary()
	lat := make([]time.Duration, cfg.Calls)
	var next atomic.Int64
	var errs errCount
	start := time.Now()
	var wg sync.WaitGroup
	for range cfg.Concurrency {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= cfg.Calls {
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
	elapsed := time.Since(start)
	if errs.count() > 0 {
		return nil, fmt.Errorf("%d of %d unary calls failed: %v", errs.count(), cfg.Calls, &errs)
	}
	calls := sub(f.unary(), before)
	slices.Sort(lat)
	return []any{
		backend.MaxOverMean(streams), counts(streams),
		backend.MaxOverMean(calls), ms(percentile(lat, 50)), ms(percentile(lat, 99)),
		fmt.Sprintf("%.0f", float64(cfg.Calls)/elapsed.Seconds()),
	}, nil
}
