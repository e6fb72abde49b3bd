// Package interop tests ssebridge against real clients: Node.js running the
// npm packages crossws (its WebSocketSSE client, in both upload modes),
// centrifuge (centrifuge-js, its "sse" transport) and eventsource, curl,
// and a headless Chromium driven with chromedp. The tests start servers on
// the loopback interface only: in-process ones (httptest.NewServer over
// netfx) and the examples/chat and examples/lambda binaries.
//
// The package has no API: this file holds the parts of the harness that do
// not need package testing, the tests and their helpers are in the _test.go
// files, and the Node scripts in interop/node. Install their dependencies
// with
//
//	npm ci --prefix interop/node
//
// then run
//
//	go test -race ./interop/...
//
// A test whose tool (node, those packages, curl, Chromium) is missing skips
// with a message saying what to install, except when the environment
// variable CI is "true": then it fails, so that CI cannot pass by skipping.
package interop

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// pinnedNodePackages are the versions of the npm packages the tests run, as
// pinned in interop/node/package.json.
var pinnedNodePackages = map[string]string{"centrifuge": "5.8.0", "crossws": "0.4.17", "eventsource": "3.0.7"}

// moduleRoot returns the directory of the module ssebridge (the parent of
// this file's directory).
func moduleRoot() string {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		panic("interop: cannot locate harness.go")
	}
	return filepath.Dir(filepath.Dir(file))
}

// nodeDir returns interop/node, where the Node scripts and their
// node_modules are.
func nodeDir() string { return filepath.Join(moduleRoot(), "interop", "node") }

// findNode returns the path of node (≥ 20) after checking that the pinned npm
// packages are installed in interop/node/node_modules. Its error says what to
// install or run.
func findNode() (string, error) {
	const install = "install Node.js ≥ 20, then run `npm ci --prefix interop/node`"
	node, err := exec.LookPath("node")
	if err != nil {
		return "", fmt.Errorf("node not found on PATH: %s", install)
	}
	out, err := exec.Command(node, "--version").Output()
	if err != nil {
		return "", fmt.Errorf("%s --version: %v: %s", node, err, install)
	}
	v := strings.TrimPrefix(strings.TrimSpace(string(out)), "v")
	major, _ := strconv.Atoi(strings.SplitN(v, ".", 2)[0])
	if major < 20 {
		return "", fmt.Errorf("node %s is too old: %s", v, install)
	}
	names := make([]string, 0, len(pinnedNodePackages))
	for name := range pinnedNodePackages {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		want := pinnedNodePackages[name]
		raw, err := os.ReadFile(filepath.Join(nodeDir(), "node_modules", name, "package.json"))
		if err != nil {
			return "", fmt.Errorf("npm package %s is not installed in interop/node/node_modules: run `npm ci --prefix interop/node`", name)
		}
		var pkg struct{ Version string }
		if err := json.Unmarshal(raw, &pkg); err != nil || pkg.Version != want {
			return "", fmt.Errorf("npm package %s is %q in interop/node/node_modules, want %s: run `npm ci --prefix interop/node`", name, pkg.Version, want)
		}
	}
	return node, nil
}

// findChromium returns the path of a Chromium or Chrome binary:
// /usr/bin/chromium, or chromium, chromium-browser or google-chrome on PATH.
func findChromium() (string, error) {
	if fi, err := os.Stat("/usr/bin/chromium"); err == nil && !fi.IsDir() {
		return "/usr/bin/chromium", nil
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p, nil
		}
	}
	return "", errors.New("chromium not found (/usr/bin/chromium, or chromium, chromium-browser or google-chrome on PATH): install it, e.g. `apt-get install chromium`")
}

// requestLog is middleware that records the requests a server handles, in
// the order they arrive: method, the protocol's headers, the response status
// and, for request bodies, the bytes the handler read.
type requestLog struct {
	mu   sync.Mutex
	reqs []*loggedRequest
}

// loggedRequest is one request seen by a requestLog.
type loggedRequest struct {
	Proto       string // "HTTP/1.1", "HTTP/2.0"
	Method      string
	LastEventID string // Last-Event-ID
	PeerID      string // x-crossws-id
	ContentType string
	Status      int // 0 until the handler wrote a status
	Body        []byte
	Done        bool // the handler returned
}

// wrap returns h recording into l.
func (l *requestLog) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := &loggedRequest{
			Proto:       r.Proto,
			Method:      r.Method,
			LastEventID: r.Header.Get("Last-Event-ID"),
			PeerID:      r.Header.Get("X-Crossws-Id"),
			ContentType: r.Header.Get("Content-Type"),
		}
		l.mu.Lock()
		l.reqs = append(l.reqs, rec)
		l.mu.Unlock()
		if r.Body != nil {
			r.Body = &loggedBody{ReadCloser: r.Body, l: l, rec: rec}
		}
		h.ServeHTTP(&statusWriter{ResponseWriter: w, l: l, rec: rec}, r)
		l.mu.Lock()
		if rec.Status == 0 {
			rec.Status = http.StatusOK
		}
		rec.Done = true
		l.mu.Unlock()
	})
}

// requests returns copies of the records of the requests with the given
// method ("" for all), in arrival order.
func (l *requestLog) requests(method string) []loggedRequest {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []loggedRequest
	for _, r := range l.reqs {
		if method == "" || r.Method == method {
			c := *r
			c.Body = slices.Clone(r.Body)
			out = append(out, c)
		}
	}
	return out
}

type loggedBody struct {
	io.ReadCloser
	l   *requestLog
	rec *loggedRequest
}

func (b *loggedBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if n > 0 {
		b.l.mu.Lock()
		b.rec.Body = append(b.rec.Body, p[:n]...)
		b.l.mu.Unlock()
	}
	return n, err
}

// statusWriter records the status. Unwrap lets http.ResponseController (and
// so netfx's flushes, deadlines and full duplex) reach the real writer.
type statusWriter struct {
	http.ResponseWriter
	l   *requestLog
	rec *loggedRequest
}

func (w *statusWriter) WriteHeader(code int) {
	w.l.mu.Lock()
	if w.rec.Status == 0 {
		w.rec.Status = code
	}
	w.l.mu.Unlock()
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(p []byte) (int, error) {
	w.l.mu.Lock()
	if w.rec.Status == 0 {
		w.rec.Status = http.StatusOK
	}
	w.l.mu.Unlock()
	return w.ResponseWriter.Write(p)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// syncBuffer is a bytes.Buffer safe for concurrent use, for a child
// process's output.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
