package pool

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"reflect"
	"strings"
	"time"

	"go.opentelemetry.io/otel/metric"
	"google.golang.org/grpc"
	"google.golang.org/grpc/resolver"

	"github.com/grpcpool/grpcpool/breaker"
	"github.com/grpcpool/grpcpool/internal/core"
	"github.com/grpcpool/grpcpool/internal/telemetry"
	"github.com/grpcpool/grpcpool/keepalive"
	"github.com/grpcpool/grpcpool/retry"
)

// Defaults of the pool's options.
const (
	// DefaultSize is the number of connections kept per backend.
	DefaultSize = 2
	// DefaultResolveInterval is how often the pool asks its resolver to
	// resolve the target again (±10 % jitter).
	DefaultResolveInterval = 30 * time.Second
	// DefaultMaxSizeFactor and DefaultMinMaxSize: without WithMaxSize, a
	// backend may grow to max(DefaultMaxSizeFactor × size,
	// DefaultMinMaxSize) connections when its connections are full.
	DefaultMaxSizeFactor = 8
	DefaultMinMaxSize    = 16
	// DefaultIdleTimeout is how long a connection above the floor may carry
	// nothing before it is drained and closed.
	DefaultIdleTimeout = time.Minute
	// MaxConnsPerBackend is the most connections WithSize and WithMaxSize
	// accept per backend.
	MaxConnsPerBackend = 1024
	// MinResolveInterval is the smallest re-resolution interval; smaller
	// values given to WithResolveInterval are raised to it.
	MinResolveInterval = 100 * time.Millisecond
	// DefaultMaxEjectPercent is the largest share of the resolved backends
	// that open circuit breakers take out of rotation (see
	// WithMaxEjectPercent): gRPC's outlier detection default.
	DefaultMaxEjectPercent = core.DefaultMaxEjectPercent
	// DefaultDrainTimeout bounds how long a retired connection keeps
	// carrying its in-flight calls and streams (see WithDrainTimeout), so
	// a stream a caller abandoned without cancelling it cannot keep a
	// connection, and its backend's entry, for ever.
	DefaultDrainTimeout = 15 * time.Minute
	// DefaultStreamStallTimeout is how long a NewStream may wait, on a
	// connection that already carries other streams, before the pool
	// places it elsewhere and counts the stall as evidence of the server's
	// MAX_CONCURRENT_STREAMS (see WithStreamStallTimeout).
	DefaultStreamStallTimeout = 500 * time.Millisecond
)

// Policy chooses a backend, and a connection of it, for each call and
// stream. It is a plain value, safe to copy and share.
type Policy int

const (
	// RoundRobin takes backends in turn, then the connections of the chosen
	// backend in turn. Backend weights (see WithAddressWeight) are honoured
	// with smooth weighted round-robin. The default.
	RoundRobin Policy = iota
	// LeastActive takes the backend with the fewest active calls and
	// streams (divided by weight), exactly: by a scan of every backend up
	// to 64, by a maintained load floor above (equal weights; the best of
	// 8 random backends with unequal weights), then its least active
	// connection. See docs/policies.md.
	LeastActive
	// ConsistentHash sends calls with the same key to the same backend while
	// that backend can take calls; see WithHashKey and WithHashKeyFunc.
	// Calls without a key are spread round-robin.
	ConsistentHash
	// PeakEWMA weighs each backend by cost = a peak-sensitive moving
	// average of its latency (decaying with a 10 s time constant) ×
	// (active calls and streams + 1), per unit of weight, and takes the
	// cheaper of two random backends. A failed call counts as a 5 s
	// latency, or as the server's grpc-retry-pushback-ms when it sends
	// one; a backend without a latency yet starts at the fleet's median.
	// It steers away from slow and failing backends even when calls come
	// one at a time, which LeastActive cannot see. See docs/policies.md.
	PeakEWMA
)

func (p Policy) String() string {
	switch p {
	case RoundRobin:
		return "round_robin"
	case LeastActive:
		return "least_active"
	case ConsistentHash:
		return "consistent_hash"
	case PeakEWMA:
		return "peak_ewma"
	}
	return fmt.Sprintf("Policy(%d)", int(p))
}

// An Option configures a Pool. Options are applied in order; New validates
// the result once and returns an error for invalid values. An Option is
// immutable: it may be reused for any number of pools, concurrently.
type Option interface {
	apply(*options)
}

type optionFunc func(*options)

func (f optionFunc) apply(o *options) { f(o) }

type options struct {
	size             int
	maxSize          int
	maxStreams       int
	idleTimeout      time.Duration
	policy           Policy
	dialOpts         []grpc.DialOption
	resolvers        []resolver.Builder
	resolveInterval  time.Duration
	maxConnAge       time.Duration
	drainTimeout     time.Duration
	maxStreamAge     time.Duration
	breaker          *breaker.Settings
	keepalive        *keepalive.Config
	logger           *slog.Logger
	hashKey          string
	hashKeyFunc      func(ctx context.Context, method string) (string, bool)
	healthService    *string
	errs             []error
	learnStreamLimit time.Duration
	slowStart        time.Duration
	maxEjectPercent  int
	warmup           *warmup // nil without WithWarmup

	// Retry and hedging per method: WithRetry, WithHedging and
	// WithServiceConfig add to the lists; validate builds methods from
	// them (nil if none was given) and sets retry to the default policy.
	retries  []retry.Policy
	hedgings []retry.Hedging
	methods  *retry.Resolver

	subset *subsetter  // nil without WithSubset
	zones  zoneOptions // WithZone, WithZonesByCIDR, WithZoneMembership

	meterProvider       metric.MeterProvider // nil: otel.GetMeterProvider()
	metricsBackendLimit *int                 // nil: DefaultMetricsBackendLimit
	unaryInts           []grpc.UnaryClientInterceptor
	streamInts          []grpc.StreamClientInterceptor
}

func defaultOptions() options {
	return options{
		size:             DefaultSize,
		policy:           RoundRobin,
		resolveInterval:  DefaultResolveInterval,
		idleTimeout:      DefaultIdleTimeout,
		drainTimeout:     DefaultDrainTimeout,
		maxEjectPercent:  DefaultMaxEjectPercent,
		logger:           slog.New(slog.NewTextHandler(io.Discard, nil)),
		learnStreamLimit: DefaultStreamStallTimeout,
	}
}

func (o *options) fail(format string, args ...any) {
	o.errs = append(o.errs, fmt.Errorf("%w: "+format, append([]any{ErrInvalidOption}, args...)...))
}

func (o *options) validate() error {
	if o.maxSize == 0 {
		// size ≤ MaxConnsPerBackend, so the default is never below it.
		o.maxSize = min(max(o.size*DefaultMaxSizeFactor, DefaultMinMaxSize), MaxConnsPerBackend)
	} else if o.maxSize < o.size {
		o.fail("WithMaxSize(%d) is below WithSize(%d)", o.maxSize, o.size)
	}
	o.validateMethods()
	return errors.Join(o.errs...)
}

// WithSize sets how many connections the pool keeps to every resolved
// address: the floor it keeps warm. Default 2 (DefaultSize). Values below 1
// or above MaxConnsPerBackend (1,024) make New fail.
func WithSize(n int) Option {
	return optionFunc(func(o *options) {
		if n < 1 || n > MaxConnsPerBackend {
			o.fail("WithSize(%d): size must be between 1 and %d", n, MaxConnsPerBackend)
			return
		}
		o.size = n
	})
}

// WithMaxSize sets the most connections the pool opens to one backend when
// its connections are full (see WithMaxStreamsPerConn). Default:
// max(8 × size, 16), at most MaxConnsPerBackend. Values below the size or
// above MaxConnsPerBackend (1,024) make New fail.
func WithMaxSize(n int) Option {
	return optionFunc(func(o *options) {
		if n < 1 || n > MaxConnsPerBackend {
			o.fail("WithMaxSize(%d): must be between 1 and %d", n, MaxConnsPerBackend)
			return
		}
		o.maxSize = n
	})
}

// WithMaxStreamsPerConn caps the calls and streams the pool places on one
// connection; when every connection of a backend carries n, the pool opens
// another one (up to WithMaxSize) instead of letting gRPC queue the call
// behind the server's MAX_CONCURRENT_STREAMS. Set it to the server's limit.
// Default 0: no configured cap; the pool learns a server's limit when a
// connection stops admitting streams. Negative values make New fail.
func WithMaxStreamsPerConn(n int) Option {
	return optionFunc(func(o *options) {
		if n < 0 {
			o.fail("WithMaxStreamsPerConn(%d): must not be negative", n)
			return
		}
		o.maxStreams = n
	})
}

// WithIdleTimeout sets how long a connection above the WithSize floor may
// carry nothing before it is drained and closed. Default one minute
// (DefaultIdleTimeout); 0 means such connections are never closed for
// idleness. Negative values make New fail.
func WithIdleTimeout(d time.Duration) Option {
	return optionFunc(func(o *options) {
		if d < 0 {
			o.fail("WithIdleTimeout(%v): must not be negative", d)
			return
		}
		o.idleTimeout = d
	})
}

// WithPolicy sets how calls are spread. Default RoundRobin. An unknown
// policy makes New fail.
func WithPolicy(p Policy) Option {
	return optionFunc(func(o *options) {
		switch p {
		case RoundRobin, LeastActive, ConsistentHash, PeakEWMA:
			o.policy = p
		default:
			o.fail("WithPolicy(%v): unknown policy", p)
		}
	})
}

// WithDialOptions adds options to every connection the pool makes:
// credentials, interceptors, stats handlers, a custom dialer and so on. The
// pool adds grpc.WithResolvers and a connection-scoped default of
// grpc.WithIdleTimeout(0) (pool connections stay connected); options given
// here come after the pool's defaults and so override them. Without
// transport credentials New fails, as grpc.NewClient does.
func WithDialOptions(opts ...grpc.DialOption) Option {
	return optionFunc(func(o *options) {
		for i, d := range opts {
			if d == nil {
				o.fail("WithDialOptions: option %d is nil", i)
				return
			}
		}
		o.dialOpts = append(o.dialOpts, opts...)
	})
}

// WithResolvers adds resolver builders that are used for the target ahead of
// the globally registered ones, as grpc.WithResolvers does. A builder for
// the "dns" scheme replaces the pool's own DNS resolver.
func WithResolvers(rs ...resolver.Builder) Option {
	return optionFunc(func(o *options) {
		for i, r := range rs {
			if isNil(r) {
				o.fail("WithResolvers: builder %d is nil", i)
				return
			}
		}
		o.resolvers = append(o.resolvers, rs...)
	})
}

// WithResolveInterval sets how often the pool asks its resolver to resolve
// the target again, so a fleet behind DNS is followed even when no
// connection breaks. Each wait is jittered by ±10 %. Default 30 s
// (DefaultResolveInterval); 0 turns periodic re-resolution off (the pool
// still re-resolves when a connection fails). Values below 100 ms are raised
// to 100 ms; negative values make New fail.
func WithResolveInterval(d time.Duration) Option {
	return optionFunc(func(o *options) {
		if d < 0 {
			o.fail("WithResolveInterval(%v): must not be negative", d)
			return
		}
		if d > 0 && d < MinResolveInterval {
			d = MinResolveInterval
		}
		o.resolveInterval = d
	})
}

// WithMaxConnAge replaces every connection after d (±10 % jitter): a
// replacement is made ready first, then the old connection stops taking new
// calls and closes when its calls end (see WithDrainTimeout). At most one
// connection per backend is replaced at a time. Behind a single virtual IP
// this is what moves connections onto backends added behind it. Default 0:
// connections are not recycled. Negative values make New fail.
func WithMaxConnAge(d time.Duration) Option {
	return optionFunc(func(o *options) {
		if d < 0 {
			o.fail("WithMaxConnAge(%v): must not be negative", d)
			return
		}
		o.maxConnAge = d
	})
}

// WithDrainTimeout bounds how long a retired connection (recycled, idle, or
// of a removed address) may keep carrying its in-flight calls and streams;
// when it passes, the connection is closed and what it still carries fails.
// Default 15 minutes (DefaultDrainTimeout), so an abandoned stream cannot
// keep a retired connection for ever. 0 means no limit: nothing in flight
// is ever cut by a drain, at the cost of keeping an old connection for as
// long as its longest stream lives. Negative values make New fail.
func WithDrainTimeout(d time.Duration) Option {
	return optionFunc(func(o *options) {
		if d < 0 {
			o.fail("WithDrainTimeout(%v): must not be negative", d)
			return
		}
		o.drainTimeout = d
	})
}

// WithMaxStreamAge ends every stream older than d (±10 % jitter) with
// codes.Unavailable and a message saying it was ended to rebalance, so a
// caller that opens it again lands on the least-loaded backend. Default 0:
// streams are never ended by the pool. Negative values make New fail.
func WithMaxStreamAge(d time.Duration) Option {
	return optionFunc(func(o *options) {
		if d < 0 {
			o.fail("WithMaxStreamAge(%v): must not be negative", d)
			return
		}
		o.maxStreamAge = d
	})
}

// WithBreaker gives every backend its own circuit breaker. Backends whose
// breaker is open take no calls; half-open ones take only probes. The zero
// Settings means breaker's documented defaults. Without this option the
// pool does not break.
func WithBreaker(s breaker.Settings) Option {
	return optionFunc(func(o *options) {
		if err := s.Validate(); err != nil {
			o.fail("WithBreaker: %v", err)
			return
		}
		s = s.WithDefaults()
		o.breaker = &s
	})
}

// WithRetry retries failed calls on other backends under the policy and a
// retry budget shared by the pool. The zero Policy means retry's documented
// defaults. Without this option the pool does not retry.
//
// It may be given several times, once per set of methods: a Policy with
// Methods applies to those methods (an exact method beats its service,
// which beats the default), one without Methods is the default for every
// other method. Two defaults, a method named twice (also by WithHedging or
// WithServiceConfig), or Budget set on a policy with Methods make New
// fail. The pool's budget is the default policy's Budget. See
// retry.NewResolver.
func WithRetry(p retry.Policy) Option {
	return optionFunc(func(o *options) {
		if err := p.Validate(); err != nil {
			o.fail("WithRetry: %v", err)
			return
		}
		o.retries = append(o.retries, p.WithDefaults())
	})
}

// WithKeepalive applies the client side of a keepalive.Config to every
// connection; configure servers with the same Config's ServerOptions. The
// zero Config means keepalive's documented defaults. Default: gRPC's own
// (no keepalive pings).
func WithKeepalive(c keepalive.Config) Option {
	return optionFunc(func(o *options) {
		if err := c.Validate(); err != nil {
			o.fail("WithKeepalive: %v", err)
			return
		}
		o.keepalive = &c
	})
}

// WithLogger sets where the pool logs adds, removals, recycles, drains,
// breaker changes and growth (debug and info levels). Default: nothing is
// logged. A nil logger makes New fail.
func WithLogger(l *slog.Logger) Option {
	return optionFunc(func(o *options) {
		if l == nil || l.Handler() == nil {
			o.fail("WithLogger: nil logger, or one without a handler")
			return
		}
		o.logger = l
	})
}

// WithHashKey makes ConsistentHash read each call's key from its outgoing
// metadata under key (case-insensitive; the first value counts). Calls
// without it are spread round-robin. An empty key makes New fail.
func WithHashKey(key string) Option {
	return optionFunc(func(o *options) {
		if key == "" {
			o.fail("WithHashKey: empty metadata key")
			return
		}
		o.hashKey = strings.ToLower(key)
	})
}

// WithHashKeyFunc makes ConsistentHash take each call's key from f, which
// reports false for calls without a key (they are spread round-robin). It
// takes precedence over WithHashKey. f must be safe for concurrent use and
// fast: it runs on every call. A nil f makes New fail.
func WithHashKeyFunc(f func(ctx context.Context, method string) (string, bool)) Option {
	return optionFunc(func(o *options) {
		if f == nil {
			o.fail("WithHashKeyFunc: nil function")
			return
		}
		o.hashKeyFunc = f
	})
}

// WithHealthCheck watches the grpc.health.v1 service on every connection,
// for serviceName ("" is the server as a whole): a connection whose server
// reports NOT_SERVING or UNKNOWN takes no new calls until it reports
// SERVING again; calls it carries finish. Servers without the health
// service (Unimplemented) are treated as serving, with a debug log. A
// READY connection whose server sends no first report within
// DefaultHealthTimeout (10 s) counts as not serving, and calls say so,
// until a report comes. Default: no health checking.
func WithHealthCheck(serviceName string) Option {
	return optionFunc(func(o *options) {
		o.healthService = &serviceName
	})
}

// WithStreamStallTimeout sets how long a NewStream may wait on a connection
// that carries other streams before the pool gives it up and places it on
// another connection. A stall is evidence of the server's
// MAX_CONCURRENT_STREAMS: when two stalls on a backend come at the same
// number of open streams, that number becomes the backend's stream limit
// per connection (see WithMaxStreamsPerConn) for five minutes, after which
// it is learned again. Only a NewStream given up while it waited for the
// connection's stream quota is a stall: one held up before that (a slow
// per-RPC credentials fetch, an interceptor) is placed elsewhere but
// teaches nothing, and one slow NewStream alone (a reconnect) teaches
// nothing either. Default 500 ms (DefaultStreamStallTimeout);
// 0 turns stall handling and learning off. Negative values make New fail.
func WithStreamStallTimeout(d time.Duration) Option {
	return optionFunc(func(o *options) {
		if d < 0 {
			o.fail("WithStreamStallTimeout(%v): must not be negative", d)
			return
		}
		o.learnStreamLimit = d
	})
}

// Per-method retry and hedging.

// validateMethods builds o.methods from the retry policies and hedgings
// given.
func (o *options) validateMethods() {
	if len(o.retries) == 0 && len(o.hedgings) == 0 {
		return
	}
	r, err := retry.NewResolver(o.retries, o.hedgings)
	if err != nil {
		o.fail("WithRetry, WithHedging, WithServiceConfig: %v", err)
		return
	}
	o.methods = r
}

// WithHedging hedges the unary calls of the methods h names: when a call
// has no answer after h's delay, the same request is sent to another
// backend (never one the call already tried), up to h.MaxAttempts
// attempts in flight; the first answer wins and the other attempts are
// cancelled. Every hedge spends one retry of the pool's retry budget (see
// WithRetry; the budget's defaults without one), and a call gets no hedge
// the budget refuses. Streams are never hedged, nor calls made with
// retry.NotRetryable(); replies of any codec are, but a hedged call whose
// reply is not a non-nil pointer fails with codes.Internal.
//
// Hedge only methods that may run twice: both requests may complete.
// Hedged methods are not retried (the hedging takes the place of their
// retry policy, streams of a hedged service included); an attempt that
// fails with a code in h.NonFatalCodes is followed by the next hedge at
// once instead.
//
// It may be given several times, once per set of methods; a Hedging
// without Methods hedges every method no other WithHedging or WithRetry
// names. Invalid settings, or a method named twice (also by WithRetry or
// WithServiceConfig), make New fail. Default: no hedging.
func WithHedging(h retry.Hedging) Option {
	return optionFunc(func(o *options) {
		if err := h.Validate(); err != nil {
			o.fail("WithHedging: %v", err)
			return
		}
		o.hedgings = append(o.hedgings, h.WithDefaults())
	})
}

// WithServiceConfig reads per-method retry and hedging policies from a
// gRPC service config (JSON: the methodConfig list with retryPolicy and
// hedgingPolicy, as gRFC A6 defines them; see retry.ParseServiceConfig),
// as if each entry were given with WithRetry or WithHedging. Unknown
// fields, invalid values, fields the pool does not apply, and a method
// also named by another option make New fail; nothing is silently
// ignored. It may be given more than once. The config is not passed to
// the pool's connections: to configure grpc-go itself on every
// connection, use WithDialOptions(grpc.WithDefaultServiceConfig(...)).
// Default: none.
func WithServiceConfig(json string) Option {
	return optionFunc(func(o *options) {
		c, err := retry.ParseServiceConfig(json)
		if err != nil {
			o.fail("WithServiceConfig: %v", err)
			return
		}
		o.retries = append(o.retries, c.Retry...)
		o.hedgings = append(o.hedgings, c.Hedging...)
	})
}

// WithSubset makes the pool connect to size of the resolved backends
// instead of all of them, chosen from the client's place in its fleet as m
// reports it, so that a fleet of clients spreads its connections evenly
// over the backends and each client's costs stay flat as the fleet grows
// (see docs/fleets.md). WithSize then counts connections per chosen
// backend. When the resolver reports at most size backends, the pool uses
// them all. Until m reports the client's place, the pool uses a random
// subset of size backends; when the place changes, it moves to the new
// subset (connecting to the new backends, draining the ones it left). All
// clients of a fleet must use the same size and see the same addresses.
//
// Default: no subset, every resolved backend is used. size < 1, a nil m
// or a StaticMembership out of range make New fail.
func WithSubset(size int, m Membership) Option {
	return optionFunc(func(o *options) {
		switch {
		case size < 1:
			o.fail("WithSubset(%d): size must be at least 1", size)
			return
		case isNil(m):
			o.fail("WithSubset(%d): nil Membership", size)
			return
		}
		if sm, ok := m.(staticMembership); ok {
			if err := sm.validate(); err != nil {
				o.fail("WithSubset: %v", err)
				return
			}
		}
		o.subset = newSubsetter(size, m)
	})
}

// Observability options: metrics and pool-level interceptors.

// DefaultMetricsBackendLimit is how many backends get their own
// grpcpool.backend attribute value when WithMetricsBackendLimit is not
// given.
const DefaultMetricsBackendLimit = telemetry.DefaultBackendLimit

// WithMeterProvider sets where the pool records its OpenTelemetry metrics
// (the instruments are listed in docs/operations.md). Default: the global
// provider, otel.GetMeterProvider(), so nothing is recorded until the
// application installs one with otel.SetMeterProvider; install it before
// the pool carries calls. A noop.MeterProvider turns metrics off at
// almost no cost. A nil provider makes New fail.
func WithMeterProvider(mp metric.MeterProvider) Option {
	return optionFunc(func(o *options) {
		if isNil(mp) {
			o.fail("WithMeterProvider: nil provider")
			return
		}
		o.meterProvider = mp
	})
}

// WithMetricsBackendLimit bounds the cardinality of the grpcpool.backend
// attribute: the first n backends the pool knows at a time are labelled
// with their address, further ones share the value "other" until a
// labelled backend is removed. Default 100 (DefaultMetricsBackendLimit);
// 0 puts every backend under "other". Negative values make New fail.
func WithMetricsBackendLimit(n int) Option {
	return optionFunc(func(o *options) {
		if n < 0 {
			o.fail("WithMetricsBackendLimit(%d): must not be negative", n)
			return
		}
		o.metricsBackendLimit = &n
	})
}

// WithUnaryInterceptor adds interceptors that run once per logical unary
// call, around everything the pool does for it: picking a backend,
// waiting, retries and hedges. The first one given is the outermost, as
// with grpc.WithChainUnaryInterceptor; later WithUnaryInterceptor options
// add further in. They are grpc's own interceptor type, so existing
// logging, auth and tracing interceptors work unchanged, with one
// difference: the *grpc.ClientConn they are passed is nil, since the pool
// is not one (an interceptor that calls a method on it panics).
// Interceptors given with WithDialOptions(grpc.WithUnaryInterceptor(...))
// still run on the chosen connection, once per attempt. Default: none.
// A nil interceptor makes New fail.
func WithUnaryInterceptor(ints ...grpc.UnaryClientInterceptor) Option {
	return optionFunc(func(o *options) {
		for i, f := range ints {
			if f == nil {
				o.fail("WithUnaryInterceptor: interceptor %d is nil", i)
				return
			}
		}
		o.unaryInts = append(o.unaryInts, ints...)
	})
}

// WithStreamInterceptor adds interceptors that run once per logical
// stream, around the pool's NewStream: picking a backend, waiting and
// retrying a stream that failed before it started. The first one given is
// the outermost; the stream an interceptor returns is the one the caller
// gets. The *grpc.ClientConn they are passed is nil, since the pool is not
// one. Interceptors given with WithDialOptions(grpc.WithStreamInterceptor(...))
// still run on the chosen connection, once per attempt. Default: none. A
// nil interceptor makes New fail.
func WithStreamInterceptor(ints ...grpc.StreamClientInterceptor) Option {
	return optionFunc(func(o *options) {
		for i, f := range ints {
			if f == nil {
				o.fail("WithStreamInterceptor: interceptor %d is nil", i)
				return
			}
		}
		o.streamInts = append(o.streamInts, ints...)
	})
}

// recorder makes the metrics Recorder of a pool of target from the
// options.
func (o *options) recorder(target string) (*telemetry.Recorder, error) {
	limit := DefaultMetricsBackendLimit
	if o.metricsBackendLimit != nil {
		limit = *o.metricsBackendLimit
	}
	return telemetry.New(o.meterProvider, target, limit)
}

// WithSlowStart ramps the share of calls of a backend that becomes ready
// after the others — added by the resolver, or back after all of its
// connections failed — over window, as Envoy's slow start does: the
// backend's weight is scaled by max(0.1, elapsed/window), so it starts at
// a tenth of its full share and has all of it at the window's end. A
// backend ramps only while another one has been ready for a whole window:
// when every backend is new (the pool is starting) none ramps. It applies
// to RoundRobin, LeastActive and PeakEWMA; ConsistentHash keys are not
// shares and are not ramped. Default 0: off. Negative values make New
// fail.
func WithSlowStart(window time.Duration) Option {
	return durationOption("WithSlowStart", window, func(o *options) { o.slowStart = window })
}

// durationOption is an option that applies set unless d is negative,
// which makes New fail naming the option.
func durationOption(name string, d time.Duration, set func(*options)) Option {
	return optionFunc(func(o *options) {
		if d < 0 {
			o.fail("%s(%v): must not be negative", name, d)
			return
		}
		set(o)
	})
}

// WithMaxEjectPercent caps the share of the resolved backends that open
// circuit breakers (WithBreaker) take out of rotation, so a fleet-wide
// blip does not shut every backend until its breaker's open timeout: at
// most p % of them (at least one) are out, those whose breakers opened
// first; the others keep taking calls past their open breakers, and the
// first call after the fleet recovers succeeds. When half or more of the
// backends have open breakers (Envoy's panic threshold) none is out.
// Backends that cannot connect are never "in rotation": they cannot be
// picked, and calls still fail fast when none can. Default 10
// (DefaultMaxEjectPercent). 100 turns the cap and the panic threshold
// off: every open breaker takes its backend out, and with all of them open
// calls fail at once with "all backends have open circuit breakers".
// Values outside 1–100 make New fail.
func WithMaxEjectPercent(p int) Option {
	return optionFunc(func(o *options) {
		if p < 1 || p > 100 {
			o.fail("WithMaxEjectPercent(%d): must be between 1 and 100", p)
			return
		}
		o.maxEjectPercent = p
	})
}

// isNil reports whether v is nil or an interface holding a nil pointer,
// map, func, channel or slice.
func isNil(v any) bool {
	if v == nil {
		return true
	}
	switch r := reflect.ValueOf(v); r.Kind() {
	case reflect.Pointer, reflect.Map, reflect.Func, reflect.Chan, reflect.Slice, reflect.Interface:
		return r.IsNil()
	}
	return false
}
