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
	return durationOption("WithIdleTimeout", d, func(o *options) { o.idleTimeout = d })
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
// With WithZone, the subset keeps the fleet's zone proportions: each zone
// gets its share of size (at least one backend while size allows) and the
// client's place selects within each zone; when m is also a ZoneMembership
// it gives the fleet's clients per zone (see WithZoneMembership).
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
