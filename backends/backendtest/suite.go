// Package backendtest is the conformance suite every backends.Backend
// implementation must pass. A backend's tests call Run with a constructor:
//
//	func TestConformance(t *testing.T) {
//		backendtest.Run(t, func(t *testing.T) backends.Backend { return memory.New() })
//	}
//
// The suite needs nothing but the backend: it attaches nodes with recording
// receivers and checks routing, ordering, fan-out, namespaces, exclusion and
// cleanup; presence when the backend's nodes implement backends.Presence,
// and offsets, epochs and History when they implement backends.History
// (otherwise those tests are not run at all). Deliveries
// may be asynchronous; the suite waits for them (up to Timeout) and checks
// that nothing else arrives.
//
// Import direction: backendtest → backends (and testing); never imported by
// non-test code.
package backendtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/ssebridge/ssebridge/backends"
)

// Timeout bounds how long the suite waits for an asynchronous delivery.
var Timeout = 5 * time.Second

// quiet is how long the suite waits to be sure something does not arrive.
const quiet = 100 * time.Millisecond

// Run runs the conformance suite. newBackend returns a fresh backend, whose
// state no other test shares.
func Run(t *testing.T, newBackend func(t *testing.T) backends.Backend) {
	t.Helper()
	tests := []struct {
		name string
		fn   func(t *testing.T, b backends.Backend)
	}{
		{"NodeIDsAreUnique", testNodeIDs},
		{"RouteToOwner", testRouteToOwner},
		{"RouteKeepsOrder", testRouteOrder},
		{"RouteCopiesData", testRouteCopiesData},
		{"RouteUnknownSession", testRouteUnknown},
		{"RemoveSession", testRemoveSession},
		{"PublishReachesSubscribedNodes", testPublishFanOut},
		{"PublishCarriesFields", testPublishFields},
		{"PublishOrderPerTopic", testPublishOrder},
		{"UnsubscribeStopsDelivery", testUnsubscribe},
		{"SubscribeIsIdempotent", testSubscribeIdempotent},
		{"CloseForgetsNode", testClose},
		{"DeliverMayCallNode", testDeliverReentrant},
		{"MarksCountBroadcasts", testMarks},
		{"SubscribeReturnsStart", testSubscribeStart},
		{"ReplayRange", testReplayRange},
		{"SessionRecord", testSessionRecord},
		{"ClaimAtBase", testClaimAtBase},
		{"ClaimWithMarks", testClaimWithMarks},
		{"ClaimRefusals", testClaimRefusals},
		{"ClaimedSessionRoutes", testClaimedRoutes},
		{"JoinReplaysWithMarks", testJoin},
		{"ClaimFromReplayMark", testClaimFromReplayMark},
		{"ReplayMarksAreThatSessions", testReplayMarksPerSession},
		{"JoinAllTopicsBeforeLive", testJoinAllTopics},
	}
	if implementsPresence(t, newBackend) {
		tests = append(tests, presenceTests...)
	}
	if implementsHistory(t, newBackend) {
		tests = append(tests, historyTests...)
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.fn(t, newBackend(t))
		})
	}
}

// Recorder is a backends.Receiver that records what it is given.
type Recorder struct {
	// OnDeliver, when set, runs inside Deliver before it records the
	// message, as an application's Message hook would; set it before the
	// node receives anything.
	OnDeliver func(session string, data []byte)

	mu       sync.Mutex
	cond     *sync.Cond
	sessions map[string]bool // sessions Deliver accepts
	upstream []Upstream
	pubs     []backends.Publication
	released []string
	errs     []error
}

// Upstream is one recorded Deliver call.
type Upstream struct {
	Session string // the session the message was routed to
	Data    string // the message
}

// NewRecorder returns an empty Recorder.
func NewRecorder() *Recorder {
	r := &Recorder{sessions: make(map[string]bool)}
	r.cond = sync.NewCond(&r.mu)
	return r
}

// Accept makes Deliver accept messages for session.
func (r *Recorder) Accept(session string) {
	r.mu.Lock()
	r.sessions[session] = true
	r.mu.Unlock()
}

// Deliver implements backends.Receiver.
func (r *Recorder) Deliver(session string, data []byte) error {
	r.mu.Lock()
	known := r.sessions[session]
	r.mu.Unlock()
	if !known {
		return fmt.Errorf("recorder: %w", backends.ErrUnknownSession)
	}
	if r.OnDeliver != nil {
		r.OnDeliver(session, data)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.upstream = append(r.upstream, Upstream{Session: session, Data: string(data)})
	r.cond.Broadcast()
	return nil
}

// Broadcast implements backends.Receiver.
func (r *Recorder) Broadcast(p backends.Publication) {
	p.Data = bytes.Clone(p.Data)
	r.mu.Lock()
	r.pubs = append(r.pubs, p)
	r.cond.Broadcast()
	r.mu.Unlock()
}

// Release implements backends.Receiver: the session no longer reaches
// Deliver, and the release is recorded.
func (r *Recorder) Release(session string) {
	r.mu.Lock()
	delete(r.sessions, session)
	r.released = append(r.released, session)
	r.cond.Broadcast()
	r.mu.Unlock()
}

// Error implements backends.Receiver.
func (r *Recorder) Error(err error) {
	r.mu.Lock()
	r.errs = append(r.errs, err)
	r.cond.Broadcast()
	r.mu.Unlock()
}

// WaitReleased waits until session was released.
func (r *Recorder) WaitReleased(t testing.TB, session string) {
	t.Helper()
	r.wait(t, func() bool { return slices.Contains(r.released, session) }, "release of "+session)
}

// Errors returns the errors reported so far.
func (r *Recorder) Errors() []error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.errs)
}

// WaitUpstream waits until n upstream messages were delivered and returns
// them (all that arrived by then).
func (r *Recorder) WaitUpstream(t testing.TB, n int) []Upstream {
	t.Helper()
	r.wait(t, func() bool { return len(r.upstream) >= n }, fmt.Sprintf("%d upstream messages", n))
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.upstream)
}

// WaitPublications waits until n publications arrived and returns them.
func (r *Recorder) WaitPublications(t testing.TB, n int) []backends.Publication {
	t.Helper()
	r.wait(t, func() bool { return len(r.pubs) >= n }, fmt.Sprintf("%d publications", n))
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.pubs)
}

// Counts returns how many upstream messages and publications arrived so far.
func (r *Recorder) Counts() (upstream, pubs int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.upstream), len(r.pubs)
}

func (r *Recorder) wait(t testing.TB, done func() bool, what string) {
	t.Helper()
	timer := time.AfterFunc(Timeout, func() {
		r.mu.Lock()
		r.cond.Broadcast()
		r.mu.Unlock()
	})
	defer timer.Stop()
	deadline := time.Now().Add(Timeout)
	r.mu.Lock()
	defer r.mu.Unlock()
	for !done() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s (have %d upstream, %d publications)", Timeout, what, len(r.upstream), len(r.pubs))
		}
		r.cond.Wait()
	}
}

func attach(t *testing.T, b backends.Backend) (backends.Node, *Recorder) {
	t.Helper()
	r := NewRecorder()
	n, err := b.Attach(context.Background(), r)
	if err != nil {
		t.Fatalf("Attach: %v", err)
	}
	t.Cleanup(func() { _ = n.Close() })
	return n, r
}

func register(t *testing.T, n backends.Node, r *Recorder, id string) {
	t.Helper()
	r.Accept(id)
	if err := n.RegisterSession(context.Background(), id, backends.SessionInfo{Namespace: "/ns"}); err != nil {
		t.Fatalf("RegisterSession(%q): %v", id, err)
	}
}

func subscribe(t *testing.T, n backends.Node, topic string) backends.Position {
	t.Helper()
	p, err := n.Subscribe(context.Background(), topic)
	if err != nil {
		t.Fatalf("Subscribe(%q): %v", topic, err)
	}
	return p
}

func publish(t *testing.T, n backends.Node, p backends.Publication) {
	t.Helper()
	if err := n.Publish(context.Background(), p); err != nil {
		t.Fatalf("Publish(%q): %v", p.Topic, err)
	}
}

func testNodeIDs(t *testing.T, b backends.Backend) {
	a, _ := attach(t, b)
	c, _ := attach(t, b)
	if a.ID() == "" || a.ID() == c.ID() {
		t.Fatalf("node ids %q and %q: want distinct, non-empty", a.ID(), c.ID())
	}
}

func testRouteToOwner(t *testing.T, b backends.Backend) {
	a, ra := attach(t, b)
	c, rc := attach(t, b)
	register(t, a, ra, "sessionA")
	register(t, c, rc, "sessionC")
	ctx := context.Background()
	for _, via := range []backends.Node{a, c} {
		if owner, err := via.Owner(ctx, "sessionA"); err != nil || owner != a.ID() {
			t.Fatalf("Owner(sessionA) via %s = %q, %v; want %q", via.ID(), owner, err, a.ID())
		}
		if err := via.Route(ctx, "sessionA", []byte("to A via "+via.ID())); err != nil {
			t.Fatalf("Route via %s: %v", via.ID(), err)
		}
	}
	if err := a.Route(ctx, "sessionC", []byte("to C")); err != nil {
		t.Fatalf("Route to C: %v", err)
	}
	gotA := ra.WaitUpstream(t, 2)
	gotC := rc.WaitUpstream(t, 1)
	wantA := []Upstream{{"sessionA", "to A via " + a.ID()}, {"sessionA", "to A via " + c.ID()}}
	if !slices.Equal(gotA, wantA) {
		t.Errorf("node A got %v, want %v", gotA, wantA)
	}
	if want := []Upstream{{"sessionC", "to C"}}; !slices.Equal(gotC, want) {
		t.Errorf("node C got %v, want %v", gotC, want)
	}
	time.Sleep(quiet)
	if n, _ := ra.Counts(); n != 2 {
		t.Errorf("node A got %d messages, want exactly 2", n)
	}
}

func testRouteOrder(t *testing.T, b backends.Backend) {
	a, ra := attach(t, b)
	c, _ := attach(t, b)
	register(t, a, ra, "s1")
	const n = 200
	for i := range n {
		if err := c.Route(context.Background(), "s1", []byte(fmt.Sprint(i))); err != nil {
			t.Fatalf("Route %d: %v", i, err)
		}
	}
	got := ra.WaitUpstream(t, n)
	for i, u := range got {
		if u.Data != fmt.Sprint(i) {
			t.Fatalf("message %d is %q: order not kept", i, u.Data)
		}
	}
}

func testRouteCopiesData(t *testing.T, b backends.Backend) {
	a, ra := attach(t, b)
	c, _ := attach(t, b)
	register(t, a, ra, "s1")
	buf := []byte("original")
	if err := c.Route(context.Background(), "s1", buf); err != nil {
		t.Fatal(err)
	}
	copy(buf, "CHANGED!")
	if got := ra.WaitUpstream(t, 1); got[0].Data != "original" {
		t.Fatalf("delivered %q after the caller reused its buffer, want %q", got[0].Data, "original")
	}
}

func testRouteUnknown(t *testing.T, b backends.Backend) {
	a, _ := attach(t, b)
	ctx := context.Background()
	err := a.Route(ctx, "nobody", []byte("x"))
	if !errors.Is(err, backends.ErrUnknownSession) {
		t.Fatalf("Route to an unknown session = %v, want ErrUnknownSession", err)
	}
	if owner, err := a.Owner(ctx, "nobody"); !errors.Is(err, backends.ErrUnknownSession) {
		t.Fatalf("Owner(nobody) = %q, %v; want ErrUnknownSession", owner, err)
	}
}

func testRemoveSession(t *testing.T, b backends.Backend) {
	a, ra := attach(t, b)
	c, _ := attach(t, b)
	register(t, a, ra, "s1")
	ctx := context.Background()
	if err := a.RemoveSession(ctx, "s1"); err != nil {
		t.Fatal(err)
	}
	if err := a.RemoveSession(ctx, "s1"); err != nil {
		t.Fatalf("second RemoveSession: %v, want nil", err)
	}
	if err := c.Route(ctx, "s1", []byte("late")); !errors.Is(err, backends.ErrUnknownSession) {
		t.Fatalf("Route after RemoveSession = %v, want ErrUnknownSession", err)
	}
	if _, err := c.Owner(ctx, "s1"); !errors.Is(err, backends.ErrUnknownSession) {
		t.Fatalf("Owner after RemoveSession: %v, want ErrUnknownSession", err)
	}
}

func testPublishFanOut(t *testing.T, b backends.Backend) {
	a, ra := attach(t, b)
	c, rc := attach(t, b)
	d, rd := attach(t, b)
	subscribe(t, a, "news")
	subscribe(t, c, "news")
	subscribe(t, d, "other")
	publish(t, d, backends.Publication{Topic: "news", Data: []byte("hello")})
	for name, r := range map[string]*Recorder{"A": ra, "C": rc} {
		got := r.WaitPublications(t, 1)
		if got[0].Topic != "news" || string(got[0].Data) != "hello" {
			t.Errorf("node %s got %+v", name, got[0])
		}
	}
	time.Sleep(quiet)
	if _, n := rd.Counts(); n != 0 {
		t.Errorf("a node not subscribed to the topic got %d publications", n)
	}
	if _, n := ra.Counts(); n != 1 {
		t.Errorf("node A got %d publications, want exactly 1", n)
	}
}

func testPublishFields(t *testing.T, b backends.Backend) {
	a, ra := attach(t, b)
	subscribe(t, a, "t")
	data := []byte("line1\nline2\r\n\x00ünï")
	want := backends.Publication{Topic: "t", Namespace: "/room", Exclude: "peer1", Data: data}
	publish(t, a, want)
	copy(data, "XXXX") // the backend must not keep the caller's buffer
	got := ra.WaitPublications(t, 1)[0]
	if got.Topic != want.Topic || got.Namespace != want.Namespace || got.Exclude != want.Exclude ||
		string(got.Data) != "line1\nline2\r\n\x00ünï" {
		t.Fatalf("got %+v (data %q), want topic t, namespace /room, exclude peer1, the original data", got, got.Data)
	}
}

func testPublishOrder(t *testing.T, b backends.Backend) {
	var nodes []backends.Node
	var recs []*Recorder
	for range 3 {
		n, r := attach(t, b)
		subscribe(t, n, "ordered")
		nodes, recs = append(nodes, n), append(recs, r)
	}
	const perNode = 50
	var wg sync.WaitGroup
	for i, n := range nodes {
		wg.Go(func() {
			for j := range perNode {
				if err := n.Publish(context.Background(), backends.Publication{Topic: "ordered", Data: fmt.Appendf(nil, "%d-%d", i, j)}); err != nil {
					t.Errorf("Publish: %v", err)
					return
				}
			}
		})
	}
	wg.Wait()
	total := perNode * len(nodes)
	first := recs[0].WaitPublications(t, total)
	for k, r := range recs {
		got := r.WaitPublications(t, total)
		for i := range got {
			if !bytes.Equal(got[i].Data, first[i].Data) {
				t.Fatalf("node %d saw %q at position %d, node 0 saw %q: nodes disagree on the order", k, got[i].Data, i, first[i].Data)
			}
		}
	}
	// Each publisher's own messages arrive in the order it published them.
	last := map[byte]int{}
	for _, p := range first {
		var i, j int
		_, _ = fmt.Sscanf(string(p.Data), "%d-%d", &i, &j)
		if prev, ok := last[byte(i)]; ok && j != prev+1 {
			t.Fatalf("publisher %d: %d after %d", i, j, prev)
		}
		last[byte(i)] = j
	}
}

func testUnsubscribe(t *testing.T, b backends.Backend) {
	a, ra := attach(t, b)
	c, _ := attach(t, b)
	subscribe(t, a, "t")
	publish(t, c, backends.Publication{Topic: "t", Data: []byte("1")})
	ra.WaitPublications(t, 1)
	if err := a.Unsubscribe(context.Background(), "t"); err != nil {
		t.Fatal(err)
	}
	if err := a.Unsubscribe(context.Background(), "t"); err != nil {
		t.Fatalf("second Unsubscribe: %v, want nil", err)
	}
	publish(t, c, backends.Publication{Topic: "t", Data: []byte("2")})
	time.Sleep(quiet)
	if _, n := ra.Counts(); n != 1 {
		t.Fatalf("got %d publications, want 1: delivery went on after Unsubscribe", n)
	}
}

func testSubscribeIdempotent(t *testing.T, b backends.Backend) {
	a, ra := attach(t, b)
	subscribe(t, a, "t")
	subscribe(t, a, "t")
	publish(t, a, backends.Publication{Topic: "t", Data: []byte("once")})
	ra.WaitPublications(t, 1)
	time.Sleep(quiet)
	if _, n := ra.Counts(); n != 1 {
		t.Fatalf("got %d copies of one publication after subscribing twice, want 1", n)
	}
}

func testClose(t *testing.T, b backends.Backend) {
	a, ra := attach(t, b)
	c, _ := attach(t, b)
	register(t, a, ra, "s1")
	subscribe(t, a, "t")
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := c.Route(ctx, "s1", []byte("x")); !errors.Is(err, backends.ErrUnknownSession) {
		t.Fatalf("Route to a closed node's session = %v, want ErrUnknownSession", err)
	}
	publish(t, c, backends.Publication{Topic: "t", Data: []byte("x")})
	time.Sleep(quiet)
	if u, p := ra.Counts(); u != 0 || p != 0 {
		t.Fatalf("closed node still received %d messages, %d publications", u, p)
	}
	if err := a.Close(); err != nil {
		t.Fatalf("second Close: %v, want nil", err)
	}
}

// testDeliverReentrant: a Message hook (inside Deliver) publishes, subscribes
// and routes through its own node, as applications do; the backend must not
// deadlock and the calls must work.
func testDeliverReentrant(t *testing.T, b backends.Backend) {
	a, ra := attach(t, b)
	c, rc := attach(t, b)
	register(t, c, rc, "other")
	subscribe(t, c, "echo")
	ctx := context.Background()
	hookErrs := make(chan error, 3)
	ra.OnDeliver = func(session string, data []byte) {
		_, err := a.Subscribe(ctx, "joined")
		hookErrs <- err
		hookErrs <- a.Publish(ctx, backends.Publication{Topic: "echo", Data: data})
		hookErrs <- a.Route(ctx, "other", data)
	}
	register(t, a, ra, "s1")
	done := make(chan error, 1)
	go func() { done <- c.Route(ctx, "s1", []byte("ping")) }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Route: %v", err)
		}
	case <-time.After(Timeout):
		t.Fatal("Route did not return: the backend deadlocks when Deliver calls back into the node")
	}
	for range 3 {
		select {
		case err := <-hookErrs:
			if err != nil {
				t.Fatalf("a node call from inside Deliver failed: %v", err)
			}
		case <-time.After(Timeout):
			t.Fatal("the hook's node calls did not return")
		}
	}
	if p := rc.WaitPublications(t, 1)[0]; string(p.Data) != "ping" {
		t.Errorf("publication from the hook: %q", p.Data)
	}
	if u := rc.WaitUpstream(t, 1)[0]; u != (Upstream{"other", "ping"}) {
		t.Errorf("route from the hook: %+v", u)
	}
}
