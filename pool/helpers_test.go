package pool_test

import (
	"github.com/grpcpool/grpcpool/internal/backend"
	"github.com/grpcpool/grpcpool/pool"
)

func activeStreams(p *pool.Pool) int64 {
	var n int64
	for _, b := range p.Stats().Backends {
		n += b.ActiveStreams
	}
	return n
}

func activeCalls(p *pool.Pool) int64 {
	var n int64
	for _, b := range p.Stats().Backends {
		n += b.ActiveCalls
	}
	return n
}

// serverStreams returns the streams open on each backend, counted on the
// servers.
func serverStreams(bs []*backend.Server) []int64 {
	out := make([]int64, len(bs))
	for i, b := range bs {
		out[i] = b.ActiveStreams()
	}
	return out
}
