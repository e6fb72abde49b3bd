package engine

import (
	"context"
	"io"
	"iter"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// RequestSource is the read-only view of an HTTP request that a runtime
// adapter provides. Implementations must not copy more than they must: the
// engine asks only for what it needs.
type RequestSource interface {
	// Context is cancelled when the client goes away or the runtime ends
	// the request; its deadline, if any, is when the response must end.
	Context() context.Context
	Method() string
	// Host is the Host header (HTTP/1.1) or :authority (HTTP/2).
	Host() string
	// Path is the decoded URL path.
	Path() string
	// RawQuery is the query string without '?'.
	RawQuery() string
	// Header returns the value of the named header ("" if absent): the
	// first one where the runtime keeps repeated fields apart, the
	// comma-joined list where it does not (Lambda). name is matched
	// case-insensitively.
	Header(name string) string
	// Headers yields every header field; a field with several values is
	// yielded once per value.
	Headers() iter.Seq2[string, string]
	// RemoteAddr is the client address as the runtime sees it.
	RemoteAddr() string
}

// Exchange is one request and its response, as a runtime adapter presents
// them to the engine. Methods other than the RequestSource ones are called
// only from the goroutine serving the request (or, once StreamBody handed
// the response over, from the goroutine running its body), except
// SetReadDeadline, which may be called from any goroutine to abort a
// streamed upload.
//
// Runtimes differ in when a response leaves: net/http sends bytes while the
// handler runs; fasthttp and Lambda send the status and headers only once
// the handler has returned, and stream the body from another goroutine.
// StreamBody covers both: responses other than streams are written with
// WriteHeader and Write, which such runtimes buffer, and a stream's body is
// written by the function given to StreamBody.
type Exchange interface {
	RequestSource

	// Body is the request body; ContentLength is its length, or -1 when
	// unknown (chunked or HTTP/2 without content-length).
	Body() io.Reader
	ContentLength() int64

	// SetHeader sets a response header; it has no effect after WriteHeader.
	SetHeader(name, value string)
	// WriteHeader sends the status line and headers.
	WriteHeader(status int)
	// Write writes response body bytes.
	Write(p []byte) (int, error)
	// Flush sends buffered response bytes to the client now.
	Flush() error
	// SetWriteDeadline bounds the next writes and flush; the zero time clears
	// it. Runtimes without deadlines return an error wrapping
	// http.ErrNotSupported.
	SetWriteDeadline(t time.Time) error
	// SetReadDeadline bounds body reads; a time in the past makes a blocked
	// read return at once. The zero time clears it.
	SetReadDeadline(t time.Time) error
	// EnableFullDuplex lets the handler write the response while it still
	// reads the request body (HTTP/1.1; HTTP/2 is always full duplex).
	// Runtimes that cannot return an error wrapping http.ErrNotSupported.
	EnableFullDuplex() error
	// StreamBody sends the status and the headers set so far and has body
	// write the response body with Write, Flush and SetWriteDeadline, each
	// Flush sending what was written to the client at once. Runtimes that
	// write while the handler runs (net/http) call body at once and return
	// when it returns. Runtimes that send the response after the handler
	// returns (fasthttp, Lambda) call body on a goroutine of their own and
	// return at once; body must then not touch the request (Context,
	// headers, Body: read them before). StreamBody is called at most once,
	// instead of WriteHeader, and nothing else is written after it.
	StreamBody(status int, body func())
}

// Request is a read-only view of an HTTP request given to hooks. For the
// Upgrade hook it is the live request; Peer.Request returns a copy taken when
// the peer's stream opened, which stays valid for the peer's life (it keeps
// the first 16 KiB of header fields; read what you need in Upgrade and keep
// it with a Key for anything larger).
type Request struct {
	src RequestSource
}

// NewRequest wraps a RequestSource.
func NewRequest(src RequestSource) Request { return Request{src: src} }

// Context returns the request's context.
func (r Request) Context() context.Context { return r.src.Context() }

// Method returns the HTTP method.
func (r Request) Method() string { return r.src.Method() }

// Host returns the Host header or HTTP/2 authority.
func (r Request) Host() string { return r.src.Host() }

// Path returns the decoded URL path.
func (r Request) Path() string { return r.src.Path() }

// RawQuery returns the query string without '?'.
func (r Request) RawQuery() string { return r.src.RawQuery() }

// Query parses the query string. Malformed pairs are skipped.
func (r Request) Query() url.Values {
	v, _ := url.ParseQuery(r.src.RawQuery())
	return v
}

// Header returns the first value of the named header, matched
// case-insensitively, or "".
func (r Request) Header(name string) string { return r.src.Header(name) }

// Headers yields every header field.
func (r Request) Headers() iter.Seq2[string, string] { return r.src.Headers() }

// Cookie returns the value of the named cookie and whether it was present.
// Malformed cookies next to it do not hide it.
func (r Request) Cookie(name string) (string, bool) {
	var lines []string
	for k, v := range r.src.Headers() {
		if strings.EqualFold(k, "Cookie") {
			lines = append(lines, v)
		}
	}
	if lines == nil {
		return "", false
	}
	c, err := (&http.Request{Header: http.Header{"Cookie": lines}}).Cookie(name)
	if err != nil {
		return "", false
	}
	return c.Value, true
}

// RemoteAddr returns the client address as the runtime sees it.
func (r Request) RemoteAddr() string { return r.src.RemoteAddr() }

// maxSnapshotHeaders bounds the header bytes a peer keeps from the request
// that opened it; fields beyond it are dropped from Peer.Request.
const maxSnapshotHeaders = 16 << 10

// snapshot is a copy of a request that outlives it.
type snapshot struct {
	ctx                               context.Context
	method, host, path, query, remote string
	header                            [][2]string
}

func takeSnapshot(src RequestSource, ctx context.Context) *snapshot {
	s := &snapshot{
		ctx:    ctx,
		method: src.Method(),
		host:   src.Host(),
		path:   src.Path(),
		query:  src.RawQuery(),
		remote: src.RemoteAddr(),
	}
	size := 0
	for k, v := range src.Headers() {
		if size += len(k) + len(v); size > maxSnapshotHeaders {
			break
		}
		s.header = append(s.header, [2]string{k, v})
	}
	return s
}

func (s *snapshot) Context() context.Context { return s.ctx }
func (s *snapshot) Method() string           { return s.method }
func (s *snapshot) Host() string             { return s.host }
func (s *snapshot) Path() string             { return s.path }
func (s *snapshot) RawQuery() string         { return s.query }
func (s *snapshot) RemoteAddr() string       { return s.remote }

func (s *snapshot) Header(name string) string {
	for _, f := range s.header {
		if strings.EqualFold(f[0], name) {
			return f[1]
		}
	}
	return ""
}

func (s *snapshot) Headers() iter.Seq2[string, string] {
	return func(yield func(string, string) bool) {
		for _, f := range s.header {
			if !yield(f[0], f[1]) {
				return
			}
		}
	}
}
