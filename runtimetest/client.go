package runtimetest

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/ssebridge/ssebridge/internal/ssetest"
)

// requestTimeout bounds one request that is not a stream.
const requestTimeout = 20 * time.Second

// client is a Go HTTP client speaking crossws's protocol.
type client struct {
	t  *testing.T
	hc *http.Client
}

func newClient(t *testing.T) *client {
	tr := &http.Transport{MaxIdleConnsPerHost: 16}
	t.Cleanup(tr.CloseIdleConnections)
	return &client{t: t, hc: &http.Client{Transport: tr}}
}

// stream is an open event stream.
type stream struct {
	id     string
	resp   *http.Response
	ev     *ssetest.Reader
	cancel context.CancelFunc
}

// open opens a stream at u with hdr (name, value, …) and reads its hello
// (the crossws-id event). The stream is closed when the test ends.
func (c *client) open(u string, hdr ...string) *stream {
	c.t.Helper()
	st := c.tryOpen(u, hdr...)
	if st.resp.StatusCode != http.StatusOK {
		c.t.Fatalf("GET %s: status %d, want 200", u, st.resp.StatusCode)
	}
	hello := st.ev.Event(c.t)
	if hello.Type != "crossws-id" || hello.Data == "" {
		c.t.Fatalf("first event %+v, want crossws-id", hello)
	}
	st.id = hello.Data
	if got := st.resp.Header.Get("X-Crossws-Id"); got != st.id {
		c.t.Fatalf("x-crossws-id header %q, hello %q", got, st.id)
	}
	return st
}

// tryOpen sends a stream request and returns the response, whatever its
// status.
func (c *client) tryOpen(u string, hdr ...string) *stream {
	c.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req := c.request(ctx, http.MethodGet, u, nil, append([]string{"Accept", "text/event-stream"}, hdr...)...)
	resp, err := c.hc.Do(req)
	if err != nil {
		cancel()
		c.t.Fatalf("GET %s: %v", u, err)
	}
	st := &stream{resp: resp, ev: ssetest.NewReader(resp.Body), cancel: cancel}
	c.t.Cleanup(st.close)
	return st
}

// close drops the stream's connection.
func (st *stream) close() {
	st.cancel()
	_ = st.resp.Body.Close()
}

func (c *client) request(ctx context.Context, method, u string, body io.Reader, hdr ...string) *http.Request {
	c.t.Helper()
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		c.t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	return req
}

// do sends a request that is not a stream and returns its status, headers
// and body.
func (c *client) do(method, u string, body io.Reader, hdr ...string) (int, http.Header, string) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
	defer cancel()
	resp, err := c.hc.Do(c.request(ctx, method, u, body, hdr...))
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, u, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		c.t.Fatalf("%s %s: reading the body: %v", method, u, err)
	}
	return resp.StatusCode, resp.Header, string(b)
}

// post sends one message for peer id and returns the status and body.
func (c *client) post(u, id, body string, hdr ...string) (int, string) {
	c.t.Helper()
	code, _, b := c.do(http.MethodPost, u, strings.NewReader(body), append(hdr, "X-Crossws-Id", id)...)
	return code, b
}

// send posts a message that must be accepted.
func (c *client) send(u, id, body string) {
	c.t.Helper()
	if code, b := c.post(u, id, body); code != http.StatusOK {
		c.t.Fatalf("POST %q: %d %q, want 200", short(body), code, b)
	}
}

// expect reads the stream's next event and checks it is a message with
// data; it returns the event's id.
func (st *stream) expect(t *testing.T, data string) string {
	t.Helper()
	it := st.ev.Event(t)
	if it.Type != "message" || it.Data != data {
		t.Fatalf("event %q %q, want message %q", it.Type, short(it.Data), short(data))
	}
	return it.ID
}

// short shortens s for failure messages.
func short(s string) string {
	if len(s) > 80 {
		return s[:60] + "…"
	}
	return s
}

// dial opens a TCP connection to u's host, closed when the test ends.
func dial(t *testing.T, u string) (*url.URL, net.Conn) {
	t.Helper()
	pu, err := url.Parse(u)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := net.DialTimeout("tcp", pu.Host, 5*time.Second)
	if err != nil {
		t.Fatalf("dial %s: %v", pu.Host, err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return pu, conn
}

// rawStream is a stream read through a bare TCP connection that the test
// reads only when it wants to (a client that stopped reading).
type rawStream struct {
	conn net.Conn
	resp *http.Response
}

// openRaw opens a stream over a TCP connection with a small receive
// buffer, and reads its response header.
func openRaw(t *testing.T, u string) *rawStream {
	t.Helper()
	pu, conn := dial(t, u)
	// A fixed receive buffer: the kernel stops autotuning it (up to 32 MiB
	// on Linux), so a client that does not read blocks the server soon. It
	// stays above loopback's 64 KiB segment size, below which the window
	// could not reopen but through the sender's slow probes.
	_ = conn.(*net.TCPConn).SetReadBuffer(128 << 10)
	req := "GET " + pu.RequestURI() + " HTTP/1.1\r\nHost: " + pu.Host + "\r\nAccept: text/event-stream\r\n\r\n"
	if _, err := conn.Write([]byte(req)); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(requestTimeout))
	br := bufio.NewReaderSize(conn, 4096)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("raw GET: %v", err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("raw GET: status %d", resp.StatusCode)
	}
	_ = conn.SetReadDeadline(time.Time{})
	return &rawStream{conn: conn, resp: resp}
}
