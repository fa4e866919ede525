package core

import (
	"fmt"
	"testing"
	"time"

	"google.golang.org/grpc/connectivity"
)

// benchCore returns a Core with n backends of size READY connections on a
// fake seam: the pick alone, no network.
func benchCore(tb testing.TB, policy Policy, n, size int) *fakeSeam {
	tb.Helper()
	f := &fakeSeam{}
	f.k = New(Config{Size: size, Policy: policy, Target: "bench"}, f)
	keys := make([]string, n)
	for i := range keys {
		keys[i] = fmt.Sprintf("10.%d.%d.%d:443", i/62500, i/250%250, i%250)
	}
	now := time.Now()
	f.k.Resolved(now, groupsOf(keys...))
	for _, b := range f.k.Backends() {
		for _, c := range b.Conns() {
			f.k.ConnState(now, c, connectivity.Ready, nil)
		}
	}
	f.k.Flush()
	return f
}

// BenchmarkPick is one pick and release per op, from every P at once
// (run it with -cpu 1,2 to see contention).
func BenchmarkPick(b *testing.B) {
	for _, n := range []int{6, 1000, 10000} {
		for _, policy := range []Policy{RoundRobin, LeastActive, ConsistentHash, PeakEWMA} {
			b.Run(fmt.Sprintf("%s/backends=%d", policyName(policy), n), func(b *testing.B) {
				p := benchCore(b, policy, n, 2).k.Picker()
				info := PickInfo{}
				if policy == ConsistentHash {
					info = PickInfo{Key: "user-1234", HasKey: true}
				}
				pickParallel(b, p, info)
			})
		}
	}
}

// pickParallel is one pick and release per op, from every P at once. The
// timer starts here: building the fleet is not the pick's cost (counted
// in, it left a 10,000-backend PeakEWMA run at one op of seconds and
// 240,000 allocations).
func pickParallel(b *testing.B, p *Picker, info PickInfo) {
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			r, o := p.Pick(info)
			if o != Picked {
				b.Error("not picked")
				return
			}
			r.Conn.Release()
		}
	})
}

// BenchmarkPickLoaded is LeastActive's pick over 1,000 backends that
// carry streams which end and are replaced: every op ends one stream and
// opens one, so every pick follows a release that lowered the floor.
func BenchmarkPickLoaded(b *testing.B) {
	f := benchCore(b, LeastActive, 1000, 1)
	held := make([]*Conn, 0, 10000)
	for range 10000 {
		r, _ := f.k.Picker().Pick(PickInfo{})
		r.Conn.Backend.Streams.Add(1)
		held = append(held, r.Conn)
	}
	p := f.k.Picker()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		c := held[i]
		c.Backend.Streams.Add(-1)
		c.Release()
		r, o := p.Pick(PickInfo{})
		if o != Picked {
			b.Fatal("not picked")
		}
		r.Conn.Backend.Streams.Add(1)
		held[i] = r.Conn
		i = (i + 7919) % len(held)
	}
}

func policyName(p Policy) string {
	return [...]string{"round_robin", "least_active", "consistent_hash", "peak_ewma"}[p]
}

// policies are every policy, in the order policyName names them.
var policies = []Policy{RoundRobin, LeastActive, ConsistentHash, PeakEWMA}

// BenchmarkFleetUp is the core's work for a fleet that resolves and
// becomes ready in one batch, n backends × 2 connections, and its first
// picker.
func BenchmarkFleetUp(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		for _, policy := range []Policy{RoundRobin, PeakEWMA} {
			b.Run(fmt.Sprintf("%s/backends=%d", policyName(policy), n), func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					benchCore(b, policy, n, 2)
				}
			})
		}
	}
}

// BenchmarkReady is the core's work for a fleet of 1,000 backends × 2
// connections to reach READY, one state change at a time, each followed by
// a published picker (as if every change came alone; the pool batches
// those that come together).
func BenchmarkReady(b *testing.B) {
	for _, n := range []int{10, 1000} {
		b.Run(fmt.Sprintf("backends=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				f := &fakeSeam{}
				f.k = New(Config{Size: 2, Target: "bench"}, f)
				keys := make([]string, n)
				for i := range keys {
					keys[i] = fmt.Sprintf("10.0.%d.%d:443", i/250, i%250)
				}
				now := time.Now()
				f.k.Resolved(now, groupsOf(keys...))
				f.k.Flush()
				for _, c := range f.dials {
					f.k.ConnState(now, c, connectivity.Connecting, nil)
					f.k.Flush()
					f.k.ConnState(now, c, connectivity.Ready, nil)
					f.k.Flush()
				}
			}
		})
	}
}

// BenchmarkPickSaturated is a pick when every connection carries its
// stream limit and every backend is at its maximum size: the call
// overflows onto the least-loaded connection, still without a lock.
func BenchmarkPickSaturated(b *testing.B) {
	for _, n := range []int{6, 1000} {
		b.Run(fmt.Sprintf("backends=%d", n), func(b *testing.B) {
			f := &fakeSeam{}
			f.k = New(Config{Size: 1, MaxSize: 1, MaxStreams: 1, Target: "bench"}, f)
			keys := make([]string, n)
			for i := range keys {
				keys[i] = fmt.Sprintf("10.0.%d.%d:443", i/250, i%250)
			}
			now := time.Now()
			f.k.Resolved(now, groupsOf(keys...))
			for _, c := range f.dials {
				f.k.ConnState(now, c, connectivity.Ready, nil)
				c.Acquire() // full
			}
			f.k.Flush()
			p := f.k.Picker()
			b.ReportAllocs()
			for b.Loop() {
				r, o := p.Pick(PickInfo{})
				if o != Picked || !r.Overflow {
					b.Fatalf("outcome %v, overflow %v", o, r.Overflow)
				}
				r.Conn.Release()
			}
		})
	}
}
