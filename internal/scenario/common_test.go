package scenario

import (
	"context"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// scenarioContext bounds a scenario test.
func scenarioContext(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// cell returns the cell of t in the row whose first cell is row and the
// column whose header starts with col.
func cell(t *testing.T, tab *Table, row, col string) string {
	t.Helper()
	j := slices.IndexFunc(tab.Header, func(h string) bool { return strings.HasPrefix(h, col) })
	if j < 0 {
		t.Fatalf("table %q: no column %q in %q", tab.Title, col, tab.Header)
	}
	for _, r := range tab.Rows {
		if r[0] == row {
			return r[j]
		}
	}
	t.Fatalf("table %q: no row %q", tab.Title, row)
	return ""
}

// cells returns column col of every row whose first cell is row.
func cells(t *testing.T, tab *Table, row, col string) []string {
	t.Helper()
	j := slices.IndexFunc(tab.Header, func(h string) bool { return strings.HasPrefix(h, col) })
	if j < 0 {
		t.Fatalf("table %q: no column %q in %q", tab.Title, col, tab.Header)
	}
	var out []string
	for _, r := range tab.Rows {
		if r[0] == row {
			out = append(out, r[j])
		}
	}
	if len(out) == 0 {
		t.Fatalf("table %q: no row %q", tab.Title, row)
	}
	return out
}

func number(t *testing.T, s string) float64 {
	t.Helper()
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		t.Fatalf("not a number: %q", s)
	}
	return f
}

func logTable(t *testing.T, tab *Table) {
	t.Helper()
	var b strings.Builder
	tab.Fprint(&b)
	t.Log(b.String())
}

func TestPercentile(t *testing.T) {
	d := []time.Duration{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}
	for _, tc := range []struct {
		p    float64
		want time.Duration
	}{{0, 1}, {50, 5}, {99, 9}, {100, 10}} {
		if got := percentile(d, tc.p); got != tc.want {
			t.Errorf("percentile(%v): got %v, want %v", tc.p, got, tc.want)
		}
	}
	if got := percentile(nil, 50); got != 0 {
		t.Errorf("percentile(nil): got %v, want 0", got)
	}
}
