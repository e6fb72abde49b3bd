package runtimetest

import (
	"bufio"
	"net/http"
	"strings"
	"testing"
	"time"
)

// testResume: a client that lost its stream reconnects with Last-Event-ID
// to the same instance and gets the same peer and what was sent meanwhile.
func testResume(t *testing.T, rt Runtime) {
	d := deploy(t, rt, 1, false)
	c := newClient(t)
	st := c.open(d.urls[0])
	c.send(d.urls[0], st.id, "echo 1")
	last := st.expect(t, "echo 1")
	st.close()
	// Sent while the client is away (or while the server has not noticed
	// yet, then written to a dead connection): replayed either way.
	c.send(d.urls[0], st.id, "echo 2")

	again := c.open(d.urls[0], "Last-Event-ID", last)
	if again.id != st.id {
		t.Fatalf("resumed as peer %s, want %s", again.id, st.id)
	}
	again.expect(t, "echo 2")
	c.send(d.urls[0], st.id, "echo 3")
	again.expect(t, "echo 3")
}

// testResumeElsewhere: with Redis, a client resumes its peer on another
// instance and gets the publications it missed.
func testResumeElsewhere(t *testing.T, rt Runtime) {
	d := deploy(t, rt, 2, true)
	c := newClient(t)
	st := c.open(d.urls[0])
	pub := c.open(d.urls[1])
	c.send(d.urls[1], pub.id, "pub all before")
	last := st.expect(t, "before")
	st.close()
	c.send(d.urls[1], pub.id, "pub all missed 1")
	c.send(d.urls[1], pub.id, "pub all missed 2")

	again := c.open(d.urls[1], "Last-Event-ID", last)
	if again.id != st.id {
		t.Fatalf("resumed as peer %s, want %s", again.id, st.id)
	}
	again.expect(t, "missed 1")
	again.expect(t, "missed 2")
	c.send(d.urls[1], pub.id, "pub all after")
	again.expect(t, "after")
	c.send(d.urls[0], st.id, "echo still me")
	again.expect(t, "echo still me")
}

// testLimits: a message at the size limit passes, one byte more is refused
// with 413, and the peer goes on.
func testLimits(t *testing.T, rt Runtime) {
	d := deploy(t, rt, 1, false)
	c := newClient(t)
	st := c.open(d.urls[0])
	atLimit := "echo " + strings.Repeat("é", (AppMaxMessageSize-5)/2)
	atLimit += strings.Repeat("!", AppMaxMessageSize-len(atLimit))
	c.send(d.urls[0], st.id, atLimit)
	st.expect(t, atLimit)
	if code, body := c.post(d.urls[0], st.id, atLimit+"x"); code != http.StatusRequestEntityTooLarge || body == "" {
		t.Fatalf("POST of %d bytes: %d %q, want 413 with a reason", len(atLimit)+1, code, body)
	}
	// Far larger than any limit: refused, whoever refuses it.
	if code, _ := c.post(d.urls[0], st.id, strings.Repeat("x", 7<<20)); code != http.StatusRequestEntityTooLarge {
		t.Fatalf("POST of 7 MiB: %d, want 413", code)
	}
	c.send(d.urls[0], st.id, "echo after")
	st.expect(t, "echo after")
}

// testOrigins: browser origins are checked, and allowed ones get CORS
// headers, on streams, POSTs and preflights.
func testOrigins(t *testing.T, rt Runtime) {
	d := deploy(t, rt, 1, false)
	u := d.urls[0]
	c := newClient(t)

	if st := c.tryOpen(u, "Origin", "https://evil.example"); st.resp.StatusCode != http.StatusForbidden {
		t.Fatalf("stream from a foreign origin: %d, want 403", st.resp.StatusCode)
	}
	st := c.open(u, "Origin", AppOrigin)
	if got := st.resp.Header.Get("Access-Control-Allow-Origin"); got != AppOrigin {
		t.Fatalf("stream: Access-Control-Allow-Origin %q, want %q", got, AppOrigin)
	}
	if got := st.resp.Header.Get("Access-Control-Allow-Credentials"); got != "true" {
		t.Fatalf("stream: Access-Control-Allow-Credentials %q, want true", got)
	}
	code, h, _ := c.do(http.MethodOptions, u, nil, "Origin", AppOrigin,
		"Access-Control-Request-Method", "POST", "Access-Control-Request-Headers", "x-crossws-id")
	if code != http.StatusNoContent || h.Get("Access-Control-Allow-Origin") != AppOrigin ||
		!strings.Contains(strings.ToLower(h.Get("Access-Control-Allow-Headers")), "x-crossws-id") {
		t.Fatalf("preflight: %d %v, want 204 allowing x-crossws-id", code, h)
	}
	if code, _ := c.post(u, st.id, "echo evil", "Origin", "https://evil.example"); code != http.StatusForbidden {
		t.Fatalf("POST from a foreign origin: %d, want 403", code)
	}
	if code, _ := c.post(u, st.id, "echo friend", "Origin", AppOrigin); code != http.StatusOK {
		t.Fatalf("POST from the allowed origin: %d, want 200", code)
	}
	st.expect(t, "echo friend")
}

// testBadInput sends malformed, unknown and hostile requests, each of
// which gets a clear error, and checks that the peer and server survive.
func testBadInput(t *testing.T, rt Runtime) {
	d := deploy(t, rt, 1, false)
	u := d.urls[0]
	c := newClient(t)
	st := c.open(u)
	unknown := otherID(st.id)

	for _, tc := range []struct {
		name   string
		method string
		body   string
		hdr    []string
		want   int
	}{
		{"POST without a peer id", http.MethodPost, "echo x", nil, http.StatusBadRequest},
		{"POST with a malformed peer id", http.MethodPost, "echo x", []string{"X-Crossws-Id", "../../etc/passwd"}, http.StatusBadRequest},
		{"POST with a peer id of 4 KiB", http.MethodPost, "echo x", []string{"X-Crossws-Id", strings.Repeat("a", 4096)}, http.StatusBadRequest},
		{"POST for an unknown peer", http.MethodPost, "echo x", []string{"X-Crossws-Id", unknown}, http.StatusBadRequest},
		{"PUT", http.MethodPut, "x", nil, http.StatusMethodNotAllowed},
		{"DELETE", http.MethodDelete, "", nil, http.StatusMethodNotAllowed},
		{"GET without Accept", http.MethodGet, "", []string{"Accept", "text/html"}, http.StatusNotAcceptable},
	} {
		code, h, body := c.do(tc.method, u, strings.NewReader(tc.body), tc.hdr...)
		if code != tc.want {
			t.Errorf("%s: %d %q, want %d", tc.name, code, body, tc.want)
		}
		if code >= 400 && body == "" {
			t.Errorf("%s: %d without a reason in the body", tc.name, code)
		}
		if code == http.StatusMethodNotAllowed && h.Get("Allow") == "" {
			t.Errorf("%s: 405 without Allow", tc.name)
		}
	}

	// Last-Event-IDs that name nothing open a new peer.
	for _, last := range []string{"garbage", unknown + ".5", st.id + ".99999999999999999999", "\u00ff\u00fe"} {
		fresh := c.open(u, "Last-Event-ID", last)
		if fresh.id == st.id {
			t.Errorf("Last-Event-ID %q resumed the live peer", last)
		}
		fresh.close()
	}

	// Bytes that are not UTF-8 reach the application as they are (it
	// sends them back as binary: a data: URL).
	c.send(u, st.id, "\xff\xfe\x00 not utf-8")
	if it := st.ev.Event(t); it.Type != "message" || !strings.HasPrefix(it.Data, "data:application/octet-stream;base64,") {
		t.Fatalf("binary message came back as %+v", it)
	}

	// Not HTTP at all, and a header block too large: answered or cut,
	// never a crash.
	garbage(t, u, "GARBAGE\r\n\r\n")
	garbage(t, u, "GET /sse HTTP/1.1\r\nHost: x\r\nX-Big: "+strings.Repeat("b", 2<<20)+"\r\n\r\n")
	garbage(t, u, "POST /sse HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nX-Crossws-Id: "+st.id+"\r\n\r\nzz\r\nbad chunk\r\n")

	c.send(u, st.id, "echo still here")
	st.expect(t, "echo still here")
}

// otherID returns a well-formed peer id that is not id.
func otherID(id string) string {
	b := []byte(id)
	for i := len(b) - 1; i >= 0; i-- {
		c := b[i]
		switch {
		case c >= 'a' && c < 'z', c >= 'A' && c < 'Z', c >= '0' && c < '9':
			b[i] = c + 1
			return string(b)
		case c == 'z' || c == 'Z' || c == '9':
			b[i] = c - 1
			return string(b)
		}
	}
	return id + "x"
}

// garbage writes raw bytes to the server and reads what comes back for a
// moment; the server may answer with an error or close the connection.
func garbage(t *testing.T, u, raw string) {
	t.Helper()
	_, conn := dial(t, u)
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	_, _ = conn.Write([]byte(raw)) // the server may close before reading it all
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		return // cut: fine
	}
	resp.Body.Close()
	if resp.StatusCode < 400 || resp.StatusCode >= 500 && resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("%q…: status %d, want a client error", short(raw), resp.StatusCode)
	}
}
