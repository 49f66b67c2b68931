package conf

import (
	"fmt"
	"net"
	"net/url"
	"strings"
)

// CheckURL accepts an absolute https URL to call out to (a vendor's API, the
// Access certs, Cloudflare's API), and plain http only to a loopback host.
// Everything postured sends or fetches there is a credential or decides a
// score: a bearer token, a client secret, the keys that sign Access tokens.
// Over http anyone on the path reads or rewrites it. Loopback stays allowed
// for a local mock or an egress proxy on the same host.
func CheckURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("must be an absolute https URL, got %q", raw)
	}
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return fmt.Errorf("must not carry credentials, a query or a fragment, got %q", u.Redacted())
	}
	if u.Scheme == "http" && !IsLoopbackHost(u.Hostname()) {
		return fmt.Errorf("must use https: plain http is allowed only to a loopback host (localhost, 127.0.0.1, ::1), got %q", raw)
	}
	return nil
}

// IsLoopbackHost reports whether host (no port) is localhost or a loopback
// IP literal. Other names are not resolved: what a name resolves to can
// change after the check.
func IsLoopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
