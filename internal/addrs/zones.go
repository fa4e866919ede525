package addrs

import (
	"fmt"
	"maps"
	"net"
	"net/netip"
	"slices"
	"strings"

	"github.com/grpcpool/grpcpool/internal/core"
)

// CIDRZones maps address prefixes to zones: the layout of clouds whose
// subnets are per zone. The zero value maps nothing. It is immutable and
// safe for concurrent use.
type CIDRZones struct {
	prefixes []netip.Prefix
	zones    []string
}

// ParseCIDRZones parses prefix → zone. An unparsable prefix, an empty zone
// name, or two overlapping prefixes that name different zones are errors
// that name the entries at fault.
func ParseCIDRZones(m map[string]string) (CIDRZones, error) {
	var c CIDRZones
	var errs []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		p, err := netip.ParsePrefix(strings.TrimSpace(k))
		switch {
		case err != nil:
			errs = append(errs, fmt.Sprintf("%q: not a CIDR prefix (%v)", k, err))
			continue
		case strings.TrimSpace(m[k]) == "":
			errs = append(errs, fmt.Sprintf("%q: empty zone name", k))
			continue
		}
		p = p.Masked()
		for i, q := range c.prefixes {
			if q.Overlaps(p) && c.zones[i] != m[k] {
				errs = append(errs, fmt.Sprintf("%q (zone %q) overlaps %q (zone %q)", k, m[k], q.String(), c.zones[i]))
			}
		}
		c.prefixes = append(c.prefixes, p)
		c.zones = append(c.zones, m[k])
	}
	if len(errs) > 0 {
		return CIDRZones{}, fmt.Errorf("%s", strings.Join(errs, "; "))
	}
	return c, nil
}

// Of returns the zone of the prefix that holds addr ("host:port" or a
// bare IP), or "" when none does or addr is not an IP address.
func (c CIDRZones) Of(addr string) string {
	if len(c.prefixes) == 0 {
		return ""
	}
	host := addr
	if h, _, err := net.SplitHostPort(addr); err == nil {
		host = h
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return ""
	}
	ip = ip.Unmap().WithZone("")
	for i, p := range c.prefixes {
		if p.Contains(ip) {
			return c.zones[i]
		}
	}
	return ""
}

// Fill gives every group without a zone the zone of its first address's
// prefix.
func (c CIDRZones) Fill(gs []core.Group) {
	for i := range gs {
		if gs[i].Zone == "" && len(gs[i].Addrs) > 0 {
			gs[i].Zone = c.Of(gs[i].Addrs[0].Addr)
		}
	}
}
