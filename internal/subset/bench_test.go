package subset

import (
	"fmt"
	"testing"
)

// BenchmarkSelect is the cost of choosing a subset, paid once per resolver
// update (not per call).
func BenchmarkSelect(b *testing.B) {
	for _, n := range []int{300, 5000} {
		keys := simKeys(n)
		b.Run(fmt.Sprintf("backends=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				_ = Select(keys, i%1000, 50)
			}
		})
	}
}
