// Package harness starts real infrastructure — dnsmasq, haproxy, etcd and
// an xDS management server (go-control-plane, in-process) —
// on loopback for the integration tests of grpcpool.
//
// Each Start function writes the component's configuration to t.TempDir(),
// starts the process on free random ports, waits (bounded) until it answers,
// and stops it in t.Cleanup. When a test fails, the tail of the component's
// log is printed. A component whose binary is missing skips the test on a
// developer's machine and fails it in CI (CI set); see Need.
//
// Nothing here is safe for concurrent use unless its comment says so; every
// helper is meant to be called from the test goroutine.
package harness
