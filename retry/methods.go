package retry

import (
	"fmt"
	"strings"
)

// validateMethods checks a Methods or Idempotent list: every name is a
// full method name ("/pkg.Service/Method") or a service ("/pkg.Service/"),
// and none is listed twice.
func validateMethods(field string, names []string) []error {
	var errs []error
	seen := make(map[string]bool, len(names))
	for _, n := range names {
		if err := checkMethodName(n); err != nil {
			errs = append(errs, fmt.Errorf("%w: %s: %v", ErrInvalidPolicy, field, err))
			continue
		}
		if seen[n] {
			errs = append(errs, fmt.Errorf("%w: %s: %q is listed twice", ErrInvalidPolicy, field, n))
		}
		seen[n] = true
	}
	return errs
}

// checkMethodName reports why name is neither "/service/method" nor
// "/service/".
func checkMethodName(name string) error {
	svc, _, ok := splitMethod(name)
	if !ok || svc == "" || strings.ContainsAny(name, " \t\r\n") {
		return fmt.Errorf("%q is not a full method name (\"/pkg.Service/Method\") or a service (\"/pkg.Service/\")", name)
	}
	return nil
}

// splitMethod splits "/service/method" into its service and method parts
// ("/service/" gives an empty method). ok is false if name does not start
// with a slash or has not exactly two of them. It does not allocate.
func splitMethod(name string) (service, method string, ok bool) {
	if len(name) < 2 || name[0] != '/' {
		return "", "", false
	}
	i := strings.IndexByte(name[1:], '/')
	if i < 0 {
		return "", "", false
	}
	service, method = name[1:1+i], name[2+i:]
	if strings.IndexByte(method, '/') >= 0 {
		return "", "", false
	}
	return service, method, true
}

// servicePrefix returns "/service/" of a full method name, a substring of
// it (no allocation), or "" if name is malformed.
func servicePrefix(name string) string {
	svc, _, ok := splitMethod(name)
	if !ok {
		return ""
	}
	return name[:len(svc)+2]
}
