// Command example shows, with real gRPC servers on loopback, what grpcpool
// changes compared with a plain grpc.ClientConn and with grpc-go's own
// round_robin balancer, and prints a table of measured figures per
// scenario:
//
//   - vip: long-lived streams through an L4 proxy (haproxy in mode tcp when
//     installed, else an in-process one) — one ClientConn pins them all to
//     one backend, a pool of 6 connections spreads them.
//   - direct: every backend address resolved — pick_first vs round_robin vs
//     the pool's RoundRobin and LeastActive, for streams and unary calls.
//   - scaleup: backends added to the resolver's answer while streams are
//     open — how long until the streams are spread over all of them, for
//     churning streams and for never-ending ones with WithMaxStreamAge.
//   - scaledown: a backend removed (and stopped) under 2,000 calls/s — how
//     many calls fail.
//   - recycle: WithMaxConnAge replacing every connection many times under
//     load — how many calls fail.
//   - sick, slow: one backend that fails every call, or answers past the
//     callers' deadline — grpc-go's balancers and retryPolicy vs the pool
//     with its breaker and retry.
//   - lagging: one of 5 backends 200 ms slower under an open loop of 400
//     calls/s — grpc-go's round_robin and least_request vs the pool with
//     each policy.
//   - streamlimit: a server's MAX_CONCURRENT_STREAMS — one ClientConn
//     queues the streams beyond it, the pool opens more connections.
//
// Run all of them (about 80 s), each printing a table, then a summary
// of one line per scenario:
//
//	go run ./example
//
// or some, with other sizes, and the scale-up chart as SVG (the one in
// docs/img/scaleup.svg is made by the second command):
//
//	go run ./example -scenarios vip,scaleup -streams 600
//	go run ./example -scenarios scaleup -svg docs/img/scaleup.svg
//
// With -policy, every pool of every scenario uses that policy in place of
// the scenario's own choice (direct and lagging compare RoundRobin,
// LeastActive and PeakEWMA in one run, vip the first two; with -policy
// they run one):
//
//	go run ./example -policy PeakEWMA
//
// With -metrics, the pools' OpenTelemetry metrics are served for
// Prometheus while the scenarios run:
//
//	go run ./example -scenarios sick,recycle -metrics 127.0.0.1:9464
//
// "go run ./example -h" lists the scenarios with the sizes they use.
// Progress goes to stderr, tables to stdout; every line fits 100 columns.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/grpcpool/grpcpool/internal/scenario"
	"github.com/grpcpool/grpcpool/pool"
)

// flags are the command line's settings; zero values mean each scenario's
// own defaults.
type flags struct {
	streams  int
	backends int
	duration time.Duration
	svg      string
	policy   *pool.Policy // nil: each scenario's own
	logger   *slog.Logger
	series   *[]scenario.Series
}

// entry is one scenario the program can run.
type entry struct {
	name     string
	desc     string        // what it shows, in one line
	defaults func() string // the sizes it uses when no flag sets them
	run      func(ctx context.Context, f flags, progress scenario.Progress) (scenario.Result, error)
}

// scenarios lists every scenario in the order they run.
var scenarios = []entry{
	{"vip", "long-lived streams behind an L4 proxy: one ClientConn vs pools",
		func() string {
			c := scenario.VIPConfig{}.WithDefaults()
			return fmt.Sprintf("%d backends, %d streams, pool WithSize(%d)", c.Backends, c.Streams, c.Size)
		},
		func(ctx context.Context, f flags, p scenario.Progress) (scenario.Result, error) {
			return scenario.RunVIP(ctx, scenario.VIPConfig{Backends: f.backends, Streams: f.streams, Policy: f.policy, Logger: f.logger}, p)
		}},
	{"direct", "every address resolved: pick_first, round_robin and the pool",
		func() string {
			c := scenario.DirectConfig{}.WithDefaults()
			return fmt.Sprintf("%d backends, %d streams, %d unary calls", c.Backends, c.Streams, c.Calls)
		},
		func(ctx context.Context, f flags, p scenario.Progress) (scenario.Result, error) {
			return scenario.RunDirect(ctx, scenario.DirectConfig{Backends: f.backends, Streams: f.streams, Policy: f.policy, Logger: f.logger}, p)
		}},
	{"scaleup", "backends added while streams are open: time until they are spread",
		func() string {
			c := scenario.ScaleUpConfig{}.WithDefaults()
			return fmt.Sprintf("%d+%d backends, %d streams, -duration %v", c.Backends, c.Backends, c.Streams, c.Lifetime)
		},
		func(ctx context.Context, f flags, p scenario.Progress) (scenario.Result, error) {
			cfg := scenario.ScaleUpConfig{Backends: f.backends, Streams: f.streams, Lifetime: f.duration, MaxStreamAge: f.duration, Policy: f.policy, Logger: f.logger}
			if f.series != nil {
				cfg.OnSeries = func(s scenario.Series) { *f.series = append(*f.series, s) }
			}
			return scenario.RunScaleUp(ctx, cfg, p)
		}},
	{"scaledown", "a backend removed (and stopped) under load: failed calls",
		func() string {
			c := scenario.ScaleDownConfig{}.WithDefaults()
			return fmt.Sprintf("%d backends, %d calls/s, -duration %v", c.Backends, c.Rate, c.Duration)
		},
		func(ctx context.Context, f flags, p scenario.Progress) (scenario.Result, error) {
			return scenario.RunScaleDown(ctx, scenario.ScaleDownConfig{Backends: f.backends, Duration: f.duration, Policy: f.policy, Logger: f.logger}, p)
		}},
	{"recycle", "WithMaxConnAge replacing every connection under load: failed calls",
		func() string {
			c := scenario.RecycleConfig{}.WithDefaults()
			return fmt.Sprintf("%d backends, max age %v, %d recycles", c.Backends, c.MaxConnAge, c.Recycles)
		},
		func(ctx context.Context, f flags, p scenario.Progress) (scenario.Result, error) {
			return scenario.RunRecycle(ctx, scenario.RecycleConfig{Backends: f.backends, Policy: f.policy, Logger: f.logger}, p)
		}},
	{"sick", "one backend fails every call: grpc-go vs the pool's breaker and retry",
		func() string {
			c := scenario.ResilienceConfig{}.WithDefaults(3000, time.Second)
			return fmt.Sprintf("%d backends, %d calls", c.Backends, c.Calls)
		},
		func(ctx context.Context, f flags, p scenario.Progress) (scenario.Result, error) {
			return scenario.RunSickBackend(ctx, scenario.ResilienceConfig{Backends: f.backends, Policy: f.policy, Logger: f.logger}, p)
		}},
	{"slow", "one backend answers past the deadline: grpc-go vs the pool's breaker",
		func() string {
			c := scenario.ResilienceConfig{}.WithDefaults(800, 100*time.Millisecond)
			return fmt.Sprintf("%d backends, %d calls, %v deadline", c.Backends, c.Calls, c.CallTimeout)
		},
		func(ctx context.Context, f flags, p scenario.Progress) (scenario.Result, error) {
			return scenario.RunSlowBackend(ctx, scenario.ResilienceConfig{Backends: f.backends, Policy: f.policy, Logger: f.logger}, p)
		}},
	{"lagging", "one backend 200ms slower under an open loop: each policy's latency",
		func() string {
			c := scenario.LaggingConfig{}.WithDefaults()
			return fmt.Sprintf("%d backends, %d calls/s, %v healthy + %v lagging per client", c.Backends, c.Rate, c.Duration, c.Duration)
		},
		func(ctx context.Context, f flags, p scenario.Progress) (scenario.Result, error) {
			return scenario.RunLagging(ctx, scenario.LaggingConfig{Backends: f.backends, Duration: f.duration, Policy: f.policy, Logger: f.logger}, p)
		}},
	{"streamlimit", "a server's MAX_CONCURRENT_STREAMS: queued streams vs more connections",
		func() string {
			c := scenario.StreamLimitConfig{}.WithDefaults()
			return fmt.Sprintf("%d streams, limit %d", c.Streams, c.ServerLimit)
		},
		func(ctx context.Context, f flags, p scenario.Progress) (scenario.Result, error) {
			return scenario.RunStreamLimit(ctx, scenario.StreamLimitConfig{Streams: f.streams, Policy: f.policy, Logger: f.logger}, p)
		}},
}

func main() {
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "example:", err)
		os.Exit(1)
	}
}

// usage writes the -h text: what the program does, each scenario in one
// line with the sizes it uses, and the flags.
func usage(fs *flag.FlagSet) {
	w := fs.Output()
	fmt.Fprintf(w, `usage: go run ./example [flags]

Runs measured scenarios of grpcpool against real gRPC servers on loopback, prints a table
per scenario and a closing summary (tables to stdout, progress to stderr).

Scenarios, in the order they run:
`)
	for _, e := range scenarios {
		fmt.Fprintf(w, "  %-12s %s\n  %-12s   defaults: %s\n", e.name, e.desc, "", e.defaults())
	}
	fmt.Fprintf(w, "\nFlags (unset: each scenario's default above):\n")
	fs.PrintDefaults()
}

func run(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("example", flag.ContinueOnError)
	fs.SetOutput(stderr)
	names := make([]string, len(scenarios))
	for i, e := range scenarios {
		names[i] = e.name
	}
	var (
		which   = fs.String("scenarios", "all", "comma-separated scenarios to run, or all")
		streams = fs.Int("streams", 0, "streams per client in vip, direct, scaleup and streamlimit")
		nback   = fs.Int("backends", 0, "backends in every scenario but streamlimit; scaleup adds as many again")
		dur     = fs.Duration("duration", 0, "scaleup: stream lifetime and max stream age; scaledown: each run; lagging: each phase")
		policy  = fs.String("policy", "", "every pool's `policy` (RoundRobin, LeastActive, PeakEWMA) instead of each scenario's")
		svg     = fs.String("svg", "", "write the scale-up chart (active streams per backend over time) to this SVG `file`")
		verbose = fs.Bool("v", false, "log the pools' debug output and every progress line to stderr")
		metrics = metricsFlag(fs)
	)
	fs.Usage = func() { usage(fs) }
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	if *streams < 0 || *nback < 0 || *dur < 0 {
		return errors.New("-streams, -backends and -duration must not be negative")
	}
	selected, err := choose(*which)
	if err != nil {
		return err
	}
	stopMetrics, err := serveMetrics(*metrics, stderr)
	if err != nil {
		return err
	}
	defer stopMetrics()
	f := flags{streams: *streams, backends: *nback, duration: *dur, svg: *svg}
	if *policy != "" {
		p, err := scenario.ParsePolicy(*policy)
		if err != nil {
			return fmt.Errorf("-policy: %w", err)
		}
		f.policy = &p
	}
	if *verbose {
		f.logger = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	var series []scenario.Series
	if *svg != "" {
		if !slices.ContainsFunc(selected, func(e entry) bool { return e.name == "scaleup" }) {
			return errors.New("-svg needs the scaleup scenario")
		}
		f.series = &series
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	pr := newProgress(stderr, *verbose)
	start := time.Now()
	var failed, summary []string
	for _, e := range selected {
		t0 := time.Now()
		pr.begin(e.name)
		res, err := e.run(ctx, f, pr.say)
		pr.end()
		if err != nil {
			fmt.Fprintf(stderr, "%s: %v\n", e.name, err)
			failed = append(failed, e.name)
			summary = append(summary, e.name+": FAILED: "+err.Error())
			if ctx.Err() != nil {
				break
			}
			continue
		}
		res.Table().Fprint(stdout)
		fmt.Fprintf(stdout, "  (%s took %v)\n", e.name, time.Since(t0).Round(10*time.Millisecond))
		summary = append(summary, res.Summary())
	}
	fmt.Fprintf(stdout, "\n== Summary ==\n")
	for _, l := range summary {
		fmt.Fprintln(stdout, l)
	}
	fmt.Fprintf(stdout, "total %v\n", time.Since(start).Round(10*time.Millisecond))
	if *svg != "" && len(series) > 0 {
		if err := writeSVG(*svg, series); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "scale-up chart written to %s\n", *svg)
	}
	if len(failed) > 0 {
		return fmt.Errorf("scenarios failed: %s", strings.Join(failed, ", "))
	}
	return nil
}

func choose(list string) ([]entry, error) {
	if list == "" || list == "all" {
		return scenarios, nil
	}
	var out []entry
	for _, n := range strings.Split(list, ",") {
		n = strings.TrimSpace(n)
		i := slices.IndexFunc(scenarios, func(e entry) bool { return e.name == n })
		if i < 0 {
			names := make([]string, len(scenarios))
			for j, e := range scenarios {
				names[j] = e.name
			}
			return nil, fmt.Errorf("unknown scenario %q (have %s)", n, strings.Join(names, ", "))
		}
		out = append(out, scenarios[i])
	}
	return out, nil
}

func writeSVG(path string, series []scenario.Series) (err error) {
	fh, err := os.Create(path)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := fh.Close(); err == nil {
			err = cerr
		}
	}()
	return scenario.WriteSVG(fh, series...)
}

// progress shows what the running scenario does: on a terminal one line,
// rewritten in place; otherwise (or with -v) one line per message.
type progress struct {
	w     io.Writer
	tty   bool
	mu    sync.Mutex // guards the fields below
	name  string
	start time.Time
	shown bool // a line is on screen that end must clear
}

func newProgress(w io.Writer, verbose bool) *progress {
	tty := false
	if f, ok := w.(*os.File); ok && !verbose {
		if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			tty = true
		}
	}
	return &progress{w: w, tty: tty}
}

func (p *progress) begin(name string) {
	p.mu.Lock()
	p.name, p.start = name, time.Now()
	p.mu.Unlock()
	p.say("starting")
}

func (p *progress) say(format string, args ...any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	line := fmt.Sprintf("[%s %5.1fs] %s", p.name, time.Since(p.start).Seconds(), fmt.Sprintf(format, args...))
	if p.tty {
		fmt.Fprintf(p.w, "\r\x1b[K%s", line)
		p.shown = true
		return
	}
	fmt.Fprintln(p.w, line)
}

func (p *progress) end() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.shown {
		fmt.Fprint(p.w, "\r\x1b[K")
		p.shown = false
	}
}
