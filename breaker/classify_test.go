package breaker_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/grpcpool/grpcpool/breaker"
)

func TestDefaultClassifierCodes(t *testing.T) {
	want := map[codes.Code]breaker.Outcome{
		codes.OK:                 breaker.Success,
		codes.Canceled:           breaker.Ignore,
		codes.Unknown:            breaker.Failure,
		codes.InvalidArgument:    breaker.Success,
		codes.DeadlineExceeded:   breaker.Failure,
		codes.NotFound:           breaker.Success,
		codes.AlreadyExists:      breaker.Success,
		codes.PermissionDenied:   breaker.Success,
		codes.ResourceExhausted:  breaker.Success,
		codes.FailedPrecondition: breaker.Success,
		codes.Aborted:            breaker.Success,
		codes.OutOfRange:         breaker.Success,
		codes.Unimplemented:      breaker.Success,
		codes.Internal:           breaker.Failure,
		codes.Unavailable:        breaker.Failure,
		codes.DataLoss:           breaker.Failure,
		codes.Unauthenticated:    breaker.Success,
	}
	// Every code gRPC defines is in the table.
	for c := codes.OK; c <= codes.Unauthenticated; c++ {
		if _, ok := want[c]; !ok {
			t.Fatalf("code %v missing from the table", c)
		}
	}
	for c, w := range want {
		t.Run(c.String(), func(t *testing.T) {
			if got := slices.Contains(breaker.FailureCodes(), c); got != (w == breaker.Failure) {
				t.Errorf("FailureCodes() contains %v = %v, want %v", c, got, w == breaker.Failure)
			}
			err := status.Error(c, "x")
			if got := breaker.DefaultClassifier(err); got != w {
				t.Errorf("DefaultClassifier(%v) = %v, want %v", err, got, w)
			}
			if err == nil { // status.Error(codes.OK, ...) is nil
				return
			}
			wrapped := fmt.Errorf("wrapped: %w", err)
			if got := breaker.DefaultClassifier(wrapped); got != w {
				t.Errorf("DefaultClassifier(%v) = %v, want %v", wrapped, got, w)
			}
		})
	}
}

func TestDefaultClassifierOtherErrors(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want breaker.Outcome
	}{
		{"nil", nil, breaker.Success},
		{"context.Canceled", context.Canceled, breaker.Ignore},
		{"wrapped context.Canceled", fmt.Errorf("dial: %w", context.Canceled), breaker.Ignore},
		{"context.DeadlineExceeded", context.DeadlineExceeded, breaker.Failure},
		{"wrapped context.DeadlineExceeded", fmt.Errorf("x: %w", context.DeadlineExceeded), breaker.Failure},
		{"status from context.Canceled", status.FromContextError(context.Canceled).Err(), breaker.Ignore},
		{"status from context.DeadlineExceeded", status.FromContextError(context.DeadlineExceeded).Err(), breaker.Failure},
		{"io.EOF", io.EOF, breaker.Failure},
		{"plain error", errors.New("boom"), breaker.Failure},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := breaker.DefaultClassifier(tt.err); got != tt.want {
				t.Errorf("DefaultClassifier(%v) = %v, want %v", tt.err, got, tt.want)
			}
		})
	}
}

func TestFailureCodesIsACopy(t *testing.T) {
	fc := breaker.FailureCodes()
	fc[0] = codes.OK
	if got := breaker.FailureCodes()[0]; got == codes.OK {
		t.Errorf("FailureCodes()[0] = %v after changing an earlier result, want it unchanged", got)
	}
	if got := breaker.DefaultClassifier(status.Error(codes.Unavailable, "x")); got != breaker.Failure {
		t.Errorf("DefaultClassifier(Unavailable) = %v, want %v", got, breaker.Failure)
	}
}

func TestStrings(t *testing.T) {
	tests := []struct {
		got, want string
	}{
		{breaker.Success.String(), "success"},
		{breaker.Failure.String(), "failure"},
		{breaker.Ignore.String(), "ignore"},
		{breaker.Outcome(9).String(), "Outcome(9)"},
		{breaker.StateClosed.String(), "closed"},
		{breaker.StateHalfOpen.String(), "half-open"},
		{breaker.StateOpen.String(), "open"},
		{breaker.State(-1).String(), "State(-1)"},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("got %q, want %q", tt.got, tt.want)
		}
	}
}

func TestDefaultClassifierAllocs(t *testing.T) {
	err := status.Error(codes.Unavailable, "x")
	if n := testing.AllocsPerRun(100, func() { breaker.DefaultClassifier(err) }); n != 0 {
		t.Errorf("DefaultClassifier(status error) allocs = %v, want 0", n)
	}
}
