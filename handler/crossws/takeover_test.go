package crossws_test

import (
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/ssebridge/ssebridge/backends/memory"
	"github.com/ssebridge/ssebridge/handler"
	"github.com/ssebridge/ssebridge/internal/ssetest"
)

// Resume on another node: two Handlers share one memory backend, as
// instances behind a load balancer share Redis. The client's reconnection
// lands on the other node, which claims the session and replays what the
// client missed from the topic history.

// subscribingHooks subscribes every new peer to topic.
func subscribingHooks(r *recorder, topic string) handler.Hooks {
	h := r.hooks()
	h.Open = func(p *handler.Peer) {
		if err := p.Subscribe(topic); err != nil {
			panic(err)
		}
		r.opens <- p
	}
	return h
}

// expectMessage reads the next event, checks it is message data with an id
// of frame seq of peer id, and returns its id.
func expectMessage(t *testing.T, ev *ssetest.Reader, data, id string, seq int) string {
	t.Helper()
	it := ev.Event(t)
	if it.Type != "message" || it.Data != data || !ssetest.SameID(it.ID, eid(id, seq)) {
		t.Fatalf("event %+v, want message %q with id %s[.mark]", it, data, eid(id, seq))
	}
	return it.ID
}

// waitDetached waits until peer id of s has no stream.
func waitDetached(t *testing.T, s *server, id string) {
	t.Helper()
	ssetest.Eventually(t, "peer detached", func() bool {
		p, ok := s.h.Peer(id)
		return ok && !p.Connected()
	})
}

func TestTakeoverReplaysMissedPublications(t *testing.T) {
	t.Parallel()
	b := memory.New()
	recA, recB := newRecorder(), newRecorder()
	a := newServer(t, handler.Config{Backend: b, Hooks: subscribingHooks(recA, "news")})
	o := newServer(t, handler.Config{Backend: b, Hooks: subscribingHooks(recB, "news")})

	st, id := a.open()
	ssetest.Recv(t, recA.opens, "Open on A")
	var last string
	for i := 1; i <= 3; i++ {
		if err := a.h.Publish("news", "p"+itoa(i)); err != nil {
			t.Fatal(err)
		}
		last = expectMessage(t, st.ev, "p"+itoa(i), id, i)
	}
	if !strings.HasPrefix(last, eid(id, 3)+".") {
		t.Fatalf("last id %q carries no mark", last)
	}
	old := a.peer(id)
	st.close()
	waitDetached(t, a, id)
	for i := 4; i <= 6; i++ { // published on the other node meanwhile
		if err := o.h.Publish("news", "p"+itoa(i)); err != nil {
			t.Fatal(err)
		}
	}
	// A direct message to the peer on A while its client is away: the
	// client resumes on the other node, so it is not delivered (the
	// documented Send guarantee).
	if err := old.SendText("direct"); err != nil {
		t.Fatal(err)
	}

	st2 := o.get("Last-Event-ID", last)
	if got := st2.resp.Header.Get("X-Crossws-Id"); st2.resp.StatusCode != http.StatusOK || got != id {
		t.Fatalf("resume on the other node: %d peer %q, want 200 and %q", st2.resp.StatusCode, got, id)
	}
	st2.ev.Expect(t, "crossws-id", id, last)
	if p := ssetest.Recv(t, recB.resumes, "Resume on B"); p.ID() != id {
		t.Fatalf("Resume hook for %s", p.ID())
	}
	for i := 4; i <= 6; i++ {
		st2.ev.Expect(t, "message", "p"+itoa(i), eid(id, i)) // replayed: no mark
	}
	if err := a.h.Publish("news", "p7"); err != nil {
		t.Fatal(err)
	}
	expectMessage(t, st2.ev, "p7", id, 7)

	// A let the peer go without ending it: no Close hook, Send fails.
	ssetest.Eventually(t, "A releases the peer", func() bool { _, ok := a.h.Peer(id); return !ok })
	if err := old.SendText("late"); !errors.Is(err, handler.ErrClosed) {
		t.Fatalf("Send on the released peer = %v, want ErrClosed", err)
	}
	select {
	case c := <-recA.closes:
		t.Fatalf("Close hook ran on the node that let the peer go: %+v", c)
	case <-recB.opens:
		t.Fatal("Open hook ran for a resumed peer")
	case <-time.After(50 * time.Millisecond):
	}
	// Upstream messages reach the new owner through either node.
	for _, s := range []*server{a, o} {
		if code, body := s.post(id, strings.NewReader("hi via "+s.host())); code != http.StatusOK {
			t.Fatalf("POST: %d %s", code, body)
		}
		recB.msg(t, id, "hi via "+s.host())
	}
	if got := o.peer(id).Topics(); len(got) != 1 || got[0] != "news" {
		t.Fatalf("topics on the new node %v, want [news]", got)
	}
}

func TestTakeoverBackAndForth(t *testing.T) {
	t.Parallel()
	b := memory.New()
	recA, recB := newRecorder(), newRecorder()
	nodes := []*server{
		newServer(t, handler.Config{Backend: b, Hooks: subscribingHooks(recA, "t")}),
		newServer(t, handler.Config{Backend: b, Hooks: subscribingHooks(recB, "t")}),
	}
	st, id := nodes[0].open()
	last, seq, n := eid(id, 0), 0, 0
	for round := range 6 {
		// Publications the client gets, then some it misses.
		for range 2 {
			n++
			seq++
			if err := nodes[n%2].h.Publish("t", "m"+itoa(n)); err != nil {
				t.Fatal(err)
			}
			last = expectMessage(t, st.ev, "m"+itoa(n), id, seq)
		}
		st.close()
		waitDetached(t, nodes[round%2], id)
		for range 2 {
			n++
			if err := nodes[n%2].h.Publish("t", "m"+itoa(n)); err != nil {
				t.Fatal(err)
			}
		}
		next := nodes[(round+1)%2]
		st = next.get("Last-Event-ID", last)
		if got := st.resp.Header.Get("X-Crossws-Id"); got != id {
			t.Fatalf("round %d: resumed as %q, want %q", round, got, id)
		}
		st.ev.Expect(t, "crossws-id", id, last)
		for k := n - 1; k <= n; k++ {
			seq++
			last = expectMessage(t, st.ev, "m"+itoa(k), id, seq)
		}
	}
}

func TestTakeoverEndsTheOldStream(t *testing.T) {
	t.Parallel()
	b := memory.New()
	a := newServer(t, handler.Config{Backend: b})
	o := newServer(t, handler.Config{Backend: b})
	st, id := a.open()
	st2 := o.get("Last-Event-ID", eid(id, 0))
	st2.ev.Expect(t, "crossws-id", id, eid(id, 0))
	// The stream still open on A ends: the session lives on the other node.
	if rest := st.ev.Rest(t); len(rest) != 0 {
		t.Fatalf("old stream got %+v", rest)
	}
	if _, ok := a.h.Peer(id); ok {
		t.Fatal("A still holds the peer")
	}
}

func TestTakeoverBeyondHistoryGivesNewPeer(t *testing.T) {
	t.Parallel()
	b := memory.NewWithConfig(memory.Config{HistoryLength: 2})
	recA, recB := newRecorder(), newRecorder()
	a := newServer(t, handler.Config{Backend: b, Hooks: subscribingHooks(recA, "t")})
	o := newServer(t, handler.Config{Backend: b, Hooks: subscribingHooks(recB, "t")})
	st, id := a.open()
	st.close()
	waitDetached(t, a, id)
	for i := range 5 {
		if err := a.h.Publish("t", itoa(i)); err != nil {
			t.Fatal(err)
		}
	}
	st2 := o.get("Last-Event-ID", eid(id, 0))
	nid := st2.resp.Header.Get("X-Crossws-Id")
	if nid == id || nid == "" {
		t.Fatalf("resume past the history gave peer %q, want a new one", nid)
	}
	st2.ev.Expect(t, "crossws-id", nid, eid(nid, 0))
	if d := recB.closeOf(t, id); d.Code != handler.CloseAbnormal {
		t.Fatalf("the lost peer closed with %+v, want 1006", d)
	}
}
