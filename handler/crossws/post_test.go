package crossws_test

import (
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/ssebridge/ssebridge/handler"
	"github.com/ssebridge/ssebridge/handler/engine"
	"github.com/ssebridge/ssebridge/internal/ssetest"
)

// unsized hides the length of a body, so that it is sent chunked.
func unsized(s string) io.Reader { return io.MultiReader(strings.NewReader(s)) }

func TestPostBadPeerIDs(t *testing.T) {
	t.Parallel()
	rec := newRecorder()
	s := newServer(t, handler.Config{Hooks: rec.hooks()})
	_, id := s.open()

	if code, body := s.post("", strings.NewReader("x")); code != http.StatusBadRequest || body != "missing x-crossws-id header" {
		t.Errorf("no id: %d %q", code, body)
	}
	bad := []string{
		id[:21],                     // too short
		id + "A",                    // too long
		id[:21] + "B",               // last character not canonical
		id[:21] + "/",               // std base64
		id[:10] + "+" + id[11:],     // std base64
		id[:10] + "=" + id[11:],     // padding
		id[:10] + "." + id[11:],     // separator
		id[:10] + "é"[:1] + id[11:], // half a UTF-8 sequence
		id + "." + "1",              // an event id
		strings.Repeat("A", 10<<10), // 10 KB
		strings.Repeat("A", engine.IDLength-1) + "\t", // control character
	}
	for _, b := range bad {
		code, body := s.post(b, strings.NewReader("x"))
		if code != http.StatusBadRequest || body != "invalid peer id" {
			t.Errorf("id %q: %d %q, want 400 \"invalid peer id\"", short(b), code, body)
		}
	}
	// Well formed, but no such peer.
	for range 3 {
		if code, body := s.post(engine.NewID(), strings.NewReader("x")); code != http.StatusBadRequest || body != "invalid peer id" {
			t.Errorf("unknown id: %d %q", code, body)
		}
		if code, body := s.post(engine.NewID(), unsized("x"), "Content-Type", "application/octet-stream"); code != http.StatusBadRequest || body != "invalid peer id" {
			t.Errorf("unknown id, streamed: %d %q", code, body)
		}
	}
	// None of it reached the peer: the next message is the good one.
	if code, _ := s.post(id, strings.NewReader("good")); code != http.StatusOK {
		t.Fatalf("good POST: %d", code)
	}
	rec.msg(t, id, "good")
}

func TestPostSizeLimit(t *testing.T) {
	t.Parallel()
	const limit = 1000
	rec := newRecorder()
	s := newServer(t, handler.Config{Hooks: rec.hooks(), MaxMessageSize: limit})
	_, id := s.open()
	const tooLarge = "message too large: the limit is 1000 bytes"

	exact := strings.Repeat("é", limit/2)
	if code, body := s.post(id, strings.NewReader(exact)); code != http.StatusOK || body != "" {
		t.Fatalf("exactly the limit: %d %q", code, body)
	}
	rec.msg(t, id, exact)
	if code, body := s.post(id, unsized(exact), "Content-Type", "text/plain"); code != http.StatusOK || body != "" {
		t.Fatalf("exactly the limit, chunked: %d %q", code, body)
	}
	rec.msg(t, id, exact)
	if code, body := s.post(id, strings.NewReader("")); code != http.StatusOK {
		t.Fatalf("empty body: %d %q", code, body)
	}
	rec.msg(t, id, "")

	over := strings.Repeat("x", limit+1)
	if code, body := s.post(id, strings.NewReader(over)); code != http.StatusRequestEntityTooLarge || body != tooLarge {
		t.Errorf("limit+1 with Content-Length: %d %q", code, body)
	}
	for _, ct := range []string{"", "text/plain;charset=UTF-8", "application/json"} {
		var hdr []string
		if ct != "" {
			hdr = []string{"Content-Type", ct}
		}
		if code, body := s.post(id, unsized(over), hdr...); code != http.StatusRequestEntityTooLarge || body != tooLarge {
			t.Errorf("limit+1 chunked, Content-Type %q: %d %q", ct, code, body)
		}
		if code, body := s.post(id, unsized(strings.Repeat(over, 100)), hdr...); code != http.StatusRequestEntityTooLarge || body != tooLarge {
			t.Errorf("100×limit chunked, Content-Type %q: %d %q", ct, code, body)
		}
	}
	// The refused bodies never reached the hook.
	if code, _ := s.post(id, strings.NewReader("after")); code != http.StatusOK {
		t.Fatalf("POST after refusals: %d", code)
	}
	rec.msg(t, id, "after")
	if !s.peer(id).Connected() {
		t.Fatal("peer lost its stream")
	}
}

func TestUpgradeHookRejects(t *testing.T) {
	t.Parallel()
	rec := newRecorder()
	hooks := rec.hooks()
	hooks.Upgrade = func(u *handler.Upgrade) error {
		switch u.Request.Header("X-Test") {
		case "reject":
			return handler.Reject(http.StatusUnauthorized, "nope")
		case "reject-header":
			return &handler.RejectError{Status: http.StatusTooManyRequests, Body: "slow down", Header: map[string]string{"Retry-After": "7"}}
		case "reject-200":
			return handler.Reject(http.StatusOK, "not an error status")
		}
		return nil
	}
	s := newServer(t, handler.Config{Hooks: hooks})

	// Stream requests.
	resp, b := s.do(http.MethodGet, nil, "Accept", "text/event-stream", "X-Test", "reject")
	if resp.StatusCode != http.StatusUnauthorized || b != "nope" {
		t.Fatalf("rejected GET: %d %q", resp.StatusCode, b)
	}
	if n := s.peerCount(); n != 0 {
		t.Fatalf("rejected GET opened %d peers", n)
	}

	_, id := s.open()
	ssetest.Recv(t, rec.opens, "Open")
	cases := []struct {
		hdr    string
		status int
		body   string
	}{
		{"reject", http.StatusUnauthorized, "nope"},
		{"reject-header", http.StatusTooManyRequests, "slow down"},
		{"reject-200", http.StatusForbidden, "not an error status"},
	}
	for _, c := range cases {
		for _, ct := range []string{"text/plain", "application/octet-stream"} {
			resp, body := s.do(http.MethodPost, unsized("hidden"), "X-Crossws-Id", id, "X-Test", c.hdr, "Content-Type", ct)
			if resp.StatusCode != c.status || body != c.body {
				t.Errorf("%s (%s): %d %q, want %d %q", c.hdr, ct, resp.StatusCode, body, c.status, c.body)
			}
			if c.hdr == "reject-header" && resp.Header.Get("Retry-After") != "7" {
				t.Errorf("%s: Retry-After %q", c.hdr, resp.Header.Get("Retry-After"))
			}
		}
	}
	if code, _ := s.post(id, strings.NewReader("allowed")); code != http.StatusOK {
		t.Fatalf("allowed POST: %d", code)
	}
	rec.msg(t, id, "allowed")
	select {
	case e := <-rec.errs:
		t.Fatalf("Error hook called for a rejection: %v", e.err)
	default:
	}
}

var errHook = errors.New("upgrade says no")

func TestUpgradeHookFails(t *testing.T) {
	t.Parallel()
	rec := newRecorder()
	hooks := rec.hooks()
	hooks.Upgrade = func(u *handler.Upgrade) error {
		switch u.Request.Header("X-Test") {
		case "error":
			return errHook
		case "panic":
			panic("upgrade exploded")
		}
		return nil
	}
	s := newServer(t, handler.Config{Hooks: hooks})
	_, id := s.open()

	for _, method := range []string{http.MethodGet, http.MethodPost} {
		resp, body := s.do(method, strings.NewReader("hidden"), "X-Crossws-Id", id, "X-Test", "error", "Accept", "text/event-stream")
		if resp.StatusCode != http.StatusInternalServerError || body != "internal error" {
			t.Errorf("%s, hook error: %d %q", method, resp.StatusCode, body)
		}
		e := ssetest.Recv(t, rec.errs, "Error hook")
		if !errors.Is(e.err, errHook) || e.peer != nil {
			t.Errorf("%s: Error hook got %v for %v, want %v for no peer", method, e.err, e.peer, errHook)
		}

		resp, body = s.do(method, strings.NewReader("hidden"), "X-Crossws-Id", id, "X-Test", "panic", "Accept", "text/event-stream")
		if resp.StatusCode != http.StatusInternalServerError || body != "internal error" {
			t.Errorf("%s, hook panic: %d %q", method, resp.StatusCode, body)
		}
		e = ssetest.Recv(t, rec.errs, "Error hook")
		var pe *handler.PanicError
		if !errors.As(e.err, &pe) || pe.Hook != "Upgrade" || pe.Value != "upgrade exploded" {
			t.Errorf("%s: Error hook got %v, want a PanicError from Upgrade", method, e.err)
		}
	}
	if n := s.peerCount(); n != 1 {
		t.Fatalf("%d peers, want 1", n)
	}
	if code, _ := s.post(id, strings.NewReader("ok")); code != http.StatusOK {
		t.Fatalf("POST: %d", code)
	}
	rec.msg(t, id, "ok")
}

func TestMessageHookPanics(t *testing.T) {
	t.Parallel()
	rec := newRecorder()
	hooks := rec.hooks()
	hooks.Message = func(p *handler.Peer, m handler.Message) {
		if m.Text() == "boom" {
			panic("message exploded")
		}
		rec.msgs <- message{p.ID(), m.Text()}
		_ = p.SendText("echo " + m.Text())
	}
	s := newServer(t, handler.Config{Hooks: hooks})
	st, id := s.open()

	if code, body := s.post(id, strings.NewReader("boom")); code != http.StatusInternalServerError || body != "internal error" {
		t.Fatalf("panicking hook: %d %q, want 500", code, body)
	}
	e := ssetest.Recv(t, rec.errs, "Error hook")
	var pe *handler.PanicError
	if !errors.As(e.err, &pe) || pe.Hook != "Message" || pe.Value != "message exploded" || len(pe.Stack) == 0 {
		t.Fatalf("Error hook got %#v", e.err)
	}
	if e.peer == nil || e.peer.ID() != id {
		t.Fatalf("Error hook peer %v, want %s", e.peer, id)
	}
	p := s.peer(id)
	if p.Closed() || !p.Connected() {
		t.Fatalf("peer closed %v connected %v after a hook panic", p.Closed(), p.Connected())
	}
	if code, _ := s.post(id, strings.NewReader("next")); code != http.StatusOK {
		t.Fatalf("next POST: %d", code)
	}
	rec.msg(t, id, "next")
	st.ev.Expect(t, "message", "echo next", eid(id, 1))
}
