package pool

import (
	"fmt"
	"strconv"
	"strings"
	"text/tabwriter"
)

// statsColumn is one column of the table Stats.String prints.
type statsColumn struct {
	head string
	cell func(BackendStats) string
}

// statsColumns are the columns of Stats.String, in order; a field added to
// BackendStats is shown by adding its column here.
var statsColumns = []statsColumn{
	{"BACKEND", func(b BackendStats) string {
		if b.Removed {
			return b.Addr + " (removed)"
		}
		return b.Addr
	}},
	{"READY", func(b BackendStats) string { return strconv.Itoa(b.Ready) }},
	{"CONNECTING", func(b BackendStats) string { return strconv.Itoa(b.Connecting) }},
	{"DRAINING", func(b BackendStats) string { return strconv.Itoa(b.Draining) }},
	{"CALLS", func(b BackendStats) string { return strconv.FormatInt(b.ActiveCalls, 10) }},
	{"STREAMS", func(b BackendStats) string { return strconv.FormatInt(b.ActiveStreams, 10) }},
	{"ENDED", func(b BackendStats) string { return strconv.FormatUint(b.Calls, 10) }},
	{"ATTEMPTS", func(b BackendStats) string { return strconv.FormatUint(b.Attempts, 10) }},
	{"FAILED", func(b BackendStats) string { return strconv.FormatUint(b.Failures, 10) }},
	{"BREAKER", func(b BackendStats) string { return b.Breaker.String() }},
	{"HEALTH", func(b BackendStats) string {
		if b.Healthy {
			return "serving"
		}
		return "not-serving"
	}},
	{"LAST ERROR", func(b BackendStats) string { return b.LastError }},
}

// String renders the snapshot for people: a line naming the target, the
// policy (and with zone-aware routing the client's zone and its local
// share) and the number of backends, then a table with one line per
// backend: its address (and its zone, when some backend's is known), its connections ready, connecting and draining,
// the unary calls and streams it carries, the logical calls it ended
// (Calls), the attempts placed on it and those that failed, its breaker state, its health and the last
// error of one of its connections ("-" when none).
func (s Stats) String() string {
	var b strings.Builder
	state := ""
	if s.Closed {
		state = ", closed"
	}
	if s.Zone != "" {
		state += fmt.Sprintf(", zone %s: %.1f%% local", s.Zone, 100*s.LocalShare)
	}
	fmt.Fprintf(&b, "pool %s (%s%s): %d backends\n", s.Target, s.Policy, state, len(s.Backends))
	if len(s.Backends) == 0 {
		return b.String()
	}
	cols := s.columns()
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	for i, c := range cols {
		sep(tw, i)
		tw.Write([]byte(c.head))
	}
	tw.Write([]byte{'\n'})
	for _, bs := range s.Backends {
		for i, c := range cols {
			sep(tw, i)
			tw.Write([]byte(cleanCell(c.cell(bs))))
		}
		tw.Write([]byte{'\n'})
	}
	tw.Flush()
	return b.String()
}

// columns are the columns of s: statsColumns, with ZONE after BACKEND
// when a zone is known.
func (s Stats) columns() []statsColumn {
	zoned := s.Zone != ""
	for _, b := range s.Backends {
		zoned = zoned || b.Zone != ""
	}
	if !zoned {
		return statsColumns
	}
	zone := statsColumn{"ZONE", func(b BackendStats) string { return b.Zone }}
	return append([]statsColumn{statsColumns[0], zone}, statsColumns[1:]...)
}

func sep(tw *tabwriter.Writer, i int) {
	if i > 0 {
		tw.Write([]byte{'\t'})
	}
}

// cleanCell keeps a cell on its line and in its column.
func cleanCell(s string) string {
	if s == "" {
		return "-"
	}
	return strings.Map(func(r rune) rune {
		if r == '\t' || r == '\n' || r == '\r' {
			return ' '
		}
		return r
	}, s)
}
