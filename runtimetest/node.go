package runtimetest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// nodeTimeout is a Node script's own deadline (it then fails, saying where
// it was); the Go side waits a little longer.
const nodeTimeout = 30 * time.Second

// nodeDir is where the Node scripts and their node_modules are:
// $SSEBRIDGE_NODE_DIR, or interop/node in this module.
func nodeDir() string {
	if d := os.Getenv("SSEBRIDGE_NODE_DIR"); d != "" {
		return d
	}
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(filepath.Dir(file)), "interop", "node")
}

var findNode = sync.OnceValues(func() (string, error) {
	const install = "install Node.js ≥ 20 and run `npm ci --prefix interop/node`"
	node, err := exec.LookPath("node")
	if err != nil {
		return "", fmt.Errorf("node not found on PATH: %s", install)
	}
	if _, err := os.Stat(filepath.Join(nodeDir(), "node_modules", "crossws", "package.json")); err != nil {
		return "", fmt.Errorf("the npm package crossws is not installed in %s: %s", nodeDir(), install)
	}
	return node, nil
})

// missingTool skips t, or fails it when CI is "true" (CI must not pass by
// skipping).
func missingTool(t testing.TB, err error) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("%v (CI=true: a missing tool fails the test)", err)
	}
	t.Skip(err)
}

// nodeEvent is one line a script printed.
type nodeEvent struct {
	Event       string `json:"event"`
	Data        string `json:"data"`
	LastEventID string `json:"lastEventId"`
	Status      int    `json:"status"`
	Message     string `json:"message"`
}

// nodeRun is a running script.
type nodeRun struct {
	script string
	done   chan struct{}
	events []nodeEvent
	err    error
}

// startNode runs `node <script> <cfg>` in nodeDir; wait collects its
// output.
func startNode(t *testing.T, script string, cfg map[string]any) *nodeRun {
	t.Helper()
	node, err := findNode()
	if err != nil {
		missingTool(t, err)
	}
	cfg["timeoutMs"] = nodeTimeout.Milliseconds()
	arg, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), nodeTimeout+10*time.Second)
	cmd := exec.CommandContext(ctx, node, script, string(arg))
	cmd.Dir = nodeDir()
	cmd.WaitDelay = 2 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatalf("start node: %v", err)
	}
	r := &nodeRun{script: script, done: make(chan struct{})}
	go func() {
		defer close(r.done)
		defer cancel()
		werr := cmd.Wait()
		out := stdout.String()
		sc := bufio.NewScanner(strings.NewReader(out))
		sc.Buffer(make([]byte, 64<<10), 16<<20)
		for sc.Scan() {
			var ev nodeEvent
			if json.Unmarshal(sc.Bytes(), &ev) == nil {
				r.events = append(r.events, ev)
			}
		}
		if werr != nil {
			r.err = fmt.Errorf("node %s: %v\nstderr:\n%s\nstdout:\n%s", script, werr, stderr.String(), tail(out))
		}
	}()
	t.Cleanup(func() { cancel(); <-r.done })
	return r
}

// wait waits for the script to end and fails t unless it exited with 0.
func (r *nodeRun) wait(t *testing.T) []nodeEvent {
	t.Helper()
	<-r.done
	if r.err != nil {
		t.Fatal(r.err)
	}
	return r.events
}

// tail keeps the end of a long output for a failure message.
func tail(s string) string {
	const max = 4000
	if len(s) > max {
		return "…" + s[len(s)-max:]
	}
	return s
}

// messages returns the data of the "message" events, in order.
func messages(evs []nodeEvent) []string {
	var out []string
	for _, ev := range evs {
		if ev.Event == "message" {
			out = append(out, ev.Data)
		}
	}
	return out
}

// wsURL turns http(s)://… into ws(s)://…, the scheme crossws's client
// takes.
func wsURL(u string) string {
	if rest, ok := strings.CutPrefix(u, "http"); ok {
		return "ws" + rest
	}
	return u
}
