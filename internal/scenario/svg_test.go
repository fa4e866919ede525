package scenario

import (
	"bytes"
	"encoding/xml"
	"errors"
	"io"
	"strings"
	"testing"
	"time"
)

func TestWriteSVG(t *testing.T) {
	s := Series{
		Title: "a <b> & c",
		Names: []string{"b1", "b2", "b3"},
		Ideal: 10,
		Marks: []Mark{{At: time.Second, Label: "+1 backend"}},
	}
	for i := range 30 {
		s.Points = append(s.Points, Point{At: time.Duration(i) * 100 * time.Millisecond, Values: []int64{int64(i), 15, int64(30 - i)}})
	}
	var buf bytes.Buffer
	if err := WriteSVG(&buf, s, s); err != nil {
		t.Fatal(err)
	}
	// Well-formed XML, with one polyline per backend and series.
	d := xml.NewDecoder(bytes.NewReader(buf.Bytes()))
	lines := 0
	for {
		tok, err := d.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("not well-formed: %v\n%s", err, buf.String())
		}
		if se, ok := tok.(xml.StartElement); ok && se.Name.Local == "polyline" {
			lines++
		}
	}
	if lines != 6 {
		t.Errorf("polylines: got %d, want 6", lines)
	}
	for _, want := range []string{"a &lt;b&gt; &amp; c", "+1 backend", "time (s)", ">b3<", "even spread 10"} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("SVG lacks %q", want)
		}
	}
}

func TestNiceStep(t *testing.T) {
	for _, tc := range []struct {
		span float64
		n    int
		want float64
	}{{100, 5, 20}, {150, 5, 50}, {4, 10, 0.5}, {3.3, 10, 0.5}, {0, 5, 1}, {7, 5, 2}} {
		if got := niceStep(tc.span, tc.n); got != tc.want {
			t.Errorf("niceStep(%v, %d): got %v, want %v", tc.span, tc.n, got, tc.want)
		}
	}
}
