package core

import (
	"strconv"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/grpcpool/grpcpool/breaker"
)

// How an attempt ended, decided once for both doors: the pool's
// attempt.end and lb's end settle every attempt through Settle and
// Observe.

// PushbackKey is the trailer a server sets to ask clients to back off
// (gRFC A6): milliseconds, or a negative value for "do not retry".
const PushbackKey = "grpc-retry-pushback-ms"

// Settle decides what an attempt on b that ended in err tells b's
// breaker, and counts a backend failure. answered: the server had
// answered, so the caller's own deadline or cancellation that ended it
// says nothing about the backend. It returns nil for a success;
// ErrNotSent for an attempt that says nothing about the backend (one that
// sent nothing, which the caller passes as ErrNotSent, or one the caller
// ended after the server answered); err otherwise, counted in b.Failures
// when classify says the backend failed.
func Settle(b *Backend, err error, answered bool, classify func(error) breaker.Outcome) error {
	switch {
	case err == nil:
	case err == ErrNotSent, answered && CallerEnded(err):
		return ErrNotSent
	case classify(err) == breaker.Failure:
		b.Failures.Add(1)
	}
	return err
}

// ProbeGivenBack reports whether an attempt on b whose breaker's done was
// called with verdict (Settle's, ErrNotSent, a stream probe's timeout)
// gave a half-open breaker's probe slot back without a change of breaker
// state: classify says neither success nor failure, and the breaker is
// not closed. No new picker comes of that, so the door
// must publish one for the calls the breaker refused meanwhile, which
// wait for one (grpc.WaitForReady).
func ProbeGivenBack(b *Backend, verdict error, classify func(error) breaker.Outcome) bool {
	return b.Breaker != nil && b.BreakerState() != breaker.StateClosed && classify(verdict) == breaker.Ignore
}

// Observe tells PeakEWMA how an attempt on b that ran for d went: its
// latency when it succeeded or ran out of time (DeadlineExceeded: at
// least that long; a penalty for every call a caller's tight deadline cut
// would shun healthy backends), unless failuresOnly; a failure, with the
// server's pushback from trailer, when classify says the backend failed.
// Attempts classify ignores (the caller's cancellation) teach nothing.
// failuresOnly is for a stream: its time to a first answer is no latency.
func Observe(b *Backend, d time.Duration, err error, trailer metadata.MD, failuresOnly bool, classify func(error) breaker.Outcome) {
	switch {
	case err == nil, status.Code(err) == codes.DeadlineExceeded:
		if !failuresOnly {
			b.Observe(d, false, 0)
		}
	case classify(err) == breaker.Failure:
		b.Observe(d, true, Pushback(trailer))
	}
}

// CallerEnded reports whether err is a deadline or a cancellation.
func CallerEnded(err error) bool {
	c := status.Code(err)
	return c == codes.DeadlineExceeded || c == codes.Canceled
}

// Pushback returns the server's pushback in md, 0 when it sent none or
// asked for no retry at all (a negative value: the failure penalty then
// applies).
func Pushback(md metadata.MD) time.Duration {
	v := md.Get(PushbackKey)
	if len(v) == 0 {
		return 0
	}
	ms, err := strconv.ParseInt(v[0], 10, 64)
	if err != nil || ms < 0 {
		return 0
	}
	return time.Duration(ms) * time.Millisecond
}
