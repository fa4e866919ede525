package chash

import "github.com/cespare/xxhash/v2"

// Hash returns the 64-bit xxHash (XXH64) of key with seed 0.
//
// The seed is fixed, so a key hashes to the same value in every process and
// on every platform: two clients of the same backends send a key to the same
// backend. It is the same function as Envoy's and gRPC's ring_hash. It does
// not allocate.
func Hash(key string) uint64 { return xxhash.Sum64String(key) }

// golden is 2^64 divided by the golden ratio, SplitMix64's increment.
const golden uint64 = 0x9E3779B97F4A7C15

// vnodePoint returns the ring position of virtual node j of a backend whose
// identity hashes to seed: the (j+1)-th output of a SplitMix64 generator
// seeded with seed. Points depend only on the identity and j, so a backend
// keeps its points across rebuilds, and giving it more virtual nodes only
// appends points.
func vnodePoint(seed uint64, j int) uint64 {
	z := seed + uint64(j+1)*golden
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9
	z = (z ^ (z >> 27)) * 0x94D049BB133111EB
	return z ^ (z >> 31)
}
