package testutil

import (
	"context"
	"log/slog"
	"strings"
	"sync"
)

// LogRecorder is a slog.Handler that keeps every record as a line of text:
// level, message, then the attributes, handler attributes first. It is safe
// for concurrent use; handlers made by WithAttrs share its lines.
type LogRecorder struct {
	mu    *sync.Mutex
	lines *[]string
	msgs  *[]string
	attrs []slog.Attr
}

// NewLogRecorder returns an empty LogRecorder.
func NewLogRecorder() *LogRecorder {
	return &LogRecorder{mu: new(sync.Mutex), lines: new([]string), msgs: new([]string)}
}

// Enabled reports true for every level.
func (h *LogRecorder) Enabled(context.Context, slog.Level) bool { return true }

// WithGroup returns h: groups are not recorded.
func (h *LogRecorder) WithGroup(string) slog.Handler { return h }

// WithAttrs returns a handler recording into h's lines with as added.
func (h *LogRecorder) WithAttrs(as []slog.Attr) slog.Handler {
	h2 := *h
	h2.attrs = append(h.attrs[:len(h.attrs):len(h.attrs)], as...)
	return &h2
}

// Handle records r.
func (h *LogRecorder) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	b.WriteString(r.Level.String() + " " + r.Message)
	for _, a := range h.attrs {
		b.WriteString(" " + a.String())
	}
	r.Attrs(func(a slog.Attr) bool {
		b.WriteString(" " + a.String())
		return true
	})
	h.mu.Lock()
	*h.lines = append(*h.lines, b.String())
	*h.msgs = append(*h.msgs, r.Message)
	h.mu.Unlock()
	return nil
}

// Text returns every line recorded so far, joined by newlines.
func (h *LogRecorder) Text() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return strings.Join(*h.lines, "\n")
}

// HasMessage reports whether the message of a record (without level or
// attributes) contains s.
func (h *LogRecorder) HasMessage(s string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, m := range *h.msgs {
		if strings.Contains(m, s) {
			return true
		}
	}
	return false
}
