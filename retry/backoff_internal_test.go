package retry

import (
	"math"
	"testing"
	"time"
)

func TestBackoffBound(t *testing.T) {
	ms := time.Millisecond
	tests := []struct {
		name  string
		p     Policy
		retry int
		want  time.Duration
	}{
		{"default 1", Policy{}, 1, 25 * ms},
		{"default 2", Policy{}, 2, 50 * ms},
		{"default 3", Policy{}, 3, 100 * ms},
		{"default 6", Policy{}, 6, 800 * ms},
		{"default 7 capped", Policy{}, 7, time.Second},
		{"default 1000 capped", Policy{}, 1000, time.Second},
		{"default MaxInt capped", Policy{}, math.MaxInt, time.Second},
		{"retry 0 is 1", Policy{}, 0, 25 * ms},
		{"retry -5 is 1", Policy{}, -5, 25 * ms},
		{"multiplier 1", Policy{InitialBackoff: 40 * ms, Multiplier: 1}, 9, 40 * ms},
		{"multiplier 3", Policy{InitialBackoff: 10 * ms, MaxBackoff: time.Hour, Multiplier: 3}, 4, 270 * ms},
		{"huge cap", Policy{InitialBackoff: time.Second, MaxBackoff: math.MaxInt64}, 200, math.MaxInt64},
		{"only MaxBackoff", Policy{MaxBackoff: 10 * ms}, 3, 10 * ms},
		{"only InitialBackoff", Policy{InitialBackoff: 3 * time.Second}, 2, 3 * time.Second},
		// Invalid policies: no panic, result within [0, max(0, MaxBackoff)].
		{"negative initial", Policy{InitialBackoff: -ms}, 2, 0},
		{"negative max", Policy{MaxBackoff: -ms}, 2, 0},
		{"NaN multiplier", Policy{Multiplier: math.NaN()}, 2, time.Second},
		{"negative multiplier", Policy{Multiplier: -2}, 2, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.p.backoffBound(tt.retry); got != tt.want {
				t.Errorf("backoffBound(%d) = %v, want %v", tt.retry, got, tt.want)
			}
			for range 100 {
				if got := tt.p.Backoff(tt.retry); got < 0 || got > tt.want {
					t.Fatalf("Backoff(%d) = %v, want in [0, %v]", tt.retry, got, tt.want)
				}
			}
		})
	}
}
