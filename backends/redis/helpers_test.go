package redis

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/ssebridge/ssebridge/backends"
	"github.com/ssebridge/ssebridge/backends/backendtest"
	"github.com/ssebridge/ssebridge/internal/redistest"
)

// logBuffer is a slog handler target that tests can read.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

func (l *logBuffer) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(l, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

var prefixSeq atomic.Int64

// subPrefix returns a prefix under base, unique in the test binary.
func subPrefix(base string) string {
	return fmt.Sprintf("%s.%d", base, prefixSeq.Add(1))
}

// testConfig is a Config with timeouts short enough for tests.
func testConfig(c goredis.UniversalClient, prefix string) Config {
	return Config{
		Client:       c,
		Prefix:       prefix,
		NodeTTL:      3 * time.Second,
		SessionTTL:   10 * time.Second,
		BlockTimeout: 500 * time.Millisecond,
		Logger:       (&logBuffer{}).logger(),
	}
}

// newBackend returns a Backend closed at the test's cleanup.
func newBackend(t testing.TB, cfg Config) *Backend {
	t.Helper()
	b, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}

// attachNode attaches a node with a Recorder, closed at the test's
// cleanup.
func attachNode(t testing.TB, b *Backend) (*node, *backendtest.Recorder) {
	t.Helper()
	r := backendtest.NewRecorder()
	n, err := b.Attach(context.Background(), r)
	if err != nil {
		t.Fatalf("Attach: %v", err)
	}
	t.Cleanup(func() { _ = n.Close() })
	return n.(*node), r
}

// startServer starts a private redis-server.
func startServer(t testing.TB) (*redistest.Server, *goredis.Client) {
	t.Helper()
	s := redistest.Start(t)
	return s, s.Client(t)
}

// eventually polls cond every 10 ms until it holds or d passes.
func eventually(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// keysWith returns the keys that contain part.
func keysWith(keys []string, part string) []string {
	var out []string
	for _, k := range keys {
		if strings.Contains(k, part) {
			out = append(out, k)
		}
	}
	return out
}

var bg = context.Background()

// mustRegister registers a session and makes the Recorder accept it.
func mustRegister(t testing.TB, n *node, r *backendtest.Recorder, id string) {
	t.Helper()
	r.Accept(id)
	if err := n.RegisterSession(bg, id, backends.SessionInfo{Namespace: "/ns"}); err != nil {
		t.Fatalf("RegisterSession(%q): %v", id, err)
	}
}

func mustSubscribe(t testing.TB, n *node, topic string) backends.Position {
	t.Helper()
	p, err := n.Subscribe(bg, topic)
	if err != nil {
		t.Fatalf("Subscribe(%q): %v", topic, err)
	}
	return p
}

func mustPublish(t testing.TB, n *node, topic, data string) {
	t.Helper()
	if err := n.Publish(bg, backends.Publication{Topic: topic, Data: []byte(data)}); err != nil {
		t.Fatalf("Publish(%q): %v", topic, err)
	}
}
