package fasthttp_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	fh "github.com/valyala/fasthttp"

	"github.com/ssebridge/ssebridge/fasthttp"
	"github.com/ssebridge/ssebridge/handler"
	"github.com/ssebridge/ssebridge/internal/ssetest"
)

func TestNewServer(t *testing.T) {
	t.Parallel()
	h, err := handler.New(handler.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Shutdown(context.Background())
	srv := fasthttp.NewServer(h)
	if srv.Handler == nil || srv.ErrorHandler == nil || !srv.StreamRequestBody || srv.WriteTimeout != 0 || srv.ReadBufferSize != 8<<10 ||
		srv.ReadTimeout != 30*time.Second || srv.IdleTimeout != 2*time.Minute ||
		!srv.NoDefaultServerHeader || !srv.NoDefaultContentType || !srv.CloseOnShutdown || !srv.DisablePreParseMultipartForm {
		t.Fatalf("NewServer: %+v", srv)
	}
}

func TestExchange(t *testing.T) {
	t.Parallel()
	s := newServer(t, handler.Config{Hooks: handler.Hooks{
		Message: func(p *handler.Peer, m handler.Message) { _ = p.SendText("echo: " + m.Text()) },
	}}, nil)
	st := s.open()
	for name, want := range map[string]string{
		"Content-Type":      "text/event-stream",
		"Cache-Control":     "no-cache",
		"X-Accel-Buffering": "no",
		"Server":            "",
		"Content-Length":    "",
	} {
		if got := st.resp.Header.Get(name); got != want {
			t.Errorf("%s: %q, want %q", name, got, want)
		}
	}
	if len(st.resp.TransferEncoding) != 1 || st.resp.TransferEncoding[0] != "chunked" || st.resp.Close {
		t.Errorf("stream response: Transfer-Encoding %q, Close %v; want chunked, keep-alive", st.resp.TransferEncoding, st.resp.Close)
	}
	for i, m := range []string{"hi", "two\nlines", "ünïcode 😀", "", strings.Repeat("big ", 15000)} {
		if code, body := s.post(st.id, m); code != http.StatusOK || body != "" {
			t.Fatalf("POST of %d bytes: %d %q", len(m), code, body)
		}
		st.ev.Expect(t, "message", "echo: "+m, eid(st.id, i+1))
	}
}

// Each batch of frames is one chunk on the wire, however large (up to the
// engine's 64 KiB batches), and the status line and headers leave with the
// first chunk.
func TestOneChunkPerBatch(t *testing.T) {
	t.Parallel()
	opened := make(chan *handler.Peer, 1)
	s := newServer(t, handler.Config{Heartbeat: -1, Hooks: handler.Hooks{
		Open: func(p *handler.Peer) { opened <- p },
	}}, nil)
	c := s.rawConn()
	fmt.Fprintf(c, "GET /sse HTTP/1.1\r\nHost: %s\r\nAccept: text/event-stream\r\n\r\n", s.addr)
	p := ssetest.Recv(t, opened, "Open")
	br := newChunkReader(t, c)
	br.headers()
	hello := br.chunk()
	if !bytes.Contains(hello, []byte("event: crossws-id\ndata: "+p.ID()+"\n\n")) {
		t.Fatalf("first chunk %q, want the hello", hello)
	}
	for _, size := range []int{10, 5000, 40 << 10} {
		msg := strings.Repeat("m", size)
		if err := p.SendText(msg); err != nil {
			t.Fatal(err)
		}
		got := br.chunk()
		if !bytes.HasSuffix(got, []byte("data: "+msg+"\n\n")) || !bytes.HasPrefix(got, []byte("id: ")) {
			t.Fatalf("a %d-byte message came as a %d-byte chunk, want one chunk with the whole event", size, len(got))
		}
	}
}

func TestPublishFanOut(t *testing.T) {
	t.Parallel()
	const n = 6
	subscribed := make(chan error, n)
	s := newServer(t, handler.Config{Hooks: handler.Hooks{
		Open:    func(p *handler.Peer) { subscribed <- p.Subscribe("all") },
		Message: func(p *handler.Peer, m handler.Message) { _ = p.Publish("all", p.ID()+":"+m.Text()) },
	}}, nil)
	streams := make([]*stream, n)
	for i := range streams {
		streams[i] = s.open()
		if err := ssetest.Recv(t, subscribed, "Open"); err != nil {
			t.Fatal(err)
		}
	}
	// A publication from the server reaches everyone, once.
	if err := s.h.Publish("all", "from the server"); err != nil {
		t.Fatal(err)
	}
	for _, st := range streams {
		if e := st.ev.Event(t); e.Data != "from the server" {
			t.Fatalf("peer %s got %q", st.id, e.Data)
		}
	}
	// Concurrent POSTs: every peer gets every other peer's publication.
	errs := make(chan string, n)
	for _, st := range streams {
		go func() {
			req := s.request(s.ctx, http.MethodPost, strings.NewReader("hello"), "X-Crossws-Id", st.id)
			resp, err := s.client.Do(req)
			if err != nil {
				errs <- err.Error()
				return
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				errs <- resp.Status
				return
			}
			errs <- ""
		}()
	}
	for range n {
		if e := ssetest.Recv(t, errs, "POST"); e != "" {
			t.Fatalf("POST: %s", e)
		}
	}
	for _, st := range streams {
		got := map[string]bool{}
		for range n - 1 {
			e := st.ev.Event(t)
			if got[e.Data] || !strings.HasSuffix(e.Data, ":hello") || strings.HasPrefix(e.Data, st.id) {
				t.Fatalf("peer %s got %q (already: %v)", st.id, e.Data, got)
			}
			got[e.Data] = true
		}
	}
}

func TestResume(t *testing.T) {
	t.Parallel()
	var opens, resumes atomic.Int32
	s := newServer(t, handler.Config{Hooks: handler.Hooks{
		Open: func(p *handler.Peer) {
			opens.Add(1)
			_ = p.Subscribe("room")
			_ = p.SendText("m1")
			_ = p.SendText("m2")
		},
		Resume: func(p *handler.Peer) {
			resumes.Add(1)
			_ = p.SendText("welcome back")
		},
	}}, nil)
	st := s.open()
	st.ev.Expect(t, "message", "m1", eid(st.id, 1))
	st.ev.Expect(t, "message", "m2", eid(st.id, 2))
	p := s.detach(st)

	// Sent and published while the client is away: kept for it.
	if err := p.SendText("m3"); err != nil {
		t.Fatal(err)
	}
	if err := s.h.Publish("room", "m4"); err != nil {
		t.Fatal(err)
	}
	st2 := s.get("Last-Event-ID", eid(st.id, 1)) // as if m2 never arrived
	if st2.resp.StatusCode != http.StatusOK || st2.id != st.id {
		t.Fatalf("resume: %d, X-Crossws-Id %q, want 200 %s", st2.resp.StatusCode, st2.id, st.id)
	}
	st2.ev.Expect(t, "crossws-id", st.id, eid(st.id, 1))
	for i, m := range []string{"m2", "m3", "m4", "welcome back"} {
		st2.ev.Expect(t, "message", m, eid(st.id, i+2))
	}
	if o, r := opens.Load(), resumes.Load(); o != 1 || r != 1 {
		t.Fatalf("Open ran %d times, Resume %d; want 1, 1", o, r)
	}
	if code, _ := s.post(st.id, "still there"); code != http.StatusOK {
		t.Fatalf("POST after resume: %d", code)
	}
	if !p.Connected() || p.Resumes() != 1 {
		t.Fatalf("connected %v, resumes %d", p.Connected(), p.Resumes())
	}
}

// A stream that ends on the server's side ends with the last chunk, and
// its connection serves the next request.
func TestStreamEndKeepsConnection(t *testing.T) {
	t.Parallel()
	s := newServer(t, handler.Config{}, nil)
	var conns []net.Conn
	var mu sync.Mutex
	trace := &httptrace.ClientTrace{GotConn: func(i httptrace.GotConnInfo) {
		mu.Lock()
		conns = append(conns, i.Conn)
		mu.Unlock()
	}}
	s.ctx = httptrace.WithClientTrace(s.ctx, trace)
	st := s.open()
	if err := s.peer(st.id).Close(4000, "done"); err != nil {
		t.Fatal(err)
	}
	st.ev.Expect(t, "close", `{"code":4000,"reason":"done"}`, st.id+".closed")
	st.ev.End(t)
	st.resp.Body.Close()
	// A reconnection after the close event gets 204: the client stops.
	st2 := s.get("Last-Event-ID", st.id+".closed")
	if st2.resp.StatusCode != http.StatusNoContent {
		t.Fatalf("reconnection after close: %d, want 204", st2.resp.StatusCode)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(conns) != 2 || conns[0] != conns[1] {
		t.Fatalf("connections %v, want one, reused", conns)
	}
}

// A client that goes away is noticed at the next heartbeat: its peer
// detaches, closes after ReconnectGrace, and nothing of its stream stays
// behind (the connection's goroutines included).
func TestClientDisconnect(t *testing.T) { // not parallel: it counts goroutines
	closes := make(chan handler.CloseDetails, 2)
	s := newServer(t, handler.Config{
		Heartbeat:      10 * time.Millisecond,
		ReconnectGrace: 50 * time.Millisecond,
		Hooks: handler.Hooks{
			Close: func(p *handler.Peer, d handler.CloseDetails) { closes <- d },
		},
	}, func(srv *fh.Server) { srv.MaxIdleWorkerDuration = 10 * time.Millisecond })
	tr := &http.Transport{DisableKeepAlives: true}
	t.Cleanup(tr.CloseIdleConnections)
	s.client = &http.Client{Transport: tr}

	cycle := func() {
		t.Helper()
		st := s.open()
		p := s.peer(st.id)
		if !p.Connected() {
			t.Fatal("peer not connected")
		}
		s.detach(st)
		if d := ssetest.Recv(t, closes, "Close hook"); d.Code != handler.CloseAbnormal {
			t.Fatalf("Close hook %+v, want 1006", d)
		}
		if _, ok := s.h.Peer(st.id); ok {
			t.Fatal("peer still open")
		}
	}
	cycle() // lazily started goroutines start here
	ssetest.Eventually(t, "the first stream's goroutines to end", noStreamGoroutines)
	before := runtime.NumGoroutine()
	cycle()
	ssetest.Eventually(t, "the stream's goroutines to end", func() bool {
		return noStreamGoroutines() && runtime.NumGoroutine() <= before
	})
}

// noStreamGoroutines reports whether no goroutine runs a stream's body.
func noStreamGoroutines() bool {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	return !bytes.Contains(buf, []byte("engine.(*Stream).body")) && !bytes.Contains(buf, []byte("fasthttp.(*respStream)"))
}

// A client that stops reading loses its stream after the engine's
// WriteTimeout, and its connection, without holding up anyone else.
func TestSlowClient(t *testing.T) {
	t.Parallel()
	opened := make(chan *handler.Peer, 2)
	closes := make(chan handler.CloseDetails, 2)
	var closedConns sync.Map // remote addresses of the connections the server closed
	s := newServer(t, handler.Config{
		WriteTimeout:   100 * time.Millisecond,
		QueueSize:      256 << 20, // the write timeout, not the queue, must end it
		ReconnectGrace: 50 * time.Millisecond,
		Heartbeat:      -1,
		Hooks: handler.Hooks{
			Open:  func(p *handler.Peer) { _ = p.Subscribe("t"); opened <- p },
			Close: func(p *handler.Peer, d handler.CloseDetails) { closes <- d },
		},
	}, func(srv *fh.Server) {
		srv.ConnState = func(c net.Conn, cs fh.ConnState) {
			if cs == fh.StateClosed {
				closedConns.Store(c.RemoteAddr().String(), true)
			}
		}
	})
	fast := s.open()
	ssetest.Recv(t, opened, "Open of the fast peer")

	c := s.rawConn()
	_ = c.(*net.TCPConn).SetReadBuffer(4 << 10)
	fmt.Fprintf(c, "GET /sse HTTP/1.1\r\nHost: %s\r\nAccept: text/event-stream\r\n\r\n", s.addr)
	slow := ssetest.Recv(t, opened, "Open of the slow peer")

	payload := strings.Repeat("x", 32<<10)
	published := 0
	ssetest.Eventually(t, "the slow peer to detach", func() bool {
		if !slow.Connected() {
			return true
		}
		if err := s.h.Publish("t", payload); err != nil {
			t.Fatal(err)
		}
		published++
		return false
	})
	if d := ssetest.Recv(t, closes, "Close hook"); d.Code != handler.CloseAbnormal {
		t.Fatalf("slow peer closed with %+v, want 1006 (write timeout, then grace)", d)
	}
	// The fast client got everything, in order, all along.
	for i := range published {
		if e := fast.ev.Event(t); e.Data != payload {
			t.Fatalf("publication %d: %d bytes", i, len(e.Data))
		}
	}
	if err := s.h.Publish("t", "after"); err != nil {
		t.Fatal(err)
	}
	if e := fast.ev.Event(t); e.Data != "after" {
		t.Fatalf("got %q", e.Data)
	}
	// The server closed the slow client's connection (whose unread bytes
	// the kernel may take long to deliver through its tiny window).
	ssetest.Eventually(t, "the server to close the slow connection", func() bool {
		_, ok := closedConns.Load(c.LocalAddr().String())
		return ok
	})
}

// A server WriteTimeout must not cut streams: they set their own write
// deadlines, which makes fasthttp skip its own.
func TestServerWriteTimeout(t *testing.T) {
	t.Parallel()
	const writeTimeout = 100 * time.Millisecond
	s := newServer(t, handler.Config{Heartbeat: -1}, func(srv *fh.Server) { srv.WriteTimeout = writeTimeout })
	st := s.open()
	p := s.peer(st.id)
	time.Sleep(4 * writeTimeout) // idle well past the server's write timeout
	if st.ev.Ended() || !p.Connected() {
		t.Fatalf("stream ended after the server's WriteTimeout (%v)", st.ev.Err())
	}
	_ = p.SendText("late")
	st.ev.Expect(t, "message", "late", eid(st.id, 1))
	if code, _ := s.post(st.id, "up"); code != http.StatusOK {
		t.Fatalf("POST: %d", code)
	}
}

// Neither streams nor streamed uploads may end when the server's
// ReadTimeout passes.
func TestServerReadTimeout(t *testing.T) {
	t.Parallel()
	const readTimeout = 100 * time.Millisecond
	s, msgs := newRecordingServer(t, handler.Config{Heartbeat: -1}, func(srv *fh.Server) { srv.ReadTimeout = readTimeout })
	st := s.open()
	p := s.peer(st.id)
	u := s.startUpload(st.id)
	u.write(t, "a")
	if got := ssetest.Recv(t, msgs, "first upload message"); got != "a" {
		t.Fatalf("message %q", got)
	}
	time.Sleep(4 * readTimeout) // idle well past the read timeout
	if st.ev.Ended() || !p.Connected() {
		t.Fatalf("stream ended after the server's ReadTimeout (%v)", st.ev.Err())
	}
	_ = p.SendText("late")
	st.ev.Expect(t, "message", "late", eid(st.id, 1))
	u.write(t, "b")
	if got := ssetest.Recv(t, msgs, "second upload message"); got != "b" {
		t.Fatalf("message %q", got)
	}
	_ = u.pw.Close()
	if r := ssetest.Recv(t, u.done, "upload response"); r.err != nil || r.status != http.StatusOK {
		t.Fatalf("upload response %+v", r)
	}
}

// Handler.Shutdown, then Server.ShutdownWithContext: both return promptly,
// with streams and a streamed upload open.
func TestShutdown(t *testing.T) {
	t.Parallel()
	s, msgs := newRecordingServer(t, handler.Config{Heartbeat: -1}, nil)
	streams := []*stream{s.open(), s.open(), s.open()}
	u := s.startUpload(streams[0].id)
	u.write(t, "up")
	ssetest.Recv(t, msgs, "upload message")

	ctx, cancel := context.WithTimeout(context.Background(), ssetest.Timeout)
	defer cancel()
	if err := s.h.Shutdown(ctx); err != nil {
		t.Fatalf("Handler.Shutdown: %v", err)
	}
	for _, st := range streams {
		st.ev.End(t) // no close event: the clients reconnect elsewhere
	}
	if r := ssetest.Recv(t, u.done, "upload response"); r.err == nil && r.status != http.StatusGone {
		t.Fatalf("upload response %+v, want 410 (or the connection closed)", r)
	}
	s.tr.CloseIdleConnections() // see newServer's cleanup
	if err := s.srv.ShutdownWithContext(ctx); err != nil {
		t.Fatalf("Server.ShutdownWithContext: %v", err)
	}
	if err := ssetest.Recv(t, s.served, "Serve to return"); err != nil {
		t.Fatalf("Serve: %v", err)
	}
	s.served <- nil // for the cleanup
}

// Server.ShutdownWithContext alone does not wait for streams either: they
// end when the server's context is done, and their peers wait for their
// clients to come back (elsewhere).
func TestServerShutdownAlone(t *testing.T) {
	t.Parallel()
	s, msgs := newRecordingServer(t, handler.Config{Heartbeat: -1, ReconnectGrace: time.Minute}, nil)
	streams := []*stream{s.open(), s.open()}
	u := s.startUpload(streams[0].id)
	u.write(t, "up")
	ssetest.Recv(t, msgs, "upload message")
	ctx, cancel := context.WithTimeout(context.Background(), ssetest.Timeout)
	defer cancel()
	s.tr.CloseIdleConnections()
	if err := s.srv.ShutdownWithContext(ctx); err != nil {
		t.Fatalf("Server.ShutdownWithContext: %v", err)
	}
	for _, st := range streams {
		st.ev.End(t)
		p := s.peer(st.id)
		if p.Connected() || p.Closed() {
			t.Fatalf("peer connected %v closed %v, want detached", p.Connected(), p.Closed())
		}
	}
	// The streamed upload (on a connection fasthttp no longer counts)
	// ends too.
	if r := ssetest.Recv(t, u.done, "upload response"); r.err == nil && r.status != http.StatusOK {
		t.Fatalf("upload response %+v", r)
	}
}

type ctxKey struct{}

var userKey = handler.NewKey[string]("user")

// The request's context outlives the request (the peer keeps it) although
// fasthttp reuses its RequestCtx: it keeps the user values a middleware set
// and never reads the reused RequestCtx (the race detector would tell). The
// peer's Request snapshot does not alias fasthttp's buffers either.
func TestRequestOutlivesRequestCtx(t *testing.T) {
	t.Parallel()
	opened := make(chan *handler.Peer, 1)
	s := newServer(t, handler.Config{Hooks: handler.Hooks{
		Upgrade: func(u *handler.Upgrade) error {
			user, _ := u.Request.Context().Value("user").(string)
			if user == "" {
				return handler.Reject(http.StatusUnauthorized, "who are you?")
			}
			if u.Kind == handler.UpgradeOpen {
				userKey.Set(u, user)
			}
			return nil
		},
		Open: func(p *handler.Peer) { opened <- p },
	}}, func(srv *fh.Server) {
		inner := srv.Handler
		srv.Handler = func(ctx *fh.RequestCtx) {
			ctx.SetUserValue("user", string(ctx.Request.Header.Peek("X-User")))
			ctx.SetUserValue(ctxKey{}, "key value")
			inner(ctx)
		}
	})
	if resp, body := s.do(s.request(s.ctx, http.MethodGet, nil, "Accept", "text/event-stream")); resp.StatusCode != http.StatusUnauthorized || body != "who are you?" {
		t.Fatalf("no user: %d %q", resp.StatusCode, body)
	}
	st := s.open("X-User", "alice", "X-Probe", "first", "Last-Event-ID", "garbage")
	p := ssetest.Recv(t, opened, "Open")

	check := func() {
		ctx := p.Context()
		if v, ok := userKey.Get(p); !ok || v != "alice" {
			t.Errorf("userKey %q %v", v, ok)
		}
		if v := ctx.Value("user"); v != "alice" {
			t.Errorf("user value %v", v)
		}
		if v := ctx.Value([]byte("user")); v != "alice" {
			t.Errorf("user value by []byte key %v", v)
		}
		if v := ctx.Value(ctxKey{}); v != "key value" {
			t.Errorf("ctxKey value %v", v)
		}
		if v := ctx.Value("absent"); v != nil {
			t.Errorf("absent value %v", v)
		}
		r := p.Request()
		if r.Method() != "GET" || r.Path() != "/sse" || r.Host() != s.addr || r.Header("x-probe") != "first" ||
			r.Header("Last-Event-Id") != "garbage" || !strings.HasPrefix(r.RemoteAddr(), "127.0.0.1:") {
			t.Errorf("snapshot: %s %s host %s probe %q remote %s", r.Method(), r.Path(), r.Host(), r.Header("x-probe"), r.RemoteAddr())
		}
	}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
				check()
			}
		}
	})
	for i := range 50 {
		code, _ := s.post(st.id, "m", "X-User", fmt.Sprint("bob", i), "X-Probe", "later")
		if code != http.StatusOK {
			t.Fatalf("POST: %d", code)
		}
	}
	close(stop)
	wg.Wait()
	check()
}

// Through fasthttp's compression middleware, the stream is written on
// another goroutine, through a pipe; it still flushes each batch and
// notices a client that left.
func TestThroughCompressHandler(t *testing.T) {
	t.Parallel()
	s := newServer(t, handler.Config{Heartbeat: 10 * time.Millisecond}, func(srv *fh.Server) {
		srv.Handler = fh.CompressHandler(srv.Handler)
	})
	st := s.open() // the Go client asks for gzip and decompresses
	if !st.resp.Uncompressed {
		t.Fatalf("the stream was not compressed (Content-Encoding %q)", st.resp.Header.Get("Content-Encoding"))
	}
	p := s.peer(st.id)
	_ = p.SendText("through gzip")
	st.ev.Expect(t, "message", "through gzip", eid(st.id, 1))
	s.detach(st)
}

// fasthttp serves TLS too; nothing changes for streams.
func TestTLS(t *testing.T) {
	t.Parallel()
	s := startServer(t, handler.Config{Hooks: handler.Hooks{
		Message: func(p *handler.Peer, m handler.Message) { _ = p.SendText("echo: " + m.Text()) },
	}}, nil, true)
	st := s.open()
	if st.resp.TLS == nil {
		t.Fatal("not TLS")
	}
	if code, _ := s.post(st.id, "secure"); code != http.StatusOK {
		t.Fatalf("POST: %d", code)
	}
	st.ev.Expect(t, "message", "echo: secure", eid(st.id, 1))
	s.detach(st)
}

// chunkReader reads an HTTP/1.1 chunked response by hand.
type chunkReader struct {
	t *testing.T
	r *bufio.Reader
}

func newChunkReader(t *testing.T, c net.Conn) *chunkReader {
	_ = c.SetReadDeadline(time.Now().Add(ssetest.Timeout))
	return &chunkReader{t: t, r: bufio.NewReader(c)}
}

func (c *chunkReader) headers() {
	c.t.Helper()
	status := c.line()
	if !strings.HasPrefix(status, "HTTP/1.1 200 ") {
		c.t.Fatalf("status line %q", status)
	}
	chunked := false
	for {
		l := c.line()
		if l == "" {
			break
		}
		if strings.EqualFold(l, "Transfer-Encoding: chunked") {
			chunked = true
		}
	}
	if !chunked {
		c.t.Fatal("response not chunked")
	}
}

func (c *chunkReader) line() string {
	c.t.Helper()
	l, err := c.r.ReadString('\n')
	if err != nil {
		c.t.Fatalf("reading the response: %v", err)
	}
	return strings.TrimSuffix(l, "\r\n")
}

func (c *chunkReader) chunk() []byte {
	c.t.Helper()
	var n int
	if _, err := fmt.Sscanf(c.line(), "%x", &n); err != nil {
		c.t.Fatalf("chunk size: %v", err)
	}
	b := make([]byte, n+2)
	if _, err := io.ReadFull(c.r, b); err != nil {
		c.t.Fatalf("chunk: %v", err)
	}
	return b[:n]
}
