package testutil

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"testing"
	"time"

	"google.golang.org/grpc"

	"github.com/grpcpool/grpcpool/example/echopb"
)

// Bidi is an open Echo Bidi stream.
type Bidi = grpc.BidiStreamingClient[echopb.EchoRequest, echopb.EchoResponse]

// OpenBidi opens n Bidi streams on ctx and waits until each has had one
// echo back, failing the test otherwise.
func OpenBidi(t testing.TB, ctx context.Context, c echopb.EchoClient, n int) []Bidi {
	t.Helper()
	out := make([]Bidi, 0, n)
	for i := range n {
		s, err := c.Bidi(ctx)
		if err != nil {
			t.Fatalf("stream %d: Bidi: %v", i, err)
		}
		if err := s.Send(&echopb.EchoRequest{Message: "hi"}); err != nil {
			t.Fatalf("stream %d: Send: %v", i, err)
		}
		if _, err := s.Recv(); err != nil {
			t.Fatalf("stream %d: Recv: %v", i, err)
		}
		out = append(out, s)
	}
	return out
}

// RoundTripTimeout bounds each round trip and end of a Stream.
const RoundTripTimeout = 10 * time.Second

// Stream is one open Bidi stream with its own cancel, and the backend that
// answered it. It is for one goroutine at a time.
type Stream struct {
	S       Bidi
	Cancel  context.CancelFunc
	Backend string // the name of the backend that answered the first round trip
}

// OpenStream opens a Bidi stream through cc and makes one round trip, so
// the stream is open on its server when it returns.
func OpenStream(cc grpc.ClientConnInterface) (*Stream, error) {
	ctx, cancel := context.WithCancel(context.Background())
	s, err := echopb.NewEchoClient(cc).Bidi(ctx)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("bidi: %w", err)
	}
	st := &Stream{S: s, Cancel: cancel}
	resp, err := st.RoundTrip("hello")
	if err != nil {
		cancel()
		return nil, fmt.Errorf("first round trip: %w", err)
	}
	st.Backend = resp.GetBackend()
	return st, nil
}

// OpenStreams opens n Streams through cc, failing the test if one does not
// open. They are cancelled at cleanup.
func OpenStreams(t testing.TB, cc grpc.ClientConnInterface, n int) []*Stream {
	t.Helper()
	out := make([]*Stream, 0, n)
	for i := range n {
		st, err := OpenStream(cc)
		if err != nil {
			t.Fatalf("stream %d of %d: %v", i+1, n, err)
		}
		t.Cleanup(st.Cancel)
		out = append(out, st)
	}
	return out
}

// RoundTrip sends msg and reads its echo, cancelling the stream if that
// takes longer than RoundTripTimeout.
func (st *Stream) RoundTrip(msg string) (*echopb.EchoResponse, error) {
	timer := time.AfterFunc(RoundTripTimeout, st.Cancel)
	defer timer.Stop()
	if err := st.S.Send(&echopb.EchoRequest{Message: msg}); err != nil {
		return nil, fmt.Errorf("send: %w", err)
	}
	resp, err := st.S.Recv()
	if err != nil {
		return nil, fmt.Errorf("recv: %w", err)
	}
	if resp.GetMessage() != msg {
		return nil, fmt.Errorf("echo: got %q, want %q", resp.GetMessage(), msg)
	}
	return resp, nil
}

// End closes the stream the polite way (CloseSend, then read to io.EOF),
// within RoundTripTimeout.
func (st *Stream) End() error {
	defer st.Cancel()
	timer := time.AfterFunc(RoundTripTimeout, st.Cancel)
	defer timer.Stop()
	if err := st.S.CloseSend(); err != nil {
		return err
	}
	for {
		_, err := st.S.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// EndAll ends every stream, reporting the ones that fail with t.Errorf.
func EndAll(t testing.TB, ss []*Stream) {
	t.Helper()
	for _, st := range ss {
		if err := st.End(); err != nil {
			t.Errorf("ending a stream on %s: %v", st.Backend, err)
		}
	}
}

// ByBackend counts streams per backend name, in the order of names.
func ByBackend(ss []*Stream, names []string) []int64 {
	out := make([]int64, len(names))
	for _, st := range ss {
		if i := slices.Index(names, st.Backend); i >= 0 {
			out[i]++
		}
	}
	return out
}
