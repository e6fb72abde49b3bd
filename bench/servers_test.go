package bench

// The servers of the connection benchmarks, each run alone in a child
// process (child_test.go) whose runtime figures are then the server's own.
// Its commands:
//
//	start <kind> [args]
//	                   start the server of that kind (serverKinds, or
//	                   cfKinds with their arguments) on 127.0.0.1; reply
//	                   "ok <host:port>"
//	sample             once the goroutine count settled, GC and reply
//	                   "ok <HeapAlloc> <StackInuse> <goroutines>"
//	counters           reply "ok <Mallocs> <TotalAlloc>" (no GC)
//	publish <k> [seq|jseq]
//	                   publish k publications of fanOutPayload to topic from
//	                   one goroutine, back to back; with seq, publication i
//	                   is fanOutPayload + " <i>", with jseq the JSON
//	                   jsonSeqPayload(i); reply when Publish returned for all
//	stop               end every stream and the server, and check that
//	                   every goroutine it had is gone

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"time"

	sse "github.com/tmaxmax/go-sse"
	fh "github.com/valyala/fasthttp"

	ssefasthttp "github.com/ssebridge/ssebridge/fasthttp"
	"github.com/ssebridge/ssebridge/handler"
	"github.com/ssebridge/ssebridge/netfx"
)

const (
	// topic is the one topic every stream follows.
	topic = "t"
	// fanOutPayload is every publication's data: 64 bytes of JSON on one
	// line.
	fanOutPayload = `{"type":"tick","seq":1234567,"value":"abcdefghijklmnopqrstuvwx"}`
)

// serverKind names a server and starts one.
type serverKind struct {
	name  string
	start func() (*sseServer, error)
	// warmup is the untimed fan-out bursts that bring the server's
	// per-stream state to its steady size: for ssebridge, each peer's
	// frame log grows until it holds the replay window (Config.ReplaySize,
	// 64 KiB by default: about 550 frames of fanOutPayload) plus a burst's
	// queue; go-sse keeps nothing per stream between events. Both include
	// two bursts for TCP windows to grow.
	warmup int
}

var serverKinds = []serverKind{
	{"netfx", startNetfx, 6},
	{"fasthttp", startFasthttp, 6},
	{"gosse", startGoSSE, 2},
}

// sseServer is one server under test, listening on loopback.
type sseServer struct {
	addr    string
	publish func(data string) error
	stop    func() error // ends every stream and the server
	// nodes, when set, returns the number of nodes the server knows of
	// (centrifuge: see waitNodes).
	nodes func() int

	mu   sync.Mutex
	errs error // from the hooks
}

func (s *sseServer) report(err error) {
	s.mu.Lock()
	s.errs = errors.Join(s.errs, err)
	s.mu.Unlock()
}

func (s *sseServer) hookErrors() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.errs
}

// newBridge returns a Handler with the defaults, whose Open hook subscribes
// every peer to topic.
func newBridge(s *sseServer) (*handler.Handler, error) {
	return handler.New(handler.Config{
		Logger: slog.New(slog.DiscardHandler),
		Hooks: handler.Hooks{
			Open: func(p *handler.Peer) {
				if err := p.Subscribe(topic); err != nil {
					s.report(err)
				}
			},
			Error: func(_ *handler.Peer, err error) { s.report(err) },
		},
	})
}

// serveHTTP serves hd with net/http on a loopback listener; stop runs
// shutdown first (the library's own streams), then closes the server.
func serveHTTP(s *sseServer, hd http.Handler, shutdown func(context.Context) error, errorLog *log.Logger) error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: hd, ReadHeaderTimeout: 10 * time.Second, ErrorLog: errorLog}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	s.addr = ln.Addr().String()
	s.stop = func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		err := shutdown(ctx)
		_ = srv.Close()
		if serr := <-served; !errors.Is(serr, http.ErrServerClosed) {
			err = errors.Join(err, serr)
		}
		return err
	}
	return nil
}

// startNetfx serves ssebridge with net/http through netfx.
func startNetfx() (*sseServer, error) {
	s := new(sseServer)
	h, err := newBridge(s)
	if err != nil {
		return nil, err
	}
	s.publish = func(data string) error { return h.Publish(topic, data) }
	return s, serveHTTP(s, netfx.New(h), h.Shutdown, nil)
}

// startFasthttp serves ssebridge with fasthttp, with the server NewServer
// sets up.
func startFasthttp() (*sseServer, error) {
	s := new(sseServer)
	h, err := newBridge(s)
	if err != nil {
		return nil, err
	}
	s.publish = func(data string) error { return h.Publish(topic, data) }
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	srv := ssefasthttp.NewServer(h)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	s.addr = ln.Addr().String()
	s.stop = func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		err := errors.Join(h.Shutdown(ctx), srv.ShutdownWithContext(ctx))
		return errors.Join(err, <-served)
	}
	return s, nil
}

// startGoSSE serves github.com/tmaxmax/go-sse: a Server with its default
// provider, Joe, and every session on topic. go-sse sends nothing, not even
// the response headers, before the first event; helloReplayer sends each
// new subscriber one event from inside Joe's loop, which adds the
// subscriber right after it (no publication can come in between): a client
// that has its hello receives every later publication, as with ssebridge's
// own hello event.
func startGoSSE() (*sseServer, error) {
	srv := &sse.Server{
		Provider: &sse.Joe{Replayer: helloReplayer{}},
		OnSession: func(http.ResponseWriter, *http.Request) ([]string, bool) {
			return []string{topic}, true
		},
	}
	s := new(sseServer)
	s.publish = func(data string) error {
		m := &sse.Message{}
		m.AppendData(data)
		return srv.Publish(m, topic)
	}
	// On Shutdown, ServeHTTP answers the streams still open with an error,
	// which net/http logs as a superfluous WriteHeader: not ours to see.
	return s, serveHTTP(s, srv, srv.Shutdown, log.New(io.Discard, "", 0))
}

// helloReplayer replays nothing but a hello event to every new subscriber.
type helloReplayer struct{}

var goSSEHello = func() *sse.Message {
	m := &sse.Message{Type: sse.Type("hello")}
	m.AppendData("hello")
	return m
}()

func (helloReplayer) Put(m *sse.Message, _ []string) (*sse.Message, error) { return m, nil }

func (helloReplayer) Replay(sub sse.Subscription) error {
	if err := sub.Client.Send(goSSEHello); err != nil {
		return err
	}
	return sub.Client.Flush()
}

// startKind starts the server of kind name: one of serverKinds, or one of
// cfKinds with args.
func startKind(name string, args []string) (*sseServer, error) {
	for _, k := range serverKinds {
		if k.name == name {
			return k.start()
		}
	}
	for _, k := range cfKinds {
		if k.name == name {
			return k.start(args)
		}
	}
	return nil, fmt.Errorf("no server %q", name)
}

// jsonSeqPayload is publication i of "publish <k> jseq": JSON, for the
// Centrifugo servers, which embed publications in their pushes.
func jsonSeqPayload(i int) string {
	return `{"type":"tick","seq":` + strconv.Itoa(i) + `}`
}

// serverChild is the server process's state: at most one server.
type serverChild struct {
	srv     *sseServer
	base    int      // serverGoroutines before the server started
	profile *os.File // the CPU profile being written, if any
}

// envCPUProfile, set to a directory, has every server child write a CPU
// profile of its server's life (start to stop) there, named
// <kind>-<pid>.pprof.
const envCPUProfile = "SSEBRIDGE_BENCH_CPUPROFILE"

// startProfile starts the CPU profile of a server of kind, if asked for.
func (c *serverChild) startProfile(kind string) error {
	dir := os.Getenv(envCPUProfile)
	if dir == "" {
		return nil
	}
	f, err := os.Create(filepath.Join(dir, fmt.Sprintf("%s-%d.pprof", kind, os.Getpid())))
	if err != nil {
		return err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		_ = f.Close()
		return err
	}
	c.profile = f
	return nil
}

func (c *serverChild) stopProfile() error {
	if c.profile == nil {
		return nil
	}
	pprof.StopCPUProfile()
	err := c.profile.Close()
	c.profile = nil
	return err
}

// end stops the server, if one runs, when stdin ends.
func (c *serverChild) end() {
	if c.srv != nil {
		_ = c.srv.stop()
		c.srv = nil
	}
	_ = c.stopProfile()
}

func (c *serverChild) command(f []string) (string, error) {
	switch f[0] {
	case "start":
		if c.srv != nil || len(f) < 2 {
			return "", errors.New("start <kind> [args], once")
		}
		c.base = baseGoroutines()
		srv, err := startKind(f[1], f[2:])
		if err != nil {
			return "", err
		}
		if err := c.startProfile(f[1]); err != nil {
			_ = srv.stop()
			return "", fmt.Errorf("%s: %w", envCPUProfile, err)
		}
		c.srv = srv
		return srv.addr, nil
	case "sample":
		m := sample()
		return fmt.Sprintf("%d %d %d", m.heapAlloc, m.stackInuse, m.goroutines), nil
	case "counters":
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return fmt.Sprintf("%d %d", ms.Mallocs, ms.TotalAlloc), nil
	case "publish":
		if c.srv == nil || len(f) < 2 {
			return "", errors.New("publish <k> [seq|jseq], after start")
		}
		k, err := strconv.Atoi(f[1])
		if err != nil {
			return "", err
		}
		mode := ""
		if len(f) > 2 {
			mode = f[2]
		}
		for i := range k {
			data := fanOutPayload
			switch mode {
			case "seq":
				data = fanOutPayload + " " + strconv.Itoa(i)
			case "jseq":
				data = jsonSeqPayload(i)
			}
			if err := c.srv.publish(data); err != nil {
				return "", fmt.Errorf("publish: %w", err)
			}
		}
		return "", nil
	case "stop":
		if c.srv == nil {
			return "", errors.New("stop before start")
		}
		srv := c.srv
		c.srv = nil
		if err := c.stopProfile(); err != nil {
			return "", fmt.Errorf("%s: %w", envCPUProfile, err)
		}
		if err := srv.stop(); err != nil {
			return "", fmt.Errorf("stop: %w", err)
		}
		if err := srv.hookErrors(); err != nil {
			return "", err
		}
		return "", checkGoroutines(c.base)
	}
	return "", fmt.Errorf("unknown command %q", f[0])
}

// memSample is what the server process holds at one moment.
type memSample struct {
	heapAlloc, stackInuse uint64
	goroutines            int
}

// sample waits for the goroutine count to stay put for a while, collects
// garbage (twice, so that finalizers and sync.Pool victims are gone) and
// reads the runtime's figures.
func sample() memSample {
	last, stable := -1, 0
	for deadline := time.Now().Add(5 * time.Second); stable < 5 && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
		if n := runtime.NumGoroutine(); n == last {
			stable++
		} else {
			last, stable = n, 0
		}
	}
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return memSample{ms.HeapAlloc, ms.StackInuse, runtime.NumGoroutine()}
}

// parseSample parses the reply to sample.
func parseSample(s string) (m memSample, err error) {
	_, err = fmt.Sscan(s, &m.heapAlloc, &m.stackInuse, &m.goroutines)
	return m, err
}

// baseGoroutines returns the goroutines of this process before a server
// starts (see serverGoroutines). fasthttp starts a process-wide goroutine
// that never ends (its Date header refresher) with the first response
// header it writes: it is started here first, so that it is no server's.
func baseGoroutines() int {
	var h fh.ResponseHeader
	_ = h.AppendBytes(nil)
	return serverGoroutines()
}

// serverGoroutines counts the goroutines of this process but those of
// fasthttp's worker pool cleaner, which outlives its server by up to
// Server.MaxIdleWorkerDuration (10 s): it sleeps that long between checks
// of whether the server stopped.
func serverGoroutines() int {
	buf := make([]byte, 64<<10)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	count := 0
	for g := range strings.SplitSeq(string(buf), "\n\n") {
		if strings.TrimSpace(g) != "" && !strings.Contains(g, "fasthttp.(*workerPool).Start") {
			count++
		}
	}
	return count
}

// checkGoroutines waits for the goroutines of this process to be no more
// than base again, once the server stopped: every stream and every
// goroutine it had must be gone.
func checkGoroutines(base int) error {
	n := runtime.NumGoroutine()
	for deadline := time.Now().Add(10 * time.Second); ; n = runtime.NumGoroutine() {
		if n <= base {
			return nil
		}
		if n = serverGoroutines(); n <= base || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if n <= base {
		return nil
	}
	var buf strings.Builder
	_ = pprof.Lookup("goroutine").WriteTo(&buf, 1)
	return fmt.Errorf("%d goroutines left once the server stopped, %d before it started:\n%s", n, base, buf.String())
}
