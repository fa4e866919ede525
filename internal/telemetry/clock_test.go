package telemetry_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/metric/noop"
	"google.golang.org/grpc/codes"

	"github.com/grpcpool/grpcpool/internal/telemetry"
)

// With metrics off, Start and the ...Since methods read no clock and
// record nothing.
func TestStartReadsNoClockWithMetricsOff(t *testing.T) {
	reads := 0
	defer telemetry.StubClock(func() time.Duration { reads++; return time.Second })()
	noopRec, err := telemetry.New(noop.NewMeterProvider(), "t", 10)
	require.NoError(t, err)
	global, err := telemetry.New(nil, "t", 10) // no SDK installed
	require.NoError(t, err)
	ctx := context.Background()
	for name, r := range map[string]*telemetry.Recorder{"nil": nil, "noop": noopRec, "global": global} {
		start := r.Start(ctx)
		assert.Zero(t, start, name)
		r.AttemptDoneSince(ctx, method, codes.OK, addr1, telemetry.LocalityNone, start)
		r.CallDoneSince(ctx, method, codes.OK, start)
		assert.Zero(t, reads, "%s: clock reads", name)
		assert.Zero(t, testing.AllocsPerRun(100, func() {
			r.CallDoneSince(ctx, method, codes.OK, r.Start(ctx))
		}), name)
	}
}

// With an SDK, the ...Since methods record the time from Start to their
// own call, by the monotonic clock.
func TestDoneSinceRecordsElapsed(t *testing.T) {
	now := 5 * time.Second
	defer telemetry.StubClock(func() time.Duration { return now })()
	r, rd := newRecorder(t, "t", 10)
	ctx := context.Background()

	call := r.Start(ctx)
	attempt := r.Start(ctx)
	now += 250 * time.Millisecond
	r.AttemptDoneSince(ctx, method, codes.OK, addr1, telemetry.LocalityNone, attempt)
	now += 500 * time.Millisecond
	r.CallDoneSince(ctx, method, codes.OK, call)
	r.CallDoneSince(ctx, method, codes.OK, 0) // began with metrics off: not recorded

	c := collect(t, rd)
	ok := "grpc.status=OK"
	assert.Equal(t, map[string]hpoint{attrs("grpcpool.target=t", "grpcpool.backend="+addr1, hello, ok): {1, 0.25}},
		histograms(t, c, telemetry.AttemptDuration))
	assert.Equal(t, map[string]hpoint{attrs("grpcpool.target=t", hello, ok): {1, 0.75}},
		histograms(t, c, telemetry.CallDuration))

	now = 0 // the clock's origin is still a Stamp that was taken
	assert.NotZero(t, r.Start(ctx))
}
