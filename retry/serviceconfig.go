package retry

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
)

// maxServiceConfigAttempts is gRFC A6's cap on maxAttempts: larger values
// are treated as 5.
const maxServiceConfigAttempts = 5

// Config is the retry and hedging part of a gRPC service config: one
// [Policy] or [Hedging] per methodConfig entry, with Methods set from its
// names. Give it to [NewResolver] (the pool does, with WithServiceConfig).
// It is a plain value, safe for concurrent use as long as nobody changes
// it.
type Config struct {
	Retry   []Policy
	Hedging []Hedging
}

// ParseServiceConfig reads the methodConfig list of a gRPC service config
// (JSON, as grpc.WithDefaultServiceConfig takes it), as gRFC A6 defines
// it:
//
//	{"methodConfig": [{
//	  "name": [{"service": "pkg.Service", "method": "Get"}],
//	  "retryPolicy": {
//	    "maxAttempts": 3, "initialBackoff": "0.025s", "maxBackoff": "1s",
//	    "backoffMultiplier": 2, "retryableStatusCodes": ["UNAVAILABLE"]}
//	}, {
//	  "name": [{"service": "pkg.Service", "method": "Search"}],
//	  "hedgingPolicy": {
//	    "maxAttempts": 2, "hedgingDelay": "0.05s",
//	    "nonFatalStatusCodes": ["UNAVAILABLE"]}
//	}]}
//
// A name with a service and no method covers the whole service; a name
// with neither ({}) is the default. An entry with neither policy turns
// retries off for its names (a Policy with MaxAttempts 1), as in gRPC.
// Every field of retryPolicy is required: maxAttempts at least 2 (above 5
// taken as 5), durations as protobuf JSON strings ("1.5s", not "1.5")
// and positive, backoffMultiplier at least 1 (grpcpool's backoff does not
// shrink), retryableStatusCodes a non-empty list of names ("UNAVAILABLE")
// or numbers. In hedgingPolicy, maxAttempts is required (at least 2,
// above 5 taken as 5), hedgingDelay is optional (absent or "0s" sends
// every attempt at once, as gRFC A6 says: a Delay of 1ns), and
// nonFatalStatusCodes optional.
//
// Anything else is an error wrapping [ErrInvalidPolicy], never a silent
// default: JSON that does not parse, unknown fields, both policies in one
// entry, a name given twice, a method without a service, and the
// service-config fields grpcpool does not apply (loadBalancingConfig,
// retryThrottling, timeout, waitForReady, message size limits; each with
// what to use instead).
func ParseServiceConfig(js string) (*Config, error) {
	if t := strings.TrimSpace(js); t == "null" || t == "" {
		return nil, fmt.Errorf("%w: service config: %q is not a JSON object", ErrInvalidPolicy, t)
	}
	var sc serviceConfigJSON
	dec := json.NewDecoder(strings.NewReader(js))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&sc); err != nil {
		return nil, fmt.Errorf("%w: service config: %v", ErrInvalidPolicy, err)
	}
	if dec.More() {
		return nil, fmt.Errorf("%w: service config: data after the JSON object", ErrInvalidPolicy)
	}
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: service config: "+format, append([]any{ErrInvalidPolicy}, args...)...))
	}
	for _, f := range sc.unsupported() {
		bad("%s is not applied by grpcpool: %s", f.name, f.instead)
	}
	var c Config
	for i, mc := range sc.MethodConfig {
		at := fmt.Sprintf("methodConfig[%d]", i)
		for _, f := range mc.unsupported() {
			bad("%s.%s is not applied by grpcpool: %s", at, f.name, f.instead)
		}
		names, err := mc.methods()
		if err != nil {
			bad("%s.%v", at, err)
			continue
		}
		switch {
		case mc.RetryPolicy != nil && mc.HedgingPolicy != nil:
			bad("%s has both retryPolicy and hedgingPolicy; gRFC A6 allows one", at)
		case mc.RetryPolicy != nil:
			p, err := mc.RetryPolicy.policy()
			if err != nil {
				bad("%s.retryPolicy.%v", at, err)
				continue
			}
			p.Methods = names
			c.Retry = append(c.Retry, p)
		case mc.HedgingPolicy != nil:
			h, err := mc.HedgingPolicy.hedging()
			if err != nil {
				bad("%s.hedgingPolicy.%v", at, err)
				continue
			}
			h.Methods = names
			c.Hedging = append(c.Hedging, h)
		default:
			c.Retry = append(c.Retry, Policy{MaxAttempts: 1, Methods: names})
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if _, err := NewResolver(c.Retry, c.Hedging); err != nil {
		return nil, fmt.Errorf("service config: %w", err)
	}
	return &c, nil
}

// unsupportedField is a known service-config field grpcpool rejects.
type unsupportedField struct{ name, instead string }

type serviceConfigJSON struct {
	MethodConfig []methodConfigJSON `json:"methodConfig"`

	LoadBalancingConfig json.RawMessage `json:"loadBalancingConfig"`
	LoadBalancingPolicy json.RawMessage `json:"loadBalancingPolicy"`
	RetryThrottling     json.RawMessage `json:"retryThrottling"`
	HealthCheckConfig   json.RawMessage `json:"healthCheckConfig"`
}

func (sc *serviceConfigJSON) unsupported() []unsupportedField {
	var fs []unsupportedField
	if sc.LoadBalancingConfig != nil || sc.LoadBalancingPolicy != nil {
		fs = append(fs, unsupportedField{"loadBalancingConfig", "the pool balances itself; use WithPolicy"})
	}
	if sc.RetryThrottling != nil {
		fs = append(fs, unsupportedField{"retryThrottling", "the pool bounds retries with a budget; set Budget on the default retry.Policy"})
	}
	if sc.HealthCheckConfig != nil {
		fs = append(fs, unsupportedField{"healthCheckConfig", "use WithHealthCheck"})
	}
	return fs
}

type methodConfigJSON struct {
	Name          []methodNameJSON   `json:"name"`
	RetryPolicy   *retryPolicyJSON   `json:"retryPolicy"`
	HedgingPolicy *hedgingPolicyJSON `json:"hedgingPolicy"`

	WaitForReady            json.RawMessage `json:"waitForReady"`
	Timeout                 json.RawMessage `json:"timeout"`
	MaxRequestMessageBytes  json.RawMessage `json:"maxRequestMessageBytes"`
	MaxResponseMessageBytes json.RawMessage `json:"maxResponseMessageBytes"`
}

func (mc *methodConfigJSON) unsupported() []unsupportedField {
	const perConn = "give it to every connection with WithDialOptions(grpc.WithDefaultServiceConfig(...)), or set it per call"
	var fs []unsupportedField
	for _, f := range []struct {
		name string
		v    json.RawMessage
	}{
		{"waitForReady", mc.WaitForReady}, {"timeout", mc.Timeout},
		{"maxRequestMessageBytes", mc.MaxRequestMessageBytes}, {"maxResponseMessageBytes", mc.MaxResponseMessageBytes},
	} {
		if f.v != nil {
			fs = append(fs, unsupportedField{f.name, perConn})
		}
	}
	return fs
}

// methods returns the entry's names as Methods: "/svc/method", "/svc/",
// or nil for the default.
func (mc *methodConfigJSON) methods() ([]string, error) {
	if len(mc.Name) == 0 {
		return nil, errors.New("name: missing or empty; use [{}] for the default")
	}
	var names []string
	for j, n := range mc.Name {
		switch {
		case n.Service == "" && n.Method != "":
			return nil, fmt.Errorf("name[%d]: method %q without a service", j, n.Method)
		case n.Service == "":
			if len(mc.Name) > 1 {
				return nil, fmt.Errorf("name[%d]: the default ({}) must be the entry's only name", j)
			}
			return nil, nil
		}
		name := "/" + n.Service + "/" + n.Method
		if err := checkMethodName(name); err != nil || strings.Contains(n.Service, "/") {
			return nil, fmt.Errorf("name[%d]: service %q, method %q is not a method name", j, n.Service, n.Method)
		}
		names = append(names, name)
	}
	return names, nil
}

type methodNameJSON struct {
	Service string `json:"service"`
	Method  string `json:"method"`
}

type retryPolicyJSON struct {
	MaxAttempts          *int          `json:"maxAttempts"`
	InitialBackoff       *durationJSON `json:"initialBackoff"`
	MaxBackoff           *durationJSON `json:"maxBackoff"`
	BackoffMultiplier    *float64      `json:"backoffMultiplier"`
	RetryableStatusCodes []codes.Code  `json:"retryableStatusCodes"`
}

func (rp *retryPolicyJSON) policy() (Policy, error) {
	var errs []error
	need := func(field string, ok bool) {
		if !ok {
			errs = append(errs, fmt.Errorf("%s: required", field))
		}
	}
	need("maxAttempts", rp.MaxAttempts != nil)
	need("initialBackoff", rp.InitialBackoff != nil)
	need("maxBackoff", rp.MaxBackoff != nil)
	need("backoffMultiplier", rp.BackoffMultiplier != nil)
	need("retryableStatusCodes", len(rp.RetryableStatusCodes) > 0)
	if err := errors.Join(errs...); err != nil {
		return Policy{}, err
	}
	if *rp.MaxAttempts < 2 {
		return Policy{}, fmt.Errorf("maxAttempts: must be at least 2, got %d", *rp.MaxAttempts)
	}
	for _, d := range []struct {
		field string
		d     *durationJSON
	}{{"initialBackoff", rp.InitialBackoff}, {"maxBackoff", rp.MaxBackoff}} {
		if d.d.d <= 0 {
			return Policy{}, fmt.Errorf("%s: must be positive, got %q", d.field, d.d.s)
		}
	}
	if m := *rp.BackoffMultiplier; !(m >= 1) {
		return Policy{}, fmt.Errorf("backoffMultiplier: must be at least 1, got %v", m)
	}
	p := Policy{
		MaxAttempts:    min(*rp.MaxAttempts, maxServiceConfigAttempts),
		InitialBackoff: rp.InitialBackoff.d,
		MaxBackoff:     rp.MaxBackoff.d,
		Multiplier:     *rp.BackoffMultiplier,
		Codes:          rp.RetryableStatusCodes,
	}
	if err := p.Validate(); err != nil {
		return Policy{}, fmt.Errorf("retryPolicy: %w", err)
	}
	return p, nil
}

type hedgingPolicyJSON struct {
	MaxAttempts         *int          `json:"maxAttempts"`
	HedgingDelay        *durationJSON `json:"hedgingDelay"`
	NonFatalStatusCodes []codes.Code  `json:"nonFatalStatusCodes"`
}

func (hp *hedgingPolicyJSON) hedging() (Hedging, error) {
	if hp.MaxAttempts == nil {
		return Hedging{}, errors.New("maxAttempts: required")
	}
	if *hp.MaxAttempts < 2 {
		return Hedging{}, fmt.Errorf("maxAttempts: must be at least 2, got %d", *hp.MaxAttempts)
	}
	h := Hedging{
		MaxAttempts:   min(*hp.MaxAttempts, maxServiceConfigAttempts),
		Delay:         time.Nanosecond, // gRFC A6: no delay sends every attempt at once
		NonFatalCodes: hp.NonFatalStatusCodes,
	}
	if hp.HedgingDelay != nil {
		switch d := hp.HedgingDelay.d; {
		case d < 0:
			return Hedging{}, fmt.Errorf("hedgingDelay: must not be negative, got %q", hp.HedgingDelay.s)
		case d > 0:
			h.Delay = d
		}
	}
	if err := h.Validate(); err != nil {
		return Hedging{}, fmt.Errorf("hedgingPolicy: %w", err)
	}
	return h, nil
}

// protoDuration is the JSON form of google.protobuf.Duration: seconds with
// up to nine fractional digits and an "s".
var protoDuration = regexp.MustCompile(`^-?[0-9]+(\.[0-9]{1,9})?s$`)

// durationJSON is a google.protobuf.Duration in its JSON form ("1.5s").
type durationJSON struct {
	s string
	d time.Duration
}

func (d *durationJSON) UnmarshalJSON(b []byte) error {
	if bytes.Equal(b, []byte("null")) || len(b) == 0 || b[0] != '"' {
		return fmt.Errorf("duration %s: want a string such as \"1.5s\"", b)
	}
	if err := json.Unmarshal(b, &d.s); err != nil {
		return err
	}
	if !protoDuration.MatchString(d.s) {
		return fmt.Errorf("duration %q: want seconds with an \"s\", such as \"1.5s\"", d.s)
	}
	v, err := time.ParseDuration(d.s)
	if err != nil {
		return fmt.Errorf("duration %q: %v", d.s, err)
	}
	d.d = v
	return nil
}
