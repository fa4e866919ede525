package core

import (
	"cmp"
	"slices"

	"github.com/grpcpool/grpcpool/breaker"
)

// The ejection defaults a pool uses: gRPC's outlier detection never
// ejects more than 10 % of the hosts (max_ejection_percent), and Envoy
// routes to every host once fewer than half are healthy (its panic
// threshold).
const (
	DefaultMaxEjectPercent = 10
	DefaultPanicPercent    = 50
)

// eject decides which backends with open breakers are out of the pickers.
// Without a cap (MaxEjectPercent 0) every one is. With it, at most
// MaxEjectPercent of the resolved backends (at least one) are, those whose
// breakers opened first; the others stay in and take calls past their
// breakers, so a fleet-wide blip does not leave every backend shut until
// its open timeout. With PanicPercent or more of them open, none is out.
// Backends whose decision changed get new entries.
func (k *Core) eject() {
	pct := k.cfg.MaxEjectPercent
	var open []*Backend
	for _, b := range k.order {
		if b.BreakerState() == breaker.StateOpen {
			open = append(open, b)
		}
	}
	out := len(open)
	n := len(k.order)
	if pct > 0 {
		out = min(out, max(1, n*pct/100))
		if k.cfg.PanicPercent > 0 && len(open)*100 >= n*k.cfg.PanicPercent {
			out = 0
		}
		if out < len(open) {
			// The least bad stay in: the ones whose breakers opened last.
			slices.SortStableFunc(open, func(a, b *Backend) int {
				return cmp.Compare(openedAt(a), openedAt(b))
			})
		}
	}
	for i, b := range open {
		k.setEjected(b, i < out)
	}
	if len(open) < n {
		for _, b := range k.order {
			if b.ejected && b.BreakerState() != breaker.StateOpen {
				k.setEjected(b, false)
			}
		}
	}
}

func openedAt(b *Backend) int64 {
	if b.Breaker == nil {
		return 0
	}
	return b.Breaker.OpenUntil().UnixNano()
}

func (k *Core) setEjected(b *Backend, out bool) {
	if b.ejected != out {
		b.ejected = out
		b.dirty = true
	}
}
