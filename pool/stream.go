package pool

import (
	"context"
	"io"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/grpcpool/grpcpool/internal/core"
)

// stream is one attempt of a stream call, and the ClientStream the pool
// returns when it is the one that opened. It is settled by finish, its
// grpc.OnFinish, which grpc-go calls exactly once on every route the
// stream ends by; the pool calls finish too for an attempt gRPC never saw
// (later calls do nothing). The call the attempts share is allocated with
// the first one (own): one allocation for a stream.
type stream struct {
	grpc.ClientStream
	attempt
	c *call

	state     atomic.Uint32      // a streamState; changed only by set
	err       error              // how it ended: written once, before state says so
	stalledAt int64              // open streams when the stall timer gave it up: written before state says so
	cancel    context.CancelFunc // with WithMaxStreamAge or stall learning
	timer     *time.Timer        // with WithMaxStreamAge; set before gRPC has the stream
	optsBuf   [4]grpc.CallOption

	own call // the call, when this is its first attempt
}

// streamState is a stream's one state: its phase, and flags for what has
// happened to it. The phases move only forward:
//
//	New ──admit──▶ Admitted ──markOpen──▶ Open ──markEnded──▶ Ended
//	New ──markOpen──▶ Open;  New, Admitted ──markEnded──▶ Ended
//
// New: in NewStream, gRPC has not made it on the transport. Admitted:
// gRPC has (the server has it), NewStream has not returned. Open: counted
// in its connection's open streams. Ended: finish ran. The flags: stalled
// (the stall timer gave its NewStream up while it was New: it never
// opens), held (the caller holds it: NewStream returned it), answered
// (headers or a message came back), aged (its max stream age ended it).
// The call ends when its stream is both held and Ended: whichever of
// NewStream's return and finish comes second ends it.
type streamState uint32

const (
	phaseNew streamState = iota
	phaseAdmitted
	phaseOpen
	phaseEnded
	phaseMask streamState = 3

	flagStalled  streamState = 1 << 2
	flagHeld     streamState = 1 << 3
	flagAnswered streamState = 1 << 4
	flagAged     streamState = 1 << 5
)

func (s streamState) phase() streamState     { return s & phaseMask }
func (s streamState) has(f streamState) bool { return s&f != 0 }

// set changes the stream's state: f gets the current state and returns
// the next, and whether the change applies. set returns the state it
// found and whether it changed it. It is the only writer of st.state.
func (st *stream) set(f func(streamState) (streamState, bool)) (streamState, bool) {
	for {
		old := streamState(st.state.Load())
		next, ok := f(old)
		if !ok {
			return old, false
		}
		if st.state.CompareAndSwap(uint32(old), uint32(next)) {
			return old, true
		}
	}
}

func (st *stream) load() streamState { return streamState(st.state.Load()) }

// admit: gRPC made the stream on the transport; the stall timer no longer
// gives it up.
func (st *stream) admit() {
	st.set(func(s streamState) (streamState, bool) {
		return s&^phaseMask | phaseAdmitted, s.phase() == phaseNew && !s.has(flagStalled)
	})
}

// stall gives the stream's NewStream up, while gRPC has not admitted it;
// it reports whether it did.
func (st *stream) stall() bool {
	_, ok := st.set(func(s streamState) (streamState, bool) {
		return s | flagStalled, s.phase() == phaseNew && !s.has(flagStalled)
	})
	return ok
}

// markOpen counts the stream in its connection's open streams, unless it
// stalled or ended first; it returns the state it found.
func (st *stream) markOpen() (streamState, bool) {
	return st.set(func(s streamState) (streamState, bool) {
		return s&^phaseMask | phaseOpen, s.phase() <= phaseAdmitted && !s.has(flagStalled)
	})
}

// mark adds flag f; it reports the state found and whether f is new.
func (st *stream) mark(f streamState) (streamState, bool) {
	return st.set(func(s streamState) (streamState, bool) { return s | f, !s.has(f) })
}

// markEnded moves the stream to Ended; it returns the state it found.
func (st *stream) markEnded() streamState {
	old, _ := st.set(func(s streamState) (streamState, bool) {
		return s&^phaseMask | phaseEnded, s.phase() != phaseEnded
	})
	return old
}

// open makes the stream attempt st on its connection: it returns nil once
// the stream is open (the caller then holds st), errStalled when the
// stall timer gave its NewStream up (placed again), or NewStream's error.
func (st *stream) open(desc *grpc.StreamDesc) error {
	c := st.c
	p := c.p
	st.begin()
	st.report.Start(st.pk)
	st.feedback(nil)
	o := append(st.optsBuf[:0], c.opts...)
	o = append(o, grpc.OnFinish(st.finish))
	ctx := c.ctx
	armed := p.o.stallLearning() && !st.pk.Overflow && st.pk.Conn.Limit() == 0
	if armed || p.o.maxStreamAge > 0 {
		ctx, st.cancel = context.WithCancel(ctx)
	}
	var stall *time.Timer
	if armed {
		ctx, stall = st.armStall(ctx)
	}
	if p.o.maxStreamAge > 0 {
		// Armed before gRPC has the stream: gRPC may finish it on a
		// goroutine of its own before NewStream returns, and finish must
		// find the timer to stop it.
		st.timer = time.AfterFunc(core.Jitter(p.o.maxStreamAge), st.expire)
	}
	cs, err := handle(st.pk.Conn).cc.NewStream(ctx, desc, c.method, o...)
	if stall != nil {
		stall.Stop()
	}
	conn := st.pk.Conn
	conn.StreamOpened()
	if s, ok := st.markOpen(); !ok {
		conn.StreamEnded() // not counted: it stalled, or already ended
		if s.has(flagStalled) {
			return st.stalled(err)
		}
	}
	if err != nil {
		st.finish(err) // in case an interceptor failed before gRPC saw the stream
		return st.fix(err)
	}
	st.ClientStream = cs
	if s, _ := st.mark(flagHeld); s.phase() == phaseEnded {
		c.end(st.callErr())
	}
	return nil
}

// finish ends the stream attempt, which ended in err: the first call
// settles the attempt (attempt.end), takes it out of its connection's
// open streams, stops its timers and, once the caller holds it, ends the
// call; later calls do nothing.
func (st *stream) finish(err error) {
	if !st.end(err, st.load().has(flagAnswered)) {
		return
	}
	st.err = err
	s := st.markEnded()
	if s.phase() == phaseOpen {
		st.pk.Conn.StreamEnded()
	}
	if st.timer != nil {
		st.timer.Stop()
	}
	if st.cancel != nil {
		st.cancel()
	}
	if s.has(flagHeld) {
		st.c.end(st.callErr())
	}
}

// callErr is the error the call ends with, once the stream has ended.
func (st *stream) callErr() error {
	if st.err != nil && st.load().has(flagAged) {
		return status.Error(codes.Unavailable, msgStreamMaxAge)
	}
	return st.err
}

// answer records that the server answered the stream, and tells the
// breaker once that the backend is healthy, so a long-lived stream never
// holds a half-open breaker.
func (st *stream) answer() {
	if st.load().has(flagAnswered) {
		return
	}
	if _, ok := st.mark(flagAnswered); ok {
		st.report.Answered()
	}
}

func (st *stream) expire() {
	st.mark(flagAged)
	st.cancel()
}

// fix reports a stream ended by WithMaxStreamAge as codes.Unavailable, so
// callers reopen it.
func (st *stream) fix(err error) error {
	if err != nil && err != io.EOF && st.load().has(flagAged) {
		return status.Error(codes.Unavailable, msgStreamMaxAge)
	}
	return err
}

func (st *stream) RecvMsg(m any) error {
	err := st.ClientStream.RecvMsg(m)
	if err == nil {
		st.answer()
	}
	return st.fix(err)
}

func (st *stream) SendMsg(m any) error { return st.fix(st.ClientStream.SendMsg(m)) }

func (st *stream) Header() (metadata.MD, error) {
	md, err := st.ClientStream.Header()
	if err == nil {
		st.answer()
	}
	return md, st.fix(err)
}
