package scenario

import (
	"flag"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"
)

var streamLimitFull = flag.Bool("streamlimit.full", false,
	"run TestRunStreamLimit at the documented sizes (300 streams, limit 100, 2 s) and print its table")

// RunStreamLimit, small and fast: 30 streams, a limit of 10, 1 s. The
// baselines open the limit per connection they have; the pool opens all,
// configured or learning.
func TestRunStreamLimit(t *testing.T) {
	cfg := StreamLimitConfig{Streams: 30, ServerLimit: 10, Window: time.Second, StallTimeout: 100 * time.Millisecond}
	if *streamLimitFull {
		cfg = StreamLimitConfig{}
	}
	tab, err := RunStreamLimit(scenarioContext(t), cfg, t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	logTable(t, tab)
	if *streamLimitFull {
		tab.Fprint(os.Stdout)
	}
	cfg = cfg.withDefaults()
	n, l := cfg.Streams, int(cfg.ServerLimit)
	for _, tt := range []struct {
		row         string
		open, limit string
	}{
		{"one grpc.ClientConn", fmt.Sprintf("%d / %d", l, n), "-"},
		{"round-robin over 2 grpc.ClientConns", fmt.Sprintf("%d / %d", 2*l, n), "-"},
		{fmt.Sprintf("grpcpool, WithMaxStreamsPerConn(%d)", l), fmt.Sprintf("%d / %d", n, n), fmt.Sprint(l)},
		{"grpcpool, limit learned", fmt.Sprintf("%d / %d", n, n), fmt.Sprint(l)},
	} {
		if got := cell(t, tab, tt.row, "open within"); got != tt.open {
			t.Errorf("%s: open = %s, want %s", tt.row, got, tt.open)
		}
		if got := cell(t, tab, tt.row, "limit in Stats"); got != tt.limit {
			t.Errorf("%s: limit in Stats = %s, want %s", tt.row, got, tt.limit)
		}
		if got := number(t, cell(t, tab, tt.row, "most on one conn")); got > float64(l) {
			t.Errorf("%s: %v streams on one connection, want ≤ %d", tt.row, got, l)
		}
		if got := cell(t, tab, tt.row, "failed"); got != "0" {
			t.Errorf("%s: %s streams failed, want 0", tt.row, got)
		}
	}
	if !strings.Contains(tab.Title, "MAX_CONCURRENT_STREAMS") {
		t.Errorf("title %q", tab.Title)
	}
}
