package crossws_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ssebridge/ssebridge/handler"
	"github.com/ssebridge/ssebridge/netfx"
)

// End-to-end helpers: a real net/http server on loopback serving a fresh
// Handler through netfx, Go's http.Client, and an event-stream reader
// written from the WHATWG rules (HTML §9.2.5–9.2.6), independent of the
// encoder under test.

const (
	testTimeout = 10 * time.Second // bounds every test's requests
	waitTimeout = 5 * time.Second  // bounds each single wait
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
	ev     *sseReader
	cancel context.CancelFunc
}

// get sends a stream request (Accept: text/event-stream plus hdr) and
// returns the response without checking it; the body is read by an
// sseReader.
func (s *server) get(hdr ...string) *stream {
	s.t.Helper()
	ctx, cancel := context.WithCancel(s.ctx)
	req := s.request(ctx, http.MethodGet, nil, append([]string{"Accept", "text/event-stream"}, hdr...)...)
	resp, err := s.client.Do(req)
	if err != nil {
		cancel()
		s.t.Fatalf("GET: %v", err)
	}
	st := &stream{resp: resp, ev: newSSEReader(resp.Body), cancel: cancel}
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
	hello := st.ev.event(s.t)
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

// eventually polls cond (for states no hook reports, like a detached
// stream) until it holds or waitTimeout passes.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// recv receives from ch within waitTimeout.
func recv[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(waitTimeout):
		t.Fatalf("timed out waiting for %s", what)
		panic("unreachable")
	}
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
	m := recv(t, r.msgs, "message "+quote(want))
	if m.peer != peer || m.text != want {
		t.Fatalf("message %q for %s, want %q for %s", short(m.text), m.peer, short(want), peer)
	}
}

// closeOf waits for the next Close hook and checks its peer.
func (r *recorder) closeOf(t *testing.T, peer string) handler.CloseDetails {
	t.Helper()
	c := recv(t, r.closes, "Close of "+peer)
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

// ---- event-stream reader ----

type itemKind int

const (
	itemEvent   itemKind = iota + 1 // a dispatched event
	itemComment                     // a comment line
	itemRetry                       // a retry field that set the reconnection time
)

// item is one thing a client observes on a stream, in order.
type item struct {
	Kind itemKind
	// Event: type ("message" when none), data, the last event ID buffer at
	// dispatch, and whether the event's own lines carried an id field.
	Type, Data, ID string
	OwnID          bool
	// Comment text after ':' (a heartbeat ": ping" gives " ping"), or
	// retry value.
	Text string
}

// sseReader parses an event stream on its own goroutine and queues what
// it sees without bound, so that a slow test never slows the stream.
type sseReader struct {
	mu    sync.Mutex
	items []item
	err   error // the end of the stream: io.EOF for a clean end
	wake  chan struct{}
}

func newSSEReader(body io.Reader) *sseReader {
	r := &sseReader{wake: make(chan struct{}, 1)}
	go r.run(bufio.NewReader(body))
	return r
}

func (r *sseReader) emit(it item) {
	r.mu.Lock()
	r.items = append(r.items, it)
	r.mu.Unlock()
	r.signal()
}

func (r *sseReader) signal() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

func (r *sseReader) run(br *bufio.Reader) {
	var (
		data     strings.Builder
		haveData bool
		evType   string
		lastID   string
		ownID    bool
		line     []byte
		afterCR  bool
		first    = true
	)
	dispatch := func() {
		if haveData {
			typ := evType
			if typ == "" {
				typ = "message"
			}
			r.emit(item{Kind: itemEvent, Type: typ, Data: strings.TrimSuffix(data.String(), "\n"), ID: lastID, OwnID: ownID})
		}
		data.Reset()
		haveData, evType, ownID = false, "", false
	}
	process := func(l string) {
		if first {
			l = strings.TrimPrefix(l, "\uFEFF")
			first = false
		}
		switch {
		case l == "":
			dispatch()
		case l[0] == ':':
			r.emit(item{Kind: itemComment, Text: l[1:]})
		default:
			field, value, found := strings.Cut(l, ":")
			if found {
				value = strings.TrimPrefix(value, " ")
			}
			switch field {
			case "event":
				evType = value
			case "data":
				data.WriteString(value)
				data.WriteByte('\n')
				haveData = true
			case "id":
				if !strings.Contains(value, "\x00") {
					lastID, ownID = value, true
				}
			case "retry":
				if value != "" && strings.Trim(value, "0123456789") == "" {
					r.emit(item{Kind: itemRetry, Text: value})
				}
			}
		}
	}
	for {
		c, err := br.ReadByte()
		if err != nil {
			// An incomplete event at the end is never dispatched.
			r.mu.Lock()
			r.err = err
			r.mu.Unlock()
			r.signal()
			return
		}
		switch {
		case c == '\n' && afterCR:
			afterCR = false
		case c == '\n' || c == '\r':
			afterCR = c == '\r'
			process(string(line))
			line = line[:0]
		default:
			afterCR = false
			line = append(line, c)
		}
	}
}

// next returns the next item; ok is false at the end of the stream.
func (r *sseReader) next(t *testing.T) (it item, ok bool) {
	t.Helper()
	timeout := time.After(waitTimeout)
	for {
		r.mu.Lock()
		if len(r.items) > 0 {
			it = r.items[0]
			r.items = r.items[1:]
			r.mu.Unlock()
			return it, true
		}
		done := r.err != nil
		r.mu.Unlock()
		if done {
			return item{}, false
		}
		select {
		case <-r.wake:
		case <-timeout:
			t.Fatalf("timed out waiting for the stream")
		}
	}
}

// event returns the next event, skipping comments and retry fields.
func (r *sseReader) event(t *testing.T) item {
	t.Helper()
	for {
		it, ok := r.next(t)
		if !ok {
			t.Fatalf("stream ended (%v), want an event", r.endErr())
		}
		if it.Kind == itemEvent {
			return it
		}
	}
}

// expect reads the next event and checks its type, data and own id.
func (r *sseReader) expect(t *testing.T, typ, data, id string) {
	t.Helper()
	it := r.event(t)
	if it.Type != typ || it.Data != data || it.ID != id || !it.OwnID {
		t.Fatalf("event %+v, want type %q data %q own id %q", it, typ, short(data), id)
	}
}

// rest reads to the end of the stream and returns what is left; the
// stream must end cleanly.
func (r *sseReader) rest(t *testing.T) []item {
	t.Helper()
	var out []item
	for {
		it, ok := r.next(t)
		if !ok {
			break
		}
		out = append(out, it)
	}
	if err := r.endErr(); !errors.Is(err, io.EOF) {
		t.Fatalf("stream ended with %v, want a clean end (EOF)", err)
	}
	return out
}

// end checks that nothing but comments is left before a clean end.
func (r *sseReader) end(t *testing.T) {
	t.Helper()
	for _, it := range r.rest(t) {
		if it.Kind != itemComment {
			t.Fatalf("got %+v, want the end of the stream", it)
		}
	}
}

func (r *sseReader) endErr() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.err
}
