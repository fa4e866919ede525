package scenario

import (
	"bufio"
	"fmt"
	"html"
	"io"
	"math"
	"strings"
	"time"
)

// Series is a time series of one value per backend, for WriteSVG: each
// Point holds the value of every line at one moment.
type Series struct {
	Title  string
	Names  []string // one line per name, in Point.Values order
	Points []Point
	Marks  []Mark  // events drawn as vertical lines
	Ideal  float64 // if > 0, drawn as a dashed horizontal line (the even spread)
}

// Point is the value of every line of a Series at one moment.
type Point struct {
	At     time.Duration // since the start of the series
	Values []int64
}

// Mark is an event on a Series' time axis.
type Mark struct {
	At    time.Duration
	Label string
}

// Chart geometry, in SVG user units.
const (
	svgWidth     = 960
	svgLegendH   = 40
	svgPanelH    = 270
	svgLeft      = 60
	svgRight     = 20
	svgPanelTop  = 34 // title and mark labels above the plot
	svgPlotH     = 190
	svgAxisBelow = 46 // tick labels and axis title below the plot
)

// palette is Tableau 10: distinct, readable on white, one per backend.
var palette = []string{"#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac"}

// WriteSVG draws each series as a line chart panel, one under the other,
// on shared axes: one colored line per backend, axes with ticks and
// labels, the events as dashed vertical lines, and a legend of the
// backends of the first series (series are expected to share names).
func WriteSVG(w io.Writer, series ...Series) error {
	bw := bufio.NewWriter(w)
	height := svgLegendH + len(series)*svgPanelH + 10
	fmt.Fprintf(bw, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n",
		svgWidth, height, svgWidth, height)
	fmt.Fprintf(bw, `<rect x="0" y="0" width="%d" height="%d" fill="white"/>`+"\n", svgWidth, height)

	var names []string
	var tMax time.Duration
	var vMax int64 = 1
	for _, s := range series {
		if len(names) == 0 {
			names = s.Names
		}
		for _, p := range s.Points {
			tMax = max(tMax, p.At)
			for _, v := range p.Values {
				vMax = max(vMax, v)
			}
		}
		vMax = max(vMax, int64(math.Ceil(s.Ideal)))
	}
	// Legend.
	x := float64(svgLeft)
	fmt.Fprintf(bw, `<text x="%d" y="24" font-weight="bold">active streams per backend</text>`+"\n", 10)
	x += 190
	for i, n := range names {
		fmt.Fprintf(bw, `<line x1="%.1f" y1="20" x2="%.1f" y2="20" stroke="%s" stroke-width="3"/>`+"\n", x, x+22, color(i))
		fmt.Fprintf(bw, `<text x="%.1f" y="24">%s</text>`+"\n", x+27, esc(n))
		x += 37 + 7.5*float64(len(n))
	}
	if tMax <= 0 {
		tMax = time.Second
	}
	for i, s := range series {
		writePanel(bw, s, svgLegendH+i*svgPanelH, tMax, vMax)
	}
	fmt.Fprintln(bw, `</svg>`)
	return bw.Flush()
}

// writePanel draws one series at top, scaled to tMax and vMax (shared by
// all panels so that they compare at a glance).
func writePanel(w io.Writer, s Series, top int, tMax time.Duration, vMax int64) {
	plotTop := float64(top + svgPanelTop)
	plotBottom := plotTop + svgPlotH
	left, right := float64(svgLeft), float64(svgWidth-svgRight)
	yStep := niceStep(float64(vMax), 5)
	yTop := math.Ceil(float64(vMax)/yStep) * yStep
	xs := func(t time.Duration) float64 { return left + (right-left)*t.Seconds()/tMax.Seconds() }
	ys := func(v float64) float64 { return plotBottom - svgPlotH*v/yTop }

	fmt.Fprintf(w, `<text x="%.1f" y="%d" font-size="14" font-weight="bold">%s</text>`+"\n", left, top+16, esc(s.Title))
	// Grid and y ticks.
	for v := 0.0; v <= yTop+yStep/2; v += yStep {
		y := ys(v)
		fmt.Fprintf(w, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#e5e5e5"/>`+"\n", left, y, right, y)
		fmt.Fprintf(w, `<text x="%.1f" y="%.1f" text-anchor="end">%s</text>`+"\n", left-6, y+4, trimFloat(v))
	}
	// x ticks.
	xStep := niceStep(tMax.Seconds(), 10)
	for v := 0.0; v <= tMax.Seconds()+xStep/1000; v += xStep {
		x := xs(time.Duration(v * float64(time.Second)))
		fmt.Fprintf(w, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#999"/>`+"\n", x, plotBottom, x, plotBottom+4)
		fmt.Fprintf(w, `<text x="%.1f" y="%.1f" text-anchor="middle">%s</text>`+"\n", x, plotBottom+17, trimFloat(v))
	}
	// Axes.
	fmt.Fprintf(w, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#333"/>`+"\n", left, plotTop, left, plotBottom)
	fmt.Fprintf(w, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#333"/>`+"\n", left, plotBottom, right, plotBottom)
	fmt.Fprintf(w, `<text x="%.1f" y="%.1f" text-anchor="middle">time (s)</text>`+"\n", (left+right)/2, plotBottom+34)
	fmt.Fprintf(w, `<text transform="translate(16 %.1f) rotate(-90)" text-anchor="middle">streams</text>`+"\n", (plotTop+plotBottom)/2)
	if s.Ideal > 0 {
		y := ys(s.Ideal)
		fmt.Fprintf(w, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#555" stroke-dasharray="2 3"/>`+"\n", left, y, right, y)
		fmt.Fprintf(w, `<text x="%.1f" y="%.1f" text-anchor="end" fill="#555" font-size="11">even spread %s</text>`+"\n", right, y-4, trimFloat(s.Ideal))
	}
	// Events. A label that would run into the previous one goes on a
	// second row, just inside the plot.
	labelEnd := [2]float64{math.Inf(-1), math.Inf(-1)}
	for _, m := range s.Marks {
		x := xs(m.At)
		row := 0
		if x < labelEnd[0]+6 {
			row = 1
		}
		labelEnd[row] = x + 3 + 6*float64(len([]rune(m.Label)))
		y := plotTop - 6
		if row == 1 {
			y = plotTop + 10
		}
		fmt.Fprintf(w, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#777" stroke-dasharray="5 4"/>`+"\n", x, plotTop-4, x, plotBottom)
		fmt.Fprintf(w, `<text x="%.1f" y="%.1f" fill="#444" font-size="11">%s</text>`+"\n", x+3, y, esc(m.Label))
	}
	// Lines.
	for j := range s.Names {
		var b strings.Builder
		for _, p := range s.Points {
			if j < len(p.Values) {
				fmt.Fprintf(&b, "%.1f,%.1f ", xs(p.At), ys(float64(p.Values[j])))
			}
		}
		fmt.Fprintf(w, `<polyline fill="none" stroke="%s" stroke-width="2" stroke-linejoin="round" points="%s"/>`+"\n",
			color(j), strings.TrimSpace(b.String()))
	}
}

func color(i int) string { return palette[i%len(palette)] }

func esc(s string) string { return html.EscapeString(s) }

// niceStep returns a tick step of 1, 2 or 5 × 10^k giving about n ticks
// over [0, span].
func niceStep(span float64, n int) float64 {
	if span <= 0 {
		return 1
	}
	raw := span / float64(n)
	p := math.Pow(10, math.Floor(math.Log10(raw)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*p >= raw {
			return m * p
		}
	}
	return 10 * p
}

func trimFloat(v float64) string {
	s := fmt.Sprintf("%.2f", v)
	s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	if s == "-0" {
		return "0"
	}
	return s
}
