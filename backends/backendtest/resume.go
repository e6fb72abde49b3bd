package backendtest

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ssebridge/ssebridge/backends"
)

// The tests in this file cover what resuming a session on another node
// needs: positions, marks, replay, session records and claims. Positions
// are opaque, so they are checked through Replay and equality only.

// replay returns the data of the publications Replay yields.
func replay(t *testing.T, n backends.Node, topic string, after, until backends.Position) []string {
	t.Helper()
	var out []string
	err := n.Replay(context.Background(), topic, after, until, func(p backends.Publication) {
		if p.Topic != topic || p.Mark != 0 || p.Position == "" {
			t.Errorf("replayed %+v: want topic %q, mark 0, a position", p, topic)
		}
		out = append(out, string(p.Data))
	})
	if err != nil {
		t.Fatalf("Replay(%q, %q, %q): %v", topic, after, until, err)
	}
	return out
}

func data(pubs []backends.Publication) []string {
	out := make([]string, len(pubs))
	for i, p := range pubs {
		out[i] = string(p.Data)
	}
	return out
}

// testMarks: a node numbers what it broadcasts 1, 2, 3… across topics, and
// the publications of a topic have distinct positions.
func testMarks(t *testing.T, b backends.Backend) {
	a, ra := attach(t, b)
	c, rc := attach(t, b)
	subscribe(t, a, "m1")
	subscribe(t, a, "m2")
	subscribe(t, c, "m2")
	for i := range 6 {
		publish(t, c, backends.Publication{Topic: fmt.Sprintf("m%d", i%2+1), Data: fmt.Append(nil, i)})
	}
	got := ra.WaitPublications(t, 6)
	seen := map[string]bool{} // positions are unique within a topic
	for i, p := range got {
		if p.Mark != uint64(i+1) {
			t.Fatalf("node A: publication %d has mark %d, want %d (marks: 1, 2, 3… in Broadcast order)", i, p.Mark, i+1)
		}
		if key := p.Topic + " " + string(p.Position); p.Position == "" || seen[key] {
			t.Fatalf("publication %d: position %q empty or repeated in topic %s", i, p.Position, p.Topic)
		} else {
			seen[key] = true
		}
	}
	for i, p := range rc.WaitPublications(t, 3) {
		if p.Mark != uint64(i+1) {
			t.Fatalf("node C: publication %d has mark %d, want %d (each node counts its own)", i, p.Mark, i+1)
		}
	}
}

// testSubscribeStart: Subscribe returns the position after which the node
// gets publications; Replay from it up to the last one yields exactly those.
func testSubscribeStart(t *testing.T, b backends.Backend) {
	a, ra := attach(t, b)
	c, rc := attach(t, b)
	subscribe(t, c, "s")
	publish(t, c, backends.Publication{Topic: "s", Data: []byte("before")})
	rc.WaitPublications(t, 1)
	start := subscribe(t, a, "s")
	if again := subscribe(t, a, "s"); again != start {
		t.Fatalf("second Subscribe = %q, want %q (nothing was broadcast since)", again, start)
	}
	publish(t, c, backends.Publication{Topic: "s", Data: []byte("after1")})
	publish(t, c, backends.Publication{Topic: "s", Data: []byte("after2")})
	got := ra.WaitPublications(t, 2)
	if d := data(got); !slices.Equal(d, []string{"after1", "after2"}) {
		t.Fatalf("node subscribed late got %q", d)
	}
	if d := replay(t, a, "s", start, got[1].Position); !slices.Equal(d, []string{"after1", "after2"}) {
		t.Fatalf("Replay from the Subscribe position = %q, want after1 after2", d)
	}
	if again := subscribe(t, a, "s"); again != got[1].Position {
		t.Fatalf("Subscribe after two broadcasts = %q, want the last position %q", again, got[1].Position)
	}
}

// testReplayRange: Replay's bounds are (after, until].
func testReplayRange(t *testing.T, b backends.Backend) {
	a, ra := attach(t, b)
	start := subscribe(t, a, "r")
	for i := range 4 {
		publish(t, a, backends.Publication{Topic: "r", Namespace: "/x", Exclude: "someone", Data: fmt.Append(nil, "p", i)})
	}
	got := ra.WaitPublications(t, 4)
	cases := []struct {
		after, until backends.Position
		want         []string
	}{
		{start, got[3].Position, []string{"p0", "p1", "p2", "p3"}},
		{got[0].Position, got[2].Position, []string{"p1", "p2"}},
		{got[2].Position, got[2].Position, nil},
		{got[3].Position, got[1].Position, nil},
	}
	for _, c := range cases {
		if d := replay(t, a, "r", c.after, c.until); !slices.Equal(d, c.want) {
			t.Errorf("Replay(%q, %q) = %q, want %q", c.after, c.until, d, c.want)
		}
	}
	err := a.Replay(context.Background(), "r", got[0].Position, got[1].Position, func(p backends.Publication) {
		if p.Namespace != "/x" || p.Exclude != "someone" || p.Position != got[1].Position {
			t.Errorf("replayed %+v: fields differ from the broadcast %+v", p, got[1])
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if d := replay(t, a, "never-published", "", ""); d != nil {
		t.Errorf("Replay of an unknown topic = %q, want nothing", d)
	}
}

// testSessionRecord: only the owner changes a record; topics go into it.
func testSessionRecord(t *testing.T, b backends.Backend) {
	a, ra := attach(t, b)
	c, _ := attach(t, b)
	ctx := context.Background()
	register(t, a, ra, "rec")
	if err := a.RegisterSession(ctx, "rec", backends.SessionInfo{}); err == nil {
		t.Fatal("registering an existing session succeeded")
	}
	if err := c.RegisterSession(ctx, "rec", backends.SessionInfo{}); err == nil {
		t.Fatal("another node registered an existing session")
	}
	p := subscribe(t, a, "rt")
	if err := a.SetSessionTopic(ctx, "rec", "rt", p); err != nil {
		t.Fatalf("SetSessionTopic: %v", err)
	}
	if err := c.SetSessionTopic(ctx, "rec", "rt", p); !errors.Is(err, backends.ErrMoved) {
		t.Fatalf("SetSessionTopic by a node that does not own the session = %v, want ErrMoved", err)
	}
	if err := c.SetSessionTopic(ctx, "nobody", "rt", p); !errors.Is(err, backends.ErrUnknownSession) {
		t.Fatalf("SetSessionTopic of an unknown session = %v, want ErrUnknownSession", err)
	}
	if err := c.RemoveSession(ctx, "rec"); !errors.Is(err, backends.ErrMoved) {
		t.Fatalf("RemoveSession by a node that does not own the session = %v, want ErrMoved", err)
	}
	if owner, err := c.Owner(ctx, "rec"); err != nil || owner != a.ID() {
		t.Fatalf("after a foreign RemoveSession: Owner = %q, %v; want %q", owner, err, a.ID())
	}
	if err := a.RemoveSessionTopic(ctx, "rec", "rt"); err != nil {
		t.Fatalf("RemoveSessionTopic: %v", err)
	}
	s, err := c.Claim(ctx, "rec", backends.Cursor{})
	if err != nil {
		t.Fatalf("Claim: %v", err)
	}
	if s.Namespace != "/ns" || len(s.Topics) != 0 {
		t.Fatalf("claimed %+v, want namespace /ns and no topics", s)
	}
}

// testClaimAtBase: a client that got nothing past the record's base seq is
// where the record says; the claim moves the session and releases it on
// the old owner.
func testClaimAtBase(t *testing.T, b backends.Backend) {
	a, ra := attach(t, b)
	c, rc := attach(t, b)
	ctx := context.Background()
	register(t, a, ra, "s1")
	pa := subscribe(t, a, "x")
	if err := a.SetSessionTopic(ctx, "s1", "x", pa); err != nil {
		t.Fatal(err)
	}
	publish(t, a, backends.Publication{Topic: "x", Data: []byte("x1")})
	ra.WaitPublications(t, 1)
	s, err := c.Claim(ctx, "s1", backends.Cursor{Seq: 0, Mark: 0})
	if err != nil {
		t.Fatalf("Claim: %v", err)
	}
	if want := map[string]backends.Position{"x": pa}; !maps.Equal(s.Topics, want) {
		t.Fatalf("claimed topics %v, want %v", s.Topics, want)
	}
	ra.WaitReleased(t, "s1")
	if owner, err := a.Owner(ctx, "s1"); err != nil || owner != c.ID() {
		t.Fatalf("Owner after claim = %q, %v; want %q", owner, err, c.ID())
	}
	// The new base is the claim's seq: a later claim at the same seq gets
	// the same positions; one below it is behind the record.
	rc.Accept("s1")
	s2, err := a.Claim(ctx, "s1", backends.Cursor{Seq: 0})
	if err != nil || !maps.Equal(s2.Topics, s.Topics) {
		t.Fatalf("second claim = %+v, %v; want %v", s2, err, s.Topics)
	}
	rc.WaitReleased(t, "s1")
}

// testClaimWithMarks: a client past the base is placed, per topic, just
// before the first publication its node had not delivered to it.
func testClaimWithMarks(t *testing.T, b backends.Backend) {
	a, ra := attach(t, b)
	c, _ := attach(t, b)
	ctx := context.Background()
	register(t, a, ra, "s1")
	for _, topic := range []string{"x", "y", "z"} {
		if err := a.SetSessionTopic(ctx, "s1", topic, subscribe(t, a, topic)); err != nil {
			t.Fatal(err)
		}
	}
	// Marks on A: 1 x1, 2 y1, 3 x2, 4 y2. z never gets anything. One at a
	// time: only the order within a topic is guaranteed, and a backend may
	// read different topics concurrently.
	for i, p := range []string{"x1", "y1", "x2", "y2"} {
		publish(t, c, backends.Publication{Topic: p[:1], Data: []byte(p)})
		ra.WaitPublications(t, i+1)
	}
	got := ra.WaitPublications(t, 4)
	last := map[string]backends.Position{"x": got[2].Position, "y": got[3].Position}
	// The client received frames up to seq 7, the last of which carried
	// mark 2: it has x1 and y1, not x2 or y2.
	s, err := c.Claim(ctx, "s1", backends.Cursor{Seq: 7, Mark: 2})
	if err != nil {
		t.Fatalf("Claim: %v", err)
	}
	if len(s.Topics) != 3 {
		t.Fatalf("claimed topics %v, want x, y, z", s.Topics)
	}
	for topic, want := range map[string][]string{"x": {"x2"}, "y": {"y2"}} {
		if d := replay(t, c, topic, s.Topics[topic], last[topic]); !slices.Equal(d, want) {
			t.Errorf("topic %s: missed %q, want %q", topic, d, want)
		}
	}
	// Claimed again at the new base: same positions. Past the base with
	// mark 0 (the client got frames, but no live publication, from the
	// new owner): same positions too.
	if s0, err := a.Claim(ctx, "s1", backends.Cursor{Seq: 8, Mark: 0}); err != nil || !maps.Equal(s0.Topics, s.Topics) {
		t.Fatalf("claim past the base with mark 0 = %+v, %v; want %v", s0, err, s.Topics)
	}
	s2, err := a.Claim(ctx, "s1", backends.Cursor{Seq: 8, Mark: 99})
	if err != nil || !maps.Equal(s2.Topics, s.Topics) {
		t.Fatalf("claim at the new base = %+v, %v; want %v", s2, err, s.Topics)
	}
	// The client had everything A delivered: nothing is missed.
	register(t, a, ra, "s2")
	for _, topic := range []string{"x", "y"} {
		if err := a.SetSessionTopic(ctx, "s2", topic, ""); err != nil {
			t.Fatal(err)
		}
	}
	s3, err := c.Claim(ctx, "s2", backends.Cursor{Seq: 9, Mark: 4})
	if err != nil {
		t.Fatal(err)
	}
	for topic, p := range last {
		if d := replay(t, c, topic, s3.Topics[topic], p); d != nil {
			t.Errorf("topic %s: replayed %q to a client that had everything", topic, d)
		}
	}
}

func testClaimRefusals(t *testing.T, b backends.Backend) {
	a, ra := attach(t, b)
	c, _ := attach(t, b)
	ctx := context.Background()
	if _, err := c.Claim(ctx, "nobody", backends.Cursor{Seq: 3}); !errors.Is(err, backends.ErrUnknownSession) {
		t.Fatalf("Claim of an unknown session = %v, want ErrUnknownSession", err)
	}
	register(t, a, ra, "s1")
	if _, err := c.Claim(ctx, "s1", backends.Cursor{Seq: 5}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Claim(ctx, "s1", backends.Cursor{Seq: 4}); !errors.Is(err, backends.ErrGap) {
		t.Fatalf("Claim behind the record's base = %v, want ErrGap", err)
	}
	if owner, _ := a.Owner(ctx, "s1"); owner != c.ID() {
		t.Fatalf("a refused claim moved the session to %q", owner)
	}
}

// testClaimedRoutes: once claimed, messages reach the new owner.
func testClaimedRoutes(t *testing.T, b backends.Backend) {
	a, ra := attach(t, b)
	c, rc := attach(t, b)
	ctx := context.Background()
	register(t, a, ra, "s1")
	rc.Accept("s1")
	if _, err := c.Claim(ctx, "s1", backends.Cursor{}); err != nil {
		t.Fatal(err)
	}
	ra.WaitReleased(t, "s1")
	if err := a.Route(ctx, "s1", []byte("after claim")); err != nil {
		t.Fatalf("Route after claim: %v", err)
	}
	if got := rc.WaitUpstream(t, 1); got[0] != (Upstream{"s1", "after claim"}) {
		t.Fatalf("new owner got %+v", got)
	}
	if err := c.RemoveSession(ctx, "s1"); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(Timeout)
	for {
		_, err := a.Owner(ctx, "s1")
		if errors.Is(err, backends.ErrUnknownSession) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Owner after the new owner removed the session: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// join calls Join for one topic and returns the publications replayed and
// the position joined gave.
func join(t *testing.T, n backends.Node, session, topic string, after backends.Position) ([]backends.Publication, backends.Position) {
	t.Helper()
	got, last := joinAll(t, n, session, map[string]backends.Position{topic: after})
	return got, last[topic]
}

// joinAll calls Join and returns the publications replayed and the
// positions joined gave.
func joinAll(t *testing.T, n backends.Node, session string, topics map[string]backends.Position) ([]backends.Publication, map[string]backends.Position) {
	t.Helper()
	var got []backends.Publication
	last := map[string]backends.Position{}
	err := n.Join(context.Background(), session, topics,
		func(p backends.Publication) {
			if len(last) > 0 {
				t.Error("replay called after joined")
			}
			p.Data = slices.Clone(p.Data)
			got = append(got, p)
		},
		func(topic string, l backends.Position) { last[topic] = l })
	if err != nil {
		t.Fatalf("Join(%s, %v): %v", session, topics, err)
	}
	if len(last) != len(topics) {
		t.Fatalf("Join called joined for %v, want every topic of %v", last, topics)
	}
	return got, last
}

// takeOver registers session on a with topic from its subscription start,
// publishes texts on topic (through c), lets c claim the session at seq 0 and
// join the topic, and returns what c replayed.
func takeOver(t *testing.T, a, c backends.Node, ra *Recorder, session, topic string, texts ...string) []backends.Publication {
	t.Helper()
	ctx := context.Background()
	register(t, a, ra, session)
	if err := a.SetSessionTopic(ctx, session, topic, subscribe(t, a, topic)); err != nil {
		t.Fatal(err)
	}
	_, before := ra.Counts()
	for _, text := range texts {
		publish(t, c, backends.Publication{Topic: topic, Data: []byte(text)})
	}
	ra.WaitPublications(t, before+len(texts))
	s, err := c.Claim(ctx, session, backends.Cursor{})
	if err != nil {
		t.Fatal(err)
	}
	got, _ := join(t, c, session, topic, s.Topics[topic])
	return got
}

// testJoin: Join subscribes the node, replays what the session missed with
// new marks of the node, then hands over to live broadcasts.
func testJoin(t *testing.T, b backends.Backend) {
	a, ra := attach(t, b)
	c, rc := attach(t, b)
	got := takeOver(t, a, c, ra, "s1", "t", "x1", "x2", "x3")
	if d := data(got); !slices.Equal(d, []string{"x1", "x2", "x3"}) {
		t.Fatalf("Join replayed %q, want x1 x2 x3", d)
	}
	for i, p := range got {
		if p.Mark != uint64(i+1) || p.Topic != "t" || p.Position == "" {
			t.Fatalf("replayed %+v: want topic t, a position and mark %d (C's first marks)", p, i+1)
		}
	}
	// C now broadcasts the topic, after the replayed marks.
	publish(t, a, backends.Publication{Topic: "t", Data: []byte("x4")})
	live := rc.WaitPublications(t, 1)[0]
	if string(live.Data) != "x4" || live.Mark != 4 {
		t.Fatalf("live after Join: %+v, want x4 with mark 4", live)
	}
	// Joining again from the last position replays nothing.
	if again, last := join(t, c, "s1", "t", live.Position); len(again) != 0 || last != live.Position {
		t.Fatalf("Join from the last position: replayed %d, joined at %q; want none at %q", len(again), last, live.Position)
	}
}

// testClaimFromReplayMark: a client that got part of a replay is placed by
// the marks the replaying node gave it.
func testClaimFromReplayMark(t *testing.T, b backends.Backend) {
	a, ra := attach(t, b)
	c, _ := attach(t, b)
	d, _ := attach(t, b)
	got := takeOver(t, a, c, ra, "s1", "t", "x1", "x2", "x3")
	// The client received x1 (C's mark 1) as frame 5, then dropped.
	s, err := d.Claim(context.Background(), "s1", backends.Cursor{Seq: 5, Mark: got[0].Mark})
	if err != nil {
		t.Fatal(err)
	}
	if d := replay(t, d, "t", s.Topics["t"], got[2].Position); !slices.Equal(d, []string{"x2", "x3"}) {
		t.Fatalf("after x1 of a replay, the claim places the client before %q, want x2 x3", d)
	}
}

// testReplayMarksPerSession: marks a node gave to a replay for one session
// do not move another session's claim.
func testReplayMarksPerSession(t *testing.T, b backends.Backend) {
	a, ra := attach(t, b)
	c, rc := attach(t, b)
	d, _ := attach(t, b)
	ctx := context.Background()
	takeOver(t, a, c, ra, "s1", "t", "x1", "x2") // C: marks 1, 2 for s1
	// s2 lives on C and receives x3 live (mark 3).
	register(t, c, rc, "s2")
	if err := c.SetSessionTopic(ctx, "s2", "t", subscribe(t, c, "t")); err != nil {
		t.Fatal(err)
	}
	publish(t, c, backends.Publication{Topic: "t", Data: []byte("x3")})
	x3 := rc.WaitPublications(t, 1)[0]
	// Another takeover onto C replays x1..x3 for s3 (marks 4, 5, 6).
	ra2 := NewRecorder()
	a2, err := b.Attach(ctx, ra2)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = a2.Close() })
	register(t, a2, ra2, "s3")
	if err := a2.SetSessionTopic(ctx, "s3", "t", ""); err != nil {
		t.Fatal(err)
	}
	s3, err := c.Claim(ctx, "s3", backends.Cursor{})
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := join(t, c, "s3", "t", s3.Topics["t"]); len(got) != 3 {
		t.Fatalf("replay for s3: %d publications, want 3", len(got))
	}
	publish(t, c, backends.Publication{Topic: "t", Data: []byte("x4")})
	x4 := rc.WaitPublications(t, 2)[1]
	// s2's client had x3 (mark 3), not x4: only x4 is missed.
	s2, err := d.Claim(ctx, "s2", backends.Cursor{Seq: 9, Mark: x3.Mark})
	if err != nil {
		t.Fatal(err)
	}
	if got := replay(t, d, "t", s2.Topics["t"], x4.Position); !slices.Equal(got, []string{"x4"}) {
		t.Fatalf("s2 missed %q, want only x4: another session's replay marks moved its position", got)
	}
}

// testJoinAllTopics: one Join replays every topic of the session before any
// live publication, so a client inside the replay of one topic has none of
// the other's.
func testJoinAllTopics(t *testing.T, b backends.Backend) {
	a, ra := attach(t, b)
	c, rc := attach(t, b)
	d, _ := attach(t, b)
	ctx := context.Background()
	register(t, a, ra, "s1")
	for _, topic := range []string{"t1", "t2"} {
		if err := a.SetSessionTopic(ctx, "s1", topic, subscribe(t, a, topic)); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range []string{"t1 a1", "t2 b1", "t1 a2", "t2 b2"} {
		topic, text, _ := strings.Cut(p, " ")
		publish(t, c, backends.Publication{Topic: topic, Data: []byte(text)})
	}
	ra.WaitPublications(t, 4)
	s, err := c.Claim(ctx, "s1", backends.Cursor{})
	if err != nil {
		t.Fatal(err)
	}
	got, last := joinAll(t, c, "s1", s.Topics)
	if d := data(got); !slices.Equal(d, []string{"a1", "a2", "b1", "b2"}) {
		t.Fatalf("Join replayed %q, want a1 a2 (t1) then b1 b2 (t2)", d)
	}
	for i, p := range got {
		if p.Mark != uint64(i+1) {
			t.Fatalf("replayed %q has mark %d, want %d", p.Data, p.Mark, i+1)
		}
	}
	publish(t, a, backends.Publication{Topic: "t2", Data: []byte("b3")})
	if live := rc.WaitPublications(t, 1)[0]; live.Mark != 5 {
		t.Fatalf("first live publication after Join has mark %d, want 5 (after every replayed one)", live.Mark)
	}
	// The client got a1 and a2 (t1's replay), then dropped: t2 is where
	// the record had it, so b1 b2 are still to come.
	s2, err := d.Claim(ctx, "s1", backends.Cursor{Seq: 3, Mark: got[1].Mark})
	if err != nil {
		t.Fatal(err)
	}
	if r := replay(t, d, "t2", s2.Topics["t2"], last["t2"]); !slices.Equal(r, []string{"b1", "b2"}) {
		t.Fatalf("t2 after t1's replay: missed %q, want b1 b2", r)
	}
	if r := replay(t, d, "t1", s2.Topics["t1"], last["t1"]); r != nil {
		t.Fatalf("t1 after its whole replay: missed %q, want nothing", r)
	}
}
