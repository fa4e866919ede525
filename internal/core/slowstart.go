package core

import (
	"math"
	"time"
)

// DefaultSlowStartFloor is the least fraction of its full share a backend
// in slow start gets (Envoy's min_weight_percent default).
const DefaultSlowStartFloor = 0.1

// clock is the Core's monotonic clock as the pickers read it: nanoseconds
// since the Core was created, plus one, so that no reading is 0 and 0 can
// mean "none" (a backend not in slow start, a latency estimate whose time
// is not yet stored). Under testing/synctest it is the bubble's.
type clock struct{ epoch time.Time }

func newClock() *clock { return &clock{epoch: time.Now().Add(-time.Nanosecond)} }

func (c *clock) now() int64 { return int64(time.Since(c.epoch)) }

// at converts a time the Core was given to the clock's reading.
func (c *clock) at(t time.Time) int64 { return int64(t.Sub(c.epoch)) }

// slowStart is the ramp's configuration, fixed for a Core's lifetime.
type slowStart struct {
	window     int64   // ns; 0: off
	aggression float64 // 1: linear
	floor      float64 // least fraction of the full share
}

func (k *Core) slowStart() slowStart {
	ss := slowStart{window: int64(k.cfg.SlowStart), aggression: k.cfg.SlowStartAggression, floor: k.cfg.SlowStartFloor}
	if ss.aggression <= 0 {
		ss.aggression = 1
	}
	if ss.floor <= 0 {
		ss.floor = DefaultSlowStartFloor
	}
	ss.floor = min(ss.floor, 1)
	if ss.window < 0 || k.cfg.Policy == ConsistentHash {
		ss.window = 0 // a key's owner is not chosen by share
	}
	return ss
}

// factor is the fraction of its full share a backend ready since rampAt
// gets at now: Envoy's max(floor, (elapsed/window)^(1/aggression)), and 1
// once the window has passed.
func (ss slowStart) factor(rampAt, now int64) float64 {
	e := now - rampAt
	if rampAt == 0 || e >= ss.window {
		return 1
	}
	f := float64(max(e, 0)) / float64(ss.window)
	if ss.aggression != 1 {
		f = math.Pow(f, 1/ss.aggression)
	}
	return max(f, ss.floor)
}

// trackReady keeps b's ready-since time: set when its first connection
// becomes Ready, cleared when it has no Ready connection and none
// reconnecting (a backend that comes back from a failure ramps up again;
// one whose connection reconnects after a GOAWAY has not failed).
func (k *Core) trackReady(now time.Time, b *Backend, from, to State) {
	if to == Ready {
		if b.readySince.IsZero() {
			b.readySince = now
		}
		return
	}
	if b.readySince.IsZero() {
		return
	}
	for _, c := range b.conns {
		if c.state == Ready || c.state == Connecting {
			return
		}
	}
	b.readySince = time.Time{}
}

// anyWarm reports whether some backend has been ready for the whole slow
// start window: without one, every backend is new (the pool is starting)
// and none ramps.
func (k *Core) anyWarm() bool {
	w := time.Duration(k.cfg.SlowStart)
	if w <= 0 {
		return false
	}
	for _, b := range k.order {
		if !b.readySince.IsZero() && k.at.Sub(b.readySince) >= w {
			return true
		}
	}
	return false
}

// ramp puts pb in slow start when b became ready within the window while
// another backend was already warm, and schedules the rebuild of its entry
// for the window's end.
func (k *Core) ramp(b *Backend, pb *pickBackend, warm bool) {
	w := k.cfg.SlowStart
	if w <= 0 || !warm || b.readySince.IsZero() || k.cfg.Policy == ConsistentHash {
		return
	}
	left := w - k.at.Sub(b.readySince)
	if left <= 0 {
		return
	}
	pb.rampAt = max(k.clock.at(b.readySince), 1)
	b.rampTimer.stop()
	b.rampTimer = k.seam.After(left, Timer{Kind: RampTimer, Backend: b})
}

// effWeight is pb's weight for the comparisons of LeastActive, in 1/1024
// units, scaled down by its slow start at now.
func (p *Picker) effWeight(pb *pickBackend, now int64) int64 {
	w := pb.weight << 10
	if pb.rampAt != 0 {
		w = max(int64(float64(w)*p.ss.factor(pb.rampAt, now)), 1)
	}
	return w
}

// admit reports whether a ramping backend takes a call round-robin gave
// it: with probability its slow start factor.
func (p *Picker) admit(pb *pickBackend) bool {
	if pb.rampAt == 0 {
		return true
	}
	f := p.ss.factor(pb.rampAt, p.clock.now())
	return f >= 1 || float64(p.rand()>>11)/(1<<53) < f
}
