package scenario

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/grpcpool/grpcpool/internal/backend"
)

func resilienceRowOf(t *testing.T, rows []resilienceRow, client string) resilienceRow {
	t.Helper()
	for _, r := range rows {
		if r.client == client {
			return r
		}
	}
	t.Fatalf("no row for %q", client)
	return resilienceRow{}
}

func resilienceContext(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// Small sizes: the pool with breaker and retry fails fewer calls than
// grpc-go's round_robin, and sends fewer attempts to the sick backend.
func TestResilienceSickBackendSmall(t *testing.T) {
	cfg := ResilienceConfig{Calls: 400, Goroutines: 8}.withDefaults(0, time.Second)
	rows, err := runResilience(resilienceContext(t), cfg, func(s *backend.Server) { s.SetFail(codes.Unavailable) }, false, t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	rr := resilienceRowOf(t, rows, "grpc round_robin")
	best := resilienceRowOf(t, rows, "pool + breaker + retry")
	if rr.failed == 0 {
		t.Fatalf("round_robin: no call failed on a sick backend: %+v", rr)
	}
	if best.failed >= rr.failed {
		t.Errorf("pool + breaker + retry failed %d calls, round_robin %d: want fewer", best.failed, rr.failed)
	}
	if best.badAttempts >= rr.badAttempts {
		t.Errorf("pool + breaker + retry sent %d attempts to the sick backend, round_robin %d: want fewer", best.badAttempts, rr.badAttempts)
	}
	t.Log(resilienceText(resilienceTable("sick (small)", rows)))
}

// Small sizes: a slow backend trips the pool's breaker through the
// callers' deadlines; round_robin keeps sending it its share.
func TestResilienceSlowBackendSmall(t *testing.T) {
	cfg := ResilienceConfig{Calls: 160, Goroutines: 8}.withDefaults(0, 100*time.Millisecond)
	rows, err := runResilience(resilienceContext(t), cfg, func(s *backend.Server) { s.SetDelay(cfg.SlowDelay) }, false, t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	rr := resilienceRowOf(t, rows, "grpc round_robin")
	brk := resilienceRowOf(t, rows, "pool + breaker")
	if rr.failed == 0 {
		t.Fatalf("round_robin: no call failed on a slow backend: %+v", rr)
	}
	if brk.failed >= rr.failed {
		t.Errorf("pool + breaker failed %d calls, round_robin %d: want fewer", brk.failed, rr.failed)
	}
	t.Log(resilienceText(resilienceTable("slow (small)", rows)))
}

// TestResilienceReport prints the tables of docs/resilience.md at full
// size. It runs only when GRPCPOOL_REPORT is set (about 10 s):
//
//	GRPCPOOL_REPORT=1 go test -run TestResilienceReport -v ./internal/scenario/
func TestResilienceReport(t *testing.T) {
	if os.Getenv("GRPCPOOL_REPORT") == "" {
		t.Skip("set GRPCPOOL_REPORT=1 to print the resilience tables")
	}
	ctx := resilienceContext(t)
	for _, run := range []func(context.Context, ResilienceConfig, Progress) (*Table, error){RunSickBackend, RunSlowBackend} {
		start := time.Now()
		tab, err := run(ctx, ResilienceConfig{}, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%s(took %v)", resilienceText(tab), time.Since(start).Round(100*time.Millisecond))
	}
}

func resilienceText(t *Table) string {
	var b strings.Builder
	t.Fprint(&b)
	return b.String()
}
