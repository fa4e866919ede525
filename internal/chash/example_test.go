package chash_test

import (
	"fmt"

	"github.com/grpcpool/grpcpool/internal/chash"
)

func Example() {
	backends := []string{"10.0.0.1:443", "10.0.0.2:443", "10.0.0.3:443"}
	t := chash.New(backends, nil) // built once per snapshot of backends

	own := t.Lookup("alice")
	fmt.Println("alice ->", backends[own])

	// alice's backend cannot take calls: she goes to the next backend in her
	// own preference order, and comes back once it heals.
	up := func(i int) bool { return i != own }
	fmt.Println("alice, hers down ->", backends[t.LookupFunc("alice", up)])
	fmt.Println("alice, healed ->", backends[t.LookupFunc("alice", func(int) bool { return true })])
	// Output:
	// alice -> 10.0.0.3:443
	// alice, hers down -> 10.0.0.1:443
	// alice, healed -> 10.0.0.3:443
}
