package crossws_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ssebridge/ssebridge/backends"
	"github.com/ssebridge/ssebridge/backends/memory"
	"github.com/ssebridge/ssebridge/handler"
	"github.com/ssebridge/ssebridge/internal/ssetest"
)

// A client that received only part of what a node replayed when it took the
// session over, and then resumes on a third node, gets the rest exactly
// once: replayed publications carry marks of the node that replayed them
// (Node.Join), so the claim knows how far the client got.
func TestSecondTakeoverDuringReplay(t *testing.T) {
	t.Parallel()
	b := memory.New()
	recA, recB, recC := newRecorder(), newRecorder(), newRecorder()
	a := newServer(t, handler.Config{Backend: b, Hooks: subscribingHooks(recA, "t")})
	o := newServer(t, handler.Config{Backend: b, Hooks: subscribingHooks(recB, "t")})
	c := newServer(t, handler.Config{Backend: b, Hooks: subscribingHooks(recC, "t")})

	st, id := a.open()
	ssetest.Recv(t, recA.opens, "Open on A")
	st.close()
	waitDetached(t, a, id)
	for i := 1; i <= 3; i++ {
		if err := a.h.Publish("t", "p"+itoa(i)); err != nil {
			t.Fatal(err)
		}
	}
	// Resume on B: p1..p3 are replayed. The client reads p1 and p2.
	st2 := o.get("Last-Event-ID", eid(id, 0))
	st2.ev.Expect(t, "crossws-id", id, eid(id, 0))
	expectMessage(t, st2.ev, "p1", id, 1)
	last := expectMessage(t, st2.ev, "p2", id, 2)
	st2.close()
	waitDetached(t, o, id)

	// Resume on C with the id of p2: the next publication must be p3.
	st3 := c.get("Last-Event-ID", last)
	st3.ev.Expect(t, "crossws-id", id, last)
	it := st3.ev.Event(t)
	if it.Data != "p3" {
		t.Fatalf("after resuming at %s (p2) on a third node the client got %q (id %s), want p3: duplicate delivery", last, it.Data, it.ID)
	}
}

// A Last-Event-ID whose peer exists nowhere is an open for the Upgrade
// hook: a hook that sets the namespace and context values for UpgradeOpen
// only (as ExampleHooks_upgrade does) must see it as one, or the new peer
// would get neither.
func TestUnknownLastEventIDIsOpenForTheHook(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var kinds []handler.UpgradeKind
	rec := newRecorder()
	hooks := rec.hooks()
	hooks.Upgrade = func(u *handler.Upgrade) error {
		mu.Lock()
		kinds = append(kinds, u.Kind)
		mu.Unlock()
		if u.Kind == handler.UpgradeOpen {
			u.Namespace = "/team/ada"
		}
		return nil
	}
	s := newServer(t, handler.Config{Hooks: hooks, ReconnectGrace: 10 * time.Millisecond})
	st, id := s.open()
	ssetest.Recv(t, rec.opens, "Open")
	st.close()
	rec.closeOf(t, id) // expired after the grace period, no tombstone

	st2 := s.get("Last-Event-ID", eid(id, 0))
	nid := st2.resp.Header.Get("X-Crossws-Id")
	if nid == id || nid == "" {
		t.Fatalf("got peer %q", nid)
	}
	p := ssetest.Recv(t, rec.opens, "Open of the new peer")
	mu.Lock()
	k := kinds[len(kinds)-1]
	mu.Unlock()
	if k != handler.UpgradeOpen || p.Namespace() != "/team/ada" {
		t.Fatalf("new peer opened after an Upgrade hook of kind %v; namespace %q, want open and /team/ada", k, p.Namespace())
	}
}

// flakyBackend wraps a backend; the nodes it attaches fail their first
// failReplays Join calls with ErrUnavailable, as Redis does during a blip.
type flakyBackend struct {
	backends.Backend
	failReplays atomic.Int32
}

func (b *flakyBackend) Attach(ctx context.Context, r backends.Receiver) (backends.Node, error) {
	n, err := b.Backend.Attach(ctx, r)
	if err != nil {
		return nil, err
	}
	return &flakyNode{Node: n, b: b}, nil
}

type flakyNode struct {
	backends.Node
	b *flakyBackend
}

func (n *flakyNode) Join(ctx context.Context, session string, topics map[string]backends.Position, replay func(backends.Publication), joined func(string, backends.Position)) error {
	if n.b.failReplays.Add(-1) >= 0 {
		return fmt.Errorf("flaky: %w", backends.ErrUnavailable)
	}
	return n.Node.Join(ctx, session, topics, replay, joined)
}

// A backend error during a takeover (Redis blips) answers "retry later" and
// leaves the session claimed: the client's retry resumes the same peer, and
// no Close hook runs.
func TestTransientReplayFailureKeepsTheSession(t *testing.T) {
	t.Parallel()
	fb := &flakyBackend{Backend: memory.New()}
	recA, recB := newRecorder(), newRecorder()
	a := newServer(t, handler.Config{Backend: fb, Hooks: subscribingHooks(recA, "t")})
	o := newServer(t, handler.Config{Backend: fb, Hooks: subscribingHooks(recB, "t")})
	st, id := a.open()
	ssetest.Recv(t, recA.opens, "Open on A")
	if err := a.h.Publish("t", "p1"); err != nil {
		t.Fatal(err)
	}
	last := expectMessage(t, st.ev, "p1", id, 1)
	st.close()
	waitDetached(t, a, id)
	if err := a.h.Publish("t", "p2"); err != nil {
		t.Fatal(err)
	}
	fb.failReplays.Store(1)
	st2 := o.get("Last-Event-ID", last)
	if got := st2.resp.Header.Get("X-Crossws-Id"); got != "" {
		t.Fatalf("resume during the blip gave peer %q, want a retry-later answer", got)
	}
	st2.ev.Rest(t)
	// The client retries, as told.
	st3 := o.get("Last-Event-ID", last)
	if got := st3.resp.Header.Get("X-Crossws-Id"); got != id {
		select {
		case c := <-recB.closes:
			t.Fatalf("retry after a transient error gave peer %q, want %q; the session was ended on B (Close hook %+v)", got, id, c)
		default:
			t.Fatalf("retry after a transient error gave peer %q, want %q", got, id)
		}
	}
}

// A peer with two topics, taken over while both had publications, then
// taken over again from inside the first topic's replay: nothing of the
// second topic is lost, nothing is repeated.
func TestSecondTakeoverWithTwoTopics(t *testing.T) {
	t.Parallel()
	b := memory.New()
	hooks := func(r *recorder) handler.Hooks {
		h := r.hooks()
		h.Open = func(p *handler.Peer) {
			for _, topic := range []string{"t1", "t2"} {
				if err := p.Subscribe(topic); err != nil {
					panic(err)
				}
			}
			r.opens <- p
		}
		return h
	}
	nodes := []*server{
		newServer(t, handler.Config{Backend: b, Hooks: hooks(newRecorder())}),
		newServer(t, handler.Config{Backend: b, Hooks: hooks(newRecorder())}),
		newServer(t, handler.Config{Backend: b, Hooks: hooks(newRecorder())}),
	}
	st, id := nodes[0].open()
	st.close()
	waitDetached(t, nodes[0], id)
	for _, m := range []string{"t1 a1", "t2 b1", "t1 a2", "t2 b2"} {
		topic, text, _ := strings.Cut(m, " ")
		if err := nodes[0].h.Publish(topic, text); err != nil {
			t.Fatal(err)
		}
	}
	// On node 1: t1's replay (a1, a2) comes first; the client reads a1
	// and drops.
	st = nodes[1].get("Last-Event-ID", eid(id, 0))
	st.ev.Expect(t, "crossws-id", id, eid(id, 0))
	last := expectMessage(t, st.ev, "a1", id, 1)
	st.close()
	waitDetached(t, nodes[1], id)
	if err := nodes[1].h.Publish("t2", "b3"); err != nil {
		t.Fatal(err)
	}
	// On node 2: a2, then all of t2, each once.
	st = nodes[2].get("Last-Event-ID", last)
	st.ev.Expect(t, "crossws-id", id, last)
	var got []string
	for range 4 {
		got = append(got, st.ev.Event(t).Data)
	}
	if want := []string{"a2", "b1", "b2", "b3"}; !slices.Equal(got, want) {
		t.Fatalf("after the second takeover the client got %q, want %q", got, want)
	}
}
