package pool

import (
	"context"

	"google.golang.org/grpc"
)

// chainUnary returns an invoker that runs ints around final, the first
// outermost, as grpc.WithChainUnaryInterceptor orders them. The chain is
// built once: calling it allocates nothing beyond what the interceptors
// do. The *grpc.ClientConn passed down is whatever the caller passes
// (the pool passes nil).
func chainUnary(ints []grpc.UnaryClientInterceptor, final grpc.UnaryInvoker) grpc.UnaryInvoker {
	return chain(ints, final, unaryLink)
}

// chain wraps final in ints, the last innermost, with link.
func chain[I, F any](ints []I, final F, link func(I, F) F) F {
	for i := len(ints) - 1; i >= 0; i-- {
		final = link(ints[i], final)
	}
	return final
}

func unaryLink(f grpc.UnaryClientInterceptor, next grpc.UnaryInvoker) grpc.UnaryInvoker {
	return func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, opts ...grpc.CallOption) error {
		return f(ctx, method, req, reply, cc, next, opts...)
	}
}

// chainStream is chainUnary for streams.
func chainStream(ints []grpc.StreamClientInterceptor, final grpc.Streamer) grpc.Streamer {
	return chain(ints, final, streamLink)
}

func streamLink(f grpc.StreamClientInterceptor, next grpc.Streamer) grpc.Streamer {
	return func(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, opts ...grpc.CallOption) (grpc.ClientStream, error) {
		return f(ctx, desc, cc, method, next, opts...)
	}
}
