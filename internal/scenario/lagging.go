package scenario

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"

	"github.com/grpcpool/grpcpool/example/echopb"
	"github.com/grpcpool/grpcpool/internal/backend"
	"github.com/grpcpool/grpcpool/pool"
)

// LaggingConfig configures RunLagging. The zero value gives the
// documented sizes; negative values count as zero.
type LaggingConfig struct {
	// Backends the resolver reports; the first one lags. Default 5; fewer
	// than 2 is raised to 2.
	Backends int
	// Rate is the calls per second of each client's open loop: calls start
	// on schedule whether or not earlier ones have ended. Default 400.
	Rate int
	// Duration is each client's load in each phase, healthy and lagging,
	// split over Rounds. Default 3 s.
	Duration time.Duration
	// Rounds splits each phase: in each round every client runs its load
	// for Duration/Rounds in turn. Default 5.
	Rounds int
	// Delay is how much later the lagging backend answers. Default 200 ms.
	Delay time.Duration
	// CallTimeout is each call's deadline. Default 2 s: no call fails for
	// the lag alone.
	CallTimeout time.Duration
	// Policy, when set, is the one policy of the pools; unset, a pool is
	// measured with each of RoundRobin, LeastActive and PeakEWMA.
	Policy *pool.Policy
	// Logger receives the pools' logs. Nil discards them.
	Logger *slog.Logger
}

// WithDefaults returns c with every zero field set to its default.
func (c LaggingConfig) WithDefaults() LaggingConfig {
	if c.Backends <= 0 {
		c.Backends = 5
	}
	c.Backends = max(c.Backends, 2)
	if c.Rate <= 0 {
		c.Rate = 400
	}
	if c.Duration <= 0 {
		c.Duration = 3 * time.Second
	}
	if c.Rounds <= 0 {
		c.Rounds = 5
	}
	if c.Delay <= 0 {
		c.Delay = 200 * time.Millisecond
	}
	if c.CallTimeout <= 0 {
		c.CallTimeout = 2 * time.Second
	}
	return c
}

// LaggingResult is what RunLagging measured.
type LaggingResult struct {
	Config  LaggingConfig // with the defaults filled in
	Clients []LaggingClient
}

// LaggingPhase is one client's load in one phase of RunLagging.
type LaggingPhase struct {
	Calls    int
	Failed   int
	Attempts []int64 // attempts each backend received, counted on the servers; the first lags
	P50, P99 time.Duration
	P999     time.Duration // the 99.9th percentile
}

// OnFirst is the share of the attempts the first backend received.
func (p LaggingPhase) OnFirst() float64 {
	if len(p.Attempts) == 0 {
		return 0
	}
	return float64(p.Attempts[0]) / float64(max(sum(p.Attempts), 1))
}

// LaggingClient is one client's run of RunLagging: every backend healthy,
// then the first one lagging.
type LaggingClient struct {
	Name             string
	Healthy, Lagging LaggingPhase
}

// Client returns the client named name, or false.
func (r *LaggingResult) Client(name string) (LaggingClient, bool) {
	return byName(r.Clients, func(c LaggingClient) string { return c.Name }, name)
}

// The grpc-go clients of RunLagging, by name; the pools are "pool " and
// the policy ("pool PeakEWMA").
const (
	LaggingRR           = "grpc round_robin"
	LaggingLeastRequest = "grpc least_request"
)

// Table renders the result.
func (r *LaggingResult) Table() *Table {
	cfg := r.Config
	t := &Table{
		Title: fmt.Sprintf("Lagging backend: open loop of %d calls/s over %d backends, healthy, then the first %v slower",
			cfg.Rate, cfg.Backends, cfg.Delay),
		Header: []string{"client", "max/mean", "p50", "p99", "on lagging", "p50", "p99", "p99.9", "failed"},
	}
	for _, c := range r.Clients {
		h, l := c.Healthy, c.Lagging
		t.AddRow(c.Name, backend.MaxOverMean(h.Attempts), ms(h.P50), ms(h.P99),
			fmt.Sprintf("%.1f%%", 100*l.OnFirst()), ms(l.P50), ms(l.P99), ms(l.P999), l.Failed)
	}
	t.Notes = append(t.Notes,
		fmt.Sprintf("first three columns: every backend healthy; then the first answers %v later. Each client makes %d calls "+
			"per phase, starting on schedule whatever earlier calls do, %v deadline; the clients take turns in %d rounds per phase",
			cfg.Delay, int(float64(cfg.Rate)*cfg.Duration.Seconds()), cfg.CallTimeout, cfg.Rounds),
		"max/mean: attempts per backend counted on the servers, healthy phase; \"on lagging\": the lagging backend's share of attempts",
		"least_request: least_request_experimental, choiceCount 2; the pools: WithPolicy only, default size 2, no breaker")
	return t
}

// Summary says in one line what the run showed.
func (r *LaggingResult) Summary() string {
	parts := make([]string, 0, len(r.Clients))
	pools := 0
	for _, c := range r.Clients {
		if c.Name == LaggingLeastRequest {
			continue // in the table; the line fits MaxWidth without it
		}
		name := strings.TrimPrefix(c.Name, "grpc ")
		if strings.HasPrefix(name, "pool ") {
			if pools++; pools > 1 {
				name = strings.TrimPrefix(name, "pool ")
			}
		}
		parts = append(parts, fmt.Sprintf("%s %s", name, ms(c.Lagging.P99)))
	}
	return "lagging p99: " + strings.Join(parts, ", ")
}

// RunLagging sends each client an open loop of cfg.Rate unary calls per
// second over cfg.Backends backends, first all healthy, then with the
// first one answering cfg.Delay later: grpc-go's round_robin and
// least_request, and the pool with RoundRobin, LeastActive and PeakEWMA
// (or cfg.Policy). The clients stay open through both phases and take
// turns in cfg.Rounds rounds per phase, so the machine's load falls on all
// alike. The result has each client's spread, latency and the lagging
// backend's share of the attempts.
func RunLagging(ctx context.Context, cfg LaggingConfig, progress Progress) (*LaggingResult, error) {
	cfg = cfg.WithDefaults()
	f, err := startFleet(cfg.Backends)
	if err != nil {
		return nil, err
	}
	defer f.stop()
	type client struct {
		name  string
		cc    grpc.ClientConnInterface
		close func() error
		lat   [2][]time.Duration
		phase [2]LaggingPhase
	}
	var clients []*client
	defer func() {
		for _, c := range clients {
			_ = c.close()
		}
	}()
	open := func(name string, cc grpc.ClientConnInterface, closeCC func() error) error {
		clients = append(clients, &client{name: name, cc: cc, close: closeCC})
		progress.say("%s: warming up", name)
		return warmUp(ctx, f, echopb.NewEchoClient(cc), true)
	}
	for _, sc := range [][2]string{{LaggingRR, roundRobinConfig}, {LaggingLeastRequest, leastRequestConfig}} {
		cc, err := grpc.NewClient(manualTarget, insecureCreds, grpc.WithResolvers(manualResolver(f.addrs())),
			grpc.WithDefaultServiceConfig(sc[1]))
		if err != nil {
			return nil, fmt.Errorf("scenario: lagging: %s: %w", sc[0], err)
		}
		if err := open(sc[0], cc, cc.Close); err != nil {
			return nil, fmt.Errorf("scenario: lagging: %s: %w", sc[0], err)
		}
	}
	pols := []pool.Policy{pool.RoundRobin, pool.LeastActive, pool.PeakEWMA}
	if cfg.Policy != nil {
		pols = []pool.Policy{*cfg.Policy}
	}
	for _, pol := range pols {
		name := "pool " + policyName(pol)
		p, err := newPool(ctx, manualResolver(f.addrs()), cfg.Logger, pool.WithPolicy(pol))
		if err != nil {
			return nil, fmt.Errorf("scenario: lagging: %s: %w", name, err)
		}
		if err := waitAllReady(ctx, p, cfg.Backends, pool.DefaultSize); err != nil {
			_ = p.Close()
			return nil, fmt.Errorf("scenario: lagging: %s: %w", name, err)
		}
		if err := open(name, p, p.Close); err != nil {
			return nil, fmt.Errorf("scenario: lagging: %s: %w", name, err)
		}
	}

	slice := cfg.Duration / time.Duration(cfg.Rounds)
	for ph, label := range []string{"healthy", "lagging"} {
		if ph == 1 {
			f.servers[0].SetDelay(cfg.Delay)
		}
		for r := range cfg.Rounds {
			for i := range clients {
				c := clients[(i+r)%len(clients)]
				progress.say("%s, round %d of %d: %s", label, r+1, cfg.Rounds, c.name)
				before := resilienceAttempts(f)
				lat, failed, err := openLoop(ctx, echopb.NewEchoClient(c.cc), cfg.Rate, slice, cfg.CallTimeout)
				if err != nil {
					return nil, fmt.Errorf("scenario: lagging: %s: %w", c.name, err)
				}
				got := sub(resilienceAttempts(f), before)
				p := &c.phase[ph]
				if p.Attempts == nil {
					p.Attempts = make([]int64, cfg.Backends)
				}
				for j, n := range got {
					p.Attempts[j] += n
				}
				p.Calls += len(lat)
				p.Failed += failed
				c.lat[ph] = append(c.lat[ph], lat...)
			}
		}
	}
	res := &LaggingResult{Config: cfg}
	for _, c := range clients {
		lc := LaggingClient{Name: c.name}
		for ph, dst := range []*LaggingPhase{&lc.Healthy, &lc.Lagging} {
			lat := c.lat[ph]
			slices.Sort(lat)
			*dst = c.phase[ph]
			dst.P50, dst.P99, dst.P999 = percentile(lat, 50), percentile(lat, 99), percentile(lat, 99.9)
		}
		res.Clients = append(res.Clients, lc)
	}
	return res, nil
}

// openLoop starts rate calls a second for d, each on schedule whether or
// not the earlier ones have ended (a late start does not shift the later
// ones), and returns every call's latency and how many failed.
func openLoop(ctx context.Context, ec echopb.EchoClient, rate int, d time.Duration, timeout time.Duration) ([]time.Duration, int, error) {
	n := max(int(float64(rate)*d.Seconds()), 1)
	interval := time.Second / time.Duration(rate)
	lat := make([]time.Duration, n)
	var errs errCount
	var wg sync.WaitGroup
	start := time.Now()
	for i := range n {
		if err := sleep(ctx, time.Until(start.Add(time.Duration(i)*interval))); err != nil {
			wg.Wait()
			return nil, 0, err
		}
		wg.Go(func() {
			t0 := time.Now()
			if err := unaryCall(ctx, ec, timeout); err != nil {
				errs.add(err)
			}
			lat[i] = time.Since(t0)
		})
	}
	wg.Wait()
	return lat, errs.count(), ctx.Err()
}
