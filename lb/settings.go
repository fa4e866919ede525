package lb

import (
	"encoding/json"
	"strings"
	"time"

	"github.com/grpcpool/grpcpool/internal/addrs"
	"github.com/grpcpool/grpcpool/internal/core"
	"github.com/grpcpool/grpcpool/pool"
)

// settings is a valid Config with its defaults applied, in the core's
// terms. It is comparable: a changed config is a different value.
type settings struct {
	size, maxSize   int
	policy          core.Policy
	hashKey         string
	maxConnAge      time.Duration
	drainTimeout    time.Duration // 0: no bound
	resolveInterval time.Duration // 0: off
	idleTimeout     time.Duration // 0: never
	slowStart       time.Duration
	maxEjectPercent int
	maxStreams      int
	breaker         *Breaker // nil: none; compared by value, see equal
	zone            string
	zoneMin         int              // ZoneMinBackends
	cidrKey         string           // ZonesByCIDR, canonical: what equal compares
	cidr            *addrs.CIDRZones // ZonesByCIDR, parsed; nil: none
	zoneKey         string           // ZoneClients as JSON, canonical; "": even (not compared by equal)
}

// settings applies c's defaults; c must be valid.
func (c Config) settings() settings {
	s := settings{
		size:            c.Size,
		maxSize:         c.MaxSize,
		hashKey:         strings.ToLower(c.HashKey),
		maxConnAge:      c.MaxConnAge,
		drainTimeout:    c.DrainTimeout,
		resolveInterval: c.ResolveInterval,
		idleTimeout:     c.IdleTimeout,
		slowStart:       c.SlowStart,
		maxEjectPercent: c.MaxEjectPercent,
		maxStreams:      c.MaxStreamsPerConn,
	}
	if s.size == 0 {
		s.size = DefaultSize
	}
	if s.maxSize == 0 {
		s.maxSize = min(max(s.size*pool.DefaultMaxSizeFactor, pool.DefaultMinMaxSize), MaxConnsPerBackend)
	}
	switch c.Policy {
	case LeastActive:
		s.policy = core.LeastActive
	case PeakEWMA:
		s.policy = core.PeakEWMA
	case ConsistentHash:
		s.policy = core.ConsistentHash
	default:
		s.policy = core.RoundRobin
	}
	s.drainTimeout = orDefault(c.DrainTimeout, DefaultDrainTimeout)
	s.resolveInterval = orDefault(c.ResolveInterval, DefaultResolveInterval)
	if s.resolveInterval > 0 {
		s.resolveInterval = max(s.resolveInterval, MinResolveInterval)
	}
	s.idleTimeout = orDefault(c.IdleTimeout, DefaultIdleTimeout)
	if s.maxEjectPercent == 0 {
		s.maxEjectPercent = DefaultMaxEjectPercent
	}
	if c.Breaker != nil {
		b := *c.Breaker
		s.breaker = &b
	}
	s.zoneSettings(c)
	if len(c.ZonesByCIDR) > 0 {
		cidr, _ := addrs.ParseCIDRZones(c.ZonesByCIDR) // validated
		s.cidr = &cidr
		js, _ := json.Marshal(c.ZonesByCIDR) // keys sorted
		s.cidrKey = string(js)
	}
	return s
}

// orDefault is d, def when d is 0, and 0 (off) when d is negative.
func orDefault(d, def time.Duration) time.Duration {
	switch {
	case d == 0:
		return def
	case d < 0:
		return 0
	}
	return d
}

// equal reports whether s and t configure the same policy, but for the
// clients per zone, which the core in use takes as they change (see
// zoneClientsLocked).
func (s settings) equal(t settings) bool {
	sb, tb := s.breaker, t.breaker
	s.breaker, t.breaker = nil, nil
	s.cidr, t.cidr = nil, nil // cidrKey compares them
	s.zoneKey, t.zoneKey = "", ""
	if s != t || (sb == nil) != (tb == nil) {
		return false
	}
	return sb == nil || *sb == *tb
}
