package fasthttp_test

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	fh "github.com/valyala/fasthttp"

	"github.com/ssebridge/ssebridge/handler"
	"github.com/ssebridge/ssebridge/internal/ssetest"
)

// Bad input gets a clear status and nothing else, through the adapter.
func TestHostileRequests(t *testing.T) {
	t.Parallel()
	const limit = 1 << 10
	msgs := make(chan string, 16)
	s := newServer(t, handler.Config{
		MaxMessageSize: limit,
		AllowedOrigins: []string{"https://good.example"},
		Hooks: handler.Hooks{
			Message: func(p *handler.Peer, m handler.Message) { msgs <- m.Text() },
		},
	}, nil)
	st := s.open()
	unknown := "AAAAAAAAAAAAAAAAAAAAAA" // well formed, no such peer

	type row struct {
		name   string
		method string
		hdr    []string
		body   string
		// chunked sends the body without a length.
		chunked bool

		status   int
		wantBody string // substring
		wantHdr  []string
	}
	errHdr := []string{"X-Content-Type-Options", "nosniff", "Content-Type", "text/plain; charset=utf-8"}
	rows := []row{
		{name: "PUT", method: http.MethodPut, body: "x", status: 405, wantBody: "method not allowed", wantHdr: []string{"Allow", "GET, POST, OPTIONS"}},
		{name: "DELETE", method: http.MethodDelete, status: 405, wantHdr: []string{"Allow", "GET, POST, OPTIONS"}},
		{name: "PATCH", method: http.MethodPatch, body: "x", status: 405},
		{name: "HEAD", method: http.MethodHead, status: 405},
		{name: "odd method", method: "BREW", status: 405},
		{name: "GET without event-stream Accept", method: http.MethodGet, hdr: []string{"Accept", "text/html"}, status: 406, wantBody: "text/event-stream"},
		{name: "POST without id", method: http.MethodPost, body: "x", status: 400, wantBody: "missing x-crossws-id header", wantHdr: errHdr},
		{name: "POST short id", method: http.MethodPost, hdr: []string{"X-Crossws-Id", "abc"}, body: "x", status: 400, wantBody: "invalid peer id", wantHdr: errHdr},
		{name: "POST id with path", method: http.MethodPost, hdr: []string{"X-Crossws-Id", "../../../../etc/passwd"}, body: "x", status: 400, wantBody: "invalid peer id"},
		{name: "POST id with bad padding", method: http.MethodPost, hdr: []string{"X-Crossws-Id", "AAAAAAAAAAAAAAAAAAAAAB"}, body: "x", status: 400, wantBody: "invalid peer id"},
		{name: "POST id too long", method: http.MethodPost, hdr: []string{"X-Crossws-Id", st.id + "A"}, body: "x", status: 400, wantBody: "invalid peer id"},
		{name: "POST unknown peer", method: http.MethodPost, hdr: []string{"X-Crossws-Id", unknown}, body: "x", status: 400, wantBody: "invalid peer id"},
		{name: "POST too large", method: http.MethodPost, hdr: []string{"X-Crossws-Id", st.id}, body: strings.Repeat("x", 2*limit), status: 413, wantBody: "message too large"},
		{name: "POST too large, chunked", method: http.MethodPost, hdr: []string{"X-Crossws-Id", st.id}, body: strings.Repeat("x", 2*limit), chunked: true, status: 413, wantBody: "message too large"},
		{name: "POST just too large", method: http.MethodPost, hdr: []string{"X-Crossws-Id", st.id}, body: strings.Repeat("x", limit+1), status: 413},
		{name: "GET from a bad origin", method: http.MethodGet, hdr: []string{"Accept", "text/event-stream", "Origin", "https://evil.example"}, status: 403, wantBody: "origin not allowed"},
		{name: "POST from a bad origin", method: http.MethodPost, hdr: []string{"X-Crossws-Id", st.id, "Origin", "https://evil.example"}, body: "x", status: 403},
		{name: "preflight from a bad origin", method: http.MethodOptions, hdr: []string{"Origin", "https://evil.example", "Access-Control-Request-Method", "POST"}, status: 403},
		{name: "preflight from a good origin", method: http.MethodOptions, hdr: []string{"Origin", "https://good.example", "Access-Control-Request-Method", "POST"}, status: 204,
			wantHdr: []string{"Access-Control-Allow-Origin", "https://good.example"}},
		{name: "POST from a good origin", method: http.MethodPost, hdr: []string{"X-Crossws-Id", st.id, "Origin", "https://good.example"}, body: "x", status: 200,
			wantHdr: []string{"Access-Control-Allow-Origin", "https://good.example"}},
		{name: "streamed upload, unknown peer", method: http.MethodPost, hdr: []string{"X-Crossws-Id", unknown, "Content-Type", "application/octet-stream"}, body: "x", chunked: true, status: 400, wantBody: "invalid peer id"},
	}
	for _, r := range rows {
		var body io.Reader
		if r.body != "" {
			body = strings.NewReader(r.body)
			if r.chunked {
				body = io.MultiReader(body) // hides the length: chunked
			}
		}
		req := s.request(s.ctx, r.method, body, r.hdr...)
		resp, got := s.do(req)
		if resp.StatusCode != r.status || !strings.Contains(got, r.wantBody) {
			t.Errorf("%s: %d %.80q, want %d with %q", r.name, resp.StatusCode, got, r.status, r.wantBody)
		}
		for i := 0; i+1 < len(r.wantHdr); i += 2 {
			if v := resp.Header.Get(r.wantHdr[i]); v != r.wantHdr[i+1] {
				t.Errorf("%s: %s %q, want %q", r.name, r.wantHdr[i], v, r.wantHdr[i+1])
			}
		}
		if r.method == http.MethodHead && got != "" {
			t.Errorf("%s: body %q", r.name, got)
		}
	}
	// Only the one good message got through.
	if got := ssetest.Recv(t, msgs, "message"); got != "x" {
		t.Fatalf("message %q", got)
	}
	select {
	case m := <-msgs:
		t.Fatalf("unexpected message %.40q", m)
	default:
	}

	// A Last-Event-ID that is no peer's gets a new peer, not someone's.
	for _, forged := range []string{"garbage", unknown + ".5", st.id + ".999999", st.id + ".-1", st.id} {
		st2 := s.open("Last-Event-ID", forged)
		if st2.id == st.id || st2.id == unknown {
			t.Fatalf("Last-Event-ID %q gave peer %s", forged, st2.id)
		}
	}
	// The server still serves.
	if code, _ := s.post(st.id, "still fine"); code != http.StatusOK {
		t.Fatalf("POST: %d", code)
	}
	if got := ssetest.Recv(t, msgs, "message"); got != "still fine" {
		t.Fatalf("message %q", got)
	}
}

// A POST far over the limit is refused before its body is read; fasthttp
// would then close the connection with the body still coming, and the
// client's next write would reset it, possibly before the client read the
// answer. The client must get its 413, every time.
func TestLargeBodyRefused(t *testing.T) {
	t.Parallel()
	s, msgs := newRecordingServer(t, handler.Config{}, nil)
	st := s.open()
	big := strings.Repeat("x", 7<<20)
	for i := range 5 {
		for _, chunked := range []bool{false, true} {
			var body io.Reader = strings.NewReader(big)
			if chunked {
				body = io.MultiReader(body)
			}
			resp, got := s.do(s.request(s.ctx, http.MethodPost, body, "X-Crossws-Id", st.id))
			if resp.StatusCode != http.StatusRequestEntityTooLarge || !strings.Contains(got, "message too large") || !resp.Close {
				t.Fatalf("attempt %d (chunked %v): %d %q (close %v), want 413 and Connection: close", i, chunked, resp.StatusCode, got, resp.Close)
			}
		}
	}
	// A POST a little over the limit leaves little to discard: fasthttp
	// keeps the connection.
	resp, _ := s.do(s.request(s.ctx, http.MethodPost, strings.NewReader(strings.Repeat("x", 65<<10)), "X-Crossws-Id", st.id))
	if resp.StatusCode != http.StatusRequestEntityTooLarge || resp.Close {
		t.Fatalf("POST of 65 KiB: %d (close %v), want 413 on a kept connection", resp.StatusCode, resp.Close)
	}
	if code, _ := s.post(st.id, "after"); code != http.StatusOK {
		t.Fatalf("POST: %d", code)
	}
	if got := ssetest.Recv(t, msgs, "message"); got != "after" {
		t.Fatalf("message %q", got)
	}
}

// What fasthttp itself refuses, before the handler runs, gets a clear
// status from NewServer's ErrorHandler.
func TestRefusedByFasthttp(t *testing.T) {
	t.Parallel()
	called := make(chan struct{}, 16)
	s := newServer(t, handler.Config{}, func(srv *fh.Server) {
		srv.StreamRequestBody = false
		srv.MaxRequestBodySize = 4 << 10
		inner := srv.Handler
		srv.Handler = func(ctx *fh.RequestCtx) { called <- struct{}{}; inner(ctx) }
	})
	for _, r := range []struct {
		name, req string
		status    int
	}{
		{"body over MaxRequestBodySize", "POST /sse HTTP/1.1\r\nHost: h\r\nX-Crossws-Id: AAAAAAAAAAAAAAAAAAAAAA\r\nContent-Length: 100000\r\n\r\n", 413},
		{"header over ReadBufferSize", "GET /sse HTTP/1.1\r\nHost: h\r\nCookie: " + strings.Repeat("c", 8<<10) + "\r\n\r\n", 431},
		{"malformed request line", "GET /sse HTTP/1.1 extra\r\n\r\n", 400},
		{"bad chunk", "POST /sse HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400},
	} {
		c := s.rawConn()
		fmt.Fprint(c, r.req)
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatalf("%s: %v", r.name, err)
		}
		resp.Body.Close()
		if resp.StatusCode != r.status || !resp.Close {
			t.Errorf("%s: %d (close %v), want %d and Connection: close", r.name, resp.StatusCode, resp.Close, r.status)
		}
	}
	select {
	case <-called:
		t.Fatal("the handler ran")
	default:
	}
}
