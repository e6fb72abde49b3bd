package fasthttp_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	fh "github.com/valyala/fasthttp"

	"github.com/ssebridge/ssebridge/fasthttp"
	"github.com/ssebridge/ssebridge/handler"
	"github.com/ssebridge/ssebridge/netfx"
)

// benchHandler returns a handler whose Message hook does nothing, and the id
// of an open peer (whose stream was dropped at once: the peer waits for its
// client, taking messages meanwhile).
func benchHandler(b *testing.B) (*handler.Handler, string) {
	h, err := handler.New(handler.Config{
		Logger:         slog.New(slog.DiscardHandler),
		Heartbeat:      -1,
		ReconnectGrace: time.Hour,
		Hooks:          handler.Hooks{Message: func(*handler.Peer, handler.Message) {}},
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = h.Shutdown(context.Background()) })
	var ctx fh.RequestCtx
	var req fh.Request
	req.Header.SetMethod(http.MethodGet)
	req.SetRequestURI("/sse")
	req.Header.Set("Accept", "text/event-stream")
	ctx.Init(&req, &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1}, nil)
	fasthttp.New(h)(&ctx)
	id := string(ctx.Response.Header.Peek("X-Crossws-Id"))
	if ctx.Response.StatusCode() != http.StatusOK || id == "" {
		b.Fatalf("stream: %d, id %q", ctx.Response.StatusCode(), id)
	}
	ctx.Response.Reset() // fasthttp gives the stream up: the peer detaches
	return h, id
}

var benchMessage = strings.Repeat("m", 64)

// BenchmarkServePOST measures one upstream message (a crossws POST)
// through the adapter and the engine, in process: the fasthttp side of
// BenchmarkServePOSTNetfx.
func BenchmarkServePOST(b *testing.B) {
	h, id := benchHandler(b)
	serve := fasthttp.New(h)
	var ctx fh.RequestCtx
	var req fh.Request
	req.Header.SetMethod(http.MethodPost)
	req.SetRequestURI("/sse")
	req.Header.Set("Host", "example.com")
	req.Header.Set("X-Crossws-Id", id)
	req.Header.Set("Content-Type", "text/plain;charset=UTF-8")
	req.SetBodyString(benchMessage)
	ctx.Init(&req, &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1}, nil)
	b.ReportAllocs()
	for b.Loop() {
		ctx.Response.Reset()
		serve(&ctx)
		if ctx.Response.StatusCode() != http.StatusOK {
			b.Fatalf("status %d: %s", ctx.Response.StatusCode(), ctx.Response.Body())
		}
	}
}

// BenchmarkServePOSTNetfx is BenchmarkServePOST through netfx, for
// comparison.
func BenchmarkServePOSTNetfx(b *testing.B) {
	h, id := benchHandler(b)
	serve := netfx.New(h)
	body := strings.NewReader(benchMessage)
	req := httptest.NewRequest(http.MethodPost, "http://example.com/sse", body)
	req.Header.Set("X-Crossws-Id", id)
	req.Header.Set("Content-Type", "text/plain;charset=UTF-8")
	w := &discardWriter{h: http.Header{}}
	b.ReportAllocs()
	for b.Loop() {
		body.Reset(benchMessage)
		req.Body = io.NopCloser(body)
		clear(w.h)
		w.status = 0
		serve.ServeHTTP(w, req)
		if w.status != http.StatusOK {
			b.Fatalf("status %d", w.status)
		}
	}
}

// discardWriter is a ResponseWriter that keeps only the status.
type discardWriter struct {
	h      http.Header
	status int
}

func (w *discardWriter) Header() http.Header { return w.h }
func (w *discardWriter) WriteHeader(s int)   { w.status = s }
func (w *discardWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return len(p), nil
}

// BenchmarkServePOSTLoopback measures a POST end to end over loopback: a
// fasthttp client and NewServer (the allocations count both sides).
func BenchmarkServePOSTLoopback(b *testing.B) {
	h, id := benchHandler(b)
	srv := fasthttp.NewServer(h)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	go func() { _ = srv.Serve(ln) }()
	b.Cleanup(func() { _ = srv.Shutdown() })
	c := &fh.HostClient{Addr: ln.Addr().String()}
	req, resp := fh.AcquireRequest(), fh.AcquireResponse()
	req.Header.SetMethod(http.MethodPost)
	req.SetRequestURI("http://" + ln.Addr().String() + "/sse")
	req.Header.Set("X-Crossws-Id", id)
	req.SetBodyString(benchMessage)
	b.ReportAllocs()
	for b.Loop() {
		if err := c.Do(req, resp); err != nil {
			b.Fatal(err)
		}
		if resp.StatusCode() != http.StatusOK {
			b.Fatalf("status %d", resp.StatusCode())
		}
	}
}

// BenchmarkServePOSTLoopbackNetfx is BenchmarkServePOSTLoopback with
// net/http on both sides, through netfx.
func BenchmarkServePOSTLoopbackNetfx(b *testing.B) {
	h, id := benchHandler(b)
	srv := httptest.NewServer(netfx.New(h))
	b.Cleanup(srv.Close)
	c := srv.Client()
	b.ReportAllocs()
	for b.Loop() {
		req, err := http.NewRequest(http.MethodPost, srv.URL+"/sse", strings.NewReader(benchMessage))
		if err != nil {
			b.Fatal(err)
		}
		req.Header.Set("X-Crossws-Id", id)
		resp, err := c.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			b.Fatalf("status %d", resp.StatusCode)
		}
	}
}
