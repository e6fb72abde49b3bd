package crossws_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/ssebridge/ssebridge/handler"
)

func TestOriginDefaultPolicy(t *testing.T) {
	t.Parallel()
	rec := newRecorder()
	s := newServer(t, handler.Config{Hooks: rec.hooks()})
	same := "http://" + s.host()

	// Refused origins, before any peer exists.
	for _, bad := range []string{
		"http://evil.example.com",
		"http://127.0.0.1", // same host, other port
		"http://" + s.host() + ".evil.com",
		"null",
		"garbage",
	} {
		for _, method := range []string{http.MethodGet, http.MethodPost, http.MethodOptions} {
			hdr := []string{"Origin", bad, "Accept", "text/event-stream", "Access-Control-Request-Method", "POST"}
			resp, body := s.do(method, strings.NewReader("x"), hdr...)
			if resp.StatusCode != http.StatusForbidden || body != "origin not allowed" {
				t.Errorf("%s from %q: %d %q, want 403 \"origin not allowed\"", method, bad, resp.StatusCode, body)
			}
			if got := resp.Header.Get("Access-Control-Allow-Origin"); got != "" {
				t.Errorf("%s from %q: Access-Control-Allow-Origin %q", method, bad, got)
			}
		}
	}
	if n := s.peerCount(); n != 0 {
		t.Fatalf("%d peers opened by refused origins", n)
	}

	// No Origin: allowed, no CORS headers.
	st, id := s.open()
	if got := st.resp.Header.Get("Access-Control-Allow-Origin"); got != "" {
		t.Errorf("no Origin: Access-Control-Allow-Origin %q", got)
	}

	// A refused origin cannot post to an existing peer either.
	if code, body := s.post(id, strings.NewReader("from evil"), "Origin", "http://evil.example.com"); code != http.StatusForbidden || body != "origin not allowed" {
		t.Fatalf("POST from evil origin: %d %q", code, body)
	}

	// Same origin (the scheme is not compared), any case: allowed.
	for _, o := range []string{same, strings.ToUpper(same), "https://" + s.host()} {
		st2, _ := s.open("Origin", o)
		if got := st2.resp.Header.Get("Access-Control-Allow-Origin"); got != o {
			t.Errorf("same origin %q: Access-Control-Allow-Origin %q", o, got)
		}
		if got := st2.resp.Header.Get("Access-Control-Expose-Headers"); got != "X-Crossws-Id" {
			t.Errorf("same origin %q: Access-Control-Expose-Headers %q", o, got)
		}
	}
	if code, body := s.post(id, strings.NewReader("same"), "Origin", same); code != http.StatusOK {
		t.Fatalf("same-origin POST: %d %q", code, body)
	}
	// The refused POST was never delivered: the first message is "same".
	rec.msg(t, id, "same")
	_ = st
}

func TestOriginAllowedList(t *testing.T) {
	t.Parallel()
	s := newServer(t, handler.Config{AllowedOrigins: []string{
		"https://app.example.com",
		"https://*.example.org",
		"http://localhost:3000",
		"null",
	}})
	cases := []struct {
		origin string
		ok     bool
	}{
		{"https://app.example.com", true},
		{"HTTPS://APP.EXAMPLE.COM", true},
		{"http://app.example.com", false},
		{"https://app.example.com:8443", false},
		{"https://other.example.com", false},
		{"https://app.example.com.evil.com", false},
		{"https://a.example.org", true},
		{"https://a.b.example.org", true},
		{"https://example.org", false},
		{"http://a.example.org", false},
		{"https://aexample.org", false},
		{"https://evil.com?.example.org", false},
		{"https://evil.com/.example.org", false},
		{"https://evil.com#.example.org", false},
		{"https://evil.com@a.example.org", false},
		{"https://evil.com\\.example.org", false},
		{"https://a.example.org.evil.com", false},
		{"http://localhost:3000", true},
		{"http://localhost:3001", false},
		{"null", true},
	}
	for _, c := range cases {
		st := s.get("Origin", c.origin)
		got := st.resp.StatusCode
		st.close()
		if c.ok && got != http.StatusOK || !c.ok && got != http.StatusForbidden {
			t.Errorf("GET from %q: status %d, want allowed=%v", c.origin, got, c.ok)
		}
		if c.ok && st.resp.Header.Get("Access-Control-Allow-Origin") != c.origin {
			t.Errorf("GET from %q: Access-Control-Allow-Origin %q", c.origin, st.resp.Header.Get("Access-Control-Allow-Origin"))
		}
	}
}

// "*" lets any page read the stream, but without credentials: a page on
// another site must not act as the user whose cookies the browser holds.
// Origins listed explicitly keep credentialed access.
func TestOriginAny(t *testing.T) {
	t.Parallel()
	s := newServer(t, handler.Config{AllowedOrigins: []string{"*", "https://app.test"}})
	for _, o := range []string{"https://anything.test", "null", "http://x:1"} {
		st, _ := s.open("Origin", o)
		if got := st.resp.Header.Get("Access-Control-Allow-Origin"); got != "*" {
			t.Errorf("origin %q: Access-Control-Allow-Origin %q, want *", o, got)
		}
		if got := st.resp.Header.Get("Access-Control-Allow-Credentials"); got != "" {
			t.Errorf("origin %q allowed by \"*\": Access-Control-Allow-Credentials %q, want none", o, got)
		}
		if got := st.resp.Header.Get("Vary"); got != "Origin" {
			t.Errorf("origin %q: Vary %q", o, got)
		}
	}
	st, _ := s.open("Origin", "https://app.test")
	if got := st.resp.Header.Get("Access-Control-Allow-Origin"); got != "https://app.test" {
		t.Errorf("listed origin: Access-Control-Allow-Origin %q", got)
	}
	if got := st.resp.Header.Get("Access-Control-Allow-Credentials"); got != "true" {
		t.Errorf("listed origin: Access-Control-Allow-Credentials %q, want true", got)
	}
}

func TestNewRejectsMalformedOrigins(t *testing.T) {
	t.Parallel()
	for _, bad := range []string{"example.com", "https://", "https://a.com/", "https://*", "https://a.*.com", "https://*.*.com", "https://u@a.com"} {
		if _, err := handler.New(handler.Config{AllowedOrigins: []string{bad}}); err == nil {
			t.Errorf("handler.New accepted AllowedOrigins %q", bad)
		}
	}
}
