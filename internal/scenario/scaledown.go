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
	"google.golang.org/grpc/resolver/manual"

	"github.com/grpcpool/grpcpool/example/echopb"
	"github.com/grpcpool/grpcpool/internal/backend"
	"github.com/grpcpool/grpcpool/pool"
)

// ScaleDownConfig configures RunScaleDown. The zero value gives the
// documented sizes.
type ScaleDownConfig struct {
	// Backends the resolver reports at first; the last one is removed.
	// Default 4; values below 2 mean the default.
	Backends int
	// Rate is the unary calls per second the load aims at. Default 2000.
	Rate int
	// Workers make the calls, each on a fixed schedule. Default 20.
	Workers int
	// Duration of each run; the backend is removed after a third of it.
	// Default 1 s.
	Duration time.Duration
	// StopAfter is how far apart the backend's removal from the resolver's
	// answer and its stop (GracefulStop) are, in the runs where one comes
	// first. Default 250 ms.
	StopAfter time.Duration
	// NoBaseline skips the grpc-go round_robin runs.
	NoBaseline bool
	// Policy, when set, is the pool's policy. Default the pool's default.
	Policy *pool.Policy
	// Logger receives the pools' logs. Nil discards them.
	Logger *slog.Logger
}

// WithDefaults returns c with every zero field set to its default.
func (c ScaleDownConfig) WithDefaults() ScaleDownConfig {
	if c.Backends <= 1 {
		c.Backends = 4
	}
	if c.Rate <= 0 {
		c.Rate = 2000
	}
	if c.Workers <= 0 {
		c.Workers = 20
	}
	if c.Duration <= 0 {
		c.Duration = time.Second
	}
	if c.StopAfter <= 0 {
		c.StopAfter = 250 * time.Millisecond
	}
	return c
}

// ScaleDownResult is what RunScaleDown measured.
type ScaleDownResult struct {
	Config ScaleDownConfig // with the defaults filled in
	Runs   []ScaleDownRun
}

// ScaleDownRun is one client's run of RunScaleDown in one ordering of
// removal and stop.
type ScaleDownRun struct {
	Client       string        // "pool " and its policy ("pool PeakEWMA"), or "grpc round_robin"
	Pool         bool          // the pool, not grpc round_robin
	Order        string        // how removal and stop were ordered
	Calls        int64         // unary calls made
	CallsPerSec  float64       // over the run
	Failed       int           // calls that failed
	AfterRemoval int64         // calls the removed backend received after it was removed
	P99, Slowest time.Duration // call latency
	ErrorsSeen   string        // the errors by code, one message each; "none"
}

// Table renders the result.
func (r *ScaleDownResult) Table() *Table {
	cfg := r.Config
	t := &Table{
		Title: fmt.Sprintf("Scale-down: %d calls/s over %d backends, one removed from the resolver's answer",
			cfg.Rate, cfg.Backends),
		Header: []string{"client", "removal and stop", "calls", "calls/s", "failed", "after removal", "p99", "slowest"},
	}
	for _, rn := range r.Runs {
		t.AddRow(rn.Client, rn.Order, rn.Calls, fmt.Sprintf("%.0f", rn.CallsPerSec), rn.Failed, rn.AfterRemoval, ms(rn.P99), ms(rn.Slowest))
	}
	t.Notes = append(t.Notes,
		"stopped = grpc.Server.GracefulStop: GOAWAY, in-flight calls finish, the listener closes",
		"\"after removal\": calls the removed server received after its removal, placed before the client saw the new answer")
	if !cfg.NoBaseline {
		failed := map[bool]int{}
		for _, rn := range r.Runs {
			failed[rn.Pool] += rn.Failed
		}
		if failed[true] == 0 && failed[false] == 0 {
			t.Notes = append(t.Notes, "here the pool only matches grpc round_robin (both fail 0 calls): it shows that its drain and re-resolution cost no call, not a gain")
		} else {
			t.Notes = append(t.Notes, fmt.Sprintf("the target is 0 failed calls, which grpc round_robin meets too: failed calls pool %d, round_robin %d", failed[true], failed[false]))
		}
	}
	for _, rn := range r.Runs {
		if rn.Failed > 0 {
			t.Notes = append(t.Notes, fmt.Sprintf("%s, %s: %s", rn.Client, rn.Order, rn.ErrorsSeen))
		}
	}
	return t
}

// Summary says in one line what the run showed.
func (r *ScaleDownResult) Summary() string {
	failed := map[bool]int{}
	runs := map[bool]int{}
	for _, rn := range r.Runs {
		failed[rn.Pool] += rn.Failed
		runs[rn.Pool]++
	}
	s := fmt.Sprintf("scaledown: failed calls as a backend goes at %d calls/s: pool %d", r.Config.Rate, failed[true])
	if runs[false] > 0 {
		s += fmt.Sprintf(", round_robin %d", failed[false])
	}
	return s
}

// RunScaleDown sends a paced load of unary calls over cfg.Backends
// backends and, a third of the way in, takes the last one away, in three
// ways: removed from the resolver's answer and stopped (GracefulStop)
// cfg.StopAfter later, as a deployment that deregisters before it stops;
// stopped at the moment it is removed, as a Kubernetes pod whose SIGTERM
// races its endpoint removal; and stopped cfg.StopAfter before the
// resolver's answer drops it, as when DNS lags. It counts the calls that failed
// (the target is none) and the calls the removed backend still received.
// Each run is made for the pool (cfg.Policy, or its default) and, unless cfg.NoBaseline,
// for grpc-go round_robin.
func RunScaleDown(ctx context.Context, cfg ScaleDownConfig, progress Progress) (*ScaleDownResult, error) {
	cfg = cfg.WithDefaults()
	res := &ScaleDownResult{Config: cfg}
	type client struct {
		name string
		pool bool
		open func(ctx context.Context, r *manual.Resolver) (grpc.ClientConnInterface, func() error, error)
	}
	clients := []client{{"pool", true, func(ctx context.Context, r *manual.Resolver) (grpc.ClientConnInterface, func() error, error) {
		p, err := newPool(ctx, r, cfg.Logger, policyOption(cfg.Policy)...)
		if err != nil {
			return nil, nil, err
		}
		if err := waitAllReady(ctx, p, cfg.Backends, pool.DefaultSize); err != nil {
			_ = p.Close()
			return nil, nil, err
		}
		return p, p.Close, nil
	}}}
	if !cfg.NoBaseline {
		clients = append(clients, client{"grpc round_robin", false, func(_ context.Context, r *manual.Resolver) (grpc.ClientConnInterface, func() error, error) {
			cc, err := newRoundRobin(r)
			if err != nil {
				return nil, nil, err
			}
			return cc, cc.Close, nil
		}})
	}
	modes := []struct {
		name string
		lag  time.Duration // from the removal to the stop; <0: the stop comes first
	}{
		{fmt.Sprintf("stop %v after removal", cfg.StopAfter), cfg.StopAfter},
		{"stop at removal", 0},
		{fmt.Sprintf("stop %v before removal", cfg.StopAfter), -cfg.StopAfter},
	}
	for _, c := range clients {
		for _, m := range modes {
			progress.say("%s, %s", c.name, m.name)
			rn, err := runScaleDown(ctx, cfg, m.lag, c.open)
			if err != nil {
				return nil, fmt.Errorf("scenario: scale-down: %s, %s: %w", c.name, m.name, err)
			}
			rn.Pool, rn.Order = c.pool, m.name
			rn.Client = strings.TrimSpace(c.name + " " + rn.Client)
			res.Runs = append(res.Runs, rn)
		}
	}
	return res, nil
}

func runScaleDown(ctx context.Context, cfg ScaleDownConfig, lag time.Duration,
	open func(context.Context, *manual.Resolver) (grpc.ClientConnInterface, func() error, error)) (ScaleDownRun, error) {
	f, err := startFleet(cfg.Backends)
	if err != nil {
		return ScaleDownRun{}, err
	}
	defer f.stop()
	r := manualResolver(f.addrs())
	cc, closeCC, err := open(ctx, r)
	if err != nil {
		return ScaleDownRun{}, err
	}
	defer closeCC()
	ec := echopb.NewEchoClient(cc)
	if err := warmAll(ctx, f.servers, ec); err != nil {
		return ScaleDownRun{}, err
	}
	policy := policyOf(cc)

	gone := f.servers[len(f.servers)-1]
	var calls atomic.Int64
	var errs errCount
	var latMu sync.Mutex // guards lat
	var lat []time.Duration
	lctx, stop := context.WithCancel(ctx)
	defer stop()
	interval := time.Duration(float64(time.Second) * float64(cfg.Workers) / float64(cfg.Rate))
	start := time.Now()
	wg := pace(lctx, cfg.Workers, interval, func(ctx context.Context) {
		calls.Add(1)
		// The worker's context ends only when the run does; a call cut by
		// that is not a failure.
		t0 := time.Now()
		if err := unaryCall(context.WithoutCancel(ctx), ec, time.Second); err != nil {
			errs.add(err)
		}
		d := time.Since(t0)
		latMu.Lock()
		lat = append(lat, d)
		latMu.Unlock()
	})
	var stopped sync.WaitGroup
	if err := sleep(ctx, cfg.Duration/3); err != nil {
		stop()
		wg.Wait()
		return ScaleDownRun{}, err
	}
	stopGone := func() { gone.GracefulStopTimeout(3 * time.Second) }
	remove := func() { r.UpdateState(resolverState(f.addrs()[:cfg.Backends-1])) }
	var atRemoval int64
	switch {
	case lag > 0:
		atRemoval = gone.Unary()
		remove()
		stopped.Go(func() {
			if sleep(ctx, lag) == nil {
				stopGone()
			}
		})
	case lag == 0:
		atRemoval = gone.Unary()
		stopped.Go(stopGone)
		remove()
	default:
		stopped.Go(stopGone)
		if err := sleep(ctx, -lag); err == nil {
			atRemoval = gone.Unary()
			remove()
		}
	}
	_ = sleep(ctx, cfg.Duration-time.Since(start))
	stop()
	wg.Wait()
	elapsed := time.Since(start)
	stopped.Wait()
	n := calls.Load()
	slices.Sort(lat)
	return ScaleDownRun{
		Client: policy, Calls: n, CallsPerSec: float64(n) / elapsed.Seconds(), Failed: errs.count(), AfterRemoval: gone.Unary() - atRemoval,
		P99: percentile(lat, 99), Slowest: percentile(lat, 100), ErrorsSeen: errs.String(),
	}, nil
}

// warmAll makes calls until every one of servers has answered one.
func warmAll(ctx context.Context, servers []*backend.Server, ec echopb.EchoClient) error {
	f := &fleet{servers: servers}
	before := f.unary()
	return waitUntil(ctx, 10*time.Second, func() bool {
		_ = unaryCall(ctx, ec, time.Second)
		return !slices.Contains(sub(f.unary(), before), 0)
	}, func() string { return "warm-up calls per backend: " + counts(sub(f.unary(), before)) })
}
