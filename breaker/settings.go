package breaker

import (
	"errors"
	"fmt"
	"time"
)

// Defaults used for the zero fields of [Settings].
const (
	// DefaultConsecutiveFailures is the default [Settings.ConsecutiveFailures].
	DefaultConsecutiveFailures uint32 = 5
	// DefaultOpenTimeout is the default [Settings.OpenTimeout].
	DefaultOpenTimeout = 10 * time.Second
	// DefaultHalfOpenProbes is the default [Settings.HalfOpenProbes].
	DefaultHalfOpenProbes uint32 = 1
)

// ErrInvalidSettings is returned (wrapped, with the reason) by
// [Settings.Validate] and [New] for settings that cannot be used.
var ErrInvalidSettings = errors.New("breaker: invalid settings")

// Settings configures a [Breaker]. The zero value is valid and means the
// documented defaults; [Settings.WithDefaults] shows the values in effect.
// Settings is a plain value: copies are independent (Classify aside, which
// is shared).
type Settings struct {
	// ConsecutiveFailures is how many calls in a row must end in a
	// [Failure] for a closed breaker to open. A [Success] resets the run;
	// an [Ignore] neither extends nor resets it. Zero means
	// [DefaultConsecutiveFailures] (5); 1 opens on the first failure.
	ConsecutiveFailures uint32

	// OpenTimeout is how long an open breaker rejects every call before it
	// becomes half-open. Zero means [DefaultOpenTimeout] (10s); negative is
	// invalid. It is also the delay between a breaker opening and
	// [Breaker.OpenUntil].
	OpenTimeout time.Duration

	// HalfOpenProbes is how many calls (probes) a half-open breaker lets
	// through; later calls are rejected with [ErrTooManyProbes]. The
	// breaker closes when all of them have succeeded and opens again as
	// soon as one fails. A probe that ends with [Ignore] gives its slot
	// back for another probe; a probe that succeeds keeps it (so at most
	// HalfOpenProbes successful probes are made per half-open period).
	// Zero means [DefaultHalfOpenProbes] (1).
	HalfOpenProbes uint32

	// Interval, if positive, clears the counts of a closed breaker
	// (including the current run of consecutive failures) every Interval,
	// in fixed windows that start when the breaker closes. Zero (the
	// default) means counts are never cleared while closed, so only a
	// success ends a run of failures; negative is invalid.
	Interval time.Duration

	// Classify decides what a call's final error says about the backend.
	// Nil means [DefaultClassifier]. It is called once per call, from the
	// goroutine that reports the call (the done function of
	// [Breaker.Allow]), without any lock held; it must be safe for
	// concurrent use. A value other than Success, Failure or Ignore counts
	// as a Failure.
	Classify func(err error) Outcome
}

// Validate reports whether s can be used, returning an error wrapping
// [ErrInvalidSettings] for every problem found (negative OpenTimeout or
// Interval), joined with [errors.Join]. The zero Settings is valid.
func (s Settings) Validate() error {
	var errs []error
	if s.OpenTimeout < 0 {
		errs = append(errs, fmt.Errorf("%w: OpenTimeout must not be negative, got %v", ErrInvalidSettings, s.OpenTimeout))
	}
	if s.Interval < 0 {
		errs = append(errs, fmt.Errorf("%w: Interval must not be negative, got %v", ErrInvalidSettings, s.Interval))
	}
	return errors.Join(errs...)
}

// WithDefaults returns s with every zero field replaced by its default:
// ConsecutiveFailures, OpenTimeout, HalfOpenProbes and Classify. Interval
// stays zero (never clear). Invalid values are left as they are; call
// [Settings.Validate] to find them.
func (s Settings) WithDefaults() Settings {
	if s.ConsecutiveFailures == 0 {
		s.ConsecutiveFailures = DefaultConsecutiveFailures
	}
	if s.OpenTimeout == 0 {
		s.OpenTimeout = DefaultOpenTimeout
	}
	if s.HalfOpenProbes == 0 {
		s.HalfOpenProbes = DefaultHalfOpenProbes
	}
	if s.Classify == nil {
		s.Classify = DefaultClassifier
	}
	return s
}
