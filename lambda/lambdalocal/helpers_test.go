package lambdalocal

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// testfn is the path of the test function, built by TestMain;
// lambdaGoDir is the directory of the aws-lambda-go module.
var testfn, lambdaGoDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "lambdalocal-test")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	testfn = filepath.Join(dir, "bootstrap")
	gobin, err := exec.LookPath("go") // go test puts its own go first in PATH
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	build := exec.Command(gobin, "build", "-tags", "lambda.norpc", "-o", testfn, "./internal/testfn")
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building the test function: %v\n%s", err, out)
		os.Exit(1)
	}
	list := exec.Command(gobin, "list", "-m", "-f", "{{.Dir}}", "github.com/aws/aws-lambda-go")
	out, err := list.Output()
	if err != nil {
		fmt.Fprintf(os.Stderr, "locating aws-lambda-go: %v\n", err)
		os.Exit(1)
	}
	lambdaGoDir = strings.TrimSpace(string(out))
	code := m.Run()
	if pids := running(testfn); len(pids) > 0 {
		fmt.Fprintf(os.Stderr, "leaked test function processes: %v\n", pids)
		code = 1
	}
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

// logBuffer collects an emulator's output, safe for concurrent use.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// waitFor waits up to 10 s for the output to contain s.
func (l *logBuffer) waitFor(t testing.TB, s string) {
	t.Helper()
	eventually(t, 10*time.Second, "output containing "+strconv.Quote(s), func() bool {
		return strings.Contains(l.String(), s)
	})
}

// harness is an emulator serving on a loopback httptest server.
type harness struct {
	e   *Emulator
	url string
	out *logBuffer
}

// start starts an emulator of the test function and serves it. Cleanup
// closes both, and prints the output if the test failed.
func start(t testing.TB, cfg Config) *harness {
	t.Helper()
	cfg.Command = []string{testfn}
	out := &logBuffer{}
	cfg.Output = out
	e, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v\noutput:\n%s", err, out)
	}
	srv := httptest.NewServer(e)
	t.Cleanup(func() {
		_ = e.Close()
		srv.Close()
		if t.Failed() {
			t.Logf("emulator output:\n%s", out)
		}
	})
	return &harness{e: e, url: srv.URL, out: out}
}

// get does a GET and returns the status and whole body; it fails the test
// on a transport error.
func (h *harness) get(t testing.TB, path string) (*http.Response, string) {
	t.Helper()
	resp, err := http.Get(h.url + path)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: reading the body: %v", path, err)
	}
	return resp, string(b)
}

// pid returns the PID of the environment that serves a GET /env.
func (h *harness) pid(t testing.TB) int {
	t.Helper()
	resp, body := h.get(t, "/env")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /env: %d %s", resp.StatusCode, body)
	}
	var m map[string]string
	mustUnmarshal(t, body, &m)
	pid, err := strconv.Atoi(m["pid"])
	if err != nil {
		t.Fatalf("GET /env: pid %q", m["pid"])
	}
	return pid
}

func eventually(t testing.TB, d time.Duration, what string, f func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !f() {
		if time.Now().After(deadline) {
			t.Fatalf("waited %v for %s", d, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// gate lets the test function's /stream wait, after each event, until the
// test has seen it: GET ?i=N blocks until release(N).
type gate struct {
	srv  *httptest.Server
	hits chan int
	mu   sync.Mutex
	open map[int]chan struct{}
	all  chan struct{} // closed: every wait returns at once
	once sync.Once
}

func newGate(t testing.TB) *gate {
	g := &gate{hits: make(chan int, 100), open: map[int]chan struct{}{}, all: make(chan struct{})}
	g.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		i, _ := strconv.Atoi(r.URL.Query().Get("i"))
		g.hits <- i
		select {
		case <-g.ch(i):
		case <-g.all:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(func() {
		g.releaseAll()
		g.srv.Close()
	})
	return g
}

func (g *gate) ch(i int) chan struct{} {
	g.mu.Lock()
	defer g.mu.Unlock()
	c, ok := g.open[i]
	if !ok {
		c = make(chan struct{})
		g.open[i] = c
	}
	return c
}

func (g *gate) release(i int) { close(g.ch(i)) }

func (g *gate) releaseAll() { g.once.Do(func() { close(g.all) }) }

// waitHit waits for the function to wait at the gate after event i.
func (g *gate) waitHit(t testing.TB, i int) {
	t.Helper()
	select {
	case got := <-g.hits:
		if got != i {
			t.Fatalf("gate hit after event %d, want %d", got, i)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("the function did not reach the gate after event %d", i)
	}
}

// streamURL is a /stream of n events, each waiting at g.
func (g *gate) streamURL(n int) string {
	return fmt.Sprintf("/stream?n=%d&gate=%s", n, g.srv.URL)
}

// eventReader reads SSE events ("data: N\n\n") of a response body in the
// background.
type eventReader struct {
	resp   *http.Response
	events chan string
	err    chan error
}

func readEvents(resp *http.Response) *eventReader {
	r := &eventReader{resp: resp, events: make(chan string, 100), err: make(chan error, 1)}
	go func() {
		br := bufio.NewReader(resp.Body)
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				r.err <- err
				return
			}
			if line = strings.TrimSpace(line); line != "" {
				r.events <- line
			}
		}
	}()
	return r
}

// next returns the next event, failing the test after 10 s.
func (r *eventReader) next(t testing.TB) string {
	t.Helper()
	select {
	case ev := <-r.events:
		return ev
	case err := <-r.err:
		t.Fatalf("stream ended: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("no event within 10 s")
	}
	return ""
}

// drain skips events until the body ends, and returns how many it
// skipped and the error that ended it.
func (r *eventReader) drain(t testing.TB) (int, error) {
	t.Helper()
	n := 0
	for {
		select {
		case <-r.events:
			n++
		case err := <-r.err:
			for len(r.events) > 0 {
				<-r.events
				n++
			}
			return n, err
		case <-time.After(10 * time.Second):
			t.Fatal("the stream did not end within 10 s")
		}
	}
}

// end returns the error that ended the body (io.EOF for a clean end).
func (r *eventReader) end(t testing.TB) error {
	t.Helper()
	select {
	case err := <-r.err:
		return err
	case ev := <-r.events:
		t.Fatalf("unexpected event %q", ev)
	case <-time.After(10 * time.Second):
		t.Fatal("the stream did not end within 10 s")
	}
	return nil
}

// startStream GETs path and returns the response with its events read in
// the background; cancel ends the request.
func (h *harness) startStream(t testing.TB, path string) (r *eventReader, cancel func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, h.url+path, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		cancel()
		t.Fatalf("GET %s: %v", path, err)
	}
	t.Cleanup(func() {
		cancel()
		resp.Body.Close()
	})
	return readEvents(resp), cancel
}

// procState returns the state letter of /proc/PID/stat ('T' = stopped),
// or 0 if the process does not exist.
func procState(pid int) byte {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 || i+2 >= len(b) {
		return 0
	}
	return b[i+2]
}

// processGone reports whether no process (not even a zombie) has pid.
func processGone(pid int) bool {
	_, err := os.Stat("/proc/" + strconv.Itoa(pid))
	return os.IsNotExist(err)
}

// running returns the processes running the program at path (Linux).
func running(path string) []int {
	entries, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if exe, err := os.Readlink("/proc/" + e.Name() + "/exe"); err == nil && exe == path && procState(pid) != 'Z' {
			pids = append(pids, pid)
		}
	}
	return pids
}

func needLinux(t testing.TB) {
	if runtime.GOOS != "linux" {
		t.Skip("needs Linux (/proc)")
	}
}
