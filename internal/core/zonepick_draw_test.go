package core

import (
	"math"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"
)

// While the local zone takes every call, a pick draws no zone: the
// threshold of the local zone is the whole range.
func TestZonesNoDrawWhenTheLocalZoneTakesAll(t *testing.T) {
	for _, policy := range policies {
		t.Run(policyName(policy), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				f := newFake(t, Config{Size: 1, Policy: policy, Zone: "a"})
				gs := groupsOf("a1", "a2", "b1", "b2", "c1", "c2")
				for i := range gs {
					gs[i].Zone = gs[i].Key[:1]
				}
				f.do(func(k *Core, now time.Time) { k.Resolved(now, gs) })
				f.readyAll()
				p := f.picker()
				require.Equal(t, 1.0, p.LocalShare())
				require.Equal(t, uint64(math.MaxUint64), p.zones.thr[0], "no draw when the local zone takes all")
			})
		})
	}
}
