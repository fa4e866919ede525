package echopb_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/test/bufconn"
	"google.golang.org/protobuf/proto"

	"github.com/grpcpool/grpcpool/example/echopb"
	"github.com/grpcpool/grpcpool/internal/backend"
)

func TestFullMethodNames(t *testing.T) {
	tests := []struct{ got, want string }{
		{echopb.Echo_ServiceDesc.ServiceName, "grpcpool.example.echo.v1.Echo"},
		{echopb.Echo_Unary_FullMethodName, "/grpcpool.example.echo.v1.Echo/Unary"},
		{echopb.Echo_ServerStream_FullMethodName, "/grpcpool.example.echo.v1.Echo/ServerStream"},
		{echopb.Echo_ClientStream_FullMethodName, "/grpcpool.example.echo.v1.Echo/ClientStream"},
		{echopb.Echo_Bidi_FullMethodName, "/grpcpool.example.echo.v1.Echo/Bidi"},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("got %q, want %q", tt.got, tt.want)
		}
	}
}

func TestMessagesRoundTrip(t *testing.T) {
	req := &echopb.EchoRequest{Message: "hello", Count: 3}
	b, err := proto.Marshal(req)
	if err != nil {
		t.Fatalf("Marshal: %v", err)
	}
	var got echopb.EchoRequest
	if err := proto.Unmarshal(b, &got); err != nil {
		t.Fatalf("Unmarshal: %v", err)
	}
	if !proto.Equal(&got, req) {
		t.Errorf("got %v, want %v", &got, req)
	}
	resp := &echopb.EchoResponse{Message: "hello", Backend: "b1"}
	if got, want := resp.GetBackend(), "b1"; got != want {
		t.Errorf("GetBackend: got %q, want %q", got, want)
	}
}

// counter is a minimal EchoServer that exercises every generated stream
// type: ServerStream sends Count numbered messages, ClientStream replies
// with the number of messages, Bidi echoes.
type counter struct {
	echopb.UnimplementedEchoServer
}

func (counter) Unary(_ context.Context, r *echopb.EchoRequest) (*echopb.EchoResponse, error) {
	return &echopb.EchoResponse{Message: r.GetMessage()}, nil
}

func (counter) ServerStream(r *echopb.EchoRequest, st grpc.ServerStreamingServer[echopb.EchoResponse]) error {
	for i := range r.GetCount() {
		if err := st.Send(&echopb.EchoResponse{Message: fmt.Sprint(i)}); err != nil {
			return err
		}
	}
	return nil
}

func (counter) ClientStream(st grpc.ClientStreamingServer[echopb.EchoRequest, echopb.EchoResponse]) error {
	n := 0
	for {
		_, err := st.Recv()
		if errors.Is(err, io.EOF) {
			return st.SendAndClose(&echopb.EchoResponse{Message: fmt.Sprint(n)})
		}
		if err != nil {
			return err
		}
		n++
	}
}

func (counter) Bidi(st grpc.BidiStreamingServer[echopb.EchoRequest, echopb.EchoResponse]) error {
	for {
		r, err := st.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if err := st.Send(&echopb.EchoResponse{Message: r.GetMessage()}); err != nil {
			return err
		}
	}
}

func TestGeneratedStubsOverBufconn(t *testing.T) {
	lis := bufconn.Listen(1 << 20)
	srv := grpc.NewServer()
	echopb.RegisterEchoServer(srv, counter{})
	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = srv.Serve(lis)
	}()
	t.Cleanup(func() { srv.Stop(); <-served })
	cc, err := grpc.NewClient("passthrough:///bufnet",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatalf("NewClient: %v", err)
	}
	t.Cleanup(func() { cc.Close() })
	c := echopb.NewEchoClient(cc)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()

	r, err := c.Unary(ctx, &echopb.EchoRequest{Message: "u"})
	if err != nil || r.GetMessage() != "u" {
		t.Fatalf("Unary: got (%v, %v), want (u, nil)", r, err)
	}

	ss, err := c.ServerStream(ctx, &echopb.EchoRequest{Count: 3})
	if err != nil {
		t.Fatalf("ServerStream: %v", err)
	}
	var got []string
	for {
		r, err := ss.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("ServerStream Recv: %v", err)
		}
		got = append(got, r.GetMessage())
	}
	if fmt.Sprint(got) != "[0 1 2]" {
		t.Errorf("ServerStream: got %v, want [0 1 2]", got)
	}

	cs, err := c.ClientStream(ctx)
	if err != nil {
		t.Fatalf("ClientStream: %v", err)
	}
	for range 4 {
		if err := cs.Send(&echopb.EchoRequest{}); err != nil {
			t.Fatalf("ClientStream Send: %v", err)
		}
	}
	if r, err := cs.CloseAndRecv(); err != nil || r.GetMessage() != "4" {
		t.Errorf("ClientStream: got (%v, %v), want (4, nil)", r, err)
	}

	bs, err := c.Bidi(ctx)
	if err != nil {
		t.Fatalf("Bidi: %v", err)
	}
	for _, m := range []string{"a", "b"} {
		if err := bs.Send(&echopb.EchoRequest{Message: m}); err != nil {
			t.Fatalf("Bidi Send: %v", err)
		}
		if r, err := bs.Recv(); err != nil || r.GetMessage() != m {
			t.Fatalf("Bidi Recv: got (%v, %v), want (%s, nil)", r, err, m)
		}
	}
	if err := bs.CloseSend(); err != nil {
		t.Fatalf("Bidi CloseSend: %v", err)
	}
	if _, err := bs.Recv(); !errors.Is(err, io.EOF) {
		t.Errorf("Bidi after CloseSend: got %v, want io.EOF", err)
	}
}

// Example calls the Echo service of a local test backend.
func Example() {
	srv, err := backend.Listen(backend.Options{Name: "backend-1"})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer srv.Stop()
	cc, err := grpc.NewClient(srv.Addr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer cc.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := echopb.NewEchoClient(cc).Unary(ctx, &echopb.EchoRequest{Message: "hello"})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(resp.GetMessage(), "from", resp.GetBackend())
	// Output: hello from backend-1
}
