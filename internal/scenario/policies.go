package scenario

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"

	"github.com/grpcpool/grpcpool/internal/backend"
	"github.com/grpcpool/grpcpool/pool"
)

// PoliciesConfig configures RunPolicies. The zero value gives the
// documented sizes.
type PoliciesConfig struct {
	// Calls per client in each case. Default 1000 for the sequential
	// caller, 3000 for the others.
	SeqCalls, Calls int
	// Logger receives the pools' logs. Nil discards them.
	Logger *slog.Logger
}

// policyCase is one of RunPolicies' cases: how many callers, and how the
// first of 4 backends is made bad.
type policyCase struct {
	name       string
	goroutines int
	calls      int
	timeout    time.Duration
	spoil      func(*backend.Server)
}

// PolicyRow is one client's result in one case of RunPolicies.
type PolicyRow struct {
	Case, Client string
	Calls        int
	Failed       int
	OnBad        int64 // attempts the bad backend received
	Attempts     int64
	P50, P99     time.Duration
}

// RunPolicies compares grpc-go's least_request with the pool's
// LeastActive and PeakEWMA on 4 loopback backends, the first of which is
// bad: (a) one sequential caller, the bad backend 20 ms slower; (b) 32
// callers, the bad backend 50 ms slower; (c) 16 callers, the bad backend
// failing every call at once with Unavailable, no breaker. The table gives
// each client's share of attempts on the bad backend, its failed calls
// and the callers' p50/p99.
func RunPolicies(ctx context.Context, cfg PoliciesConfig, progress Progress) (*Table, []PolicyRow, error) {
	if cfg.SeqCalls <= 0 {
		cfg.SeqCalls = 1000
	}
	if cfg.Calls <= 0 {
		cfg.Calls = 3000
	}
	cases := []policyCase{
		{"(a) 1 caller, +20ms", 1, cfg.SeqCalls, time.Second, func(s *backend.Server) { s.SetDelay(20 * time.Millisecond) }},
		{"(b) 32 callers, +50ms", 32, cfg.Calls, time.Second, func(s *backend.Server) { s.SetDelay(50 * time.Millisecond) }},
		{"(c) 16 callers, fails fast", 16, cfg.Calls, time.Second, func(s *backend.Server) { s.SetFail(codes.Unavailable) }},
	}
	f, err := startFleet(4)
	if err != nil {
		return nil, nil, err
	}
	defer f.stop()
	type client struct {
		name string
		open func() (grpc.ClientConnInterface, func() error, error)
	}
	poolClient := func(p pool.Policy) func() (grpc.ClientConnInterface, func() error, error) {
		return func() (grpc.ClientConnInterface, func() error, error) {
			pl, err := newPool(ctx, manualResolver(f.addrs()), cfg.Logger, pool.WithPolicy(p))
			if err != nil {
				return nil, nil, err
			}
			if err := waitAllReady(ctx, pl, 4, pool.DefaultSize); err != nil {
				_ = pl.Close()
				return nil, nil, err
			}
			return pl, pl.Close, nil
		}
	}
	clients := []client{
		{"grpc least_request", func() (grpc.ClientConnInterface, func() error, error) {
			cc, err := grpc.NewClient(manualTarget, insecureCreds, grpc.WithResolvers(manualResolver(f.addrs())),
				grpc.WithDefaultServiceConfig(leastRequestConfig))
			if err != nil {
				return nil, nil, err
			}
			return cc, cc.Close, nil
		}},
		{"pool LeastActive", poolClient(pool.LeastActive)},
		{"pool PeakEWMA", poolClient(pool.PeakEWMA)},
	}
	t := &Table{
		Title:  "Policies: 1 of 4 loopback backends is bad; attempts counted on the servers",
		Header: []string{"case", "client", "on bad", "on bad %", "failed %", "p50", "p99"},
	}
	var rows []PolicyRow
	bad := f.servers[0]
	for _, pc := range cases {
		for _, c := range clients {
			progress.say("%s: %s", pc.name, c.name)
			cc, closeCC, err := c.open()
			if err != nil {
				return nil, nil, fmt.Errorf("scenario: policies: %s: %w", c.name, err)
			}
			rc := ResilienceConfig{Backends: 4, Calls: pc.calls, Goroutines: pc.goroutines, CallTimeout: pc.timeout}
			r, err := runResilienceClient(ctx, rc, f, cc, pc.spoil)
			bad.SetOK()
			_ = closeCC()
			if err != nil {
				return nil, nil, fmt.Errorf("scenario: policies: %s, %s: %w", pc.name, c.name, err)
			}
			row := PolicyRow{Case: pc.name, Client: c.name, Calls: r.Calls, Failed: r.Failed, OnBad: r.BadAttempts,
				Attempts: r.Attempts, P50: r.P50, P99: r.P99}
			rows = append(rows, row)
			t.AddRow(pc.name, c.name, row.OnBad, fmt.Sprintf("%.1f%%", 100*float64(row.OnBad)/float64(max(row.Attempts, 1))),
				fmt.Sprintf("%.1f%%", 100*float64(row.Failed)/float64(row.Calls)), ms(row.P50), ms(row.P99))
		}
	}
	t.Notes = append(t.Notes,
		fmt.Sprintf("(a) %d calls, (b) and (c) %d calls per client; 1s deadline; no breaker, no retry", cfg.SeqCalls, cfg.Calls),
		"least_request: least_request_experimental, choiceCount 2; the pools: WithPolicy only, default size 2")
	return t, rows, nil
}
