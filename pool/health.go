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

// DefaultHealthTimeout bounds, with WithHealthCheck, how long a READY
// connection may wait for its server's first health report: past it the
// connection counts as not serving (and says so in errors and Stats)
// until a report comes.
const DefaultHealthTimeout = 10 * time.Second

// Pauses between health watches that broke while their connection stayed
// READY (a server whose health service fails), against spinning.
const (
	healthRetryMin = 100 * time.Millisecond
	healthRetryMax = 5 * time.Second
)

// followHealthLocked starts pc's health watch when its connection is READY
// and ends it when it is not, so a connection has at most one watch, and
// none once it is closed or not READY.
func (pc *pconn) followHealthLocked() {
	p := pc.p
	if p.o.healthService == nil || pc.cc == nil {
		return
	}
	c := pc.c
	want := c.State().Live() && c.Transport() == connectivity.Ready
	switch {
	case want && pc.healthCancel == nil:
		ctx, cancel := context.WithCancel(p.ctx)
		pc.healthCancel = cancel
		p.goAsync(func() { pc.watchHealth(ctx) })
	case !want && pc.healthCancel != nil:
		pc.healthCancel()
		pc.healthCancel = nil
	}
}

// watchHealth follows the health of pc's server until ctx ends (pc left
// READY, was retired, or the pool closed). Servers without the health
// service (Unimplemented) are treated as serving.
func (pc *pconn) watchHealth(ctx context.Context) {
	p := pc.p
	service := *p.o.healthService
	retry := healthRetryMin
	for ctx.Err() == nil {
		reported, err := pc.watchHealthOnce(ctx, service)
		if ctx.Err() != nil {
			return
		}
		if status.Code(err) == codes.Unimplemented {
			p.log.Debug("grpcpool: server has no health service; treating it as serving", "target", p.target, "addr", pc.c.Backend.Addr(), "conn", pc.c.ID)
			pc.reportHealth(ctx, true, nil)
			<-ctx.Done()
			return
		}
		if reported {
			retry = healthRetryMin // the watch worked until it ended
		}
		t := time.NewTimer(retry)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return
		}
		retry = min(2*retry, healthRetryMax)
	}
}

// watchHealthOnce runs one health watch until it ends, reporting each
// status; it returns whether any was reported.
func (pc *pconn) watchHealthOnce(ctx context.Context, service string) (bool, error) {
	s, err := healthpb.NewHealthClient(pc.cc).Watch(ctx, &healthpb.HealthCheckRequest{Service: service}, grpc.WaitForReady(true))
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
		var why error
		if !serving {
			why = status.Errorf(codes.Unavailable, "health check of %q: %v", service, resp.GetStatus())
		}
		pc.reportHealth(ctx, serving, why)
		reported = true
	}
}

// reportHealth queues a report of the watch whose context is ctx, unless
// that watch has ended by the time it is applied.
func (pc *pconn) reportHealth(ctx context.Context, serving bool, why error) {
	p := pc.p
	p.events.push(func(now time.Time) {
		if ctx.Err() != nil {
			return
		}
		p.core.Health(now, pc.c, serving, why)
	})
}
