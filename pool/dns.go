package pool

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc/resolver"
)

// dnsBuilder builds the pool's resolver for "dns" targets: dns:///host:port
// and dns://server:port/host:port (a chosen DNS server). Unlike grpc-go's
// own DNS resolver, which ignores re-resolution requests for 30 s after each
// lookup (a process-wide setting), it looks the name up again on every
// ResolveNow, at most once per minDNSGap, so WithResolveInterval is obeyed.
// It reports A and AAAA records only: the pool takes no service config.
type dnsBuilder struct{}

const (
	defaultDNSPort = "443" // as grpc-go, for targets without a port
	minDNSGap      = 50 * time.Millisecond
	dnsTimeout     = 10 * time.Second
	dnsMaxBackoff  = 30 * time.Second
)

func (dnsBuilder) Scheme() string { return "dns" }

func (dnsBuilder) Build(t resolver.Target, cc resolver.ClientConn, _ resolver.BuildOptions) (resolver.Resolver, error) {
	host, port, err := splitHostPort(t.Endpoint())
	if err != nil {
		return nil, err
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		// An IP literal: nothing to look up.
		if err := cc.UpdateState(resolver.State{Addresses: []resolver.Address{{Addr: net.JoinHostPort(ip.String(), port)}}}); err != nil {
			cc.ReportError(err)
		}
		return nopResolver{}, nil
	}
	r := &net.Resolver{PreferGo: true}
	if server := t.URL.Host; server != "" {
		if _, _, err := net.SplitHostPort(server); err != nil {
			server = net.JoinHostPort(strings.TrimSuffix(strings.TrimPrefix(server, "["), "]"), "53")
		}
		r.Dial = func(ctx context.Context, network, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, server)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	d := &dnsResolver{host: host, port: port, r: r, cc: cc, ctx: ctx, cancel: cancel, now: make(chan struct{}, 1)}
	d.wg.Add(1)
	go d.watch()
	return d, nil
}

func splitHostPort(ep string) (host, port string, err error) {
	if ep == "" {
		return "", "", fmt.Errorf("%w: dns target has no host", ErrInvalidTarget)
	}
	if h, p, err := net.SplitHostPort(ep); err == nil {
		if h == "" {
			h = "localhost"
		}
		if p == "" {
			return "", "", fmt.Errorf("%w: %q ends with a colon and no port", ErrInvalidTarget, ep)
		}
		return h, p, nil
	}
	if ip, err := netip.ParseAddr(ep); err == nil {
		return ip.String(), defaultDNSPort, nil
	}
	if ep[0] == '[' && ep[len(ep)-1] == ']' {
		return ep[1 : len(ep)-1], defaultDNSPort, nil
	}
	return ep, defaultDNSPort, nil
}

type dnsResolver struct {
	host, port string
	r          *net.Resolver
	cc         resolver.ClientConn
	ctx        context.Context
	cancel     context.CancelFunc
	now        chan struct{} // ResolveNow requests, coalesced
	wg         sync.WaitGroup
}

func (d *dnsResolver) ResolveNow(resolver.ResolveNowOptions) {
	select {
	case d.now <- struct{}{}:
	default:
	}
}

func (d *dnsResolver) Close() {
	d.cancel()
	d.wg.Wait()
}

func (d *dnsResolver) watch() {
	defer d.wg.Done()
	failures := 0
	for {
		addrs, err := d.lookup()
		if err == nil {
			err = d.cc.UpdateState(resolver.State{Addresses: addrs})
		} else {
			d.cc.ReportError(err)
		}
		if err != nil {
			// Poll with backoff until a lookup succeeds and is accepted.
			// ResolveNow requests (every failing connection sends one) do
			// not cut the backoff short: the next lookup comes when it
			// ends, and answers them too.
			failures++
			t := time.NewTimer(min(dnsMaxBackoff, time.Duration(1<<min(failures, 10))*100*time.Millisecond))
			select {
			case <-d.ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
			select {
			case <-d.now:
			default:
			}
		} else {
			failures = 0
			select {
			case <-d.ctx.Done():
				return
			case <-d.now:
			}
		}
		// Coalesce bursts of ResolveNow.
		select {
		case <-d.ctx.Done():
			return
		case <-time.After(minDNSGap):
		}
	}
}

func (d *dnsResolver) lookup() ([]resolver.Address, error) {
	ctx, cancel := context.WithTimeout(d.ctx, dnsTimeout)
	defer cancel()
	ips, err := d.r.LookupNetIP(ctx, "ip", d.host)
	if err != nil {
		var de *net.DNSError
		if errors.As(err, &de) && de.IsNotFound {
			return nil, fmt.Errorf("grpcpool: dns: %s not found: %w", d.host, err)
		}
		return nil, fmt.Errorf("grpcpool: dns: lookup %s: %w", d.host, err)
	}
	addrs := make([]resolver.Address, 0, len(ips))
	for _, ip := range ips {
		addrs = append(addrs, resolver.Address{Addr: net.JoinHostPort(ip.Unmap().String(), d.port)})
	}
	slices.SortFunc(addrs, func(a, b resolver.Address) int {
		switch {
		case a.Addr < b.Addr:
			return -1
		case a.Addr > b.Addr:
			return 1
		}
		return 0
	})
	addrs = slices.CompactFunc(addrs, func(a, b resolver.Address) bool { return a.Addr == b.Addr })
	return addrs, nil
}

type nopResolver struct{}

func (nopResolver) ResolveNow(resolver.ResolveNowOptions) {}
func (nopResolver) Close()                                {}
