package pool

import (
	"context"

	"google.golang.org/grpc/metadata"
)

// hashKeyOf is the ConsistentHash key of a call of method in ctx: from
// WithHashKeyFunc, or the WithHashKey metadata of the outgoing context.
func (o *options) hashKeyOf(ctx context.Context, method string) (string, bool) {
	if f := o.hashKeyFunc; f != nil {
		return f(ctx, method)
	}
	if o.hashKey == "" {
		return "", false
	}
	if v := metadata.ValueFromOutgoingContext(ctx, o.hashKey); len(v) > 0 {
		return v[0], true
	}
	return "", false
}
