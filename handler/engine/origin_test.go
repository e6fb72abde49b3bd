package engine_test

import (
	"net"
	"net/url"
	"strings"
	"testing"

	"github.com/ssebridge/ssebridge/handler/engine"
)

func mustPolicy(t *testing.T, patterns ...string) *engine.OriginPolicy {
	t.Helper()
	op, err := engine.NewOriginPolicy(patterns)
	if err != nil {
		t.Fatalf("NewOriginPolicy(%q): %v", patterns, err)
	}
	return op
}

func TestOriginPolicyDefault(t *testing.T) {
	t.Parallel()
	var nilPolicy *engine.OriginPolicy
	for _, op := range []*engine.OriginPolicy{nilPolicy, mustPolicy(t), mustPolicy(t, []string{}...)} {
		cases := []struct {
			origin, host string
			ok           bool
		}{
			{"", "example.com", true},
			{"", "", true},
			{"https://example.com", "example.com", true},
			{"http://example.com", "example.com", true}, // scheme not compared
			{"HTTPS://EXAMPLE.COM", "example.com", true},
			{"https://example.com", "EXAMPLE.COM", true},
			{"https://example.com:8443", "example.com:8443", true},
			{"https://example.com:8443", "example.com", false},
			{"https://example.com", "example.com:8443", false},
			{"https://evil.com", "example.com", false},
			{"https://example.com.evil.com", "example.com", false},
			{"https://sub.example.com", "example.com", false},
			{"null", "example.com", false},
			{"null", "", false},
			{"example.com", "example.com", false},
			{"https://", "", false},
		}
		for _, c := range cases {
			if got := op.Allowed(c.origin, c.host); got != c.ok {
				t.Errorf("%v: Allowed(%q, %q) = %v, want %v", op, c.origin, c.host, got, c.ok)
			}
		}
	}
}

func TestOriginPolicyPatterns(t *testing.T) {
	t.Parallel()
	op := mustPolicy(t,
		"https://app.example.com",
		" HTTP://Localhost:3000 ",
		"https://*.example.org",
		"http://*.dev.test:8080",
		"null",
	)
	const host = "server.internal"
	cases := []struct {
		origin string
		ok     bool
	}{
		{"https://app.example.com", true},
		{"HTTPS://App.Example.Com", true},
		{"http://app.example.com", false},
		{"https://app.example.com:443", false},
		{"https://app.example.com/", false},
		{"https://app.example.com.evil.com", false},
		{"https://xapp.example.com", false},
		{"http://localhost:3000", true},
		{"http://localhost", false},
		{"http://localhost:30000", false},
		{"null", true},
		{"NULL", true},

		// Wildcard: subdomains at any depth, same scheme, not the apex.
		{"https://a.example.org", true},
		{"https://a.b.c.example.org", true},
		{"https://A.EXAMPLE.ORG", true},
		{"https://example.org", false},
		{"https://.example.org", false},
		{"http://a.example.org", false},
		{"wss://a.example.org", false},
		{"https://aexample.org", false},
		{"https://a.example.org.evil.com", false},
		{"https://a.example.org:8443", false},
		{"https://evil.com?.example.org", false},
		{"https://evil.com/.example.org", false},
		{"https://evil.com#.example.org", false},
		{"https://evil.com@a.example.org", false},
		{"https://evil.com\\.example.org", false},
		{"https://evil.com .example.org", false},
		{"https://evil.com/x?.example.org", false},
		{"https//a.example.org", false},
		{"a.example.org", false},

		{"http://a.dev.test:8080", true},
		{"http://a.dev.test", false},
		{"http://a.dev.test:80", false},

		{"https://evil.com", false},
		{"", true},
	}
	for _, c := range cases {
		if got := op.Allowed(c.origin, host); got != c.ok {
			t.Errorf("Allowed(%q) = %v, want %v", c.origin, got, c.ok)
		}
	}
}

func TestOriginPolicyAny(t *testing.T) {
	t.Parallel()
	op := mustPolicy(t, "https://app.example.com", "*")
	for _, o := range []string{"https://evil.com", "null", "garbage", "http://x:1"} {
		if !op.Allowed(o, "example.com") {
			t.Errorf("\"*\" refused %q", o)
		}
	}
}

func TestNewOriginPolicyRejectsMalformed(t *testing.T) {
	t.Parallel()
	for _, p := range []string{
		"",
		" ",
		"example.com",
		"*.example.com",
		"https://",
		"://example.com",
		"https://example.com/",
		"https://example.com/path",
		"https://example.com?x",
		"https://example.com#x",
		"https://user@example.com",
		"https://exa mple.com",
		"https://*",
		"https://*.",
		"https://**.example.com",
		"https://*.*.example.com",
		"https://a.*.example.com",
		"https://*example.com",
		"https://example.*",
		"**",
	} {
		if op, err := engine.NewOriginPolicy([]string{"https://ok.example.com", p}); err == nil {
			t.Errorf("NewOriginPolicy accepted %q (%+v)", p, op)
		}
	}
}

// A wildcard stands for subdomains: hosts made of DNS labels. Browsers only
// send well-formed origins, so accepting these is not exploitable, but the
// policy should not call them subdomains (and it echoes them back in
// Access-Control-Allow-Origin).
func TestOriginWildcardRefusesMalformedOrigins(t *testing.T) {
	t.Parallel()
	op := mustPolicy(t, "https://*.example.org")
	for _, o := range []string{
		"https://evil.com:.example.org",
		"https://a:1.example.org",
		"https://a%.example.org",
		"https://a%2f.example.org",
		"https://..example.org",
		"https://a..example.org",
		"https://a,b.example.org",
		"https://a\t.example.org",
		"https://a<b>.example.org",
		"https://[::1].example.org",
	} {
		if op.Allowed(o, "server") {
			t.Errorf("Allowed(%q) = true", o)
		}
	}
}

// wildcardSuffix returns the scheme and the ".domain[:port]" a valid
// wildcard pattern stands for.
func wildcardSuffix(pattern string) (scheme, suffix string, ok bool) {
	p := strings.ToLower(strings.TrimSpace(pattern))
	scheme, host, found := strings.Cut(p, "://")
	if !found {
		return "", "", false
	}
	rest, found := strings.CutPrefix(host, "*.")
	if !found {
		return "", "", false
	}
	return scheme, "." + rest, true
}

// malformedOrigin reports whether origin is not something a browser can
// send: a scheme, "://", and a host with an optional numeric port, nothing
// else.
func malformedOrigin(origin string) bool {
	u, err := url.Parse(origin)
	if err != nil || u.Scheme == "" || u.Opaque != "" || u.User != nil || u.Path != "" ||
		u.RawQuery != "" || u.Fragment != "" || u.ForceQuery || u.Host == "" {
		return true
	}
	if strings.Contains(u.Host, ":") {
		if _, port, err := net.SplitHostPort(u.Host); err != nil || port == "" {
			return true
		}
	}
	return u.Hostname() == "" || strings.HasPrefix(u.Hostname(), ".") || strings.Contains(u.Hostname(), "..")
}

func FuzzOriginAllowed(f *testing.F) {
	for _, s := range [][3]string{
		{"https://*.example.com", "https://a.example.com", "server"},
		{"https://*.example.com", "https://example.com", "server"},
		{"https://*.example.com", "https://evil.com?.example.com", "server"},
		{"https://*.example.com:8443", "https://a.example.com:8443", "server"},
		{"https://*.example.com", "https://a:b.example.com", "server"},
		{"https://app.example.com", "https://app.example.com", "server"},
		{"*", "anything", ""},
		{"null", "null", "x"},
		{"http://*.a", "http://x.a", "x.a"},
	} {
		f.Add(s[0], s[1], s[2])
	}
	f.Fuzz(func(t *testing.T, pattern, origin, host string) {
		def := mustPolicy(t)
		defAllowed := def.Allowed(origin, host) // must not panic either
		op, err := engine.NewOriginPolicy([]string{pattern})
		if err != nil {
			return
		}
		allowed := op.Allowed(origin, host)
		if defAllowed && !allowed {
			t.Fatalf("pattern %q refuses %q (host %q) that the default policy allows", pattern, origin, host)
		}
		if origin == "" && !allowed {
			t.Fatalf("pattern %q refuses a request without Origin", pattern)
		}
		if op.Allowed(origin, host) != op.Allowed(strings.ToUpper(origin), host) {
			t.Fatalf("pattern %q: %q and its upper case differ", pattern, origin)
		}
		if !allowed || defAllowed {
			return
		}
		// Allowed because of the pattern: check that it really matches.
		p := strings.ToLower(strings.TrimSpace(pattern))
		o := strings.ToLower(origin)
		if p == "*" || p == o {
			return
		}
		scheme, suffix, ok := wildcardSuffix(pattern)
		if !ok {
			t.Fatalf("pattern %q (not a wildcard) allows %q", pattern, origin)
		}
		if malformedOrigin(o) {
			t.Fatalf("wildcard %q allows the malformed origin %q", pattern, origin)
		}
		u, _ := url.Parse(o)
		if u.Scheme != scheme {
			t.Fatalf("pattern %q allows %q of another scheme", pattern, origin)
		}
		if !strings.HasSuffix(u.Host, suffix) || len(u.Host) <= len(suffix) {
			t.Fatalf("pattern %q allows %q whose host %q does not end in %q", pattern, origin, u.Host, suffix)
		}
	})
}
