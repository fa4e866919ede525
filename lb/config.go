package lb

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/grpcpool/grpcpool/breaker"
	"github.com/grpcpool/grpcpool/internal/addrs"
	"github.com/grpcpool/grpcpool/pool"
)

// Name is the policy's name in a service config's loadBalancingConfig and
// in an xDS TypedStruct's type URL ("type.googleapis.com/grpcpool").
// grpc-go's registry is case-sensitive: it is lowercase.
const Name = "grpcpool"

// The policies Config.Policy names: the pool's policies, spelt as
// pool.Policy's String spells them.
const (
	RoundRobin     = "round_robin"
	LeastActive    = "least_active"
	PeakEWMA       = "peak_ewma"
	ConsistentHash = "consistent_hash"
)

// Defaults of the fields of Config, the pool's own defaults for the same
// features.
const (
	DefaultSize            = pool.DefaultSize
	DefaultResolveInterval = pool.DefaultResolveInterval
	DefaultDrainTimeout    = pool.DefaultDrainTimeout
	DefaultIdleTimeout     = pool.DefaultIdleTimeout
	DefaultMaxEjectPercent = pool.DefaultMaxEjectPercent
	MaxConnsPerBackend     = pool.MaxConnsPerBackend
	MinResolveInterval     = pool.MinResolveInterval
)

// ErrInvalidConfig is wrapped by every error ParseConfig and
// Config.Validate return; the message names the JSON field at fault.
var ErrInvalidConfig = errors.New("grpcpool: invalid load-balancing config")

// Config is the policy's configuration: the pool's options that make sense
// inside a grpc.ClientConn. The zero Config means the documented defaults.
// In a service config it is JSON with these camelCase fields, durations
// written as gRPC writes them ("30s", "0.5s"):
//
//	{"loadBalancingConfig": [{"grpcpool": {"size": 4, "policy": "least_active", "maxConnAge": "600s"}}]}
//
// Unknown fields and bad values are errors that name the field;
// grpc.NewClient returns them for a default service config, and a
// resolver's service config that has them is rejected as grpc rejects any
// invalid one. Config is a plain value, safe to copy.
type Config struct {
	// Size is how many connections (SubConns) the policy keeps to every
	// resolved address ("size"). Default 2 (DefaultSize); 1 to 1,024.
	Size int
	// MaxSize is the most connections per address when every one of them
	// carries MaxStreamsPerConn calls ("maxSize"). Default max(8 × Size,
	// 16), at most 1,024; below Size is an error.
	MaxSize int
	// Policy spreads calls and streams over the backends and their
	// connections ("policy"): RoundRobin (the default), LeastActive,
	// PeakEWMA or ConsistentHash, as the pool's policies of those names.
	Policy string
	// HashKey is the outgoing metadata key whose first value is a call's
	// key for ConsistentHash ("hashKey"; case-insensitive). Required with
	// ConsistentHash, an error with any other policy. Calls without it
	// are spread round-robin.
	HashKey string
	// MaxConnAge replaces every connection after this age (±10 %
	// jitter): the replacement is made ready first, then the old one
	// drains ("maxConnAge"). Default 0: never; negative is an error.
	MaxConnAge time.Duration
	// DrainTimeout bounds how long the policy waits for a retired
	// connection's calls and streams to end before it shuts its SubConn
	// down ("drainTimeout"). grpc shuts a SubConn down gracefully: what it
	// still carries runs to its end, and the connection closes after the
	// last of it; the timeout only ends the policy's tracking of it.
	// Default 15 minutes (DefaultDrainTimeout); negative means no bound.
	DrainTimeout time.Duration
	// ResolveInterval is how often the policy asks the resolver to
	// resolve again (±10 % jitter), so a fleet behind DNS is followed
	// even when no connection breaks ("resolveInterval"). Default 30 s
	// (DefaultResolveInterval); values below 100 ms are raised to it;
	// negative turns periodic re-resolution off. grpc's DNS resolver
	// resolves at most every 30 s whatever is asked (see
	// dns.SetMinResolutionInterval).
	ResolveInterval time.Duration
	// IdleTimeout retires connections above Size (added when all were
	// full) that carried nothing for this long ("idleTimeout"). Default
	// one minute (DefaultIdleTimeout); negative means never.
	IdleTimeout time.Duration
	// SlowStart ramps the share of a backend that becomes ready after the
	// others over this window, from a tenth to all of it ("slowStart").
	// Default 0: off; negative is an error. Not with ConsistentHash.
	SlowStart time.Duration
	// MaxEjectPercent caps the share of the backends that open circuit
	// breakers take out of rotation ("maxEjectPercent"); none is taken
	// out while half or more are open. Default 10 (DefaultMaxEjectPercent);
	// 100 takes every open one out; outside 0 to 100 is an error.
	MaxEjectPercent int
	// MaxStreamsPerConn caps the calls and streams placed on one
	// connection; when every connection of a backend carries that many,
	// another one is opened, up to MaxSize ("maxStreamsPerConn"). Calls
	// wait for it up to 5 s, restarted each time a growth lands while
	// they wait, as the pool's do, then overflow onto the least loaded
	// connection. Set it to the servers'
	// MAX_CONCURRENT_STREAMS. Default 0: no cap (grpc queues streams past
	// the server's limit on the connection); negative is an error.
	MaxStreamsPerConn int
	// Breaker gives every backend a circuit breaker ("breaker"); nil (the
	// default) means none. The zero Breaker means breaker's defaults.
	Breaker *Breaker
	// Zone turns zone-aware routing on and names this client's zone
	// ("zone"), as pool.WithZone: calls stay in it while it holds its
	// share of the ready backends and spill in proportion to the other
	// zones' surplus otherwise (see docs/policies.md). A backend's zone
	// is the one its resolver recorded (pool.WithAddressZone), else the
	// one ZonesByCIDR maps its address to, else unknown. The fleet's
	// clients are taken to be spread evenly over the zones that have
	// backends unless ZoneClients says otherwise. Default "": off.
	Zone string
	// ZonesByCIDR maps address prefixes to zones ("zonesByCidr"), as
	// pool.WithZonesByCIDR: {"10.0.0.0/20": "us-east-1a"}. Default none;
	// an unparsable prefix, an empty zone name, or overlapping prefixes
	// that map to different zones are errors.
	ZonesByCIDR map[string]string
	// ZoneClients is the number of the fleet's clients in each zone
	// ("zoneClients"), which Zone's split needs to keep every backend
	// equally loaded, as a pool's ZoneMembership gives it: {"us-east-1a":
	// 12, "us-east-1b": 30}; only the proportions matter. A policy inside
	// a ClientConn has no membership to ask, so the counts come with the
	// config: from whoever writes the service config (a control plane, a
	// resolver that knows the fleet), and a new config whose only change
	// is ZoneClients moves the split at once and keeps every connection.
	// Default none: clients spread evenly over the zones that have
	// backends, as are counts that are all 0. Only with Zone; negative
	// counts and an empty zone name are errors.
	ZoneClients map[string]int
	// ZoneMinBackends is the least number of backends that must be able
	// to take calls for Zone's split to apply ("zoneMinBackends"), as
	// pool.WithZoneMinBackends (Envoy's min_cluster_size): with fewer,
	// calls spread over the ready backends whatever their zone. Default
	// 0: no minimum. Only with Zone; negative is an error.
	ZoneMinBackends int
}

// Breaker is breaker.Settings as JSON: the same fields, the same defaults,
// with the default classifier (breaker.DefaultClassifier), since a service
// config cannot carry a function.
type Breaker struct {
	// ConsecutiveFailures opens the breaker ("consecutiveFailures").
	// Default 5.
	ConsecutiveFailures uint32
	// OpenTimeout is how long an open breaker refuses calls
	// ("openTimeout"). Default 10 s; negative is an error.
	OpenTimeout time.Duration
	// HalfOpenProbes is how many calls a half-open breaker lets through
	// ("halfOpenProbes"). Default 1.
	HalfOpenProbes uint32
	// Interval clears a closed breaker's counts every Interval
	// ("interval"). Default 0: never; negative is an error.
	Interval time.Duration
}

// Settings returns b as breaker.Settings.
func (b Breaker) Settings() breaker.Settings {
	return breaker.Settings{
		ConsecutiveFailures: b.ConsecutiveFailures,
		OpenTimeout:         b.OpenTimeout,
		HalfOpenProbes:      b.HalfOpenProbes,
		Interval:            b.Interval,
	}
}

// ServiceConfig returns a service config, for grpc.WithDefaultServiceConfig,
// that selects the policy with c:
//
//	{"loadBalancingConfig":[{"grpcpool":{...}}]}
//
// An invalid c is not checked here: grpc.NewClient returns the error
// (Config.Validate checks it first).
func ServiceConfig(c Config) string {
	js, _ := c.MarshalJSON() // cannot fail: plain fields
	return `{"loadBalancingConfig":[{"` + Name + `":` + string(js) + `}]}`
}

// MarshalJSON writes c as the policy's JSON config: camelCase fields,
// durations as gRPC writes them, zero fields left out.
func (c Config) MarshalJSON() ([]byte, error) {
	fs := c.fields()
	var b bytes.Buffer
	b.WriteByte('{')
	for _, f := range fs {
		if f.zero() {
			continue
		}
		if b.Len() > 1 {
			b.WriteByte(',')
		}
		js, err := f.marshal()
		if err != nil {
			return nil, err
		}
		fmt.Fprintf(&b, "%q:%s", f.name, js)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// UnmarshalJSON reads the policy's JSON config into c, strictly: an
// unknown field, a value of the wrong type or a malformed duration is an
// error that names the field. It does not validate values: see Validate.
func (c *Config) UnmarshalJSON(data []byte) error {
	*c = Config{}
	return decodeObject(data, "", c.fields())
}

// ParseConfig parses and validates the policy's JSON config, as grpc does
// with the policy's entry of a service config.
func ParseConfig(data []byte) (Config, error) {
	var c Config
	if err := c.UnmarshalJSON(data); err != nil {
		return Config{}, err
	}
	return c, c.Validate()
}

// Validate reports every invalid field of c, each error naming its JSON
// field and wrapping ErrInvalidConfig.
func (c Config) Validate() error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: %s: "+format, append([]any{ErrInvalidConfig, field}, args...)...))
	}
	if c.Size < 0 || c.Size > MaxConnsPerBackend {
		bad("size", "must be between 1 and %d, got %d (0 means the default, %d)", MaxConnsPerBackend, c.Size, DefaultSize)
	}
	size := max(c.Size, 1)
	if c.Size == 0 {
		size = DefaultSize
	}
	switch {
	case c.MaxSize < 0 || c.MaxSize > MaxConnsPerBackend:
		bad("maxSize", "must be between 1 and %d, got %d", MaxConnsPerBackend, c.MaxSize)
	case c.MaxSize != 0 && c.MaxSize < size:
		bad("maxSize", "%d is below size %d", c.MaxSize, size)
	}
	switch c.Policy {
	case "", RoundRobin, LeastActive, PeakEWMA:
		if c.HashKey != "" {
			bad("hashKey", "only with policy %q, not %q", ConsistentHash, cmpOr(c.Policy, RoundRobin))
		}
	case ConsistentHash:
		if strings.TrimSpace(c.HashKey) == "" {
			bad("hashKey", "required with policy %q", ConsistentHash)
		}
	default:
		bad("policy", "unknown policy %q (want %s, %s, %s or %s)", c.Policy, RoundRobin, LeastActive, PeakEWMA, ConsistentHash)
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"maxConnAge", c.MaxConnAge}, {"slowStart", c.SlowStart}} {
		if d.v < 0 {
			bad(d.name, "must not be negative, got %v", d.v)
		}
	}
	if c.MaxEjectPercent < 0 || c.MaxEjectPercent > 100 {
		bad("maxEjectPercent", "must be between 1 and 100, got %d (0 means the default, %d)", c.MaxEjectPercent, DefaultMaxEjectPercent)
	}
	if c.MaxStreamsPerConn < 0 {
		bad("maxStreamsPerConn", "must not be negative, got %d", c.MaxStreamsPerConn)
	}
	if _, err := addrs.ParseCIDRZones(c.ZonesByCIDR); err != nil {
		bad("zonesByCidr", "%v", err)
	}
	c.validateZones(bad)
	if c.Breaker != nil {
		if c.Breaker.OpenTimeout < 0 {
			bad("breaker.openTimeout", "must not be negative, got %v", c.Breaker.OpenTimeout)
		}
		if c.Breaker.Interval < 0 {
			bad("breaker.interval", "must not be negative, got %v", c.Breaker.Interval)
		}
	}
	return errors.Join(errs...)
}

func cmpOr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// field is one JSON field of the config: its name and where its value
// lives.
type field struct {
	name string
	ptr  any // *int, *string, *uint32, *time.Duration (as a duration), *map[string]string, *map[string]int or **Breaker
}

func (c *Config) fields() []field {
	return []field{
		{"size", &c.Size},
		{"maxSize", &c.MaxSize},
		{"policy", &c.Policy},
		{"hashKey", &c.HashKey},
		{"maxConnAge", &c.MaxConnAge},
		{"drainTimeout", &c.DrainTimeout},
		{"resolveInterval", &c.ResolveInterval},
		{"idleTimeout", &c.IdleTimeout},
		{"slowStart", &c.SlowStart},
		{"maxEjectPercent", &c.MaxEjectPercent},
		{"maxStreamsPerConn", &c.MaxStreamsPerConn},
		{"breaker", &c.Breaker},
		{"zone", &c.Zone},
		{"zonesByCidr", &c.ZonesByCIDR},
		{"zoneClients", &c.ZoneClients},
		{"zoneMinBackends", &c.ZoneMinBackends},
	}
}

func (b *Breaker) fields() []field {
	return []field{
		{"consecutiveFailures", &b.ConsecutiveFailures},
		{"openTimeout", &b.OpenTimeout},
		{"halfOpenProbes", &b.HalfOpenProbes},
		{"interval", &b.Interval},
	}
}

func (f field) zero() bool {
	switch p := f.ptr.(type) {
	case *int:
		return *p == 0
	case *uint32:
		return *p == 0
	case *string:
		return *p == ""
	case *time.Duration:
		return *p == 0
	case **Breaker:
		return *p == nil
	case *map[string]string:
		return len(*p) == 0
	case *map[string]int:
		return len(*p) == 0
	}
	return false
}

func (f field) marshal() ([]byte, error) {
	switch p := f.ptr.(type) {
	case *time.Duration:
		return protojson.Marshal(durationpb.New(*p))
	case **Breaker:
		b := *p
		var out bytes.Buffer
		out.WriteByte('{')
		for _, g := range b.fields() {
			if g.zero() {
				continue
			}
			if out.Len() > 1 {
				out.WriteByte(',')
			}
			js, err := g.marshal()
			if err != nil {
				return nil, err
			}
			fmt.Fprintf(&out, "%q:%s", g.name, js)
		}
		out.WriteByte('}')
		return out.Bytes(), nil
	}
	return json.Marshal(f.ptr)
}

// decodeObject reads the JSON object data into fs, strictly; prefix
// ("breaker.") qualifies the names in errors.
func decodeObject(data []byte, prefix string, fs []field) error {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(data, &raw); err != nil {
		what := "config"
		if prefix != "" {
			what = strings.TrimSuffix(prefix, ".")
		}
		return fmt.Errorf("%w: %s: want a JSON object: %v", ErrInvalidConfig, what, err)
	}
	byName := make(map[string]field, len(fs))
	names := make([]string, 0, len(fs))
	for _, f := range fs {
		byName[f.name] = f
		names = append(names, f.name)
	}
	keys := make([]string, 0, len(raw))
	for k := range raw {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var errs []error
	for _, k := range keys {
		f, ok := byName[k]
		if !ok {
			errs = append(errs, fmt.Errorf("%w: unknown field %q (known: %s)", ErrInvalidConfig, prefix+k, strings.Join(names, ", ")))
			continue
		}
		js := raw[k]
		if string(bytes.TrimSpace(js)) == "null" {
			continue // as if absent: the default
		}
		if bp, ok := f.ptr.(**Breaker); ok {
			b := &Breaker{}
			*bp = b
			if err := decodeObject(js, prefix+k+".", b.fields()); err != nil {
				errs = append(errs, err)
			}
			continue
		}
		if err := f.decode(js); err != nil {
			errs = append(errs, fmt.Errorf("%w: %s: %v", ErrInvalidConfig, prefix+k, err))
		}
	}
	return errors.Join(errs...)
}

func (f field) decode(js json.RawMessage) error {
	if p, ok := f.ptr.(*time.Duration); ok {
		var d durationpb.Duration
		if err := protojson.Unmarshal(js, &d); err != nil {
			return fmt.Errorf("want a duration as gRPC writes it (\"30s\", \"0.5s\"), got %s", js)
		}
		if err := d.CheckValid(); err != nil {
			return err
		}
		*p = d.AsDuration()
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(js))
	if err := dec.Decode(f.ptr); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			return fmt.Errorf("want %s, got %s", kind(f.ptr), te.Value)
		}
		return err
	}
	return nil
}

func kind(p any) string {
	switch p.(type) {
	case *int:
		return "an integer"
	case *uint32:
		return "a non-negative integer"
	case *string:
		return "a string"
	case *map[string]string:
		return "an object of strings"
	case *map[string]int:
		return "an object of integers"
	}
	return fmt.Sprintf("%T", p)
}
