package fasthttp

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// respStream is a stream's response body, given to fasthttp with
// Response.SetBodyStream(…, -1). fasthttp consumes it after the handler
// returned, in one of three ways, and always closes it at the end:
//
//   - WriteTo (the usual way: fasthttp's chunked framing prefers a stream
//     that implements fasthttp.BodyWriterTo): body runs right there, on the
//     connection's goroutine, each Write becoming one chunk that fasthttp
//     flushes to the connection. Write deadlines on the connection bound
//     exactly the engine's writes.
//   - Read (other consumers): body runs on a goroutine of its own, writing
//     into an io.Pipe that Read drains.
//   - Close without either (the response was reset or not sent, or its
//     request was a HEAD): body runs at once with writes that fail, so that
//     the peer detaches instead of waiting for a stream that never comes.
//
// The exchange goes back to its pool when the handler returned, the body
// ran and fasthttp closed the stream, whatever the order. The stream itself
// is not pooled: once closed, it answers late calls without touching the
// exchange.
type respStream struct {
	x    *exchange
	conn net.Conn // nil when the connection has no deadlines
	body func()

	mu     sync.Mutex
	state  streamState // guarded by mu
	pr     *io.PipeReader
	closed atomic.Bool // fasthttp closed the stream: writes fail

	// Used by the goroutine running body only, once it started.
	mode    streamState
	w       io.Writer // stDirect: fasthttp's chunk writer
	pw      *io.PipeWriter
	n       int64
	err     error         // the first write error
	timeout time.Duration // the last write deadline, from when it was set
}

type streamState int

const (
	stIdle   streamState = iota // body not started
	stDirect                    // body runs in WriteTo
	stPiped                     // body runs on its own goroutine for Read
	stFailed                    // closed before body started
)

// defaultFinalTimeout bounds the end of a stream whose body never set a
// write deadline.
const defaultFinalTimeout = 10 * time.Second

// SupportsBodyWriteTo tells fasthttp that WriteTo may replace Read.
func (s *respStream) SupportsBodyWriteTo() bool { return true }

// WriteTo runs the body, writing to w (fasthttp's chunked writer: each Write
// is one chunk, flushed).
func (s *respStream) WriteTo(w io.Writer) (int64, error) {
	if !s.start(stDirect) {
		return 0, errStreamClosed
	}
	s.w = w
	return s.run(nil)
}

// Read runs the body on a goroutine of its own, the first time, and reads
// what it writes.
func (s *respStream) Read(p []byte) (int, error) {
	s.mu.Lock()
	switch s.state {
	case stIdle:
		s.pr, s.pw = io.Pipe()
		s.state, s.mode = stPiped, stPiped
		pw := s.pw
		go func() { _, _ = s.run(func(err error) { _ = pw.CloseWithError(err) }) }()
	case stPiped:
	default:
		s.mu.Unlock()
		return 0, errStreamClosed
	}
	pr := s.pr
	s.mu.Unlock()
	return pr.Read(p)
}

// Close is fasthttp giving up the body: a body not started runs with
// failing writes; a running one fails at its next write.
func (s *respStream) Close() error {
	if !s.closed.CompareAndSwap(false, true) {
		return nil
	}
	x := s.x
	s.mu.Lock()
	state, pr := s.state, s.pr
	if state == stIdle {
		s.state, s.mode = stFailed, stFailed
	}
	s.mu.Unlock()
	switch state {
	case stIdle:
		_, _ = s.run(nil)
	case stPiped:
		_ = pr.CloseWithError(errStreamClosed)
	}
	x.unref()
	return nil
}

func (s *respStream) start(mode streamState) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.state != stIdle {
		return false
	}
	s.state, s.mode = mode, mode
	return true
}

// run runs the body, then end (if not nil), and gives the body's reference
// to the exchange back.
func (s *respStream) run(end func(error)) (int64, error) {
	x := s.x
	defer x.unref()
	s.body()
	n, err := s.n, s.err
	if err == nil && s.mode != stFailed && !s.closed.Load() && s.conn != nil {
		// fasthttp writes the last chunk after this: bound it too. It
		// clears the deadline after the response.
		d := s.timeout
		if d <= 0 {
			d = defaultFinalTimeout
		}
		_ = s.conn.SetWriteDeadline(time.Now().Add(d))
	}
	if end != nil {
		end(err)
	}
	return n, err
}

func (s *respStream) write(p []byte) (int, error) {
	if s.err != nil {
		return 0, s.err
	}
	if s.closed.Load() || s.mode == stFailed {
		s.err = errStreamClosed
		return 0, s.err
	}
	var n int
	var err error
	if s.mode == stDirect {
		n, err = s.w.Write(p)
	} else {
		n, err = s.pw.Write(p)
	}
	s.n += int64(n)
	if err != nil {
		s.err = err
	}
	return n, err
}

// flush has nothing to do: each write was sent as it came (a chunk flushed
// by fasthttp, or a pipe write that returns once read).
func (s *respStream) flush() error { return s.err }

// errNoDeadlines is returned for connections that cannot take deadlines.
var errNoDeadlines = fmt.Errorf("ssebridge/fasthttp: connection without deadlines: %w", http.ErrNotSupported)

func (s *respStream) setWriteDeadline(t time.Time) error {
	if !t.IsZero() {
		s.timeout = time.Until(t)
	}
	if s.mode == stFailed {
		return nil
	}
	if s.conn == nil {
		return errNoDeadlines
	}
	err := s.conn.SetWriteDeadline(t)
	if err != nil && (isClosedConn(err) || s.closed.Load()) {
		return nil // the connection is gone: the next write says so
	}
	return err
}

// connOf returns the connection of a request if it takes deadlines; a
// RequestCtx made with Init (tests) has one that does not.
func connOf(c net.Conn) (conn net.Conn) {
	if c == nil {
		return nil
	}
	defer func() {
		if recover() != nil {
			conn = nil
		}
	}()
	// Clearing the write deadline is harmless while the handler runs:
	// fasthttp sets its own (WriteTimeout) only after it returned.
	if err := c.SetWriteDeadline(time.Time{}); err != nil {
		return nil
	}
	return c
}
