package pool_test

import (
	"context"
	"testing"
)

// A unary call through the pool allocates nothing beyond what the same
// call through a raw *grpc.ClientConn allocates: with every call answered
// by an interceptor on the connection, nothing reaches the network and
// the allocations counted are the caller's own.
func TestUnaryAllocatesAsRawClientConn(t *testing.T) {
	clients := rawAndPool(t, answerAtOnce)
	ctx := context.Background()
	var allocs [2]float64
	for i, c := range clients {
		allocs[i] = testing.AllocsPerRun(1000, func() {
			if _, err := c.Unary(ctx, req); err != nil {
				t.Fatal(err)
			}
		})
	}
	if raw, pool := allocs[0], allocs[1]; pool > raw {
		t.Fatalf("allocations per unary call: pool %v, raw ClientConn %v; want the pool's no more", pool, raw)
	}
}
