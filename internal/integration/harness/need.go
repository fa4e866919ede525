package harness

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// aptPackage names the Debian package that ships each binary Need knows of.
var aptPackage = map[string]string{
	"dnsmasq": "dnsmasq",
	"haproxy": "haproxy",
	"etcd":    "etcd-server",
}

// sbinDirs are searched after PATH: daemons live there on Debian and a
// non-root PATH often lacks them.
var sbinDirs = []string{"/usr/sbin", "/sbin", "/usr/local/sbin"}

// Need returns the path of the binary name. When it is missing, the test
// fails if the environment variable CI is set (CI must run every scenario)
// and is skipped otherwise, with the command that installs it.
func Need(t testing.TB, name string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	for _, dir := range sbinDirs {
		p := filepath.Join(dir, name)
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
			return p
		}
	}
	pkg := aptPackage[name]
	if pkg == "" {
		pkg = name
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("%s not installed (CI is set, so this fails instead of skipping); apt-get install -y %s", name, pkg)
		return ""
	}
	t.Skipf("%s not installed; apt-get install -y %s", name, pkg)
	return ""
}
