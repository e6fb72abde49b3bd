package redis_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	redisbackend "github.com/ssebridge/ssebridge/backends/redis"
	"github.com/ssebridge/ssebridge/handler"
	"github.com/ssebridge/ssebridge/handler/engine"
	"github.com/ssebridge/ssebridge/internal/redistest"
	"github.com/ssebridge/ssebridge/internal/ssetest"
	"github.com/ssebridge/ssebridge/netfx"
)

// End-to-end: Handlers served over loopback HTTP by netfx, each with its
// own Redis client and backend (as separate processes would have), sharing
// one real redis-server or Cluster.

// instance is one Handler behind its own HTTP server.
type instance struct {
	h    *handler.Handler
	srv  *httptest.Server
	url  string
	hook *hookLog
}

// hookLog records hook calls.
type hookLog struct {
	opens, resumes chan *handler.Peer
	msgs           chan string // "<peer> <text>"
	closes         chan string // peer ids
	mu             sync.Mutex
	errs           []error
}

func newHookLog() *hookLog {
	return &hookLog{
		opens:   make(chan *handler.Peer, 1024),
		resumes: make(chan *handler.Peer, 1024),
		msgs:    make(chan string, 4096),
		closes:  make(chan string, 1024),
	}
}

func (l *hookLog) errors() []error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]error(nil), l.errs...)
}

// hooks subscribes every new peer to "room" and echoes each message as a
// publication on it.
func (l *hookLog) hooks(h **handler.Handler) handler.Hooks {
	return handler.Hooks{
		Open: func(p *handler.Peer) {
			if err := p.Subscribe("room"); err != nil {
				panic(err)
			}
			l.opens <- p
		},
		Resume: func(p *handler.Peer) { l.resumes <- p },
		Message: func(p *handler.Peer, m handler.Message) {
			l.msgs <- p.ID() + " " + m.Text()
			_ = (*h).Publish("room", "echo "+m.Text())
		},
		Close: func(p *handler.Peer, _ handler.CloseDetails) { l.closes <- p.ID() },
		Error: func(_ *handler.Peer, err error) {
			l.mu.Lock()
			l.errs = append(l.errs, err)
			l.mu.Unlock()
		},
	}
}

// backendConfig keeps failure detection quick in tests.
func backendConfig(client goredis.UniversalClient, prefix string) redisbackend.Config {
	return redisbackend.Config{
		Client:       client,
		Prefix:       prefix,
		NodeTTL:      900 * time.Millisecond,
		SessionTTL:   5 * time.Second,
		BlockTimeout: 200 * time.Millisecond,
		Logger:       slog.New(slog.DiscardHandler),
	}
}

// newInstance serves a Handler for cfg with a Redis backend; when cfg has no
// hooks, the instance's hookLog provides them.
func newInstance(t testing.TB, client goredis.UniversalClient, prefix string, cfg handler.Config) *instance {
	t.Helper()
	b, err := redisbackend.New(backendConfig(client, prefix))
	if err != nil {
		t.Fatalf("redis backend: %v", err)
	}
	in := &instance{hook: newHookLog()}
	cfg.Backend = b
	if cfg.Hooks.Open == nil && cfg.Hooks.Message == nil {
		cfg.Hooks = in.hook.hooks(&in.h)
	}
	cfg.Logger = slog.New(slog.DiscardHandler)
	if in.h, err = handler.New(cfg); err != nil {
		t.Fatalf("handler.New: %v", err)
	}
	in.srv = httptest.NewServer(netfx.New(in.h))
	in.url = in.srv.URL + "/sse"
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = in.h.Shutdown(ctx)
		in.srv.CloseClientConnections()
		in.srv.Close()
		_ = b.Close()
	})
	return in
}

// singleClient returns a new client of a private redis-server.
func singleClient(t testing.TB, srv *redistest.Server) goredis.UniversalClient {
	t.Helper()
	c, err := redisbackend.ParseURL(srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// stream is an open event stream.
type stream struct {
	resp   *http.Response
	ev     *ssetest.Reader
	cancel context.CancelFunc
	id     string
}

func openStream(t *testing.T, url string, hdr ...string) *stream {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	req.Header.Set("Accept", "text/event-stream")
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		cancel()
		t.Fatalf("GET %s: %v", url, err)
	}
	st := &stream{resp: resp, ev: ssetest.NewReader(resp.Body), cancel: cancel, id: resp.Header.Get("X-Crossws-Id")}
	t.Cleanup(st.close)
	if resp.StatusCode != http.StatusOK || st.id == "" {
		t.Fatalf("GET %s: %d, peer %q", url, resp.StatusCode, st.id)
	}
	hello := st.ev.Event(t)
	if hello.Type != "crossws-id" || hello.Data != st.id {
		t.Fatalf("first event %+v", hello)
	}
	return st
}

func (st *stream) close() {
	st.cancel()
	_ = st.resp.Body.Close()
}

func post(t *testing.T, url, id, body string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	req.Header.Set("X-Crossws-Id", id)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("POST: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// expectEcho reads the next event and checks it is the echo of text.
func expectEcho(t *testing.T, st *stream, text string) string {
	t.Helper()
	it := st.ev.Event(t)
	if it.Type != "message" || it.Data != "echo "+text {
		t.Fatalf("event %+v, want message %q", it, "echo "+text)
	}
	return it.ID
}

// twoInstances runs the cross-instance checks on a and b.
func twoInstances(t *testing.T, a, b *instance) {
	stA := openStream(t, a.url)
	ssetest.Recv(t, a.hook.opens, "Open on A")
	stB := openStream(t, b.url)
	ssetest.Recv(t, b.hook.opens, "Open on B")
	// A POST to B for A's peer is carried to A through Redis, in order.
	for i := range 20 {
		text := "m" + string(rune('a'+i))
		if code, body := post(t, b.url, stA.id, text); code != http.StatusOK {
			t.Fatalf("POST to B for A's peer: %d %s", code, body)
		}
		if got := ssetest.Recv(t, a.hook.msgs, "message on A"); got != stA.id+" "+text {
			t.Fatalf("A's hook got %q, want %q", got, stA.id+" "+text)
		}
	}
	// The echoes, published on A, reach subscribers on both instances in
	// one order.
	for i := range 20 {
		text := "m" + string(rune('a'+i))
		expectEcho(t, stA, text)
		expectEcho(t, stB, text)
	}
	// Unknown peers are refused at once by either instance.
	for _, in := range []*instance{a, b} {
		if code, _ := post(t, in.url, "AAAAAAAAAAAAAAAAAAAAAA", "x"); code != http.StatusBadRequest {
			t.Fatalf("POST for an unknown peer: %d, want 400", code)
		}
	}
}

// twoOnServer starts a private redis-server and two instances for cfg on it.
func twoOnServer(t *testing.T, cfg handler.Config) (*redistest.Server, *instance, *instance) {
	t.Helper()
	srv := redistest.Start(t)
	return srv, newInstance(t, singleClient(t, srv), srv.Prefix(), cfg), newInstance(t, singleClient(t, srv), srv.Prefix(), cfg)
}

func TestTwoInstances(t *testing.T) {
	t.Parallel()
	_, a, b := twoOnServer(t, handler.Config{})
	twoInstances(t, a, b)
}

func TestTwoInstancesOnCluster(t *testing.T) {
	t.Parallel()
	cl := redistest.StartCluster(t)
	client := func() goredis.UniversalClient {
		c := goredis.NewClusterClient(&goredis.ClusterOptions{Addrs: cl.Addrs()})
		t.Cleanup(func() { _ = c.Close() })
		return c
	}
	a := newInstance(t, client(), cl.Prefix(), handler.Config{})
	b := newInstance(t, client(), cl.Prefix(), handler.Config{})
	twoInstances(t, a, b)
	resumeElsewhere(t, a, b)
}

// resumeElsewhere: a client whose stream on a dropped resumes on b with what
// it missed.
func resumeElsewhere(t *testing.T, a, b *instance) {
	st := openStream(t, a.url)
	id := st.id
	ssetest.Recv(t, a.hook.opens, "Open on A")
	if err := a.h.Publish("room", "echo before"); err != nil {
		t.Fatal(err)
	}
	last := expectEcho(t, st, "before")
	st.close()
	ssetest.Eventually(t, "A's peer detached", func() bool {
		p, ok := a.h.Peer(id)
		return ok && !p.Connected()
	})
	for _, text := range []string{"x1", "x2", "x3"} {
		if err := b.h.Publish("room", "echo "+text); err != nil {
			t.Fatal(err)
		}
	}
	st2 := openStream(t, b.url, "Last-Event-ID", last)
	if st2.id != id {
		t.Fatalf("resumed as %q, want %q", st2.id, id)
	}
	ssetest.Recv(t, b.hook.resumes, "Resume on B")
	for _, text := range []string{"x1", "x2", "x3"} {
		expectEcho(t, st2, text)
	}
	if err := a.h.Publish("room", "echo live"); err != nil {
		t.Fatal(err)
	}
	expectEcho(t, st2, "live")
	ssetest.Eventually(t, "A released the peer", func() bool { _, ok := a.h.Peer(id); return !ok })
	if code, body := post(t, a.url, id, "after"); code != http.StatusOK {
		t.Fatalf("POST to A after the takeover: %d %s", code, body)
	}
	if got := ssetest.Recv(t, b.hook.msgs, "message on B"); got != id+" after" {
		t.Fatalf("B's hook got %q", got)
	}
}

func TestResumeOnAnotherInstance(t *testing.T) {
	t.Parallel()
	_, a, b := twoOnServer(t, handler.Config{})
	resumeElsewhere(t, a, b)
}

func TestShutdownHandsOff(t *testing.T) {
	t.Parallel()
	_, a, b := twoOnServer(t, handler.Config{})
	st := openStream(t, a.url)
	ssetest.Recv(t, a.hook.opens, "Open on A")
	if err := b.h.Publish("room", "echo one"); err != nil {
		t.Fatal(err)
	}
	last := expectEcho(t, st, "one")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := a.h.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	// The stream ends without a close event: the client reconnects.
	if rest := st.ev.Rest(t); len(rest) != 0 {
		t.Fatalf("after Shutdown the stream got %+v", rest)
	}
	if err := b.h.Publish("room", "echo two"); err != nil {
		t.Fatal(err)
	}
	st2 := openStream(t, b.url, "Last-Event-ID", last)
	if st2.id != st.id {
		t.Fatalf("resumed as %q, want %q", st2.id, st.id)
	}
	expectEcho(t, st2, "two")
	select {
	case id := <-a.hook.closes:
		t.Fatalf("Close hook ran on the instance that shut down, for %s", id)
	default:
	}
}

func TestRedisRestartMidStream(t *testing.T) {
	t.Parallel()
	srv, a, b := twoOnServer(t, handler.Config{Heartbeat: 100 * time.Millisecond})
	st := openStream(t, a.url)
	ssetest.Recv(t, a.hook.opens, "Open on A")

	srv.Kill(t)
	// POSTs through B need Redis: 503, and the client may retry.
	if code, body := post(t, b.url, st.id, "down"); code != http.StatusServiceUnavailable {
		t.Fatalf("POST while Redis is down: %d %s, want 503", code, body)
	}
	// The stream stays open: heartbeats keep coming.
	for range 3 {
		if it, ok := st.ev.Next(t); !ok || it.Kind != ssetest.ItemComment {
			t.Fatalf("while Redis is down the stream gave %+v (open %v), want heartbeats", it, ok)
		}
	}
	srv.Restart(t)
	// Everything recovers on its own: the session record is re-created by
	// its owner, POSTs route again, publications flow again.
	deadline := time.Now().Add(ssetest.Timeout)
	for {
		code, _ := post(t, b.url, st.id, "back")
		if code == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("POST after Redis came back: %d", code)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if got := ssetest.Recv(t, a.hook.msgs, "message after recovery"); got != st.id+" back" {
		t.Fatalf("A's hook got %q", got)
	}
	for {
		it := st.ev.Event(t)
		if it.Type == "message" {
			if it.Data != "echo back" {
				t.Fatalf("after recovery the stream got %+v", it)
			}
			break
		}
	}
	if len(a.hook.errors())+len(b.hook.errors()) == 0 {
		t.Fatal("no error reached the Error hook while Redis was down")
	}
	for _, err := range append(a.hook.errors(), b.hook.errors()...) {
		if errors.Is(err, context.Canceled) {
			t.Fatalf("unexpected error: %v", err)
		}
	}
}

func TestHostilePostsCreateNoKeys(t *testing.T) {
	t.Parallel()
	srv, a, b := twoOnServer(t, handler.Config{})
	st := openStream(t, a.url)
	ssetest.Recv(t, a.hook.opens, "Open on A")
	before := srv.Keys(t)

	huge := strings.Repeat("x", 64<<10+1)
	cases := []struct {
		id, body string
		want     int
	}{
		{"", "no id", http.StatusBadRequest},
		{"{tag}", "x", http.StatusBadRequest},
		{"a:b", "x", http.StatusBadRequest},
		{strings.Repeat("A", 23), "x", http.StatusBadRequest},
		{strings.Repeat("A", 4096), "x", http.StatusBadRequest},
		{"AAAAAAAAAAAAAAAAAAAAAA", "x", http.StatusBadRequest},
		{"../../etc", "x", http.StatusBadRequest},
		{st.id + "x", "x", http.StatusBadRequest},
		{st.id, huge, http.StatusRequestEntityTooLarge},
	}
	for _, in := range []*instance{a, b} {
		for _, c := range cases {
			if code, body := post(t, in.url, c.id, c.body); code != c.want {
				t.Errorf("POST id %q (%d bytes): %d %s, want %d", short(c.id), len(c.body), code, body, c.want)
			}
		}
	}
	// A flood of POSTs for peers that do not exist, through the instance
	// that has no peers at all.
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 60 {
				id := engine.NewID() // well-formed: it reaches Redis
				if code, _ := post(t, b.url, id, "flood"); code != http.StatusBadRequest {
					t.Errorf("flood POST: %d, want 400", code)
					return
				}
			}
		})
	}
	wg.Wait()
	if after := srv.Keys(t); !slices.Equal(before, after) {
		t.Fatalf("hostile POSTs changed the keys:\nbefore %q\nafter  %q", before, after)
	}
	select {
	case m := <-a.hook.msgs:
		t.Fatalf("a hostile POST reached the hook: %q", m)
	default:
	}
	// The real peer still works through either instance.
	if code, _ := post(t, b.url, st.id, "fine"); code != http.StatusOK {
		t.Fatalf("POST for the real peer: %d", code)
	}
	ssetest.Recv(t, a.hook.msgs, "message")
}

func short(s string) string {
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}

// TestSendGuarantee checks what package handler documents for Peer.Send
// across instances: kept for a resume on the same instance, lost (and Send
// refused once the takeover is known) for a resume on another one, while
// publications are replayed either way.
func TestSendGuarantee(t *testing.T) {
	t.Parallel()
	_, a, b := twoOnServer(t, handler.Config{})
	st := openStream(t, a.url)
	id := st.id
	p := ssetest.Recv(t, a.hook.opens, "Open on A")
	detach := func(st *stream) {
		t.Helper()
		st.close()
		ssetest.Eventually(t, "peer detached", func() bool { return !p.Connected() })
	}

	// Same instance: what was sent while the client was away arrives.
	detach(st)
	if err := p.SendText("kept"); err != nil {
		t.Fatal(err)
	}
	st = openStream(t, a.url, "Last-Event-ID", id+".0")
	if st.id != id {
		t.Fatalf("resumed as %q", st.id)
	}
	it := st.ev.Event(t)
	if it.Data != "kept" {
		t.Fatalf("after a resume on the same instance: %+v, want the message sent meanwhile", it)
	}
	last := it.ID

	// Another instance: the publication is replayed, the direct message
	// is not, and the old instance refuses further Sends.
	detach(st)
	if err := p.SendText("lost"); err != nil {
		t.Fatal(err)
	}
	if err := a.h.Publish("room", "echo pub"); err != nil {
		t.Fatal(err)
	}
	st = openStream(t, b.url, "Last-Event-ID", last)
	if st.id != id {
		t.Fatalf("resumed on B as %q", st.id)
	}
	expectEcho(t, st, "pub")
	if err := b.h.Publish("room", "echo next"); err != nil {
		t.Fatal(err)
	}
	expectEcho(t, st, "next") // nothing ("lost") came in between
	ssetest.Eventually(t, "A releases the peer", func() bool { return p.SendText("late") != nil })
	if err := p.SendText("late"); !errors.Is(err, handler.ErrClosed) {
		t.Fatalf("Send on the released peer: %v, want ErrClosed", err)
	}
	// The peer on B takes Sends.
	q, ok := b.h.Peer(id)
	if !ok {
		t.Fatal("B does not hold the peer")
	}
	if err := q.SendText("on B"); err != nil {
		t.Fatal(err)
	}
	if it := st.ev.Event(t); it.Data != "on B" {
		t.Fatalf("got %+v, want the Send on B", it)
	}
}
