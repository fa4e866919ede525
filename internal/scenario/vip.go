package scenario

import (
	"context"
	"fmt"
	"log/slog"
	"os/exec"
	"strings"
	"time"

	"google.golang.org/grpc"

	"github.com/grpcpool/grpcpool/internal/backend"
	"github.com/grpcpool/grpcpool/internal/haproxy"
	"github.com/grpcpool/grpcpool/internal/tcpproxy"
	"github.com/grpcpool/grpcpool/pool"
)

// VIPConfig configures RunVIP. The zero value gives the documented sizes.
type VIPConfig struct {
	// Backends behind the proxy. Default 3.
	Backends int
	// Streams is how many long-lived Bidi streams each client opens.
	// Default 300.
	Streams int
	// Size is the pool's WithSize: connections it makes to the proxy's one
	// address. Default 2 × Backends (6 for 3), so that the proxy gives each
	// backend two.
	Size int
	// Proxy chooses the L4 proxy: "haproxy", "internal" (package
	// tcpproxy), or "" for haproxy when it is in PATH and the internal one
	// otherwise.
	Proxy string
	// PoolOptions are added to every pool's options. The tests add
	// pool.WithStreamStallTimeout(0), so that a stream slowed by a busy
	// machine is not taken for one stalled at a stream limit and moved.
	PoolOptions []pool.Option
	// Policy, when set, is the one policy of the pools; unset, a pool is
	// measured with each of RoundRobin and LeastActive.
	Policy *pool.Policy
	// Logger receives the pool's logs. Nil discards them.
	Logger *slog.Logger
}

// WithDefaults returns c with every zero field set to its default.
func (c VIPConfig) WithDefaults() VIPConfig {
	if c.Backends <= 0 {
		c.Backends = 3
	}
	if c.Streams <= 0 {
		c.Streams = 300
	}
	if c.Size <= 0 {
		c.Size = 2 * c.Backends
	}
	return c
}

// VIPResult is what RunVIP measured.
type VIPResult struct {
	Config   VIPConfig // with the defaults filled in
	Proxy    string    // the proxy, described
	Backends []string  // the backends' names, in Streams order
	Clients  []VIPClient
}

// VIPClient is one client's run of RunVIP.
type VIPClient struct {
	Name    string
	Policy  pool.Policy // the pool's policy; unset for the grpc.ClientConn
	Pool    bool        // a grpcpool, not a grpc.ClientConn
	Conns   int         // TCP connections the client makes to the proxy
	Streams []int64     // streams open on each backend, counted on the servers
}

// MaxOverMean is the most streams on one backend over the mean: 1.00 is
// an even spread, the number of backends all on one.
func (c VIPClient) MaxOverMean() float64 { return backend.MaxOverMean(c.Streams) }

// Table renders the result.
func (r *VIPResult) Table() *Table {
	t := &Table{
		Title:  fmt.Sprintf("VIP: %d long-lived streams through an L4 proxy (%s) over %d backends", r.Config.Streams, r.Proxy, r.Config.Backends),
		Header: []string{"client", "TCP conns", "streams per backend (" + strings.Join(r.Backends, " / ") + ")", "max/mean"},
	}
	for _, c := range r.Clients {
		t.AddRow(c.Name, c.Conns, counts(c.Streams), c.MaxOverMean())
	}
	t.Notes = append(t.Notes,
		"streams counted on the servers while all were open; max/mean 1.00 is an even spread, "+fmt.Sprint(r.Config.Backends)+".00 is all on one backend",
		"the proxy balances TCP connections, never the HTTP/2 streams inside them: one ClientConn is one connection, so one backend")
	return t
}

// Summary says in one line what the run showed.
func (r *VIPResult) Summary() string {
	parts := make([]string, 0, len(r.Clients))
	for _, c := range r.Clients {
		name := "ClientConn"
		if c.Pool {
			name = policyName(c.Policy)
			if len(parts) == 1 {
				name = "pool " + name
			}
		}
		parts = append(parts, fmt.Sprintf("%s %.2f", name, c.MaxOverMean()))
	}
	return "vip: streams max/mean behind an L4 proxy: " + joinArrow(parts)
}

// joinArrow joins a baseline and what the pool does instead: "a → b, c".
func joinArrow(parts []string) string {
	if len(parts) < 2 {
		return strings.Join(parts, "")
	}
	return parts[0] + " → " + strings.Join(parts[1:], ", ")
}

// RunVIP puts an L4 (TCP, round-robin per connection) proxy in front of
// the backends, as a Kubernetes ClusterIP or a cloud TCP load balancer is,
// and opens long-lived Bidi streams through it: first from one plain
// grpc.ClientConn, then from pools of cfg.Size connections. The streams per
// backend are counted on the servers. One ClientConn is one TCP connection,
// so all its streams land on one backend (max/mean = number of backends);
// the pool's connections are spread by the proxy, and its streams over its
// connections.
func RunVIP(ctx context.Context, cfg VIPConfig, progress Progress) (*VIPResult, error) {
	cfg = cfg.WithDefaults()
	f, err := startFleet(cfg.Backends)
	if err != nil {
		return nil, err
	}
	defer f.stop()
	progress.say("starting the L4 proxy")
	px, err := startL4(ctx, cfg.Proxy, f.addrs())
	if err != nil {
		return nil, err
	}
	defer px.Close()

	res := &VIPResult{Config: cfg, Proxy: px.Name(), Backends: f.names()}
	type client struct {
		VIPClient
		open func() (grpc.ClientConnInterface, func() error, error)
	}
	clients := []client{
		{VIPClient{Name: "grpc.ClientConn", Conns: 1}, func() (grpc.ClientConnInterface, func() error, error) {
			cc, err := grpc.NewClient("passthrough:///"+px.Addr(), insecureCreds)
			if err != nil {
				return nil, nil, err
			}
			return cc, cc.Close, nil
		}},
	}
	pols := []pool.Policy{pool.RoundRobin, pool.LeastActive}
	if cfg.Policy != nil {
		pols = []pool.Policy{*cfg.Policy}
	}
	for _, pol := range pols {
		clients = append(clients, client{
			VIPClient{Name: fmt.Sprintf("pool WithSize(%d) %s", cfg.Size, policyName(pol)), Policy: pol, Pool: true, Conns: cfg.Size},
			func() (grpc.ClientConnInterface, func() error, error) {
				opts := append([]pool.Option{pool.WithSize(cfg.Size), pool.WithPolicy(pol), pool.WithDialOptions(insecureCreds)}, cfg.PoolOptions...)
				if cfg.Logger != nil {
					opts = append(opts, pool.WithLogger(cfg.Logger))
				}
				p, err := pool.New(px.Addr(), opts...)
				if err != nil {
					return nil, nil, err
				}
				if err := waitAllReady(ctx, p, 1, cfg.Size); err != nil {
					_ = p.Close()
					return nil, nil, err
				}
				return p, p.Close, nil
			},
		})
	}
	for _, c := range clients {
		progress.say("%s: opening %d streams through %s", c.Name, cfg.Streams, px.Name())
		cc, closeCC, err := c.open()
		if err != nil {
			return nil, fmt.Errorf("scenario: vip: %s: %w", c.Name, err)
		}
		got, err := measureStreams(ctx, f, cc, cfg.Streams)
		_ = closeCC()
		if err != nil {
			return nil, fmt.Errorf("scenario: vip: %s: %w", c.Name, err)
		}
		c.Streams = got
		res.Clients = append(res.Clients, c.VIPClient)
	}
	return res, nil
}

// measureStreams opens n streams on cc, waits until the servers count
// them, and returns the streams per backend; it ends them before returning.
func measureStreams(ctx context.Context, f *fleet, cc grpc.ClientConnInterface, n int) ([]int64, error) {
	ss, err := openStreams(ctx, cc, n)
	if err != nil {
		return nil, err
	}
	err = f.waitActive(ctx, int64(n), 10*time.Second)
	got := f.active()
	if failed := endStreams(ss); failed > 0 && err == nil {
		err = fmt.Errorf("%d streams failed to end cleanly", failed)
	}
	if werr := f.waitActive(ctx, 0, 10*time.Second); err == nil {
		err = werr
	}
	return got, err
}

// l4 is a connection-level proxy in front of backends.
type l4 interface {
	Addr() string
	Name() string
	Close() error
}

// startL4 starts the proxy kind asks for ("haproxy", "internal", or ""
// for haproxy when it is installed).
func startL4(ctx context.Context, kind string, backends []string) (l4, error) {
	switch kind {
	case "", "haproxy":
		bin, err := exec.LookPath("haproxy")
		if err == nil {
			h, err := haproxy.Start(ctx, bin, backends)
			if err != nil {
				return nil, fmt.Errorf("scenario: %w", err)
			}
			return haproxyVIP{h}, nil
		}
		if kind == "haproxy" {
			return nil, fmt.Errorf("scenario: haproxy: %w", err)
		}
		fallthrough
	case "internal":
		p, err := tcpproxy.New(backends...)
		if err != nil {
			return nil, err
		}
		return internalProxy{p}, nil
	}
	return nil, fmt.Errorf("scenario: unknown proxy %q (want haproxy or internal)", kind)
}

type internalProxy struct{ *tcpproxy.Proxy }

func (internalProxy) Name() string { return "internal/tcpproxy, round-robin per connection" }

// haproxyVIP is an haproxy in mode tcp, balance roundrobin.
type haproxyVIP struct{ *haproxy.Proxy }

func (h haproxyVIP) Addr() string { return h.Proxy.Addr }
func (haproxyVIP) Name() string   { return "haproxy, mode tcp, balance roundrobin" }
