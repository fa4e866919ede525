package core

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/grpcpool/grpcpool/breaker"
)

// What an attempt tells its breaker, and whether it counts as a backend
// failure, for both doors.
func TestSettle(t *testing.T) {
	for _, tt := range []struct {
		name     string
		err      error
		answered bool
		want     error // nil, ErrNotSent, or the attempt's own error (errSame)
		failure  bool
	}{
		{"success", nil, false, nil, false},
		{"not sent", ErrNotSent, false, ErrNotSent, false},
		{"unavailable", status.Error(codes.Unavailable, "down"), false, errSame, true},
		{"deadline before an answer", status.Error(codes.DeadlineExceeded, "late"), false, errSame, true},
		{"deadline after an answer", status.Error(codes.DeadlineExceeded, "late"), true, ErrNotSent, false},
		{"cancelled after an answer", status.Error(codes.Canceled, "bye"), true, ErrNotSent, false},
		{"cancelled before an answer", status.Error(codes.Canceled, "bye"), false, errSame, false},
		{"the request's fault", status.Error(codes.InvalidArgument, "bad"), false, errSame, false},
		{"a failure after an answer", status.Error(codes.Internal, "boom"), true, errSame, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			b := &Backend{}
			got := Settle(b, tt.err, tt.answered, breaker.DefaultClassifier)
			want := tt.want
			if want == errSame {
				want = tt.err
			}
			assert.Equal(t, want, got)
			assert.Equal(t, tt.failure, b.Failures.Load() == 1, "failures = %d", b.Failures.Load())
		})
	}
}

var errSame = status.Error(codes.Unknown, "the attempt's own error")

// Which ends of an attempt give a half-open breaker's probe slot back
// without a change of state, for both doors to publish a picker.
func TestProbeGivenBack(t *testing.T) {
	canceled := status.Error(codes.Canceled, "bye")
	for _, tt := range []struct {
		name    string
		brk     bool
		state   breaker.State
		verdict error
		want    bool
	}{
		{"half-open, not sent", true, breaker.StateHalfOpen, ErrNotSent, true},
		{"half-open, cancelled", true, breaker.StateHalfOpen, canceled, true},
		{"open, cancelled", true, breaker.StateOpen, canceled, true},
		{"half-open, success", true, breaker.StateHalfOpen, nil, false},
		{"half-open, failure", true, breaker.StateHalfOpen, status.Error(codes.Unavailable, "down"), false},
		{"closed, cancelled", true, breaker.StateClosed, canceled, false},
		{"no breaker, cancelled", false, breaker.StateHalfOpen, canceled, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			b := &Backend{}
			if tt.brk {
				brk, err := breaker.New("b", breaker.Settings{}, nil)
				if err != nil {
					t.Fatal(err)
				}
				b.Breaker = brk
			}
			b.StoreBreakerState(tt.state)
			assert.Equal(t, tt.want, ProbeGivenBack(b, tt.verdict, breaker.DefaultClassifier))
		})
	}
}
