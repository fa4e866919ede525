package core

import (
	"sync/atomic"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/grpcpool/grpcpool/breaker"
)

// Breakers: an open breaker takes its backend out of the pickers (up to
// the ejection cap, ejection.go) until its open timeout, when the backend
// is offered half-open for probes.

// BreakerChanged takes in a change of b's breaker state: a newly open
// breaker keeps b out of the pickers until its open timeout, when it is offered
// half-open (gobreaker moves to half-open only when asked, and a backend
// the pickers skip is never asked).
func (k *Core) BreakerChanged(now time.Time, b *Backend) {
	k.at = now
	b.probeTimer.stop()
	k.touch(b)
	if b.BreakerState() == breaker.StateOpen && !b.removed && !k.closed && b.Breaker != nil {
		b.probeTimer = k.seam.After(max(b.Breaker.OpenUntil().Sub(now), 0), Timer{Kind: ProbeTimer, Backend: b})
	}
	k.publish()
}

// probeDue handles a ProbeTimer: b's open timeout passed. It is picked
// again, and its breaker answers Allow with the half-open probes.
func (k *Core) probeDue(b *Backend) {
	if !b.removed && b.BreakerState() == breaker.StateOpen {
		b.brkState.Store(int32(breaker.StateHalfOpen))
	}
}

// StreamProbeTimeout is how long a stream that a half-open breaker let
// through as a probe may go without its backend's first answer before it
// gives the probe slot back.
const StreamProbeTimeout = time.Second

// errUnanswered is what a breaker is told of a stream probe that went
// StreamProbeTimeout without an answer: the default classifier ignores it
// (codes.Canceled), which gives the probe slot back.
var errUnanswered = status.Error(codes.Canceled, "grpcpool: stream probe unanswered")

// StreamReport is what a stream owes its backend's breaker: one report,
// a success when the backend first answers the stream (headers or a
// message), otherwise how the stream ended. A stream that a half-open
// breaker admitted as its probe and that its backend has not answered
// within StreamProbeTimeout is reported as neither success nor failure,
// which gives the probe slot back: a subscription whose server says
// nothing until its first event must not keep a recovered backend out of
// rotation, and says nothing of its health either way. The zero
// StreamReport, before Start, reports nothing. Its methods are safe for
// concurrent use once Start has returned.
type StreamReport struct {
	done     func(error)
	reported atomic.Bool
	probe    *time.Timer // a probe's timeout; nil when the stream is none
}

// Start prepares the report of a stream that r placed. r is a probe when
// its backend's breaker is not closed: its timeout starts now.
func (s *StreamReport) Start(r Result) {
	s.done = r.Done
	if r.Done != nil && r.Conn.Backend.BreakerState() != breaker.StateClosed {
		s.probe = time.AfterFunc(StreamProbeTimeout, s.unanswered)
	}
}

// unanswered gives the probe slot back.
func (s *StreamReport) unanswered() {
	if s.reported.CompareAndSwap(false, true) {
		s.done(errUnanswered)
	}
}

// Answered reports that the backend answered the stream: a success, unless
// the stream was reported already.
func (s *StreamReport) Answered() {
	if done, first := s.Take(); first && done != nil {
		done(nil)
	}
}

// Take marks the stream reported. first says whether it had not been:
// done is then the breaker's (nil without breakers), for the caller to
// report how the stream went; when first is false the breaker has already
// heard of the stream, and a later failure of the backend is a call of its
// own.
func (s *StreamReport) Take() (done func(error), first bool) {
	if s.reported.Load() || !s.reported.CompareAndSwap(false, true) {
		return nil, false
	}
	if s.probe != nil {
		s.probe.Stop()
	}
	return s.done, true
}
