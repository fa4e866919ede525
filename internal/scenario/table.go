// Package scenario runs the measured scenarios behind the example program
// and the figures in docs/: real gRPC servers on loopback, a pool or a
// baseline client, a load, and a typed result per scenario that renders as
// a table and a one-line summary.
package scenario

import (
	"fmt"
	"io"
	"strings"
	"unicode/utf8"
)

// MaxWidth is the widest line, in columns, that Table.Fprint is meant to
// print: titles and notes are wrapped to it, and every scenario's columns
// are chosen to fit it.
const MaxWidth = 100

// A Result is what one scenario measured. It is not safe for concurrent
// use while a scenario fills it; once returned it is read-only.
type Result interface {
	// Table renders the result.
	Table() *Table
	// Summary says in one line what the scenario showed.
	Summary() string
}

// A Table is a scenario's result, printed as aligned text. It is not
// safe for concurrent use.
type Table struct {
	Title  string
	Header []string
	Rows   [][]string
	Notes  []string
}

// AddRow appends a row; values are formatted with fmt.Sprint, floats with
// two decimals.
func (t *Table) AddRow(vals ...any) {
	row := make([]string, len(vals))
	for i, v := range vals {
		switch v := v.(type) {
		case float64:
			row[i] = fmt.Sprintf("%.2f", v)
		default:
			row[i] = fmt.Sprint(v)
		}
	}
	t.Rows = append(t.Rows, row)
}

// Fprint writes the table to w, the title and notes wrapped to MaxWidth.
func (t *Table) Fprint(w io.Writer) {
	widths := make([]int, len(t.Header))
	for i, h := range t.Header {
		widths[i] = utf8.RuneCountInString(h)
	}
	for _, r := range t.Rows {
		for i, c := range r {
			if i < len(widths) && utf8.RuneCountInString(c) > widths[i] {
				widths[i] = utf8.RuneCountInString(c)
			}
		}
	}
	line := func(cells []string) {
		var b strings.Builder
		for i, c := range cells {
			if i > 0 {
				b.WriteString("  ")
			}
			b.WriteString(c)
			if i < len(cells)-1 && i < len(widths) {
				b.WriteString(strings.Repeat(" ", widths[i]-utf8.RuneCountInString(c)))
			}
		}
		fmt.Fprintln(w, strings.TrimRight(b.String(), " "))
	}
	fmt.Fprintln(w)
	title := wrap("== "+t.Title, MaxWidth-3, "   ")
	title[len(title)-1] += " =="
	for _, l := range title {
		fmt.Fprintln(w, l)
	}
	line(t.Header)
	sep := make([]string, len(widths))
	for i, n := range widths {
		sep[i] = strings.Repeat("-", n)
	}
	line(sep)
	for _, r := range t.Rows {
		line(r)
	}
	for _, n := range t.Notes {
		for _, l := range wrap("  "+n, MaxWidth, "    ") {
			fmt.Fprintln(w, l)
		}
	}
}

// String returns the table as Fprint writes it.
func (t *Table) String() string {
	var b strings.Builder
	t.Fprint(&b)
	return b.String()
}

// wrap breaks s at spaces into lines of at most width runes, the lines
// after the first starting with indent. A word longer than a line stays
// whole.
func wrap(s string, width int, indent string) []string {
	lead := len(s) - len(strings.TrimLeft(s, " "))
	words := strings.Fields(s)
	var out []string
	cur := s[:lead]
	n := utf8.RuneCountInString(cur)
	fresh := true // cur holds no word yet
	for _, wd := range words {
		wn := utf8.RuneCountInString(wd)
		if !fresh && n+1+wn > width {
			out = append(out, cur)
			cur, n, fresh = indent, utf8.RuneCountInString(indent), true
		}
		if !fresh {
			cur += " "
			n++
		}
		cur += wd
		n += wn
		fresh = false
	}
	return append(out, cur)
}

// byName returns the element of xs whose name is name, or false.
func byName[T any](xs []T, name func(T) string, want string) (T, bool) {
	for _, x := range xs {
		if name(x) == want {
			return x, true
		}
	}
	var zero T
	return zero, false
}

// Progress reports what a running scenario is doing; nil is allowed.
type Progress func(format string, args ...any)

func (p Progress) say(format string, args ...any) {
	if p != nil {
		p(format, args...)
	}
}
