package pool

import (
	"strings"
	"sync/atomic"

	"google.golang.org/grpc/balancer"
	"google.golang.org/grpc/balancer/pickfirst"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/status"
)

// Every pool connection is a grpc.ClientConn whose load-balancing policy
// is the leaf: pick_first over the backend's addresses, wrapped so that
//   - each connectivity change is reported to the pool as it happens, with
//     the error of a failed attempt (no goroutine watches the connection);
//   - a pick on a connection that is not READY fails at once with
//     msgConnNotReady instead of waiting inside it: the pool owns waiting,
//     and places the call on a connection that is ready;
//   - in a pool with retry policies, an attempt marked in its context
//     learns whether its request reached the server and whether the
//     server answered (see delivery).
const leafName = "grpcpool_leaf"

const leafServiceConfig = `{"loadBalancingConfig":[{"` + leafName + `":{}}]}`

// msgConnNotReady starts the status of a pick on a pool connection that
// was not READY: the call never left the client.
const msgConnNotReady = "grpcpool: connection not ready"

func init() { balancer.Register(leafBuilder{}) }

type leafBuilder struct{}

func (leafBuilder) Name() string { return leafName }

func (leafBuilder) Build(cc balancer.ClientConn, opts balancer.BuildOptions) balancer.Balancer {
	l := &leaf{}
	l.cc = &leafCC{ClientConn: cc, l: l}
	l.Balancer = balancer.Get(pickfirst.Name).Build(l.cc, opts)
	return l
}

type leaf struct {
	balancer.Balancer
	cc *leafCC
	pc atomic.Pointer[pconn]
}

func (l *leaf) UpdateClientConnState(s balancer.ClientConnState) error {
	if pc, ok := s.ResolverState.Attributes.Value(pconnKey{}).(*pconn); ok {
		l.pc.Store(pc)
	}
	return l.Balancer.UpdateClientConnState(s)
}

type leafCC struct {
	balancer.ClientConn
	l *leaf
}

// UpdateState installs the connection's state and picker in gRPC and
// reports the state to the pool, in the order that never lets the pool
// hold the connection readier than gRPC does: READY once gRPC has the
// picker that takes calls (gRPC installs it before UpdateState returns),
// so that no call the pool then places there is refused inside as not
// ready; any other state before gRPC's picker refuses calls.
func (w *leafCC) UpdateState(s balancer.State) {
	var err error
	if s.ConnectivityState == connectivity.TransientFailure && s.Picker != nil {
		_, err = s.Picker.Pick(balancer.PickInfo{})
	}
	pc := w.l.pc.Load()
	ready := s.ConnectivityState == connectivity.Ready
	if pc != nil && !ready {
		pc.stateChanged(s.ConnectivityState, err)
	}
	if pc == nil || pc.p.o.tracksDelivery() {
		s.Picker = deliveryPicker{leafPicker{s.Picker}}
	} else {
		s.Picker = leafPicker{s.Picker}
	}
	w.ClientConn.UpdateState(s)
	if pc != nil && ready {
		pc.stateChanged(connectivity.Ready, nil)
	}
}

// leafPicker is a pool connection's picker: the connection's own, whose
// errors it turns into msgConnNotReady.
type leafPicker struct{ balancer.Picker }

func (lp leafPicker) Pick(info balancer.PickInfo) (balancer.PickResult, error) {
	var res balancer.PickResult
	var err error
	if lp.Picker == nil {
		err = balancer.ErrNoSubConnAvailable
	} else {
		res, err = lp.Picker.Pick(info)
	}
	if err != nil {
		// Whatever the connection's own picker says (it is connecting, or
		// its last attempt failed: a transport.ConnectionError carries a
		// status of its own), the call never left the client.
		msg := msgConnNotReady
		if err != balancer.ErrNoSubConnAvailable {
			msg += ": " + err.Error()
		}
		return res, status.Error(codes.Unavailable, msg)
	}
	return res, nil
}

// deliveryPicker is the leafPicker of a connection of a pool with retry
// policies (or whose pool is not known yet): it records what became of
// the request of an attempt that carries a delivery in its context. The
// connections of other pools pick without looking for one.
type deliveryPicker struct{ leafPicker }

func (dp deliveryPicker) Pick(info balancer.PickInfo) (balancer.PickResult, error) {
	res, err := dp.leafPicker.Pick(info)
	if err != nil || info.Ctx == nil {
		return res, err
	}
	if dl, ok := info.Ctx.Value(deliveryKey{}).(*delivery); ok {
		dl.picked.Store(true)
		inner := res.Done
		res.Done = func(d balancer.DoneInfo) {
			dl.sent.Store(d.BytesSent)
			dl.received.Store(d.BytesReceived)
			if inner != nil {
				inner(d)
			}
		}
	}
	return res, nil
}

// delivery is placed in a unary attempt's context (only where the retry
// decision needs it) for the leaf to record what became of the request.
type delivery struct {
	picked   atomic.Bool // a connection was picked inside grpc
	sent     atomic.Bool // bytes of the request reached the wire
	received atomic.Bool // the server sent something back
	status   atomic.Bool // the server's status arrived (see statusSeen)
}

type deliveryKey struct{}

// tracksDelivery reports whether the pool's unary attempts may carry a
// delivery: only calls under a retry policy need one, and a pool has
// them only from WithRetry or WithServiceConfig.
func (o *options) tracksDelivery() bool { return len(o.retries) > 0 }

// notSent reports whether err is the status of a pick on a pool connection
// that was not READY.
func notSent(err error) bool {
	st, ok := status.FromError(err)
	return ok && st.Code() == codes.Unavailable && strings.HasPrefix(st.Message(), msgConnNotReady)
}
