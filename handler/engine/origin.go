package engine

import (
	"fmt"
	"net/url"
	"strings"
)

// OriginPolicy decides which browser origins may use the endpoints.
//
// A request is allowed when it has no Origin header (non-browser clients
// send none), when its origin is the same as the request's host (the scheme
// is not compared: behind a TLS-terminating proxy the server cannot know it),
// or when the origin matches one of the patterns:
//
//   - "*" allows every origin;
//   - "https://app.example.com" (scheme, host and optional port) allows
//     exactly that origin;
//   - "https://*.example.com" allows every subdomain of example.com over
//     https (not example.com itself; list it too if wanted).
//
// Comparison is case-insensitive. The zero policy allows same-origin and
// Origin-less requests only.
type OriginPolicy struct {
	any       bool
	exact     map[string]struct{}
	wildcards []string // "scheme://.suffix" forms: scheme + "://" + "." + domain
}

// NewOriginPolicy parses patterns. It refuses patterns that are not "*" and
// not of the form scheme://host[:port] with an optional leading "*." label.
func NewOriginPolicy(patterns []string) (*OriginPolicy, error) {
	op := &OriginPolicy{exact: make(map[string]struct{})}
	for _, raw := range patterns {
		p := strings.ToLower(strings.TrimSpace(raw))
		if p == "*" {
			op.any = true
			continue
		}
		if p == "null" {
			op.exact[p] = struct{}{}
			continue
		}
		scheme, host, ok := strings.Cut(p, "://")
		if !ok || scheme == "" || host == "" || strings.ContainsAny(host, "/?#@ ") {
			return nil, fmt.Errorf("ssebridge: allowed origin %q: want \"*\" or scheme://host[:port]", raw)
		}
		if rest, ok := strings.CutPrefix(host, "*."); ok {
			if rest == "" || strings.Contains(rest, "*") {
				return nil, fmt.Errorf("ssebridge: allowed origin %q: bad wildcard", raw)
			}
			op.wildcards = append(op.wildcards, scheme+"://."+rest)
			continue
		}
		if strings.Contains(host, "*") {
			return nil, fmt.Errorf("ssebridge: allowed origin %q: '*' is only allowed as the first label", raw)
		}
		op.exact[p] = struct{}{}
	}
	return op, nil
}

// Allowed reports whether a request with the given Origin header value and
// Host may proceed.
func (op *OriginPolicy) Allowed(origin, host string) bool {
	_, ok := op.Check(origin, host)
	return ok
}

// Check decides whether a request with the given Origin header value and
// Host may proceed, and returns what to tell the browser about it.
func (op *OriginPolicy) Check(origin, host string) (CORS, bool) {
	if origin == "" {
		return CORS{}, true
	}
	o := strings.ToLower(origin)
	if u, err := url.Parse(o); err == nil && u.Host != "" && strings.EqualFold(u.Host, host) {
		return CORS{Origin: origin}, true
	}
	if op != nil {
		if _, ok := op.exact[o]; ok {
			return CORS{Origin: origin}, true
		}
		if op.matchWildcard(o) {
			return CORS{Origin: origin}, true
		}
		if op.any {
			return CORS{Origin: origin, Public: true}, true
		}
	}
	return CORS{}, false
}

func (op *OriginPolicy) matchWildcard(o string) bool {
	scheme, h, ok := strings.Cut(o, "://")
	if !ok || !validHostPort(h) {
		return false
	}
	for _, w := range op.wildcards {
		ws, suffix, _ := strings.Cut(w, "://")
		// suffix is ".example.com"; the origin host must end with it and
		// have at least one more label in front.
		if ws == scheme && len(h) > len(suffix) && strings.HasSuffix(h, suffix) {
			return true
		}
	}
	return false
}

// CORS is what an allowed request's response tells the browser.
type CORS struct {
	// Origin is the request's Origin header ("" when it had none).
	Origin string
	// Public is set when the origin is allowed only through "*": the
	// response is readable by any page, but without credentials (cookies
	// of the user are not sent along, so no page can act as the user).
	Public bool
}

// Set sets the headers that let the page read the response. Explicitly
// allowed origins (and the server's own) get credentialed access; origins
// allowed only by "*" get "Access-Control-Allow-Origin: *", without
// credentials. expose lists response headers the page may read.
func (c CORS) Set(x Exchange, expose string) {
	if c.Origin == "" {
		return
	}
	if c.Public {
		x.SetHeader("Access-Control-Allow-Origin", "*")
	} else {
		x.SetHeader("Access-Control-Allow-Origin", c.Origin)
		x.SetHeader("Access-Control-Allow-Credentials", "true")
	}
	x.SetHeader("Vary", "Origin")
	if expose != "" {
		x.SetHeader("Access-Control-Expose-Headers", expose)
	}
}

// Preflight answers a CORS preflight (OPTIONS) request with 204, allowing
// methods and the headers the browser asked for.
func (c CORS) Preflight(x Exchange, methods string) {
	c.Set(x, "")
	x.SetHeader("Access-Control-Allow-Methods", methods)
	if h := x.Header("Access-Control-Request-Headers"); h != "" {
		x.SetHeader("Access-Control-Allow-Headers", h)
	}
	x.SetHeader("Access-Control-Max-Age", "300")
	x.WriteHeader(204)
}

// validHostPort reports whether s is a DNS host name (letters, digits,
// hyphens, non-empty dot-separated labels) with an optional numeric port:
// what a browser puts in the Origin of a page served under a domain.
func validHostPort(s string) bool {
	host, port, hasPort := strings.Cut(s, ":")
	if hasPort {
		if port == "" || len(port) > 5 {
			return false
		}
		for i := 0; i < len(port); i++ {
			if port[i] < '0' || port[i] > '9' {
				return false
			}
		}
	}
	if host == "" || len(host) > 253 {
		return false
	}
	for label := range strings.SplitSeq(host, ".") {
		if label == "" || len(label) > 63 {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return true
}

// WriteError answers a request with status and a plain-text body.
func WriteError(x Exchange, status int, body string) {
	x.SetHeader("Content-Type", "text/plain; charset=utf-8")
	x.SetHeader("X-Content-Type-Options", "nosniff")
	x.SetHeader("Cache-Control", "no-store")
	x.WriteHeader(status)
	if body != "" {
		_, _ = x.Write(stringBytes(body))
	}
}
