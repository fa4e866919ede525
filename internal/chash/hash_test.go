package chash

import (
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
	}
}

func TestHashAllocs(t *testing.T) {
	key := strings.Repeat("k", 100)
	if n := testing.AllocsPerRun(100, func() { Hash(key) }); n != 0 {
		t.Errorf("Hash allocates %v times, want 0", n)
	}
}

func BenchmarkHash(b *testing.B) {
	for _, size := range []int{8, 24, 64} {
		key := strings.Repeat("x", size)
		b.Run(strconv.Itoa(size)+"B", func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(size))
			for b.Loop() {
				Hash(key)
			}
		})
	}
}
