// Package backend is a real gRPC backend for tests and the example program:
// it serves the Echo service of package echopb on a listener, names itself in
// every response, counts what it receives, and can be switched at run time
// to fail, to black-hole calls or to answer late.
package backend

import (
	"net"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/grpcpool/grpcpool/example/echopb"
)

// Options configures a Server. The zero value is valid.
type Options struct {
	// Name is put in the Backend field of every response. Empty means the
	// listener's address.
	Name string
	// ServerOptions are passed to grpc.NewServer (credentials, keepalive
	// enforcement, interceptors, …). Nil means none.
	ServerOptions []grpc.ServerOption
	// Health registers a grpc.health.v1 health server whose overall status
	// ("") and the Echo service's status are SERVING. False (the default)
	// registers none, and Server.Health returns nil.
	Health bool
}

// Server is one Echo backend. It is safe for concurrent use: its mode can be
// changed and its counters read while it serves.
type Server struct {
	name   string
	lis    net.Listener
	srv    *grpc.Server
	health *health.Server

	mode atomic.Pointer[modeState]

	calls   atomic.Int64 // every Echo RPC received
	unary   atomic.Int64 // unary RPCs received
	streams atomic.Int64 // streaming RPCs received
	active  atomic.Int64 // streaming RPCs open now

	serveDone chan struct{} // closed when the Serve goroutine returns
}

// Start serves Echo on lis in a new goroutine and returns at once. The
// Server owns lis from then on: Stop and GracefulStop close it. It starts in
// ModeOK.
func Start(lis net.Listener, o Options) *Server {
	s := &Server{
		name:      o.Name,
		lis:       lis,
		srv:       grpc.NewServer(o.ServerOptions...),
		serveDone: make(chan struct{}),
	}
	if s.name == "" {
		s.name = lis.Addr().String()
	}
	s.mode.Store(&modeState{mode: ModeOK})
	echopb.RegisterEchoServer(s.srv, &echoService{s: s})
	if o.Health {
		s.health = health.NewServer()
		s.health.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
		s.health.SetServingStatus(echopb.Echo_ServiceDesc.ServiceName, healthpb.HealthCheckResponse_SERVING)
		healthpb.RegisterHealthServer(s.srv, s.health)
	}
	go func() {
		defer close(s.serveDone)
		// Serve returns nil after Stop or GracefulStop. Any other error
		// means the listener broke; calls then fail, which is what a test
		// of a broken backend sees anyway.
		_ = s.srv.Serve(lis)
	}()
	return s
}

// Listen starts a Server on a new TCP listener at 127.0.0.1 on a port the
// system picks. It fails only when the listener cannot be made.
func Listen(o Options) (*Server, error) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	return Start(lis, o), nil
}

// Addr is the address the Server listens on, as host:port for TCP.
func (s *Server) Addr() string { return s.lis.Addr().String() }

// Name is the name put in every response: Options.Name, or Addr when that
// was empty.
func (s *Server) Name() string { return s.name }

// Health is the Server's health server, to change its serving status; nil
// when Options.Health was false.
func (s *Server) Health() *health.Server { return s.health }

// GRPC is the underlying *grpc.Server, to register more services. Register
// them right after Start, before any client connects.
func (s *Server) GRPC() *grpc.Server { return s.srv }

// Calls is the number of Echo RPCs received so far, of all four kinds,
// including those that failed or were black-holed. Health checks are not
// counted.
func (s *Server) Calls() int64 { return s.calls.Load() }

// Unary is the number of unary Echo RPCs received so far.
func (s *Server) Unary() int64 { return s.unary.Load() }

// Streams is the number of streaming Echo RPCs (server, client and
// bidirectional) received so far, open or ended.
func (s *Server) Streams() int64 { return s.streams.Load() }

// ActiveStreams is the number of streaming Echo RPCs (server, client and
// bidirectional) open on the Server now. A stream counts from the moment
// its handler starts until it returns, so it can lag the client's view by
// a moment in both directions.
func (s *Server) ActiveStreams() int64 { return s.active.Load() }

// Stop stops the Server at once: it closes the listener and every
// connection, which cancels every RPC in flight, and waits for the serving
// goroutine to end. It is idempotent and may race with GracefulStop.
func (s *Server) Stop() {
	s.srv.Stop()
	<-s.serveDone
}

// GracefulStop stops accepting connections, sends GOAWAY on the open ones
// and waits until every RPC in flight has ended. That includes black-holed
// calls and health Watch streams, which end only when their clients cancel
// them: use GracefulStopTimeout when that may not happen. The health
// server, if any, is first set to NOT_SERVING. It is idempotent.
func (s *Server) GracefulStop() {
	if s.health != nil {
		s.health.Shutdown()
	}
	s.srv.GracefulStop()
	<-s.serveDone
}

// GracefulStopTimeout is GracefulStop, except that after d the Server is
// stopped hard as by Stop, cutting whatever is still in flight. A d of zero
// or less is Stop.
func (s *Server) GracefulStopTimeout(d time.Duration) {
	if d <= 0 {
		s.Stop()
		return
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.GracefulStop()
	}()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
		s.Stop()
		<-done
	}
}
