package pool

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/status"

	"github.com/grpcpool/grpcpool/internal/core"
	"github.com/grpcpool/grpcpool/internal/telemetry"
)

// Pauses between the warm-ups of a connection whose warm-up failed: the
// first after WarmupBackoffBase, each next one WarmupBackoffFactor times
// longer, up to WarmupBackoffMax, each ±10 %.
const (
	WarmupBackoffBase   = 500 * time.Millisecond
	WarmupBackoffFactor = 1.6
	WarmupBackoffMax    = 30 * time.Second
)

// WithWarmup makes every new connection of the pool — first dial, growth,
// a recycle's replacement, a reconnect after its transport was lost — run
// fn on itself once its transport is READY, and take no call until fn
// returns nil within timeout: a priming call (Bigtable's PingAndWarm, a
// Spanner session's "SELECT 1", a cache fill) that the first user call
// would otherwise pay for.
//
// conn is the connection alone (a *grpc.ClientConn to one backend), not
// the pool: what fn sends goes to that backend, through the dial options'
// interceptors, and is counted in no pool statistic but the warm-up's.
// fn must return when its ctx ends (at timeout, or when the connection is
// lost, retired or the pool closed).
//
// Until its warm-up succeeds a connection counts as connecting (Stats,
// metrics, errors); a recycle keeps the old connection until the
// replacement is warm. A warm-up that returns an error or does not return
// nil within timeout leaves the connection failing (ConnStats.LastError
// says why; BackendStats.WarmupFailures and the grpcpool.connection.warmups
// counter count it; logged at warn level) and runs again after a backoff
// (WarmupBackoffBase, growing by WarmupBackoffFactor up to
// WarmupBackoffMax). A recycle's replacement whose warm-up fails is given
// up, and the old connection tried again after another max age; one not
// warm within 30 s likewise. With WithHealthCheck, the health watch
// starts once the warm-up succeeded.
//
// fn runs once per connection and reconnect, on its own goroutine, and
// may run for several connections at once. Default: none, connections
// take calls as soon as they are READY. A nil fn or a timeout ≤ 0 makes
// New fail with ErrInvalidOption. Package lb has no warm-up.
func WithWarmup(fn func(ctx context.Context, conn grpc.ClientConnInterface) error, timeout time.Duration) Option {
	return optionFunc(func(o *options) {
		switch {
		case fn == nil:
			o.fail("WithWarmup: the function is nil")
		case timeout <= 0:
			o.fail("WithWarmup(timeout %v): must be positive", timeout)
		default:
			o.warmup = &warmup{fn: fn, timeout: timeout}
		}
	})
}

// warmup is the configuration WithWarmup gives.
type warmup struct {
	fn      func(ctx context.Context, conn grpc.ClientConnInterface) error
	timeout time.Duration
}

// warmer holds back a connection's READY from the core until its warm-up
// succeeded: meanwhile the core hears CONNECTING, after a failure
// TRANSIENT_FAILURE. It is the pconn's side of warm-up; its mutex also
// orders the connection's reports to the core, so a warm-up that ends
// after its transport left READY reports nothing.
type warmer struct {
	mu      sync.Mutex // guards the fields below; held while reporting to the core
	ready   bool       // the transport is READY
	warmed  bool       // the warm-up succeeded since the transport became READY
	gen     uint64     // changes when the transport leaves READY: older warm-ups are stale
	cancel  context.CancelFunc
	retry   *time.Timer // the next warm-up after a failure
	fails   int         // failures in a row since the transport became READY
	stopped bool        // the connection is closed
}

// warmState is stateChanged with warm-up: the transport's state s goes to
// the core, but READY only once the warm-up succeeded.
func (pc *pconn) warmState(s connectivity.State, err error) {
	w := &pc.warm
	w.mu.Lock()
	defer w.mu.Unlock()
	if s != connectivity.Ready || w.stopped {
		if w.ready {
			w.resetLocked()
		}
		w.ready = false
		pc.report(s, err)
		return
	}
	w.ready = true
	if w.warmed {
		pc.report(s, err)
		return
	}
	pc.report(connectivity.Connecting, nil)
	if w.cancel == nil && w.retry == nil {
		pc.startWarmupLocked()
	}
}

// resetLocked ends the running warm-up and the pending retry, so the next
// READY warms the connection again.
func (w *warmer) resetLocked() {
	w.gen++
	w.warmed = false
	w.fails = 0
	if w.cancel != nil {
		w.cancel()
		w.cancel = nil
	}
	if w.retry != nil {
		w.retry.Stop()
		w.retry = nil
	}
}

// stopWarmup ends pc's warm-up for good: its connection is closing.
func (pc *pconn) stopWarmup() {
	w := &pc.warm
	w.mu.Lock()
	defer w.mu.Unlock()
	w.stopped = true
	w.resetLocked()
}

func (pc *pconn) startWarmupLocked() {
	w := &pc.warm
	p := pc.p
	ctx, cancel := context.WithTimeout(p.ctx, p.o.warmup.timeout)
	w.cancel = cancel
	gen := w.gen
	p.goAsync(func() { pc.runWarmup(ctx, gen) })
}

// runWarmup runs the warm-up function once and reports its outcome.
func (pc *pconn) runWarmup(ctx context.Context, gen uint64) {
	p := pc.p
	err := p.o.warmup.fn(ctx, pc.cc)
	outcome := warmupOutcome(ctx, err, time.Now())
	if outcome == telemetry.WarmupTimeout {
		err = fmt.Errorf("not done within %v: %w", p.o.warmup.timeout, errors.Join(ctx.Err(), err))
	}
	w := &pc.warm
	w.mu.Lock()
	defer w.mu.Unlock()
	if gen != w.gen || w.stopped || p.ctx.Err() != nil {
		return // the transport left READY, or the connection or pool closed
	}
	w.cancel()
	w.cancel = nil
	b := pc.c.Backend
	p.rec.Warmup(b.Addr(), outcome)
	if outcome == telemetry.WarmupOK {
		w.warmed, w.fails = true, 0
		p.log.Debug("grpcpool: connection warmed up", "target", p.target, "addr", b.Addr(), "conn", pc.c.ID)
		pc.report(connectivity.Ready, nil)
		return
	}
	w.fails++
	d := warmupBackoff(w.fails)
	p.log.Warn("grpcpool: connection warm-up failed", "target", p.target, "addr", b.Addr(), "conn", pc.c.ID,
		"failures", w.fails, "retry_in", d, "err", err)
	pc.report(connectivity.TransientFailure, fmt.Errorf("grpcpool: warm-up: %w", err))
	// Counted after the core has the failure, so Stats never shows the
	// count without the error.
	p.events.push(func(time.Time) { b.WarmFail.Add(1) })
	w.retry = time.AfterFunc(d, func() {
		w.mu.Lock()
		defer w.mu.Unlock()
		if gen != w.gen || w.stopped || w.cancel != nil {
			return
		}
		w.retry = nil
		pc.startWarmupLocked()
	})
}

// warmupOutcome tells how a warm-up that ran under ctx and returned err
// at now ended. It timed out when ctx ended at its deadline, or when fn
// returned a deadline error (a DeadlineExceeded status or
// context.DeadlineExceeded) at or past ctx's deadline: gRPC ends a call at
// the deadline on its own (a call begun past it; the server's
// grpc-timeout), which can be before ctx's own timer has run and set
// ctx.Err. A deadline error of fn's own, before ctx's deadline, is an
// error, as grpc-go's transport tells a deadline from a cancellation.
func warmupOutcome(ctx context.Context, err error, now time.Time) telemetry.WarmupOutcome {
	switch {
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		return telemetry.WarmupTimeout
	case err == nil:
		return telemetry.WarmupOK
	case errors.Is(err, context.DeadlineExceeded) || status.Code(err) == codes.DeadlineExceeded:
		if dl, ok := ctx.Deadline(); ok && !dl.After(now) {
			return telemetry.WarmupTimeout
		}
	}
	return telemetry.WarmupError
}

// warmupBackoff is the pause after the n-th failure in a row (n ≥ 1).
func warmupBackoff(n int) time.Duration {
	d := float64(WarmupBackoffBase)
	for i := 1; i < n && d < float64(WarmupBackoffMax); i++ {
		d *= WarmupBackoffFactor
	}
	return core.Jitter(min(time.Duration(d), WarmupBackoffMax))
}
