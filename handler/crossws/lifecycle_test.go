package crossws_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/ssebridge/ssebridge/handler"
	"github.com/ssebridge/ssebridge/handler/engine"
	"github.com/ssebridge/ssebridge/internal/ssetest"
)

func TestReconnectGraceExpires(t *testing.T) {
	t.Parallel()
	const grace = 100 * time.Millisecond
	rec := newRecorder()
	s := newServer(t, handler.Config{Hooks: rec.hooks(), ReconnectGrace: grace})
	st, id := s.open()
	dropped := time.Now()
	s.detach(st, id)
	if _, ok := s.h.Peer(id); !ok {
		t.Fatal("peer gone at once despite the grace period")
	}
	d := rec.closeOf(t, id)
	if waited := time.Since(dropped); waited < grace {
		t.Fatalf("closed after %v, before the %v grace", waited, grace)
	}
	if d.Code != handler.CloseAbnormal {
		t.Fatalf("Close hook %+v, want 1006", d)
	}
	if _, ok := s.h.Peer(id); ok {
		t.Fatal("peer still open")
	}
	// A lost peer leaves no tombstone: its client gets a new peer.
	st2 := s.get("Last-Event-ID", eid(id, 0))
	if nid := st2.resp.Header.Get("X-Crossws-Id"); nid == "" || nid == id {
		t.Fatalf("reconnection after expiry: peer %q", nid)
	}
}

func TestReconnectGraceNegativeClosesAtOnce(t *testing.T) {
	t.Parallel()
	rec := newRecorder()
	s := newServer(t, handler.Config{Hooks: rec.hooks(), ReconnectGrace: -1})
	st, id := s.open()
	st.close()
	if d := rec.closeOf(t, id); d.Code != handler.CloseAbnormal {
		t.Fatalf("Close hook %+v, want 1006", d)
	}
	if _, ok := s.h.Peer(id); ok {
		t.Fatal("peer still open")
	}
}

func TestPeerCloseDrainsThenCloses(t *testing.T) {
	t.Parallel()
	rec := newRecorder()
	hooks := rec.hooks()
	hooks.Open = func(p *handler.Peer) {
		if p.Request().Header("X-Test") == "close-in-open" {
			_ = p.SendText("a")
			_ = p.SendText("b")
			_ = p.Close(4001, "x")
			if err := p.SendText("too late"); !errors.Is(err, handler.ErrClosed) {
				panic(fmt.Sprintf("Send after Close: %v", err))
			}
		}
		rec.opens <- p
	}
	s := newServer(t, handler.Config{Hooks: hooks})

	// Closed from the Open hook, with frames queued.
	st, id := s.open("X-Test", "close-in-open")
	st.ev.Expect(t, "message", "a", eid(id, 1))
	st.ev.Expect(t, "message", "b", eid(id, 2))
	st.ev.Expect(t, "close", `{"code":4001,"reason":"x"}`, id+".closed")
	st.ev.End(t)
	if d := rec.closeOf(t, id); d != (handler.CloseDetails{Code: 4001, Reason: "x"}) {
		t.Fatalf("Close hook %+v", d)
	}

	// Closed from outside while streaming, with frames queued.
	st2, id2 := s.open()
	p := s.peer(id2)
	for i := range 50 {
		_ = p.SendText("m" + itoa(i))
	}
	_ = p.Close(handler.CloseNormal, "")
	if err := p.SendText("too late"); !errors.Is(err, handler.ErrClosed) {
		t.Fatalf("Send after Close: %v", err)
	}
	for i := range 50 {
		st2.ev.Expect(t, "message", "m"+itoa(i), eid(id2, i+1))
	}
	st2.ev.Expect(t, "close", `{"code":1000,"reason":""}`, id2+".closed")
	st2.ev.End(t)
	if d := rec.closeOf(t, id2); d != (handler.CloseDetails{Code: 1000}) {
		t.Fatalf("Close hook %+v", d)
	}
	if _, ok := s.h.Peer(id2); ok {
		t.Fatal("closed peer still listed")
	}
	if code, body := s.post(id2, strings.NewReader("late")); code != http.StatusBadRequest || body != "invalid peer id" {
		t.Fatalf("POST to a closed peer: %d %q", code, body)
	}
	// Closing twice does nothing.
	_ = p.Close(4999, "again")
	select {
	case c := <-rec.closes:
		t.Fatalf("second Close hook: %+v", c)
	default:
	}
}

func TestSlowConsumerIsClosedAlone(t *testing.T) {
	t.Parallel()
	rec := newRecorder()
	hooks := rec.hooks()
	hooks.Open = func(p *handler.Peer) {
		_ = p.Subscribe("feed")
		rec.opens <- p
	}
	s := newServer(t, handler.Config{
		Hooks:        hooks,
		QueueSize:    64 << 10,
		WriteTimeout: 300 * time.Millisecond,
		Heartbeat:    -1,
	})

	// A client that sends its request and never reads.
	var d net.Dialer
	conn, err := d.DialContext(s.ctx, "tcp", s.host())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	fmt.Fprintf(conn, "GET /sse HTTP/1.1\r\nHost: %s\r\nAccept: text/event-stream\r\n\r\n", s.host())
	slow := ssetest.Recv(t, rec.opens, "Open of the slow peer")

	st, id := s.open()
	ssetest.Recv(t, rec.opens, "Open of the reading peer")

	payload := strings.Repeat("p", 8<<10)
	n := 0
	publish := func() {
		t.Helper()
		msg := fmt.Sprintf("%07d%s", n, payload)
		if err := s.h.Publish("feed", msg); err != nil {
			t.Fatalf("Publish: %v", err)
		}
		n++
		// The reader receives every publication, in order, while the
		// other peer's queue fills up.
		st.ev.Expect(t, "message", msg, eid(id, n))
	}
	for !slow.Closed() {
		publish()
		if s.ctx.Err() != nil {
			t.Fatalf("slow peer still open after %d publications", n)
		}
	}
	if d := rec.closeOf(t, slow.ID()); d.Code != handler.CloseSlowConsumer {
		t.Fatalf("slow peer closed with %+v, want 3008", d)
	}
	for range 10 {
		publish()
	}
	if p := s.peer(id); p.Closed() || !p.Connected() {
		t.Fatal("reading peer lost")
	}
	if _, ok := s.h.Peer(slow.ID()); ok {
		t.Fatal("slow peer still listed")
	}
	t.Logf("slow consumer closed after %d publications of %d bytes", n, len(payload))
}

func TestHeartbeat(t *testing.T) {
	t.Parallel()
	s := newServer(t, handler.Config{Heartbeat: 50 * time.Millisecond})
	st, id := s.open()
	for range 3 {
		it, ok := st.ev.Next(t)
		if !ok || it.Kind != ssetest.ItemComment || it.Text != " ping" {
			t.Fatalf("idle stream: got %+v (open %v), want the comment \": ping\"", it, ok)
		}
	}
	// Heartbeats do not move the event id.
	_ = s.peer(id).SendText("x")
	st.ev.Expect(t, "message", "x", eid(id, 1))
}

func TestHeartbeatDisabled(t *testing.T) {
	t.Parallel()
	s := newServer(t, handler.Config{Heartbeat: -1, MaxStreamDuration: 300 * time.Millisecond})
	st, _ := s.open()
	if items := st.ev.Rest(t); len(items) != 0 {
		t.Fatalf("got %+v with heartbeats disabled", items)
	}
}

func TestMaxStreamDuration(t *testing.T) {
	t.Parallel()
	rec := newRecorder()
	hooks := rec.hooks()
	hooks.Open = func(p *handler.Peer) { _ = p.SendText("a"); rec.opens <- p }
	s := newServer(t, handler.Config{Hooks: hooks, MaxStreamDuration: 200 * time.Millisecond})
	start := time.Now()
	st, id := s.open()
	st.ev.Expect(t, "message", "a", eid(id, 1))
	st.ev.End(t) // no close event
	if took := time.Since(start); took < 200*time.Millisecond {
		t.Fatalf("stream ended after %v", took)
	}
	p := s.peer(id)
	if p.Closed() {
		t.Fatal("peer closed at the end of its stream")
	}
	_ = p.SendText("b")

	st2 := s.get("Last-Event-ID", eid(id, 1))
	if st2.resp.Header.Get("X-Crossws-Id") != id {
		t.Fatalf("reconnection gave peer %q", st2.resp.Header.Get("X-Crossws-Id"))
	}
	st2.ev.Expect(t, "crossws-id", id, eid(id, 1))
	st2.ev.Expect(t, "message", "b", eid(id, 2))
	ssetest.Recv(t, rec.resumes, "Resume")
	if p.Resumes() != 1 {
		t.Fatalf("Resumes %d", p.Resumes())
	}
	select {
	case c := <-rec.closes:
		t.Fatalf("Close hook: %+v", c)
	default:
	}
}

func TestShutdown(t *testing.T) {
	t.Parallel()
	rec := newRecorder()
	s := newServer(t, handler.Config{Hooks: rec.hooks()})
	st1, id1 := s.open()
	st2, id2 := s.open()
	st3, id3 := s.open()
	s.detach(st3, id3)
	_ = s.peer(id1).SendText("bye")

	ctx, cancel := context.WithTimeout(s.ctx, waitTimeout)
	defer cancel()
	if err := s.h.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	got := map[string]handler.CloseDetails{}
	for range 3 {
		c := ssetest.Recv(t, rec.closes, "Close hook")
		got[c.peer] = c.d
	}
	for _, id := range []string{id1, id2, id3} {
		if got[id].Code != handler.CloseGoingAway {
			t.Errorf("peer %s closed with %+v, want 1001", id, got[id])
		}
	}
	if n := s.peerCount(); n != 0 {
		t.Fatalf("%d peers left", n)
	}
	// Streams end without a close event (clients reconnect elsewhere); what
	// was queued is written first.
	rest := st1.ev.Rest(t)
	if len(rest) != 1 || rest[0].Data != "bye" || rest[0].ID != eid(id1, 1) {
		t.Fatalf("stream 1 ended with %+v, want only \"bye\"", rest)
	}
	st2.ev.End(t)

	// Stream requests now get an empty stream telling them to retry.
	for _, hdr := range [][]string{nil, {"Last-Event-ID", eid(id1, 1)}, {"Last-Event-ID", "garbage"}} {
		st := s.get(hdr...)
		if st.resp.StatusCode != http.StatusOK || st.resp.Header.Get("Content-Type") != "text/event-stream" {
			t.Fatalf("GET %q during shutdown: %d %q", hdr, st.resp.StatusCode, st.resp.Header.Get("Content-Type"))
		}
		if got := st.resp.Header.Get("X-Crossws-Id"); got != "" {
			t.Fatalf("GET during shutdown: X-Crossws-Id %q", got)
		}
		var retries []string
		for _, it := range st.ev.Rest(t) {
			switch it.Kind {
			case ssetest.ItemEvent:
				t.Fatalf("GET during shutdown: event %+v", it)
			case ssetest.ItemRetry:
				retries = append(retries, it.Text)
			}
		}
		if len(retries) != 1 || retries[0] != "1000" {
			t.Fatalf("GET during shutdown: retry fields %q, want [1000]", retries)
		}
	}
	if n := s.peerCount(); n != 0 {
		t.Fatalf("%d peers opened during shutdown", n)
	}
}

// After Shutdown the handler still answers POSTs (http.Server.Shutdown comes
// later); a message for a peer that is gone is the client's problem (400) or
// a temporary one (503), never an internal error.
func TestPostAfterShutdown(t *testing.T) {
	t.Parallel()
	s := newServer(t, handler.Config{})
	_, id := s.open()
	ctx, cancel := context.WithTimeout(s.ctx, waitTimeout)
	defer cancel()
	if err := s.h.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	for _, hdr := range [][]string{nil, {"Content-Type", "application/octet-stream"}} {
		for _, target := range []string{id, engine.NewID()} {
			code, body := s.post(target, unsized("x"), hdr...)
			if !(code == http.StatusBadRequest && body == "invalid peer id") &&
				!(code == http.StatusServiceUnavailable && body == "shutting down") {
				t.Errorf("POST %q after shutdown: %d %q, want 400 \"invalid peer id\" or 503", hdr, code, body)
			}
		}
	}
}
