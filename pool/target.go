package pool

import (
	"fmt"
	"net/url"
	"strings"

	"google.golang.org/grpc/resolver"
)

// defaultScheme is the scheme of targets without one, as for grpc.NewClient.
const defaultScheme = "dns"

// xdsSchemes are the schemes whose resolver (grpc-go's xDS resolver, and
// google-c2p, which resolves through it) reports no addresses: endpoints
// are resolved inside grpc's xDS balancers, so a pool would get none.
var xdsSchemes = map[string]bool{"xds": true, "google-c2p": true}

const msgXDS = `xDS targets resolve to endpoints inside grpc's own xDS balancers, not to addresses a pool can connect to; ` +
	`use grpc.NewClient with the target and the load-balancing policy of package github.com/grpcpool/grpcpool/lb ` +
	`(its Cluster's load_balancing_policy naming "grpcpool", or lb.ServiceConfig)`

// parseTarget parses target the way grpc.NewClient does: as a URL whose
// scheme names a resolver (one given with WithResolvers first, then the
// registered ones), and otherwise as an endpoint of the default "dns"
// scheme. xDS targets are refused, pointing to package lb (see xdsSchemes).
func parseTarget(target string, builders []resolver.Builder) (resolver.Target, resolver.Builder, error) {
	if strings.TrimSpace(target) == "" {
		return resolver.Target{}, nil, fmt.Errorf("%w: empty target", ErrInvalidTarget)
	}
	find := func(scheme string) resolver.Builder {
		for i := len(builders) - 1; i >= 0; i-- {
			if builders[i].Scheme() == scheme {
				return builders[i]
			}
		}
		if scheme == "dns" {
			return dnsBuilder{}
		}
		return resolver.Get(scheme)
	}
	u, err := url.Parse(target)
	if err == nil && xdsSchemes[u.Scheme] {
		return resolver.Target{}, nil, fmt.Errorf("%w: %q: %s", ErrInvalidTarget, target, msgXDS)
	}
	if err == nil && u.Scheme != "" {
		if b := find(u.Scheme); b != nil {
			return resolver.Target{URL: *u}, b, nil
		}
	}
	// No usable scheme: like grpc.NewClient, take the whole string as an
	// endpoint of the default scheme. A string that looked like a URL with
	// an unknown scheme ("foo:///x") is reported as such.
	if err == nil && u.Scheme != "" && strings.Contains(target, "://") {
		return resolver.Target{}, nil, fmt.Errorf("%w: %q in target %q", ErrUnknownScheme, u.Scheme, target)
	}
	first := err
	u, err = url.Parse(defaultScheme + ":///" + target)
	if err != nil {
		if first != nil {
			err = first // what is wrong with the target as the caller wrote it
		}
		if ue, ok := err.(*url.Error); ok {
			err = ue.Err
		}
		return resolver.Target{}, nil, fmt.Errorf("%w: %q: %v", ErrInvalidTarget, target, err)
	}
	if u.Path == "/" || u.Path == "" {
		return resolver.Target{}, nil, fmt.Errorf("%w: %q has no endpoint", ErrInvalidTarget, target)
	}
	return resolver.Target{URL: *u}, find(defaultScheme), nil
}

// authorityFor returns the :authority (and TLS server name) connections of
// the pool use: the target's host, never a dialed IP, computed as
// grpc.NewClient computes it. grpc.WithAuthority in the dial options still
// wins over it.
func authorityFor(t resolver.Target, b resolver.Builder) string {
	if o, ok := b.(resolver.AuthorityOverrider); ok {
		return o.OverrideAuthority(t)
	}
	ep := t.Endpoint()
	if strings.HasPrefix(ep, ":") {
		return "localhost" + ep
	}
	return ep
}
