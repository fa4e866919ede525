package pool_test

import (
	"context"
	"encoding/json"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/status"

	"github.com/grpcpool/grpcpool/internal/testutil"
	"github.com/grpcpool/grpcpool/pool"
	"github.com/grpcpool/grpcpool/retry"
)

// jsonCodec is a gRPC codec of another kind than protobuf: its messages
// are plain Go values.
type jsonCodec struct{}

func (jsonCodec) Marshal(v any) ([]byte, error)      { return json.Marshal(v) }
func (jsonCodec) Unmarshal(data []byte, v any) error { return json.Unmarshal(data, v) }
func (jsonCodec) Name() string                       { return jsonSubtype }

const jsonSubtype = "grpcpool-test-json"

func init() { encoding.RegisterCodec(jsonCodec{}) }

// jsonMsg is a message of the JSON codec.
type jsonMsg struct {
	Text    string
	Attempt int64 // which request to the servers answered
}

const jsonEcho = "/grpcpool.test.JSON/Echo"

// startJSONServers starts n servers of a JSON Echo method, closed at
// cleanup. The first request the servers receive is never answered (it
// waits for its cancellation); every later one is echoed with its number.
// It returns the servers' addresses and the number of requests received.
func startJSONServers(t *testing.T, n int) ([]string, *atomic.Int64) {
	t.Helper()
	received := new(atomic.Int64)
	desc := grpc.ServiceDesc{
		ServiceName: "grpcpool.test.JSON",
		HandlerType: (*any)(nil),
		Methods: []grpc.MethodDesc{{
			MethodName: "Echo",
			Handler: func(_ any, ctx context.Context, dec func(any) error, _ grpc.UnaryServerInterceptor) (any, error) {
				var in jsonMsg
				if err := dec(&in); err != nil {
					return nil, err
				}
				k := received.Add(1)
				if k == 1 {
					<-ctx.Done()
					return nil, status.FromContextError(ctx.Err()).Err()
				}
				return &jsonMsg{Text: in.Text, Attempt: k}, nil
			},
		}},
	}
	addrs := make([]string, n)
	for i := range addrs {
		lis, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		s := grpc.NewServer()
		s.RegisterService(&desc, nil)
		go func() { _ = s.Serve(lis) }()
		t.Cleanup(s.Stop)
		addrs[i] = lis.Addr().String()
	}
	return addrs, received
}

// Hedging works for replies of any type, not only protobuf messages: with
// a JSON codec, a call whose first attempt does not answer is hedged onto
// the other backend and the caller gets the hedge's reply. A reply that
// is not a pointer cannot be made anew: the call fails at once with
// codes.Internal, sending nothing.
func TestHedgeRepliesOfAnyType(t *testing.T) {
	t.Parallel()
	addrs, received := startJSONServers(t, 2)
	r, target := testutil.ManualTarget(addrs...)
	p := testutil.NewPool(t, target, pool.WithResolvers(r), pool.WithSize(1),
		pool.WithHedging(retry.Hedging{Delay: time.Millisecond, MaxAttempts: 2, Methods: []string{jsonEcho}}))
	testutil.WaitFor(t, "both backends ready", func() bool {
		st := p.Stats()
		return len(st.Backends) == 2 && st.Backends[0].Ready > 0 && st.Backends[1].Ready > 0
	})
	codec := grpc.CallContentSubtype(jsonSubtype)

	var out jsonMsg
	err := p.Invoke(testutil.ContextFor(t, 5*time.Second), jsonEcho, &jsonMsg{Text: "hi"}, &out, codec)
	require.NoError(t, err)
	require.Equal(t, jsonMsg{Text: "hi", Attempt: 2}, out, "the caller's reply is the hedge's")
	require.Equal(t, int64(2), received.Load(), "requests the servers received")

	before := received.Load()
	err = p.Invoke(testutil.ContextFor(t, 5*time.Second), jsonEcho, &jsonMsg{Text: "hi"}, jsonMsg{}, codec)
	require.Equal(t, codes.Internal, status.Code(err), "%v", err)
	require.True(t, strings.Contains(status.Convert(err).Message(), "pointer"), "the error says why: %v", err)
	require.Equal(t, before, received.Load(), "a call whose reply is no pointer sent a request")
}
