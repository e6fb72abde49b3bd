package crossws_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/ssebridge/ssebridge/handler"
	"github.com/ssebridge/ssebridge/handler/engine"
	"github.com/ssebridge/ssebridge/internal/ssetest"
)

func TestStreamHeadersAndFirstEvents(t *testing.T) {
	t.Parallel()
	s := newServer(t, handler.Config{Hooks: handler.Hooks{
		Open: func(p *handler.Peer) {
			_ = p.SendText("one")
			_ = p.SendText("two")
			_ = p.Send(map[string]int{"n": 3})
		},
	}})
	st := s.get()
	if st.resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d, want 200", st.resp.StatusCode)
	}
	for name, want := range map[string]string{
		"Content-Type":      "text/event-stream",
		"Cache-Control":     "no-cache",
		"X-Accel-Buffering": "no",
	} {
		if got := st.resp.Header.Get(name); got != want {
			t.Errorf("%s: %q, want %q", name, got, want)
		}
	}
	// No Origin: no CORS headers.
	if got := st.resp.Header.Get("Access-Control-Allow-Origin"); got != "" {
		t.Errorf("Access-Control-Allow-Origin %q without an Origin", got)
	}
	id := st.resp.Header.Get("X-Crossws-Id")
	if !engine.ValidID(id) {
		t.Fatalf("X-Crossws-Id %q is not a peer id", id)
	}
	st.ev.Expect(t, "crossws-id", id, id+".0")
	st.ev.Expect(t, "message", "one", id+".1")
	st.ev.Expect(t, "message", "two", id+".2")
	st.ev.Expect(t, "message", `{"n":3}`, id+".3")
	if p := s.peer(id); !p.Connected() || p.Resumes() != 0 {
		t.Errorf("peer connected %v resumes %d, want true 0", p.Connected(), p.Resumes())
	}
}

func TestStreamPeerIDsAreDistinct(t *testing.T) {
	t.Parallel()
	s := newServer(t, handler.Config{})
	seen := map[string]bool{}
	for range 5 {
		_, id := s.open()
		if seen[id] {
			t.Fatalf("peer id %s given twice", id)
		}
		seen[id] = true
	}
	if n := s.peerCount(); n != 5 {
		t.Fatalf("%d peers open, want 5", n)
	}
}

func TestStreamMultilineData(t *testing.T) {
	t.Parallel()
	sent := []string{
		"a\nb",
		"c\rd",
		"e\r\nf",
		"\n\ng\r\r\n",
		"trailing\n",
		"",
		"data: x\nevent: close\nid: forged",
		": not a comment\r\nretry: 1",
	}
	want := []string{
		"a\nb",
		"c\nd",
		"e\nf",
		"\n\ng\n\n",
		"trailing\n",
		"",
		"data: x\nevent: close\nid: forged",
		": not a comment\nretry: 1",
	}
	s := newServer(t, handler.Config{Hooks: handler.Hooks{
		Open: func(p *handler.Peer) {
			for _, m := range sent {
				_ = p.SendText(m)
			}
		},
	}})
	st, id := s.open()
	for i, w := range want {
		st.ev.Expect(t, "message", w, eid(id, i+1))
	}
	// Nothing leaked out of the data lines: no retry field, no comment.
	_ = s.peer(id).SendText("end")
	for {
		it, ok := st.ev.Next(t)
		if !ok {
			t.Fatal("stream ended")
		}
		if it.Kind != ssetest.ItemEvent {
			t.Fatalf("got %+v from message data", it)
		}
		if it.Data == "end" {
			break
		}
	}
}

func TestStreamUpgradeHeadersOverrideDefaults(t *testing.T) {
	t.Parallel()
	s := newServer(t, handler.Config{Hooks: handler.Hooks{
		Upgrade: func(u *handler.Upgrade) error {
			u.SetHeader("Cache-Control", "no-cache, no-transform")
			u.SetHeader("X-Accel-Buffering", "yes")
			u.SetHeader("X-App", "42")
			return nil
		},
	}})
	st, _ := s.open()
	for name, want := range map[string]string{
		"Cache-Control":     "no-cache, no-transform",
		"X-Accel-Buffering": "yes",
		"X-App":             "42",
		"Content-Type":      "text/event-stream",
	} {
		if got := st.resp.Header.Values(name); len(got) != 1 || got[0] != want {
			t.Errorf("%s: %q, want exactly %q", name, got, want)
		}
	}
}

func TestStreamRetryField(t *testing.T) {
	t.Parallel()
	s := newServer(t, handler.Config{Retry: 2500 * time.Millisecond})
	st := s.get()
	it, ok := st.ev.Next(t)
	if !ok || it.Kind != ssetest.ItemRetry || it.Text != "2500" {
		t.Fatalf("first item %+v, want retry 2500", it)
	}
	hello := st.ev.Event(t)
	if hello.Type != "crossws-id" || hello.Data != st.resp.Header.Get("X-Crossws-Id") {
		t.Fatalf("hello %+v", hello)
	}
}

func TestStreamNoRetryByDefault(t *testing.T) {
	t.Parallel()
	s := newServer(t, handler.Config{MaxStreamDuration: 50 * time.Millisecond})
	st := s.get()
	for _, it := range st.ev.Rest(t) {
		if it.Kind == ssetest.ItemRetry {
			t.Fatalf("retry %q sent without Config.Retry", it.Text)
		}
	}
}

func TestWrongMethods(t *testing.T) {
	t.Parallel()
	s := newServer(t, handler.Config{})
	for _, method := range []string{"PUT", "DELETE", "PATCH", "HEAD", "TRACE", "BREW"} {
		resp, body := s.do(method, nil, "Accept", "text/event-stream")
		if resp.StatusCode != http.StatusMethodNotAllowed {
			t.Errorf("%s: status %d, want 405", method, resp.StatusCode)
		}
		if got := resp.Header.Get("Allow"); got != "GET, POST, OPTIONS" {
			t.Errorf("%s: Allow %q", method, got)
		}
		wantBody := "method not allowed: use GET to open a stream, POST to send"
		if method == "HEAD" {
			wantBody = ""
		}
		if body != wantBody {
			t.Errorf("%s: body %q, want %q", method, body, wantBody)
		}
	}
	if n := s.peerCount(); n != 0 {
		t.Fatalf("%d peers opened by wrong methods", n)
	}
}

func TestGetWithoutEventStreamAccept(t *testing.T) {
	t.Parallel()
	rec := newRecorder()
	s := newServer(t, handler.Config{Hooks: rec.hooks()})
	for _, accept := range []string{"", "*/*", "application/json", "text/*", "text/event"} {
		var hdr []string
		if accept != "" {
			hdr = []string{"Accept", accept}
		}
		resp, body := s.do(http.MethodGet, nil, hdr...)
		if resp.StatusCode != http.StatusNotAcceptable {
			t.Errorf("Accept %q: status %d, want 406", accept, resp.StatusCode)
		}
		if !strings.Contains(body, "text/event-stream") {
			t.Errorf("Accept %q: body %q does not say what to send", accept, body)
		}
	}
	if n := s.peerCount(); n != 0 {
		t.Fatalf("%d peers opened without Accept: text/event-stream", n)
	}
	// Accept lists with the type among others are fine.
	st := s.get("Accept", "text/html, text/event-stream;q=0.9")
	if st.resp.StatusCode != http.StatusOK {
		t.Fatalf("Accept list: status %d", st.resp.StatusCode)
	}
}

func TestPreflight(t *testing.T) {
	t.Parallel()
	const origin = "https://app.example.com"
	s := newServer(t, handler.Config{AllowedOrigins: []string{origin}})
	resp, body := s.do(http.MethodOptions, nil,
		"Origin", origin,
		"Access-Control-Request-Method", "POST",
		"Access-Control-Request-Headers", "x-crossws-id, content-type")
	if resp.StatusCode != http.StatusNoContent || body != "" {
		t.Fatalf("preflight: %d %q, want 204 and no body", resp.StatusCode, body)
	}
	for name, want := range map[string]string{
		"Access-Control-Allow-Origin":      origin,
		"Access-Control-Allow-Methods":     "GET, POST, OPTIONS",
		"Access-Control-Allow-Headers":     "x-crossws-id, content-type",
		"Access-Control-Max-Age":           "300",
		"Access-Control-Allow-Credentials": "true",
		"Vary":                             "Origin",
	} {
		if got := resp.Header.Get(name); got != want {
			t.Errorf("%s: %q, want %q", name, got, want)
		}
	}

	// Without Access-Control-Request-Headers, none is allowed.
	resp, _ = s.do(http.MethodOptions, nil, "Origin", origin, "Access-Control-Request-Method", "GET")
	if resp.StatusCode != http.StatusNoContent || resp.Header.Get("Access-Control-Allow-Headers") != "" {
		t.Errorf("preflight without request headers: %d, Allow-Headers %q", resp.StatusCode, resp.Header.Get("Access-Control-Allow-Headers"))
	}

	// A plain OPTIONS (not a preflight) lists the methods.
	resp, _ = s.do(http.MethodOptions, nil)
	if resp.StatusCode != http.StatusNoContent || resp.Header.Get("Allow") != "GET, POST, OPTIONS" {
		t.Errorf("plain OPTIONS: %d, Allow %q", resp.StatusCode, resp.Header.Get("Allow"))
	}
	if got := resp.Header.Get("Access-Control-Allow-Origin"); got != "" {
		t.Errorf("plain OPTIONS: Access-Control-Allow-Origin %q", got)
	}

	// A preflight from another origin is refused.
	for _, bad := range []string{"https://evil.example.com", "http://app.example.com", "https://app.example.com.evil.com", "null"} {
		resp, body = s.do(http.MethodOptions, nil,
			"Origin", bad,
			"Access-Control-Request-Method", "POST",
			"Access-Control-Request-Headers", "x-crossws-id")
		if resp.StatusCode != http.StatusForbidden || body != "origin not allowed" {
			t.Errorf("preflight from %s: %d %q, want 403", bad, resp.StatusCode, body)
		}
		if got := resp.Header.Get("Access-Control-Allow-Origin"); got != "" {
			t.Errorf("preflight from %s: Access-Control-Allow-Origin %q", bad, got)
		}
	}
}
