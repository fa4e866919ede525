package retry_test

import (
	"math"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"

	"github.com/grpcpool/grpcpool/retry"
)

func TestHedgingValidate(t *testing.T) {
	tests := []struct {
		name    string
		h       retry.Hedging
		wantErr string
	}{
		{"zero", retry.Hedging{}, ""},
		{"fixed", retry.Hedging{MaxAttempts: 3, Delay: 10 * time.Millisecond, Methods: []string{"/a/M", "/b/"}, NonFatalCodes: []codes.Code{codes.Unavailable}}, ""},
		{"adaptive", retry.Hedging{Percentile: 99, MinDelay: time.Millisecond, MaxDelay: time.Second}, ""},
		{"many attempts", retry.Hedging{MaxAttempts: 100}, ""},

		{"one attempt", retry.Hedging{MaxAttempts: 1}, "MaxAttempts"},
		{"negative attempts", retry.Hedging{MaxAttempts: -2}, "MaxAttempts"},
		{"negative delay", retry.Hedging{Delay: -1}, "Delay must not be negative"},
		{"percentile with fixed delay", retry.Hedging{Delay: time.Millisecond, Percentile: 95}, "adaptive delay"},
		{"max delay with fixed delay", retry.Hedging{Delay: time.Millisecond, MaxDelay: time.Second}, "adaptive delay"},
		{"percentile too low", retry.Hedging{Percentile: 10}, "Percentile"},
		{"percentile 100", retry.Hedging{Percentile: 100}, "Percentile"},
		{"percentile NaN", retry.Hedging{Percentile: math.NaN()}, "Percentile"},
		{"negative min delay", retry.Hedging{MinDelay: -1}, "MinDelay"},
		{"negative max delay", retry.Hedging{MaxDelay: -1}, "MaxDelay"},
		{"max below min", retry.Hedging{MinDelay: time.Second, MaxDelay: time.Millisecond}, "smaller than MinDelay"},
		{"code OK", retry.Hedging{NonFatalCodes: []codes.Code{codes.OK}}, "cannot be non-fatal"},
		{"bad method", retry.Hedging{Methods: []string{"pkg.Svc/M"}}, "not a full method name"},
		{"empty service", retry.Hedging{Methods: []string{"//M"}}, "not a full method name"},
		{"duplicate method", retry.Hedging{Methods: []string{"/a/M", "/a/M"}}, "listed twice"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkValidate(t, tt.h.Validate(), tt.wantErr, tt.h.WithDefaults().Validate)
		})
	}
}

func TestHedgingWithDefaults(t *testing.T) {
	got := retry.Hedging{}.WithDefaults()
	assert.Equal(t, retry.Hedging{MaxAttempts: 2, Percentile: 95, MaxDelay: time.Second}, got)

	got = retry.Hedging{MaxAttempts: 9, Delay: time.Millisecond}.WithDefaults()
	assert.Equal(t, retry.Hedging{MaxAttempts: retry.MaxHedgingAttempts, Delay: time.Millisecond}, got, "fixed delay: no adaptive fields; attempts clamped")

	got = retry.Hedging{MinDelay: 3 * time.Second}.WithDefaults()
	assert.Equal(t, 3*time.Second, got.MaxDelay, "a zero MaxDelay follows a larger MinDelay")

	in := retry.Hedging{Methods: []string{"/a/"}, NonFatalCodes: []codes.Code{codes.Unavailable}}
	got = in.WithDefaults()
	got.Methods[0], got.NonFatalCodes[0] = "/b/", codes.Internal
	assert.Equal(t, "/a/", in.Methods[0], "WithDefaults shares Methods")
	assert.Equal(t, codes.Unavailable, in.NonFatalCodes[0], "WithDefaults shares NonFatalCodes")
}

func TestHedgingNonFatal(t *testing.T) {
	h := retry.Hedging{NonFatalCodes: []codes.Code{codes.Unavailable, codes.ResourceExhausted}}
	for c := codes.OK; c <= codes.Unauthenticated; c++ {
		assert.Equal(t, c == codes.Unavailable || c == codes.ResourceExhausted, h.NonFatal(c), "NonFatal(%v)", c)
		assert.False(t, retry.Hedging{}.NonFatal(c), "zero Hedging: NonFatal(%v)", c)
	}
}

func TestPolicyMethods(t *testing.T) {
	tests := []struct {
		name    string
		p       retry.Policy
		wantErr string
	}{
		{"methods", retry.Policy{Methods: []string{"/a.B/C", "/a.B/"}, Idempotent: []string{"/a.B/C"}}, ""},
		{"default with idempotent", retry.Policy{Idempotent: []string{"/x/"}}, ""},
		{"bad method", retry.Policy{Methods: []string{"/a"}}, "Methods"},
		{"bad idempotent", retry.Policy{Idempotent: []string{"Get"}}, "Idempotent"},
		{"space", retry.Policy{Methods: []string{"/a b/C"}}, "Methods"},
		{"duplicate", retry.Policy{Methods: []string{"/a/", "/a/"}}, "listed twice"},
		{"budget on methods", retry.Policy{Methods: []string{"/a/"}, Budget: retry.BudgetConfig{Window: time.Second}}, "only on the default policy"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkValidate(t, tt.p.Validate(), tt.wantErr, tt.p.WithDefaults().Validate)
		})
	}
	withMethods := retry.Policy{Methods: []string{"/a/"}}.WithDefaults()
	assert.Zero(t, withMethods.Budget, "a policy for methods keeps a zero Budget")
}

// checkValidate checks the result err of a Validate: nil, and nil again
// after WithDefaults (defaulted), when wantErr is ""; otherwise an
// ErrInvalidPolicy that says wantErr.
func checkValidate(t *testing.T, err error, wantErr string, defaulted func() error) {
	t.Helper()
	if wantErr == "" {
		require.NoError(t, err)
		require.NoError(t, defaulted(), "after WithDefaults")
		return
	}
	require.Error(t, err)
	assert.ErrorIs(t, err, retry.ErrInvalidPolicy)
	assert.Contains(t, err.Error(), wantErr)
}
