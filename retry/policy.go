package retry

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"time"

	"google.golang.org/grpc/codes"
)

// Defaults used for the zero fields of [Policy].
const (
	// DefaultMaxAttempts is the default [Policy.MaxAttempts].
	DefaultMaxAttempts = 3
	// DefaultInitialBackoff is the default [Policy.InitialBackoff].
	DefaultInitialBackoff = 25 * time.Millisecond
	// DefaultMaxBackoff is the default [Policy.MaxBackoff].
	DefaultMaxBackoff = time.Second
	// DefaultMultiplier is the default [Policy.Multiplier].
	DefaultMultiplier = 2.0
)

// DefaultCodes returns the default [Policy.Codes]: Unavailable only, the
// code that says the call did not reach a backend able to take it. It
// returns a new slice on every call.
func DefaultCodes() []codes.Code {
	return []codes.Code{codes.Unavailable}
}

// ErrInvalidPolicy is returned (wrapped, with the reason) by
// [Policy.Validate] and [BudgetConfig.Validate].
var ErrInvalidPolicy = errors.New("retry: invalid policy")

// Policy says which failed calls are retried, how many times and after how
// long. The zero value is valid and means the documented defaults;
// [Policy.WithDefaults] shows the values in effect. Policy is a plain
// value, safe for concurrent use as long as nobody changes it (its Codes
// slice included).
type Policy struct {
	// MaxAttempts is the number of attempts a call may make, the first
	// one included: 1 means no retries. Zero means [DefaultMaxAttempts]
	// (3); negative is invalid. There is no upper clamp: the [Budget] and
	// the caller's deadline bound what is actually made.
	MaxAttempts int

	// InitialBackoff is the upper bound of the wait before the first
	// retry (see [Policy.Backoff]). Zero means [DefaultInitialBackoff]
	// (25ms), or MaxBackoff if that is set and smaller; negative is
	// invalid.
	InitialBackoff time.Duration

	// MaxBackoff caps the upper bound of every wait. Zero means
	// [DefaultMaxBackoff] (1s), or InitialBackoff if that is larger;
	// negative is invalid, and so is a MaxBackoff smaller than a set
	// InitialBackoff.
	MaxBackoff time.Duration

	// Multiplier is the growth of the upper bound from one retry to the
	// next. Zero means [DefaultMultiplier] (2); other values below 1, NaN
	// and infinities are invalid. 1 gives a constant bound.
	Multiplier float64

	// Codes are the gRPC codes after which a call is retried. Nil or
	// empty means [DefaultCodes] (Unavailable); codes.OK and codes that
	// gRPC does not define (above codes.Unauthenticated) are invalid. To
	// turn retries off, set MaxAttempts to 1.
	Codes []codes.Code

	// Budget bounds the retries (and hedges) of all calls of a pool
	// together; its zero value means the documented defaults (see
	// [BudgetConfig]). A pool has one budget, so only the default policy
	// (empty Methods) may set it: a policy with Methods and a non-zero
	// Budget is invalid.
	Budget BudgetConfig

	// Methods are the methods this policy applies to: full method names
	// ("/pkg.Service/Method") or whole services ("/pkg.Service/"). Nil or
	// empty means this is the default policy, for every method no other
	// policy names. A more specific name wins: an exact method beats its
	// service, which beats the default (see [NewResolver]). Names that
	// are not of these two forms, and duplicates, are invalid.
	Methods []string

	// Idempotent are the methods, in the form of Methods, that may be
	// retried also after their request may have reached the server: the
	// request went out, then the connection broke and no status came
	// back, so the server may have acted on it. Other methods are retried
	// only when the attempt never reached a server, or the server itself
	// answered with a code in Codes. Nil or empty means no method is
	// idempotent unless a call says so (see [Idempotent]). A method is
	// idempotent if any policy of the pool lists it (or its service),
	// whichever policy applies to it; hedged methods are idempotent too.
	Idempotent []string
}

// Validate reports whether p can be used, returning an error wrapping
// [ErrInvalidPolicy] for every problem found, joined with [errors.Join].
// The zero Policy is valid.
func (p Policy) Validate() error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: "+format, append([]any{ErrInvalidPolicy}, args...)...))
	}
	if p.MaxAttempts < 0 {
		bad("MaxAttempts must not be negative, got %d", p.MaxAttempts)
	}
	if p.InitialBackoff < 0 {
		bad("InitialBackoff must not be negative, got %v", p.InitialBackoff)
	}
	if p.MaxBackoff < 0 {
		bad("MaxBackoff must not be negative, got %v", p.MaxBackoff)
	}
	if p.InitialBackoff > 0 && p.MaxBackoff > 0 && p.MaxBackoff < p.InitialBackoff {
		bad("MaxBackoff %v is smaller than InitialBackoff %v", p.MaxBackoff, p.InitialBackoff)
	}
	if p.Multiplier != 0 && !(p.Multiplier >= 1 && !math.IsInf(p.Multiplier, 1)) {
		bad("Multiplier must be at least 1 and finite, got %v", p.Multiplier)
	}
	for _, c := range p.Codes {
		if !failureCode(c) {
			bad("code %v cannot be retried", c)
		}
	}
	if err := p.Budget.Validate(); err != nil {
		errs = append(errs, err)
	}
	if len(p.Methods) > 0 && p.Budget != (BudgetConfig{}) {
		bad("Budget is the pool's and may be set only on the default policy (no Methods), got %+v on a policy for %v", p.Budget, p.Methods)
	}
	errs = append(errs, validateMethods("Methods", p.Methods)...)
	errs = append(errs, validateMethods("Idempotent", p.Idempotent)...)
	return errors.Join(errs...)
}

// WithDefaults returns p with every zero field replaced by its default
// (Budget included, see [BudgetConfig.WithDefaults], except on a policy
// with Methods, whose Budget stays zero: the pool's budget is the default
// policy's). Its Codes, Methods and Idempotent are copies that do not
// share memory with p's. Invalid values are left as they are; call
// [Policy.Validate] to find them.
func (p Policy) WithDefaults() Policy {
	if p.MaxAttempts == 0 {
		p.MaxAttempts = DefaultMaxAttempts
	}
	p.InitialBackoff, p.MaxBackoff, p.Multiplier = p.backoffParams()
	if len(p.Codes) == 0 {
		p.Codes = DefaultCodes()
	} else {
		p.Codes = slices.Clone(p.Codes)
	}
	if len(p.Methods) == 0 {
		p.Budget = p.Budget.WithDefaults()
	}
	p.Methods = slices.Clone(p.Methods)
	p.Idempotent = slices.Clone(p.Idempotent)
	return p
}

// backoffParams returns InitialBackoff, MaxBackoff and Multiplier with
// defaults applied, without touching Codes (no allocation).
func (p Policy) backoffParams() (initial, max time.Duration, mult float64) {
	initial, max, mult = p.InitialBackoff, p.MaxBackoff, p.Multiplier
	if initial == 0 {
		initial = DefaultInitialBackoff
		if max > 0 && max < initial {
			initial = max
		}
	}
	if max == 0 {
		max = DefaultMaxBackoff
		if initial > max {
			max = initial
		}
	}
	if mult == 0 {
		mult = DefaultMultiplier
	}
	return initial, max, mult
}

// Retryable reports whether a call that failed with code c may be retried
// under p: c is in p.Codes (Unavailable if p.Codes is empty). codes.OK is
// never retryable. It does not allocate; cost grows with len(p.Codes).
func (p Policy) Retryable(c codes.Code) bool {
	if c == codes.OK {
		return false
	}
	if len(p.Codes) == 0 {
		return c == codes.Unavailable
	}
	return slices.Contains(p.Codes, c)
}

// failureCode reports whether c is a code a call can fail with: defined
// by gRPC and not OK.
func failureCode(c codes.Code) bool {
	return c != codes.OK && c <= codes.Unauthenticated
}
