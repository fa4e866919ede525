package pool

import (
	"google.golang.org/grpc"

	"github.com/grpcpool/grpcpool/breaker"
	"github.com/grpcpool/grpcpool/retry"
)

// Options for what happens to calls: circuit breakers, retries, hedging
// and pool-level interceptors.

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
