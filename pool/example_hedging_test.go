package pool_test

import (
	"log"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/grpcpool/grpcpool/pool"
	"github.com/grpcpool/grpcpool/retry"
)

// Per-method policies: reads are hedged at their p95 and retried after a
// broken connection; everything else is retried only when the request
// never reached a server, or the server answered Unavailable.
func ExampleWithHedging() {
	p, err := pool.New("dns:///kv.prod.svc:50051",
		pool.WithDialOptions(grpc.WithTransportCredentials(insecure.NewCredentials())),
		pool.WithRetry(retry.Policy{Idempotent: []string{"/kv.Store/Get", "/kv.Store/Scan"}}),
		pool.WithHedging(retry.Hedging{
			Methods:  []string{"/kv.Store/Get"},
			MinDelay: time.Millisecond, // adaptive: the method's p95, at least 1ms
		}),
	)
	if err != nil {
		log.Fatal(err)
	}
	defer p.Close()
	// client := kvpb.NewStoreClient(p)
	// client.Put(ctx, req, retry.Idempotent()) // this Put carries a request ID the server deduplicates
}
