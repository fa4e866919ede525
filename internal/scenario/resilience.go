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
	// Policy, when set, is the pools' policy. Default the pool's default.
	Policy *pool.Policy
	// Logger receives the pools' logs. Nil discards them.
	Logger *slog.Logger
}

// WithDefaults returns c with every zero field set to its default; calls
// and timeout are the defaults of Calls and CallTimeout, which differ
// between RunSickBackend (3000, 1s) and RunSlowBackend (800, 100ms).
func (c ResilienceConfig) WithDefaults(calls int, timeout time.Duration) ResilienceConfig {
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

// ResilienceResult is what RunSickBackend or RunSlowBackend measured.
type ResilienceResult struct {
	Slow    bool             // the bad backend is slow (RunSlowBackend), not failing
	Config  ResilienceConfig // with the defaults filled in
	Clients []ResilienceClient
}

// ResilienceClient is one client's run against the bad backend.
type ResilienceClient struct {
	Name        string
	Policy      string // the pool's policy; "" for a grpc.ClientConn
	Calls       int
	Failed      int
	BadAttempts int64 // attempts that reached the bad backend, retries included
	Attempts    int64 // attempts that reached any backend
	P50, P99    time.Duration
	ErrorsSeen  string // the errors by code, one message each; "none"
}

// Client returns the client named name, or false.
func (r *ResilienceResult) Client(name string) (ResilienceClient, bool) {
	return byName(r.Clients, func(c ResilienceClient) string { return c.Name }, name)
}

// The clients of RunSickBackend and RunSlowBackend, by name.
const (
	ResilienceRR            = "grpc round_robin"
	ResilienceRRRetry       = "grpc round_robin + retryPolicy"
	ResilienceLeastRequest  = "grpc least_request"
	ResiliencePool          = "pool"
	ResiliencePoolDialRetry = "pool + retryPolicy (dial option)"
	ResiliencePoolBreaker   = "pool + breaker"
	ResiliencePoolBoth      = "pool + breaker + retry"
)

// Table renders the result.
func (r *ResilienceResult) Table() *Table {
	cfg := r.Config
	bad := "sick"
	title := fmt.Sprintf("Sick backend: 1 of %d backends answers every call with Unavailable; %d calls per client from %d goroutines, %v deadline",
		cfg.Backends, cfg.Calls, cfg.Goroutines, cfg.CallTimeout)
	if r.Slow {
		bad = "slow"
		title = fmt.Sprintf("Slow backend: 1 of %d backends answers after %v; %d calls per client from %d goroutines, %v deadline",
			cfg.Backends, cfg.SlowDelay, cfg.Calls, cfg.Goroutines, cfg.CallTimeout)
	}
	t := &Table{
		Title:  title,
		Header: []string{"client", "failed", "failed %", "attempts on " + bad, "attempts", "p50", "p99"},
	}
	for _, c := range r.Clients {
		t.AddRow(c.Name, c.Failed, fmt.Sprintf("%.1f%%", 100*float64(c.Failed)/float64(max(c.Calls, 1))),
			c.BadAttempts, c.Attempts, ms(c.P50), ms(c.P99))
	}
	win := "the win needs WithBreaker and WithRetry: the plain pool fails like round_robin"
	if r.Slow {
		win = "the win needs WithBreaker: the plain pool fails like round_robin, and no retry helps a call whose deadline is spent"
	}
	t.Notes = append(t.Notes,
		win,
		"the pools' policy: "+r.policy(),
		"pool + breaker: breaker.Settings{} (opens after 5 failures in a row, for 10s); + retry: retry.Policy{} (3 attempts, 25ms backoff, budget 20% + 10/s)",
		"grpc + retryPolicy: maxAttempts 3, 25ms backoff ×2 up to 1s, UNAVAILABLE, no retryThrottling; least_request: least_request_experimental, choiceCount 2",
		"attempts are counted on the servers; \"on "+bad+"\" is what reached the "+bad+" backend, a retry included")
	if r.Slow {
		t.Notes = append(t.Notes,
			"DeadlineExceeded is a breaker failure (breaker.DefaultClassifier) but is not retried")
	} else {
		t.Notes = append(t.Notes,
			"least_request does not avoid the sick backend: it fails at once, so it never has more requests outstanding than the others",
			"pool + retryPolicy (dial option): grpc-go's retryPolicy given to the pool's connections retries on the same backend, one address per connection")
	}
	return t
}

// policy returns the pools' policy.
func (r *ResilienceResult) policy() string {
	for _, c := range r.Clients {
		if c.Policy != "" {
			return c.Policy
		}
	}
	return "-"
}

// Summary says in one line what the run showed.
func (r *ResilienceResult) Summary() string {
	name, best, label := "sick", ResiliencePoolBoth, "pool+breaker+retry"
	if r.Slow {
		name, best, label = "slow", ResiliencePoolBreaker, "pool+breaker"
	}
	var parts []string
	for _, n := range [][2]string{{ResilienceRR, "round_robin"}, {ResilienceRRRetry, "+ retryPolicy"}, {ResiliencePool, "pool"}, {best, label}} {
		if c, ok := r.Client(n[0]); ok {
			parts = append(parts, fmt.Sprintf("%s %d", n[1], c.Failed))
		}
	}
	return fmt.Sprintf("%s: failed calls of %d: %s", name, r.Config.Calls, strings.Join(parts, ", "))
}

// RunSickBackend runs cfg.Calls unary calls through each client against
// cfg.Backends backends of which one answers every call with Unavailable:
// grpc-go's round_robin, round_robin with a retryPolicy, least_request, and
// the pool plain, with its breaker, and with breaker and retry. The result
// has each client's failed calls, the attempts the sick backend received,
// and the callers' p50/p99 latency.
func RunSickBackend(ctx context.Context, cfg ResilienceConfig, progress Progress) (*ResilienceResult, error) {
	cfg = cfg.WithDefaults(3000, time.Second)
	rows, err := runResilience(ctx, cfg, func(s *backend.Server) { s.SetFail(codes.Unavailable) }, true, progress)
	if err != nil {
		return nil, fmt.Errorf("scenario: sick: %w", err)
	}
	return &ResilienceResult{Config: cfg, Clients: rows}, nil
}

// RunSlowBackend is RunSickBackend with a slow backend instead: it answers
// every call after cfg.SlowDelay, past the callers' deadline
// (cfg.CallTimeout), so the calls that wait for it fail with
// DeadlineExceeded, which neither grpc-go's retryPolicy nor the pool's
// default retry.Policy retries.
func RunSlowBackend(ctx context.Context, cfg ResilienceConfig, progress Progress) (*ResilienceResult, error) {
	cfg = cfg.WithDefaults(800, 100*time.Millisecond)
	rows, err := runResilience(ctx, cfg, func(s *backend.Server) { s.SetDelay(cfg.SlowDelay) }, false, progress)
	if err != nil {
		return nil, fmt.Errorf("scenario: slow: %w", err)
	}
	return &ResilienceResult{Slow: true, Config: cfg, Clients: rows}, nil
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
func runResilience(ctx context.Context, cfg ResilienceConfig, spoil func(*backend.Server), dialRetry bool, progress Progress) ([]ResilienceClient, error) {
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
			p, err := newPool(ctx, manualResolver(f.addrs()), cfg.Logger, append(opts, policyOption(cfg.Policy)...)...)
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
		{ResilienceRR, grpcClient(resilienceServiceConfig(false))},
		{ResilienceRRRetry, grpcClient(resilienceServiceConfig(true))},
		{ResilienceLeastRequest, grpcClient(leastRequestConfig)},
		{ResiliencePool, poolClient()},
		{ResiliencePoolBreaker, poolClient(pool.WithBreaker(breaker.Settings{}))},
		{ResiliencePoolBoth, poolClient(pool.WithBreaker(breaker.Settings{}), pool.WithRetry(retry.Policy{}))},
	}
	if dialRetry {
		// grpc-go's retryPolicy inside the pool: each connection has one
		// address, so its retries go back to the same backend.
		clients = slices.Insert(clients, 4, client{ResiliencePoolDialRetry,
			poolClient(pool.WithDialOptions(grpc.WithDefaultServiceConfig(resilienceServiceConfig(true))))})
	}
	bad := f.servers[0]
	var rows []ResilienceClient
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
		row.Name, row.Policy = c.name, policyOf(cc)
		progress.say("%s: %d of %d calls failed (%s), %d attempts on %s", c.name, row.Failed, row.Calls, row.ErrorsSeen, row.BadAttempts, bad.Name())
		rows = append(rows, row)
	}
	return rows, nil
}

// runResilienceClient warms cc up with every backend healthy (until each
// has answered, so no client starts half-connected), makes the first
// backend bad, and measures cfg.Calls calls.
func runResilienceClient(ctx context.Context, cfg ResilienceConfig, f *fleet, cc grpc.ClientConnInterface, spoil func(*backend.Server)) (ResilienceClient, error) {
	ec := echopb.NewEchoClient(cc)
	before := resilienceAttempts(f)
	err := waitUntil(ctx, 10*time.Second, func() bool {
		_ = unaryCall(ctx, ec, time.Second)
		return !slices.Contains(sub(resilienceAttempts(f), before), 0)
	}, func() string { return "warm-up calls per backend: " + counts(sub(resilienceAttempts(f), before)) })
	if err != nil {
		return ResilienceClient{}, err
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
		return ResilienceClient{}, err
	}
	got := sub(resilienceAttempts(f), before)
	slices.Sort(lat)
	return ResilienceClient{
		Calls:       cfg.Calls,
		Failed:      errs.count(),
		BadAttempts: got[0],
		Attempts:    sum(got),
		P50:         percentile(lat, 50),
		P99:         percentile(lat, 99),
		ErrorsSeen:  errs.String(),
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
