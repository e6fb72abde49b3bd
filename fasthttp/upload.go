package fasthttp

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net"
	"net/http/httputil"
	"time"

	fh "github.com/valyala/fasthttp"
)

// Streamed uploads (crossws's stream mode: a POST with a chunked
// application/octet-stream body that ends only when the client leaves, each
// read one message) must hand each chunk to the handler as soon as it
// arrives. fasthttp's streamed request body (Server.StreamRequestBody) does
// not: its Read returns a chunk only once the CRLF that ends it has arrived
// too, and clients such as Node's fetch (undici) send that CRLF with the next
// chunk — each message would wait for the next one, and a client that waits
// for an answer before sending more would wait forever.
//
// Such a request is therefore served on the hijacked connection: fasthttp
// has parsed the headers and none of the body (what it buffered of it is
// read first); the body is decoded by
// net/http's chunked reader (which returns what has arrived without waiting
// for the CRLF), on the goroutine fasthttp starts for the hijacked
// connection, and the response, written when the handler returns, closes
// the connection (crossws asks for that anyway: its uploads are never
// reused).

// isStreamedUpload reports whether ctx is a streamed upload that fasthttp
// has not read yet.
func isStreamedUpload(ctx *fh.RequestCtx) bool {
	return ctx.IsPost() && ctx.Request.Header.ContentLength() == -1 &&
		ctx.RequestBodyStream() != nil && isOctetStream(ctx.Request.Header.ContentType())
}

func isOctetStream(ct []byte) bool {
	if i := bytes.IndexByte(ct, ';'); i >= 0 {
		ct = ct[:i]
	}
	return bytes.EqualFold(bytes.TrimSpace(ct), []byte("application/octet-stream"))
}

// answerWriteTimeout bounds the writing of an answer on a hijacked
// connection.
const answerWriteTimeout = 10 * time.Second

// serveUpload serves a streamed upload on its hijacked connection. fasthttp
// keeps ctx valid until this returns, then closes c.
func (s *server) serveUpload(ctx *fh.RequestCtx, c net.Conn) {
	// c reads what fasthttp buffered first; fasthttp recycles it once this
	// returns. Deadlines go to the connection itself, which stays safe to
	// call after that.
	raw := ctx.Conn()
	x := exchanges.Get().(*exchange)
	x.ctx, x.srv, x.hijacked = ctx, s, raw
	x.bodyR.r = httputil.NewChunkedReader(c)
	x.bodyStream = &x.bodyR
	// fasthttp no longer counts the connection: end the upload when the
	// server shuts down, as its other requests end.
	stop := context.AfterFunc(x.Context(), func() { _ = raw.SetReadDeadline(time.Unix(1, 0)) })
	s.h.Serve(x)
	stop()
	eof := x.bodyR.eof
	// A stream's body, if the handler answered with one, runs in
	// answerAndClose.
	answerAndClose(ctx, c, !eof)
	x.handlerReturned()
}

// bodyReader counts what the handler read of a streamed request body.
type bodyReader struct {
	r   io.Reader
	n   int64
	eof bool
}

func (b *bodyReader) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	b.n += int64(n)
	if err == io.EOF {
		b.eof = true
	}
	return n, err
}

// maxUnreadBody is how much of a streamed request body the handler left
// unread fasthttp discards to keep the connection; with more left, it
// closes it (its maxUnreadStreamBodySize).
const maxUnreadBody = 256 << 10

// refusedLargeBody reports whether the handler answered a request leaving
// more of its streamed body unread than fasthttp discards.
func (x *exchange) refusedLargeBody() bool {
	if x.streaming || x.ctx.RequestBodyStream() == nil || x.bodyR.eof {
		return false
	}
	cl := x.ctx.Request.Header.ContentLength()
	if cl < 0 {
		return cl == -1 // chunked, not read to its end
	}
	return int64(cl)-x.bodyR.n > maxUnreadBody
}

// lingerFor and lingerMax bound how long, and how much of, the rest of a
// request body is read and dropped after its answer, before the connection
// closes (net/http waits 500 ms likewise).
const (
	lingerFor = 500 * time.Millisecond
	lingerMax = 64 << 20
)

// answerAndClose writes ctx's response on its hijacked connection c and
// closes it. With linger, the client may still be sending: it first closes
// the writing half and reads what comes for a moment, so that closing does
// not reset the connection before the client read the answer.
func answerAndClose(ctx *fh.RequestCtx, c net.Conn, linger bool) {
	raw := ctx.Conn()
	resp := &ctx.Response
	resp.SetConnectionClose()
	_ = raw.SetWriteDeadline(time.Now().Add(answerWriteTimeout))
	bw := bufio.NewWriter(c)
	if err := resp.Write(bw); err == nil && bw.Flush() == nil && linger {
		if cw, ok := raw.(interface{ CloseWrite() error }); ok {
			_ = cw.CloseWrite()
		}
		_ = raw.SetReadDeadline(time.Now().Add(lingerFor))
		_, _ = io.CopyN(io.Discard, c, lingerMax)
	}
	resp.Reset()  // closes a stream Write did not run
	_ = c.Close() // fasthttp closes it too, unless Server.KeepHijackedConns
}
