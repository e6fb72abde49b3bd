// Package redistest starts real Redis servers for tests: a private
// redis-server process per test (Start) or a private three-master Redis
// Cluster (StartCluster), each on free loopback ports with an empty data
// set, so that tests never share state and can run in parallel. There are
// no fakes: every server is a redis-server process, killed with SIGKILL in
// t.Cleanup (and, on Linux, when the test binary itself dies).
//
// # Skip and fail policy
//
// The policy is the one of the repository's interop tests:
//
//   - When redis-server is on PATH, Start and StartCluster always use it.
//   - When redis-server is not on PATH but REDIS_URL is set (for example
//     REDIS_URL=redis://127.0.0.1:6379/0), Start uses that server instead.
//     Each test then gets its own key prefix (Server.Prefix), Server.Keys
//     lists only that prefix, and t.Cleanup deletes those keys. Such a
//     server cannot be controlled: Server.Kill and Server.Restart skip the
//     test. StartCluster never uses REDIS_URL, which cannot give a cluster.
//   - Otherwise the tool is missing: the test is skipped with a message
//     saying what to install, except when the environment variable CI is
//     "true", where the test fails instead, so that a CI machine without
//     Redis cannot pass by skipping every Redis test.
//
// A server that does not come up within about 10 s fails the test, with the
// tail of the server's own output in the message.
package redistest

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// serverBinary is the name of the Redis server executable, looked up on
// PATH.
const serverBinary = "redis-server"

// installHint is the message of a test skipped (or failed, in CI) for lack
// of redis-server.
const installHint = "redis-server not found: install it (apt-get install redis-server) or set REDIS_URL=redis://host:port/db"

// startTimeout bounds the wait for one redis-server process to answer.
const startTimeout = 10 * time.Second

// opTimeout bounds the harness's own commands (SCAN, DEL, PING).
const opTimeout = 10 * time.Second

// missingTool skips the test with msg, or fails it when CI is "true".
func missingTool(t testing.TB, msg string) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s (CI=true: a missing tool fails the test instead of skipping it)", msg)
	}
	t.Skip(msg)
}

// lookServer returns the path of redis-server, or "" when it is not on
// PATH.
func lookServer() string {
	p, err := exec.LookPath(serverBinary)
	if err != nil {
		return ""
	}
	return p
}

// newPrefix returns "ssbt" followed by 8 random lower-case base32
// characters (a-z, 2-7): no glob metacharacters, no '{', '}' or ':'.
func newPrefix() string {
	var b [5]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("redistest: crypto/rand: " + err.Error())
	}
	return "ssbt" + strings.ToLower(base32.StdEncoding.EncodeToString(b[:]))
}

// Server is a Redis server for one test: either a private redis-server
// process (see Start) or, without redis-server but with REDIS_URL set, the
// server REDIS_URL names, shared with other tests but seen through a key
// prefix of this test's own.
//
// Its methods are safe for concurrent use, but those that take a
// testing.TB may end the test (t.Fatal, or t.Skip for Kill and Restart on a
// REDIS_URL server) and so must be called from the test's goroutine.
type Server struct {
	prefix string
	addr   string
	url    string

	// external is true for a REDIS_URL server.
	external bool

	// Private servers only.
	bin   string
	port  int
	dir   string
	extra []string // arguments added for cluster nodes

	mu      sync.Mutex
	proc    *proc  // nil after Kill
	lastLog string // output of the last process that ended
}

// Start starts a private redis-server for the test (killed in t.Cleanup),
// or, when the redis-server binary is missing but REDIS_URL is set, uses
// that server with a unique key prefix.
//
// The private server listens on a free port of 127.0.0.1 and starts empty,
// with persistence off (--save "" --appendonly no) and its working
// directory in t.TempDir(). If the test fails, the cleanup logs the tail of
// the server's output. Without redis-server and REDIS_URL the test is
// skipped, or fails when CI is "true" (see the package documentation).
func Start(t testing.TB) *Server {
	t.Helper()
	bin := lookServer()
	if bin == "" {
		if u := os.Getenv("REDIS_URL"); u != "" {
			return startExternal(t, u)
		}
		missingTool(t, installHint)
	}
	return startPrivate(t, bin, nil, false)
}

// startPrivate starts a redis-server process from bin with the usual
// arguments plus extra, in which "{port}" stands for the port. busPort asks
// for a port whose cluster bus port (port+10000) is free too.
func startPrivate(t testing.TB, bin string, extra []string, busPort bool) *Server {
	t.Helper()
	s := &Server{
		prefix: newPrefix(),
		bin:    bin,
		dir:    t.TempDir(), // before t.Cleanup below: removed after the kill
		extra:  extra,
	}
	// Registered before the process exists so that no path leaks it.
	t.Cleanup(func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.proc == nil {
			return
		}
		s.proc.kill()
		if t.Failed() {
			t.Logf("redistest: output of redis-server on %s:\n%s", s.addr, tail(s.proc.out.String(), 40))
		}
		s.proc = nil
	})

	var lastErr error
	for attempt := 0; attempt < 5; attempt++ {
		port, err := freePort(busPort)
		if err != nil {
			t.Fatalf("redistest: pick a free port: %v", err)
		}
		p, err := launch(bin, s.args(port), port, startTimeout)
		if errors.Is(err, errPortInUse) {
			lastErr = err
			continue // lost a bind race: pick another port
		}
		if err != nil {
			t.Fatalf("redistest: %v", err)
		}
		s.mu.Lock()
		s.proc = p
		s.port = port
		s.addr = "127.0.0.1:" + strconv.Itoa(port)
		s.url = "redis://" + s.addr + "/0"
		s.mu.Unlock()
		return s
	}
	t.Fatalf("redistest: no free port after 5 attempts: %v", lastErr)
	return nil
}

// args returns the command-line arguments for a server on port.
func (s *Server) args(port int) []string {
	ps := strconv.Itoa(port)
	a := []string{
		"--port", ps,
		"--bind", "127.0.0.1",
		"--save", "",
		"--appendonly", "no",
		"--dir", s.dir,
		"--daemonize", "no",
		"--logfile", "",
	}
	for _, e := range s.extra {
		a = append(a, strings.ReplaceAll(e, "{port}", ps))
	}
	return a
}

// startExternal returns a Server for the REDIS_URL server u, checking that
// it answers PING; the keys with its prefix are deleted at cleanup.
func startExternal(t testing.TB, u string) *Server {
	t.Helper()
	opts, err := redis.ParseURL(u)
	if err != nil {
		t.Fatalf("redistest: REDIS_URL=%q: %v", u, err)
	}
	s := &Server{prefix: newPrefix(), addr: opts.Addr, url: u, external: true}
	c := redis.NewClient(opts)
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	err = c.Ping(ctx).Err()
	cancel()
	if err != nil {
		_ = c.Close()
		t.Fatalf("redistest: REDIS_URL=%q: PING: %v", u, err)
	}
	t.Cleanup(func() {
		defer func() { _ = c.Close() }()
		ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
		defer cancel()
		keys, err := scanKeys(ctx, c, s.prefix)
		if err == nil && len(keys) > 0 {
			// One DEL per key: the keys may hash to different slots.
			_, err = c.Pipelined(ctx, func(p redis.Pipeliner) error {
				for _, k := range keys {
					p.Del(ctx, k)
				}
				return nil
			})
		}
		if err != nil {
			t.Errorf("redistest: delete the keys %s* on REDIS_URL=%q: %v", s.prefix, u, err)
		}
	})
	return s
}

// Addr returns the server's address, "127.0.0.1:port" for a private server
// (the host and port of REDIS_URL otherwise).
func (s *Server) Addr() string { return s.addr }

// URL returns the server's URL, "redis://127.0.0.1:port/0" for a private
// server (REDIS_URL as given otherwise).
func (s *Server) URL() string { return s.url }

// Prefix returns the key prefix of this test: "ssbt" and 8 random
// characters from a-z and 2-7, with no '{', '}', ':' or glob
// metacharacter. Keys returns only the keys that start with it, and on a
// REDIS_URL server the cleanup deletes them, so a test must start every key
// it writes with it.
func (s *Server) Prefix() string { return s.prefix }

// options returns the go-redis options for the server.
func (s *Server) options() *redis.Options {
	if s.external {
		opts, err := redis.ParseURL(s.url)
		if err != nil { // parsed already by startExternal
			panic("redistest: " + err.Error())
		}
		return opts
	}
	return &redis.Options{Addr: s.addr}
}

// Client returns a new go-redis client to the server (default options, DB 0
// or the database of REDIS_URL), closed at t's cleanup.
func (s *Server) Client(t testing.TB) *redis.Client {
	t.Helper()
	c := redis.NewClient(s.options())
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// Keys returns every key of the server that starts with Prefix(), sorted.
// It uses SCAN MATCH, not KEYS. It fails the test if the server does not
// answer.
func (s *Server) Keys(t testing.TB) []string {
	t.Helper()
	c := redis.NewClient(s.options())
	defer func() { _ = c.Close() }()
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	keys, err := scanKeys(ctx, c, s.prefix)
	if err != nil {
		t.Fatalf("redistest: SCAN %s: %v", s.addr, err)
	}
	slices.Sort(keys)
	return keys
}

// scanKeys returns the keys of c starting with prefix, unsorted, without
// duplicates (SCAN may return a key twice).
func scanKeys(ctx context.Context, c redis.Cmdable, prefix string) ([]string, error) {
	seen := map[string]bool{}
	var keys []string
	var cursor uint64
	for {
		batch, next, err := c.Scan(ctx, cursor, prefix+"*", 1000).Result()
		if err != nil {
			return nil, err
		}
		for _, k := range batch {
			if !seen[k] {
				seen[k] = true
				keys = append(keys, k)
			}
		}
		if next == 0 {
			return keys, nil
		}
		cursor = next
	}
}

// Kill kills the server with SIGKILL and waits for the process to end:
// Redis is then down, and clients get "connection refused" until Restart.
// Killing a killed server does nothing. On a REDIS_URL server, which the
// harness cannot control, Kill skips the test.
func (s *Server) Kill(t testing.TB) {
	t.Helper()
	if s.external {
		t.Skipf("redistest: cannot kill the REDIS_URL server %s (redis-server is not installed): test skipped", s.addr)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc == nil {
		return
	}
	s.proc.kill()
	s.lastLog = s.proc.out.String()
	s.proc = nil
}

// Restart starts the server again on the same port after Kill, empty (it
// runs with --save "" --appendonly no, so nothing survives the kill), and
// waits until it answers PING. A running server is killed first. If the
// port stays taken or the server does not come up within about 10 s, the
// test fails. On a REDIS_URL server, Restart skips the test.
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	if s.external {
		t.Skipf("redistest: cannot restart the REDIS_URL server %s (redis-server is not installed): test skipped", s.addr)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc != nil {
		s.proc.kill()
		s.lastLog = s.proc.out.String()
		s.proc = nil
	}
	deadline := time.Now().Add(startTimeout)
	for {
		p, err := launch(s.bin, s.args(s.port), s.port, time.Until(deadline))
		if err == nil {
			s.proc = p
			return
		}
		if !errors.Is(err, errPortInUse) || time.Now().After(deadline) {
			t.Fatalf("redistest: restart on %s: %v", s.addr, err)
		}
		time.Sleep(100 * time.Millisecond) // someone took the port: wait for it
	}
}

// tail returns the last n lines of s.
func tail(s string, n int) string {
	s = strings.TrimRight(s, "\n")
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = append([]string{fmt.Sprintf("[... %d lines]", len(lines)-n)}, lines[len(lines)-n:]...)
	}
	return strings.Join(lines, "\n")
}
