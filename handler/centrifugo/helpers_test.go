package centrifugo_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/ssebridge/ssebridge/handler"
	"github.com/ssebridge/ssebridge/handler/centrifugo"
	"github.com/ssebridge/ssebridge/handler/centrifugo/wire"
	"github.com/ssebridge/ssebridge/internal/ssetest"
	"github.com/ssebridge/ssebridge/netfx"
)

// End-to-end helpers: a Handler with the Centrifugo transports served by
// net/http on loopback, Go's http.Client, and the event-stream reader of
// internal/ssetest (written from the WHATWG rules, independently of the
// encoder under test). Replies are decoded with the wire types.

const testTimeout = 15 * time.Second

type server struct {
	t   *testing.T
	h   *handler.Handler
	srv *httptest.Server
	url string
	ctx context.Context
}

// newServer serves a Handler for cfg (Centrifugo set to cf) until the test
// ends.
func newServer(t *testing.T, cfg handler.Config, cf centrifugo.Config) *server {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	cfg.Centrifugo = &cf
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
	return &server{t: t, h: h, srv: srv, url: srv.URL, ctx: ctx}
}

// do sends a request and returns the response with its body read.
func (s *server) do(method, path string, body []byte, hdr ...string) (*http.Response, string) {
	s.t.Helper()
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(s.ctx, method, s.url+path, r)
	if err != nil {
		s.t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// conn is an open stream.
type conn struct {
	s       *server
	t       *testing.T
	resp    *http.Response
	r       *ssetest.Reader
	first   []byte // the bytes before the first event
	connect *wire.ConnectResult
	cancel  context.CancelFunc
	backlog []wire.Reply // pushes that arrived while call waited for a reply
	pong    bool         // answer pings (reply, push)
}

// open opens /connection/sse with cf_connect cmds (one JSON per line, the
// first a connect with id 1) and reads the connect reply.
func (s *server) open(cmds ...string) *conn {
	s.t.Helper()
	c := s.openRaw("GET", "/connection/sse?cf_connect="+url.QueryEscape(strings.Join(cmds, "\n")), nil)
	r := c.reply()
	if r.Connect == nil || r.ID != 1 {
		s.t.Fatalf("first reply %+v, want the connect result of id 1", r)
	}
	c.connect = r.Connect
	return c
}

// openUni opens /connection/uni_sse with cf_connect req ("" for none) and
// reads the connect push.
func (s *server) openUni(req string) *conn {
	s.t.Helper()
	path := "/connection/uni_sse"
	if req != "" {
		path += "?cf_connect=" + url.QueryEscape(req)
	}
	c := s.openRaw("GET", path, nil)
	p := c.push()
	if p.Connect == nil {
		s.t.Fatalf("first push %+v, want connect", p)
	}
	c.connect = p.Connect
	return c
}

// openRaw opens a stream and checks its status, headers and first bytes.
func (s *server) openRaw(method, path string, body []byte, hdr ...string) *conn {
	s.t.Helper()
	ctx, cancel := context.WithCancel(s.ctx)
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, s.url+path, rd)
	if err != nil {
		s.t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		cancel()
		s.t.Fatalf("%s %s: %v", method, path, err)
	}
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		cancel()
		s.t.Fatalf("%s %s: status %d %q", method, path, resp.StatusCode, b)
	}
	first := make([]byte, 2)
	if _, err := io.ReadFull(resp.Body, first); err != nil {
		s.t.Fatalf("read the first bytes: %v", err)
	}
	c := &conn{s: s, t: s.t, resp: resp, r: ssetest.NewReader(resp.Body), first: first, cancel: cancel}
	s.t.Cleanup(func() { cancel(); resp.Body.Close() })
	return c
}

// event returns the data of the next event, which must have no id and no
// event name.
func (c *conn) event() string {
	c.t.Helper()
	it := c.r.Event(c.t)
	if it.Type != "message" || it.OwnID {
		c.t.Fatalf("event %+v: want no event name and no id", it)
	}
	return it.Data
}

// reply returns the next reply that is not a ping.
func (c *conn) reply() wire.Reply {
	c.t.Helper()
	if len(c.backlog) > 0 {
		r := c.backlog[0]
		c.backlog = c.backlog[1:]
		return r
	}
	for {
		d := c.event()
		if d == "{}" {
			c.answerPing()
			continue
		}
		var r wire.Reply
		if err := json.Unmarshal([]byte(d), &r); err != nil {
			c.t.Fatalf("reply %q: %v", d, err)
		}
		return r
	}
}

// next returns the next reply from the stream, not the backlog.
func (c *conn) next() wire.Reply {
	c.t.Helper()
	saved := c.backlog
	c.backlog = nil
	r := c.reply()
	c.backlog = saved
	return r
}

// answerPing sends a pong when c.pong is set, without waiting.
func (c *conn) answerPing() {
	if c.pong {
		go c.post("{}")
	}
}

// post sends commands through /emulation from any goroutine, without
// checking the answer (the stream tells).
func (c *conn) post(cmds ...string) {
	resp, err := http.Post(c.s.url+"/emulation", "application/json", bytes.NewReader(c.envelope(cmds...)))
	if err == nil {
		resp.Body.Close()
	}
}

// push returns the next bare push that is not a ping (unidirectional).
func (c *conn) push() wire.Push {
	c.t.Helper()
	for {
		d := c.event()
		if d == "{}" {
			continue
		}
		var p wire.Push
		if err := json.Unmarshal([]byte(d), &p); err != nil {
			c.t.Fatalf("push %q: %v", d, err)
		}
		return p
	}
}

// envelope is an emulation request body for the connection.
func (c *conn) envelope(cmds ...string) []byte {
	b, err := json.Marshal(map[string]string{"session": c.connect.Session, "node": c.connect.Node, "data": strings.Join(cmds, "\n")})
	if err != nil {
		c.t.Fatal(err)
	}
	return b
}

// send posts commands through /emulation of s (the connection's server
// when nil) and expects 204.
func (c *conn) send(via *server, cmds ...string) {
	c.t.Helper()
	if via == nil {
		via = c.s
	}
	resp, body := via.do("POST", "/emulation", c.envelope(cmds...), "Content-Type", "application/json")
	if resp.StatusCode != http.StatusNoContent {
		c.t.Fatalf("emulation: status %d %q, want 204", resp.StatusCode, body)
	}
}

// call sends one command and returns its reply; pushes that arrive first
// are kept for reply.
func (c *conn) call(cmd string) wire.Reply {
	c.t.Helper()
	var probe struct {
		ID uint32 `json:"id"`
	}
	_ = json.Unmarshal([]byte(cmd), &probe)
	c.send(nil, cmd)
	for {
		r := c.next()
		if r.Push != nil && r.ID == 0 {
			c.backlog = append(c.backlog, r)
			continue
		}
		if r.ID != probe.ID {
			c.t.Fatalf("reply %+v, want id %d", r, probe.ID)
		}
		return r
	}
}

// disconnected reads until a disconnect push and checks that the stream
// then ends; it returns the push.
func (c *conn) disconnected() wire.DisconnectPush {
	c.t.Helper()
	for {
		r := c.reply()
		if r.Push != nil && r.Push.Disconnect != nil {
			c.r.End(c.t)
			return *r.Push.Disconnect
		}
	}
}

// errCode returns the code of a reply's error, 0 for none.
func errCode(r wire.Reply) uint32 {
	if r.Error == nil {
		return 0
	}
	return r.Error.Code
}
