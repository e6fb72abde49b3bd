package bench

// The load generator of the connection benchmarks (conns_test.go), run in
// a child process (child_test.go) so that its memory and goroutines never
// mix with the server's. Its commands:
//
//	open <host:port> <n> [target]
//	                      open n streams (GET target, default /, with
//	                      Accept: text/event-stream), at most openParallel at
//	                      a time; reply once every one has received its
//	                      first event (the hello)
//	arm <k>               from now on, wait for k events per stream in all
//	wait <ms>             reply once every stream has received exactly k
//	                      events (hello included), or fail after ms
//	reads                 reply "ok <r>": the reads that returned data, all
//	                      streams together, since the last reads command
//	close                 close every stream (RST: no TIME_WAIT) and wait
//	                      for their readers to end; reply "ok <n>", the
//	                      number of streams closed
//
// Each stream has one goroutine that reads it with a bufio.Reader and counts
// events the way an EventSource dispatches them: an empty line ends an event,
// which counts when it had a data field; comments (heartbeats) and the other
// fields do not count. Lines end at LF (a CR before it is ignored); none of
// the servers measured writes lone CRs.

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

const (
	// openParallel bounds the streams being opened at once, well under the
	// listen backlog (net.core.somaxconn), so that no SYN is dropped and
	// retried a second later.
	openParallel = 64
	openTimeout  = 60 * time.Second
)

func newLoadgen() *loadgen { return &loadgen{failed: make(chan struct{})} }

// loadgen is the client side: the open streams and the round of events
// they are waiting for.
type loadgen struct {
	streams []*stream
	wg      sync.WaitGroup
	round   atomic.Pointer[round]
	failed  chan struct{} // closed when the first stream fails
	failErr atomic.Pointer[error]
	once    sync.Once
}

// round is a number of events every stream waits for.
type round struct {
	target    int64
	remaining atomic.Int64 // streams that have not reached target
	done      chan struct{}
}

type stream struct {
	count atomic.Int64 // complete events received, hello included
	reads atomic.Int64 // reads from the connection that returned data

	mu     sync.Mutex
	conn   net.Conn
	closed bool
}

// setConn records conn, or closes it if the stream was closed meanwhile.
func (s *stream) setConn(conn net.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		_ = conn.Close()
		return false
	}
	s.conn = conn
	return true
}

// close resets the connection: the kernel sends RST and keeps no TIME_WAIT
// entry, so that repeated runs never run short of ephemeral ports.
func (s *stream) close() {
	s.mu.Lock()
	s.closed = true
	c := s.conn
	s.mu.Unlock()
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	if c != nil {
		_ = c.Close()
	}
}

// streamFailed records err unless the stream was closed on purpose.
func (g *loadgen) streamFailed(s *stream, err error) {
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	if !closed {
		g.fail(err)
	}
}

func (g *loadgen) fail(err error) {
	g.once.Do(func() {
		g.failErr.Store(&err)
		close(g.failed)
	})
}

func (g *loadgen) err() error {
	if p := g.failErr.Load(); p != nil {
		return *p
	}
	return nil
}

func (g *loadgen) command(f []string) (string, error) {
	if len(f) == 0 {
		return "", errors.New("empty command")
	}
	arg := func(i int) (int64, error) {
		if len(f) <= i {
			return 0, fmt.Errorf("%s: missing argument", f[0])
		}
		return strconv.ParseInt(f[i], 10, 64)
	}
	switch f[0] {
	case "open":
		n, err := arg(2)
		if err != nil {
			return "", err
		}
		target := "/"
		if len(f) > 3 {
			target = f[3]
		}
		return "", g.open(f[1], int(n), target)
	case "arm":
		k, err := arg(1)
		if err != nil {
			return "", err
		}
		g.arm(k)
		return "", nil
	case "wait":
		ms, err := arg(1)
		if err != nil {
			return "", err
		}
		return "", g.wait(time.Duration(ms) * time.Millisecond)
	case "reads":
		var r int64
		for _, s := range g.streams {
			r += s.reads.Swap(0)
		}
		return strconv.FormatInt(r, 10), nil
	case "close":
		return g.closeAll(), nil
	}
	return "", fmt.Errorf("unknown command %q", f[0])
}

// arm starts a round: every stream is to reach k events. No event may be in
// flight (the parent publishes only after the reply).
func (g *loadgen) arm(k int64) {
	r := &round{target: k, done: make(chan struct{})}
	short := int64(0)
	for _, s := range g.streams {
		if s.count.Load() < k {
			short++
		}
	}
	r.remaining.Store(short)
	if short == 0 {
		close(r.done)
	}
	g.round.Store(r)
}

// wait waits for the armed round, then checks that no stream got more.
func (g *loadgen) wait(timeout time.Duration) error {
	r := g.round.Load()
	if r == nil {
		return errors.New("wait before arm")
	}
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-r.done:
	case <-g.failed:
		return g.err()
	case <-t.C:
		return fmt.Errorf("timed out after %v: %d of %d streams short of %d events (%s)",
			timeout, r.remaining.Load(), len(g.streams), r.target, g.histogram())
	}
	for _, s := range g.streams {
		if s.count.Load() != r.target {
			return fmt.Errorf("streams got other counts than %d events: %s", r.target, g.histogram())
		}
	}
	return nil
}

// histogram summarises the streams' counts for failure messages.
func (g *loadgen) histogram() string {
	h := map[int64]int{}
	for _, s := range g.streams {
		h[s.count.Load()]++
	}
	var b strings.Builder
	for c, n := range h {
		if b.Len() > 200 {
			b.WriteString(" …")
			break
		}
		fmt.Fprintf(&b, " %d×%d", n, c)
	}
	return "counts (streams×events):" + b.String()
}

// open opens n more streams to addr, each a GET of target (a request
// target: path and query), and waits for each one's hello.
func (g *loadgen) open(addr string, n int, target string) error {
	if err := g.err(); err != nil {
		return err
	}
	if g.round.Load() != nil {
		return errors.New("open after the first round: counts would be off")
	}
	first := len(g.streams)
	for range n {
		g.streams = append(g.streams, new(stream))
	}
	r := &round{target: 1, done: make(chan struct{})}
	r.remaining.Store(int64(n))
	if n == 0 {
		close(r.done)
	}
	g.round.Store(r)

	req := []byte("GET " + target + " HTTP/1.1\r\nHost: " + addr + "\r\nAccept: text/event-stream\r\nUser-Agent: ssebridge-bench\r\n\r\n")
	sem := make(chan struct{}, openParallel)
	dialer := net.Dialer{Timeout: 10 * time.Second}
	for _, s := range g.streams[first:] {
		select {
		case sem <- struct{}{}:
		case <-g.failed:
			return g.err()
		}
		g.wg.Add(1)
		go func() {
			defer g.wg.Done()
			s.run(g, &dialer, addr, req, sem)
		}()
	}
	t := time.NewTimer(openTimeout)
	defer t.Stop()
	select {
	case <-r.done:
		g.round.Store(nil)
		return nil
	case <-g.failed:
		return g.err()
	case <-t.C:
		return fmt.Errorf("timed out after %v: %d of %d streams without their hello",
			openTimeout, r.remaining.Load(), n)
	}
}

// run opens the stream, releases its slot in sem once the response headers
// are in, and counts events until the stream ends.
func (s *stream) run(g *loadgen, d *net.Dialer, addr string, req []byte, sem chan struct{}) {
	released := false
	release := func() {
		if !released {
			released = true
			<-sem
		}
	}
	defer release()
	conn, err := d.Dial("tcp", addr)
	if err != nil {
		g.streamFailed(s, fmt.Errorf("dial: %w", err))
		return
	}
	if !s.setConn(conn) {
		return
	}
	if _, err := conn.Write(req); err != nil {
		g.streamFailed(s, fmt.Errorf("request: %w", err))
		_ = conn.Close()
		return
	}
	br := bufio.NewReaderSize(countingReader{conn, &s.reads}, 4096)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		g.streamFailed(s, fmt.Errorf("response: %w", err))
		_ = conn.Close()
		return
	}
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		g.streamFailed(s, fmt.Errorf("response %s, Content-Type %q", resp.Status, resp.Header.Get("Content-Type")))
		_ = conn.Close()
		return
	}
	release()
	err = s.countEvents(g, resp.Body)
	if err != nil {
		g.streamFailed(s, fmt.Errorf("stream after %d events: %w", s.count.Load(), err))
	}
}

// countingReader counts the reads of r that return data.
type countingReader struct {
	r io.Reader
	n *atomic.Int64
}

func (c countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	if n > 0 {
		c.n.Add(1)
	}
	return n, err
}

// countEvents reads body (resp.Body undoes the chunked encoding) and counts
// complete events with data.
func (s *stream) countEvents(g *loadgen, body io.Reader) error {
	r := bufio.NewReaderSize(body, 2048)
	haveData, lineStart := false, true
	for {
		line, err := r.ReadSlice('\n')
		if err != nil && !errors.Is(err, bufio.ErrBufferFull) {
			if errors.Is(err, io.EOF) {
				return io.ErrUnexpectedEOF // streams never end on their own here
			}
			return err
		}
		full := err == nil // the line ends in this slice
		if lineStart {
			l := bytes.TrimSuffix(line, []byte{'\n'})
			l = bytes.TrimSuffix(l, []byte{'\r'})
			switch {
			case full && len(l) == 0:
				if haveData {
					haveData = false
					n := s.count.Add(1)
					if rd := g.round.Load(); rd != nil && n == rd.target {
						if rd.remaining.Add(-1) == 0 {
							close(rd.done)
						}
					}
				}
			case bytes.HasPrefix(l, []byte("data")) && (len(l) == 4 || l[4] == ':'):
				haveData = true
			}
		}
		lineStart = full
	}
}

// closeAll closes every stream and waits for their readers.
func (g *loadgen) closeAll() string {
	for _, s := range g.streams {
		s.close()
	}
	g.wg.Wait()
	n := len(g.streams)
	g.streams = nil
	g.round.Store(nil)
	return strconv.Itoa(n)
}
