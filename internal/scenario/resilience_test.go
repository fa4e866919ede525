package scenario

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"

	"github.com/grpcpool/grpcpool/internal/backend"
)

func resilienceClient(t *testing.T, rows []ResilienceClient, name string) ResilienceClient {
	t.Helper()
	r := &ResilienceResult{Clients: rows}
	c, ok := r.Client(name)
	require.True(t, ok, "no client %q", name)
	return c
}

// Small sizes: the pool with breaker and retry fails fewer calls than
// grpc-go's round_robin, and sends fewer attempts to the sick backend.
//
// The sick backend fails at once, so these are counts, not timings:
// round_robin sends it every 4th call (100 of 400, all failing); the
// breaker opens after 5 failures in a row and stays open for 10 s, longer
// than the run, and retries go to the healthy backends.
func TestResilienceSickBackendSmall(t *testing.T) {
	t.Parallel()
	cfg := ResilienceConfig{Calls: 400, Goroutines: 8}.WithDefaults(0, time.Second)
	rows, err := runResilience(scenarioContext(t), cfg, func(s *backend.Server) { s.SetFail(codes.Unavailable) }, false, t.Logf)
	require.NoError(t, err)
	t.Log((&ResilienceResult{Config: cfg, Clients: rows}).Table())
	rr := resilienceClient(t, rows, ResilienceRR)
	best := resilienceClient(t, rows, ResiliencePoolBoth)
	require.Positive(t, rr.Failed, "round_robin: no call failed on a sick backend")
	assert.Less(t, best.Failed, rr.Failed, "pool + breaker + retry failed calls, against round_robin")
	assert.Less(t, best.BadAttempts, rr.BadAttempts, "attempts on the sick backend, pool + breaker + retry against round_robin")
}

// Small sizes: a slow backend trips the pool's breaker through the
// callers' deadlines; round_robin keeps sending it its share.
//
// Asserted are the attempts that reach the slow backend, not the failed
// calls: whether a call to a healthy backend also misses its 100 ms
// deadline depends on how busy the machine is, but every call to the slow
// one (200 ms) misses it, so the breaker opens after 5 of them (plus what
// was in flight) while round_robin sends it every 4th call.
func TestResilienceSlowBackendSmall(t *testing.T) {
	t.Parallel()
	cfg := ResilienceConfig{Calls: 160, Goroutines: 8}.WithDefaults(0, 100*time.Millisecond)
	rows, err := runResilience(scenarioContext(t), cfg, func(s *backend.Server) { s.SetDelay(cfg.SlowDelay) }, false, t.Logf)
	require.NoError(t, err)
	t.Log((&ResilienceResult{Slow: true, Config: cfg, Clients: rows}).Table())
	rr := resilienceClient(t, rows, ResilienceRR)
	brk := resilienceClient(t, rows, ResiliencePoolBreaker)
	require.Positive(t, rr.Failed, "round_robin: no call failed on a slow backend")
	assert.Less(t, brk.BadAttempts, rr.BadAttempts, "attempts on the slow backend, pool + breaker against round_robin")
}

// TestResilienceReport prints the tables of docs/resilience.md at full
// size. It runs only when GRPCPOOL_REPORT is set (about 10 s):
//
//	GRPCPOOL_REPORT=1 go test -run TestResilienceReport -v ./internal/scenario/
func TestResilienceReport(t *testing.T) {
	if os.Getenv("GRPCPOOL_REPORT") == "" {
		t.Skip("set GRPCPOOL_REPORT=1 to print the resilience tables")
	}
	ctx := scenarioContext(t)
	for _, run := range []func(context.Context, ResilienceConfig, Progress) (*ResilienceResult, error){RunSickBackend, RunSlowBackend} {
		start := time.Now()
		res, err := run(ctx, ResilienceConfig{}, nil)
		require.NoError(t, err)
		t.Logf("%s(took %v)", res.Table(), time.Since(start).Round(100*time.Millisecond))
	}
}
