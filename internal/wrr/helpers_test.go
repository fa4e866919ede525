package wrr

import (
	"fmt"
	"strings"
)

func fmtWeights(w []uint32) string {
	s := make([]string, len(w))
	for i, x := range w {
		s[i] = fmt.Sprint(x)
	}
	return strings.Join(s, ":")
}
