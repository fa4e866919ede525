package pool

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/grpcpool/grpcpool/internal/telemetry"
)

// lateCtx is a warm-up's context at the instant after its deadline and
// before its timer has run: Deadline has passed, Err is still nil. gRPC
// ends a call at its deadline on its own clock (a call started at or past
// it, the server's grpc-timeout), so a priming call can return
// DeadlineExceeded in that instant.
type lateCtx struct {
	context.Context
	deadline time.Time
}

func (c lateCtx) Deadline() (time.Time, bool) { return c.deadline, true }

// A warm-up is a timeout when its context ended at its deadline, or when
// it returned a deadline error (gRPC's status or the context's) at or
// past the warm-up's deadline, whether or not the context has seen its
// deadline yet; a deadline error of fn's own, before the warm-up's
// deadline, is an error; a nil return in time is ok.
func TestWarmupOutcome(t *testing.T) {
	now := time.Now()
	expired, cancel := context.WithDeadline(context.Background(), now.Add(-time.Millisecond))
	defer cancel()
	running, cancel := context.WithDeadline(context.Background(), now.Add(time.Hour))
	defer cancel()
	late := lateCtx{Context: context.Background(), deadline: now}
	grpcDeadline := status.Error(codes.DeadlineExceeded, context.DeadlineExceeded.Error())
	for _, tc := range []struct {
		name string
		ctx  context.Context
		err  error
		want telemetry.WarmupOutcome
	}{
		{"ok", running, nil, telemetry.WarmupOK},
		{"error", running, errors.New("no"), telemetry.WarmupError},
		{"fn's own deadline, before the warm-up's", running, grpcDeadline, telemetry.WarmupError},
		{"the context ended at its deadline", expired, expired.Err(), telemetry.WarmupTimeout},
		{"gRPC's deadline, the context's timer not yet run", late, grpcDeadline, telemetry.WarmupTimeout},
		{"gRPC's deadline wrapped, the context's timer not yet run", late, fmt.Errorf("priming: %w", grpcDeadline), telemetry.WarmupTimeout},
		{"the context's deadline error, its timer not yet run", late, context.DeadlineExceeded, telemetry.WarmupTimeout},
		{"another error past the deadline", late, status.Error(codes.Unavailable, "down"), telemetry.WarmupError},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := warmupOutcome(tc.ctx, tc.err, now)
			require.Equalf(t, tc.want, got, "got %v, want %v", got, tc.want)
		})
	}
}
