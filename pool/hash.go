package pool

import (
	"context"

	"google.golang.org/grpc/metadata"
)

func (p *Pool) hashKey(ctx context.Context, method string) (string, bool) {
	if f := p.o.hashKeyFunc; f != nil {
		return f(ctx, method)
	}
	if p.o.hashKey == "" {
		return "", false
	}
	if v := metadata.ValueFromOutgoingContext(ctx, p.o.hashKey); len(v) > 0 {
		return v[0], true
	}
	return "", false
}
