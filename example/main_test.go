package main

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/grpcpool/grpcpool/internal/scenario"
)

func TestRunVIPSmall(t *testing.T) {
	var out, errb bytes.Buffer
	err := run([]string{"-scenarios", "vip", "-streams", "30"}, &out, &errb)
	require.NoError(t, err, "stderr:\n%s", errb.String())
	for _, want := range []string{"== VIP: 30 long-lived streams", "grpc.ClientConn", "3.00",
		"== Summary ==", "vip: streams max/mean behind an L4 proxy: ClientConn 3.00 → pool RoundRobin", "total "} {
		assert.Contains(t, out.String(), want)
	}
	for _, l := range strings.Split(out.String(), "\n") {
		assert.LessOrEqual(t, utf8.RuneCountInString(l), scenario.MaxWidth, "line %q", l)
	}
	assert.Contains(t, errb.String(), "[vip", "progress on stderr")
}

// -policy replaces the policies a scenario compares with the one given.
func TestRunWithPolicy(t *testing.T) {
	var out, errb bytes.Buffer
	err := run([]string{"-scenarios", "vip", "-streams", "30", "-policy", "PeakEWMA"}, &out, &errb)
	require.NoError(t, err, "stderr:\n%s", errb.String())
	assert.Contains(t, out.String(), "pool WithSize(6) PeakEWMA")
	assert.NotContains(t, out.String(), "RoundRobin")
	assert.NotContains(t, out.String(), "LeastActive")
}

// -h names every scenario with one line of description and the sizes it
// uses, taken from the scenario package's defaults.
func TestUsage(t *testing.T) {
	var out, errb bytes.Buffer
	require.NoError(t, run([]string{"-h"}, &out, &errb))
	help := errb.String()
	for _, e := range scenarios {
		assert.Contains(t, help, "  "+e.name+" ", "scenario %s", e.name)
		assert.Contains(t, help, e.desc)
		assert.Contains(t, help, "defaults: "+e.defaults())
	}
	vip := scenario.VIPConfig{}.WithDefaults()
	assert.Contains(t, help, "defaults: 3 backends, 300 streams, pool WithSize(6)")
	assert.Equal(t, 300, vip.Streams)
	assert.NotContains(t, help, "0: each scenario's default")
	for _, l := range strings.Split(help, "\n") {
		assert.LessOrEqual(t, utf8.RuneCountInString(l), scenario.MaxWidth, "line %q", l)
	}
}

func TestRunBadFlags(t *testing.T) {
	svg := filepath.Join(t.TempDir(), "x.svg")
	for _, args := range [][]string{
		{"-scenarios", "nope"},
		{"-streams", "-1"},
		{"-svg", svg, "-scenarios", "vip"},
		{"extra"},
		{"-policy", "p2c"},
	} {
		var out, errb bytes.Buffer
		assert.Error(t, run(args, &out, &errb), "run(%q)", args)
	}
}
