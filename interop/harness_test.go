package interop

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ssebridge/ssebridge/handler"
	"github.com/ssebridge/ssebridge/netfx"
)

// testTimeout bounds every test.
const testTimeout = 50 * time.Second

// nodeTimeout is the scripts' own deadline: shorter than testTimeout, so
// that a stuck script reports its state before the test gives up on it.
const nodeTimeout = 35 * time.Second

// buildDir holds the binaries the tests build; TestMain removes it.
var buildDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "ssebridge-interop-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "interop:", err)
		os.Exit(1)
	}
	buildDir = dir
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

// testContext returns a context that ends after testTimeout or with the
// test.
func testContext(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	t.Cleanup(cancel)
	return ctx
}

// missingTool skips the test, or fails it when CI is "true".
func missingTool(t *testing.T, err error) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("%v (CI=true: a missing tool fails the test instead of skipping it)", err)
	}
	t.Skip(err)
}

var nodeOnce = sync.OnceValues(findNode)

// requireNode returns the path of node, having checked that the npm
// packages are installed.
func requireNode(t *testing.T) string {
	t.Helper()
	node, err := nodeOnce()
	if err != nil {
		missingTool(t, err)
	}
	return node
}

// requireChromium returns the path of a Chromium or Chrome binary.
func requireChromium(t *testing.T) string {
	t.Helper()
	p, err := findChromium()
	if err != nil {
		missingTool(t, err)
	}
	return p
}

// buildExample builds ./examples/<name> into buildDir.
func buildExample(name string) (string, error) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		goTool = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	bin := filepath.Join(buildDir, name)
	cmd := exec.Command(goTool, "build", "-o", bin, "./examples/"+name)
	cmd.Dir = moduleRoot()
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./examples/%s: %v\n%s", name, err, out)
	}
	return bin, nil
}

var chatBuild = sync.OnceValues(func() (string, error) { return buildExample("chat") })

var listeningLine = regexp.MustCompile(`^[a-z]+: listening on (http://127\.0\.0\.1:[0-9]+)$`)

// startChat builds examples/chat once per test binary, runs a fresh instance
// on 127.0.0.1:0 with args (say, "-runtime", "fasthttp") and returns its
// base URL ("http://127.0.0.1:PORT"). The process is stopped when the test
// ends; its log is shown if the test failed.
func startChat(t *testing.T, ctx context.Context, args ...string) string {
	t.Helper()
	bin, err := chatBuild()
	if err != nil {
		t.Fatal(err)
	}
	return startExample(t, ctx, exec.Command(bin, append([]string{"-addr", "127.0.0.1:0"}, args...)...))
}

// startExample runs an example's command, which prints "<name>: listening
// on <URL>" as its first line, and returns that URL. The process is
// interrupted when the test ends (and killed if it does not exit within
// 5 s); its log is shown if the test failed.
func startExample(t *testing.T, ctx context.Context, cmd *exec.Cmd) string {
	t.Helper()
	stderr := new(syncBuffer)
	cmd.Stderr = stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	first := make(chan string, 1)
	exited := make(chan struct{})
	go func() {
		r := bufio.NewReader(stdout)
		line, _ := r.ReadString('\n')
		first <- strings.TrimSpace(line)
		_, _ = io.Copy(io.Discard, r)
		_ = cmd.Wait()
		close(exited)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("%s log:\n%s", filepath.Base(cmd.Path), stderr.String())
		}
	})
	select {
	case line := <-first:
		m := listeningLine.FindStringSubmatch(line)
		if m == nil {
			t.Fatalf("%s: unexpected first line %q", filepath.Base(cmd.Path), line)
		}
		return m[1]
	case <-ctx.Done():
		t.Fatalf("%s did not start: %v", filepath.Base(cmd.Path), ctx.Err())
	}
	return ""
}

// nodeEvent is one line a Node script printed: the union of the fields the
// scripts use.
type nodeEvent struct {
	Event       string     `json:"event"`
	Data        string     `json:"data"`
	LastEventID string     `json:"lastEventId"`
	Status      int        `json:"status"`
	ReadyState  int        `json:"readyState"`
	Message     string     `json:"message"`
	Body        string     `json:"body"`
	From        string     `json:"from"`
	Name        string     `json:"name"`
	ID          string     `json:"id"`
	Text        string     `json:"text"`
	Peers       []chatPeer `json:"peers"`
	ContentType string     `json:"contentType"`
	Streamed    bool       `json:"streamed"`

	raw string
}

func (ev nodeEvent) String() string { return ev.raw }

type chatPeer struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

// nodeProc is a running Node script.
type nodeProc struct {
	name   string
	events chan nodeEvent // closed at the end of its stdout
	stderr *syncBuffer
	done   chan struct{} // closed once the process exited and err is set
	err    error
	parse  error // a line that is not JSON; set before events closes
}

// startNode runs `node <script> <cfg as JSON>` in interop/node. cfg gets a
// "timeoutMs" of nodeTimeout unless it has one. The process is killed when
// ctx ends or the test ends; its stderr is logged if the test failed.
func startNode(t *testing.T, ctx context.Context, script string, cfg map[string]any) *nodeProc {
	t.Helper()
	node := requireNode(t)
	if _, ok := cfg["timeoutMs"]; !ok {
		cfg["timeoutMs"] = nodeTimeout.Milliseconds()
	}
	arg, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(ctx)
	cmd := exec.CommandContext(ctx, node, script, string(arg))
	cmd.Dir = nodeDir()
	cmd.WaitDelay = 2 * time.Second
	p := &nodeProc{name: script, events: make(chan nodeEvent, 4096), stderr: new(syncBuffer), done: make(chan struct{})}
	cmd.Stderr = p.stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatal(err)
	}
	lines := make(chan struct{})
	go func() {
		defer close(lines)
		defer close(p.events)
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 64<<10), 4<<20)
		for sc.Scan() {
			var ev nodeEvent
			if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
				if p.parse == nil {
					p.parse = fmt.Errorf("%s printed a line that is not JSON: %q", script, sc.Text())
				}
				continue
			}
			ev.raw = sc.Text()
			select {
			case p.events <- ev:
			case <-ctx.Done():
			}
		}
		_, _ = io.Copy(io.Discard, stdout)
	}()
	go func() {
		<-lines
		p.err = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		cancel()
		<-p.done
		if t.Failed() {
			if s := p.stderr.String(); s != "" {
				t.Logf("%s stderr:\n%s", script, s)
			}
		}
	})
	return p
}

// Next returns the next event the script printed; ok is false at the end of
// its output (then call Wait) or when ctx ends.
func (p *nodeProc) Next(ctx context.Context) (ev nodeEvent, ok bool) {
	select {
	case ev, ok = <-p.events:
		return ev, ok
	case <-ctx.Done():
		return nodeEvent{}, false
	}
}

// Collect returns the events the script prints from now until it exits, and
// an error if it did not exit with status 0.
func (p *nodeProc) Collect(ctx context.Context) ([]nodeEvent, error) {
	var out []nodeEvent
	for {
		ev, ok := p.Next(ctx)
		if !ok {
			break
		}
		out = append(out, ev)
	}
	return out, p.Wait(ctx)
}

// Wait waits for the script to exit and reports how it went. Events not yet
// taken with Next are still there for Next after Wait returns.
func (p *nodeProc) Wait(ctx context.Context) error {
	select {
	case <-p.done:
	case <-ctx.Done():
		return fmt.Errorf("%s still running: %w", p.name, ctx.Err())
	}
	if p.parse != nil {
		return p.parse
	}
	if p.err != nil {
		return fmt.Errorf("%s: %w; stderr:\n%s", p.name, p.err, p.stderr.String())
	}
	return nil
}

// only returns the events of the given kinds, in order.
func only(evs []nodeEvent, kinds ...string) []nodeEvent {
	var out []nodeEvent
	for _, ev := range evs {
		if slices.Contains(kinds, ev.Event) {
			out = append(out, ev)
		}
	}
	return out
}

// dump formats events for a failure message.
func dump(evs []nodeEvent) string {
	var b strings.Builder
	for _, ev := range evs {
		b.WriteString("\n\t")
		b.WriteString(ev.raw)
	}
	return b.String()
}

// testServer is an in-process ssebridge server on 127.0.0.1, with its
// endpoint at /sse behind a requestLog.
type testServer struct {
	h    *handler.Handler
	log  *requestLog
	logs *syncBuffer // the handler's own log, shown if the test failed
	base string      // http://127.0.0.1:PORT
	url  string      // base + "/sse"
}

// wsURL returns the endpoint as the crossws client is given it: ws://…/sse.
func (s *testServer) wsURL() string { return "ws" + strings.TrimPrefix(s.url, "http") }

// startServer starts an in-process server with cfg. routes, if not nil,
// adds handlers to its mux besides /sse. The server is shut down when the
// test ends.
func startServer(t *testing.T, cfg handler.Config, routes func(mux *http.ServeMux)) *testServer {
	t.Helper()
	return startServerWith(t, cfg, routes, false)
}

// startServerWith is startServer, over HTTPS with HTTP/2 when tls is true
// (browsers stream request bodies only over HTTP/2).
func startServerWith(t *testing.T, cfg handler.Config, routes func(mux *http.ServeMux), tls bool) *testServer {
	t.Helper()
	s := &testServer{log: new(requestLog), logs: new(syncBuffer)}
	if cfg.Logger == nil {
		cfg.Logger = bufferLogger(s.logs)
	}
	h, err := handler.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	s.h = h
	mux := http.NewServeMux()
	mux.Handle("/sse", s.log.wrap(netfx.New(h)))
	if routes != nil {
		routes(mux)
	}
	srv := httptest.NewUnstartedServer(mux)
	if tls {
		srv.EnableHTTP2 = true
		srv.StartTLS()
	} else {
		srv.Start()
	}
	s.base = srv.URL
	s.url = srv.URL + "/sse"
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := h.Shutdown(ctx); err != nil {
			t.Errorf("handler shutdown: %v", err)
		}
		srv.CloseClientConnections()
		srv.Close()
		if t.Failed() {
			t.Logf("server requests:%s", s.log)
			t.Logf("server log:\n%s", s.logs.String())
		}
	})
	return s
}

// String formats the log for failure messages.
func (l *requestLog) String() string {
	var b strings.Builder
	for _, r := range l.requests("") {
		fmt.Fprintf(&b, "\n\t%s %s last-event-id=%q x-crossws-id=%q content-type=%q → %d body=%q done=%v",
			r.Proto, r.Method, r.LastEventID, r.PeerID, r.ContentType, r.Status, r.Body, r.Done)
	}
	return b.String()
}

// upstream is one call of a Message hook.
type upstream struct {
	Peer string
	Text string
}

// recorder collects what hooks saw, safely across goroutines.
type recorder[T any] struct {
	mu    sync.Mutex
	items []T
	added chan struct{} // gets a token after each add
}

func newRecorder[T any]() *recorder[T] { return &recorder[T]{added: make(chan struct{}, 1)} }

func (r *recorder[T]) add(v T) {
	r.mu.Lock()
	r.items = append(r.items, v)
	r.mu.Unlock()
	select {
	case r.added <- struct{}{}:
	default:
	}
}

func (r *recorder[T]) all() []T {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.items)
}

// waitFor waits until at least n items were recorded, and returns them.
func (r *recorder[T]) waitFor(ctx context.Context, n int) ([]T, error) {
	for {
		if items := r.all(); len(items) >= n {
			return items, nil
		}
		select {
		case <-r.added:
		case <-ctx.Done():
			return r.all(), fmt.Errorf("waiting for %d hook calls: %w", n, ctx.Err())
		}
	}
}

// bufferLogger returns a logger writing to buf, which tests show only if
// they fail.
func bufferLogger(buf *syncBuffer) *slog.Logger {
	return slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// closeCall is one call of a Close hook.
type closeCall struct {
	Peer string
	handler.CloseDetails
}

// waitUntil polls cond every 10 ms until it holds or ctx ends; for state
// that has no event to wait on (a server's request log).
func waitUntil(ctx context.Context, cond func() bool) error {
	tk := time.NewTicker(10 * time.Millisecond)
	defer tk.Stop()
	for !cond() {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tk.C:
		}
	}
	return nil
}

// texts returns the Text of each event.
func texts(evs []nodeEvent) []string {
	out := make([]string, len(evs))
	for i, ev := range evs {
		out[i] = ev.Text
	}
	return out
}

// datas returns the Data of each event.
func datas(evs []nodeEvent) []string {
	out := make([]string, len(evs))
	for i, ev := range evs {
		out[i] = ev.Data
	}
	return out
}

// eventID returns "<peer>.<n>".
func eventID(peer string, n int) string { return fmt.Sprintf("%s.%d", peer, n) }
