package backend

import (
	"context"
	"fmt"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Mode is how a Server answers Echo RPCs. Change it with SetOK, SetFail,
// SetBlackHole and SetDelay; it takes effect for the next call and, on open
// streams, for the next response.
type Mode int

const (
	// ModeOK answers every call at once. It is the mode a Server starts in.
	ModeOK Mode = iota
	// ModeFail answers every call with the status code given to SetFail.
	// A stream fails at its start, and an open stream fails at its next
	// response.
	ModeFail
	// ModeBlackHole accepts every call and never answers it: the handler
	// waits until the call's context ends (the client's deadline or
	// cancellation, or Stop) and ends with the matching status. An open
	// stream stops answering at its next response.
	ModeBlackHole
	// ModeDelay answers as ModeOK, but waits the duration given to
	// SetDelay before each response: once for a unary or client-streaming
	// call, before every message of a server or bidirectional stream.
	ModeDelay
)

// String returns the mode's name, as "ModeFail".
func (m Mode) String() string {
	switch m {
	case ModeOK:
		return "ModeOK"
	case ModeFail:
		return "ModeFail"
	case ModeBlackHole:
		return "ModeBlackHole"
	case ModeDelay:
		return "ModeDelay"
	}
	return fmt.Sprintf("Mode(%d)", int(m))
}

// modeState is one immutable setting of a Server's mode, swapped atomically.
type modeState struct {
	mode  Mode
	code  codes.Code    // ModeFail only
	delay time.Duration // ModeDelay only
}

// Mode is the Server's current mode.
func (s *Server) Mode() Mode { return s.mode.Load().mode }

// SetOK makes the Server answer every call at once (ModeOK).
func (s *Server) SetOK() { s.mode.Store(&modeState{mode: ModeOK}) }

// SetFail makes the Server answer every call with status code c (ModeFail).
// codes.OK is the same as SetOK.
func (s *Server) SetFail(c codes.Code) {
	if c == codes.OK {
		s.SetOK()
		return
	}
	s.mode.Store(&modeState{mode: ModeFail, code: c})
}

// SetBlackHole makes the Server accept calls and never answer them
// (ModeBlackHole). Calls already waiting in ModeDelay keep their delay.
func (s *Server) SetBlackHole() { s.mode.Store(&modeState{mode: ModeBlackHole}) }

// SetDelay makes the Server wait d before each response (ModeDelay). A d of
// zero or less is the same as SetOK.
func (s *Server) SetDelay(d time.Duration) {
	if d <= 0 {
		s.SetOK()
		return
	}
	s.mode.Store(&modeState{mode: ModeDelay, delay: d})
}

// gate applies the current mode before a handler goes on. At a call's start
// (respond false) it fails or black-holes; before a response (respond true)
// it also delays. A non-nil error is a status error the handler must return.
func (s *Server) gate(ctx context.Context, respond bool) error {
	m := s.mode.Load()
	switch m.mode {
	case ModeFail:
		return status.Errorf(m.code, "backend %s: %s", s.name, m.code)
	case ModeBlackHole:
		<-ctx.Done()
		return status.FromContextError(ctx.Err()).Err()
	case ModeDelay:
		if !respond {
			return nil
		}
		t := time.NewTimer(m.delay)
		defer t.Stop()
		select {
		case <-t.C:
			return nil
		case <-ctx.Done():
			return status.FromContextError(ctx.Err()).Err()
		}
	}
	return nil
}
