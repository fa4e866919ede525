package backend

import (
	"context"
	"errors"
	"io"
	"strings"

	"google.golang.org/grpc"

	"github.com/grpcpool/grpcpool/example/echopb"
)

// echoService implements echopb.EchoServer for a Server. It is a type of its
// own so that the Server's counter methods do not clash with RPC names.
type echoService struct {
	echopb.UnimplementedEchoServer
	s *Server
}

var _ echopb.EchoServer = (*echoService)(nil)

// Unary echoes the request's message.
func (e *echoService) Unary(ctx context.Context, req *echopb.EchoRequest) (*echopb.EchoResponse, error) {
	s := e.s
	s.calls.Add(1)
	s.unary.Add(1)
	if err := s.gate(ctx, true); err != nil {
		return nil, err
	}
	return s.response(req.GetMessage()), nil
}

// ServerStream sends req.Count responses (none when Count < 1), each
// echoing the request's message.
func (e *echoService) ServerStream(req *echopb.EchoRequest, stream grpc.ServerStreamingServer[echopb.EchoResponse]) error {
	s := e.s
	defer s.startStream()()
	ctx := stream.Context()
	if err := s.gate(ctx, false); err != nil {
		return err
	}
	for range max(req.GetCount(), 0) {
		if err := s.gate(ctx, true); err != nil {
			return err
		}
		if err := stream.Send(s.response(req.GetMessage())); err != nil {
			return err
		}
	}
	return nil
}

// ClientStream reads until the client's CloseSend and then replies once,
// with the received messages joined by ",".
func (e *echoService) ClientStream(stream grpc.ClientStreamingServer[echopb.EchoRequest, echopb.EchoResponse]) error {
	s := e.s
	defer s.startStream()()
	ctx := stream.Context()
	if err := s.gate(ctx, false); err != nil {
		return err
	}
	var msgs []string
	for {
		req, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		msgs = append(msgs, req.GetMessage())
	}
	if err := s.gate(ctx, true); err != nil {
		return err
	}
	return stream.SendAndClose(s.response(strings.Join(msgs, ",")))
}

// Bidi echoes each message it receives, and ends when the client's
// CloseSend does.
func (e *echoService) Bidi(stream grpc.BidiStreamingServer[echopb.EchoRequest, echopb.EchoResponse]) error {
	s := e.s
	defer s.startStream()()
	ctx := stream.Context()
	if err := s.gate(ctx, false); err != nil {
		return err
	}
	for {
		req, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if err := s.gate(ctx, true); err != nil {
			return err
		}
		if err := stream.Send(s.response(req.GetMessage())); err != nil {
			return err
		}
	}
}

// startStream counts a streaming RPC as received and open, and returns the
// function that counts it closed.
func (s *Server) startStream() (end func()) {
	s.calls.Add(1)
	s.streams.Add(1)
	s.active.Add(1)
	return func() { s.active.Add(-1) }
}

// response is a response that echoes msg, from this Server.
func (s *Server) response(msg string) *echopb.EchoResponse {
	return &echopb.EchoResponse{Message: msg, Backend: s.name}
}
