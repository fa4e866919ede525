package harness

import (
	"os"
	"strings"
)

// Queries returns how many queries of type qtype ("A", "AAAA") for name
// dnsmasq has logged so far, answered or not.
func (d *DNS) Queries(qtype, name string) int {
	b, err := os.ReadFile(d.proc.LogPath)
	if err != nil {
		return 0
	}
	return strings.Count(string(b), "query["+qtype+"] "+name+" from ")
}
