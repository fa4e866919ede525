package pool

import (
	"context"
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/metric/noop"
	"google.golang.org/grpc"
)

func TestChainUnaryOrder(t *testing.T) {
	var trace []string
	mk := func(name string) grpc.UnaryClientInterceptor {
		return func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
			assert.Nil(t, cc, "%s: cc", name)
			trace = append(trace, name+">")
			err := invoker(ctx, method+"+"+name, req, reply, cc, opts...)
			trace = append(trace, "<"+name)
			return err
		}
	}
	errFinal := errors.New("final")
	final := func(_ context.Context, method string, req, _ any, cc *grpc.ClientConn, opts ...grpc.CallOption) error {
		assert.Nil(t, cc)
		assert.Equal(t, "/s.S/M+a+b", method, "each interceptor's changes reach the next")
		assert.Equal(t, "req", req)
		assert.Len(t, opts, 1)
		trace = append(trace, "final")
		return errFinal
	}
	inv := chainUnary([]grpc.UnaryClientInterceptor{mk("a"), mk("b")}, final)
	err := inv(context.Background(), "/s.S/M", "req", nil, nil, grpc.WaitForReady(true))
	require.ErrorIs(t, err, errFinal)
	assert.Equal(t, []string{"a>", "b>", "final", "<b", "<a"}, trace)
}

func TestChainUnaryEmpty(t *testing.T) {
	called := false
	inv := chainUnary(nil, func(context.Context, string, any, any, *grpc.ClientConn, ...grpc.CallOption) error {
		called = true
		return nil
	})
	require.NoError(t, inv(context.Background(), "/s.S/M", nil, nil, nil))
	assert.True(t, called)
}

func TestChainUnaryShortCircuit(t *testing.T) {
	deny := errors.New("denied")
	inv := chainUnary([]grpc.UnaryClientInterceptor{
		func(context.Context, string, any, any, *grpc.ClientConn, grpc.UnaryInvoker, ...grpc.CallOption) error {
			return deny
		},
	}, func(context.Context, string, any, any, *grpc.ClientConn, ...grpc.CallOption) error {
		assert.Fail(t, "final ran after an interceptor refused the call")
		return nil
	})
	require.ErrorIs(t, inv(context.Background(), "/s.S/M", nil, nil, nil), deny)
}

func TestChainUnaryAllocations(t *testing.T) {
	pass := func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		return invoker(ctx, method, req, reply, cc, opts...)
	}
	inv := chainUnary([]grpc.UnaryClientInterceptor{pass, pass, pass}, func(context.Context, string, any, any, *grpc.ClientConn, ...grpc.CallOption) error {
		return nil
	})
	ctx := context.Background()
	assert.Zero(t, testing.AllocsPerRun(100, func() { _ = inv(ctx, "/s.S/M", nil, nil, nil) }))
}

type fakeStream struct{ grpc.ClientStream }

func TestChainStreamOrder(t *testing.T) {
	var trace []string
	mk := func(name string) grpc.StreamClientInterceptor {
		return func(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
			assert.Nil(t, cc, "%s: cc", name)
			trace = append(trace, name+">")
			s, err := streamer(ctx, desc, cc, method, opts...)
			trace = append(trace, "<"+name)
			return s, err
		}
	}
	want := &fakeStream{}
	desc := &grpc.StreamDesc{StreamName: "M", ServerStreams: true}
	final := func(_ context.Context, d *grpc.StreamDesc, cc *grpc.ClientConn, method string, _ ...grpc.CallOption) (grpc.ClientStream, error) {
		assert.Same(t, desc, d)
		assert.Equal(t, "/s.S/M", method)
		trace = append(trace, "final")
		return want, nil
	}
	got, err := chainStream([]grpc.StreamClientInterceptor{mk("a"), mk("b")}, final)(context.Background(), desc, nil, "/s.S/M")
	require.NoError(t, err)
	assert.Same(t, want, got)
	assert.Equal(t, []string{"a>", "b>", "final", "<b", "<a"}, trace)
	same, err := chainStream(nil, final)(context.Background(), desc, nil, "/s.S/M")
	require.NoError(t, err)
	assert.Same(t, want, same)
}

func applyOptions(opts ...Option) (options, error) {
	o := defaultOptions()
	for _, op := range opts {
		op.apply(&o)
	}
	return o, o.validate()
}

func TestObservabilityOptions(t *testing.T) {
	pass := func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		return invoker(ctx, method, req, reply, cc, opts...)
	}
	spass := func(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
		return streamer(ctx, desc, cc, method, opts...)
	}
	o, err := applyOptions(WithUnaryInterceptor(pass, pass), WithUnaryInterceptor(pass), WithStreamInterceptor(spass),
		WithMeterProvider(noop.NewMeterProvider()), WithMetricsBackendLimit(0))
	require.NoError(t, err)
	assert.Len(t, o.unaryInts, 3)
	assert.Len(t, o.streamInts, 1)
	require.NotNil(t, o.metricsBackendLimit)
	assert.Equal(t, 0, *o.metricsBackendLimit)
	r, err := o.recorder("t")
	require.NoError(t, err)
	require.NotNil(t, r)

	def, err := applyOptions()
	require.NoError(t, err)
	assert.Nil(t, def.meterProvider, "default: the global provider, looked up by the recorder")
	_, err = def.recorder("t")
	require.NoError(t, err)

	for name, op := range map[string]Option{
		"nil unary":      WithUnaryInterceptor(pass, nil),
		"nil stream":     WithStreamInterceptor(nil),
		"nil provider":   WithMeterProvider(nil),
		"negative limit": WithMetricsBackendLimit(-1),
	} {
		_, err := applyOptions(op)
		require.ErrorIs(t, err, ErrInvalidOption, name)
	}
}
