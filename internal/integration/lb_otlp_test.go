package integration

import (
	"context"
	"net"
	"strconv"
	"sync/atomic"
	"testing"

	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/grpc"

	"github.com/grpcpool/grpcpool/internal/integration/harness"
	"github.com/grpcpool/grpcpool/internal/testutil"
	"github.com/grpcpool/grpcpool/lb"
)

// collector is an OTLP trace collector: it counts the spans exported to it.
type collector struct {
	coltracepb.UnimplementedTraceServiceServer
	spans atomic.Int64
}

func (c *collector) Export(_ context.Context, req *coltracepb.ExportTraceServiceRequest) (*coltracepb.ExportTraceServiceResponse, error) {
	for _, rs := range req.GetResourceSpans() {
		for _, ss := range rs.GetScopeSpans() {
			c.spans.Add(int64(len(ss.GetSpans())))
		}
	}
	return &coltracepb.ExportTraceServiceResponse{}, nil
}

// exportSpans exports n spans, one Export call each, through an OTLP
// trace exporter on cc, and shuts the exporter down (cc stays open).
func exportSpans(t *testing.T, cc *grpc.ClientConn, n int) {
	t.Helper()
	ctx := testutil.Context(t)
	exp, err := otlptracegrpc.New(ctx, otlptracegrpc.WithGRPCConn(cc))
	if err != nil {
		t.Fatalf("otlptracegrpc.New: %v", err)
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	tr := tp.Tracer("grpcpool-test")
	for i := range n {
		_, span := tr.Start(ctx, "span-"+strconv.Itoa(i))
		span.End()
	}
	if err := tp.Shutdown(ctx); err != nil {
		t.Fatalf("tracer provider shutdown: %v", err)
	}
}

// TestOTLPExporterBehindOneAddressReachesEveryCollector: the OTLP trace
// exporter takes a *grpc.ClientConn (otlptracegrpc.WithGRPCConn), so it
// cannot use a pool.Pool, but its ClientConn can use the policy. Three
// collectors sit behind haproxy (mode tcp), one address. With the
// ClientConn's default pick_first every span reaches one collector; with
// the policy at size 6, the six connections reach all three and the
// exports are spread over them.
func TestOTLPExporterBehindOneAddressReachesEveryCollector(t *testing.T) {
	const spans = 60
	var addrs []string
	var cols []*collector
	for _, host := range harness.LoopbackHosts(2, 3) {
		lis, err := net.Listen("tcp4", net.JoinHostPort(host, "0"))
		if err != nil {
			t.Fatal(err)
		}
		c := &collector{}
		s := grpc.NewServer()
		coltracepb.RegisterTraceServiceServer(s, c)
		go func() { _ = s.Serve(lis) }()
		t.Cleanup(s.Stop)
		addrs, cols = append(addrs, lis.Addr().String()), append(cols, c)
	}
	hap := harness.StartHAProxy(t, addrs)
	target := "passthrough:///" + hap.Addr
	counts := func() []int64 {
		out := make([]int64, len(cols))
		for i, c := range cols {
			out[i] = c.spans.Swap(0)
		}
		return out
	}

	cc := newClientConn(t, target, "")
	exportSpans(t, cc, spans)
	got := counts()
	t.Logf("OTLP exporter, pick_first, %d spans: %s", spans, figures(addrs, got))
	if n := nonZero(got); n != 1 {
		t.Errorf("pick_first reached %d collectors, want 1", n)
	}
	_ = cc.Close()

	cc = newClientConn(t, target, lb.ServiceConfig(lb.Config{Size: 6}))
	exportSpans(t, cc, spans)
	got = counts()
	t.Logf("OTLP exporter, policy %s size 6, %d spans: %s", lb.Name, spans, figures(addrs, got))
	if n := nonZero(got); n != 3 || testutil.Sum(got) != spans {
		t.Errorf("the policy reached %d collectors with %d spans, want all 3 with all %d", n, testutil.Sum(got), spans)
	}
}

func nonZero(xs []int64) int {
	n := 0
	for _, x := range xs {
		if x > 0 {
			n++
		}
	}
	return n
}
