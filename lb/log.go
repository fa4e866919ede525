package lb

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

	"google.golang.org/grpc/grpclog"
)

// logger carries the core's decisions to grpc's own logging, component
// "grpcpool": warnings (a backend's connections failing, with the cause)
// and errors always, the rest at verbosity 2 (GRPC_GO_LOG_VERBOSITY_LEVEL).
var logger = slog.New(grpclogHandler{l: grpclog.Component("grpcpool")})

type grpclogHandler struct {
	l     grpclog.DepthLoggerV2
	attrs string
}

func (h grpclogHandler) Enabled(_ context.Context, l slog.Level) bool {
	return l >= slog.LevelWarn || grpclog.V(2)
}

func (h grpclogHandler) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	b.WriteString(r.Message)
	b.WriteString(h.attrs)
	r.Attrs(func(a slog.Attr) bool {
		fmt.Fprintf(&b, " %s=%v", a.Key, a.Value)
		return true
	})
	switch {
	case r.Level >= slog.LevelError:
		h.l.ErrorDepth(3, b.String())
	case r.Level >= slog.LevelWarn:
		h.l.WarningDepth(3, b.String())
	default:
		h.l.InfoDepth(3, b.String())
	}
	return nil
}

func (h grpclogHandler) WithAttrs(as []slog.Attr) slog.Handler {
	var b strings.Builder
	b.WriteString(h.attrs)
	for _, a := range as {
		fmt.Fprintf(&b, " %s=%v", a.Key, a.Value)
	}
	h.attrs = b.String()
	return h
}

func (h grpclogHandler) WithGroup(string) slog.Handler { return h }
