package scenario

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/balancer/leastrequest" // registers least_request_experimental
	"google.golang.org/grpc/codes"

	"github.com/grpcpool/grpcpool/breaker"
	"github.com/grpcpool/grpcpool/example/echopb"
	"github.com/grpcpool/grpcpool/internal/backend"
	"github.com/grpcpool/grpcpool/pool"
	"github.com/grpcpool/grpcpool/retry"
)

// ResilienceConfig configures RunSickBackend and RunSlowBackend. The zero
// value gives the documented sizes; negative values count as zero.
type ResilienceConfig struct {
	// Backends the resolver reports; the first one is the bad one.
	// Default 4; fewer than 2 is raised to 2.
	Backends int
	// Calls is how many unary calls each client makes. Default 3000 for
	// RunSickBackend, 800 for RunSlowBackend.
	Calls int
	// Goroutines make the calls, one call in flight each. Default 16.
	Goroutines int
	// CallTimeout is each call's deadline. Default 1s for RunSickBackend;
	// 100ms for RunSlowBackend, whose slow backend answers after SlowDelay.
	CallTimeout time.Duration
	// SlowDelay is how long RunSlowBackend's slow backend waits before it
	// answers. Default 200ms: past the default CallTimeout, so every call
	// that waits for it fails with DeadlineExceeded.
	SlowDelay time.Duration
	// Logger receives the pools' logs. Nil discards them.
	Logger *slog.Logger
}

func (c ResilienceConfig) withDefaults(calls int, timeout time.Duration) ResilienceConfig {
	if c.Backends <= 0 {
		c.Backends = 4
	}
	c.Backends = max(c.Backends, 2)
	if c.Calls <= 0 {
		c.Calls = calls
	}
	if c.Goroutines <= 0 {
		c.Goroutines = 16
	}
	if c.CallTimeout <= 0 {
		c.CallTimeout = timeout
	}
	if c.SlowDelay <= 0 {
		c.SlowDelay = 200 * time.Millisecond
	}
	return c
}

// RunSickBackend runs cfg.Calls unary calls through each client against
// cfg.Backends backends of which one answers every call with Unavailable:
// grpc-go's round_robin, round_robin with a retryPolicy, least_request, and
// the pool plain, with its breaker, and with breaker and retry. The table
// has each client's failed calls, the attempts the sick backend received,
// and the callers' p50/p99 latency.
func RunSickBackend(ctx context.Context, cfg ResilienceConfig, progress Progress) (*Table, error) {
	cfg = cfg.withDefaults(3000, time.Second)
	rows, err := runResilience(ctx, cfg, func(s *backend.Server) { s.SetFail(codes.Unavailable) }, true, progress)
	if err != nil {
		return nil, fmt.Errorf("scenario: sick: %w", err)
	}
	t := resilienceTable(fmt.Sprintf("Sick backend: 1 of %d backends answers every call with Unavailable; %d calls per client from %d goroutines, %v deadline",
		cfg.Backends, cfg.Calls, cfg.Goroutines, cfg.CallTimeout), rows)
	t.Notes = append(t.Notes,
		"attempts are counted on the servers; \"on sick\" is what reached the sick backend, a retry included",
		"least_request does not avoid the sick backend: it fails at once, so it never has more requests outstanding than the others",
		"pool + retryPolicy (dial option): grpc-go's retryPolicy given to the pool's connections retries on the same backend, one address per connection")
	return t, nil
}

// RunSlowBackend is RunSickBackend with a slow backend instead: it answers
// every call after cfg.SlowDelay, past the callers' deadline
// (cfg.CallTimeout), so the calls that wait for it fail with
// DeadlineExceeded, which neither grpc-go's retryPolicy nor the pool's
// default retry.Policy retries.
func RunSlowBackend(ctx context.Context, cfg ResilienceConfig, progress Progress) (*Table, error) {
	cfg = cfg.withDefaults(800, 100*time.Millisecond)
	rows, err := runResilience(ctx, cfg, func(s *backend.Server) { s.SetDelay(cfg.SlowDelay) }, false, progress)
	if err != nil {
		return nil, fmt.Errorf("scenario: slow: %w", err)
	}
	t := resilienceTable(fmt.Sprintf("Slow backend: 1 of %d backends answers after %v; %d calls per client from %d goroutines, %v deadline",
		cfg.Backends, cfg.SlowDelay, cfg.Calls, cfg.Goroutines, cfg.CallTimeout), rows)
	t.Header[3] = "attempts on slow"
	t.Notes = append(t.Notes,
		"attempts are counted on the servers; \"on slow\" is what reached the slow backend",
		"DeadlineExceeded is a breaker failure (breaker.DefaultClassifier) but not retried: the caller's deadline is spent")
	return t, nil
}

// resilienceRow is one client's result.
type resilienceRow struct {
	client      string
	calls       int
	failed      int
	badAttempts int64 // attempts that reached the bad backend
	attempts    int64 // attempts that reached any backend
	p50, p99    time.Duration
	errs        string
}

func resilienceTable(title string, rows []resilienceRow) *Table {
	t := &Table{
		Title:  title,
		Header: []string{"client", "failed", "failed %", "attempts on sick", "attempts", "p50", "p99"},
	}
	for _, r := range rows {
		t.AddRow(r.client, r.failed, fmt.Sprintf("%.1f%%", 100*float64(r.failed)/float64(r.calls)),
			r.badAttempts, r.attempts, ms(r.p50), ms(r.p99))
	}
	t.Notes = append(t.Notes,
		"pool + breaker: breaker.Settings{} (opens after 5 failures in a row, for 10s); + retry: retry.Policy{} (3 attempts, 25ms backoff, budget 20% + 10/s)",
		"grpc + retryPolicy: maxAttempts 3, 25ms backoff ×2 up to 1s, UNAVAILABLE, no retryThrottling; least_request: least_request_experimental, choiceCount 2")
	return t
}

// resilienceServiceConfig returns grpc-go service configs for the baseline
// clients.
func resilienceServiceConfig(retryPolicy bool) string {
	if !retryPolicy {
		return roundRobinConfig
	}
	return `{"loadBalancingConfig":[{"round_robin":{}}],"methodConfig":[{"name":[{"service":"` +
		echopb.Echo_ServiceDesc.ServiceName + `"}],"retryPolicy":{"maxAttempts":3,"initialBackoff":"0.025s",` +
		`"maxBackoff":"1s","backoffMultiplier":2,"retryableStatusCodes":["UNAVAILABLE"]}}]}`
}

var leastRequestConfig = `{"loadBalancingConfig":[{"` + leastrequest.Name + `":{"choiceCount":2}}]}`

// runResilience measures every client against a fresh fleet whose first
// backend is made bad by spoil once the client is warm. With dialRetry it
// also measures the pool with grpc-go's retryPolicy in its dial options.
func runResilience(ctx context.Context, cfg ResilienceConfig, spoil func(*backend.Server), dialRetry bool, progress Progress) ([]resilienceRow, error) {
	f, err := startFleet(cfg.Backends)
	if err != nil {
		return nil, err
	}
	defer f.stop()
	type client struct {
		name string
		open func() (grpc.ClientConnInterface, func() error, error)
	}
	grpcClient := func(serviceConfig string) func() (grpc.ClientConnInterface, func() error, error) {
		return func() (grpc.ClientConnInterface, func() error, error) {
			cc, err := grpc.NewClient(manualTarget, insecureCreds, grpc.WithResolvers(manualResolver(f.addrs())),
				grpc.WithDefaultServiceConfig(serviceConfig))
			if err != nil {
				return nil, nil, err
			}
			return cc, cc.Close, nil
		}
	}
	poolClient := func(opts ...pool.Option) func() (grpc.ClientConnInterface, func() error, error) {
		return func() (grpc.ClientConnInterface, func() error, error) {
			p, err := newPool(ctx, manualResolver(f.addrs()), cfg.Logger, opts...)
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
		{"grpc round_robin", grpcClient(resilienceServiceConfig(false))},
		{"grpc round_robin + retryPolicy", grpcClient(resilienceServiceConfig(true))},
		{"grpc least_request", grpcClient(leastRequestConfig)},
		{"pool", poolClient()},
		{"pool + breaker", poolClient(pool.WithBreaker(breaker.Settings{}))},
		{"pool + breaker + retry", poolClient(pool.WithBreaker(breaker.Settings{}), pool.WithRetry(retry.Policy{}))},
	}
	if dialRetry {
		// grpc-go's retryPolicy inside the pool: each connection has one
		// address, so its retries go back to the same backend.
		clients = slices.Insert(clients, 4, client{"pool + retryPolicy (dial option)",
			poolClient(pool.WithDialOptions(grpc.WithDefaultServiceConfig(resilienceServiceConfig(true))))})
	}
	bad := f.servers[0]
	var rows []resilienceRow
	for _, c := range clients {
		progress.say("%s: connecting", c.name)
		cc, closeCC, err := c.open()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", c.name, err)
		}
		row, err := runResilienceClient(ctx, cfg, f, cc, spoil)
		bad.SetOK()
		_ = closeCC()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", c.name, err)
		}
		row.client = c.name
		progress.say("%s: %d of %d calls failed (%s), %d attempts on %s", c.name, row.failed, row.calls, row.errs, row.badAttempts, bad.Name())
		rows = append(rows, row)
	}
	return rows, nil
}

// runResilienceClient warms cc up with every backend healthy (until each
// has answered, so no client starts half-connected), makes the first
// backend bad, and measures cfg.Calls calls.
func runResilienceClient(ctx context.Context, cfg ResilienceConfig, f *fleet, cc grpc.ClientConnInterface, spoil func(*backend.Server)) (resilienceRow, error) {
	ec := echopb.NewEchoClient(cc)
	before := resilienceAttempts(f)
	err := waitUntil(ctx, 10*time.Second, func() bool {
		_ = unaryCall(ctx, ec, time.Second)
		return !slices.Contains(sub(resilienceAttempts(f), before), 0)
	}, func() string { return "warm-up calls per backend: " + counts(sub(resilienceAttempts(f), before)) })
	if err != nil {
		return resilienceRow{}, err
	}

	spoil(f.servers[0])
	before = resilienceAttempts(f)
	lat := make([]time.Duration, cfg.Calls)
	var next atomic.Int64
	var errs errCount
	var wg sync.WaitGroup
	for range cfg.Goroutines {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= cfg.Calls || ctx.Err() != nil {
					return
				}
				t0 := time.Now()
				if err := unaryCall(ctx, ec, cfg.CallTimeout); err != nil {
					errs.add(err)
				}
				lat[i] = time.Since(t0)
			}
		})
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return resilienceRow{}, err
	}
	got := sub(resilienceAttempts(f), before)
	slices.Sort(lat)
	return resilienceRow{
		calls:       cfg.Calls,
		failed:      errs.count(),
		badAttempts: got[0],
		attempts:    sum(got),
		p50:         percentile(lat, 50),
		p99:         percentile(lat, 99),
		errs:        errs.String(),
	}, nil
}

// resilienceAttempts returns the Echo RPCs each backend of f has received
// so far, every attempt counted.
func resilienceAttempts(f *fleet) []int64 {
	out := make([]int64, len(f.servers))
	for i, s := range f.servers {
		out[i] = s.Calls()
	}
	return out
}
