package scenario

import (
	"strings"
	"testing"
)

// pick_first puts everything on one backend; round_robin and the pool
// spread streams and calls.
//
// Only bounds that hold whatever the scheduler does are asserted here:
// pick_first's 3.00 and the exact spread of the round-robin clients (a
// counter over a fixed set of backends). How evenly LeastActive spreads
// concurrent unary calls depends on timing, so it is reported in the table,
// not asserted; its decisions are tested exactly on the fake seam.
func TestDirect(t *testing.T) {
	tab, err := RunDirect(scenarioContext(t), DirectConfig{Backends: 3, Streams: 90, Calls: 300}, t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	logTable(t, tab)
	if got := cell(t, tab, "grpc pick_first", "streams max/mean"); got != "3.00" {
		t.Errorf("pick_first streams max/mean: got %s, want 3.00", got)
	}
	for _, row := range []string{"grpc round_robin", "pool RoundRobin"} {
		for _, col := range []string{"streams max/mean", "unary max/mean"} {
			if got := cell(t, tab, row, col); got != "1.00" {
				t.Errorf("%s %s: got %s, want 1.00", row, col, got)
			}
		}
	}
	// Every backend takes streams: a backend with none is the least loaded,
	// so it is chosen whenever it is one of the two sampled.
	for _, n := range strings.Split(cell(t, tab, "pool LeastActive", "streams per backend"), " / ") {
		if n == "0" {
			t.Errorf("pool LeastActive streams per backend: %s, want none at 0", cell(t, tab, "pool LeastActive", "streams per backend"))
		}
	}
}
