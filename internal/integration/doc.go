// Package integration holds grpcpool's integration scenarios against real
// infrastructure: dnsmasq for DNS discovery, haproxy as an L4 virtual IP,
// and etcd as a service registry, each started on loopback by package
// harness. It is a module of its own so that the etcd client stays out of
// the SDK's go.mod. It has no code outside its tests.
//
// Run it with
//
//	cd internal/integration && go test -race -count=1 ./...
//
// On a machine without haproxy, dnsmasq or etcd the scenarios skip; with CI
// set they fail instead.
package integration
