package keepalive_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	grpckeepalive "google.golang.org/grpc/keepalive"

	"github.com/grpcpool/grpcpool/keepalive"
)

func TestComputedParameters(t *testing.T) {
	tests := []struct {
		name   string
		cfg    keepalive.Config
		client grpckeepalive.ClientParameters
		policy grpckeepalive.EnforcementPolicy
		server grpckeepalive.ServerParameters
	}{
		{
			name:   "zero value means defaults",
			cfg:    keepalive.Config{},
			client: grpckeepalive.ClientParameters{Time: 30 * time.Second, Timeout: 10 * time.Second, PermitWithoutStream: true},
			policy: grpckeepalive.EnforcementPolicy{MinTime: 15 * time.Second, PermitWithoutStream: true},
		},
		{
			name:   "minimum time",
			cfg:    keepalive.Config{Time: 10 * time.Second},
			client: grpckeepalive.ClientParameters{Time: 10 * time.Second, Timeout: 10 * time.Second, PermitWithoutStream: true},
			policy: grpckeepalive.EnforcementPolicy{MinTime: 5 * time.Second, PermitWithoutStream: true},
		},
		{
			name:   "time below minimum is clamped on both sides",
			cfg:    keepalive.Config{Time: 5 * time.Second},
			client: grpckeepalive.ClientParameters{Time: 10 * time.Second, Timeout: 10 * time.Second, PermitWithoutStream: true},
			policy: grpckeepalive.EnforcementPolicy{MinTime: 5 * time.Second, PermitWithoutStream: true},
		},
		{
			name:   "one nanosecond is clamped",
			cfg:    keepalive.Config{Time: time.Nanosecond, Timeout: time.Nanosecond},
			client: grpckeepalive.ClientParameters{Time: 10 * time.Second, Timeout: time.Nanosecond, PermitWithoutStream: true},
			policy: grpckeepalive.EnforcementPolicy{MinTime: 5 * time.Second, PermitWithoutStream: true},
		},
		{
			name:   "all client fields set",
			cfg:    keepalive.Config{Time: time.Minute, Timeout: 3 * time.Second, NoPingsWithoutStream: true},
			client: grpckeepalive.ClientParameters{Time: time.Minute, Timeout: 3 * time.Second, PermitWithoutStream: false},
			policy: grpckeepalive.EnforcementPolicy{MinTime: 30 * time.Second, PermitWithoutStream: false},
		},
		{
			name:   "negative durations are treated as zero",
			cfg:    keepalive.Config{Time: -time.Second, Timeout: -time.Second, MaxConnectionIdle: -1, MaxConnectionAge: -1, MaxConnectionAgeGrace: -1},
			client: grpckeepalive.ClientParameters{Time: 30 * time.Second, Timeout: 10 * time.Second, PermitWithoutStream: true},
			policy: grpckeepalive.EnforcementPolicy{MinTime: 15 * time.Second, PermitWithoutStream: true},
		},
		{
			name: "server fields pass through",
			cfg: keepalive.Config{
				Time:                  5 * time.Minute,
				MaxConnectionIdle:     time.Hour,
				MaxConnectionAge:      30 * time.Minute,
				MaxConnectionAgeGrace: time.Minute,
			},
			client: grpckeepalive.ClientParameters{Time: 5 * time.Minute, Timeout: 10 * time.Second, PermitWithoutStream: true},
			policy: grpckeepalive.EnforcementPolicy{MinTime: 150 * time.Second, PermitWithoutStream: true},
			server: grpckeepalive.ServerParameters{MaxConnectionIdle: time.Hour, MaxConnectionAge: 30 * time.Minute, MaxConnectionAgeGrace: time.Minute},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			client := tt.cfg.ClientParameters()
			policy := tt.cfg.EnforcementPolicy()
			server := tt.cfg.ServerParameters()
			if client != tt.client {
				t.Errorf("ClientParameters() = %+v, want %+v", client, tt.client)
			}
			if policy != tt.policy {
				t.Errorf("EnforcementPolicy() = %+v, want %+v", policy, tt.policy)
			}
			if server != tt.server {
				t.Errorf("ServerParameters() = %+v, want %+v", server, tt.server)
			}

			// The invariants that keep the pair free of too_many_pings.
			if client.Time < keepalive.MinPingTime {
				t.Errorf("client Time = %v, want >= MinPingTime %v (grpc-go would clamp it and disagree with the server)", client.Time, keepalive.MinPingTime)
			}
			if policy.MinTime <= 0 {
				t.Errorf("MinTime = %v, want > 0 (grpc-go reads 0 as 5m)", policy.MinTime)
			}
			if 2*policy.MinTime > client.Time {
				t.Errorf("MinTime = %v, client Time = %v: want MinTime <= Time/2", policy.MinTime, client.Time)
			}
			if policy.PermitWithoutStream != client.PermitWithoutStream {
				t.Errorf("policy PermitWithoutStream = %v, client PermitWithoutStream = %v: want equal",
					policy.PermitWithoutStream, client.PermitWithoutStream)
			}
			if server.Time != 0 || server.Timeout != 0 {
				t.Errorf("server Time, Timeout = %v, %v, want 0, 0 (grpc-go defaults)", server.Time, server.Timeout)
			}

			// WithDefaults is the effective config and is idempotent.
			eff := tt.cfg.WithDefaults()
			if got := eff.WithDefaults(); got != eff {
				t.Errorf("WithDefaults().WithDefaults() = %+v, want %+v", got, eff)
			}
			if err := eff.Validate(); err != nil {
				t.Errorf("WithDefaults().Validate() = %v, want nil", err)
			}
			if got := eff.ClientParameters(); got != client {
				t.Errorf("WithDefaults().ClientParameters() = %+v, want %+v", got, client)
			}
			if got := len(tt.cfg.ServerOptions()); got != 2 {
				t.Errorf("len(ServerOptions()) = %d, want 2", got)
			}
			if tt.cfg.DialOption() == nil {
				t.Error("DialOption() = nil, want an option")
			}
		})
	}
}

func TestWithDefaults(t *testing.T) {
	got := keepalive.Config{}.WithDefaults()
	want := keepalive.Config{Time: keepalive.DefaultTime, Timeout: keepalive.DefaultTimeout}
	if got != want {
		t.Errorf("Config{}.WithDefaults() = %+v, want %+v", got, want)
	}
	if keepalive.DefaultTime != 30*time.Second || keepalive.DefaultTimeout != 10*time.Second || keepalive.MinPingTime != 10*time.Second {
		t.Errorf("DefaultTime, DefaultTimeout, MinPingTime = %v, %v, %v, want 30s, 10s, 10s",
			keepalive.DefaultTime, keepalive.DefaultTimeout, keepalive.MinPingTime)
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name   string
		cfg    keepalive.Config
		fields []string // fields the error must name; none = valid
	}{
		{name: "zero value", cfg: keepalive.Config{}},
		{name: "all set", cfg: keepalive.Config{Time: time.Second, Timeout: time.Second, NoPingsWithoutStream: true,
			MaxConnectionIdle: time.Second, MaxConnectionAge: time.Second, MaxConnectionAgeGrace: time.Second}},
		{name: "time", cfg: keepalive.Config{Time: -time.Second}, fields: []string{"Time = -1s"}},
		{name: "timeout", cfg: keepalive.Config{Timeout: -1}, fields: []string{"Timeout = -1ns"}},
		{name: "max connection idle", cfg: keepalive.Config{MaxConnectionIdle: -time.Minute}, fields: []string{"MaxConnectionIdle = -1m0s"}},
		{name: "max connection age", cfg: keepalive.Config{MaxConnectionAge: -time.Hour}, fields: []string{"MaxConnectionAge = -1h0m0s"}},
		{name: "max connection age grace", cfg: keepalive.Config{MaxConnectionAgeGrace: -time.Millisecond}, fields: []string{"MaxConnectionAgeGrace = -1ms"}},
		{name: "several", cfg: keepalive.Config{Time: -1, MaxConnectionAge: -1}, fields: []string{"Time = -1ns", "MaxConnectionAge = -1ns"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if len(tt.fields) == 0 {
				if err != nil {
					t.Errorf("Validate() = %v, want nil", err)
				}
				return
			}
			if !errors.Is(err, keepalive.ErrNegativeDuration) {
				t.Fatalf("Validate() = %v, want an error wrapping ErrNegativeDuration", err)
			}
			if !strings.HasPrefix(err.Error(), "keepalive: ") {
				t.Errorf("Validate() = %q, want the prefix %q", err, "keepalive: ")
			}
			for _, f := range tt.fields {
				if !strings.Contains(err.Error(), f) {
					t.Errorf("Validate() = %q, want it to contain %q", err, f)
				}
			}
		})
	}
}
