package pool

import (
	"context"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
)

// WithHealthCheck watches the grpc.health.v1 service on every connection,
// for serviceName ("" is the server as a whole): a connection whose server
// reports NOT_SERVING or UNKNOWN takes no new calls until it reports
// SERVING again; calls it carries finish. Servers without the health
// service (Unimplemented) are treated as serving, with a debug log.
// Default: no health checking.
func WithHealthCheck(serviceName string) Option {
	return optionFunc(func(o *options) {
		o.healthService = &serviceName
	})
}

// watchHealth follows the health of c's server while c is READY. The watch
// is cancelled whenever c leaves READY (see setHealthCancel), so a server
// shutting down gracefully is never kept waiting by it.
func (p *Pool) watchHealth(c *conn) {
	service := *p.o.healthService
	retry := 100 * time.Millisecond
	for {
		select {
		case <-c.readyCh():
		case <-p.ctx.Done():
			return
		}
		if connectivity.State(c.state.Load()) == connectivity.Shutdown {
			return
		}
		ctx, cancel := context.WithCancel(p.ctx)
		c.setHealthCancel(cancel)
		if connectivity.State(c.state.Load()) != connectivity.Ready {
			cancel() // it left READY before the cancel was in place
		}
		err := p.watchHealthOnce(ctx, c, service)
		cancel()
		switch {
		case status.Code(err) == codes.Unimplemented:
			p.log.Debug("grpcpool: server has no health service; treating it as serving", "addr", c.b.addr(), "conn", c.id)
			p.setUnhealthy(c, false)
			return
		case p.ctx.Err() != nil || connectivity.State(c.state.Load()) == connectivity.Shutdown:
			return
		}
		// The connection went away or the stream broke: watch again once the
		// connection is READY, with a short pause against spinning.
		t := time.NewTimer(retry)
		select {
		case <-t.C:
		case <-p.ctx.Done():
			t.Stop()
			return
		}
		retry = min(2*retry, 5*time.Second)
		c.awaitReady()
	}
}

func (p *Pool) watchHealthOnce(ctx context.Context, c *conn, service string) error {
	s, err := healthpb.NewHealthClient(c.cc).Watch(ctx, &healthpb.HealthCheckRequest{Service: service}, grpc.WaitForReady(true))
	if err != nil {
		return err
	}
	for {
		resp, err := s.Recv()
		if err != nil {
			return err
		}
		serving := resp.GetStatus() == healthpb.HealthCheckResponse_SERVING
		p.setUnhealthy(c, !serving)
	}
}

// setUnhealthy records a health report and republishes the snapshot when
// it changes whether c may take calls.
func (p *Pool) setUnhealthy(c *conn, unhealthy bool) {
	changed := c.unhealthy.Swap(unhealthy) != unhealthy
	settled := !c.settled.Swap(true) // the first report ends its start
	if !changed {
		if settled {
			p.rebuild()
		}
		return
	}
	if unhealthy {
		p.log.Info("grpcpool: backend not serving", "addr", c.b.addr(), "conn", c.id)
	} else {
		p.log.Info("grpcpool: backend serving", "addr", c.b.addr(), "conn", c.id)
	}
	p.rebuild()
}
