package scenario

import (
	"testing"
	"time"
)

// Removing a backend under load fails no call of the pool, whichever of
// removal and stop comes first.
func TestScaleDown(t *testing.T) {
	cfg := ScaleDownConfig{Rate: 400, Workers: 4, Duration: 600 * time.Millisecond, StopAfter: 100 * time.Millisecond, NoBaseline: true}
	tab, err := RunScaleDown(scenarioContext(t), cfg, t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	logTable(t, tab)
	for i, got := range cells(t, tab, "pool RoundRobin", "failed") {
		if got != "0" {
			t.Errorf("pool, run %d: %s calls failed, want 0 (%v)", i, got, tab.Rows[i])
		}
	}
}
