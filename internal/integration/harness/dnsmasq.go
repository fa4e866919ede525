package harness

import (
	"context"
	"fmt"
	"maps"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// DNS is a dnsmasq serving A records from a hosts file on 127.0.0.1:Port,
// authoritative for those names only (no upstream, no /etc/hosts), with a
// TTL of one second.
type DNS struct {
	Addr string // "127.0.0.1:PORT", UDP and TCP
	Port int

	proc      *Process
	hostsPath string
}

// StartDNS starts dnsmasq serving records (name → IPv4 addresses) and
// waits until it answers for them.
func StartDNS(t testing.TB, records map[string][]string) *DNS {
	t.Helper()
	bin := Need(t, "dnsmasq")
	var lastErr error
	for range 3 { // a port taken between FreePort and bind: try new ports
		d, err := startDNS(t, bin, records)
		if err == nil {
			return d
		}
		lastErr = err
	}
	t.Fatalf("dnsmasq: %v", lastErr)
	return nil
}

func startDNS(t testing.TB, bin string, records map[string][]string) (*DNS, error) {
	t.Helper()
	dir := t.TempDir()
	port := FreePort(t)
	d := &DNS{
		Addr:      net.JoinHostPort("127.0.0.1", fmt.Sprint(port)),
		Port:      port,
		hostsPath: filepath.Join(dir, "hosts"),
	}
	if err := writeHosts(d.hostsPath, records); err != nil {
		t.Fatalf("dnsmasq: %v", err)
	}
	// dnsmasq drops to "nobody" by default, which cannot read the 0700
	// temp dir; stay the user we are (root in CI).
	runAs := "root"
	if u, err := user.Current(); err == nil {
		runAs = u.Username
	}
	conf := strings.Join([]string{
		fmt.Sprintf("port=%d", port),
		"listen-address=127.0.0.1",
		"bind-interfaces",
		"no-resolv",   // no upstream servers: answer from the hosts file only
		"no-hosts",    // not /etc/hosts
		"no-poll",     // nothing to poll
		"local-ttl=1", // the Go resolver does not cache, but anything else should not for long
		// Every name is local: AAAA of a known name is NODATA and an unknown
		// name NXDOMAIN, rather than REFUSED for want of an upstream.
		"local=/#/",
		"cache-size=0",
		"addn-hosts=" + d.hostsPath,
		"user=" + runAs,
		"pid-file=" + filepath.Join(dir, "dnsmasq.pid"),
		"log-facility=-", // stderr, into the process log
		"log-queries",
		"",
	}, "\n")
	confPath := filepath.Join(dir, "dnsmasq.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o600); err != nil {
		t.Fatalf("dnsmasq: write config: %v", err)
	}
	d.proc = startProcess(t, "dnsmasq", bin, []string{"--keep-in-foreground", "--conf-file=" + confPath})

	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	err := Poll(ctx, func() error {
		if err := d.proc.aliveErr(); err != nil {
			return err
		}
		return d.expect(ctx, records)
	})
	if err != nil {
		if exited, _ := d.proc.Exited(); exited {
			return nil, err // probably the port; the caller tries again
		}
		t.Fatalf("dnsmasq on %s did not answer: %v", d.Addr, err)
	}
	return d, nil
}

// SetRecords replaces every record: it rewrites the hosts file, sends
// SIGHUP, and waits until dnsmasq answers with the new records.
func (d *DNS) SetRecords(t testing.TB, records map[string][]string) {
	t.Helper()
	if err := writeHosts(d.hostsPath, records); err != nil {
		t.Fatalf("dnsmasq: %v", err)
	}
	if err := d.proc.Signal(syscall.SIGHUP); err != nil {
		t.Fatalf("dnsmasq: SIGHUP: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	if err := Poll(ctx, func() error { return d.expect(ctx, records) }); err != nil {
		t.Fatalf("dnsmasq: new records not served: %v", err)
	}
}

// Resolver returns a pure-Go resolver that asks this dnsmasq only.
func (d *DNS) Resolver() *net.Resolver {
	return &net.Resolver{
		PreferGo: true,
		Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
			var dialer net.Dialer
			return dialer.DialContext(ctx, network, d.Addr)
		},
	}
}

// Lookup returns the sorted IPv4 addresses dnsmasq serves for name.
func (d *DNS) Lookup(ctx context.Context, name string) ([]string, error) {
	ips, err := d.Resolver().LookupIP(ctx, "ip4", name)
	if err != nil {
		return nil, err
	}
	out := make([]string, len(ips))
	for i, ip := range ips {
		out[i] = ip.String()
	}
	slices.Sort(out)
	return out, nil
}

// expect returns nil when every name of records resolves to exactly its
// addresses.
func (d *DNS) expect(ctx context.Context, records map[string][]string) error {
	for name, want := range records {
		lctx, cancel := context.WithTimeout(ctx, time.Second)
		got, err := d.Lookup(lctx, name)
		cancel()
		if err != nil {
			return fmt.Errorf("lookup %s: %w", name, err)
		}
		w := slices.Sorted(slices.Values(want))
		if !slices.Equal(got, w) {
			return fmt.Errorf("lookup %s: got %v, want %v", name, got, w)
		}
	}
	return nil
}

// writeHosts writes records in /etc/hosts format, replacing the file
// atomically so dnsmasq never reads half of it.
func writeHosts(path string, records map[string][]string) error {
	var b strings.Builder
	for _, name := range slices.Sorted(maps.Keys(records)) {
		for _, ip := range records[name] {
			fmt.Fprintf(&b, "%s %s\n", ip, name)
		}
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(b.String()), 0o644); err != nil {
		return fmt.Errorf("write hosts: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write hosts: %w", err)
	}
	return nil
}
