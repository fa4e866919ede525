package chash

import (
	"math/bits"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
)

// Reference values of XXH64 with seed 0 (as published with
// github.com/cespare/xxhash and the xxHash specification's test suite).
func TestHashKnownValues(t *testing.T) {
	tests := []struct {
		in   string
		want uint64
	}{
		{"", 0xef46db3751d8e999},
		{"a", 0xd24ec4f1a98c6e5b},
		{"as", 0x1c330fb2d66be179},
		{"asd", 0x631c37ce72a97393},
		{"asdf", 0x415872f599cea71e},
		// 63 bytes: the 32-byte stripes, an 8-byte lane, a 4-byte lane and
		// single bytes.
		{"Call me Ishmael. Some years ago--never mind how long precisely-", 0x02a2e85470d6fd96},
	}
	for _, tt := range tests {
		if got := Hash(tt.in); got != tt.want {
			t.Errorf("Hash(%q) = %#x, want %#x", tt.in, got, tt.want)
		}
		if got := refHash(tt.in); got != tt.want {
			t.Errorf("refHash(%q) = %#x, want %#x", tt.in, got, tt.want)
		}
	}
}

// Hash and the reference implementation agree on keys of every length up to
// a few stripes, so key placement is the same XXH64 as before.
func TestHashMatchesReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	buf := make([]byte, 200)
	for n := range len(buf) + 1 {
		for range 20 {
			for i := range n {
				buf[i] = byte(rng.Uint32())
			}
			key := string(buf[:n])
			if got, want := Hash(key), refHash(key); got != want {
				t.Fatalf("len %d: Hash = %#x, refHash = %#x", n, got, want)
			}
		}
	}
}

func TestHashAllocs(t *testing.T) {
	key := strings.Repeat("k", 100)
	if n := testing.AllocsPerRun(100, func() { Hash(key) }); n != 0 {
		t.Errorf("Hash allocates %v times, want 0", n)
	}
}

// go test ./internal/chash/ -run '^$' -bench 'BenchmarkHash$' -count 5
//
// xxhash is github.com/cespare/xxhash/v2 (what Hash calls); copy is refHash,
// the plain Go implementation the package used to carry.
func BenchmarkHash(b *testing.B) {
	impls := []struct {
		name string
		fn   func(string) uint64
	}{
		{"xxhash", Hash},
		{"copy", refHash},
	}
	for _, size := range []int{8, 24, 64} {
		key := strings.Repeat("x", size)
		for _, impl := range impls {
			b.Run(strconv.Itoa(size)+"B/"+impl.name, func(b *testing.B) {
				b.ReportAllocs()
				b.SetBytes(int64(size))
				var sink uint64
				for b.Loop() {
					sink += impl.fn(key)
				}
				_ = sink
			})
		}
	}
}

// XXH64 refPrimes, from the xxHash specification.
const (
	refPrime1 uint64 = 0x9E3779B185EBCA87
	refPrime2 uint64 = 0xC2B2AE3D27D4EB4F
	refPrime3 uint64 = 0x165667B19E3779F9
	refPrime4 uint64 = 0x85EBCA77C2B2AE63
	refPrime5 uint64 = 0x27D4EB2F165667C5
)

// refHash is a plain Go XXH64 with seed 0, the implementation the package
// carried before it used github.com/cespare/xxhash/v2. It stays as a second,
// independent implementation: TestHashMatchesReference checks Hash against it
// and BenchmarkHash measures both in the same run.
func refHash(key string) uint64 {
	n := len(key)
	s := key
	var h uint64
	if n >= 32 {
		v1 := uint64(0x60EA27EEADC0B5D6) // refPrime1 + refPrime2, mod 2^64
		v2 := refPrime2
		v3 := uint64(0)
		v4 := uint64(0x61C8864E7A143579) // -refPrime1, mod 2^64
		for len(s) >= 32 {
			v1 = refRound(v1, refLoad64(s))
			v2 = refRound(v2, refLoad64(s[8:]))
			v3 = refRound(v3, refLoad64(s[16:]))
			v4 = refRound(v4, refLoad64(s[24:]))
			s = s[32:]
		}
		h = bits.RotateLeft64(v1, 1) + bits.RotateLeft64(v2, 7) +
			bits.RotateLeft64(v3, 12) + bits.RotateLeft64(v4, 18)
		h = refMergeRound(h, v1)
		h = refMergeRound(h, v2)
		h = refMergeRound(h, v3)
		h = refMergeRound(h, v4)
	} else {
		h = refPrime5
	}
	h += uint64(n)

	for ; len(s) >= 8; s = s[8:] {
		h ^= refRound(0, refLoad64(s))
		h = bits.RotateLeft64(h, 27)*refPrime1 + refPrime4
	}
	if len(s) >= 4 {
		h ^= uint64(refLoad32(s)) * refPrime1
		h = bits.RotateLeft64(h, 23)*refPrime2 + refPrime3
		s = s[4:]
	}
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i]) * refPrime5
		h = bits.RotateLeft64(h, 11) * refPrime1
	}

	h ^= h >> 33
	h *= refPrime2
	h ^= h >> 29
	h *= refPrime3
	h ^= h >> 32
	return h
}

func refRound(acc, input uint64) uint64 {
	acc += input * refPrime2
	acc = bits.RotateLeft64(acc, 31)
	return acc * refPrime1
}

func refMergeRound(acc, val uint64) uint64 {
	acc ^= refRound(0, val)
	return acc*refPrime1 + refPrime4
}

// refLoad64 reads s[0:8] little-endian; the compiler turns it into one load.
func refLoad64(s string) uint64 {
	_ = s[7]
	return uint64(s[0]) | uint64(s[1])<<8 | uint64(s[2])<<16 | uint64(s[3])<<24 |
		uint64(s[4])<<32 | uint64(s[5])<<40 | uint64(s[6])<<48 | uint64(s[7])<<56
}

func refLoad32(s string) uint32 {
	_ = s[3]
	return uint32(s[0]) | uint32(s[1])<<8 | uint32(s[2])<<16 | uint32(s[3])<<24
}
