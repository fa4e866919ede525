package main

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"
)

func TestRunVIPSmall(t *testing.T) {
	var out, errb bytes.Buffer
	if err := run([]string{"-scenarios", "vip", "-streams", "30"}, &out, &errb); err != nil {
		t.Fatalf("run: %v\nstderr:\n%s", err, errb.String())
	}
	for _, want := range []string{"== VIP: 30 long-lived streams", "grpc.ClientConn", "3.00", "total "} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	if !strings.Contains(errb.String(), "[vip") {
		t.Errorf("no progress on stderr:\n%s", errb.String())
	}
}

func TestRunBadFlags(t *testing.T) {
	svg := filepath.Join(t.TempDir(), "x.svg")
	for _, args := range [][]string{
		{"-scenarios", "nope"},
		{"-streams", "-1"},
		{"-svg", svg, "-scenarios", "vip"},
		{"extra"},
	} {
		var out, errb bytes.Buffer
		if err := run(args, &out, &errb); err == nil {
			t.Errorf("run(%q): got nil error", args)
		}
	}
}
