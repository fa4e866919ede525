package lb

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/grpcpool/grpcpool/internal/core"
	"github.com/grpcpool/grpcpool/pool"
)

func TestConfigJSONRoundTrips(t *testing.T) {
	c := Config{
		Size: 4, MaxSize: 12, Policy: ConsistentHash, HashKey: "x-user",
		MaxConnAge: 10 * time.Minute, DrainTimeout: -1, ResolveInterval: 1500 * time.Millisecond,
		IdleTimeout: time.Hour, SlowStart: 30 * time.Second, MaxEjectPercent: 25, MaxStreamsPerConn: 100,
		Breaker: &Breaker{ConsecutiveFailures: 3, OpenTimeout: 5 * time.Second, HalfOpenProbes: 2, Interval: time.Minute},
	}
	js, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"maxConnAge":"600s"`, `"resolveInterval":"1.500s"`, `"drainTimeout":"-0.000000001s"`, `"breaker":{"consecutiveFailures":3,"openTimeout":"5s"`} {
		if !strings.Contains(string(js), want) {
			t.Errorf("%s: want %s", js, want)
		}
	}
	got, err := ParseConfig(js)
	if err != nil {
		t.Fatalf("ParseConfig(%s): %v", js, err)
	}
	if !got.settings().equal(c.settings()) || *got.Breaker != *c.Breaker {
		t.Fatalf("round trip: got %+v, want %+v", got, c)
	}
	if js, _ := json.Marshal(Config{}); string(js) != "{}" {
		t.Errorf("zero Config as JSON: %s, want {}", js)
	}
	if sc := ServiceConfig(Config{Size: 4}); sc != `{"loadBalancingConfig":[{"grpcpool":{"size":4}}]}` {
		t.Errorf("ServiceConfig: %s", sc)
	}
}

// TestZeroConfigIsThePoolsDefaults: where the feature is the same, the
// zero Config means the pool's defaults.
func TestZeroConfigIsThePoolsDefaults(t *testing.T) {
	s := Config{}.settings()
	for _, tc := range []struct {
		name      string
		got, want any
	}{
		{"size", s.size, pool.DefaultSize},
		{"maxSize", s.maxSize, max(pool.DefaultSize*pool.DefaultMaxSizeFactor, pool.DefaultMinMaxSize)},
		{"policy", s.policy, core.Policy(pool.RoundRobin)},
		{"drainTimeout", s.drainTimeout, pool.DefaultDrainTimeout},
		{"resolveInterval", s.resolveInterval, pool.DefaultResolveInterval},
		{"idleTimeout", s.idleTimeout, pool.DefaultIdleTimeout},
		{"maxEjectPercent", s.maxEjectPercent, pool.DefaultMaxEjectPercent},
		{"maxConnAge", s.maxConnAge, time.Duration(0)},
		{"breaker", s.breaker == nil, true},
	} {
		if tc.got != tc.want {
			t.Errorf("%s: got %v, want %v", tc.name, tc.got, tc.want)
		}
	}
	if s := (Config{ResolveInterval: -1, DrainTimeout: -1, IdleTimeout: -1}).settings(); s.resolveInterval != 0 || s.drainTimeout != 0 || s.idleTimeout != 0 {
		t.Errorf("negative durations: %+v, want each off (0)", s)
	}
	if s := (Config{ResolveInterval: time.Millisecond}).settings(); s.resolveInterval != MinResolveInterval {
		t.Errorf("resolveInterval 1ms: %v, want raised to %v", s.resolveInterval, MinResolveInterval)
	}
	for _, p := range []pool.Policy{pool.RoundRobin, pool.LeastActive, pool.PeakEWMA, pool.ConsistentHash} {
		c := Config{Policy: p.String()}
		if p == pool.ConsistentHash {
			c.HashKey = "k"
		}
		if err := c.Validate(); err != nil {
			t.Errorf("policy %q, the pool's name for %v: %v", p.String(), p, err)
		}
		if got := c.settings().policy; got != core.Policy(p) {
			t.Errorf("policy %q: core policy %v, want %v", p.String(), got, core.Policy(p))
		}
	}
}

// TestParseConfigIsStrictAndNamesTheField: unknown fields, values of the
// wrong type, malformed durations and values out of range are errors that
// name the field and wrap ErrInvalidConfig.
func TestParseConfigIsStrictAndNamesTheField(t *testing.T) {
	for _, tc := range []struct{ js, want string }{
		{`[]`, "config: want a JSON object"},
		{`{"Size":4}`, `unknown field "Size"`},
		{`{"size":"4"}`, "size: want an integer, got string"},
		{`{"size":4.5}`, "size: want an integer"},
		{`{"size":0,"maxSize":-1}`, "maxSize: must be between 1 and 1024, got -1"},
		{`{"size":2000}`, "size: must be between 1 and 1024, got 2000"},
		{`{"size":4,"maxSize":2}`, "maxSize: 2 is below size 4"},
		{`{"maxSize":1}`, "maxSize: 1 is below size 2"},
		{`{"policy":"leastActive"}`, `policy: unknown policy "leastActive"`},
		{`{"policy":"consistent_hash"}`, `hashKey: required with policy "consistent_hash"`},
		{`{"hashKey":"k"}`, `hashKey: only with policy "consistent_hash", not "round_robin"`},
		{`{"maxConnAge":"10m"}`, `maxConnAge: want a duration as gRPC writes it`},
		{`{"maxConnAge":600}`, `maxConnAge: want a duration`},
		{`{"maxConnAge":"-1s"}`, "maxConnAge: must not be negative"},
		{`{"slowStart":"-1s"}`, "slowStart: must not be negative"},
		{`{"maxEjectPercent":101}`, "maxEjectPercent: must be between 1 and 100"},
		{`{"maxStreamsPerConn":-1}`, "maxStreamsPerConn: must not be negative"},
		{`{"breaker":{"consecutiveFailure":3}}`, `unknown field "breaker.consecutiveFailure"`},
		{`{"breaker":{"halfOpenProbes":-1}}`, "breaker.halfOpenProbes: want a non-negative integer"},
		{`{"breaker":{"interval":"-2s"}}`, "breaker.interval: must not be negative"},
		{`{"breaker":true}`, "breaker: want a JSON object"},
	} {
		_, err := ParseConfig([]byte(tc.js))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseConfig(%s): %v, want an error containing %q", tc.js, err, tc.want)
			continue
		}
		if !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("ParseConfig(%s): %v does not wrap ErrInvalidConfig", tc.js, err)
		}
	}
}

func TestParseConfigTakesNullAsTheDefault(t *testing.T) {
	c, err := ParseConfig([]byte(`{"size":null,"maxConnAge":null,"breaker":null}`))
	if err != nil || c.Size != 0 || c.MaxConnAge != 0 || c.Breaker != nil {
		t.Fatalf("ParseConfig of nulls: %+v, %v; want the zero Config", c, err)
	}
	c, err = ParseConfig([]byte(`{"breaker":{}}`))
	if err != nil || c.Breaker == nil || *c.Breaker != (Breaker{}) {
		t.Fatalf(`ParseConfig({"breaker":{}}): %+v, %v; want breakers with their defaults`, c, err)
	}
}

// TestParsedConfigMarshalsAsItsJSON: parent policies (xDS's priority and
// cluster_impl) marshal a child's parsed config and parse it again; the
// parsed config must come back the same.
func TestParsedConfigMarshalsAsItsJSON(t *testing.T) {
	js := `{"size":3,"policy":"least_active","maxConnAge":"600s","breaker":{"consecutiveFailures":2}}`
	parsed, err := builder{name: Name}.ParseConfig(json.RawMessage(js))
	if err != nil {
		t.Fatal(err)
	}
	again, err := json.Marshal(parsed)
	if err != nil {
		t.Fatalf("json.Marshal of the parsed config: %v", err)
	}
	reparsed, err := builder{name: Name}.ParseConfig(again)
	if err != nil {
		t.Fatalf("ParseConfig(%s), the parsed config marshalled again: %v", again, err)
	}
	if !reparsed.(*lbConfig).s.equal(parsed.(*lbConfig).s) {
		t.Fatalf("parsed %s, marshalled %s, parsed again: %+v, want %+v", js, again, reparsed.(*lbConfig).s, parsed.(*lbConfig).s)
	}
}
