package retry_test

import (
	"errors"
	"math"
	"slices"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/grpcpool/grpcpool/retry"
)

func TestPolicyValidate(t *testing.T) {
	tests := []struct {
		name    string
		p       retry.Policy
		wantErr bool
	}{
		{"zero", retry.Policy{}, false},
		{"no retries", retry.Policy{MaxAttempts: 1}, false},
		{"all set", retry.Policy{
			MaxAttempts: 5, InitialBackoff: 10 * time.Millisecond, MaxBackoff: 2 * time.Second, Multiplier: 1.5,
			Codes:  []codes.Code{codes.Unavailable, codes.ResourceExhausted},
			Budget: retry.BudgetConfig{Ratio: 0.1, MinPerSecond: 5, Window: 30 * time.Second},
		}, false},
		{"equal backoffs", retry.Policy{InitialBackoff: time.Second, MaxBackoff: time.Second}, false},
		{"multiplier 1", retry.Policy{Multiplier: 1}, false},
		{"only InitialBackoff, above default max", retry.Policy{InitialBackoff: 5 * time.Second}, false},
		{"only MaxBackoff, below default initial", retry.Policy{MaxBackoff: time.Millisecond}, false},
		{"ratio 1", retry.Policy{Budget: retry.BudgetConfig{Ratio: 1}}, false},
		{"disabled budget", retry.Policy{Budget: retry.BudgetConfig{Disabled: true}}, false},

		{"negative MaxAttempts", retry.Policy{MaxAttempts: -1}, true},
		{"negative InitialBackoff", retry.Policy{InitialBackoff: -time.Millisecond}, true},
		{"negative MaxBackoff", retry.Policy{MaxBackoff: -time.Millisecond}, true},
		{"MaxBackoff below InitialBackoff", retry.Policy{InitialBackoff: time.Second, MaxBackoff: time.Millisecond}, true},
		{"multiplier below 1", retry.Policy{Multiplier: 0.5}, true},
		{"negative multiplier", retry.Policy{Multiplier: -2}, true},
		{"NaN multiplier", retry.Policy{Multiplier: math.NaN()}, true},
		{"infinite multiplier", retry.Policy{Multiplier: math.Inf(1)}, true},
		{"code OK", retry.Policy{Codes: []codes.Code{codes.OK}}, true},
		{"undefined code", retry.Policy{Codes: []codes.Code{codes.Unavailable, 17}}, true},
		{"negative ratio", retry.Policy{Budget: retry.BudgetConfig{Ratio: -0.1}}, true},
		{"ratio above 1", retry.Policy{Budget: retry.BudgetConfig{Ratio: 1.5}}, true},
		{"NaN ratio", retry.Policy{Budget: retry.BudgetConfig{Ratio: math.NaN()}}, true},
		{"negative MinPerSecond", retry.Policy{Budget: retry.BudgetConfig{MinPerSecond: -1}}, true},
		{"negative Window", retry.Policy{Budget: retry.BudgetConfig{Window: -time.Second}}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.p.Validate()
			if (err != nil) != tt.wantErr {
				t.Fatalf("Validate() = %v, want error %v", err, tt.wantErr)
			}
			if err != nil && !errors.Is(err, retry.ErrInvalidPolicy) {
				t.Errorf("errors.Is(%v, ErrInvalidPolicy) = false, want true", err)
			}
			if !tt.wantErr {
				if err := tt.p.WithDefaults().Validate(); err != nil {
					t.Errorf("WithDefaults().Validate() = %v, want nil", err)
				}
			}
		})
	}
}

func TestPolicyValidateReportsEveryProblem(t *testing.T) {
	err := retry.Policy{MaxAttempts: -1, Multiplier: 0.5, Budget: retry.BudgetConfig{Window: -1}}.Validate()
	var joined interface{ Unwrap() []error }
	if !errors.As(err, &joined) {
		t.Fatalf("Validate() = %v, want a joined error", err)
	}
	// The budget's errors are themselves joined: count the leaves.
	n := 0
	var count func(error)
	count = func(err error) {
		if j, ok := err.(interface{ Unwrap() []error }); ok {
			for _, e := range j.Unwrap() {
				count(e)
			}
			return
		}
		n++
	}
	count(err)
	if n != 3 {
		t.Errorf("Validate() reported %d problems (%v), want 3", n, err)
	}
}

func TestPolicyWithDefaults(t *testing.T) {
	got := retry.Policy{}.WithDefaults()
	if got.MaxAttempts != 3 || got.InitialBackoff != 25*time.Millisecond || got.MaxBackoff != time.Second || got.Multiplier != 2 {
		t.Errorf("WithDefaults() = %+v, want 3 attempts, 25ms, 1s, x2", got)
	}
	if want := []codes.Code{codes.Unavailable}; !slices.Equal(got.Codes, want) {
		t.Errorf("Codes = %v, want %v", got.Codes, want)
	}
	if want := (retry.BudgetConfig{Ratio: 0.2, MinPerSecond: 10, Window: 10 * time.Second}); got.Budget != want {
		t.Errorf("Budget = %+v, want %+v", got.Budget, want)
	}

	// Set fields are kept; Codes is copied.
	in := retry.Policy{MaxAttempts: 1, InitialBackoff: time.Millisecond, MaxBackoff: time.Minute, Multiplier: 3, Codes: []codes.Code{codes.Aborted}}
	got = in.WithDefaults()
	if got.MaxAttempts != 1 || got.InitialBackoff != time.Millisecond || got.MaxBackoff != time.Minute || got.Multiplier != 3 {
		t.Errorf("WithDefaults() = %+v, want the set fields of %+v", got, in)
	}
	got.Codes[0] = codes.Internal
	if in.Codes[0] != codes.Aborted {
		t.Errorf("WithDefaults().Codes shares memory with the input")
	}

	// A zero bound follows a set one rather than contradicting it.
	if got := (retry.Policy{InitialBackoff: 5 * time.Second}).WithDefaults(); got.MaxBackoff != 5*time.Second {
		t.Errorf("MaxBackoff with InitialBackoff 5s = %v, want 5s", got.MaxBackoff)
	}
	if got := (retry.Policy{MaxBackoff: 10 * time.Millisecond}).WithDefaults(); got.InitialBackoff != 10*time.Millisecond {
		t.Errorf("InitialBackoff with MaxBackoff 10ms = %v, want 10ms", got.InitialBackoff)
	}
	// A window below the minimum is raised.
	if got := (retry.BudgetConfig{Window: time.Millisecond}).WithDefaults().Window; got != time.Second {
		t.Errorf("Window 1ms after WithDefaults = %v, want 1s", got)
	}
}

func TestRetryable(t *testing.T) {
	custom := retry.Policy{Codes: []codes.Code{codes.ResourceExhausted, codes.Aborted}}
	for c := codes.OK; c <= codes.Unauthenticated; c++ {
		if got, want := (retry.Policy{}).Retryable(c), c == codes.Unavailable; got != want {
			t.Errorf("zero Policy: Retryable(%v) = %v, want %v", c, got, want)
		}
		if got, want := (retry.Policy{}).WithDefaults().Retryable(c), c == codes.Unavailable; got != want {
			t.Errorf("default Policy: Retryable(%v) = %v, want %v", c, got, want)
		}
		if got, want := custom.Retryable(c), c == codes.ResourceExhausted || c == codes.Aborted; got != want {
			t.Errorf("custom Policy: Retryable(%v) = %v, want %v", c, got, want)
		}
	}
	// OK is never retried, even if listed (Validate rejects that).
	if (retry.Policy{Codes: []codes.Code{codes.OK}}).Retryable(codes.OK) {
		t.Errorf("Retryable(OK) = true, want false")
	}
}

func TestRetryableAllocs(t *testing.T) {
	p := retry.Policy{Codes: []codes.Code{codes.ResourceExhausted, codes.Unavailable}}.WithDefaults()
	if n := testing.AllocsPerRun(100, func() { p.Retryable(codes.Unavailable) }); n != 0 {
		t.Errorf("Retryable allocs = %v, want 0", n)
	}
}

func TestDefaultCodesIsACopy(t *testing.T) {
	retry.DefaultCodes()[0] = codes.Internal
	if got := retry.DefaultCodes(); !slices.Equal(got, []codes.Code{codes.Unavailable}) {
		t.Errorf("DefaultCodes() = %v, want [Unavailable]", got)
	}
}
