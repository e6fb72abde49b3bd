package fasthttp

import (
	"errors"
	"io"
	"maps"
	"net"
	"net/http"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	fh "github.com/valyala/fasthttp"
)

// newExchange returns an exchange over a RequestCtx made with Init (whose
// connection takes no deadlines), the way the server hands one out.
func newExchange(t *testing.T, req *fh.Request) (*exchange, *fh.RequestCtx) {
	t.Helper()
	ctx := new(fh.RequestCtx)
	ctx.Init(req, &net.TCPAddr{IP: net.IPv4(10, 0, 0, 1), Port: 4242}, nil)
	x := exchanges.Get().(*exchange)
	x.ctx, x.srv = ctx, &server{}
	return x, ctx
}

func TestRequestView(t *testing.T) {
	var req fh.Request
	req.Header.SetMethod(http.MethodPost)
	req.SetRequestURI("/a%20b/sse?x=1&y")
	req.Header.SetHost("example.com:8080")
	req.Header.Set("X-Crossws-Id", "id1")
	req.Header.Set("x-lower", "v1")
	req.Header.Add("X-Multi", "m1")
	req.Header.Add("X-Multi", "m2")
	req.Header.Set("Cookie", "a=1; b=2")
	req.SetBodyString("hello body")
	req.Header.SetContentLength(len("hello body")) // as parsed from the wire
	x, ctx := newExchange(t, &req)

	if m := x.Method(); m != "POST" {
		t.Errorf("Method %q", m)
	}
	if n := testing.AllocsPerRun(100, func() { _ = x.Method() }); n != 0 {
		t.Errorf("Method allocates %v times", n)
	}
	if h := x.Host(); h != "example.com:8080" {
		t.Errorf("Host %q", h)
	}
	if p := x.Path(); p != "/a b/sse" {
		t.Errorf("Path %q, want the decoded path", p)
	}
	if n := testing.AllocsPerRun(100, func() { _, _ = x.Path(), x.Host() }); n != 0 {
		t.Errorf("Path and Host allocate %v times once interned", n)
	}
	if q := x.RawQuery(); q != "x=1&y" {
		t.Errorf("RawQuery %q", q)
	}
	for name, want := range map[string]string{
		"X-Crossws-Id": "id1", "x-crossws-id": "id1", "X-CROSSWS-ID": "id1",
		"X-Lower": "v1", "X-Multi": "m1", "Host": "example.com:8080",
		"Cookie": "a=1; b=2", "Content-Length": "10", "Absent": "",
	} {
		if got := x.Header(name); got != want {
			t.Errorf("Header(%q) = %q, want %q", name, got, want)
		}
	}
	got := map[string][]string{}
	for k, v := range x.Headers() {
		got[k] = append(got[k], v)
	}
	for k, want := range map[string][]string{
		"X-Crossws-Id": {"id1"}, "X-Lower": {"v1"}, "X-Multi": {"m1", "m2"}, "Host": {"example.com:8080"},
	} {
		if !slices.Equal(got[k], want) {
			t.Errorf("Headers()[%s] = %q, want %q (all: %v)", k, got[k], want, slices.Collect(maps.Keys(got)))
		}
	}
	if r := x.RemoteAddr(); r != "10.0.0.1:4242" {
		t.Errorf("RemoteAddr %q", r)
	}
	if n := x.ContentLength(); n != 10 {
		t.Errorf("ContentLength %d", n)
	}
	// Body keeps its place across calls.
	b := make([]byte, 5)
	if _, err := io.ReadFull(x.Body(), b); err != nil || string(b) != "hello" {
		t.Fatalf("Body: %q %v", b, err)
	}
	if rest, _ := io.ReadAll(x.Body()); string(rest) != " body" {
		t.Fatalf("Body again: %q", rest)
	}
	if err := x.EnableFullDuplex(); !errors.Is(err, http.ErrNotSupported) {
		t.Errorf("EnableFullDuplex without a body stream: %v", err)
	}

	// The strings are copies: fasthttp may reuse its buffers.
	id, path := x.Header("X-Crossws-Id"), x.Path()
	ctx.Request.Header.Set("X-Crossws-Id", "XXX")
	ctx.Request.SetRequestURI("/zzzzzzzz")
	if id != "id1" || path != "/a b/sse" {
		t.Errorf("strings changed with the request: %q %q", id, path)
	}
	x.handlerReturned()
}

func TestHeaderWithoutNormalizing(t *testing.T) {
	var req fh.Request
	req.Header.DisableNormalizing()
	req.Header.SetMethod(http.MethodGet)
	req.SetRequestURI("/sse")
	req.Header.Set("x-crossws-id", "lower")
	req.Header.Set("LAST-EVENT-ID", "upper")
	x, _ := newExchange(t, &req)
	if got := x.Header("X-Crossws-Id"); got != "lower" {
		t.Errorf("X-Crossws-Id: %q", got)
	}
	if got := x.Header("Last-Event-Id"); got != "upper" {
		t.Errorf("Last-Event-Id: %q", got)
	}
	x.handlerReturned()
}

func TestContentLength(t *testing.T) {
	for _, c := range []struct {
		set  int
		want int64
	}{{0, 0}, {12, 12}, {-1, -1}, {-2, 0}} {
		var req fh.Request
		req.Header.SetMethod(http.MethodPost)
		req.SetRequestURI("/sse")
		x, ctx := newExchange(t, &req)
		ctx.Request.Header.SetContentLength(c.set)
		if got := x.ContentLength(); got != c.want {
			t.Errorf("fasthttp %d: ContentLength %d, want %d", c.set, got, c.want)
		}
		x.handlerReturned()
	}
}

func TestResponseBeforeStream(t *testing.T) {
	var req fh.Request
	x, ctx := newExchange(t, &req)
	x.SetHeader("Content-Type", "text/plain")
	x.SetHeader("Connection", "keep-alive") // dropped: fasthttp's to manage
	x.SetHeader("X-A", "a")
	x.WriteHeader(http.StatusTeapot)
	x.SetHeader("X-Late", "late") // no effect after WriteHeader
	x.WriteHeader(http.StatusOK)  // nor a second status
	_, _ = x.Write([]byte("one "))
	_, _ = x.Write([]byte("two"))
	if err := x.Flush(); err != nil {
		t.Fatal(err)
	}
	r := &ctx.Response
	if r.StatusCode() != http.StatusTeapot || string(r.Body()) != "one two" || string(r.Header.Peek("X-A")) != "a" ||
		len(r.Header.Peek("X-Late")) != 0 || len(r.Header.Peek("Connection")) != 0 || r.ConnectionClose() {
		t.Fatalf("response: %s", r)
	}
	x.handlerReturned()

	x, ctx = newExchange(t, &req)
	x.SetHeader("Connection", "close")
	x.WriteHeader(http.StatusOK)
	if !ctx.Response.ConnectionClose() {
		t.Fatal("Connection: close not passed on")
	}
	x.handlerReturned()
}

// streamExchange returns an exchange that has handed its stream to
// fasthttp, with body as the stream's body.
func streamExchange(t *testing.T, body func(x *exchange)) (*exchange, *fh.RequestCtx) {
	t.Helper()
	var req fh.Request
	x, ctx := newExchange(t, &req)
	x.SetHeader("Content-Type", "text/event-stream")
	x.StreamBody(http.StatusOK, func() { body(x) })
	x.handlerReturned() // StreamBody returned at once; so does the handler
	if ctx.Response.StatusCode() != http.StatusOK || !ctx.Response.IsBodyStream() {
		t.Fatalf("response after StreamBody: %s", &ctx.Response)
	}
	return x, ctx
}

// fasthttp's usual way: WriteTo, each Write one chunk.
func TestStreamWriteTo(t *testing.T) {
	done := make(chan struct{})
	x, ctx := streamExchange(t, func(x *exchange) {
		defer close(done)
		if err := x.SetWriteDeadline(time.Now().Add(time.Second)); !errors.Is(err, http.ErrNotSupported) {
			t.Errorf("SetWriteDeadline without a connection: %v", err)
		}
		for _, s := range []string{"one", "two"} {
			if _, err := x.Write([]byte(s)); err != nil {
				t.Errorf("Write: %v", err)
			}
			if err := x.Flush(); err != nil {
				t.Errorf("Flush: %v", err)
			}
		}
	})
	var w chunkRecorder
	n, err := x.stream.WriteTo(&w)
	<-done
	if err != nil || n != 6 || strings.Join(w.chunks, "|") != "one|two" {
		t.Fatalf("WriteTo: %d %v, chunks %q", n, err, w.chunks)
	}
	if x.refs.Load() != 1 {
		t.Fatalf("refs %d before fasthttp closed the stream", x.refs.Load())
	}
	ctx.Response.Reset() // closes the stream
	if x.refs.Load() != 0 || x.srv != nil {
		t.Fatal("exchange not recycled")
	}
}

type chunkRecorder struct{ chunks []string }

func (w *chunkRecorder) Write(p []byte) (int, error) {
	w.chunks = append(w.chunks, string(p))
	return len(p), nil
}

// A write error ends the body's writes and comes back from WriteTo, so
// that fasthttp closes the connection.
func TestStreamWriteToError(t *testing.T) {
	boom := errors.New("boom")
	var errs []error
	x, ctx := streamExchange(t, func(x *exchange) {
		for range 3 {
			_, err := x.Write([]byte("x"))
			errs = append(errs, err)
		}
		errs = append(errs, x.Flush())
	})
	_, err := x.stream.WriteTo(failingWriter{boom})
	if !errors.Is(err, boom) || len(errs) != 4 {
		t.Fatalf("WriteTo: %v, body saw %v", err, errs)
	}
	for _, e := range errs {
		if !errors.Is(e, boom) {
			t.Fatalf("body saw %v", errs)
		}
	}
	ctx.Response.Reset()
}

type failingWriter struct{ err error }

func (w failingWriter) Write([]byte) (int, error) { return 0, w.err }

// Other consumers read the stream: the body then runs on a goroutine of its
// own, writing into a pipe.
func TestStreamRead(t *testing.T) {
	x, ctx := streamExchange(t, func(x *exchange) {
		for _, s := range []string{"one", "two", "three"} {
			if _, err := x.Write([]byte(s)); err != nil {
				t.Errorf("Write: %v", err)
			}
			_ = x.Flush()
		}
	})
	b, err := io.ReadAll(struct{ io.Reader }{x.stream}) // hides WriteTo
	if err != nil || string(b) != "onetwothree" {
		t.Fatalf("Read: %q %v", b, err)
	}
	ctx.Response.Reset()
	// The body's goroutine gives its reference back after the pipe's end.
	for x.refs.Load() != 0 {
		runtime.Gosched()
	}
}

// Closed by fasthttp while the body still writes (a reader that gave up):
// the body's next write fails.
func TestStreamReadClosed(t *testing.T) {
	wrote := make(chan error, 1)
	x, ctx := streamExchange(t, func(x *exchange) {
		_, _ = x.Write([]byte("first"))
		for {
			if _, err := x.Write([]byte("more")); err != nil {
				wrote <- err
				return
			}
		}
	})
	b := make([]byte, 5)
	if _, err := io.ReadFull(x.stream, b); err != nil || string(b) != "first" {
		t.Fatalf("Read: %q %v", b, err)
	}
	ctx.Response.Reset()
	if err := <-wrote; !errors.Is(err, errStreamClosed) && !errors.Is(err, io.ErrClosedPipe) {
		t.Fatalf("write after close: %v", err)
	}
}

// A stream fasthttp never sends (the response was replaced, or the request
// was a HEAD) still runs its body, whose writes fail at once, so that the
// peer detaches instead of waiting forever.
func TestStreamClosedBeforeStart(t *testing.T) {
	var errs []error
	x, ctx := streamExchange(t, func(x *exchange) {
		_, err := x.Write([]byte("hello"))
		errs = append(errs, err, x.Flush(), x.SetWriteDeadline(time.Now().Add(time.Second)))
	})
	st := x.stream
	ctx.Error("replaced", http.StatusBadGateway) // resets the response
	if len(errs) != 3 || !errors.Is(errs[0], errStreamClosed) || !errors.Is(errs[1], errStreamClosed) || errs[2] != nil {
		t.Fatalf("body saw %v", errs)
	}
	if x.refs.Load() != 0 {
		t.Fatalf("refs %d", x.refs.Load())
	}
	// Late calls (fasthttp's compression wrapper may make one) do nothing.
	if _, err := st.WriteTo(io.Discard); !errors.Is(err, errStreamClosed) {
		t.Fatalf("WriteTo after Close: %v", err)
	}
	if _, err := st.Read(make([]byte, 1)); !errors.Is(err, errStreamClosed) {
		t.Fatalf("Read after Close: %v", err)
	}
	if err := st.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}
