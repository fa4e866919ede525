// Package server has helpers for the gRPC servers behind a grpcpool pool.
//
// GracefulStop is the shutdown sequence that lets clients that watch the
// grpc.health.v1 service (pool.WithHealthCheck) move away from a server
// before it stops, so that a rolling restart fails no call:
//
//  1. every service of the health server is set NOT_SERVING, which the
//     clients' health watches learn within a round trip; they stop placing
//     new calls and streams on the server;
//  2. it waits, so that the clients hear of it and the calls they placed
//     just before finish;
//  3. grpc.Server.GracefulStop: the listeners close, every connection gets
//     a GOAWAY, and the server waits for the calls and streams in flight;
//  4. if the caller's context ends first, grpc.Server.Stop cuts what is
//     left.
//
// docs/policies.md has the recipe and measurements.
package server

import (
	"context"
	"errors"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
)

// ErrNilServer is returned by GracefulStop when it is given no server.
var ErrNilServer = errors.New("server: nil *grpc.Server")

// GracefulStop shuts s down without failing calls of clients that watch
// its health:
//
//   - hs.Shutdown sets every service hs knows (the server as a whole, "",
//     among them) NOT_SERVING and makes hs ignore later status changes, so
//     nothing sets it back to SERVING while the server drains. Clients that
//     watch a service hs never knew get SERVICE_UNKNOWN, which pools also
//     treat as not serving. A nil hs skips this step.
//   - It waits for wait, while s keeps serving everything that reaches it:
//     the calls clients placed before they heard, and the streams already
//     open. Size wait to the slowest client's reaction to a health change
//     (a round trip for a watching pool) plus your longest unary call; one
//     to a few seconds is typical. With a nil hs, the wait still happens,
//     for clients that learn of the shutdown by other means (a resolver, a
//     load balancer's endpoint removal). Zero or negative: no wait.
//   - s.GracefulStop: s closes its listeners, sends GOAWAY on every
//     connection and waits until every call and stream in flight has ended.
//     Streams end when their handlers return; a client that keeps a stream
//     open keeps s waiting, which is why ctx bounds this step.
//   - When ctx ends before all that is done (during the wait or during
//     s.GracefulStop), s.Stop closes every connection at once, cancelling
//     what is still in flight, and GracefulStop returns ctx's error once s
//     has stopped. Handlers that ignore their context's cancellation can
//     still keep it waiting, as they would keep grpc.Server.Stop's callers
//     waiting for their goroutines.
//
// GracefulStop returns nil when s stopped gracefully, ctx.Err() when it
// had to be stopped hard, and ErrNilServer for a nil s. It blocks until s
// has stopped and leaves no goroutine behind. It is safe to call
// concurrently with s.Stop or s.GracefulStop (later calls of those return
// at once).
func GracefulStop(ctx context.Context, s *grpc.Server, hs *health.Server, wait time.Duration) error {
	if s == nil {
		return ErrNilServer
	}
	if hs != nil {
		hs.Shutdown()
	}
	if wait > 0 {
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			s.Stop()
			return ctx.Err()
		}
	}
	if ctx.Err() != nil {
		s.Stop()
		return ctx.Err()
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.GracefulStop()
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		// grpc.Server.Stop aborts a GracefulStop in progress: it closes
		// every connection, and the GracefulStop above returns once the
		// handlers have.
		s.Stop()
		<-done
		return ctx.Err()
	}
}
