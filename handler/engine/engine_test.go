package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"iter"
	"log/slog"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ssebridge/ssebridge/handler/sse"
)

// discardExchange is an Exchange whose response goes nowhere; it counts the
// bytes written.
type discardExchange struct {
	delay   time.Duration // each Write takes this long
	ctx     context.Context
	cancel  context.CancelFunc
	written atomic.Int64
}

func newDiscardExchange() *discardExchange {
	ctx, cancel := context.WithCancel(context.Background())
	return &discardExchange{ctx: ctx, cancel: cancel}
}

func (x *discardExchange) Context() context.Context           { return x.ctx }
func (x *discardExchange) Method() string                     { return "GET" }
func (x *discardExchange) Host() string                       { return "example.test" }
func (x *discardExchange) Path() string                       { return "/sse" }
func (x *discardExchange) RawQuery() string                   { return "" }
func (x *discardExchange) Header(string) string               { return "" }
func (x *discardExchange) RemoteAddr() string                 { return "127.0.0.1:1" }
func (x *discardExchange) Body() io.Reader                    { return strings.NewReader("") }
func (x *discardExchange) ContentLength() int64               { return 0 }
func (x *discardExchange) SetHeader(string, string)           {}
func (x *discardExchange) WriteHeader(int)                    {}
func (x *discardExchange) Flush() error                       { return nil }
func (x *discardExchange) EnableFullDuplex() error            { return nil }
func (x *discardExchange) StreamBody(status int, body func()) { x.WriteHeader(status); body() }
func (x *discardExchange) SetWriteDeadline(time.Time) error   { return nil }
func (x *discardExchange) SetReadDeadline(time.Time) error    { return nil }
func (x *discardExchange) Headers() iter.Seq2[string, string] {
	return func(func(string, string) bool) {}
}
func (x *discardExchange) Write(p []byte) (int, error) {
	if x.delay > 0 {
		time.Sleep(x.delay)
	}
	x.written.Add(int64(len(p)))
	return len(p), nil
}

// testCodec frames payloads as plain SSE message events.
type testCodec struct{}

func (testCodec) AppendSend(dst, text []byte) []byte { return appendTestEvent(dst, text) }
func (testCodec) AppendPublication(dst []byte, _ string, text []byte, _ uint64) []byte {
	return appendTestEvent(dst, text)
}
func (testCodec) AppendID(dst []byte, p *Peer, seq, _ uint64) []byte {
	dst = append(dst, "id: "...)
	dst = append(dst, p.ID()...)
	dst = append(dst, '.')
	return append(strconv.AppendUint(dst, seq, 10), '\n')
}
func (testCodec) AppendClose(dst []byte, _ *Peer, d CloseDetails) []byte {
	return fmt.Appendf(dst, "event: close\ndata: %d\n\n", d.Code)
}
func (testCodec) AppendHeartbeat(dst []byte) []byte { return append(dst, ":\n\n"...) }

func appendTestEvent(dst, text []byte) []byte {
	return sse.AppendEnd(sse.AppendDataBytes(dst, text))
}

// startPeers opens n peers subscribed to topic, each with a running writer
// on a discardExchange.
func startPeers(tb testing.TB, e *Engine, n int, topic string) []*Peer {
	tb.Helper()
	peers := make([]*Peer, n)
	var wg sync.WaitGroup
	for i := range peers {
		x := newDiscardExchange()
		u := NewUpgrade(NewRequest(x), UpgradeOpen, "")
		st, err := e.Open(context.Background(), x, u, testCodec{})
		if err != nil {
			tb.Fatal(err)
		}
		p := st.Peer()
		if err := p.Subscribe(topic); err != nil {
			tb.Fatal(err)
		}
		peers[i] = p
		wg.Go(func() { st.Run(nil) })
		tb.Cleanup(x.cancel)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = e.Shutdown(ctx)
		wg.Wait()
	})
	return peers
}

// drained reports whether every peer wrote everything queued.
func drained(peers []*Peer) bool {
	for _, p := range peers {
		p.mu.Lock()
		done := p.log.cursor == p.log.next || p.state != stateOpen
		p.mu.Unlock()
		if !done {
			return false
		}
	}
	return true
}

func waitDrained(tb testing.TB, peers []*Peer) {
	tb.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !drained(peers) {
		if time.Now().After(deadline) {
			tb.Fatal("peers did not drain their queues")
		}
		runtime.Gosched()
	}
}

func quietEngine(tb testing.TB, cfg Config) *Engine {
	tb.Helper()
	cfg.Logger = slog.New(slog.DiscardHandler)
	e, err := New(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	return e
}

// TestBroadcastAllocations checks that fan-out allocates per publication,
// not per subscriber.
func TestBroadcastAllocations(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are meaningless under the race detector (sync.Pool drops items); run without -race")
	}
	e := quietEngine(t, Config{Heartbeat: -1, ReplaySize: 4096})
	peers := startPeers(t, e, 200, "t")
	payload := json.RawMessage(`{"n":1}`)
	// Let every peer's ring reach its steady size first.
	for range 500 {
		if err := e.Publish("t", payload); err != nil {
			t.Fatal(err)
		}
		waitDrained(t, peers)
	}
	allocs := testing.AllocsPerRun(200, func() {
		if err := e.Publish("t", payload); err != nil {
			t.Fatal(err)
		}
		waitDrained(t, peers)
	})
	// The frame and boxing the payload in an interface; in the memory
	// backend, the history's copy of the data and the position string:
	// never one per subscriber.
	if allocs > 4 {
		t.Fatalf("a publication to %d subscribers allocates %v times", len(peers), allocs)
	}
}

// TestUpstreamAllocations checks that dispatching an upstream message to a
// local peer allocates nothing.
func TestUpstreamAllocations(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are meaningless under the race detector; run without -race")
	}
	var got int
	e := quietEngine(t, Config{Heartbeat: -1, Hooks: Hooks{Message: func(_ *Peer, m Message) { got += m.Len() }}})
	p := startPeers(t, e, 1, "t")[0]
	data := []byte("hello")
	ctx := context.Background()
	allocs := testing.AllocsPerRun(1000, func() {
		if err := e.Upstream(ctx, p.ID(), data); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Fatalf("Upstream allocates %v times per message, want 0", allocs)
	}
	if got == 0 {
		t.Fatal("the Message hook never ran")
	}
}

func TestSlowConsumerIsolated(t *testing.T) {
	closed := make(chan CloseDetails, 1)
	e := quietEngine(t, Config{QueueSize: 1024, Heartbeat: -1, Hooks: Hooks{Close: func(p *Peer, d CloseDetails) {
		select {
		case closed <- d:
		default:
		}
	}}})
	fast := startPeers(t, e, 3, "t")
	// A peer whose client reads slowly: every write takes 500 ms, so
	// the publications below overflow its 1 KiB queue.
	x := newDiscardExchange()
	x.delay = 500 * time.Millisecond
	t.Cleanup(x.cancel)
	st, err := e.Open(context.Background(), x, NewUpgrade(NewRequest(x), UpgradeOpen, ""), testCodec{})
	if err != nil {
		t.Fatal(err)
	}
	slow := st.Peer()
	if err := slow.Subscribe("t"); err != nil {
		t.Fatal(err)
	}
	go st.Run(nil)
	for i := range 100 {
		if err := e.Publish("t", fmt.Sprintf("message %03d", i)); err != nil {
			t.Fatal(err)
		}
		waitDrained(t, fast)
	}
	select {
	case d := <-closed:
		if d.Code != CloseSlowConsumer {
			t.Fatalf("slow peer closed with %+v, want code %d", d, CloseSlowConsumer)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the slow peer was not closed")
	}
	for _, p := range fast {
		if p.Closed() {
			t.Fatal("a fast peer was closed")
		}
		p.mu.Lock()
		next := p.log.next
		p.mu.Unlock()
		if next != 101 {
			t.Fatalf("a fast peer got %d frames, want 100", next-1)
		}
	}
}

// BenchmarkFanOut measures publishing to n subscribers on one node, each
// with its own writer, until every subscriber wrote every publication.
func BenchmarkFanOut(b *testing.B) {
	for _, n := range []int{1, 100, 1000, 10000} {
		b.Run(fmt.Sprintf("subs=%d", n), func(b *testing.B) {
			e := quietEngine(b, Config{Heartbeat: -1, QueueSize: 16 << 20})
			peers := startPeers(b, e, n, "t")
			payload := json.RawMessage(`{"type":"message","from":"alice","text":"hello, world"}`)
			// Warm up: grow every peer's buffers to their steady size.
			for range 1500 {
				if err := e.Publish("t", payload); err != nil {
					b.Fatal(err)
				}
			}
			waitDrained(b, peers)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if err := e.Publish("t", payload); err != nil {
					b.Fatal(err)
				}
				if i%64 == 63 {
					waitDrained(b, peers)
				}
			}
			waitDrained(b, peers)
			b.ReportMetric(float64(b.N)*float64(n)/b.Elapsed().Seconds(), "deliveries/s")
		})
	}
}

// BenchmarkUpstream measures dispatching one upstream message to a local
// peer's Message hook.
func BenchmarkUpstream(b *testing.B) {
	e := quietEngine(b, Config{Heartbeat: -1, Hooks: Hooks{Message: func(*Peer, Message) {}}})
	p := startPeers(b, e, 1, "t")[0]
	data := []byte(`{"text":"hello"}`)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if err := e.Upstream(ctx, p.ID(), data); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSend measures Peer.SendText through to the stream write.
func BenchmarkSend(b *testing.B) {
	e := quietEngine(b, Config{Heartbeat: -1, QueueSize: 16 << 20})
	peers := startPeers(b, e, 1, "t")
	p := peers[0]
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if err := p.SendText("hello, world"); err != nil {
			b.Fatal(err)
		}
		if i%64 == 63 {
			waitDrained(b, peers)
		}
	}
	waitDrained(b, peers)
}

// TestSubscribeWhileClosing: a Subscribe racing the peer's close never
// leaves the closed peer among the topic's subscribers.
func TestSubscribeWhileClosing(t *testing.T) {
	e := quietEngine(t, Config{Heartbeat: -1, ReconnectGrace: -1})
	for range 500 {
		x := newDiscardExchange()
		st, err := e.Open(context.Background(), x, NewUpgrade(NewRequest(x), UpgradeOpen, ""), testCodec{})
		if err != nil {
			t.Fatal(err)
		}
		p := st.Peer()
		p.detach(st) // no writer: Close finalizes on its caller
		var wg sync.WaitGroup
		wg.Go(func() { _ = p.Subscribe("t") })
		wg.Go(func() { _ = p.Close(CloseNormal, "bye") })
		wg.Wait()
		e.topicsMu.RLock()
		ts := e.topics["t"]
		e.topicsMu.RUnlock()
		if ts != nil {
			t.Fatalf("a closed peer is still subscribed (%d subscribers)", ts.count)
		}
	}
}

// TestOversizePublicationRefused: a publication that cannot fit in any
// queue is refused, and nobody is closed as a slow consumer.
func TestOversizePublicationRefused(t *testing.T) {
	e := quietEngine(t, Config{Heartbeat: -1, QueueSize: 64 << 10})
	peers := startPeers(t, e, 5, "t")
	big := strings.Repeat("a", 70<<10)
	if err := e.Publish("t", big); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("Publish of %d bytes with a 64 KiB queue: %v, want ErrTooLarge", len(big), err)
	}
	if err := peers[0].SendText(big); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("SendText of %d bytes: %v, want ErrTooLarge", len(big), err)
	}
	for _, p := range peers {
		if p.Closed() {
			t.Fatal("a subscriber was closed")
		}
	}
	if err := e.Publish("t", "small"); err != nil {
		t.Fatal(err)
	}
}

func TestEmptyNamespaceIsNotEveryNamespace(t *testing.T) {
	e := quietEngine(t, Config{Heartbeat: -1})
	x := newDiscardExchange()
	u := NewUpgrade(NewRequest(x), UpgradeOpen, "")
	u.Namespace = ""
	st, err := e.Open(context.Background(), x, u, testCodec{})
	if err != nil {
		t.Fatal(err)
	}
	if ns := st.Peer().Namespace(); ns != "/" {
		t.Fatalf("namespace %q, want /", ns)
	}
}

// TestTombstoneExpires: a tombstone is not reported past its lifetime,
// even when no later close has swept it away.
func TestTombstoneExpires(t *testing.T) {
	e := quietEngine(t, Config{Heartbeat: -1})
	e.mu.Lock()
	e.addTombLocked("gone", CloseDetails{Code: 4000, Reason: "bye"})
	e.mu.Unlock()
	if d, ok := e.Tombstone("gone"); !ok || d.Code != 4000 {
		t.Fatalf("fresh tombstone: %+v, %v", d, ok)
	}
	e.mu.Lock()
	tb := e.tombs["gone"]
	tb.expires = time.Now().Add(-time.Second)
	e.tombs["gone"] = tb
	e.mu.Unlock()
	if _, ok := e.Tombstone("gone"); ok {
		t.Fatal("an expired tombstone is still reported")
	}
}
