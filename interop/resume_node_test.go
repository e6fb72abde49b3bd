package interop

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/ssebridge/ssebridge/handler"
	"github.com/ssebridge/ssebridge/internal/ssetest"
)

// peerIDPattern matches a peer id as the server writes it.
var peerIDPattern = regexp.MustCompile(`^[A-Za-z0-9_-]{22}$`)

// tick is the text of the i-th published message; its second line checks
// that multi-line data survives the trip.
func tick(i int) string { return fmt.Sprintf("tick %d\nline 2 of tick %d", i, i) }

// TestEventSourceResume: a plain EventSource (npm eventsource) with fetch,
// through streams that the server ends every 800 ms (MaxStreamDuration).
// While messages are published every 20 ms, the client must get each one
// exactly once and in order, keep its peer (same crossws-id, Open once,
// Resume for each reconnection), and see event ids "<peer>.<n>" with n
// counting the messages.
func TestEventSourceResume(t *testing.T) {
	requireNode(t)
	ctx := testContext(t)
	var opens, resumes atomic.Int32
	ups := newRecorder[upstream]()
	var hookErr atomic.Value
	s := startServer(t, handler.Config{
		MaxStreamDuration: 800 * time.Millisecond,
		Retry:             100 * time.Millisecond,
		ReconnectGrace:    10 * time.Second,
		Hooks: handler.Hooks{
			Open: func(p *handler.Peer) {
				opens.Add(1)
				if err := p.Subscribe("ticks"); err != nil {
					hookErr.Store(err)
				}
			},
			Resume:  func(*handler.Peer) { resumes.Add(1) },
			Message: func(p *handler.Peer, m handler.Message) { ups.add(upstream{p.ID(), m.Text()}) },
		},
	}, nil)

	proc := startNode(t, ctx, "eventsource.mjs", map[string]any{"url": s.url})
	var evs []nodeEvent
	for {
		ev, ok := proc.Next(ctx)
		if !ok {
			t.Fatalf("the script ended before its first crossws-id: %v%s", proc.Wait(ctx), dump(evs))
		}
		evs = append(evs, ev)
		if ev.Event == "crossws-id" {
			break
		}
	}

	// Publish until the client resumed 3 times (or 8 s passed), then 5
	// more, then "done".
	published := make(chan int, 1)
	go func() {
		tk := time.NewTicker(20 * time.Millisecond)
		defer tk.Stop()
		start, n, extra := time.Now(), 0, 0
		for extra < 5 {
			select {
			case <-ctx.Done():
				published <- n
				return
			case <-tk.C:
			}
			n++
			if err := s.h.Publish("ticks", tick(n)); err != nil {
				hookErr.Store(err)
			}
			if resumes.Load() >= 3 || time.Since(start) > 8*time.Second {
				extra++
			}
		}
		if err := s.h.Publish("ticks", "done"); err != nil {
			hookErr.Store(err)
		}
		published <- n
	}()
	rest, err := proc.Collect(ctx)
	evs = append(evs, rest...)
	if err != nil {
		t.Fatalf("%v\nevents:%s", err, dump(evs))
	}
	n := <-published
	if err, _ := hookErr.Load().(error); err != nil {
		t.Fatal(err)
	}

	hellos := only(evs, "crossws-id")
	peer := hellos[0].Data
	if !peerIDPattern.MatchString(peer) {
		t.Fatalf("crossws-id data %q is not a peer id", peer)
	}
	// Each crossws-id carries the position the client already had: <peer>.0
	// at first, then the id of the last message before the reconnection.
	last := eventID(peer, 0)
	for _, ev := range only(evs, "crossws-id", "message") {
		switch ev.Event {
		case "crossws-id":
			if ev.Data != peer || ev.LastEventID != last {
				t.Errorf("crossws-id event %s: want data %q and lastEventId %q", ev, peer, last)
			}
		case "message":
			last = ev.LastEventID
		}
	}

	msgs := only(evs, "message")
	want := make([]string, 0, n+1)
	for i := 1; i <= n; i++ {
		want = append(want, tick(i))
	}
	want = append(want, "done")
	if got := datas(msgs); !slices.Equal(got, want) {
		t.Errorf("received %d messages, want the %d published, without gap or duplicate:\n%s", len(got), len(want), firstDiff(got, want))
	}
	for i, ev := range msgs {
		if wantID := eventID(peer, i+1); !ssetest.SameID(ev.LastEventID, wantID) {
			t.Errorf("message %d has event id %q, want %q or %[3]q.<mark>", i+1, ev.LastEventID, wantID)
			break
		}
	}

	// Server side: one peer, opened once, resumed on every reconnection.
	if got := opens.Load(); got != 1 {
		t.Errorf("Open ran %d times, want 1", got)
	}
	if got := resumes.Load(); got < 2 || int(got) != len(hellos)-1 {
		t.Errorf("Resume ran %d times; the client got %d crossws-id events: want at least 2 resumes, one per reconnection", got, len(hellos))
	}
	if p, ok := s.h.Peer(peer); !ok || p.Resumes() != int(resumes.Load()) {
		t.Errorf("peer %s: found %v, Resumes() != %d", peer, ok, resumes.Load())
	}

	// Every stream request: the first without Last-Event-ID, then each with
	// the id of the last message the client had; all 200.
	gets := only(evs, "get")
	serverGets := s.log.requests("GET")
	if len(gets) != len(hellos) || len(serverGets) != len(hellos) {
		t.Errorf("client made %d stream requests, server saw %d, for %d crossws-id events", len(gets), len(serverGets), len(hellos))
	}
	for i := range min(len(gets), len(hellos), len(serverGets)) {
		want := hellos[i].LastEventID
		if i == 0 {
			want = ""
		}
		if gets[i].LastEventID != want || gets[i].Status != 200 {
			t.Errorf("stream request %d: client says %s, want Last-Event-ID %q and 200", i+1, gets[i], want)
		}
		if r := serverGets[i]; r.LastEventID != want || r.Status != 200 {
			t.Errorf("stream request %d: server saw Last-Event-ID %q → %d, want %q → 200", i+1, r.LastEventID, r.Status, want)
		}
	}

	// After each crossws-id the script POSTed "hello <k>" with the id: each
	// reached the Message hook of the same peer.
	posts := only(evs, "post")
	var wantUps []upstream
	for k := 1; k <= len(hellos); k++ {
		wantUps = append(wantUps, upstream{peer, fmt.Sprintf("hello %d", k)})
	}
	for _, p := range posts {
		if p.Status != 200 {
			t.Errorf("POST %q answered %d %q", p.Data, p.Status, p.Body)
		}
	}
	if got := ups.all(); !slices.Equal(got, wantUps) {
		t.Errorf("Message hook got %v, want %v", got, wantUps)
	}
}

// firstDiff describes where two lists of strings first differ.
func firstDiff(got, want []string) string {
	for i := range max(len(got), len(want)) {
		var g, w string = "(none)", "(none)"
		if i < len(got) {
			g = fmt.Sprintf("%q", got[i])
		}
		if i < len(want) {
			w = fmt.Sprintf("%q", want[i])
		}
		if g != w {
			return fmt.Sprintf("at index %d: got %s, want %s", i, g, w)
		}
	}
	return "no difference"
}

// TestCrosswsResumeKeepsPeer: crossws's WebSocketSSE client in stream mode,
// with streams the server ends every 400 ms. After each resume the client
// gets the crossws-id event again (same id) and opens a new streamed upload;
// what it sends on the new upload must reach the Message hook of the same
// peer, and the server's replies must reach the client. The client never
// ends its old uploads; with 6 rounds the server ends the oldest ones
// (MaxUploads is 4), which must not disturb the current one. Heartbeats run
// every 50 ms meanwhile.
func TestCrosswsResumeKeepsPeer(t *testing.T) {
	requireNode(t)
	ctx := testContext(t)
	const rounds = 6
	var opens, resumes atomic.Int32
	ups := newRecorder[upstream]()
	// Before answering the last ping, while the client still holds all its
	// uploads open, the server records which uploads had ended.
	var s *testServer
	endedBeforeLast := make(chan []int, 1)
	s = startServer(t, handler.Config{
		MaxStreamDuration: 400 * time.Millisecond,
		Retry:             100 * time.Millisecond,
		ReconnectGrace:    10 * time.Second,
		Heartbeat:         50 * time.Millisecond,
		MaxUploads:        4,
		Hooks: handler.Hooks{
			Open:   func(*handler.Peer) { opens.Add(1) },
			Resume: func(*handler.Peer) { resumes.Add(1) },
			Message: func(p *handler.Peer, m handler.Message) {
				ups.add(upstream{p.ID(), m.Text()})
				if m.Text() == fmt.Sprintf("ping %d", rounds) {
					wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
					_ = waitUntil(wctx, func() bool { return len(endedUploads(s.log)) >= rounds-4 })
					cancel()
					endedBeforeLast <- endedUploads(s.log)
				}
				_ = p.SendText("pong " + m.Text())
			},
		},
	}, nil)

	evs, err := startNode(t, ctx, "crossws-resume.mjs", map[string]any{"url": s.wsURL(), "rounds": rounds}).Collect(ctx)
	if err != nil {
		t.Fatalf("%v\nevents:%s", err, dump(evs))
	}

	hellos := only(evs, "crossws-id")
	if len(hellos) < rounds {
		t.Fatalf("got %d crossws-id events, want %d:%s", len(hellos), rounds, dump(evs))
	}
	peer := hellos[0].Data
	for _, ev := range hellos {
		if ev.Data != peer {
			t.Errorf("crossws-id changed from %q: %s", peer, ev)
		}
	}
	var wantPings, wantPongs []string
	var wantUps []upstream
	for k := 1; k <= rounds; k++ {
		ping := fmt.Sprintf("ping %d", k)
		wantPings = append(wantPings, ping)
		wantPongs = append(wantPongs, "pong "+ping)
		wantUps = append(wantUps, upstream{peer, ping})
	}
	if got := datas(only(evs, "sent")); !slices.Equal(got, wantPings) {
		t.Errorf("client sent %q, want %q", got, wantPings)
	}
	if got := datas(only(evs, "message")); !slices.Equal(got, wantPongs) {
		t.Errorf("client received %q, want %q", got, wantPongs)
	}
	if got := ups.all(); !slices.Equal(got, wantUps) {
		t.Errorf("Message hook got %v, want %v", got, wantUps)
	}
	if o, r := opens.Load(), resumes.Load(); o != 1 || r < rounds-1 {
		t.Errorf("Open ran %d times, Resume %d: want 1 and at least %d", o, r, rounds-1)
	}

	// One streamed upload per crossws-id event, each carrying the ping of
	// its round: after a resume, the client's sends travel on the new one.
	// When the last ping arrived, the server had ended the 2 oldest (beyond
	// MaxUploads; the client keeps them all open), and only those, with 200.
	select {
	case ended := <-endedBeforeLast:
		if want := []int{1, 2}; !slices.Equal(ended, want) {
			t.Errorf("uploads ended by the server before the last ping: %v, want %v; requests:%s", ended, want, s.log)
		}
	default:
		t.Errorf("the last ping did not reach the Message hook")
	}
	posts := s.log.requests("POST")
	if len(posts) < rounds {
		t.Fatalf("server saw %d POSTs, want one streamed upload per round (%d):%s", len(posts), rounds, s.log)
	}
	for k, r := range posts {
		want := ""
		if k < rounds {
			want = wantPings[k]
		}
		if r.PeerID != peer || r.ContentType != "application/octet-stream" || string(r.Body) != want {
			t.Errorf("POST %d: x-crossws-id %q, content-type %q, body %q; want %q, application/octet-stream, %q", k+1, r.PeerID, r.ContentType, r.Body, peer, want)
		}
		if r.Done && r.Status != http.StatusOK {
			t.Errorf("POST %d ended with %d, want 200", k+1, r.Status)
		}
	}
}

// TestCrosswsCloseEvent: the server closes the peer with code 4000 and
// reason "bye" after the client's first message. The crossws client fires
// its close event; its EventSource reconnects once with Last-Event-ID
// "<peer>.closed", gets 204 and stops for good; the Close hook gets the code
// and reason.
func TestCrosswsCloseEvent(t *testing.T) {
	requireNode(t)
	ctx := testContext(t)
	ups := newRecorder[upstream]()
	closes := newRecorder[closeCall]()
	s := startServer(t, handler.Config{
		Retry:          100 * time.Millisecond,
		ReconnectGrace: 10 * time.Second,
		Hooks: handler.Hooks{
			Message: func(p *handler.Peer, m handler.Message) {
				ups.add(upstream{p.ID(), m.Text()})
				_ = p.Close(4000, "bye")
			},
			Close: func(p *handler.Peer, d handler.CloseDetails) { closes.add(closeCall{p.ID(), d}) },
		},
	}, nil)

	evs, err := startNode(t, ctx, "crossws-close.mjs", map[string]any{"url": s.wsURL(), "quietMs": 500}).Collect(ctx)
	if err != nil {
		t.Fatalf("%v\nevents:%s", err, dump(evs))
	}
	calls, err := closes.waitFor(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	peer := calls[0].Peer
	if want := []closeCall{{peer, handler.CloseDetails{Code: 4000, Reason: "bye"}}}; !slices.Equal(calls, want) {
		t.Errorf("Close hook calls %v, want %v", calls, want)
	}
	if got, want := ups.all(), []upstream{{peer, "hello"}}; !slices.Equal(got, want) {
		t.Errorf("Message hook got %v, want %v", got, want)
	}

	// The client: the SSE close event with the code and reason, and
	// crossws's close event.
	var closeEvent, wsClose, gaveUp int = -1, -1, -1
	for i, ev := range evs {
		switch ev.Event {
		case "sse-close":
			closeEvent = i
			var d struct {
				Code   int    `json:"code"`
				Reason string `json:"reason"`
			}
			if err := json.Unmarshal([]byte(ev.Data), &d); err != nil || d.Code != 4000 || d.Reason != "bye" || ev.LastEventID != peer+".closed" {
				t.Errorf("close event %s: want data {\"code\":4000,\"reason\":\"bye\"} and id %q", ev, peer+".closed")
			}
		case "close":
			wsClose = i
		case "error":
			if ev.Status == 204 && ev.ReadyState == 2 {
				gaveUp = i
			}
		case "quiet":
			if ev.ReadyState != 2 {
				t.Errorf("EventSource readyState %d after the 204, want 2 (CLOSED)", ev.ReadyState)
			}
		}
	}
	// WebSocketSSE's own listener for the SSE close event runs before the
	// script's, so its close event comes first, in the same dispatch.
	if wsClose < 0 || closeEvent < 0 || gaveUp < max(wsClose, closeEvent) {
		t.Errorf("want WebSocketSSE's close event and the SSE close event, then the EventSource closing on 204; got:%s", dump(evs))
	}

	// Exactly two stream requests, on both sides: the first, and one
	// reconnection presenting "<peer>.closed", answered 204. None after it
	// (the script waited 5 retry intervals).
	type get struct {
		lastEventID string
		status      int
	}
	want := []get{{"", 200}, {peer + ".closed", 204}}
	var client, server []get
	for _, ev := range only(evs, "get") {
		client = append(client, get{ev.LastEventID, ev.Status})
	}
	for _, r := range s.log.requests("GET") {
		server = append(server, get{r.LastEventID, r.Status})
	}
	if !slices.Equal(client, want) {
		t.Errorf("client stream requests %v, want %v", client, want)
	}
	if !slices.Equal(server, want) {
		t.Errorf("server saw stream requests %v, want %v", server, want)
	}
}

// TestCrosswsStreamModeBurst: crossws's client in stream mode sends 300
// messages back to back (some with 2-, 3- and 4-byte characters), then, each
// alone, messages of 90 000 bytes of 3-byte characters and 100 000 bytes of
// 4-byte ones, larger than MaxMessageSize. Chunk boundaries do not survive
// HTTP, so messages may merge or split (crossws's own server behaves the
// same); what must hold is that every byte arrives, in order, that no
// message is larger than MaxMessageSize, and that no message ends or starts
// inside a UTF-8 sequence (reads of a large message end at arbitrary
// offsets, which the server must move back to a character boundary).
func TestCrosswsStreamModeBurst(t *testing.T) {
	requireNode(t)
	ctx := testContext(t)
	var burst []any
	var want strings.Builder
	for i := range 300 {
		m := fmt.Sprintf("msg %d é€🌍;", i)
		burst = append(burst, m)
		want.WriteString(m)
	}
	phases := [][]any{burst, {[]any{"€", 30000}}, {[]any{"🌍", 25000}}}
	ends := []int{want.Len()} // total bytes at the end of each phase
	want.WriteString(strings.Repeat("€", 30000))
	ends = append(ends, want.Len())
	want.WriteString(strings.Repeat("🌍", 25000))
	ends = append(ends, want.Len())

	ups := newRecorder[upstream]()
	var total, phase atomic.Int64
	s := startServer(t, handler.Config{
		Hooks: handler.Hooks{
			Message: func(p *handler.Peer, m handler.Message) {
				ups.add(upstream{p.ID(), m.Text()})
				n := total.Add(int64(m.Len()))
				if k := phase.Load(); k < int64(len(ends)) && n == int64(ends[k]) {
					phase.Add(1)
					_ = p.SendText(fmt.Sprintf("received %d", k+1))
				}
			},
		},
	}, nil)
	evs, err := startNode(t, ctx, "crossws-burst.mjs", map[string]any{"url": s.wsURL(), "phases": phases}).Collect(ctx)
	if err != nil {
		t.Fatalf("%v; server got %d bytes, phase ends %v\nevents:%s", err, total.Load(), ends, dump(evs))
	}
	got := ups.all()
	var b strings.Builder
	for i, u := range got {
		if u.Peer != got[0].Peer {
			t.Errorf("message %d from peer %s, the first from %s", i+1, u.Peer, got[0].Peer)
		}
		if len(u.Text) > 64<<10 || !utf8.ValidString(u.Text) {
			t.Errorf("message %d: %d bytes, valid UTF-8 %v (starts %q, ends %q)", i+1, len(u.Text), utf8.ValidString(u.Text), u.Text[:min(8, len(u.Text))], u.Text[max(0, len(u.Text)-8):])
		}
		b.WriteString(u.Text)
	}
	if joined, want := b.String(), want.String(); joined != want {
		i := 0
		for i < min(len(joined), len(want)) && joined[i] == want[i] {
			i++
		}
		t.Errorf("the messages joined (%d bytes) differ from what was sent (%d bytes) at byte %d: got %q, want %q",
			len(joined), len(want), i, joined[i:min(i+20, len(joined))], want[i:min(i+20, len(want))])
	}
	t.Logf("%d sends arrived as %d messages", len(burst)+2, len(got))
}

// TestCrosswsCloseWhileAway: the server closes a peer while its client is
// between two streams (MaxStreamDuration ended one, the client waits Retry
// before reconnecting). The reconnection must get the close event (from the
// tombstone the server keeps), so crossws's client fires close, and the
// next reconnection gets 204 and the EventSource stops. Resume never runs.
func TestCrosswsCloseWhileAway(t *testing.T) {
	requireNode(t)
	ctx := testContext(t)
	ups := newRecorder[upstream]()
	closes := newRecorder[closeCall]()
	var resumes atomic.Int32
	s := startServer(t, handler.Config{
		MaxStreamDuration: 300 * time.Millisecond,
		Retry:             500 * time.Millisecond,
		ReconnectGrace:    10 * time.Second,
		Hooks: handler.Hooks{
			Resume:  func(*handler.Peer) { resumes.Add(1) },
			Message: func(p *handler.Peer, m handler.Message) { ups.add(upstream{p.ID(), m.Text()}) },
			Close:   func(p *handler.Peer, d handler.CloseDetails) { closes.add(closeCall{p.ID(), d}) },
		},
	}, nil)
	proc := startNode(t, ctx, "crossws-close.mjs", map[string]any{"url": s.wsURL(), "quietMs": 1000})
	got, err := ups.waitFor(ctx, 1)
	if err != nil {
		t.Fatalf("%v; requests:%s", err, s.log)
	}
	peer := got[0].Peer
	p, ok := s.h.Peer(peer)
	if !ok {
		t.Fatalf("peer %s not found", peer)
	}
	if err := waitUntil(ctx, func() bool { return !p.Connected() }); err != nil {
		t.Fatal(err)
	}
	_ = p.Close(4002, "while away")

	evs, err := proc.Collect(ctx)
	if err != nil {
		t.Fatalf("%v\nevents:%s", err, dump(evs))
	}
	if n := resumes.Load(); n != 0 {
		t.Fatalf("Resume ran %d times: the client came back before the close, so this run did not test a close while away", n)
	}
	if calls, want := closes.all(), []closeCall{{peer, handler.CloseDetails{Code: 4002, Reason: "while away"}}}; !slices.Equal(calls, want) {
		t.Errorf("Close hook calls %v, want %v", calls, want)
	}
	var sawClose, sawWSClose, gaveUp bool
	for _, ev := range evs {
		switch ev.Event {
		case "sse-close":
			sawClose = ev.Data == `{"code":4002,"reason":"while away"}` && ev.LastEventID == peer+".closed"
		case "close":
			sawWSClose = true
		case "error":
			gaveUp = gaveUp || (ev.Status == 204 && ev.ReadyState == 2)
		}
	}
	if !sawClose || !sawWSClose || !gaveUp {
		t.Errorf("want the close event with code 4002 and id %s.closed, WebSocketSSE's close event, and the EventSource closing on 204:%s", peer, dump(evs))
	}
	var gets []string
	for _, r := range s.log.requests("GET") {
		gets = append(gets, fmt.Sprintf("%q→%d", r.LastEventID, r.Status))
	}
	if want := []string{`""→200`, fmt.Sprintf("%q→200", peer+".0"), fmt.Sprintf("%q→204", peer+".closed")}; !slices.Equal(gets, want) {
		t.Errorf("stream requests %v, want %v", gets, want)
	}
}

// endedUploads returns the 1-based indexes of the POSTs whose handler
// returned.
func endedUploads(l *requestLog) []int {
	var out []int
	for i, r := range l.requests("POST") {
		if r.Done {
			out = append(out, i+1)
		}
	}
	return out
}
