package pool

import (
	"context"

	"google.golang.org/grpc/stats"
)

// statusSeen is the stats.Handler of every connection of a pool with
// retry policies: it records in an attempt's delivery that the
// server's status arrived — trailers, or a Trailers-Only response; gRPC
// reports both as stats.InTrailer. Response headers are no status: a
// request whose connection broke after them got no answer the caller can
// act on, and the server may have acted on it.
type statusSeen struct{}

func (statusSeen) TagRPC(ctx context.Context, _ *stats.RPCTagInfo) context.Context { return ctx }

func (statusSeen) HandleRPC(ctx context.Context, s stats.RPCStats) {
	if _, ok := s.(*stats.InTrailer); !ok {
		return
	}
	if d, ok := ctx.Value(deliveryKey{}).(*delivery); ok {
		d.status.Store(true)
	}
}

func (statusSeen) TagConn(ctx context.Context, _ *stats.ConnTagInfo) context.Context { return ctx }

func (statusSeen) HandleConn(context.Context, stats.ConnStats) {}
