package retry

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"time"

	"google.golang.org/grpc/codes"
)

// Defaults and limits used for the fields of [Hedging].
const (
	// DefaultHedgingMaxAttempts is the default [Hedging.MaxAttempts]: the
	// first attempt and one hedge.
	DefaultHedgingMaxAttempts = 2
	// MaxHedgingAttempts caps [Hedging.MaxAttempts], as gRFC A6 caps
	// maxAttempts at 5.
	MaxHedgingAttempts = 5
	// DefaultHedgingPercentile is the default [Hedging.Percentile].
	DefaultHedgingPercentile = 95.0
	// DefaultHedgingMaxDelay is the default [Hedging.MaxDelay].
	DefaultHedgingMaxDelay = time.Second
)

// Hedging says which unary calls are hedged and how: after a delay with
// no answer, the same request is sent to another backend (never one the
// call already tried); the first answer wins and the other attempts are
// cancelled. At most MaxAttempts attempts are in flight for a call, and
// every hedge (every attempt after the first) withdraws one retry from
// the pool's [Budget], so a fleet that is slow everywhere gets at most
// the budget's share of extra load. Streams are never hedged.
//
// Hedge only methods that may run twice: a hedged request is sent while
// the first one may still be running on its server, and both may
// complete. Hedged methods count as idempotent for retries too.
//
// The zero value (with Methods set) hedges once, at the 95th percentile
// of the method's recent latency. [Hedging.WithDefaults] shows the values
// in effect. Hedging is a plain value, safe for concurrent use as long as
// nobody changes it (its slices included).
type Hedging struct {
	// Methods are the methods that are hedged: full method names
	// ("/pkg.Service/Method") or whole services ("/pkg.Service/"). Nil
	// or empty means this is the default, for every unary method that no
	// other retry policy or hedging names: only for pools whose every
	// method may run twice. Precedence is as for [Policy.Methods]: an
	// exact method beats its service, which beats the default, retry
	// policies and hedging alike.
	Methods []string

	// MaxAttempts is the most attempts a call may make, the first one
	// included. Zero means [DefaultHedgingMaxAttempts] (2); 1 and negative
	// values are invalid (to hedge nothing, leave the method out); above
	// [MaxHedgingAttempts] (5), 5 is used.
	MaxAttempts int

	// Delay is how long after an attempt was sent the next one is sent,
	// unless an attempt fails first with a code in NonFatalCodes (then the
	// next one is sent at once). Zero means adaptive: the Percentile of
	// the method's recent latency, between MinDelay and MaxDelay.
	// Negative is invalid.
	Delay time.Duration

	// Percentile is the latency percentile used as the delay when Delay
	// is zero. Each method keeps its last 256 attempt latencies (the
	// first attempt of every call to it, hedged or not; a first attempt
	// cancelled because a hedge won counts with the time it had run);
	// the percentile of those is computed again every 32 calls.
	// Until 32 latencies are known, MaxDelay is used. Zero means
	// [DefaultHedgingPercentile] (95); values outside [50, 100) and NaN
	// are invalid, and so is a Percentile with a fixed Delay.
	Percentile float64

	// MinDelay is the least adaptive delay: a percentile below it gives
	// MinDelay. Zero means none; negative is invalid, and so is MinDelay
	// with a fixed Delay or above MaxDelay.
	MinDelay time.Duration

	// MaxDelay is the most adaptive delay, and the delay used while the
	// method has too few latencies. Zero means [DefaultHedgingMaxDelay]
	// (1s), or MinDelay if that is larger; negative is invalid, and so is
	// MaxDelay with a fixed Delay.
	MaxDelay time.Duration

	// NonFatalCodes are the codes after which a failed attempt does not
	// end the call: the next hedge is sent at once (if attempts and the
	// budget allow), and the call fails only when no attempt is left in
	// flight. Any other failure ends the call with that error and cancels
	// the other attempts. Nil or empty means none (every failure is
	// fatal), as in gRFC A6. codes.OK and undefined codes are invalid.
	NonFatalCodes []codes.Code
}

// Validate reports whether h can be used, returning an error wrapping
// [ErrInvalidPolicy] for every problem found, joined with [errors.Join].
// The zero Hedging is valid.
func (h Hedging) Validate() error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: Hedging: "+format, append([]any{ErrInvalidPolicy}, args...)...))
	}
	if h.MaxAttempts < 0 || h.MaxAttempts == 1 {
		bad("MaxAttempts must be 0 (default 2) or at least 2, got %d", h.MaxAttempts)
	}
	if h.Delay < 0 {
		bad("Delay must not be negative, got %v", h.Delay)
	}
	if h.Delay > 0 && (h.Percentile != 0 || h.MinDelay != 0 || h.MaxDelay != 0) {
		bad("Percentile, MinDelay and MaxDelay are for an adaptive delay (Delay 0), got Delay %v", h.Delay)
	}
	if h.Percentile != 0 && !(h.Percentile >= 50 && h.Percentile < 100) {
		bad("Percentile must be in [50, 100), got %v", h.Percentile)
	}
	if h.MinDelay < 0 {
		bad("MinDelay must not be negative, got %v", h.MinDelay)
	}
	if h.MaxDelay < 0 {
		bad("MaxDelay must not be negative, got %v", h.MaxDelay)
	}
	if h.MinDelay > 0 && h.MaxDelay > 0 && h.MaxDelay < h.MinDelay {
		bad("MaxDelay %v is smaller than MinDelay %v", h.MaxDelay, h.MinDelay)
	}
	for _, c := range h.NonFatalCodes {
		if !failureCode(c) {
			bad("code %v cannot be non-fatal", c)
		}
	}
	errs = append(errs, validateMethods("Hedging.Methods", h.Methods)...)
	return errors.Join(errs...)
}

// WithDefaults returns h with every zero field replaced by its default and
// MaxAttempts clamped to [MaxHedgingAttempts]; Percentile, MinDelay and
// MaxDelay stay zero with a fixed Delay. Its slices are copies that do
// not share memory with h's. Invalid values are left as they are; call
// [Hedging.Validate] to find them.
func (h Hedging) WithDefaults() Hedging {
	if h.MaxAttempts == 0 {
		h.MaxAttempts = DefaultHedgingMaxAttempts
	}
	h.MaxAttempts = min(h.MaxAttempts, MaxHedgingAttempts)
	if h.Delay == 0 {
		if h.Percentile == 0 {
			h.Percentile = DefaultHedgingPercentile
		}
		if h.MaxDelay == 0 {
			h.MaxDelay = max(DefaultHedgingMaxDelay, h.MinDelay)
		}
	}
	h.Methods = slices.Clone(h.Methods)
	h.NonFatalCodes = slices.Clone(h.NonFatalCodes)
	return h
}

// Adaptive reports whether h's delay is taken from the method's latency
// (Delay is zero).
func (h Hedging) Adaptive() bool { return h.Delay == 0 }

// NonFatal reports whether an attempt that failed with code c lets the
// call go on to its next hedge: c is in h.NonFatalCodes. codes.OK is
// never non-fatal. It does not allocate.
func (h Hedging) NonFatal(c codes.Code) bool {
	return c != codes.OK && slices.Contains(h.NonFatalCodes, c)
}

// clampDelay bounds an adaptive delay by h's MinDelay and MaxDelay (with
// defaults applied).
func (h *Hedging) clampDelay(d time.Duration) time.Duration {
	hi := h.MaxDelay
	if hi == 0 {
		hi = max(DefaultHedgingMaxDelay, h.MinDelay)
	}
	return min(max(d, h.MinDelay), hi)
}

// percentile returns h's percentile as a fraction in [0.5, 1).
func (h *Hedging) percentile() float64 {
	p := h.Percentile
	if p == 0 || math.IsNaN(p) {
		p = DefaultHedgingPercentile
	}
	return p / 100
}
