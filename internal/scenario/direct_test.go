package scenario

import "testing"

// pick_first puts everything on one backend; round_robin and the pool
// spread streams and calls.
func TestDirect(t *testing.T) {
	tab, err := RunDirect(scenarioContext(t), DirectConfig{Backends: 3, Streams: 90, Calls: 300}, t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	logTable(t, tab)
	if got := cell(t, tab, "grpc pick_first", "streams max/mean"); got != "3.00" {
		t.Errorf("pick_first streams max/mean: got %s, want 3.00", got)
	}
	for row, want := range map[string]float64{"grpc round_robin": 1.0, "pool RoundRobin": 1.0, "pool LeastActive": 1.25} {
		if got := number(t, cell(t, tab, row, "streams max/mean")); got > want {
			t.Errorf("%s streams max/mean: got %.2f, want <= %.2f", row, got, want)
		}
		if got := number(t, cell(t, tab, row, "unary max/mean")); got > 1.25 {
			t.Errorf("%s unary max/mean: got %.2f, want <= 1.25", row, got)
		}
	}
}
