package centrifugo_test

import (
	"bytes"
	"context"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/ssebridge/ssebridge/handler"
	"github.com/ssebridge/ssebridge/handler/centrifugo"
)

var uuidRE = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

func TestSSEConnect(t *testing.T) {
	s := newServer(t, handler.Config{}, centrifugo.Config{})
	c := s.open(`{"connect":{"name":"js","version":"5.8.0"},"id":1}`)
	h := c.resp.Header
	for k, want := range map[string]string{
		"Content-Type":      "text/event-stream; charset=utf-8",
		"Cache-Control":     "private, no-cache, no-store, must-revalidate, max-age=0",
		"Pragma":            "no-cache",
		"Expire":            "0",
		"X-Accel-Buffering": "no",
	} {
		if got := h.Get(k); got != want {
			t.Errorf("%s: %q, want %q", k, got, want)
		}
	}
	if string(c.first) != "\r\n" {
		t.Errorf("first bytes %q, want \\r\\n", c.first)
	}
	r := c.connect
	if !uuidRE.MatchString(r.Client) {
		t.Errorf("client %q, want a UUID", r.Client)
	}
	if r.Session == "" || r.Session == r.Client {
		t.Errorf("session %q must be set and differ from the client id %q", r.Session, r.Client)
	}
	if r.Node != s.h.NodeID() || !r.Pong || r.Ping != 25 || r.Version != centrifugo.DefaultVersion || r.Expires {
		t.Errorf("connect result %+v", r)
	}
	if p, ok := s.h.Peer(r.Session); !ok || p.ID() != r.Session {
		t.Errorf("no peer for session %q", r.Session)
	}
	// POST with the commands as the body works the same.
	pc := s.openRaw("POST", "/connection/sse", []byte(`{"connect":{},"id":7}`))
	if rep := pc.reply(); rep.ID != 7 || rep.Connect == nil || rep.Connect.Session == r.Session {
		t.Fatalf("POST connect reply %+v", rep)
	}
}

func TestUniSSEConnect(t *testing.T) {
	s := newServer(t, handler.Config{}, centrifugo.Config{})
	for _, req := range []string{"", "null", `{"name":"curl","data":{"a":1},"newer_field":[1,2]}`} {
		c := s.openUni(req)
		if string(c.first) != "\r\n" || c.resp.Header.Get("Content-Type") != "text/event-stream; charset=utf-8" {
			t.Errorf("cf_connect %q: first bytes %q, headers %v", req, c.first, c.resp.Header)
		}
		r := c.connect
		if !uuidRE.MatchString(r.Client) || r.Session == "" || r.Node != "" || r.Pong || r.Ping != 25 {
			t.Errorf("cf_connect %q: connect push %+v: want client, session, ping; no node, no pong", req, r)
		}
	}
	pc := s.openRaw("POST", "/connection/uni_sse", []byte(`{"name":"curl"}`))
	if p := pc.push(); p.Connect == nil || p.Connect.Session == "" {
		t.Fatalf("POST uni connect push %+v", p)
	}
}

// TestStreamBadRequests: every refusal of the stream endpoints, before
// any stream opens.
func TestStreamBadRequests(t *testing.T) {
	s := newServer(t, handler.Config{}, centrifugo.Config{AllowedOrigins: []string{"https://app.example"}})
	q := func(v string) string { return "?cf_connect=" + url.QueryEscape(v) }
	big := bytes.Repeat([]byte(" "), centrifugo.DefaultMaxRequestBodySize+1)
	many := strings.Repeat(`{"ping":{},"id":2}`+"\n", 200)
	cases := []struct {
		name, method, path string
		body               []byte
		hdr                []string
		status             int
	}{
		{"no cf_connect", "GET", "/connection/sse", nil, nil, 400},
		{"empty cf_connect", "GET", "/connection/sse" + q(""), nil, nil, 400},
		{"not JSON", "GET", "/connection/sse" + q("{"), nil, nil, 400},
		{"not an object", "GET", "/connection/sse" + q(`[1]`), nil, nil, 400},
		{"trailing data", "GET", "/connection/sse" + q(`{"connect":{},"id":1} x`), nil, nil, 400},
		{"first not connect", "GET", "/connection/sse" + q(`{"subscribe":{"channel":"a"},"id":1}`), nil, nil, 400},
		{"connect without id", "GET", "/connection/sse" + q(`{"connect":{}}`), nil, nil, 400},
		{"bare connect request", "GET", "/connection/sse" + q(`{"token":"x"}`), nil, nil, 400},
		{"too many commands", "GET", "/connection/sse" + q(`{"connect":{},"id":1}`+"\n"+many), nil, nil, 400},
		{"bad data in connect", "POST", "/connection/sse", []byte(`{"connect":{"data":{"a":}},"id":1}`), nil, 400},
		{"POST over the limit", "POST", "/connection/sse", big, nil, 413},
		{"PUT", "PUT", "/connection/sse", nil, nil, 405},
		{"DELETE uni", "DELETE", "/connection/uni_sse", nil, nil, 405},
		{"uni not JSON", "GET", "/connection/uni_sse" + q("nope"), nil, nil, 400},
		{"uni a command", "GET", "/connection/uni_sse" + q(`[{"connect":{}}]`), nil, nil, 400},
		{"uni POST malformed", "POST", "/connection/uni_sse", []byte(`{"subs":1}`), nil, 400},
		{"uni POST over the limit", "POST", "/connection/uni_sse", big, nil, 413},
		{"origin not allowed", "GET", "/connection/sse" + q(`{"connect":{},"id":1}`), nil, []string{"Origin", "https://evil.example"}, 403},
		{"uni origin not allowed", "GET", "/connection/uni_sse", nil, []string{"Origin", "https://evil.example"}, 403},
	}
	for _, tc := range cases {
		resp, body := s.do(tc.method, tc.path, tc.body, tc.hdr...)
		if resp.StatusCode != tc.status {
			t.Errorf("%s: status %d %q, want %d", tc.name, resp.StatusCode, body, tc.status)
		}
		if tc.status < 300 || body == "" {
			t.Errorf("%s: want an error message, got %q", tc.name, body)
		}
	}
	if n := countPeers(s.h); n != 0 {
		t.Errorf("%d peers after refused requests, want 0", n)
	}
	// An allowed origin gets CORS headers on its stream.
	c := s.openRaw("GET", "/connection/sse"+q(`{"connect":{},"id":1}`), nil, "Origin", "https://app.example")
	if got := c.resp.Header.Get("Access-Control-Allow-Origin"); got != "https://app.example" {
		t.Errorf("Access-Control-Allow-Origin %q", got)
	}
}

func countPeers(h *handler.Handler) int {
	n := 0
	for range h.Peers() {
		n++
	}
	return n
}

// TestEmulationStatuses: every answer of /emulation.
func TestEmulationStatuses(t *testing.T) {
	s := newServer(t, handler.Config{}, centrifugo.Config{AllowedOrigins: []string{"https://app.example"}})
	c := s.open(`{"connect":{},"id":1}`)
	good := c.envelope(`{"rpc":{"method":"x"},"id":2}`)
	big := append(c.envelope(), bytes.Repeat([]byte(" "), centrifugo.DefaultMaxRequestBodySize)...)
	cases := []struct {
		name   string
		method string
		body   []byte
		hdr    []string
		status int
	}{
		{"not JSON", "POST", []byte("nope"), nil, 400},
		{"node a number", "POST", []byte(`{"node":123}`), nil, 400},
		{"data an object", "POST", []byte(`{"session":"` + c.connect.Session + `","data":{"rpc":{}}}`), nil, 400},
		{"two objects", "POST", []byte(`{} {}`), nil, 400},
		{"long node", "POST", []byte(`{"session":"` + c.connect.Session + `","node":"` + strings.Repeat("n", 300) + `","data":"{}"}`), nil, 400},
		{"unknown session", "POST", []byte(`{"session":"AAAAAAAAAAAAAAAAAAAAAA","node":"x","data":"{}"}`), nil, 404},
		{"malformed session", "POST", []byte(`{"session":"../../x","node":"x","data":"{}"}`), nil, 404},
		{"no session", "POST", []byte(`{"data":"{}"}`), nil, 404},
		{"over the limit", "POST", big, nil, 413},
		{"protobuf", "POST", good, []string{"Content-Type", "application/octet-stream"}, 415},
		{"origin not allowed", "POST", good, []string{"Origin", "https://evil.example"}, 403},
		{"GET", "GET", nil, nil, 405},
		{"PUT", "PUT", good, nil, 405},
		{"empty data", "POST", c.envelope(), nil, 204},
		{"good", "POST", good, nil, 204},
	}
	for _, tc := range cases {
		resp, body := s.do(tc.method, "/emulation", tc.body, tc.hdr...)
		if resp.StatusCode != tc.status {
			t.Errorf("%s: status %d %q, want %d", tc.name, resp.StatusCode, body, tc.status)
		}
	}
	// The good one was answered on the stream: rpc without a hook.
	if r := c.reply(); r.ID != 2 || errCode(r) != 104 {
		t.Fatalf("reply %+v, want id 2 error 104", r)
	}
	resp, _ := s.do("OPTIONS", "/emulation", nil, "Origin", "https://app.example", "Access-Control-Request-Method", "POST", "Access-Control-Request-Headers", "content-type")
	if resp.StatusCode != 204 || resp.Header.Get("Access-Control-Max-Age") != "300" ||
		resp.Header.Get("Access-Control-Allow-Methods") != "POST, OPTIONS" ||
		resp.Header.Get("Access-Control-Allow-Origin") != "https://app.example" ||
		resp.Header.Get("Access-Control-Allow-Headers") != "content-type" {
		t.Errorf("preflight: %d %v", resp.StatusCode, resp.Header)
	}
}

// TestDisabledTransports: a disabled transport's paths are the native
// protocol's.
func TestDisabledTransports(t *testing.T) {
	s := newServer(t, handler.Config{}, centrifugo.Config{DisableSSE: true, DisableUniSSE: true})
	for _, p := range []string{"/connection/sse?cf_connect=x", "/emulation", "/connection/uni_sse"} {
		resp, _ := s.do("GET", p, nil)
		if resp.StatusCode != http.StatusNotAcceptable { // the native protocol wants Accept: text/event-stream
			t.Errorf("%s: status %d, want the native protocol's 406", p, resp.StatusCode)
		}
	}
}

func TestBadConfig(t *testing.T) {
	for _, cf := range []centrifugo.Config{
		{PingInterval: 5e9, PongTimeout: 6e9},
		{PingInterval: 30e9, PresenceTTL: 20e9},
		{AllowedOrigins: []string{"https://*.*.example"}},
	} {
		if _, err := handler.New(handler.Config{Centrifugo: &cf}); err == nil {
			t.Errorf("config %+v accepted", cf)
		}
	}
}

// TestUniSubs: a unidirectional client gets the channels it asks for in
// cf_connect subs where it may subscribe, with recovery, and their
// publications as bare pushes.
func TestUniSubs(t *testing.T) {
	s := newServer(t, handler.Config{}, centrifugo.Config{Channels: centrifugo.ChannelOptions{AllowRecovery: true}, Hooks: centrifugo.Hooks{
		Subscribe: func(_ *centrifugo.Client, e centrifugo.SubscribeEvent) (centrifugo.SubscribeReply, error) {
			if e.Channel == "secret" {
				return centrifugo.SubscribeReply{}, centrifugo.ErrorPermissionDenied
			}
			return centrifugo.SubscribeReply{}, nil
		},
	}})
	first := s.openUni(`{"subs":{"news":{"recoverable":true}}}`)
	res, ok := first.connect.Subs["news"]
	if !ok || !res.Recoverable || res.Epoch == "" {
		t.Fatalf("connect push subs %+v", first.connect.Subs)
	}
	for i := 1; i <= 3; i++ {
		if err := s.h.Centrifugo().Publish("news", []byte(`{"n":`+string(rune('0'+i))+`}`)); err != nil {
			t.Fatal(err)
		}
	}
	for i := 1; i <= 3; i++ {
		p := first.push()
		if p.Channel != "news" || p.Pub == nil || p.Pub.Offset != uint64(i) {
			t.Fatalf("push %+v, want publication %d", p, i)
		}
	}
	c := s.openUni(`{"subs":{"news":{"recover":true,"offset":1,"epoch":"` + res.Epoch + `"},"secret":{}}}`)
	got := c.connect.Subs
	if _, ok := got["secret"]; ok || len(got) != 1 {
		t.Fatalf("subs %+v: want news only", got)
	}
	if n := got["news"]; !n.Recovered || !n.WasRecovering || len(n.Publications) != 2 || n.Publications[0].Offset != 2 || n.Offset != 3 {
		t.Fatalf("recovered %+v", n)
	}
}

// TestUniConnectCodeToHTTPResponse: with the mapping, a refused
// unidirectional connect is an HTTP status before any stream.
func TestUniConnectCodeToHTTPResponse(t *testing.T) {
	cf := centrifugo.Config{
		UniSSEConnectCodeToHTTPResponse: &centrifugo.ConnectCodeToHTTPResponse{Transforms: []centrifugo.ConnectCodeTransform{
			{Code: 101, StatusCode: 401, Body: "log in first"},
			{Code: 4904, StatusCode: 404, Body: "no such thing"},
			{Code: 106, StatusCode: 429}, // the error's message
		}},
		Hooks: centrifugo.Hooks{Connecting: func(_ context.Context, e centrifugo.ConnectEvent) (centrifugo.ConnectReply, error) {
			switch string(e.Data) {
			case `"anon"`:
				return centrifugo.ConnectReply{}, centrifugo.ErrorUnauthorized
			case `"missing"`:
				return centrifugo.ConnectReply{}, &centrifugo.Disconnect{Code: 4904, Reason: "missing"}
			case `"busy"`:
				return centrifugo.ConnectReply{}, centrifugo.ErrorLimitExceeded
			case `"other"`:
				return centrifugo.ConnectReply{}, centrifugo.ErrorBadRequest
			}
			return centrifugo.ConnectReply{UserID: "u"}, nil
		}},
	}
	s := newServer(t, handler.Config{}, cf)
	for data, want := range map[string]struct {
		status int
		body   string
	}{`"anon"`: {401, "log in first"}, `"missing"`: {404, "no such thing"}, `"busy"`: {429, "limit exceeded"}, `"other"`: {500, "internal server error"}} {
		resp, body := s.do("GET", "/connection/uni_sse?cf_connect="+url.QueryEscape(`{"data":`+data+`}`), nil)
		if resp.StatusCode != want.status || body != want.body {
			t.Errorf("%s: %d %q, want %d %q", data, resp.StatusCode, body, want.status, want.body)
		}
	}
	if c := s.openUni(`{"data":"fine"}`); c.connect.Session == "" {
		t.Fatal("no session")
	}
	// The bidirectional transport is not affected.
	r := s.openRaw("GET", "/connection/sse?cf_connect="+url.QueryEscape(`{"connect":{"data":"anon"},"id":1}`), nil)
	if rep := r.reply(); errCode(rep) != 101 {
		t.Fatalf("bidirectional refusal %+v", rep)
	}
	if _, err := handler.New(handler.Config{Centrifugo: &centrifugo.Config{UniSSEConnectCodeToHTTPResponse: &centrifugo.ConnectCodeToHTTPResponse{
		Transforms: []centrifugo.ConnectCodeTransform{{Code: 1, StatusCode: 200}},
	}}}); err == nil {
		t.Fatal("a transform to status 200 was accepted")
	}
}
