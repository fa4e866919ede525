package scenario

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/grpcpool/grpcpool/example/echopb"
	"github.com/grpcpool/grpcpool/pool"
)

// RecycleConfig configures RunRecycle. The zero value gives the documented
// sizes.
type RecycleConfig struct {
	// Backends the resolver reports. Default 3.
	Backends int
	// Size is the pool's WithSize. Default 2.
	Size int
	// MaxConnAge is the pool's WithMaxConnAge. Default 300 ms.
	MaxConnAge time.Duration
	// Recycles is how many times every connection is to be replaced before
	// the run ends. Default 10.
	Recycles int
	// Rate is the unary calls per second of the load. Default 500.
	Rate int
	// Streams is how many Bidi streams are open at a time; each makes
	// StreamMessages round trips 20 ms apart, closes, and is opened again.
	// Default 8.
	Streams int
	// StreamMessages is the round trips per stream. Default 5.
	StreamMessages int
	// Timeout ends the run even if not every connection was replaced
	// cfg.Recycles times. Default 20 s.
	Timeout time.Duration
	// Policy, when set, is the pool's policy. Default the pool's default.
	Policy *pool.Policy
	// Logger receives the pool's logs. Nil discards them.
	Logger *slog.Logger
}

// WithDefaults returns c with every zero field set to its default.
func (c RecycleConfig) WithDefaults() RecycleConfig {
	if c.Backends <= 0 {
		c.Backends = 3
	}
	if c.Size <= 0 {
		c.Size = 2
	}
	if c.MaxConnAge <= 0 {
		c.MaxConnAge = 300 * time.Millisecond
	}
	if c.Recycles <= 0 {
		c.Recycles = 10
	}
	if c.Rate <= 0 {
		c.Rate = 500
	}
	if c.Streams <= 0 {
		c.Streams = 8
	}
	if c.StreamMessages <= 0 {
		c.StreamMessages = 5
	}
	if c.Timeout <= 0 {
		c.Timeout = 20 * time.Second
	}
	return c
}

// RecycleResult is what RunRecycle measured.
type RecycleResult struct {
	Config        RecycleConfig // with the defaults filled in
	Policy        string        // the pool's policy
	Done          bool          // every connection was replaced Config.Recycles times
	Elapsed       time.Duration // from the start of the load to Done or the timeout
	Backends      []RecycleBackend
	Unary         int64  // unary calls the servers received
	UnaryFailed   int    // unary calls that failed
	UnaryErrors   string // the errors by code, one message each; "none"
	Streams       int64  // streams the servers received
	StreamsFailed int    // streams that failed
	StreamErrors  string // the errors by code, one message each; "none"
	ConnsAtEnd    string // the pool's connections per backend at the end
}

// RecycleBackend is one backend's part of a RecycleResult.
type RecycleBackend struct {
	Name         string
	Opened       int    // connections seen in Stats
	Recycles     int    // Opened minus the size: replacements
	MaxDraining  int    // most connections draining at once
	Unary        int64  // unary calls the server received
	Streams      int64  // streams the server received
	PoolFailures uint64 // BackendStats.Failures at the end
}

// Table renders the result.
func (r *RecycleResult) Table() *Table {
	cfg := r.Config
	t := &Table{
		Title: fmt.Sprintf("Recycle: %s, WithMaxConnAge(%v), WithSize(%d), %d unary calls/s + %d short streams at a time, until every connection was replaced %d times",
			r.Policy, cfg.MaxConnAge, cfg.Size, cfg.Rate, cfg.Streams, cfg.Recycles),
		Header: []string{"backend", "conns opened", "recycles", "per conn slot", "max draining", "unary calls", "streams", "pool failures"},
	}
	for _, b := range r.Backends {
		t.AddRow(b.Name, b.Opened, b.Recycles, fmt.Sprintf("%.1f", float64(b.Recycles)/float64(cfg.Size)),
			b.MaxDraining, b.Unary, b.Streams, b.PoolFailures)
	}
	status := fmt.Sprintf("done in %v", r.Elapsed.Round(10*time.Millisecond))
	if !r.Done {
		status = fmt.Sprintf("NOT every connection was recycled %d times within %v", cfg.Recycles, cfg.Timeout)
	}
	t.Notes = append(t.Notes,
		status,
		fmt.Sprintf("failed unary calls: %d of %d (%s)", r.UnaryFailed, r.Unary, r.UnaryErrors),
		fmt.Sprintf("failed streams: %d of %d (%s)", r.StreamsFailed, r.Streams, r.StreamErrors),
		"connections at the end: "+r.ConnsAtEnd,
		"no baseline: grpc-go has no client-side connection age; the target is 0 failures (replace before close)")
	return t
}

// Summary says in one line what the run showed.
func (r *RecycleResult) Summary() string {
	least := -1
	for _, b := range r.Backends {
		if least < 0 || b.Recycles < least {
			least = b.Recycles
		}
	}
	return fmt.Sprintf("recycle: each conn replaced %d+ times: %d of %d calls, %d of %d streams failed",
		max(least, 0)/max(r.Config.Size, 1), r.UnaryFailed, r.Unary, r.StreamsFailed, r.Streams)
}

// RunRecycle runs a pool with a short WithMaxConnAge under a load of unary
// calls and short streams until every connection was replaced cfg.Recycles
// times (counted from the connection IDs in Stats), and counts the calls
// and streams that failed: recycling is make-before-break, so the target
// is none.
func RunRecycle(ctx context.Context, cfg RecycleConfig, progress Progress) (*RecycleResult, error) {
	cfg = cfg.WithDefaults()
	f, err := startFleet(cfg.Backends)
	if err != nil {
		return nil, err
	}
	defer f.stop()
	p, err := newPool(ctx, manualResolver(f.addrs()), cfg.Logger,
		append([]pool.Option{pool.WithSize(cfg.Size), pool.WithMaxConnAge(cfg.MaxConnAge)}, policyOption(cfg.Policy)...)...)
	if err != nil {
		return nil, err
	}
	defer p.Close()
	if err := waitAllReady(ctx, p, cfg.Backends, cfg.Size); err != nil {
		return nil, err
	}
	ec := echopb.NewEchoClient(p)
	unary0 := f.unary()
	streams0 := make([]int64, len(f.servers))
	for i, s := range f.servers {
		streams0[i] = s.Streams()
	}

	var unaryErrs, streamErrs errCount
	lctx, stop := context.WithCancel(ctx)
	defer stop()
	const workers = 10
	wg := pace(lctx, workers, time.Duration(float64(time.Second)*workers/float64(cfg.Rate)), func(ctx context.Context) {
		if err := unaryCall(context.WithoutCancel(ctx), ec, 2*time.Second); err != nil {
			unaryErrs.add(err)
		}
	})
	for range cfg.Streams {
		wg.Go(func() {
			for lctx.Err() == nil {
				if err := shortStream(context.WithoutCancel(lctx), p, cfg.StreamMessages); err != nil {
					streamErrs.add(err)
				}
			}
		})
	}

	// Follow the connections until each backend has seen Size×Recycles
	// replacements.
	progress.say("recycling connections every %v under load", cfg.MaxConnAge)
	start := time.Now()
	seen := make(map[string]map[uint64]bool)
	maxDraining := make(map[string]int)
	lastLeast := -1
	recycles := func(addr string) int { return len(seen[addr]) - cfg.Size }
	done := func() bool {
		st := p.Stats()
		for _, b := range st.Backends {
			if seen[b.Addr] == nil {
				seen[b.Addr] = make(map[uint64]bool)
			}
			for _, c := range b.Conns {
				seen[b.Addr][c.ID] = true
			}
			maxDraining[b.Addr] = max(maxDraining[b.Addr], b.Draining)
		}
		least := -1
		for _, a := range f.addrs() {
			if n := recycles(a); least < 0 || n < least {
				least = n
			}
		}
		if least != lastLeast {
			lastLeast = least
			progress.say("fewest recycles on a backend: %d of %d", least, cfg.Size*cfg.Recycles)
		}
		return least >= cfg.Size*cfg.Recycles
	}
	err = waitUntil(ctx, cfg.Timeout, done, func() string { return "not every connection was recycled" })
	stop()
	wg.Wait()
	elapsed := time.Since(start)
	if err != nil && ctx.Err() != nil {
		return nil, err
	}

	st := p.Stats()
	res := &RecycleResult{
		Config: cfg, Policy: policyOf(p), Done: err == nil, Elapsed: elapsed,
		UnaryFailed: unaryErrs.count(), UnaryErrors: unaryErrs.String(),
		StreamsFailed: streamErrs.count(), StreamErrors: streamErrs.String(),
		ConnsAtEnd: strings.NewReplacer(nameOf(f)...).Replace(describeConns(st)),
	}
	unary := sub(f.unary(), unary0)
	for i, s := range f.servers {
		a := s.Addr()
		rb := RecycleBackend{Name: s.Name(), Opened: len(seen[a]), Recycles: recycles(a), MaxDraining: maxDraining[a],
			Unary: unary[i], Streams: s.Streams() - streams0[i]}
		for _, b := range st.Backends {
			if b.Addr == a {
				rb.PoolFailures = b.Failures
			}
		}
		res.Unary += rb.Unary
		res.Streams += rb.Streams
		res.Backends = append(res.Backends, rb)
	}
	return res, nil
}

// shortStream opens a Bidi stream, makes n round trips 20 ms apart and
// closes it.
func shortStream(ctx context.Context, p *pool.Pool, n int) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	b, err := openBidi(ctx, p)
	if err != nil {
		return err
	}
	for i := 1; i < n; i++ {
		if err := sleep(ctx, 20*time.Millisecond); err != nil {
			b.cancel()
			return err
		}
		if _, err := b.roundTrip("ping"); err != nil {
			b.cancel()
			return err
		}
	}
	return b.end()
}
