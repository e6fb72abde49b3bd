// Package netfx serves a handler.Handler with net/http, over HTTP/1.1 and
// HTTP/2. It uses http.ResponseController for flushes, per-write deadlines,
// read deadlines and full duplex, so it works through middleware that wraps
// the ResponseWriter (as long as the wrapper has an Unwrap method).
//
//	h, _ := handler.New(handler.Config{})
//	mux.Handle("/sse", netfx.New(h))
//
// A client that leaves is noticed through the request context. SSE streams
// never end on their own: call Handler.Shutdown before (or from
// http.Server.RegisterOnShutdown) http.Server.Shutdown.
//
// Server timeouts: a WriteTimeout on http.Server would cut every stream
// after that long; leave it zero (ssebridge bounds each write itself with
// Config.WriteTimeout). A ReadTimeout is fine: streamed uploads clear it for
// their own request.
//
// Import direction: netfx → handler.
package netfx

import (
	"context"
	"io"
	"iter"
	"net/http"
	"sync"
	"time"

	"github.com/ssebridge/ssebridge/handler"
)

// New returns an http.Handler serving h.
func New(h *handler.Handler) http.Handler { return &server{h: h} }

type server struct{ h *handler.Handler }

var exchanges = sync.Pool{New: func() any { return new(exchange) }}

func (s *server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	x := exchanges.Get().(*exchange)
	x.w, x.r = w, r
	x.rc = http.NewResponseController(w)
	s.h.Serve(x)
	*x = exchange{}
	exchanges.Put(x)
}

// exchange adapts a ResponseWriter and Request to handler.Exchange.
type exchange struct {
	w  http.ResponseWriter
	r  *http.Request
	rc *http.ResponseController
}

func (x *exchange) Context() context.Context { return x.r.Context() }
func (x *exchange) Method() string           { return x.r.Method }
func (x *exchange) Host() string             { return x.r.Host }
func (x *exchange) Path() string             { return x.r.URL.Path }
func (x *exchange) RawQuery() string         { return x.r.URL.RawQuery }
func (x *exchange) Header(name string) string {
	return x.r.Header.Get(name)
}
func (x *exchange) RemoteAddr() string { return x.r.RemoteAddr }

func (x *exchange) Headers() iter.Seq2[string, string] {
	return func(yield func(string, string) bool) {
		for k, vs := range x.r.Header {
			for _, v := range vs {
				if !yield(k, v) {
					return
				}
			}
		}
	}
}

func (x *exchange) Body() io.Reader       { return x.r.Body }
func (x *exchange) ContentLength() int64  { return x.r.ContentLength }
func (x *exchange) SetHeader(k, v string) { x.w.Header().Set(k, v) }
func (x *exchange) WriteHeader(code int) {
	if x.r.ProtoMajor >= 2 {
		// Connection-specific headers are forbidden in HTTP/2.
		x.w.Header().Del("Connection")
	}
	x.w.WriteHeader(code)
}
func (x *exchange) Write(p []byte) (int, error)        { return x.w.Write(p) }
func (x *exchange) Flush() error                       { return x.rc.Flush() }
func (x *exchange) SetWriteDeadline(t time.Time) error { return x.rc.SetWriteDeadline(t) }
func (x *exchange) SetReadDeadline(t time.Time) error  { return x.rc.SetReadDeadline(t) }
func (x *exchange) EnableFullDuplex() error            { return x.rc.EnableFullDuplex() }

// StreamBody writes the header and runs body on the handler's goroutine:
// net/http sends what body flushes as it goes.
func (x *exchange) StreamBody(status int, body func()) {
	x.WriteHeader(status)
	body()
}
