package breaker_test

import (
	"errors"
	"testing"
	"time"

	"github.com/grpcpool/grpcpool/breaker"
)

func TestSettingsValidate(t *testing.T) {
	tests := []struct {
		name    string
		s       breaker.Settings
		wantErr bool
	}{
		{"zero", breaker.Settings{}, false},
		{"all set", breaker.Settings{ConsecutiveFailures: 3, OpenTimeout: time.Second, HalfOpenProbes: 2, Interval: time.Minute}, false},
		{"negative OpenTimeout", breaker.Settings{OpenTimeout: -time.Second}, true},
		{"negative Interval", breaker.Settings{Interval: -1}, true},
		{"both negative", breaker.Settings{OpenTimeout: -1, Interval: -1}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.s.Validate()
			if (err != nil) != tt.wantErr {
				t.Fatalf("Validate() = %v, want error %v", err, tt.wantErr)
			}
			if err != nil && !errors.Is(err, breaker.ErrInvalidSettings) {
				t.Errorf("errors.Is(%v, ErrInvalidSettings) = false, want true", err)
			}
			b, err := breaker.New("b", tt.s, nil)
			if (err != nil) != tt.wantErr || (b == nil) != tt.wantErr {
				t.Errorf("New() = %v, %v, want error %v", b, err, tt.wantErr)
			}
		})
	}
}

func TestSettingsWithDefaults(t *testing.T) {
	got := breaker.Settings{}.WithDefaults()
	if got.ConsecutiveFailures != 5 {
		t.Errorf("ConsecutiveFailures = %v, want 5", got.ConsecutiveFailures)
	}
	if got.OpenTimeout != 10*time.Second {
		t.Errorf("OpenTimeout = %v, want 10s", got.OpenTimeout)
	}
	if got.HalfOpenProbes != 1 {
		t.Errorf("HalfOpenProbes = %v, want 1", got.HalfOpenProbes)
	}
	if got.Interval != 0 {
		t.Errorf("Interval = %v, want 0", got.Interval)
	}
	if got.Classify == nil {
		t.Errorf("Classify = nil, want DefaultClassifier")
	}

	set := breaker.Settings{ConsecutiveFailures: 2, OpenTimeout: time.Second, HalfOpenProbes: 3, Interval: time.Minute}
	got = set.WithDefaults()
	if got.ConsecutiveFailures != 2 || got.OpenTimeout != time.Second || got.HalfOpenProbes != 3 || got.Interval != time.Minute {
		t.Errorf("WithDefaults() changed set fields: got %+v, want %+v", got, set)
	}
}
