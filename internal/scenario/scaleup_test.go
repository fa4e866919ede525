package scenario

import (
	"strings"
	"testing"
	"time"
)

// The pool spreads streams onto added backends, churning or (with a max
// stream age) not; never-ending streams on round_robin stay where they are.
func TestScaleUp(t *testing.T) {
	var series []Series
	cfg := ScaleUpConfig{
		Streams:      120,
		Lifetime:     600 * time.Millisecond,
		MaxStreamAge: 600 * time.Millisecond,
		Warm:         300 * time.Millisecond,
		Timeout:      4 * time.Second,
		Tail:         200 * time.Millisecond,
		StaticWindow: 300 * time.Millisecond,
		SampleEvery:  50 * time.Millisecond,
		OnSeries:     func(s Series) { series = append(series, s) },
	}
	tab, err := RunScaleUp(scenarioContext(t), cfg, t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	logTable(t, tab)
	if len(tab.Rows) != 4 || len(series) != 4 {
		t.Fatalf("got %d rows and %d series, want 4 of each", len(tab.Rows), len(series))
	}
	for _, r := range tab.Rows[:2] {
		if strings.HasPrefix(r[1], "never") {
			t.Errorf("%s: never balanced: %v", r[0], r)
		}
		if r[len(r)-1] != "none" {
			t.Errorf("%s: errors: %s", r[0], r[len(r)-1])
		}
	}
	if got := tab.Rows[1][5]; got == "0" {
		t.Errorf("max stream age run: no stream was reopened")
	}
	if got := tab.Rows[3][1]; !strings.HasPrefix(got, "never") {
		t.Errorf("round_robin with never-ending streams: got %q, want never", got)
	}
	for _, s := range series {
		if len(s.Names) != 6 || len(s.Points) < 5 || len(s.Marks) < 2 {
			t.Errorf("series %q: %d names, %d points, %d marks", s.Title, len(s.Names), len(s.Points), len(s.Marks))
		}
	}
}
