// Package integration holds grpcpool's integration scenarios against real
// infrastructure: dnsmasq for DNS discovery, haproxy as an L4 virtual IP,
// etcd as a service registry, and go-control-plane as an xDS management
// server, each started on loopback by package harness; and the grpcpool
// load-balancing policy (package lb) on plain ClientConns against them.
// It is a module of its own so that the etcd client, go-control-plane and
// the OTLP exporter stay out of the SDK's go.mod. It has no code outside
// its tests.
//
// Run it with
//
//	cd internal/integration && go test -race -count=1 ./...
//
// On a machine without haproxy, dnsmasq or etcd the scenarios skip; with CI
// set they fail instead.
package integration
