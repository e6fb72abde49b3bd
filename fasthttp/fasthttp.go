// Package fasthttp serves a handler.Handler with github.com/valyala/fasthttp
// (HTTP/1.1 only: fasthttp has no HTTP/2).
//
//	h, _ := handler.New(handler.Config{})
//	srv := fasthttp.NewServer(h) // or &fh.Server{Handler: fasthttp.New(h), StreamRequestBody: true, …}
//	go srv.ListenAndServe(":8080")
//	…
//	_ = h.Shutdown(ctx) // closes the peers: their streams end
//	_ = srv.ShutdownWithContext(ctx)
//
// New returns a fh.RequestHandler to mount in any router; NewServer returns a
// *fh.Server set up for long-lived streams and streamed uploads, whose
// fields may be changed before serving.
//
// # Streams
//
// fasthttp sends a response only once the handler has returned. A stream's
// response is therefore a body stream that fasthttp writes after the handler
// returned, on the connection's goroutine: each batch of frames is one HTTP
// chunk, flushed at once (no extra goroutine, no in-memory pipe), and the
// status line and headers leave with the first one. The engine bounds each
// write with a deadline on the connection (handler.Config.WriteTimeout): a
// client that stops reading loses its stream, and its connection, without
// holding up anyone else.
//
// fasthttp does not read a connection while it writes a response, so a
// client that goes away is noticed when a write fails: at the next batch or
// heartbeat (handler.Config.Heartbeat) of its stream. Its peer then detaches
// and waits ReconnectGrace for the client to resume.
//
// # Streamed uploads
//
// crossws's default upload mode sends one POST whose chunked
// application/octet-stream body never ends, each read of it one message.
// fasthttp's own streamed body would hand a chunk over only once the CRLF
// that ends it arrived, which clients such as Node's fetch send with the
// next chunk: every message would wait for the next one. Such uploads are
// therefore read on the hijacked connection, and answered, when they end,
// with Connection: close. They need Server.StreamRequestBody (NewServer sets
// it); without it fasthttp reads a whole body before calling the handler,
// so a streamed upload is delivered only when its body ends, in one piece:
// never, for crossws's endless body, which fails once MaxRequestBodySize is
// reached (413 with NewServer's ErrorHandler, 400 with fasthttp's) or when
// ReadTimeout passes. crossws's { stream: false } mode (one POST per
// message) works either way.
//
// Hijacked connections are fasthttp's no more: Concurrency does not count
// them, ConnState reports them as StateHijacked, and ShutdownWithContext
// does not wait for them (uploads end when the server shuts down, or when
// their peer closes). A request refused with much of its body unsent (a POST
// far over handler.Config.MaxMessageSize) is also answered on its hijacked
// connection, which is then closed gracefully: fasthttp would close it at
// once, and the client, still sending, could get a reset instead of the
// answer.
//
// # Server settings that matter
//
//   - WriteTimeout bounds a whole response, which would cut streams. Streams
//     opt out of it (setting the connection's write deadline makes fasthttp
//     skip its own), so it may be set for a server's other routes; NewServer
//     leaves it zero.
//   - ReadTimeout is fine: streams do not read, and streamed uploads have no
//     deadline but their own. Without IdleTimeout it is also the keep-alive
//     idle timeout.
//   - MaxRequestBodySize does not bound streamed request bodies (with
//     StreamRequestBody); handler.Config.MaxMessageSize bounds each message
//     (413 for a larger POST).
//   - Concurrency bounds concurrent connections, open streams included (each
//     holds a worker goroutine and its buffers for its whole life). Size it,
//     and the file descriptor limit, for the clients expected.
//   - ReadBufferSize bounds request headers (4 KiB by default, 8 KiB with
//     NewServer; more gets 431); each connection holds a buffer that large.
//
// # Shutdown and limitations
//
// The request context given to the engine is done when the fasthttp.Server
// shuts down: streams and uploads then end, so that ShutdownWithContext does
// not wait for them, and their peers wait for their clients to resume
// (elsewhere). Call Handler.Shutdown first to close the peers.
//
// fasthttp.CompressHandler works around the handler, but streams then go
// through fasthttp's compression pipe, on another goroutine, and write
// deadlines bound its writes only loosely. Middleware must not read or
// replace a stream's response (Response.Body, ctx.Error, …): the stream then
// ends at once and its peer detaches. TimeoutHandler is not supported.
// Values a middleware stored with RequestCtx.SetUserValue before the handler
// ran are copied into the request's context (Request.Context, and the
// peer's context, where Keys live); fasthttp closes the io.Closer ones when
// the request ends.
//
// Import direction: fasthttp (this package) → handler.
package fasthttp

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	fh "github.com/valyala/fasthttp"

	"github.com/ssebridge/ssebridge/handler"
)

// Server settings of NewServer.
const (
	// readTimeout bounds the reading of a request (headers and a body that
	// is not a streamed upload).
	readTimeout = 30 * time.Second
	// idleTimeout bounds the wait for the next request on a keep-alive
	// connection.
	idleTimeout = 2 * time.Minute
	// readBufferSize bounds the request headers: twice fasthttp's default,
	// for cookies. Each connection holds one such buffer.
	readBufferSize = 8 << 10
)

// New returns a fasthttp.RequestHandler serving h.
func New(h *handler.Handler) fh.RequestHandler {
	s := &server{h: h}
	return s.serve
}

// NewServer returns a *fasthttp.Server serving h, configured for long-lived
// streams and streamed uploads: Handler set, StreamRequestBody true (crossws's
// streamed uploads), WriteTimeout 0 (ssebridge bounds each write of a stream
// itself), ReadTimeout 30 s, IdleTimeout 2 min, ReadBufferSize 8 KiB (the
// most header bytes a request may have),
// CloseOnShutdown true, DisablePreParseMultipartForm true (bodies are
// messages, never forms), NoDefaultServerHeader and NoDefaultContentType
// true, and an ErrorHandler that answers fasthttp's own refusals as
// net/http would (413 for a body over MaxRequestBodySize, where fasthttp
// says 400). Change fields before serving as needed.
func NewServer(h *handler.Handler) *fh.Server {
	return &fh.Server{
		Handler:                      New(h),
		ErrorHandler:                 errorHandler,
		StreamRequestBody:            true,
		ReadBufferSize:               readBufferSize,
		ReadTimeout:                  readTimeout,
		IdleTimeout:                  idleTimeout,
		WriteTimeout:                 0,
		CloseOnShutdown:              true,
		DisablePreParseMultipartForm: true,
		NoDefaultServerHeader:        true,
		NoDefaultContentType:         true,
	}
}

// errorHandler answers requests fasthttp refuses before the handler runs.
func errorHandler(ctx *fh.RequestCtx, err error) {
	var small *fh.ErrSmallBuffer
	var ne net.Error
	switch {
	case errors.Is(err, fh.ErrBodyTooLarge):
		ctx.Error("request body too large", fh.StatusRequestEntityTooLarge)
	case errors.As(err, &small):
		ctx.Error("request header too large", fh.StatusRequestHeaderFieldsTooLarge)
	case errors.As(err, &ne) && ne.Timeout():
		ctx.Error("request timeout", fh.StatusRequestTimeout)
	default:
		ctx.Error("malformed request", fh.StatusBadRequest)
	}
}

// server is what New returns the method of.
type server struct {
	h *handler.Handler

	base       atomic.Pointer[doneContext] // the context of requests without user values
	path, host internCache
}

var exchanges = sync.Pool{New: func() any { return new(exchange) }}

func (s *server) serve(ctx *fh.RequestCtx) {
	if isStreamedUpload(ctx) {
		// See upload.go.
		ctx.HijackSetNoResponse(true)
		ctx.Hijack(func(c net.Conn) { s.serveUpload(ctx, c) })
		return
	}
	x := exchanges.Get().(*exchange)
	x.ctx, x.srv = ctx, s
	s.h.Serve(x)
	if x.refusedLargeBody() {
		// fasthttp would close the connection right after the answer,
		// with the body still coming: the client's next write would get
		// a reset, which can destroy the answer before it is read.
		ctx.HijackSetNoResponse(true)
		ctx.Hijack(func(c net.Conn) { answerAndClose(ctx, c, true) })
	}
	x.handlerReturned()
}

// exchange adapts a RequestCtx to handler.Exchange. It comes from a pool and
// goes back once the handler has returned and, for a stream, once fasthttp
// is done with the response body (see respStream).
type exchange struct {
	ctx      *fh.RequestCtx // nil once the handler returned
	srv      *server
	hijacked net.Conn // a streamed upload's connection, for deadlines (upload.go)

	rctx        context.Context // Context(), made on first use
	body        bytes.Reader    // Body() of a body read whole
	bodyR       bodyReader      // Body() of a streamed body
	bodyStream  io.Reader       // Body(), once asked for
	wroteHeader bool            // WriteHeader or StreamBody was called

	// A stream's response; see stream.go.
	streaming bool
	refs      atomic.Int32 // handler, body run, body stream closed
	stream    *respStream
}

// handlerReturned runs when Serve returned: the request is gone.
func (x *exchange) handlerReturned() {
	x.ctx = nil
	if !x.streaming {
		x.recycle()
		return
	}
	x.unref()
}

func (x *exchange) unref() {
	if x.refs.Add(-1) == 0 {
		x.recycle()
	}
}

func (x *exchange) recycle() {
	x.body.Reset(nil)
	x.bodyR = bodyReader{}
	x.srv, x.rctx, x.bodyStream, x.stream, x.hijacked = nil, nil, nil, nil, nil
	x.wroteHeader, x.streaming = false, false
	exchanges.Put(x)
}

// Context is done when the fasthttp.Server shuts down. It is not the
// RequestCtx itself, which fasthttp reuses for other requests once the
// handler returned, whereas the engine keeps the request's context for the
// peer's life: it holds the RequestCtx's done channel and a copy of its user
// values.
func (x *exchange) Context() context.Context {
	if x.rctx == nil {
		x.rctx = x.srv.context(x.ctx)
	}
	return x.rctx
}

// Method returns the request method; the common ones are constants, so
// reading it does not allocate.
func (x *exchange) Method() string {
	m := x.ctx.Method()
	switch string(m) {
	case http.MethodGet:
		return http.MethodGet
	case http.MethodPost:
		return http.MethodPost
	case http.MethodOptions:
		return http.MethodOptions
	case http.MethodHead:
		return http.MethodHead
	case http.MethodPut:
		return http.MethodPut
	case http.MethodDelete:
		return http.MethodDelete
	case http.MethodPatch:
		return http.MethodPatch
	}
	return string(m)
}

// The strings below are copies: the engine and the hooks may keep them
// (a peer's Request snapshot, an id), whereas fasthttp's bytes are reused
// once the handler returns. Path and Host are interned, as they rarely vary.

func (x *exchange) Host() string     { return x.srv.host.get(x.ctx.Host()) }
func (x *exchange) Path() string     { return x.srv.path.get(x.ctx.Path()) }
func (x *exchange) RawQuery() string { return string(x.ctx.URI().QueryString()) }

// Header returns the first value of the named header, matched
// case-insensitively even when the server does not normalize header names.
func (x *exchange) Header(name string) string {
	h := &x.ctx.Request.Header
	// The engine asks for canonical names ("X-Crossws-Id"), which fasthttp
	// stores as is: look them up without normalizing them first (peek
	// only reads the key).
	if v := h.PeekCanonical(unsafe.Slice(unsafe.StringData(name), len(name))); len(v) > 0 {
		return string(v)
	}
	// Other spellings, and every name when the server does not normalize
	// them (Server.DisableHeaderNamesNormalizing).
	for k, v := range h.All() {
		if equalFold(k, name) {
			return string(v)
		}
	}
	return ""
}

func (x *exchange) Headers() iter.Seq2[string, string] {
	return func(yield func(string, string) bool) {
		for k, v := range x.ctx.Request.Header.All() {
			if !yield(string(k), string(v)) {
				return
			}
		}
	}
}

func (x *exchange) RemoteAddr() string { return x.ctx.RemoteAddr().String() }

// Body is the streamed request body when Server.StreamRequestBody is on,
// else the body fasthttp read before calling the handler.
func (x *exchange) Body() io.Reader {
	if x.bodyStream == nil {
		if bs := x.ctx.RequestBodyStream(); bs != nil {
			x.bodyR.r = bs
			x.bodyStream = &x.bodyR
		} else {
			x.body.Reset(x.ctx.PostBody())
			x.bodyStream = &x.body
		}
	}
	return x.bodyStream
}

// ContentLength maps fasthttp's -1 (chunked) to -1 and its -2 (no
// framing: a request without a body) to 0.
func (x *exchange) ContentLength() int64 {
	switch n := x.ctx.Request.Header.ContentLength(); {
	case n >= 0:
		return int64(n)
	case n == -1:
		return -1
	}
	return 0
}

// SetHeader sets a response header. Connection is fasthttp's to manage:
// "close" makes it close the connection after the response, other values
// are dropped.
func (x *exchange) SetHeader(name, value string) {
	if x.wroteHeader {
		return
	}
	if strings.EqualFold(name, "Connection") {
		if strings.Contains(strings.ToLower(value), "close") {
			x.ctx.SetConnectionClose()
		}
		return
	}
	x.ctx.Response.Header.Set(name, value)
}

// WriteHeader sets the status; fasthttp sends it once the handler returned.
func (x *exchange) WriteHeader(status int) {
	if x.wroteHeader {
		return
	}
	x.wroteHeader = true
	x.ctx.SetStatusCode(status)
}

// Write appends to the buffered response body, or writes to the stream
// once StreamBody handed it over.
func (x *exchange) Write(p []byte) (int, error) {
	if x.streaming {
		return x.stream.write(p)
	}
	x.wroteHeader = true
	return x.ctx.Write(p)
}

// Flush does nothing before StreamBody: fasthttp sends the response when
// the handler returns.
func (x *exchange) Flush() error {
	if x.streaming {
		return x.stream.flush()
	}
	return nil
}

// SetWriteDeadline sets the connection's write deadline: for a stream, it
// bounds the next writes and flush; before StreamBody, the sending of the
// response once the handler returned.
func (x *exchange) SetWriteDeadline(t time.Time) error {
	if x.streaming {
		return x.stream.setWriteDeadline(t)
	}
	if connOf(x.ctx.Conn()) == nil {
		return errNoDeadlines
	}
	return x.ctx.SetWriteDeadline(t)
}

// SetReadDeadline sets the connection's read deadline; it is safe from any
// goroutine while the handler runs.
func (x *exchange) SetReadDeadline(t time.Time) (err error) {
	if x.hijacked != nil {
		return x.hijacked.SetReadDeadline(t)
	}
	defer func() {
		if recover() != nil { // a RequestCtx made with Init (tests)
			err = errNoDeadlines
		}
	}()
	return x.ctx.SetReadDeadline(t)
}

// errNoFullDuplex is returned by EnableFullDuplex without streamed request
// bodies.
var errNoFullDuplex = fmt.Errorf("ssebridge/fasthttp: the request body was read whole before the handler ran (set Server.StreamRequestBody): %w", http.ErrNotSupported)

// EnableFullDuplex reports whether the handler reads the body as the client
// sends it (Server.StreamRequestBody), answering after it ends. fasthttp
// never sends a response before the handler returns.
func (x *exchange) EnableFullDuplex() error {
	if x.hijacked != nil || x.ctx.RequestBodyStream() != nil {
		return nil
	}
	return errNoFullDuplex
}

// StreamBody sets the status and hands fasthttp a body stream that runs body
// when fasthttp writes the response, after the handler returned.
func (x *exchange) StreamBody(status int, body func()) {
	ctx := x.ctx
	x.wroteHeader = true
	ctx.SetStatusCode(status)
	conn := connOf(ctx.Conn())
	if conn != nil {
		// A write deadline set by the handler makes fasthttp skip its
		// own WriteTimeout for this response (and clear the deadline
		// after it): the stream bounds each of its writes instead.
		_ = ctx.SetWriteDeadline(time.Time{})
	}
	// The stream is not pooled with the exchange: fasthttp may still call
	// it after it closed it (its compression wrapper can).
	x.stream = &respStream{x: x, conn: conn, body: body}
	x.refs.Store(3)
	x.streaming = true
	ctx.Response.SetBodyStream(x.stream, -1)
}

// errStreamClosed is what a stream's writes return once fasthttp gave up
// its body.
var errStreamClosed = errors.New("ssebridge/fasthttp: response stream closed")

// internCache returns the same string for the same bytes as the last time,
// so that a value that rarely varies (the path, the host) costs no
// allocation per request.
type internCache struct{ last atomic.Pointer[string] }

func (c *internCache) get(b []byte) string {
	if p := c.last.Load(); p != nil && *p == string(b) {
		return *p
	}
	s := string(b)
	c.last.Store(&s)
	return s
}

// equalFold reports whether the ASCII header names b and s are equal
// regardless of case, without converting either.
func equalFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range len(b) {
		c, d := b[i], s[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if 'A' <= d && d <= 'Z' {
			d += 'a' - 'A'
		}
		if c != d {
			return false
		}
	}
	return true
}

// ensure the interface is met.
var _ handler.Exchange = (*exchange)(nil)

// isClosedConn reports whether err says the connection is closed already.
func isClosedConn(err error) bool { return errors.Is(err, net.ErrClosed) }
