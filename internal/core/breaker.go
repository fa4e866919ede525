package core

import (
	"time"

	"github.com/grpcpool/grpcpool/breaker"
)

// Breakers: an open breaker takes its backend out of the pickers (up to
// the ejection cap, ejection.go) until its open timeout, when the backend
// is offered half-open for probes.

// b out of the pickers until its open timeout, when it is offered
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
