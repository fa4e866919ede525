package pool

import (
	"context"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/grpcpool/grpcpool/example/echopb"
	"github.com/grpcpool/grpcpool/internal/backend"
)

// ending is how endAtOnce ends one stream, carried in its context.
type ending struct {
	end      context.CancelFunc // ends the stream
	finished chan struct{}      // closed when gRPC has finished it
	wait     bool               // NewStream returns only once it has; else a moment later
}

type endingKey struct{}

// endAtOnce is a client interceptor that ends the stream as soon as gRPC
// has made it (gRPC then finishes it on a goroutine of its own) and, with
// wait, returns only once it has finished: the stream ends before, or
// while, the pool's NewStream returns.
func endAtOnce(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	e, _ := ctx.Value(endingKey{}).(*ending)
	if e == nil {
		return streamer(ctx, desc, cc, method, opts...)
	}
	cs, err := streamer(ctx, desc, cc, method, append(opts, grpc.OnFinish(func(error) { close(e.finished) }))...)
	if err != nil {
		return nil, err
	}
	e.end()
	if e.wait {
		<-e.finished
	} else {
		// No synchronisation with the finish: with -race, a write of
		// the stream's fields that finish reads is reported.
		time.Sleep(time.Millisecond)
	}
	return cs, nil
}

// A stream that ends while NewStream is still returning (gRPC finishes it
// on its own goroutine) has its max-age timer stopped when it finishes: the
// timer is armed before the stream can finish, so finish always sees it,
// and nothing keeps the stream referenced for its whole age. Run with -race:
// the timer is never written while finish may read it.
func TestMaxStreamAgeTimerWithStreamEndingAtOnce(t *testing.T) {
	srv, err := backend.Listen(backend.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop)
	p, err := New("passthrough:///"+srv.Addr(), WithMaxStreamAge(time.Hour), WithDialOptions(
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithStreamInterceptor(endAtOnce)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	wctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := p.WaitForReady(wctx); err != nil {
		t.Fatal(err)
	}
	for i := range 40 {
		ctx, end := context.WithCancel(wctx)
		e := &ending{end: end, finished: make(chan struct{}), wait: i%2 == 0}
		cs, err := p.NewStream(context.WithValue(ctx, endingKey{}, e), &echopb.Echo_ServiceDesc.Streams[2], echopb.Echo_Bidi_FullMethodName)
		end()
		if err != nil {
			t.Fatalf("stream %d: %v", i, err)
		}
		st, ok := cs.(*stream)
		if !ok {
			t.Fatalf("NewStream returned %T, want *stream", cs)
		}
		select {
		case <-e.finished:
		case <-wctx.Done():
			t.Fatalf("stream %d: gRPC did not finish it", i)
		}
		if st.timer == nil {
			t.Fatalf("stream %d: no max-age timer", i)
		}
		if st.timer.Stop() {
			t.Errorf("stream %d: max-age timer still armed after the stream finished", i)
		}
	}
	if n := p.Stats().Backends[0].ActiveStreams; n != 0 {
		t.Errorf("active streams = %d, want 0", n)
	}
}
