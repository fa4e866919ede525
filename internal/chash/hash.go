package chash

import "math/bits"

// XXH64 primes, from the xxHash specification.
const (
	prime1 uint64 = 0x9E3779B185EBCA87
	prime2 uint64 = 0xC2B2AE3D27D4EB4F
	prime3 uint64 = 0x165667B19E3779F9
	prime4 uint64 = 0x85EBCA77C2B2AE63
	prime5 uint64 = 0x27D4EB2F165667C5
)

// Hash returns the 64-bit xxHash (XXH64) of key with seed 0.
//
// The seed is fixed, so a key hashes to the same value in every process and
// on every platform: two clients of the same backends send a key to the same
// backend. It is the same function as github.com/cespare/xxhash/v2.Sum64String
// (and Envoy's and gRPC's ring_hash), implemented here to keep the module free
// of that dependency. It does not allocate.
func Hash(key string) uint64 {
	n := len(key)
	s := key
	var h uint64
	if n >= 32 {
		v1 := uint64(0x60EA27EEADC0B5D6) // prime1 + prime2, mod 2^64
		v2 := prime2
		v3 := uint64(0)
		v4 := uint64(0x61C8864E7A143579) // -prime1, mod 2^64
		for len(s) >= 32 {
			v1 = round(v1, load64(s))
			v2 = round(v2, load64(s[8:]))
			v3 = round(v3, load64(s[16:]))
			v4 = round(v4, load64(s[24:]))
			s = s[32:]
		}
		h = bits.RotateLeft64(v1, 1) + bits.RotateLeft64(v2, 7) +
			bits.RotateLeft64(v3, 12) + bits.RotateLeft64(v4, 18)
		h = mergeRound(h, v1)
		h = mergeRound(h, v2)
		h = mergeRound(h, v3)
		h = mergeRound(h, v4)
	} else {
		h = prime5
	}
	h += uint64(n)

	for ; len(s) >= 8; s = s[8:] {
		h ^= round(0, load64(s))
		h = bits.RotateLeft64(h, 27)*prime1 + prime4
	}
	if len(s) >= 4 {
		h ^= uint64(load32(s)) * prime1
		h = bits.RotateLeft64(h, 23)*prime2 + prime3
		s = s[4:]
	}
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i]) * prime5
		h = bits.RotateLeft64(h, 11) * prime1
	}

	h ^= h >> 33
	h *= prime2
	h ^= h >> 29
	h *= prime3
	h ^= h >> 32
	return h
}

func round(acc, input uint64) uint64 {
	acc += input * prime2
	acc = bits.RotateLeft64(acc, 31)
	return acc * prime1
}

func mergeRound(acc, val uint64) uint64 {
	acc ^= round(0, val)
	return acc*prime1 + prime4
}

// load64 reads s[0:8] little-endian; the compiler turns it into one load.
func load64(s string) uint64 {
	_ = s[7]
	return uint64(s[0]) | uint64(s[1])<<8 | uint64(s[2])<<16 | uint64(s[3])<<24 |
		uint64(s[4])<<32 | uint64(s[5])<<40 | uint64(s[6])<<48 | uint64(s[7])<<56
}

func load32(s string) uint32 {
	_ = s[3]
	return uint32(s[0]) | uint32(s[1])<<8 | uint32(s[2])<<16 | uint32(s[3])<<24
}

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
