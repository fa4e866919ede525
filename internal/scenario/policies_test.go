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

// RunPolicies compares the clients on every case and renders its table.
// How far PeakEWMA keeps calls off the slow and the failing backend
// depends on latencies, which a shared machine's load moves, so those
// shares are not asserted here: they are asserted exactly on the fake seam
// (internal/balancer's PeakEWMA tests) and recorded from BenchmarkPolicies
// in docs/policies.md.
func TestPoliciesSmall(t *testing.T) {
	tab, rows, err := RunPolicies(scenarioContext(t), PoliciesConfig{SeqCalls: 40, Calls: 80}, t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	t.Log("\n" + tab.String())
	for _, cas := range []string{"(a)", "(b)", "(c)"} {
		for _, client := range []string{"pool LeastActive", "pool PeakEWMA"} {
			if r := policyRowOf(t, rows, cas, client); r.Attempts == 0 {
				t.Errorf("%s %s: no attempt counted", cas, client)
			}
		}
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
