// Package lambda serves a handler.Handler as an AWS Lambda function behind a
// function URL with response streaming (InvokeMode RESPONSE_STREAM), on the
// aws-lambda-go runtime.
//
//	h, _ := handler.New(handler.Config{Backend: redisBackend, Hooks: hooks})
//	lambda.Start(h, lambda.Config{})
//
// # How requests map
//
// Each invocation is one HTTP request, read from the function URL event
// (payload format 2.0): method, raw path (decoded for Request.Path), raw
// query, headers (Lambda lower-cases their names and joins repeated fields
// with commas), cookies (given back as one Cookie header), the body (base64
// decoded when the event says so) and the client's address (source IP, no
// port). A POST is answered as soon as it is handled. A stream's status and
// headers go out first (the 8-byte-separated prelude of Lambda's streaming
// integration response), then every batch of frames is one write on the
// response body, which the runtime sends to Lambda at once (as one chunk,
// or two for a batch over 32 KiB).
//
// # What differs from a server
//
//   - An execution environment serves one request at a time, and its memory
//     is its own: a stream occupies one environment, and the POSTs of the
//     same client reach others. Use a backend shared between processes
//     (backends/redis); Start logs a warning with the in-memory backend, on
//     which POSTs to a peer streaming in another environment fail.
//   - An invocation ends by its deadline (the function's timeout, at most
//     15 minutes). A stream ends Config.Margin before it, without a close
//     event: the client reconnects with Last-Event-ID and resumes its peer
//     in whichever environment serves the new invocation.
//   - Between the end of a stream and the client's reconnection, a POST
//     for its peer that lands in another environment is queued in Redis
//     for the environment that held the stream, which reads it when it next
//     runs. Lambda reuses a warm environment first, so that is usually at
//     once (often the reconnection itself); if Lambda retires the
//     environment first, the message is lost. A small Retry keeps the gap
//     short.
//   - Lambda does not tell a function that its client left: a stream whose
//     client is gone runs until the margin (or until a write times out,
//     when the client stopped reading but its connection stays open).
//   - Between invocations Lambda freezes the environment: the backend's
//     background work (Redis heartbeats and reads) pauses and resumes with
//     the next invocation. The Redis backend is built for it: a frozen
//     environment's sessions are claimed by whichever environment the
//     client resumes in.
//   - Request bodies arrive whole (at most 6 MB): crossws's stream-mode
//     uploads (its client's default: one POST whose body never ends) cannot
//     reach a function. Use its message mode, one POST per message:
//     new WebSocketSSE(url, { stream: false }).
//
// Start wires Lambda's SIGTERM (sent before an environment shuts down) to
// Handler.Shutdown, so that the peers it still holds are handed off.
//
// Import direction: lambda → handler.
package lambda

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"iter"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-lambda-go/events"
	awslambda "github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-lambda-go/lambdaurl"

	"github.com/ssebridge/ssebridge/handler"
)

// DefaultMargin is how long before the invocation deadline streams end when
// Config.Margin is zero.
const DefaultMargin = 5 * time.Second

// Config configures the function. The zero value is usable.
type Config struct {
	// Margin is how long before the invocation's deadline a stream ends, so
	// that its last frames are written and the response completes before
	// Lambda cuts the invocation off. Default DefaultMargin. When an
	// invocation has less than twice the margin left, its stream ends
	// halfway to the deadline instead.
	Margin time.Duration
	// Logger receives the adapter's logs. Default slog.Default().
	Logger *slog.Logger
	// Path, when set, is the URL path of the ssebridge endpoint ("/sse"):
	// requests for other paths go to Other, except those of the
	// Centrifugo transports when the Handler serves them
	// (handler.Config.Centrifugo). Default: every path is the endpoint.
	Path string
	// Other serves the requests for paths other than Path (a page, an API)
	// as a net/http handler, through aws-lambda-go's lambdaurl adapter.
	// Default: 404.
	Other http.Handler
}

// Function is the signature aws-lambda-go streams a function URL response
// from: the runtime sends the prelude (status, headers, cookies) and then
// the body as the function writes it.
type Function func(ctx context.Context, ev *events.LambdaFunctionURLRequest) (*events.LambdaFunctionURLStreamingResponse, error)

// New returns the Lambda function serving h.
func New(h *handler.Handler, cfg Config) Function {
	if cfg.Margin <= 0 {
		cfg.Margin = DefaultMargin
	}
	f := &function{h: h, margin: cfg.Margin, path: cfg.Path}
	if cfg.Other != nil {
		f.other = lambdaurl.Wrap(cfg.Other)
	}
	return f.invoke
}

// Start serves h as the function's handler with aws-lambda-go's runtime
// loop (lambda.StartWithOptions) and never returns. It logs a warning when
// h's backend does not keep sessions across processes, and shuts h down
// when Lambda sends SIGTERM. opts are passed to aws-lambda-go.
func Start(h *handler.Handler, cfg Config, opts ...awslambda.Option) {
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	warnLocal(h, log)
	opts = append(opts, awslambda.WithEnableSIGTERM(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 400*time.Millisecond)
		defer cancel()
		if err := h.Shutdown(ctx); err != nil {
			log.Warn("ssebridge/lambda: shutdown on SIGTERM", "err", err)
		}
	}))
	awslambda.StartWithOptions(New(h, cfg), opts...)
}

// warnLocal warns when h's backend keeps sessions in this process only.
func warnLocal(h *handler.Handler, log *slog.Logger) {
	if h.KeepsSessions() {
		return
	}
	log.Warn("ssebridge/lambda: the backend is in memory, which Lambda execution environments do not share: " +
		"a POST reaches a peer only when it lands in the environment holding the peer's stream, and streams cannot resume elsewhere; " +
		"use backends/redis")
}

type function struct {
	h      *handler.Handler
	margin time.Duration
	path   string
	other  Function
}

// errNotURLEvent answers an invocation that carries no HTTP request.
var errNotURLEvent = errors.New("ssebridge/lambda: the event is not a function URL request (payload format 2.0)")

func (f *function) invoke(ctx context.Context, ev *events.LambdaFunctionURLRequest) (*events.LambdaFunctionURLStreamingResponse, error) {
	if ev == nil || ev.RequestContext.HTTP.Method == "" {
		return nil, errNotURLEvent
	}
	if f.path != "" && ev.RawPath != f.path && !f.h.IsCentrifugoPath(ev.RawPath) {
		if f.other != nil {
			return f.other(ctx, ev)
		}
		return &events.LambdaFunctionURLStreamingResponse{
			StatusCode: http.StatusNotFound,
			Headers:    map[string]string{"Content-Type": "text/plain; charset=utf-8"},
			Body:       strings.NewReader("not found\n"),
		}, nil
	}
	x, err := newExchange(ctx, ev, f.margin)
	if err != nil {
		// A body Lambda said was base64 but is not: the request is bad, not
		// the function.
		return &events.LambdaFunctionURLStreamingResponse{
			StatusCode: http.StatusBadRequest,
			Headers:    map[string]string{"Content-Type": "text/plain; charset=utf-8"},
			Body:       strings.NewReader(err.Error() + "\n"),
		}, nil
	}
	f.h.Serve(x)
	return x.response(), nil
}

// streamEnd returns when a stream of an invocation with the given deadline
// ends: margin before it, or halfway there when that is sooner than now
// plus margin.
func streamEnd(now, deadline time.Time, margin time.Duration) time.Time {
	left := deadline.Sub(now)
	if left < 2*margin {
		return now.Add(left / 2)
	}
	return deadline.Add(-margin)
}

// exchange is one invocation as the engine sees it.
type exchange struct {
	ev     *events.LambdaFunctionURLRequest
	ctx    context.Context
	cancel context.CancelFunc
	path   string
	body   []byte

	resp   events.LambdaFunctionURLStreamingResponse
	buf    bytes.Buffer // the body of a response that is not a stream
	status int
	stream *pipeWriter // set by StreamBody
}

func newExchange(ctx context.Context, ev *events.LambdaFunctionURLRequest, margin time.Duration) (*exchange, error) {
	x := &exchange{ev: ev, resp: events.LambdaFunctionURLStreamingResponse{Headers: map[string]string{}}}
	if ev.IsBase64Encoded {
		b, err := base64.StdEncoding.DecodeString(ev.Body)
		if err != nil {
			return nil, fmt.Errorf("ssebridge/lambda: the request body is not valid base64: %w", err)
		}
		x.body = b
	} else {
		x.body = []byte(ev.Body)
	}
	x.path = ev.RawPath
	if p, err := url.PathUnescape(ev.RawPath); err == nil {
		x.path = p
	}
	if deadline, ok := ctx.Deadline(); ok {
		x.ctx, x.cancel = context.WithDeadline(ctx, streamEnd(time.Now(), deadline, margin))
	} else {
		x.ctx, x.cancel = context.WithCancel(ctx)
	}
	return x, nil
}

// Context is cancelled when the stream must end: Margin before the
// invocation's deadline.
func (x *exchange) Context() context.Context { return x.ctx }
func (x *exchange) Method() string           { return x.ev.RequestContext.HTTP.Method }
func (x *exchange) Path() string             { return x.path }
func (x *exchange) RawQuery() string         { return x.ev.RawQueryString }

// RemoteAddr is the client's IP address: function URLs do not give its
// port.
func (x *exchange) RemoteAddr() string { return x.ev.RequestContext.HTTP.SourceIP }

func (x *exchange) Host() string {
	if h := x.ev.Headers["host"]; h != "" {
		return h
	}
	return x.ev.RequestContext.DomainName
}

// Header looks name up among the event's lower-cased header names; Cookie
// is rebuilt from the event's cookies.
func (x *exchange) Header(name string) string {
	if strings.EqualFold(name, "Cookie") {
		return strings.Join(x.ev.Cookies, "; ")
	}
	var low [64]byte
	if len(name) > len(low) {
		return x.ev.Headers[strings.ToLower(name)]
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		low[i] = c
	}
	return x.ev.Headers[string(low[:len(name)])] // no allocation
}

func (x *exchange) Headers() iter.Seq2[string, string] {
	return func(yield func(string, string) bool) {
		for k, v := range x.ev.Headers {
			if k == "cookie" && len(x.ev.Cookies) > 0 {
				continue // function URLs give it twice: here and in cookies
			}
			if !yield(k, v) {
				return
			}
		}
		if len(x.ev.Cookies) > 0 {
			yield("cookie", strings.Join(x.ev.Cookies, "; "))
		}
	}
}

func (x *exchange) Body() io.Reader      { return bytes.NewReader(x.body) }
func (x *exchange) ContentLength() int64 { return int64(len(x.body)) }

func (x *exchange) SetHeader(name, value string) {
	if x.status != 0 {
		return
	}
	if strings.EqualFold(name, "Set-Cookie") {
		x.resp.Cookies = append(x.resp.Cookies, value)
		return
	}
	if strings.EqualFold(name, "Connection") {
		return // hop-by-hop: Lambda's front end owns the connection
	}
	x.resp.Headers[http.CanonicalHeaderKey(name)] = value
}

func (x *exchange) WriteHeader(status int) {
	if x.status == 0 {
		x.status = status
	}
}

// Write appends to the response body before StreamBody and writes to the
// stream after it.
func (x *exchange) Write(p []byte) (int, error) {
	if x.stream != nil {
		return x.stream.Write(p)
	}
	if x.status == 0 {
		x.status = http.StatusOK
	}
	return x.buf.Write(p)
}

// Flush does nothing: before StreamBody the response is sent when the
// handler returns, and after it every Write is sent at once.
func (x *exchange) Flush() error { return nil }

// SetWriteDeadline bounds the stream's next writes: a write that the
// runtime has not taken by then fails and ends the stream. Before
// StreamBody there is nothing to bound.
func (x *exchange) SetWriteDeadline(t time.Time) error {
	if x.stream != nil {
		x.stream.setDeadline(t)
	}
	return nil
}

// SetReadDeadline does nothing: the body is already in memory.
func (x *exchange) SetReadDeadline(time.Time) error { return nil }

// EnableFullDuplex is not supported: the request body arrived whole.
func (x *exchange) EnableFullDuplex() error {
	return fmt.Errorf("ssebridge/lambda: full duplex: %w", http.ErrNotSupported)
}

// StreamBody hands the response to the runtime as soon as the function
// returns, and runs body on its own goroutine, writing into the pipe the
// runtime reads the body from.
func (x *exchange) StreamBody(status int, body func()) {
	x.status = status
	pr, pw := newPipe()
	x.stream = pw
	x.resp.Body = pr
	go func() {
		defer x.cancel()
		defer pw.Close()
		body()
	}()
}

// response returns what the function answers, once Serve returned.
func (x *exchange) response() *events.LambdaFunctionURLStreamingResponse {
	if x.status == 0 {
		x.status = http.StatusOK
	}
	x.resp.StatusCode = x.status
	if x.stream == nil {
		x.cancel()
		x.resp.Body = &x.buf
	}
	return &x.resp
}

// pipeWriter is the writing end of an io.Pipe whose writes can time out:
// the runtime reads the response body from the other end, and sends each
// read to Lambda as one chunk.
type pipeWriter struct {
	pw *io.PipeWriter

	mu       sync.Mutex
	armed    bool
	deadline time.Time
	timer    *time.Timer
}

func newPipe() (*io.PipeReader, *pipeWriter) {
	pr, pw := io.Pipe()
	return pr, &pipeWriter{pw: pw}
}

func (w *pipeWriter) Write(p []byte) (int, error) { return w.pw.Write(p) }

func (w *pipeWriter) Close() error {
	w.setDeadline(time.Time{})
	return w.pw.Close()
}

// setDeadline arms (or, with the zero time, disarms) the timer that ends
// the pipe when a write is still blocked at t. The runtime then reads the
// end of the body (EOF), not an error: a client that stopped reading is
// not a function failure (an error would be reported to Lambda as one, in
// the response's error trailers), and the blocked write fails, which ends
// the stream.
func (w *pipeWriter) setDeadline(t time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.armed, w.deadline = !t.IsZero(), t
	switch {
	case !w.armed:
		if w.timer != nil {
			w.timer.Stop()
		}
	case w.timer == nil:
		w.timer = time.AfterFunc(time.Until(t), w.expire)
	default:
		w.timer.Reset(time.Until(t))
	}
}

// expire ends the pipe if the deadline in force has passed; a timer that
// fired for an earlier deadline finds it disarmed or moved.
func (w *pipeWriter) expire() {
	w.mu.Lock()
	due := w.armed && !time.Now().Before(w.deadline)
	w.mu.Unlock()
	if due {
		_ = w.pw.Close()
	}
}
