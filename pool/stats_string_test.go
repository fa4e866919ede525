package pool

import (
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/grpcpool/grpcpool/breaker"
)

func TestStatsString(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   Stats
		want string
	}{
		{
			name: "empty",
			in:   Stats{Target: "dns:///greeter:50051", Policy: LeastActive},
			want: "pool dns:///greeter:50051 (least_active): 0 backends\n",
		},
		{
			name: "closed",
			in:   Stats{Target: "passthrough:///x", Closed: true},
			want: "pool passthrough:///x (round_robin, closed): 0 backends\n",
		},
		{
			name: "backends",
			in: Stats{Target: "dns:///greeter:50051", Policy: RoundRobin, Backends: []BackendStats{
				{Addr: "10.0.0.1:50051", Ready: 2, ActiveCalls: 3, ActiveStreams: 12, Calls: 1500, Attempts: 1510, Failures: 2, Healthy: true},
				{Addr: "10.0.0.2:50051", Connecting: 1, Draining: 1, Calls: 40, Attempts: 40, Failures: 40, Breaker: breaker.StateOpen, Healthy: true,
					LastError: "connection error: desc = \"transport: Error while dialing: dial tcp 10.0.0.2:50051: connect: connection refused\""},
				{Addr: "10.0.0.3:50051", Ready: 1, Breaker: breaker.StateHalfOpen},
				{Addr: "10.0.0.4:50051", Removed: true, Draining: 2, ActiveStreams: 1, Healthy: true},
			}},
			want: "pool dns:///greeter:50051 (round_robin): 4 backends\n" +
				"BACKEND                   READY  CONNECTING  DRAINING  CALLS  STREAMS  ENDED  ATTEMPTS  FAILED  BREAKER    HEALTH       LAST ERROR\n" +
				"10.0.0.1:50051            2      0           0         3      12       1500   1510      2       closed     serving      -\n" +
				"10.0.0.2:50051            0      1           1         0      0        40     40        40      open       serving      connection error: desc = \"transport: Error while dialing: dial tcp 10.0.0.2:50051: connect: connection refused\"\n" +
				"10.0.0.3:50051            1      0           0         0      0        0      0         0       half-open  not-serving  -\n" +
				"10.0.0.4:50051 (removed)  0      0           2         0      1        0      0         0       closed     serving      -\n",
		},
		{
			name: "cells stay in their column",
			in:   Stats{Target: "t", Backends: []BackendStats{{Addr: "a\tb\nc", Healthy: true, LastError: "line one\nline two"}, {Addr: ""}}},
			want: "pool t (round_robin): 2 backends\n" +
				"BACKEND  READY  CONNECTING  DRAINING  CALLS  STREAMS  ENDED  ATTEMPTS  FAILED  BREAKER  HEALTH       LAST ERROR\n" +
				"a b c    0      0           0         0      0        0      0         0       closed   serving      line one line two\n" +
				"-        0      0           0         0      0        0      0         0       closed   not-serving  -\n",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := tc.in.String()
			assert.Equal(t, tc.want, got, "got:\n%s", got)
		})
	}
}
