package scenario

import (
	"context"
	"testing"
	"time"
)

func policyRowOf(t *testing.T, rows []PolicyRow, cas, client string) PolicyRow {
	t.Helper()
	for _, r := range rows {
		if r.Case[:3] == cas && r.Client == client {
			return r
		}
	}
	t.Fatalf("no row for %s %s", cas, client)
	return PolicyRow{}
}

// PeakEWMA sees what LeastActive cannot: with one sequential caller a
// backend 20 ms slower gets almost nothing, and a backend that fails fast
// fails almost no call. The bounds are loose (the figures in
// docs/policies.md are far below them): the machine is shared.
func TestPoliciesSmall(t *testing.T) {
	tab, rows, err := RunPolicies(scenarioContext(t), PoliciesConfig{SeqCalls: 300, Calls: 600}, t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	t.Log("\n" + tab.String())
	a := policyRowOf(t, rows, "(a)", "pool PeakEWMA")
	if share := float64(a.OnBad) / float64(a.Attempts); share > 0.1 {
		t.Errorf("(a) PeakEWMA sent %.1f%% of its calls to the slow backend, want at most 10%%", 100*share)
	}
	c := policyRowOf(t, rows, "(c)", "pool PeakEWMA")
	if share := float64(c.Failed) / float64(c.Calls); share > 0.05 {
		t.Errorf("(c) PeakEWMA failed %.1f%% of its calls, want at most 5%%", 100*share)
	}
}

// BenchmarkPolicies runs RunPolicies at its documented sizes once and
// logs the table docs/policies.md records:
//
//	go test -run '^$' -bench Policies -benchtime 1x -v ./internal/scenario/
func BenchmarkPolicies(b *testing.B) {
	for b.Loop() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		tab, _, err := RunPolicies(ctx, PoliciesConfig{}, nil)
		cancel()
		if err != nil {
			b.Fatal(err)
		}
		b.Log("\n" + tab.String())
	}
}
