package crossws_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ssebridge/ssebridge/handler"
	"github.com/ssebridge/ssebridge/internal/ssetest"
	"github.com/ssebridge/ssebridge/netfx"
)

// End-to-end helpers: a real net/http server on loopback serving a fresh
// Handler through netfx, Go's http.Client, and the event-stream reader of
// internal/ssetest, written from the WHATWG rules independently of the
// encoder under test.

const (
	testTimeout = 10 * time.Second // bounds every test's requests
	waitTimeout = ssetest.Timeout  // bounds each single wait
)

// server is one Handler served on loopback.
type server struct {
	t      *testing.T
	h      *handler.Handler
	srv    *httptest.Server
	url    string
	client *http.Client
	ctx    context.Context // ends with the test or after testTimeout
}

// newServer serves a Handler for cfg on loopback until the test ends. Logs
// are discarded: several tests make hooks panic on purpose.
func newServer(t *testing.T, cfg handler.Config) *server {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	h, err := handler.New(cfg)
	if err != nil {
		t.Fatalf("handler.New: %v", err)
	}
	srv := httptest.NewServer(netfx.New(h))
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	t.Cleanup(func() {
		cancel()
		sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer scancel()
		_ = h.Shutdown(sctx)
		srv.CloseClientConnections()
		srv.Close()
	})
	return &server{t: t, h: h, srv: srv, url: srv.URL + "/sse", client: srv.Client(), ctx: ctx}
}

// host is the server's host:port, as clients send it in Host.
func (s *server) host() string { return strings.TrimPrefix(s.srv.URL, "http://") }

// request builds a request to the endpoint; hdr holds header name/value
// pairs.
func (s *server) request(ctx context.Context, method string, body io.Reader, hdr ...string) *http.Request {
	s.t.Helper()
	req, err := http.NewRequestWithContext(ctx, method, s.url, body)
	if err != nil {
		s.t.Fatalf("new request: %v", err)
	}
	if len(hdr)%2 != 0 {
		s.t.Fatalf("odd header list %q", hdr)
	}
	for i := 0; i < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	return req
}

// do sends a request and returns the response with its whole body read.
func (s *server) do(method string, body io.Reader, hdr ...string) (*http.Response, string) {
	s.t.Helper()
	resp, err := s.client.Do(s.request(s.ctx, method, body, hdr...))
	if err != nil {
		s.t.Fatalf("%s: %v", method, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		s.t.Fatalf("%s: read body: %v", method, err)
	}
	return resp, string(b)
}

// post sends body to peer id (no x-crossws-id header when id is "") and
// returns the status and response body.
func (s *server) post(id string, body io.Reader, hdr ...string) (int, string) {
	s.t.Helper()
	if id != "" {
		hdr = append(hdr, "X-Crossws-Id", id)
	}
	resp, b := s.do(http.MethodPost, body, hdr...)
	return resp.StatusCode, b
}

// stream is an open event stream.
type stream struct {
	resp   *http.Response
	ev     *ssetest.Reader
	cancel context.CancelFunc
}

// get sends a stream request (Accept: text/event-stream plus hdr) and
// returns the response without checking it; the body is read by an
// ssetest.Reader.
func (s *server) get(hdr ...string) *stream {
	s.t.Helper()
	ctx, cancel := context.WithCancel(s.ctx)
	req := s.request(ctx, http.MethodGet, nil, append([]string{"Accept", "text/event-stream"}, hdr...)...)
	resp, err := s.client.Do(req)
	if err != nil {
		cancel()
		s.t.Fatalf("GET: %v", err)
	}
	st := &stream{resp: resp, ev: ssetest.NewReader(resp.Body), cancel: cancel}
	s.t.Cleanup(st.close)
	return st
}

// close drops the stream as a client that goes away does.
func (st *stream) close() {
	st.cancel()
	_ = st.resp.Body.Close()
}

// open opens a stream, checks the status and the crossws-id event, and
// returns the stream and its peer id.
func (s *server) open(hdr ...string) (*stream, string) {
	s.t.Helper()
	st := s.get(hdr...)
	if st.resp.StatusCode != http.StatusOK {
		s.t.Fatalf("GET: status %d, want 200", st.resp.StatusCode)
	}
	id := st.resp.Header.Get("X-Crossws-Id")
	hello := st.ev.Event(s.t)
	if hello.Type != "crossws-id" || hello.Data != id || id == "" {
		s.t.Fatalf("first event %+v, want crossws-id with data %q (X-Crossws-Id)", hello, id)
	}
	return st, id
}

// peer returns the open peer id.
func (s *server) peer(id string) *handler.Peer {
	s.t.Helper()
	p, ok := s.h.Peer(id)
	if !ok {
		s.t.Fatalf("peer %s is not open", id)
	}
	return p
}

// peerCount counts the open peers.
func (s *server) peerCount() int {
	n := 0
	for range s.h.Peers() {
		n++
	}
	return n
}

// recorder turns hooks into channels.
type recorder struct {
	opens   chan *handler.Peer
	resumes chan *handler.Peer
	msgs    chan message
	closes  chan closed
	errs    chan hookError
}

type message struct {
	peer string
	text string
}

type closed struct {
	peer string
	d    handler.CloseDetails
}

type hookError struct {
	peer *handler.Peer
	err  error
}

func newRecorder() *recorder {
	return &recorder{
		opens:   make(chan *handler.Peer, 1024),
		resumes: make(chan *handler.Peer, 1024),
		msgs:    make(chan message, 1024),
		closes:  make(chan closed, 1024),
		errs:    make(chan hookError, 1024),
	}
}

// hooks returns hooks that report to the recorder; callers may replace
// some.
func (r *recorder) hooks() handler.Hooks {
	return handler.Hooks{
		Open:    func(p *handler.Peer) { r.opens <- p },
		Resume:  func(p *handler.Peer) { r.resumes <- p },
		Message: func(p *handler.Peer, m handler.Message) { r.msgs <- message{p.ID(), m.Text()} },
		Close:   func(p *handler.Peer, d handler.CloseDetails) { r.closes <- closed{p.ID(), d} },
		Error:   func(p *handler.Peer, err error) { r.errs <- hookError{p, err} },
	}
}

// msg waits for the next upstream message and checks it.
func (r *recorder) msg(t *testing.T, peer, want string) {
	t.Helper()
	m := ssetest.Recv(t, r.msgs, "message "+quote(want))
	if m.peer != peer || m.text != want {
		t.Fatalf("message %q for %s, want %q for %s", short(m.text), m.peer, short(want), peer)
	}
}

// closeOf waits for the next Close hook and checks its peer.
func (r *recorder) closeOf(t *testing.T, peer string) handler.CloseDetails {
	t.Helper()
	c := ssetest.Recv(t, r.closes, "Close of "+peer)
	if c.peer != peer {
		t.Fatalf("Close hook for %s, want %s", c.peer, peer)
	}
	return c.d
}

// eid is the event id of frame n of peer id.
func eid(id string, n int) string { return id + "." + strconv.Itoa(n) }

func itoa(n int) string { return strconv.Itoa(n) }

func quote(s string) string { return "\"" + short(s) + "\"" }

func short(s string) string {
	if len(s) > 80 {
		return fmt.Sprintf("%s…(%d bytes)", s[:60], len(s))
	}
	return s
}
