package scenario

import (
	"strings"
	"testing"
	"time"
)

// Replacing every connection several times under load fails nothing.
func TestRecycle(t *testing.T) {
	cfg := RecycleConfig{MaxConnAge: 100 * time.Millisecond, Recycles: 3, Rate: 200, Streams: 4}
	tab, err := RunRecycle(scenarioContext(t), cfg, t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	logTable(t, tab)
	if !strings.HasPrefix(tab.Notes[0], "done") {
		t.Errorf("not every connection was recycled: %s", tab.Notes[0])
	}
	for _, n := range tab.Notes[1:3] {
		if !strings.Contains(n, ": 0 of") {
			t.Errorf("failures: %s", n)
		}
	}
	for _, r := range tab.Rows {
		if got := r[len(r)-1]; got != "0" {
			t.Errorf("%s: the pool counted %s failures", r[0], got)
		}
	}
}
