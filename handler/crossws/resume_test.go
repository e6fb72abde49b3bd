package crossws_test

import (
	"math/rand/v2"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/ssebridge/ssebridge/handler"
	"github.com/ssebridge/ssebridge/handler/engine"
	"github.com/ssebridge/ssebridge/internal/ssetest"
)

// detach drops a stream and waits until its peer noticed.
func (s *server) detach(st *stream, id string) *handler.Peer {
	s.t.Helper()
	p := s.peer(id)
	st.close()
	ssetest.Eventually(s.t, "peer "+id+" to detach", func() bool { return !p.Connected() })
	return p
}

func TestResumeReplaysMissedFrames(t *testing.T) {
	t.Parallel()
	rec := newRecorder()
	var opens atomic.Int32
	hooks := rec.hooks()
	hooks.Open = func(p *handler.Peer) {
		opens.Add(1)
		_ = p.Subscribe("room")
		for _, m := range []string{"m1", "m2", "m3", "m4", "m5"} {
			_ = p.SendText(m)
		}
		rec.opens <- p
	}
	hooks.Resume = func(p *handler.Peer) {
		_ = p.SendText("welcome back")
		rec.resumes <- p
	}
	s := newServer(t, handler.Config{Hooks: hooks})
	st, id := s.open()
	ssetest.Recv(t, rec.opens, "Open")
	for i := 1; i <= 5; i++ {
		st.ev.Expect(t, "message", "m"+itoa(i), eid(id, i))
	}
	p := s.detach(st, id)

	// Sent and published while detached: kept for the client.
	if err := p.SendText("m6"); err != nil {
		t.Fatal(err)
	}
	if err := s.h.Publish("room", "m7"); err != nil {
		t.Fatal(err)
	}

	st2 := s.get("Last-Event-ID", eid(id, 2))
	if st2.resp.StatusCode != http.StatusOK || st2.resp.Header.Get("X-Crossws-Id") != id {
		t.Fatalf("resume: %d, X-Crossws-Id %q, want 200 %s", st2.resp.StatusCode, st2.resp.Header.Get("X-Crossws-Id"), id)
	}
	// The hello keeps the client's position.
	st2.ev.Expect(t, "crossws-id", id, eid(id, 2))
	for i := 3; i <= 7; i++ {
		st2.ev.Expect(t, "message", "m"+itoa(i), eid(id, i))
	}
	st2.ev.Expect(t, "message", "welcome back", eid(id, 8))
	if rp := ssetest.Recv(t, rec.resumes, "Resume"); rp != p {
		t.Fatalf("Resume hook for %s", rp.ID())
	}
	if n := opens.Load(); n != 1 {
		t.Fatalf("Open ran %d times", n)
	}
	if p.Resumes() != 1 || !p.Connected() {
		t.Fatalf("Resumes %d connected %v, want 1 true", p.Resumes(), p.Connected())
	}
	// The resumed stream goes on.
	_ = p.SendText("live")
	st2.ev.Expect(t, "message", "live", eid(id, 9))
	if code, _ := s.post(id, strings.NewReader("up")); code != http.StatusOK {
		t.Fatal("POST after resume")
	}
	rec.msg(t, id, "up")

	// Resuming from the hello's own id (nothing received yet) works too,
	// and so does a resume of everything.
	st3 := s.get("Last-Event-ID", eid(id, 0))
	if st3.resp.Header.Get("X-Crossws-Id") != id {
		t.Fatalf("resume from .0 gave peer %s", st3.resp.Header.Get("X-Crossws-Id"))
	}
	st3.ev.Expect(t, "crossws-id", id, eid(id, 0))
	for i := 1; i <= 7; i++ {
		st3.ev.Expect(t, "message", "m"+itoa(i), eid(id, i))
	}
	if p.Resumes() != 2 {
		t.Fatalf("Resumes %d, want 2", p.Resumes())
	}
}

func TestResumeTakesOverOpenStream(t *testing.T) {
	t.Parallel()
	rec := newRecorder()
	s := newServer(t, handler.Config{Hooks: rec.hooks()})
	st, id := s.open()
	p := s.peer(id)
	_ = p.SendText("before")
	st.ev.Expect(t, "message", "before", eid(id, 1))

	st2 := s.get("Last-Event-ID", eid(id, 1))
	if st2.resp.Header.Get("X-Crossws-Id") != id {
		t.Fatalf("takeover gave peer %q", st2.resp.Header.Get("X-Crossws-Id"))
	}
	st2.ev.Expect(t, "crossws-id", id, eid(id, 1))
	ssetest.Recv(t, rec.resumes, "Resume")
	// The old response ends, without a close event.
	st.ev.End(t)

	_ = p.SendText("after")
	st2.ev.Expect(t, "message", "after", eid(id, 2))
	if p.Resumes() != 1 || !p.Connected() || p.Closed() {
		t.Fatalf("Resumes %d connected %v closed %v", p.Resumes(), p.Connected(), p.Closed())
	}
	select {
	case c := <-rec.closes:
		t.Fatalf("Close hook ran: %+v", c)
	default:
	}
}

func TestResumeQueuedFramesAreNotTrimmed(t *testing.T) {
	t.Parallel()
	s := newServer(t, handler.Config{ReplaySize: 100})
	st, id := s.open()
	p := s.detach(st, id)
	// Queued while detached, far more than ReplaySize: never written, so
	// all kept.
	msg := strings.Repeat("q", 60)
	for range 20 {
		if err := p.SendText(msg); err != nil {
			t.Fatal(err)
		}
	}
	st2 := s.get("Last-Event-ID", eid(id, 0))
	if st2.resp.Header.Get("X-Crossws-Id") != id {
		t.Fatalf("resume gave peer %q", st2.resp.Header.Get("X-Crossws-Id"))
	}
	st2.ev.Event(t)
	for i := 1; i <= 20; i++ {
		st2.ev.Expect(t, "message", msg, eid(id, i))
	}
}

func TestResumeBeyondReplayBudget(t *testing.T) {
	t.Parallel()
	rec := newRecorder()
	s := newServer(t, handler.Config{Hooks: rec.hooks(), ReplaySize: 200})
	st, id := s.open()
	ssetest.Recv(t, rec.opens, "Open")
	p := s.peer(id)
	msg := strings.Repeat("r", 50)
	for i := 1; i <= 20; i++ {
		_ = p.SendText(msg)
		st.ev.Expect(t, "message", msg, eid(id, i))
	}
	// Frame 21 written means frames up to 20 were accounted as written
	// (and the old ones trimmed) before it.
	_ = p.SendText("marker")
	st.ev.Expect(t, "message", "marker", eid(id, 21))
	s.detach(st, id)

	st2 := s.get("Last-Event-ID", eid(id, 1))
	if st2.resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d", st2.resp.StatusCode)
	}
	nid := st2.resp.Header.Get("X-Crossws-Id")
	if nid == id || !engine.ValidID(nid) {
		t.Fatalf("resume beyond the replay budget gave peer %q, want a new one", nid)
	}
	st2.ev.Expect(t, "crossws-id", nid, eid(nid, 0))
	if d := rec.closeOf(t, id); d.Code != handler.CloseAbnormal {
		t.Fatalf("old peer closed with %+v, want 1006", d)
	}
	if _, ok := s.h.Peer(id); ok {
		t.Fatal("old peer still open")
	}
	if np := ssetest.Recv(t, rec.opens, "Open of the new peer"); np.ID() != nid {
		t.Fatalf("Open for %s", np.ID())
	}
	// The old peer was lost, not closed by the application: no tombstone,
	// so its id leads to a new peer again.
	st3 := s.get("Last-Event-ID", eid(id, 21))
	if got := st3.resp.Header.Get("X-Crossws-Id"); got == id || got == nid || st3.resp.StatusCode != http.StatusOK {
		t.Fatalf("resume of the expired peer: %d peer %q", st3.resp.StatusCode, got)
	}
}

func TestResumeGarbageLastEventID(t *testing.T) {
	t.Parallel()
	rec := newRecorder()
	s := newServer(t, handler.Config{Hooks: rec.hooks()})
	st, id := s.open()
	p := s.peer(id)
	_ = p.SendText("one")
	st.ev.Expect(t, "message", "one", eid(id, 1))

	rng := rand.New(rand.NewPCG(1, 2))
	randomString := func(n int) string {
		const chars = "abcXYZ019-_.:/ é\u00ff"
		var b strings.Builder
		for range n {
			b.WriteByte(chars[rng.IntN(len(chars))])
		}
		return b.String()
	}
	noncanonical := id[:21] + "B"
	garbage := []string{
		"garbage",
		".",
		"..",
		".1",
		id,
		id + ".",
		id + "..",
		id + ".-1",
		id + ".+1",
		id + ".00",
		id + ".01",
		id + ". 1",
		id + ".1.0",
		id + ".1.01",
		id + ".1.1.1",
		id + ".1.",
		id + ".1.-1",
		id + ".1.18446744073709551616",
		id + ".1e1",
		id + ".0x1",
		id + ".99999999999999999999999",
		id + ".18446744073709551616", // 2^64
		id + ".CLOSED",
		id + ".closed.",
		id + ".closedx",
		noncanonical + ".1",
		strings.ToLower(id) + ".1",
		"." + id + ".1",
		"x" + id + ".1",
		id[:21] + ".1",
		strings.Repeat("A", 1<<10),
		strings.Repeat(id+".1", 50),
	}
	for range 20 {
		garbage = append(garbage, randomString(1+rng.IntN(60)))
	}
	seen := map[string]bool{id: true}
	for _, g := range garbage {
		if strings.ToLower(id) == id && g == strings.ToLower(id)+".1" {
			continue // the id happened to be lower case already
		}
		st2 := s.get("Last-Event-ID", g)
		nid := st2.resp.Header.Get("X-Crossws-Id")
		if st2.resp.StatusCode != http.StatusOK || seen[nid] || !engine.ValidID(nid) {
			t.Fatalf("Last-Event-ID %q: %d peer %q, want 200 and a new peer", short(g), st2.resp.StatusCode, nid)
		}
		seen[nid] = true
		st2.ev.Expect(t, "crossws-id", nid, eid(nid, 0))
		st2.close()
	}
	// The peer whose id was abused is untouched.
	if p.Closed() || !p.Connected() || p.Resumes() != 0 {
		t.Fatalf("abused peer: closed %v connected %v resumes %d", p.Closed(), p.Connected(), p.Resumes())
	}
	_ = p.SendText("two")
	st.ev.Expect(t, "message", "two", eid(id, 2))

	// A sequence number never sent cannot be resumed: a new peer.
	st3 := s.get("Last-Event-ID", eid(id, 1000))
	if nid := st3.resp.Header.Get("X-Crossws-Id"); nid == id || seen[nid] || !engine.ValidID(nid) {
		t.Fatalf("seq never sent: peer %q, want a new one", nid)
	}
}

func TestResumeClosedMarker(t *testing.T) {
	t.Parallel()
	s := newServer(t, handler.Config{AllowedOrigins: []string{"https://app.example.com"}})
	_, id := s.open()
	for _, last := range []string{id + ".closed", engine.NewID() + ".closed"} {
		resp, body := s.do(http.MethodGet, nil, "Accept", "text/event-stream", "Last-Event-ID", last, "Origin", "https://app.example.com")
		if resp.StatusCode != http.StatusNoContent || body != "" {
			t.Fatalf("Last-Event-ID %s: %d %q, want 204", last, resp.StatusCode, body)
		}
		if got := resp.Header.Get("Access-Control-Allow-Origin"); got != "https://app.example.com" {
			t.Errorf("204: Access-Control-Allow-Origin %q", got)
		}
	}
	if n := s.peerCount(); n != 1 {
		t.Fatalf("%d peers, want 1", n)
	}
}

func TestResumeOfPeerClosedWhileAway(t *testing.T) {
	t.Parallel()
	rec := newRecorder()
	s := newServer(t, handler.Config{Hooks: rec.hooks()})
	st, id := s.open()
	p := s.detach(st, id)
	if err := p.Close(4002, `quoted "reason" é`); err != nil {
		t.Fatal(err)
	}
	if d := rec.closeOf(t, id); d.Code != 4002 || d.Reason != `quoted "reason" é` {
		t.Fatalf("Close hook %+v", d)
	}

	st2 := s.get("Last-Event-ID", eid(id, 0))
	if st2.resp.StatusCode != http.StatusOK || st2.resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("reconnection: %d %q", st2.resp.StatusCode, st2.resp.Header.Get("Content-Type"))
	}
	if got := st2.resp.Header.Get("X-Crossws-Id"); got != "" {
		t.Fatalf("reconnection to a closed peer got X-Crossws-Id %q", got)
	}
	items := st2.ev.Rest(t)
	if len(items) != 1 || items[0].Kind != ssetest.ItemEvent {
		t.Fatalf("got %+v, want only the close event", items)
	}
	ev := items[0]
	if ev.Type != "close" || ev.ID != id+".closed" || !ev.OwnID || ev.Data != `{"code":4002,"reason":"quoted \"reason\" é"}` {
		t.Fatalf("close event %+v", ev)
	}
	if n := s.peerCount(); n != 0 {
		t.Fatalf("%d peers opened", n)
	}
	// The client then presents the close event's id: 204.
	resp, _ := s.do(http.MethodGet, nil, "Accept", "text/event-stream", "Last-Event-ID", ev.ID)
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("after the close event: %d, want 204", resp.StatusCode)
	}
}

// A request the Upgrade hook refuses must not change anything.
func TestRejectedResumeLeavesPeerAlone(t *testing.T) {
	t.Parallel()
	rec := newRecorder()
	hooks := rec.hooks()
	hooks.Upgrade = func(u *handler.Upgrade) error {
		if u.Request.Header("Authorization") != "Bearer ok" {
			return handler.Reject(http.StatusUnauthorized, "who are you")
		}
		return nil
	}
	s := newServer(t, handler.Config{Hooks: hooks})
	st, id := s.open("Authorization", "Bearer ok")
	p := s.peer(id)
	_ = p.SendText("one")
	st.ev.Expect(t, "message", "one", eid(id, 1))

	for _, last := range []string{eid(id, 1), eid(id, 0), eid(id, 1000)} {
		resp, b := s.do(http.MethodGet, nil, "Accept", "text/event-stream", "Last-Event-ID", last)
		if resp.StatusCode != http.StatusUnauthorized || b != "who are you" {
			t.Fatalf("unauthorised resume from %s: %d %q", last, resp.StatusCode, b)
		}
		if p.Closed() || !p.Connected() || p.Resumes() != 0 {
			t.Fatalf("after a rejected resume from %s: closed %v connected %v resumes %d", last, p.Closed(), p.Connected(), p.Resumes())
		}
	}
	_ = p.SendText("two")
	st.ev.Expect(t, "message", "two", eid(id, 2))
}
