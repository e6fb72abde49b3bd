package interop

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ssebridge/ssebridge/internal/redistest"
)

// This file holds the harness of the Redis tests (redis_chat_test.go):
// examples/chat instances on one private Redis, a failover proxy in front
// of two of them, a Go SSE client, and a reader for seq-listeners.mjs.

// chatProc is an examples/chat process started by startRedisChat.
type chatProc struct {
	name    string // "A", "B": for messages
	base    string // http://127.0.0.1:PORT
	cmd     *exec.Cmd
	stderr  *syncBuffer
	exited  chan struct{} // closed once the process ended; waitErr is set
	waitErr error
}

// chatStopTimeout bounds how long the cleanup waits for a chat process to
// end after SIGINT (its own shutdown takes at most 5 s) before killing it.
const chatStopTimeout = 8 * time.Second

// startRedisChat runs an examples/chat instance (built once per test
// binary, see chatBuild) on 127.0.0.1:0 with -redis redisURL. The process
// is stopped when the test ends (SIGINT, then SIGKILL); its log is shown if
// the test failed.
func startRedisChat(t *testing.T, ctx context.Context, name, redisURL string) *chatProc {
	t.Helper()
	bin, err := chatBuild()
	if err != nil {
		t.Fatal(err)
	}
	c := &chatProc{name: name, stderr: new(syncBuffer), exited: make(chan struct{})}
	c.cmd = exec.Command(bin, "-addr", "127.0.0.1:0", "-redis", redisURL)
	c.cmd.Stderr = c.stderr
	stdout, err := c.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	first := make(chan string, 1)
	go func() {
		r := bufio.NewReader(stdout)
		line, _ := r.ReadString('\n')
		first <- strings.TrimSpace(line)
		_, _ = io.Copy(io.Discard, r)
		c.waitErr = c.cmd.Wait()
		close(c.exited)
	}()
	t.Cleanup(func() {
		stopping := time.Now()
		_ = c.cmd.Process.Signal(os.Interrupt) // fails if it ended already
		select {
		case <-c.exited:
		case <-time.After(chatStopTimeout):
			_ = c.cmd.Process.Kill()
			<-c.exited
		}
		switch d := time.Since(stopping); {
		case t.Failed():
			t.Logf("chat %s (%s) log:\n%s", c.name, c.base, c.stderr.String())
		case d > 2*time.Second:
			t.Logf("chat %s (%s) took %v to stop after SIGINT; log:\n%s", c.name, c.base, d.Round(time.Millisecond), c.stderr.String())
		}
	})
	select {
	case line := <-first:
		m := listeningLine.FindStringSubmatch(line)
		if m == nil {
			t.Fatalf("chat %s: unexpected first line %q", name, line) // the cleanup shows its log
		}
		c.base = m[1]
	case <-ctx.Done():
		t.Fatalf("chat %s did not start: %v", name, ctx.Err())
	}
	return c
}

// wait waits for the process to end and returns how it ended.
func (c *chatProc) wait(ctx context.Context) error {
	select {
	case <-c.exited:
		return c.waitErr
	case <-ctx.Done():
		return fmt.Errorf("chat %s still running: %w", c.name, ctx.Err())
	}
}

// proxyHit is one request the failover proxy forwarded.
type proxyHit struct {
	At          time.Time
	Method      string
	LastEventID string
	Backend     string // "A" or "B"
	FailedA     string // why A was passed over, "" when A served it
	Status      int    // 0 when the backend did not answer
	Err         string
}

// failoverProxy is a reverse proxy in front of two instances, as a load
// balancer with a preferred node: each request goes to A, and to B when A
// does not take it (A refuses the connection, or, for a GET, fails before
// it answers). Requests with a body are never sent to B. Streams are
// flushed at once (FlushInterval -1).
type failoverProxy struct {
	url  string // http://127.0.0.1:PORT
	logs *syncBuffer

	mu   sync.Mutex
	hits []proxyHit
}

// startFailoverProxy starts the proxy for the instances at aBase and bBase
// (http://127.0.0.1:PORT). It is closed when the test ends, after the
// clients started later (cleanups run last-in first-out).
func startFailoverProxy(t *testing.T, aBase, bBase string) *failoverProxy {
	t.Helper()
	aURL, err := url.Parse(aBase)
	if err != nil {
		t.Fatal(err)
	}
	bURL, err := url.Parse(bBase)
	if err != nil {
		t.Fatal(err)
	}
	px := &failoverProxy{logs: new(syncBuffer)}
	// A new connection per request: the decision is made on each dial,
	// not hidden by a pooled connection to a dead A.
	tr := &http.Transport{
		DisableKeepAlives: true,
		DialContext:       (&net.Dialer{Timeout: 2 * time.Second}).DialContext,
	}
	t.Cleanup(tr.CloseIdleConnections)
	rt := roundTripFunc(func(req *http.Request) (*http.Response, error) {
		hit := proxyHit{At: time.Now(), Method: req.Method, LastEventID: req.Header.Get("Last-Event-ID"), Backend: "A"}
		resp, err := tr.RoundTrip(req)
		// Only a request without a body can be sent again (the
		// transport closed the body): when A refused the connection,
		// or, for a GET, whatever happened.
		if err != nil && req.Body == nil && (isDialError(err) || req.Method == http.MethodGet) {
			hit.Backend, hit.FailedA = "B", err.Error()
			req = req.Clone(req.Context())
			req.URL.Host, req.Host = bURL.Host, bURL.Host
			resp, err = tr.RoundTrip(req)
		}
		if err != nil {
			hit.Err = err.Error()
		} else {
			hit.Status = resp.StatusCode
		}
		px.mu.Lock()
		px.hits = append(px.hits, hit)
		px.mu.Unlock()
		return resp, err
	})
	rp := &httputil.ReverseProxy{
		Rewrite:       func(pr *httputil.ProxyRequest) { pr.SetURL(aURL) },
		Transport:     rt,
		FlushInterval: -1,
		ErrorLog:      log.New(px.logs, "proxy: ", log.Lmicroseconds),
	}
	srv := httptest.NewServer(rp)
	px.url = srv.URL
	t.Cleanup(func() {
		srv.CloseClientConnections()
		srv.Close()
		if t.Failed() {
			t.Logf("proxy requests:%s\nproxy log:\n%s", px, px.logs.String())
		}
	})
	return px
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// isDialError reports whether err is a failure to connect: the request was
// not sent.
func isDialError(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

// requests returns a copy of what the proxy forwarded so far.
func (px *failoverProxy) requests() []proxyHit {
	px.mu.Lock()
	defer px.mu.Unlock()
	return slices.Clone(px.hits)
}

// String formats the proxy's requests for failure messages.
func (px *failoverProxy) String() string {
	var b strings.Builder
	hits := px.requests()
	for _, h := range hits {
		fmt.Fprintf(&b, "\n\t%s %s last-event-id=%q → %s status %d", h.At.Format("15:04:05.000"), h.Method, h.LastEventID, h.Backend, h.Status)
		if h.FailedA != "" {
			fmt.Fprintf(&b, " (A: %s)", h.FailedA)
		}
		if h.Err != "" {
			fmt.Fprintf(&b, " err=%s", h.Err)
		}
	}
	return b.String()
}

// sseEvent is one event of a stream read by goStream.
type sseEvent struct {
	ID    string // the event's id field, "" if none
	Event string // "message" when the event had no event field
	Data  string
}

// goStream is a stream read with net/http and a minimal SSE parser (no
// reconnection): for clients the test drives directly, such as the
// publisher, whose stream must be read so that its queue never fills.
type goStream struct {
	peer string // the data of the first crossws-id event

	mu      sync.Mutex
	evs     []sseEvent
	err     error         // why the stream ended
	changed chan struct{} // a token after each event
	done    chan struct{} // closed when the stream ended
}

// openStream opens a stream on endpoint (…/sse?name=…) and waits for its
// crossws-id event. The stream is closed when the test ends.
func openStream(t *testing.T, ctx context.Context, endpoint string) *goStream {
	t.Helper()
	sctx, cancel := context.WithCancel(ctx)
	req, err := http.NewRequestWithContext(sctx, http.MethodGet, endpoint, nil)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	req.Header.Set("Accept", "text/event-stream")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		cancel()
		t.Fatalf("GET %s: %v", endpoint, err)
	}
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
		_ = resp.Body.Close()
		cancel()
		t.Fatalf("GET %s: %s %q: %q", endpoint, resp.Status, resp.Header.Get("Content-Type"), body)
	}
	s := &goStream{changed: make(chan struct{}, 1), done: make(chan struct{})}
	go s.read(resp.Body)
	t.Cleanup(func() {
		cancel()
		_ = resp.Body.Close()
		<-s.done
	})
	hello, err := s.waitFor(ctx, func(ev sseEvent) bool { return ev.Event == "crossws-id" })
	if err != nil {
		t.Fatalf("GET %s: no crossws-id event: %v", endpoint, err)
	}
	s.peer = hello.Data
	if !peerIDPattern.MatchString(s.peer) {
		t.Fatalf("GET %s: crossws-id %q is not a peer id", endpoint, s.peer)
	}
	return s
}

func (s *goStream) read(body io.Reader) {
	defer close(s.done)
	r := bufio.NewReader(body)
	var ev sseEvent
	var data []string
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			s.mu.Lock()
			s.err = err
			s.mu.Unlock()
			s.notify()
			return
		}
		line = strings.TrimSuffix(strings.TrimSuffix(line, "\n"), "\r")
		if line == "" {
			if data != nil || ev.Event != "" {
				if ev.Event == "" {
					ev.Event = "message"
				}
				ev.Data = strings.Join(data, "\n")
				s.mu.Lock()
				s.evs = append(s.evs, ev)
				s.mu.Unlock()
				s.notify()
			}
			ev, data = sseEvent{}, nil
			continue
		}
		if strings.HasPrefix(line, ":") {
			continue
		}
		field, value, _ := strings.Cut(line, ":")
		value = strings.TrimPrefix(value, " ")
		switch field {
		case "id":
			ev.ID = value
		case "event":
			ev.Event = value
		case "data":
			data = append(data, value)
		}
	}
}

func (s *goStream) notify() {
	select {
	case s.changed <- struct{}{}:
	default:
	}
}

// events returns the events received so far.
func (s *goStream) events() []sseEvent {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.evs)
}

// waitFor returns the first event received that satisfies ok, waiting for
// it until ctx ends or the stream ends.
func (s *goStream) waitFor(ctx context.Context, ok func(sseEvent) bool) (sseEvent, error) {
	for {
		s.mu.Lock()
		for _, ev := range s.evs {
			if ok(ev) {
				s.mu.Unlock()
				return ev, nil
			}
		}
		err := s.err
		s.mu.Unlock()
		if err != nil {
			return sseEvent{}, fmt.Errorf("stream ended: %w", err)
		}
		select {
		case <-s.changed:
		case <-ctx.Done():
			return sseEvent{}, ctx.Err()
		}
	}
}

// chatSeqs returns the k of the chat messages "seq <k>" among evs, in order.
func chatSeqs(evs []sseEvent) []int {
	var out []int
	for _, ev := range evs {
		if ev.Event != "message" {
			continue
		}
		var m struct{ Type, Text string }
		if json.Unmarshal([]byte(ev.Data), &m) != nil || m.Type != "message" {
			continue
		}
		if k, ok := seqNumber(m.Text); ok {
			out = append(out, k)
		}
	}
	return out
}

// seqNumber parses "seq <k>".
func seqNumber(text string) (int, bool) {
	rest, ok := strings.CutPrefix(text, "seq ")
	if !ok {
		return 0, false
	}
	k, err := strconv.Atoi(rest)
	return k, err == nil && k > 0
}

// postClient sends the tests' POSTs; loopback only, short timeout.
var postClient = &http.Client{
	Timeout:   10 * time.Second,
	Transport: &http.Transport{MaxIdleConnsPerHost: 16},
}

// postText POSTs body as one message for peer (x-crossws-id) to endpoint
// and returns the status and response body.
func postText(ctx context.Context, endpoint, peer, body string) (int, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, strings.NewReader(body))
	if err != nil {
		return 0, "", err
	}
	req.Header.Set("Content-Type", "text/plain;charset=UTF-8")
	if peer != "" {
		req.Header.Set("x-crossws-id", peer)
	}
	return doPost(req)
}

// postStreamed POSTs body as crossws's stream mode does: octet-stream,
// chunked (no Content-Length).
func postStreamed(ctx context.Context, endpoint, peer, body string) (int, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, io.MultiReader(strings.NewReader(body)))
	if err != nil {
		return 0, "", err
	}
	req.ContentLength = -1
	req.Header.Set("Content-Type", "application/octet-stream")
	req.Header.Set("x-crossws-id", peer)
	return doPost(req)
}

func doPost(req *http.Request) (int, string, error) {
	resp, err := postClient.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer func() { _ = resp.Body.Close() }()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 4096))
	return resp.StatusCode, strings.TrimSpace(string(b)), err
}

// randomPeerID returns a well-formed peer id (22 characters of base64url,
// 128 random bits) that no server issued.
func randomPeerID() string {
	var raw [16]byte
	_, _ = rand.Read(raw[:])
	return base64.RawURLEncoding.EncodeToString(raw[:])
}

// privateRedis reports whether redistest runs a private redis-server (not
// a REDIS_URL server shared with others): only then does the test see
// every key the chat instances write (they use the backend's default
// prefix, not the test's).
func privateRedis() bool {
	_, err := exec.LookPath("redis-server")
	return err == nil
}

// allKeys returns every key of the server's database, sorted.
func allKeys(t *testing.T, rs *redistest.Server) []string {
	t.Helper()
	c := rs.Client(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var keys []string
	iter := c.Scan(ctx, 0, "*", 1000).Iterator()
	for iter.Next(ctx) {
		keys = append(keys, iter.Val())
	}
	if err := iter.Err(); err != nil {
		t.Fatalf("SCAN %s: %v", rs.Addr(), err)
	}
	slices.Sort(keys)
	return slices.Compact(keys)
}

// seqEvent is one line of seq-listeners.mjs.
type seqEvent struct {
	Event       string `json:"event"`
	Listener    int    `json:"listener"`
	Name        string `json:"name"`
	Data        string `json:"data"`
	LastEventID string `json:"lastEventId"`
	Status      int    `json:"status"`
	Message     string `json:"message"`
	ReadyState  int    `json:"readyState"`
	From        string `json:"from"`
	ID          string `json:"id"`
	Text        string `json:"text"`
	Seq         int    `json:"seq"`
	// summary
	PeerIDs  []string `json:"peerIds"`
	Hellos   int      `json:"hellos"`
	Received int      `json:"received"`
	Last     int      `json:"last"`
	Missing  []string `json:"missing"`
	Dups     []string `json:"dups"`
	Disorder int      `json:"disorder"`

	raw string
}

// seqWatch reads the output of a seq-listeners.mjs process as it comes,
// so that the test can wait on it while the script runs.
type seqWatch struct {
	p *nodeProc

	mu      sync.Mutex
	evs     []seqEvent
	bad     error         // a line that did not parse
	changed chan struct{} // a token after each event
	ended   chan struct{} // closed at the end of the script's output
}

func watchSeqListeners(ctx context.Context, p *nodeProc) *seqWatch {
	w := &seqWatch{p: p, changed: make(chan struct{}, 1), ended: make(chan struct{})}
	go func() {
		defer close(w.ended)
		for {
			ev, ok := p.Next(ctx)
			if !ok {
				return
			}
			var sev seqEvent
			err := json.Unmarshal([]byte(ev.raw), &sev)
			sev.raw = ev.raw
			w.mu.Lock()
			if err != nil && w.bad == nil {
				w.bad = fmt.Errorf("seq-listeners.mjs line %q: %v", ev.raw, err)
			}
			w.evs = append(w.evs, sev)
			w.mu.Unlock()
			select {
			case w.changed <- struct{}{}:
			default:
			}
		}
	}()
	return w
}

// events returns the events so far.
func (w *seqWatch) events() []seqEvent {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.evs)
}

// waitFor waits until cond holds for the events so far; it fails if the
// script ended first or ctx ended.
func (w *seqWatch) waitFor(ctx context.Context, what string, cond func([]seqEvent) bool) error {
	for {
		if cond(w.events()) {
			return nil
		}
		select {
		case <-w.changed:
		case <-w.ended:
			if cond(w.events()) {
				return nil
			}
			return fmt.Errorf("waiting for %s: the script ended: %v", what, w.p.Wait(ctx))
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s: %w", what, ctx.Err())
		}
	}
}

// finish waits for the script to end and returns all its events and how it
// ended.
func (w *seqWatch) finish(ctx context.Context) ([]seqEvent, error) {
	select {
	case <-w.ended:
	case <-ctx.Done():
		return w.events(), fmt.Errorf("seq-listeners.mjs still running: %w", ctx.Err())
	}
	err := w.p.Wait(ctx)
	w.mu.Lock()
	if err == nil {
		err = w.bad
	}
	w.mu.Unlock()
	return w.events(), err
}

// of returns the events of one kind for one listener.
func of(evs []seqEvent, listener int, kind string) []seqEvent {
	var out []seqEvent
	for _, ev := range evs {
		if ev.Listener == listener && ev.Event == kind {
			out = append(out, ev)
		}
	}
	return out
}

// seqDump formats events for a failure message.
func seqDump(evs []seqEvent) string {
	var b strings.Builder
	for _, ev := range evs {
		b.WriteString("\n\t")
		b.WriteString(ev.raw)
	}
	return b.String()
}

// seqReport compares the seqs a client received with 1…k: "" when they are
// exactly those, in order, each once; otherwise what is missing, repeated
// and out of order.
func seqReport(got []int, k int) string {
	count := map[int]int{}
	for _, s := range got {
		count[s]++
	}
	var missing, dups []int
	for s := 1; s <= k; s++ {
		switch n := count[s]; {
		case n == 0:
			missing = append(missing, s)
		case n > 1:
			dups = append(dups, s)
		}
	}
	var problems []string
	if len(missing) > 0 {
		problems = append(problems, fmt.Sprintf("missing %d: %s", len(missing), ranges(missing)))
	}
	if len(dups) > 0 {
		problems = append(problems, fmt.Sprintf("duplicated %d: %s", len(dups), ranges(dups)))
	}
	var extra []int
	for s := range count {
		if s < 1 || s > k {
			extra = append(extra, s)
		}
	}
	if len(extra) > 0 {
		slices.Sort(extra)
		problems = append(problems, fmt.Sprintf("unexpected: %v", extra))
	}
	for i := 1; i < len(got); i++ {
		if got[i] <= got[i-1] {
			problems = append(problems, fmt.Sprintf("out of order at #%d: %d after %d (around: %v)", i+1, got[i], got[i-1], got[max(0, i-3):min(len(got), i+3)]))
			break
		}
	}
	if len(got) != k && len(problems) == 0 {
		problems = append(problems, fmt.Sprintf("got %d, want %d", len(got), k))
	}
	return strings.Join(problems, "; ")
}

// ranges formats sorted numbers as runs: "3-7, 9".
func ranges(list []int) string {
	var parts []string
	for i := 0; i < len(list); {
		j := i
		for j+1 < len(list) && list[j+1] == list[j]+1 {
			j++
		}
		if i == j {
			parts = append(parts, strconv.Itoa(list[i]))
		} else {
			parts = append(parts, fmt.Sprintf("%d-%d", list[i], list[j]))
		}
		i = j + 1
	}
	return strings.Join(parts, ", ")
}
