package redistest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

func testContext(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

var prefixRE = regexp.MustCompile(`^ssbt[a-z2-7]{8}$`)

func TestServerKeys(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	s := Start(t)
	if !strings.HasPrefix(s.Addr(), "127.0.0.1:") {
		t.Errorf("Addr() = %q", s.Addr())
	}
	if want := "redis://" + s.Addr() + "/0"; s.URL() != want {
		t.Errorf("URL() = %q, want %q", s.URL(), want)
	}
	if !prefixRE.MatchString(s.Prefix()) {
		t.Errorf("Prefix() = %q, want %s", s.Prefix(), prefixRE)
	}
	c := s.Client(t)
	if got := s.Keys(t); len(got) != 0 {
		t.Fatalf("Keys() of a new server = %q", got)
	}
	p := s.Prefix()
	for _, k := range []string{p + ":b", p + ":a", p + "{x}c", "other:" + p} {
		if err := c.Set(ctx, k, "v", 0).Err(); err != nil {
			t.Fatal(err)
		}
	}
	want := []string{p + ":a", p + ":b", p + "{x}c"}
	if got := s.Keys(t); !slices.Equal(got, want) {
		t.Errorf("Keys() = %q, want %q", got, want)
	}
	// The URL is one that go-redis parses to the same server.
	opts, err := redis.ParseURL(s.URL())
	if err != nil {
		t.Fatal(err)
	}
	c2 := redis.NewClient(opts)
	defer func() { _ = c2.Close() }()
	if v, err := c2.Get(ctx, p+":a").Result(); err != nil || v != "v" {
		t.Errorf("GET via URL() = %q, %v", v, err)
	}
}

func TestKillRestart(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	s := Start(t)
	c := s.Client(t)
	key := s.Prefix() + ":k"
	if err := c.Set(ctx, key, "v", 0).Err(); err != nil {
		t.Fatal(err)
	}

	// A client without retries (go-redis's default of 3 retries with
	// backoff takes about 1.7 s to give up), connected before the kill.
	noRetry := redis.NewClient(&redis.Options{Addr: s.Addr(), MaxRetries: -1, PoolSize: 1})
	defer func() { _ = noRetry.Close() }()
	if err := noRetry.Ping(ctx).Err(); err != nil {
		t.Fatal(err)
	}

	s.Kill(t)
	// The open connection breaks; the next one is refused.
	if err := noRetry.Ping(ctx).Err(); err == nil {
		t.Fatal("PING after Kill succeeded")
	}
	if err := noRetry.Ping(ctx).Err(); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("PING on a new connection after Kill: %v, want connection refused", err)
	}
	s.Kill(t) // killing a killed server does nothing

	s.Restart(t)
	if err := c.Ping(ctx).Err(); err != nil {
		t.Fatalf("PING after Restart: %v", err)
	}
	if err := c.Get(ctx, key).Err(); err != redis.Nil {
		t.Errorf("GET %s after Restart: %v, want redis.Nil (data gone)", key, err)
	}
	if got := s.Keys(t); len(got) != 0 {
		t.Errorf("Keys() after Restart = %q", got)
	}
	if err := c.Set(ctx, key, "v2", 0).Err(); err != nil {
		t.Fatal(err)
	}

	// Restart on a running server restarts it.
	s.Restart(t)
	if n, err := c.DBSize(ctx).Result(); err != nil || n != 0 {
		t.Errorf("DBSIZE after a second Restart = %d, %v", n, err)
	}
}

func TestServersAreSeparate(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	a, b := Start(t), Start(t)
	if a.Addr() == b.Addr() {
		t.Errorf("two servers on %s", a.Addr())
	}
	if a.Prefix() == b.Prefix() {
		t.Errorf("two servers with prefix %s", a.Prefix())
	}
	if err := a.Client(t).Set(ctx, a.Prefix()+"k", "a", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if n, err := b.Client(t).DBSize(ctx).Result(); err != nil || n != 0 {
		t.Errorf("DBSIZE of the other server = %d, %v", n, err)
	}
}

// TestCleanupKillsServer checks that a server does not outlive its test.
func TestCleanupKillsServer(t *testing.T) {
	t.Parallel()
	var s *Server
	t.Run("inner", func(t *testing.T) {
		s = Start(t)
	})
	if _, err := probe(s.Addr()); err == nil {
		t.Fatalf("server %s still answers after its test ended", s.Addr())
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc != nil {
		t.Errorf("server %s: process still recorded after cleanup", s.Addr())
	}
}

func TestStartCluster(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	start := time.Now()
	cl := StartCluster(t)
	t.Logf("cluster up in %v", time.Since(start).Round(time.Millisecond))

	addrs := cl.Addrs()
	if len(addrs) != 3 || len(slices.Compact(slices.Sorted(slices.Values(addrs)))) != 3 {
		t.Fatalf("Addrs() = %q, want 3 distinct addresses", addrs)
	}
	if !prefixRE.MatchString(cl.Prefix()) {
		t.Errorf("Prefix() = %q, want %s", cl.Prefix(), prefixRE)
	}
	cc := cl.Client(t)

	// Pick hash tags until every master owns one of them.
	owner := map[string]string{} // address of a master -> a key it owns
	var want []string
	for i := 0; len(owner) < 3 && i < 1000; i++ {
		key := fmt.Sprintf("%s{t%d}k", cl.Prefix(), i)
		slot, err := cc.ClusterKeySlot(ctx, key).Result()
		if err != nil {
			t.Fatal(err)
		}
		addr := addrs[slotNode(int(slot))]
		if _, ok := owner[addr]; ok {
			continue
		}
		owner[addr] = key
		want = append(want, key)
		if err := cc.Set(ctx, key, addr, 0).Err(); err != nil {
			t.Fatalf("SET %s (slot %d): %v", key, slot, err)
		}
	}
	if len(owner) != 3 {
		t.Fatalf("hash tags cover only %d masters", len(owner))
	}

	// Each key is on the master that owns its slot, and only there.
	for _, addr := range addrs {
		node := redis.NewClient(&redis.Options{Addr: addr})
		ks, err := scanKeys(ctx, node, cl.Prefix())
		_ = node.Close()
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(ks, []string{owner[addr]}) {
			t.Errorf("keys on %s = %q, want %q", addr, ks, owner[addr])
		}
	}
	for _, k := range want {
		if v, err := cc.Get(ctx, k).Result(); err != nil || v == "" {
			t.Errorf("GET %s = %q, %v", k, v, err)
		}
	}

	slices.Sort(want)
	if got := cl.Keys(t); !slices.Equal(got, want) {
		t.Errorf("Keys() = %q, want %q", got, want)
	}
	for _, k := range want { // keys without the prefix, on every master
		if err := cc.Set(ctx, "other:"+k, "x", 0).Err(); err != nil {
			t.Fatal(err)
		}
	}
	if got := cl.Keys(t); !slices.Equal(got, want) {
		t.Errorf("Keys() with other keys around = %q, want %q", got, want)
	}
}

// slotNode returns the index in Addrs of the master that owns slot.
func slotNode(slot int) int {
	switch {
	case slot < 5461:
		return 0
	case slot < 10922:
		return 1
	default:
		return 2
	}
}

func TestTwoClusters(t *testing.T) {
	t.Parallel()
	a, b := StartCluster(t), StartCluster(t)
	for _, x := range a.Addrs() {
		if slices.Contains(b.Addrs(), x) {
			t.Errorf("both clusters use %s", x)
		}
	}
	if a.Prefix() == b.Prefix() {
		t.Errorf("both clusters use prefix %s", a.Prefix())
	}
}

// fakeTB records Skip and Fatal instead of acting on the real test.
type fakeTB struct {
	testing.TB
	mu      sync.Mutex
	skipped string
	fatal   string
}

func (f *fakeTB) set(p *string, msg string) {
	f.mu.Lock()
	*p = msg
	f.mu.Unlock()
	runtime.Goexit()
}

func (f *fakeTB) Skip(args ...any)                 { f.set(&f.skipped, fmt.Sprint(args...)) }
func (f *fakeTB) Skipf(format string, args ...any) { f.set(&f.skipped, fmt.Sprintf(format, args...)) }
func (f *fakeTB) SkipNow()                         { f.set(&f.skipped, "SkipNow") }
func (f *fakeTB) Fatal(args ...any)                { f.set(&f.fatal, fmt.Sprint(args...)) }
func (f *fakeTB) Fatalf(format string, args ...any) {
	f.set(&f.fatal, fmt.Sprintf(format, args...))
}
func (f *fakeTB) FailNow() { f.set(&f.fatal, "FailNow") }

// run calls fn with a fakeTB for t on a goroutine of its own (Skip and
// Fatal end it) and returns what it recorded.
func run(t *testing.T, fn func(tb testing.TB)) (skipped, fatal string) {
	f := &fakeTB{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn(f)
	}()
	<-done
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.skipped, f.fatal
}

// withoutServer hides redis-server from PATH for the rest of the test.
func withoutServer(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	if _, err := exec.LookPath(serverBinary); err == nil {
		t.Fatal("redis-server still on PATH")
	}
}

func TestMissingServer(t *testing.T) {
	withoutServer(t)
	t.Setenv("REDIS_URL", "")

	t.Setenv("CI", "")
	skipped, fatal := run(t, func(tb testing.TB) { Start(tb) })
	if skipped != installHint || fatal != "" {
		t.Errorf("Start without CI: skipped %q, fatal %q; want skipped %q", skipped, fatal, installHint)
	}
	skipped, fatal = run(t, func(tb testing.TB) { StartCluster(tb) })
	if !strings.Contains(skipped, "apt-get install redis-server") || fatal != "" {
		t.Errorf("StartCluster without CI: skipped %q, fatal %q", skipped, fatal)
	}

	t.Setenv("CI", "true")
	skipped, fatal = run(t, func(tb testing.TB) { Start(tb) })
	if skipped != "" || !strings.Contains(fatal, installHint) || !strings.Contains(fatal, "CI=true") {
		t.Errorf("Start with CI=true: skipped %q, fatal %q; want a failure", skipped, fatal)
	}
	skipped, fatal = run(t, func(tb testing.TB) { StartCluster(tb) })
	if skipped != "" || !strings.Contains(fatal, "redis-server not found") {
		t.Errorf("StartCluster with CI=true: skipped %q, fatal %q; want a failure", skipped, fatal)
	}
}

func TestRedisURL(t *testing.T) {
	ctx := testContext(t)
	real := Start(t) // the server REDIS_URL names
	rc := real.Client(t)
	other := "someone-else:" + real.Prefix()
	if err := rc.Set(ctx, other, "x", 0).Err(); err != nil {
		t.Fatal(err)
	}
	url := "redis://" + real.Addr() + "/3"
	withoutServer(t)
	t.Setenv("REDIS_URL", url)
	t.Setenv("CI", "true") // REDIS_URL is enough even in CI

	// StartCluster cannot use REDIS_URL.
	if skipped, fatal := run(t, func(tb testing.TB) { StartCluster(tb) }); !strings.Contains(fatal, "redis-server not found") {
		t.Errorf("StartCluster with REDIS_URL only: skipped %q, fatal %q; want a failure (CI=true)", skipped, fatal)
	}

	var prefixes []string
	for i := range 2 {
		t.Run("test"+strconv.Itoa(i), func(t *testing.T) {
			s := Start(t)
			if s.URL() != url || s.Addr() != real.Addr() {
				t.Errorf("URL() = %q, Addr() = %q; want %q, %q", s.URL(), s.Addr(), url, real.Addr())
			}
			if !prefixRE.MatchString(s.Prefix()) {
				t.Errorf("Prefix() = %q", s.Prefix())
			}
			prefixes = append(prefixes, s.Prefix())
			c := s.Client(t)
			if db := c.Options().DB; db != 3 {
				t.Errorf("Client DB = %d, want 3", db)
			}
			want := []string{s.Prefix() + ":a", s.Prefix() + ":b"}
			for _, k := range want {
				if err := c.Set(ctx, k, "v", 0).Err(); err != nil {
					t.Fatal(err)
				}
			}
			if got := s.Keys(t); !slices.Equal(got, want) {
				t.Errorf("Keys() = %q, want %q", got, want)
			}
			if skipped, _ := run(t, func(tb testing.TB) { s.Kill(tb) }); skipped == "" {
				t.Error("Kill on a REDIS_URL server did not skip")
			}
			if skipped, _ := run(t, func(tb testing.TB) { s.Restart(tb) }); skipped == "" {
				t.Error("Restart on a REDIS_URL server did not skip")
			}
		})
	}
	if len(prefixes) != 2 || prefixes[0] == prefixes[1] {
		t.Errorf("prefixes %q, want 2 different ones", prefixes)
	}
	// The tests' keys are gone from db 3; the rest is untouched.
	db3 := redis.NewClient(&redis.Options{Addr: real.Addr(), DB: 3})
	defer func() { _ = db3.Close() }()
	if n, err := db3.DBSize(ctx).Result(); err != nil || n != 0 {
		t.Errorf("DBSIZE of db 3 after the tests = %d, %v; want 0", n, err)
	}
	if err := rc.Get(ctx, other).Err(); err != nil {
		t.Errorf("GET %s (not the tests' key): %v", other, err)
	}
}

// TestPortInUse checks that Restart waits for a port someone else took, and
// that the harness never mistakes another server for its own.
func TestPortInUse(t *testing.T) {
	t.Parallel()
	s := Start(t)
	s.Kill(t)
	// Another redis-server takes the port.
	p, err := launch(s.bin, []string{"--port", strconv.Itoa(s.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", t.TempDir()}, s.port, startTimeout)
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		time.Sleep(500 * time.Millisecond)
		p.kill()
	}()
	start := time.Now()
	s.Restart(t)
	if d := time.Since(start); d < 400*time.Millisecond {
		t.Errorf("Restart returned after %v, before the port was free", d)
	}
	pid, err := probe(s.Addr())
	if err != nil || pid != s.proc.cmd.Process.Pid {
		t.Errorf("after Restart, %s answers as pid %d (%v), want %d", s.Addr(), pid, err, s.proc.cmd.Process.Pid)
	}
}

// TestLaunchPortInUse checks that a server whose port is taken reports
// errPortInUse, which makes Start pick another port.
func TestLaunchPortInUse(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = l.Close() }()
	port := l.Addr().(*net.TCPAddr).Port
	bin := lookServer()
	if bin == "" {
		missingTool(t, installHint)
	}
	_, err = launch(bin, []string{"--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", t.TempDir()}, port, startTimeout)
	if !errors.Is(err, errPortInUse) {
		t.Errorf("launch on a taken port: %v, want errPortInUse", err)
	}
}

// childEnv makes the test binary a child that starts a server, prints its
// address and dies without cleaning up (TestNoLeakOnCrash).
const childEnv = "REDISTEST_CRASH_CHILD"

// TestNoLeakOnCrash checks that a server dies with a test binary that
// crashes (Pdeathsig), so that no redis-server outlives it.
func TestNoLeakOnCrash(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("Pdeathsig is Linux only")
	}
	t.Parallel()
	if lookServer() == "" {
		missingTool(t, installHint)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"=1")
	out, err := cmd.Output()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 3 {
		t.Fatalf("child: %v, output %q", err, out)
	}
	addr := strings.TrimSpace(string(out))
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, err := probe(addr); err != nil {
			return // gone
		}
		if time.Now().After(deadline) {
			t.Fatalf("redis-server on %s still answers after its test binary died", addr)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func crashChild() {
	port, err := freePort(false)
	if err == nil {
		_, err = launch(lookServer(), []string{"--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", os.TempDir()}, port, startTimeout)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Println("127.0.0.1:" + strconv.Itoa(port))
	os.Exit(3) // no cleanup: the server must die with this process anyway
}

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) == "1" {
		crashChild()
	}
	// go-redis logs reconnection attempts; keep the output readable.
	redis.SetLogger(quietLogger{})
	os.Exit(m.Run())
}

type quietLogger struct{}

func (quietLogger) Printf(context.Context, string, ...any) {}
