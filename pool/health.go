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

// Pauses between health watches that broke while their connection stayed
// READY (a server whose health service fails), against spinning.
const (
	healthRetryMin = 100 * time.Millisecond
	healthRetryMax = 5 * time.Second
)

// watchHealth follows the health of c's server while c is READY. The watch
// is cancelled whenever c leaves READY (see conn.leftReady), so a server
// shutting down gracefully is never kept waiting by it, and c then needs a
// fresh report from the server it reconnects to before it takes calls.
func (p *Pool) watchHealth(c *conn) {
	service := *p.o.healthService
	retry := healthRetryMin
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
		reported, err := p.watchHealthOnce(ctx, c, service)
		if status.Code(err) == codes.Unimplemented {
			p.log.Debug("grpcpool: server has no health service; treating it as serving", "addr", c.b.addr(), "conn", c.id)
			reported = p.setUnhealthy(ctx, c, false)
			// Until c leaves READY: the server it reconnects to may be
			// another one, with the service.
			<-ctx.Done()
		}
		cancel()
		if p.ctx.Err() != nil || connectivity.State(c.state.Load()) == connectivity.Shutdown {
			return
		}
		if reported {
			retry = healthRetryMin // the watch worked until it ended
		}
		if connectivity.State(c.state.Load()) == connectivity.Ready {
			// The stream broke on a READY connection: watch again after a
			// pause.
			t := time.NewTimer(retry)
			select {
			case <-t.C:
			case <-p.ctx.Done():
				t.Stop()
				return
			}
			retry = min(2*retry, healthRetryMax)
		}
		c.awaitReady()
	}
}

// watchHealthOnce runs one health watch on c until it ends, recording each
// report; it returns whether any report was recorded.
func (p *Pool) watchHealthOnce(ctx context.Context, c *conn, service string) (bool, error) {
	s, err := healthpb.NewHealthClient(c.cc).Watch(ctx, &healthpb.HealthCheckRequest{Service: service}, grpc.WaitForReady(true))
	if err != nil {
		return false, err
	}
	reported := false
	for {
		resp, err := s.Recv()
		if err != nil {
			return reported, err
		}
		serving := resp.GetStatus() == healthpb.HealthCheckResponse_SERVING
		if p.setUnhealthy(ctx, c, !serving) {
			reported = true
		}
	}
}

// setUnhealthy records a report of the health watch whose context is ctx,
// unless that watch has ended, and republishes the snapshot when it changes
// whether c may take calls. It reports whether it recorded it.
func (p *Pool) setUnhealthy(ctx context.Context, c *conn, unhealthy bool) bool {
	recorded, changed := c.setHealth(ctx, unhealthy)
	if !recorded {
		return false
	}
	settled := !c.settled.Swap(true) // the first report ends its start
	if !changed {
		if settled {
			p.rebuild()
		}
		return true
	}
	if unhealthy {
		p.log.Info("grpcpool: backend not serving", "addr", c.b.addr(), "conn", c.id)
	} else {
		p.log.Info("grpcpool: backend serving", "addr", c.b.addr(), "conn", c.id)
	}
	p.rebuild()
	return true
}
