package pool

import (
	"time"

	"github.com/grpcpool/grpcpool/breaker"
)

// breakerChanged follows a backend's breaker: an open breaker takes the
// backend out of the snapshot, and a timer puts it back as a half-open
// candidate when its open timeout has passed (gobreaker moves to half-open
// only when asked, and an excluded backend is never asked).
func (p *Pool) breakerChanged(b *backend, from, to breaker.State) {
	b.brkState.Store(int32(to))
	p.log.Info("grpcpool: circuit breaker", "addr", b.addr(), "from", from.String(), "to", to.String())
	p.goAsync(func() {
		p.mu.Lock()
		defer p.mu.Unlock()
		if to == breaker.StateOpen && !b.removed && !p.closing {
			if b.probeAt != nil {
				b.probeAt.Stop()
			}
			b.probeAt = time.AfterFunc(time.Until(b.brk.OpenUntil()), func() {
				// Let the backend be picked again: its breaker answers
				// Allow with the half-open probes.
				b.brkState.CompareAndSwap(int32(breaker.StateOpen), int32(breaker.StateHalfOpen))
				p.rebuild()
			})
		}
		p.rebuildLocked()
	})
}
