package scenario

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/resolver/manual"
	"google.golang.org/grpc/status"

	"github.com/grpcpool/grpcpool/example/echopb"
	"github.com/grpcpool/grpcpool/internal/backend"
	"github.com/grpcpool/grpcpool/pool"
)

// ScaleUpConfig configures RunScaleUp. The zero value gives the documented
// sizes.
type ScaleUpConfig struct {
	// Backends is how many backends the resolver reports at first; as many
	// again are added. Default 3.
	Backends int
	// Streams is how many streams are kept open. Default 300.
	Streams int
	// Lifetime is how long a churning stream lives before it is closed and
	// opened again: Lifetime ±50 %. Default 2 s.
	Lifetime time.Duration
	// MaxStreamAge is the pool's WithMaxStreamAge in the run whose streams
	// never end on their own. Default 2 s.
	MaxStreamAge time.Duration
	// Warm is how long the streams run on the first backends before the
	// others are added. Default 500 ms.
	Warm time.Duration
	// Timeout is how long to wait, after adding, for max/mean ≤ 1.1 before
	// a run reports that it never got there. Default 8 s.
	Timeout time.Duration
	// Tail is how long a run goes on sampling once balanced, for the chart
	// and to show that the balance holds; the WithMaxStreamAge run goes on
	// for MaxStreamAge more. Default 700 ms.
	Tail time.Duration
	// StaticWindow is how long the grpc round_robin run with never-ending
	// streams is watched (nothing moves them, so it only shows that nothing
	// does). Default 1.5 s; negative skips that run.
	StaticWindow time.Duration
	// SampleEvery is the sampling interval of active streams. Default
	// 100 ms.
	SampleEvery time.Duration
	// OnSeries, if not nil, receives each run's time series of active
	// streams per backend (for WriteSVG).
	OnSeries func(Series)
	// Policy is the pools' policy. Default LeastActive.
	Policy *pool.Policy
	// Logger receives the pools' logs. Nil discards them.
	Logger *slog.Logger
}

// WithDefaults returns c with every zero field set to its default.
func (c ScaleUpConfig) WithDefaults() ScaleUpConfig {
	if c.Backends <= 0 {
		c.Backends = 3
	}
	if c.Streams <= 0 {
		c.Streams = 300
	}
	if c.Lifetime <= 0 {
		c.Lifetime = 2 * time.Second
	}
	if c.MaxStreamAge <= 0 {
		c.MaxStreamAge = 2 * time.Second
	}
	if c.Warm <= 0 {
		c.Warm = 500 * time.Millisecond
	}
	if c.Timeout <= 0 {
		c.Timeout = 8 * time.Second
	}
	if c.Tail <= 0 {
		c.Tail = 700 * time.Millisecond
	}
	if c.StaticWindow == 0 {
		c.StaticWindow = 1500 * time.Millisecond
	}
	if c.SampleEvery <= 0 {
		c.SampleEvery = 100 * time.Millisecond
	}
	return c
}

// ScaleUpResult is what RunScaleUp measured.
type ScaleUpResult struct {
	Config   ScaleUpConfig // with the defaults filled in
	Backends []string      // every backend's name, the added ones last
	Runs     []ScaleUpRun
}

// ScaleUpRun is one run of RunScaleUp.
type ScaleUpRun struct {
	Name       string
	Pool       bool          // the pool (LeastActive), not grpc round_robin
	Churning   bool          // streams end after their lifetime and are reopened; else never-ending
	Balanced   bool          // max/mean reached ≤ 1.1 after the backends were added
	Converge   time.Duration // from adding to max/mean ≤ 1.1, when Balanced
	Watched    time.Duration // how long the run waited for it
	Worst      float64       // worst max/mean sampled after balancing, when Balanced
	Final      []int64       // active streams per backend at the end
	Reopened   int64         // streams ended by the pool's max age and reopened
	Errors     int           // stream errors other than those
	ErrorsSeen string        // the errors by code, one message each; "none"
	Series     Series        // active streams per backend over time
}

// Run returns the run named name, or false.
func (r *ScaleUpResult) Run(name string) (ScaleUpRun, bool) {
	return byName(r.Runs, func(rn ScaleUpRun) string { return rn.Name }, name)
}

// Table renders the result.
func (r *ScaleUpResult) Table() *Table {
	cfg := r.Config
	t := &Table{
		Title: fmt.Sprintf("Scale-up: %d streams on %d backends, %d backends added to the resolver's answer",
			cfg.Streams, cfg.Backends, cfg.Backends),
		Header: []string{"client", fmt.Sprintf("max/mean ≤ %.1f", balanced), "worst", "at end", "per backend at end", "reopened", "errors"},
	}
	for _, rn := range r.Runs {
		conv, worst := "never ("+rn.Watched.String()+")", "-"
		if rn.Balanced {
			conv = "after " + rn.Converge.Round(10*time.Millisecond).String()
			worst = fmt.Sprintf("%.2f", rn.Worst)
		}
		t.AddRow(rn.Name, conv, worst, backend.MaxOverMean(rn.Final), compactCounts(rn.Final), rn.Reopened, rn.Errors)
	}
	t.Notes = append(t.Notes,
		fmt.Sprintf("pool: "+scaleUpPolicy(cfg)+"; round_robin: grpc-go's; churning: each stream lives %v ±50 %% and is opened again; "+
			"never-ending: a stream ends only when the pool ends it at WithMaxStreamAge(%v)", cfg.Lifetime, cfg.MaxStreamAge),
		fmt.Sprintf("active streams counted on the servers every %v over all %d backends; \"worst\": the largest max/mean sampled "+
			"after balancing, for %v (%v with a max stream age)", cfg.SampleEvery, 2*cfg.Backends, cfg.Tail, cfg.Tail+cfg.MaxStreamAge),
		"\"reopened\": streams the pool ended with codes.Unavailable at their max age and the caller opened again; "+
			"all were opened at once, so they reach it together (±10 % jitter) and the next round evens out the first")
	for _, rn := range r.Runs {
		if rn.Errors > 0 {
			t.Notes = append(t.Notes, rn.Name+" errors: "+rn.ErrorsSeen)
		}
	}
	return t
}

// Summary says in one line what the run showed.
func (r *ScaleUpResult) Summary() string {
	v := func(name string) string {
		rn, ok := r.Run(name)
		switch {
		case !ok:
			return "-"
		case !rn.Balanced:
			return "never"
		}
		return rn.Converge.Round(100 * time.Millisecond).String()
	}
	return fmt.Sprintf("scaleup: streams spread in: pool %s, max age %s; round_robin %s, never-ending %s",
		v(ScaleUpPoolChurning), v(ScaleUpPoolMaxAge), v(ScaleUpRRChurning), v(ScaleUpRRNeverEnding))
}

// compactCounts formats per-backend numbers as "100/98/102".
func compactCounts(xs []int64) string {
	return strings.ReplaceAll(counts(xs), " / ", "/")
}

// scaleUpRun is what one run of RunScaleUp measured, while it runs.
type scaleUpRun struct {
	converge time.Duration // from adding to max/mean ≤ 1.1; <0: never
	final    []int64       // active streams per backend at the end
	worst    float64       // worst max/mean after converging
	reopened int64         // streams ended by the pool's max age and reopened
	errs     *errCount
	series   Series
}

// RunScaleUp keeps cfg.Streams streams open on cfg.Backends backends, then
// adds as many backends to the resolver's answer and measures how long
// until the streams are spread over all of them (max/mean ≤ 1.1, counted on
// the servers every cfg.SampleEvery). Runs:
//   - the pool with LeastActive (or cfg.Policy), streams that churn (each
//     lives cfg.Lifetime ±50 % and is opened again);
//   - the pool with the same policy and WithMaxStreamAge, streams that never
//     end on their own (the caller reopens them on codes.Unavailable);
//   - grpc-go round_robin with the same churning streams;
//   - grpc-go round_robin with never-ending streams, which stay where they
//     are.
func RunScaleUp(ctx context.Context, cfg ScaleUpConfig, progress Progress) (*ScaleUpResult, error) {
	cfg = cfg.WithDefaults()
	f, err := startFleet(2 * cfg.Backends)
	if err != nil {
		return nil, err
	}
	defer f.stop()
	first := f.addrs()[:cfg.Backends]

	type run struct {
		name     string
		pool     bool
		lifetime time.Duration // 0: never-ending
		timeout  time.Duration
		tail     time.Duration
		open     func(r *manual.Resolver) (grpc.ClientConnInterface, func() error, error)
	}
	openPool := func(opts ...pool.Option) func(r *manual.Resolver) (grpc.ClientConnInterface, func() error, error) {
		return func(r *manual.Resolver) (grpc.ClientConnInterface, func() error, error) {
			p, err := newPool(ctx, r, cfg.Logger, append([]pool.Option{pool.WithPolicy(pool.LeastActive)}, append(opts, policyOption(cfg.Policy)...)...)...)
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
	openRR := func(r *manual.Resolver) (grpc.ClientConnInterface, func() error, error) {
		cc, err := newRoundRobin(r)
		if err != nil {
			return nil, nil, err
		}
		// Connected to every backend first, as the pools are.
		if err := warmAll(ctx, f.servers[:cfg.Backends], echopb.NewEchoClient(cc)); err != nil {
			_ = cc.Close()
			return nil, nil, err
		}
		return cc, cc.Close, nil
	}
	runs := []run{
		{ScaleUpPoolChurning, true, cfg.Lifetime, cfg.Timeout, cfg.Tail, openPool()},
		// Watched for one more max age: the streams, all opened at once,
		// reach it together, and the next round evens out the first.
		{ScaleUpPoolMaxAge, true, 0, cfg.Timeout, cfg.Tail + cfg.MaxStreamAge, openPool(pool.WithMaxStreamAge(cfg.MaxStreamAge))},
		{ScaleUpRRChurning, false, cfg.Lifetime, cfg.Timeout, cfg.Tail, openRR},
	}
	if cfg.StaticWindow > 0 {
		runs = append(runs, run{ScaleUpRRNeverEnding, false, 0, cfg.StaticWindow, cfg.Tail, openRR})
	}

	res := &ScaleUpResult{Config: cfg, Backends: f.names()}
	for _, rn := range runs {
		r := manualResolver(first)
		cc, closeCC, err := rn.open(r)
		if err != nil {
			return nil, fmt.Errorf("scenario: scale-up: %s: %w", rn.name, err)
		}
		got, err := runScaleUp(ctx, cfg, f, r, cc, rn.lifetime, rn.timeout, rn.tail, func(format string, args ...any) {
			progress.say("%s: "+format, append([]any{rn.name}, args...)...)
		})
		_ = closeCC()
		if err != nil {
			return nil, fmt.Errorf("scenario: scale-up: %s: %w", rn.name, err)
		}
		got.series.Title = seriesTitle(rn.name, cfg)
		if cfg.OnSeries != nil {
			cfg.OnSeries(got.series)
		}
		res.Runs = append(res.Runs, ScaleUpRun{
			Name: rn.name, Pool: rn.pool, Churning: rn.lifetime > 0,
			Balanced: got.converge >= 0, Converge: max(got.converge, 0), Watched: rn.timeout,
			Worst: got.worst, Final: got.final, Reopened: got.reopened,
			Errors: got.errs.count(), ErrorsSeen: got.errs.String(), Series: got.series,
		})
	}
	return res, nil
}

// seriesTitle is the chart's title for the run named name.
func seriesTitle(name string, cfg ScaleUpConfig) string {
	life := fmt.Sprintf("live %v ±50%%", cfg.Lifetime)
	switch name {
	case ScaleUpPoolChurning:
		return "pool " + scaleUpPolicy(cfg) + ", churning streams (" + life + ")"
	case ScaleUpPoolMaxAge:
		return fmt.Sprintf("pool %s + WithMaxStreamAge(%v), never-ending streams", scaleUpPolicy(cfg), cfg.MaxStreamAge)
	case ScaleUpRRChurning:
		return "grpc round_robin, churning streams (" + life + ")"
	}
	return "grpc round_robin, never-ending streams"
}

// scaleUpPolicy names the pools' policy.
func scaleUpPolicy(cfg ScaleUpConfig) string {
	if cfg.Policy != nil {
		return policyName(*cfg.Policy)
	}
	return policyName(pool.LeastActive)
}

// The runs of RunScaleUp, by name.
const (
	ScaleUpPoolChurning  = "pool, churning streams"
	ScaleUpPoolMaxAge    = "pool + WithMaxStreamAge"
	ScaleUpRRChurning    = "round_robin, churning"
	ScaleUpRRNeverEnding = "round_robin, never-ending"
)

// streamLoad keeps streams open on cc, each in its own worker.
type streamLoad struct {
	cc       grpc.ClientConnInterface
	lifetime time.Duration // 0: a stream lives until it fails
	reopened atomic.Int64
	errs     errCount
	wg       sync.WaitGroup
}

func (l *streamLoad) start(ctx context.Context, n int) {
	for range n {
		l.wg.Go(func() { l.worker(ctx) })
	}
}

func (l *streamLoad) worker(ctx context.Context) {
	for ctx.Err() == nil {
		b, err := openBidi(ctx, l.cc)
		if err != nil {
			switch {
			case ctx.Err() != nil:
				return
			case l.lifetime == 0 && endedAtMaxAge(err):
				// Its first round trip took longer than the max age (a
				// loaded machine): the pool ended it to rebalance.
				l.reopened.Add(1)
				continue
			}
			l.errs.add(err)
			_ = sleep(ctx, 50*time.Millisecond)
			continue
		}
		if l.lifetime > 0 {
			if sleep(ctx, jittered(l.lifetime, 0.5)) != nil {
				b.cancel()
				return
			}
			err = b.end()
		} else {
			_, err = b.s.Recv() // returns when the stream fails
			b.cancel()
		}
		switch {
		case ctx.Err() != nil:
			return
		case err == nil:
		case l.lifetime == 0 && endedAtMaxAge(err):
			l.reopened.Add(1)
		default:
			l.errs.add(err)
		}
	}
}

// endedAtMaxAge reports whether err is the pool ending a stream at its
// max age (WithMaxStreamAge) to rebalance.
func endedAtMaxAge(err error) bool {
	st := status.Convert(err)
	return st.Code() == codes.Unavailable && strings.Contains(st.Message(), "after its max age")
}

func runScaleUp(ctx context.Context, cfg ScaleUpConfig, f *fleet, r *manual.Resolver, cc grpc.ClientConnInterface,
	lifetime, timeout, tail time.Duration, progress Progress) (res scaleUpRun, err error) {
	lctx, stop := context.WithCancel(ctx)
	l := &streamLoad{cc: cc, lifetime: lifetime}
	defer func() {
		stop()
		l.wg.Wait()
		res.reopened = l.reopened.Load()
		if werr := f.waitActive(ctx, 0, 10*time.Second); err == nil {
			err = werr
		}
	}()
	res = scaleUpRun{converge: -1, worst: 0, errs: &l.errs}
	res.series.Names = f.names()
	res.series.Ideal = float64(cfg.Streams) / float64(len(res.series.Names))

	progress.say("opening %d streams on %d backends", cfg.Streams, cfg.Backends)
	start := time.Now()
	sample := func() []int64 {
		v := f.active()
		res.series.Points = append(res.series.Points, Point{At: time.Since(start), Values: v})
		return v
	}
	l.start(lctx, cfg.Streams)
	tick := time.NewTicker(cfg.SampleEvery)
	defer tick.Stop()
	// Until the streams are open, then for cfg.Warm.
	var warmUntil time.Time
	for warmUntil.IsZero() || time.Now().Before(warmUntil) {
		select {
		case <-ctx.Done():
			return res, ctx.Err()
		case <-tick.C:
		}
		v := sample()
		if warmUntil.IsZero() && sum(v) >= int64(cfg.Streams-cfg.Streams/50) {
			warmUntil = time.Now().Add(cfg.Warm)
			res.series.Marks = append(res.series.Marks, Mark{At: time.Since(start), Label: "streams open"})
			progress.say("%d streams open; running %v", sum(v), cfg.Warm)
		}
		if warmUntil.IsZero() && time.Since(start) > 15*time.Second {
			return res, fmt.Errorf("streams did not open: %s on the backends; errors: %v", counts(v), &l.errs)
		}
	}

	progress.say("adding %d backends", cfg.Backends)
	r.UpdateState(resolverState(f.addrs()))
	added := time.Now()
	res.series.Marks = append(res.series.Marks, Mark{At: time.Since(start), Label: fmt.Sprintf("+%d backends", cfg.Backends)})
	var until time.Time // end of the tail
	for {
		select {
		case <-ctx.Done():
			return res, ctx.Err()
		case <-tick.C:
		}
		v := sample()
		mm := backend.MaxOverMean(v)
		now := time.Now()
		switch {
		case res.converge < 0 && mm <= balanced:
			res.converge = now.Sub(added)
			res.worst = mm
			until = now.Add(tail)
			res.series.Marks = append(res.series.Marks, Mark{At: time.Since(start), Label: fmt.Sprintf("max/mean ≤ %.1f", balanced)})
			progress.say("balanced after %v", res.converge.Round(10*time.Millisecond))
		case res.converge >= 0:
			res.worst = math.Max(res.worst, mm)
		case len(res.series.Points)%5 == 0:
			progress.say("max/mean %.2f after %v", mm, now.Sub(added).Round(100*time.Millisecond))
		}
		if (res.converge >= 0 && now.After(until)) || (res.converge < 0 && now.Sub(added) >= timeout) {
			res.final = v
			return res, nil
		}
	}
}
