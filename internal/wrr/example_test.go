package wrr_test

import (
	"fmt"
	"sync/atomic"

	"github.com/grpcpool/grpcpool/internal/wrr"
)

func Example() {
	backends := []string{"a", "b", "c"}
	s := wrr.New([]uint32{1, 2, 3}) // rebuilt only when backends or weights change

	var next atomic.Uint64 // one counter per schedule, shared by all callers
	for range s.Len() {
		fmt.Print(backends[s.Pick(next.Add(1)-1)], " ")
	}
	fmt.Println()
	// Output: c b a c b c
}
