package retry

import (
	"errors"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults used for the zero fields of [BudgetConfig].
const (
	// DefaultBudgetRatio is the default [BudgetConfig.Ratio].
	DefaultBudgetRatio = 0.2
	// DefaultBudgetMinPerSecond is the default [BudgetConfig.MinPerSecond].
	DefaultBudgetMinPerSecond = 10
	// DefaultBudgetWindow is the default [BudgetConfig.Window].
	DefaultBudgetWindow = 10 * time.Second
	// MinBudgetWindow is the smallest [BudgetConfig.Window]; smaller ones
	// are raised to it.
	MinBudgetWindow = time.Second
)

// BudgetConfig configures a [Budget]. The zero value is valid and means
// the documented defaults: retries may add 20% to the calls of the last
// 10 seconds, plus 10 retries per second whatever the traffic.
//
// Whenever a retry is allowed, the retries that still count (itself
// included) are at most
//
//	Ratio × the calls that still count + MinPerSecond × Window (in seconds)
//
// A call or retry made at time t counts until some point between
// t+0.9×Window and t+Window (the window moves in Window/10 steps). So the
// retries of any 0.9×Window are at most Ratio × the calls of the Window
// before the last of them, plus MinPerSecond × Window. When calls stop,
// retries already made may exceed the bound for the calls left; no retry
// is allowed until they expire too.
//
// A BudgetConfig is a plain value, safe to copy and share.
type BudgetConfig struct {
	// Ratio is the fraction of calls that may be retried: each call
	// (Deposit) earns Ratio retries (Withdraw). Zero means
	// [DefaultBudgetRatio] (0.2), so a budget with no ratio part cannot be
	// asked for; a tiny Ratio (such as 1e-6) comes close. It must be at
	// most 1; negative or NaN is invalid. A call that is retried several
	// times uses one retry of the budget per retry.
	Ratio float64

	// MinPerSecond is a floor: MinPerSecond × Window (in seconds, rounded
	// down) retries per Window are allowed on top of the Ratio part, even
	// with no calls at all, so that a client with little traffic can
	// still retry. Zero means [DefaultBudgetMinPerSecond] (10), so the
	// floor cannot be turned off; 1 is the smallest. Negative is invalid.
	MinPerSecond int

	// Window is how long a call counts towards the budget (and a retry
	// against it). Zero means [DefaultBudgetWindow] (10s); negative is
	// invalid; if set below [MinBudgetWindow] (1s), 1s is used.
	Window time.Duration

	// Disabled turns the budget off: every retry the [Policy] allows is
	// made, however many calls fail. Not recommended outside tests; the
	// default (false) keeps the budget.
	Disabled bool
}

// Validate reports whether c can be used, returning an error wrapping
// [ErrInvalidPolicy] for every problem found, joined with [errors.Join].
// The zero BudgetConfig is valid.
func (c BudgetConfig) Validate() error {
	var errs []error
	if !(c.Ratio >= 0 && c.Ratio <= 1) {
		errs = append(errs, fmt.Errorf("%w: Budget.Ratio must be in [0, 1], got %v", ErrInvalidPolicy, c.Ratio))
	}
	if c.MinPerSecond < 0 {
		errs = append(errs, fmt.Errorf("%w: Budget.MinPerSecond must not be negative, got %d", ErrInvalidPolicy, c.MinPerSecond))
	}
	if c.Window < 0 {
		errs = append(errs, fmt.Errorf("%w: Budget.Window must not be negative, got %v", ErrInvalidPolicy, c.Window))
	}
	return errors.Join(errs...)
}

// WithDefaults returns c with every zero field replaced by its default and
// Window raised to [MinBudgetWindow] if it is smaller. Invalid values are
// left as they are; call [BudgetConfig.Validate] to find them.
func (c BudgetConfig) WithDefaults() BudgetConfig {
	if c.Ratio == 0 {
		c.Ratio = DefaultBudgetRatio
	}
	if c.MinPerSecond == 0 {
		c.MinPerSecond = DefaultBudgetMinPerSecond
	}
	if c.Window == 0 {
		c.Window = DefaultBudgetWindow
	}
	if c.Window > 0 && c.Window < MinBudgetWindow {
		c.Window = MinBudgetWindow
	}
	return c
}

const (
	// budgetBuckets is how many steps the window moves in.
	budgetBuckets = 10
	// retryCost is what one retry costs, in budget units; a call earns
	// Ratio × retryCost units. Integer units keep the hot path on atomics.
	retryCost = 1_000_000
	// maxFloorRetries bounds MinPerSecond × Window so that the reserve
	// fits in an int64 with room to spare.
	maxFloorRetries = 1 << 40
)

// Budget bounds the retries of many calls together (see [BudgetConfig]),
// in the manner of Finagle's RetryBudget: every call deposits Ratio of a
// retry, every retry withdraws one, deposits and withdrawals expire after
// the window, and a reserve of MinPerSecond × Window retries is always
// there. gRPC's own retry throttling (gRFC A6) stops retries once too many
// calls fail; the budget instead caps retries at a share of the calls, so
// retries add at most Ratio (plus the floor) to the load on the backends,
// whatever the failure rate.
//
// A Budget is safe for concurrent use and is meant to be shared by all
// calls of a pool. Deposit and Withdraw do not allocate and take no lock
// except when the window moves (once per Window/10). A nil *Budget allows
// every retry.
type Budget struct {
	disabled bool
	start    time.Time     // epoch 0 begins here
	width    time.Duration // of one bucket: Window / budgetBuckets
	deposit  int64         // units earned per call: Ratio × retryCost
	reserve  int64         // units always available: floor × retryCost

	// total is the sum of the live buckets: units deposited minus units
	// withdrawn in the current window. Withdraw debits it by CAS so that
	// total >= -reserve always holds.
	total atomic.Int64
	// epoch is the number of the current bucket (time since start /
	// width); bucket epoch%budgetBuckets holds its units.
	epoch   atomic.Int64
	buckets [budgetBuckets]atomic.Int64

	mu sync.Mutex // serializes advanceLocked: moving epoch and expiring buckets
}

// NewBudget returns a Budget for c. c does not need defaults applied
// (NewBudget applies [BudgetConfig.WithDefaults]); values that
// [BudgetConfig.Validate] rejects are replaced by their defaults, and a
// Ratio above 1 by 1.
func NewBudget(c BudgetConfig) *Budget {
	if !(c.Ratio >= 0) { // negative or NaN
		c.Ratio = DefaultBudgetRatio
	}
	c.Ratio = min(c.Ratio, 1)
	if c.MinPerSecond < 0 {
		c.MinPerSecond = DefaultBudgetMinPerSecond
	}
	if c.Window < 0 {
		c.Window = DefaultBudgetWindow
	}
	c = c.WithDefaults()

	floor := math.Min(float64(c.MinPerSecond)*c.Window.Seconds(), maxFloorRetries)
	return &Budget{
		disabled: c.Disabled,
		start:    time.Now(),
		width:    c.Window / budgetBuckets,
		// Rounded down, so that retries never exceed Ratio × calls.
		deposit: int64(c.Ratio * retryCost),
		reserve: int64(floor) * retryCost,
	}
}

// Deposit records one call. Call it once per call made through the pool,
// not per attempt.
func (b *Budget) Deposit() {
	if b == nil || b.disabled {
		return
	}
	e := b.advance()
	// Bucket first, then total: if the bucket expires in between, the
	// deposit expires with it and total never counts it (erring towards
	// fewer retries).
	b.buckets[e%budgetBuckets].Add(b.deposit)
	b.total.Add(b.deposit)
}

// Withdraw asks for one retry. It returns true, and uses up one retry of
// the budget, if the budget allows it; false means the retry must not be
// made. Call it before each retry, once the other reasons to retry (code,
// attempts left, deadline) hold, since a successful Withdraw cannot be
// undone.
func (b *Budget) Withdraw() bool {
	if b == nil || b.disabled {
		return true
	}
	e := b.advance()
	for {
		t := b.total.Load()
		if t-retryCost < -b.reserve {
			return false
		}
		if b.total.CompareAndSwap(t, t-retryCost) {
			break
		}
	}
	// Total first, then bucket: the debit is never missing from total;
	// if the bucket moved on meanwhile the debit only lasts longer.
	b.buckets[e%budgetBuckets].Add(-retryCost)
	return true
}

// advance moves the window to the present if needed and returns the
// current epoch.
func (b *Budget) advance() int64 {
	now := int64(time.Since(b.start) / b.width)
	cur := b.epoch.Load()
	if now <= cur {
		return cur
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.advanceLocked(now)
}

// advanceLocked expires the buckets of epochs that left the window and
// makes now the current epoch. b.mu must be held.
func (b *Budget) advanceLocked(now int64) int64 {
	cur := b.epoch.Load()
	if now <= cur {
		return cur // another goroutine got here first
	}
	for e := cur + 1; e <= now && e <= cur+budgetBuckets; e++ {
		// Bucket e%n held epoch e-n, which is now out of the window.
		old := b.buckets[e%budgetBuckets].Swap(0)
		b.total.Add(-old)
	}
	b.epoch.Store(now)
	return now
}
