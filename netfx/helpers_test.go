package netfx_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ssebridge/ssebridge/handler"
	"github.com/ssebridge/ssebridge/internal/ssetest"
	"github.com/ssebridge/ssebridge/netfx"
)

const (
	testTimeout = 10 * time.Second
	waitTimeout = ssetest.Timeout
)

// proto is one way to serve and reach the handler.
type proto struct {
	name  string
	major int // the HTTP major version both sides must see
	start func(t *testing.T, srv *httptest.Server) *http.Client
}

var protos = []proto{
	{"HTTP/1.1", 1, func(t *testing.T, srv *httptest.Server) *http.Client {
		srv.Start()
		return srv.Client()
	}},
	{"HTTP/2+TLS", 2, func(t *testing.T, srv *httptest.Server) *http.Client {
		srv.EnableHTTP2 = true
		srv.StartTLS()
		return srv.Client()
	}},
	{"h2c", 2, func(t *testing.T, srv *httptest.Server) *http.Client {
		var p http.Protocols
		p.SetUnencryptedHTTP2(true)
		srv.Config.Protocols = &p
		srv.Start()
		tr := &http.Transport{Protocols: &p}
		t.Cleanup(tr.CloseIdleConnections)
		return &http.Client{Transport: tr}
	}},
}

// server is a Handler served through netfx by one proto.
type server struct {
	t      *testing.T
	h      *handler.Handler
	srv    *httptest.Server
	client *http.Client
	url    string
	ctx    context.Context

	mu     sync.Mutex
	majors []int // r.ProtoMajor of every request the server saw
}

// newServer serves a fresh Handler for cfg with pr. configure, if not nil,
// may change the http.Server before it starts.
func newServer(t *testing.T, pr proto, cfg handler.Config, configure func(*http.Server)) *server {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	h, err := handler.New(cfg)
	if err != nil {
		t.Fatalf("handler.New: %v", err)
	}
	s := &server{t: t, h: h}
	inner := netfx.New(h)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.majors = append(s.majors, r.ProtoMajor)
		s.mu.Unlock()
		inner.ServeHTTP(w, r)
	}))
	if configure != nil {
		configure(srv.Config)
	}
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	s.srv, s.ctx = srv, ctx
	s.client = pr.start(t, srv)
	s.url = srv.URL + "/sse"
	t.Cleanup(func() {
		cancel()
		sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer scancel()
		_ = h.Shutdown(sctx)
		srv.CloseClientConnections()
		srv.Close()
	})
	return s
}

// checkProto checks that every request so far was served with major.
func (s *server) checkProto(major int) {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.majors) == 0 {
		s.t.Fatal("no request reached the server")
	}
	for _, m := range s.majors {
		if m != major {
			s.t.Fatalf("server saw ProtoMajor %v, want all %d", s.majors, major)
		}
	}
}

func (s *server) request(ctx context.Context, method string, body io.Reader, hdr ...string) *http.Request {
	s.t.Helper()
	req, err := http.NewRequestWithContext(ctx, method, s.url, body)
	if err != nil {
		s.t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	return req
}

// post sends one message and returns the status and body.
func (s *server) post(id, body string, hdr ...string) (int, string) {
	s.t.Helper()
	resp, err := s.client.Do(s.request(s.ctx, http.MethodPost, strings.NewReader(body), append(hdr, "X-Crossws-Id", id)...))
	if err != nil {
		s.t.Fatalf("POST: %v", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		s.t.Fatalf("POST: %v", err)
	}
	return resp.StatusCode, string(b)
}

type stream struct {
	resp   *http.Response
	ev     *ssetest.Reader
	id     string
	cancel context.CancelFunc
}

// open opens a stream and reads its crossws-id event.
func (s *server) open(hdr ...string) *stream {
	s.t.Helper()
	ctx, cancel := context.WithCancel(s.ctx)
	resp, err := s.client.Do(s.request(ctx, http.MethodGet, nil, append([]string{"Accept", "text/event-stream"}, hdr...)...))
	if err != nil {
		cancel()
		s.t.Fatalf("GET: %v", err)
	}
	st := &stream{resp: resp, ev: ssetest.NewReader(resp.Body), cancel: cancel}
	s.t.Cleanup(func() { cancel(); resp.Body.Close() })
	if resp.StatusCode != http.StatusOK {
		s.t.Fatalf("GET: status %d", resp.StatusCode)
	}
	st.id = resp.Header.Get("X-Crossws-Id")
	hello := st.ev.Event(s.t)
	if hello.Type != "crossws-id" || hello.Data != st.id || hello.ID != st.id+".0" {
		s.t.Fatalf("first event %+v, want crossws-id %s", hello, st.id)
	}
	return st
}

func (s *server) peer(id string) *handler.Peer {
	s.t.Helper()
	p, ok := s.h.Peer(id)
	if !ok {
		s.t.Fatalf("peer %s not open", id)
	}
	return p
}
