package fasthttp_test

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	fh "github.com/valyala/fasthttp"

	"github.com/ssebridge/ssebridge/fasthttp"
	"github.com/ssebridge/ssebridge/handler"
	"github.com/ssebridge/ssebridge/internal/ssetest"
)

const (
	testTimeout = 20 * time.Second
	// testHeartbeat is the heartbeat of test streams unless a test sets
	// its own: fasthttp notices a client that left when a write fails.
	testHeartbeat = 25 * time.Millisecond
)

// server is a Handler served by a real fasthttp.Server on loopback.
type server struct {
	t      *testing.T
	h      *handler.Handler
	srv    *fh.Server
	tr     *http.Transport
	client *http.Client
	addr   string
	url    string
	ctx    context.Context
	served chan error
}

// newServer serves a fresh Handler for cfg with fasthttp.NewServer.
// configure, if not nil, may change the server before it starts.
func newServer(t *testing.T, cfg handler.Config, configure func(*fh.Server)) *server {
	t.Helper()
	return startServer(t, cfg, configure, false)
}

// startServer is newServer, over TLS if useTLS.
func startServer(t *testing.T, cfg handler.Config, configure func(*fh.Server), useTLS bool) *server {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Heartbeat == 0 {
		cfg.Heartbeat = testHeartbeat
	}
	h, err := handler.New(cfg)
	if err != nil {
		t.Fatalf("handler.New: %v", err)
	}
	srv := fasthttp.NewServer(h)
	srv.Logger = discardLogger{} // fasthttp logs the malformed requests of some tests
	if configure != nil {
		configure(srv)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	tr := &http.Transport{MaxIdleConnsPerHost: 32}
	s := &server{
		t: t, h: h, srv: srv, tr: tr, ctx: ctx,
		client: &http.Client{Transport: tr},
		addr:   ln.Addr().String(),
		served: make(chan error, 1),
	}
	s.url = "http://" + s.addr + "/sse"
	if useTLS {
		cert, key, err := fh.GenerateTestCertificate("127.0.0.1")
		if err != nil {
			t.Fatal(err)
		}
		if err := srv.AppendCertEmbed(cert, key); err != nil {
			t.Fatal(err)
		}
		tr.TLSClientConfig = &tls.Config{InsecureSkipVerify: true}
		s.url = "https://" + s.addr + "/sse"
		go func() { s.served <- srv.ServeTLS(ln, "", "") }()
	} else {
		go func() { s.served <- srv.Serve(ln) }()
	}
	t.Cleanup(func() {
		cancel()
		sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer scancel()
		_ = h.Shutdown(sctx)
		// fasthttp counts a connection that never sent a request (the
		// transport may dial one more than it uses) as idle only after 5 s.
		tr.CloseIdleConnections()
		if err := srv.ShutdownWithContext(sctx); err != nil {
			buf := make([]byte, 1<<20)
			t.Errorf("server shutdown: %v\n%s", err, buf[:runtime.Stack(buf, true)])
		}
		tr.CloseIdleConnections()
		select {
		case err := <-s.served:
			if err != nil {
				t.Errorf("Serve: %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Error("Serve did not return")
		}
	})
	return s
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

// do sends a request and returns its response with the whole body read.
func (s *server) do(req *http.Request) (*http.Response, string) {
	s.t.Helper()
	resp, err := s.client.Do(req)
	if err != nil {
		s.t.Fatalf("%s: %v", req.Method, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		s.t.Fatalf("%s: reading the body: %v", req.Method, err)
	}
	return resp, string(b)
}

// post sends one message and returns the status and body.
func (s *server) post(id, body string, hdr ...string) (int, string) {
	s.t.Helper()
	resp, b := s.do(s.request(s.ctx, http.MethodPost, strings.NewReader(body), append(hdr, "X-Crossws-Id", id)...))
	return resp.StatusCode, b
}

type stream struct {
	resp   *http.Response
	ev     *ssetest.Reader
	id     string
	cancel context.CancelFunc
}

// get sends a stream request and returns the response, whatever its status;
// the stream is closed when the test ends.
func (s *server) get(hdr ...string) *stream {
	s.t.Helper()
	ctx, cancel := context.WithCancel(s.ctx)
	resp, err := s.client.Do(s.request(ctx, http.MethodGet, nil, append([]string{"Accept", "text/event-stream"}, hdr...)...))
	if err != nil {
		cancel()
		s.t.Fatalf("GET: %v", err)
	}
	s.t.Cleanup(func() { cancel(); resp.Body.Close() })
	return &stream{resp: resp, ev: ssetest.NewReader(resp.Body), id: resp.Header.Get("X-Crossws-Id"), cancel: cancel}
}

// open opens a stream and reads its crossws-id event.
func (s *server) open(hdr ...string) *stream {
	s.t.Helper()
	st := s.get(hdr...)
	if st.resp.StatusCode != http.StatusOK {
		s.t.Fatalf("GET: status %d", st.resp.StatusCode)
	}
	hello := st.ev.Event(s.t)
	if hello.Type != "crossws-id" || hello.Data != st.id || !ssetest.SameID(hello.ID, st.id+".0") {
		s.t.Fatalf("first event %+v, want crossws-id %s", hello, st.id)
	}
	return st
}

// close drops the client side of a stream.
func (st *stream) close() {
	st.cancel()
	st.resp.Body.Close()
}

func (s *server) peer(id string) *handler.Peer {
	s.t.Helper()
	p, ok := s.h.Peer(id)
	if !ok {
		s.t.Fatalf("peer %s not open", id)
	}
	return p
}

// detach drops a stream and waits until its peer noticed.
func (s *server) detach(st *stream) *handler.Peer {
	s.t.Helper()
	p := s.peer(st.id)
	st.close()
	ssetest.Eventually(s.t, "peer "+st.id+" to detach", func() bool { return !p.Connected() })
	return p
}

// upload is a streamed POST whose body the test writes as it goes.
type upload struct {
	pw   *io.PipeWriter
	done chan uploadResult
}

type uploadResult struct {
	status int
	body   string
	close  bool // the response said Connection: close
	err    error
}

// startUpload starts a streamed upload (crossws's stream mode): chunked,
// application/octet-stream, a body that ends only when the test closes it.
func (s *server) startUpload(id string) *upload {
	s.t.Helper()
	pr, pw := io.Pipe()
	s.t.Cleanup(func() { _ = pw.CloseWithError(io.ErrClosedPipe) })
	req := s.request(s.ctx, http.MethodPost, pr, "X-Crossws-Id", id, "Content-Type", "application/octet-stream")
	u := &upload{pw: pw, done: make(chan uploadResult, 1)}
	go func() {
		resp, err := s.client.Do(req)
		if err != nil {
			u.done <- uploadResult{err: err}
			return
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		u.done <- uploadResult{resp.StatusCode, string(b), resp.Close, err}
	}()
	return u
}

func (u *upload) write(t *testing.T, s string) {
	t.Helper()
	if _, err := io.WriteString(u.pw, s); err != nil {
		t.Fatalf("upload write: %v", err)
	}
}

func eid(id string, seq int) string { return id + "." + strconv.Itoa(seq) }

// rawConn is a TCP connection to the server that the test drives by hand.
func (s *server) rawConn() net.Conn {
	s.t.Helper()
	c, err := net.Dial("tcp", s.addr)
	if err != nil {
		s.t.Fatal(err)
	}
	s.t.Cleanup(func() { c.Close() })
	return c
}

// readUntilClosed reads c until the server closes it, within the test's
// wait bound, and reports whether it did.
func readUntilClosed(c net.Conn) error {
	_ = c.SetReadDeadline(time.Now().Add(ssetest.Timeout))
	_, err := io.Copy(io.Discard, c)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return err
	}
	return nil
}

type discardLogger struct{}

func (discardLogger) Printf(string, ...any) {}

// newRecordingServer is newServer with a Message hook that passes every
// message's text to the returned channel (cfg's own Message hook is
// replaced).
func newRecordingServer(t *testing.T, cfg handler.Config, configure func(*fh.Server)) (*server, <-chan string) {
	t.Helper()
	msgs := make(chan string, 16)
	cfg.Hooks.Message = func(p *handler.Peer, m handler.Message) { msgs <- m.Text() }
	return newServer(t, cfg, configure), msgs
}
