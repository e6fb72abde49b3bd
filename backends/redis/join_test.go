package redis

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/ssebridge/ssebridge/backends"
	"github.com/ssebridge/ssebridge/internal/redistest"
)

// joinResult is what one Join call gave.
type joinResult struct {
	pubs   []backends.Publication
	last   backends.Position            // of the topic, for a one-topic Join
	lasts  map[string]backends.Position // joined's position per topic
	joined bool                         // joined was called for every topic
	calls  int                          // replay and joined calls
	late   bool                         // replay was called after joined
}

// joinTopics calls Join with topics.
func joinTopics(n *node, session string, topics map[string]backends.Position) (joinResult, error) {
	r := joinResult{lasts: make(map[string]backends.Position)}
	err := n.Join(bg, session, topics,
		func(p backends.Publication) {
			r.calls++
			r.late = r.late || len(r.lasts) > 0
			p.Data = slices.Clone(p.Data)
			r.pubs = append(r.pubs, p)
		},
		func(topic string, l backends.Position) { r.calls++; r.lasts[topic] = l })
	r.joined = len(r.lasts) == len(topics)
	return r, err
}

func joinSession(n *node, session, topic string, after backends.Position) (joinResult, error) {
	r, err := joinTopics(n, session, map[string]backends.Position{topic: after})
	r.last = r.lasts[topic]
	return r, err
}

func mustJoin(t *testing.T, n *node, session, topic string, after backends.Position) joinResult {
	t.Helper()
	r, err := joinSession(n, session, topic, after)
	if err != nil {
		t.Fatalf("Join(%s, %s, %q): %v", session, topic, after, err)
	}
	if !r.joined || r.late {
		t.Fatalf("Join(%s, %s): joined called: %v, replay called after joined: %v", session, topic, r.joined, r.late)
	}
	return r
}

func pubData(pubs []backends.Publication) string {
	var out []string
	for _, p := range pubs {
		out = append(out, string(p.Data))
	}
	return strings.Join(out, ",")
}

// logEntries returns the node's mark log.
func logEntries(t *testing.T, c goredis.UniversalClient, n *node) []goredis.XMessage {
	t.Helper()
	msgs, err := c.XRange(bg, n.log, "-", "+").Result()
	if err != nil {
		t.Fatal(err)
	}
	return msgs
}

// onServerAndCluster runs scenario on a private server and on a 3-master
// cluster, in parallel subtests.
func onServerAndCluster(t *testing.T, scenario func(t *testing.T, c goredis.UniversalClient, prefix string)) {
	t.Run("Server", func(t *testing.T) {
		t.Parallel()
		s, c := startServer(t)
		scenario(t, c, s.Prefix())
	})
	t.Run("Cluster", func(t *testing.T) {
		t.Parallel()
		cl := redistest.StartCluster(t)
		scenario(t, cl.Client(t), cl.Prefix())
	})
}

// TestJoin runs the Join scenarios on one server and on a cluster.
func TestJoin(t *testing.T) {
	t.Parallel()
	onServerAndCluster(t, testJoinScenario)
}

// testJoinScenario: A owns s1 on topic t and dies; B takes s1 over and
// joins t (which B did not subscribe); the client gets x1 of the replay
// and drops; C claims s1 from B's replay mark and is placed exactly. s2,
// living on B, is not moved earlier by the replay marks B gives s3.
func testJoinScenario(t *testing.T, c goredis.UniversalClient, prefix string) {
	b := newBackend(t, testConfig(c, prefix))
	a, ra := attachNode(t, b)
	bn, rb := attachNode(t, b)
	cn, rc := attachNode(t, b)
	mustRegister(t, a, ra, "s1")
	start := mustSubscribe(t, a, "t")
	if err := a.SetSessionTopic(bg, "s1", "t", start); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"x1", "x2", "x3"} {
		if err := cn.Publish(bg, backends.Publication{Topic: "t", Namespace: "/n", Exclude: "ex", Data: []byte(d)}); err != nil {
			t.Fatal(err)
		}
	}
	xs := ra.WaitPublications(t, 3)

	rb.Accept("s1")
	sess, err := bn.Claim(bg, "s1", backends.Cursor{Seq: 0})
	if err != nil {
		t.Fatal(err)
	}
	r := mustJoin(t, bn, "s1", "t", sess.Topics["t"])
	if got := pubData(r.pubs); got != "x1,x2,x3" {
		t.Fatalf("Join replayed %q, want x1,x2,x3", got)
	}
	if r.last != xs[2].Position {
		t.Fatalf("joined at %q, want the last position %q", r.last, xs[2].Position)
	}
	for i, p := range r.pubs {
		if p.Mark != uint64(i+1) || p.Topic != "t" || p.Namespace != "/n" || p.Exclude != "ex" || p.Position != xs[i].Position {
			t.Fatalf("replayed %+v, want mark %d and the fields of %+v", p, i+1, xs[i])
		}
	}
	bn.subMu.Lock()
	subscribed := bn.subs["t"] != nil
	bn.subMu.Unlock()
	if !subscribed {
		t.Fatal("Join did not subscribe the node to the topic")
	}
	// The marks are in B's log, tagged with the session; cur is the
	// subscription's position, not a replayed one.
	entries := logEntries(t, c, bn)
	if len(entries) != 3 {
		t.Fatalf("B's log holds %d entries, want 3", len(entries))
	}
	for i, e := range entries {
		if e.ID != fmt.Sprintf("%d-1", i+1) || e.Values["s"] != "s1" || e.Values["t"] != "t" || e.Values["p"] != string(xs[i].Position) {
			t.Fatalf("log entry %d: %+v", i, e)
		}
	}
	if cur := c.HGet(bg, bn.cur, "t").Val(); cur != string(xs[2].Position) {
		t.Fatalf("B's cur of t = %q, want %q", cur, xs[2].Position)
	}

	// The client got x1 (B's mark 1) and dropped: C places it before x2.
	rc.Accept("s1")
	s1, err := cn.Claim(bg, "s1", backends.Cursor{Seq: 5, Mark: r.pubs[0].Mark})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := replayAll(cn, "t", s1.Topics["t"], xs[2].Position); err != nil || strings.Join(got, ",") != "x2,x3" {
		t.Fatalf("after x1 of the replay, C replays %q, %v; want x2,x3", got, err)
	}

	// s2 lives on B and gets x4 live (mark 4).
	mustRegister(t, bn, rb, "s2")
	if err := bn.SetSessionTopic(bg, "s2", "t", mustSubscribe(t, bn, "t")); err != nil {
		t.Fatal(err)
	}
	mustPublish(t, cn, "t", "x4")
	x4 := rb.WaitPublications(t, 1)[0]
	if x4.Mark != 4 {
		t.Fatalf("live after the replay: %+v, want mark 4", x4)
	}
	// s3, taken over from A by B, is replayed x1..x4 (marks 5..8).
	mustRegister(t, a, ra, "s3")
	if err := a.SetSessionTopic(bg, "s3", "t", start); err != nil {
		t.Fatal(err)
	}
	rb.Accept("s3")
	s3, err := bn.Claim(bg, "s3", backends.Cursor{})
	if err != nil {
		t.Fatal(err)
	}
	r3 := mustJoin(t, bn, "s3", "t", s3.Topics["t"])
	if got := pubData(r3.pubs); got != "x1,x2,x3,x4" || r3.pubs[0].Mark != 5 || r3.last != x4.Position {
		t.Fatalf("replay for s3: %q from mark %d, joined at %q", got, r3.pubs[0].Mark, r3.last)
	}
	mustPublish(t, cn, "t", "x5")
	x5 := rb.WaitPublications(t, 2)[1]
	if x5.Mark != 9 {
		t.Fatalf("x5: %+v, want mark 9", x5)
	}
	// s2's client had x4 (mark 4): s3's replay marks 5..8, of older
	// positions, do not move it earlier; it missed x5 only.
	rc.Accept("s2")
	s2, err := cn.Claim(bg, "s2", backends.Cursor{Seq: 9, Mark: x4.Mark})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := replayAll(cn, "t", s2.Topics["t"], x5.Position); err != nil || strings.Join(got, ",") != "x5" {
		t.Fatalf("s2 missed %q, %v; want x5", got, err)
	}
	// s3's client had x1, x2 of its replay (marks 5, 6): it missed x3..x5.
	rc.Accept("s3")
	s3c, err := cn.Claim(bg, "s3", backends.Cursor{Seq: 9, Mark: r3.pubs[1].Mark})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := replayAll(cn, "t", s3c.Topics["t"], x5.Position); err != nil || strings.Join(got, ",") != "x3,x4,x5" {
		t.Fatalf("s3 missed %q, %v; want x3,x4,x5", got, err)
	}

	// A gap: x1 is trimmed; a Join from before it calls nothing and gives
	// no mark.
	if err := c.XDel(bg, b.topicKey("t"), string(xs[0].Position)).Err(); err != nil {
		t.Fatal(err)
	}
	before := len(logEntries(t, c, cn))
	rg, err := joinSession(cn, "s1", "t", start)
	if !errors.Is(err, backends.ErrGap) || rg.calls != 0 {
		t.Fatalf("Join from a trimmed position = %v after %d calls, want ErrGap and none", err, rg.calls)
	}
	if l := len(logEntries(t, c, cn)); l != before {
		t.Fatalf("a refused Join logged %d marks", l-before)
	}
	// From a position still covered: x2.. (C subscribed t meanwhile, its
	// cursor is x5).
	if r := mustJoin(t, cn, "s1", "t", xs[0].Position); pubData(r.pubs) != "x2,x3,x4,x5" || r.last != x5.Position {
		t.Fatalf("Join from x1 = %q, joined at %q", pubData(r.pubs), r.last)
	}
}

// failMarks fails the marks script of Join calls while on is set; after
// set, it runs the script first (the reply is lost, not the write).
type failMarks struct {
	on, after atomic.Bool
	failed    atomic.Int64
}

func (h *failMarks) DialHook(next goredis.DialHook) goredis.DialHook { return next }

func (h *failMarks) ProcessHook(next goredis.ProcessHook) goredis.ProcessHook {
	return func(ctx context.Context, cmd goredis.Cmder) error {
		args := cmd.Args()
		if h.on.Load() && len(args) > 8 && (args[0] == "evalsha" || args[0] == "eval") &&
			(args[1] == scriptMarks.Hash() || args[1] == scriptSource("marks")) && args[8] != "" {
			h.failed.Add(1)
			if h.after.Load() {
				_ = next(ctx, cmd)
			}
			err := errors.New("injected: connection reset")
			cmd.SetErr(err)
			return err
		}
		return next(ctx, cmd)
	}
}

func (h *failMarks) ProcessPipelineHook(next goredis.ProcessPipelineHook) goredis.ProcessPipelineHook {
	return next
}

// TestJoinUnavailable: Join while Redis is down, or when only its marks
// cannot be written, fails with ErrUnavailable and calls nothing; the
// marks it meant to give are never reused (a lost reply may have logged
// them), and Join works once Redis is back.
func TestJoinUnavailable(t *testing.T) {
	t.Parallel()
	s, c := startServer(t)
	hook := &failMarks{}
	c.AddHook(hook)
	cfg := testConfig(c, s.Prefix())
	cfg.NodeTTL = 900 * time.Millisecond
	cfg.BlockTimeout = 300 * time.Millisecond
	b := newBackend(t, cfg)
	a, ra := attachNode(t, b)
	start := mustSubscribe(t, a, "t")
	mustPublish(t, a, "t", "x1")
	mustPublish(t, a, "t", "x2")
	ra.WaitPublications(t, 2) // marks 1, 2

	// The marks' write fails after it reached Redis (a lost reply).
	hook.on.Store(true)
	hook.after.Store(true)
	r, err := joinSession(a, "s1", "t", start)
	if !errors.Is(err, backends.ErrUnavailable) || r.calls != 0 || hook.failed.Load() != 1 {
		t.Fatalf("Join with a lost marks reply = %v after %d calls, want ErrUnavailable and none", err, r.calls)
	}
	// ... or before.
	hook.after.Store(false)
	r, err = joinSession(a, "s1", "t", start)
	if !errors.Is(err, backends.ErrUnavailable) || r.calls != 0 {
		t.Fatalf("Join with a failed marks write = %v after %d calls, want ErrUnavailable and none", err, r.calls)
	}
	hook.on.Store(false)
	// Marks 3, 4 (logged for s1) and 5, 6 (not logged) were skipped: the
	// next live broadcast gets mark 7, logged as a live one.
	mustPublish(t, a, "t", "x3")
	x3 := ra.WaitPublications(t, 3)[2]
	if x3.Mark != 7 {
		t.Fatalf("live after failed Joins: %+v, want mark 7", x3)
	}
	entries := logEntries(t, c, a)
	last := entries[len(entries)-1]
	if last.ID != "7-1" || last.Values["s"] != nil || last.Values["p"] != string(x3.Position) {
		t.Fatalf("log entry of x3: %+v", last)
	}
	if r := mustJoin(t, a, "s1", "t", start); pubData(r.pubs) != "x1,x2,x3" || r.pubs[0].Mark != 8 {
		t.Fatalf("Join after the failures: %q from mark %d", pubData(r.pubs), r.pubs[0].Mark)
	}

	// Redis is down.
	s.Kill(t)
	if r, err := joinSession(a, "s2", "t", start); !errors.Is(err, backends.ErrUnavailable) || r.calls != 0 {
		t.Fatalf("Join while Redis is down = %v after %d calls, want ErrUnavailable and none", err, r.calls)
	}
	if r, err := joinSession(a, "s2", "u", ""); !errors.Is(err, backends.ErrUnavailable) || r.calls != 0 {
		t.Fatalf("Join of a new topic while Redis is down = %v after %d calls, want ErrUnavailable and none", err, r.calls)
	}
	s.Restart(t)
	// Redis came back empty: t's history is gone (a gap for the old
	// positions); a new topic joins and replays.
	eventually(t, 5*time.Second, "Publish works again", func() bool {
		return a.Publish(bg, backends.Publication{Topic: "u", Data: []byte("u1")}) == nil
	})
	var r2 joinResult
	eventually(t, 5*time.Second, "Join works again", func() bool {
		r2, err = joinSession(a, "s2", "u", "")
		return err == nil
	})
	if pubData(r2.pubs) != "u1" || !r2.joined || r2.pubs[0].Mark == 0 {
		t.Fatalf("Join after the restart: %+v", r2)
	}
	if r, err := joinSession(a, "s3", "t", start); !errors.Is(err, backends.ErrGap) || r.calls != 0 {
		t.Fatalf("Join from a position of the lost history = %v after %d calls, want ErrGap", err, r.calls)
	}
}

// TestJoinWaitsForReader: a Join from a position the node's reader has
// not broadcast yet waits for it, so that no Broadcast after joined
// repeats what the session had.
func TestJoinWaitsForReader(t *testing.T) {
	t.Parallel()
	s, c := startServer(t)
	b := newBackend(t, testConfig(c, s.Prefix()))
	bn, rb := attachNode(t, b)
	o, _ := attachNode(t, b)
	mustSubscribe(t, bn, "t")
	mustPublish(t, o, "t", "x1")
	rb.WaitPublications(t, 1)
	if !bn.lockBcast(bg) { // the reader reads x2, x3 and waits
		t.Fatal("lock")
	}
	mustPublish(t, o, "t", "x2")
	mustPublish(t, o, "t", "x3")
	msgs, err := c.XRange(bg, b.topicKey("t"), "-", "+").Result()
	if err != nil || len(msgs) != 3 {
		t.Fatal(msgs, err)
	}
	x3 := backends.Position(msgs[2].ID)
	type result struct {
		r   joinResult
		err error
	}
	done := make(chan result, 1)
	go func() {
		// With a topic before t in name order: the wait starts the whole
		// pass over.
		r, err := joinTopics(bn, "s1", map[string]backends.Position{"a": "", "t": x3})
		r.last = r.lasts["t"]
		done <- result{r, err}
	}()
	time.Sleep(50 * time.Millisecond)
	bn.unlockBcast()
	res := <-done
	if res.err != nil || len(res.r.pubs) != 0 || res.r.last != x3 || !res.r.joined {
		t.Fatalf("Join from x3 = %+v, %v; want nothing replayed, joined at %q", res.r, res.err, x3)
	}
	if got := pubData(rb.WaitPublications(t, 3)); got != "x1,x2,x3" {
		t.Fatalf("broadcast %q", got)
	}
}

// TestJoinTopicsTogether runs the multi-topic Join scenario on one server
// and on a cluster.
func TestJoinTopicsTogether(t *testing.T) {
	t.Parallel()
	onServerAndCluster(t, testJoinTopicsTogether)
}

// testJoinTopicsTogether: A owns s1 on t1 and t2 and dies; B, which
// already broadcasts t2 live (for s0), takes s1 over and joins both topics
// in one Join while publications of both keep coming. Every replayed mark
// is below every live mark B gives afterwards, for either topic (with one
// Join per topic, t2's live marks could fall between t1's replay and
// t2's); the session gets each topic's history exactly once; and a client
// that got up to the last replayed mark of t1 resumes on C with t2 at its
// record position: nothing of t2 lost.
func testJoinTopicsTogether(t *testing.T, c goredis.UniversalClient, prefix string) {
	b := newBackend(t, testConfig(c, prefix))
	a, ra := attachNode(t, b)
	bn, rb := attachNode(t, b)
	cn, rc := attachNode(t, b)
	mustRegister(t, a, ra, "s1")
	r1 := mustSubscribe(t, a, "t1")
	r2 := mustSubscribe(t, a, "t2")
	for topic, p := range map[string]backends.Position{"t1": r1, "t2": r2} {
		if err := a.SetSessionTopic(bg, "s1", topic, p); err != nil {
			t.Fatal(err)
		}
	}
	mustRegister(t, bn, rb, "s0")
	if err := bn.SetSessionTopic(bg, "s0", "t2", mustSubscribe(t, bn, "t2")); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 3; i++ {
		mustPublish(t, cn, "t1", fmt.Sprintf("a%d", i))
		mustPublish(t, cn, "t2", fmt.Sprintf("b%d", i))
	}
	ra.WaitPublications(t, 6)
	rb.WaitPublications(t, 3) // b1..b3 live on B: marks 1..3

	// Publications of both topics keep coming while B joins s1.
	const more = 30
	pubDone := make(chan error, 1)
	go func() {
		for i := 1; i <= more; i++ {
			for _, p := range []backends.Publication{
				{Topic: "t1", Data: fmt.Appendf(nil, "c%d", i)},
				{Topic: "t2", Data: fmt.Appendf(nil, "d%d", i)},
			} {
				if err := cn.Publish(bg, p); err != nil {
					pubDone <- err
					return
				}
			}
			time.Sleep(time.Millisecond)
		}
		pubDone <- nil
	}()
	time.Sleep(5 * time.Millisecond)
	rb.Accept("s1")
	sess, err := bn.Claim(bg, "s1", backends.Cursor{})
	if err != nil {
		t.Fatal(err)
	}
	if sess.Topics["t1"] != r1 || sess.Topics["t2"] != r2 {
		t.Fatalf("claim at seq 0: %v, want t1 %q, t2 %q", sess.Topics, r1, r2)
	}
	r, err := joinTopics(bn, "s1", sess.Topics)
	if err != nil || !r.joined || r.late {
		t.Fatalf("Join(s1, t1+t2) = %v; joined %v, replay after joined %v", err, r.joined, r.late)
	}
	if err := <-pubDone; err != nil {
		t.Fatal(err)
	}

	// The replay: t1's entries, then t2's, with consecutive marks.
	if len(r.pubs) < 6 {
		t.Fatalf("Join replayed %q, want at least a1..a3 and b1..b3", pubData(r.pubs))
	}
	n1 := 0
	for i, p := range r.pubs {
		if i > 0 && p.Mark != r.pubs[i-1].Mark+1 {
			t.Fatalf("replay marks not consecutive: %+v after %+v", p, r.pubs[i-1])
		}
		if p.Topic == "t1" {
			if n1 != i {
				t.Fatalf("t1 entry %+v after t2's", p)
			}
			n1++
		}
	}
	lo, hi := r.pubs[0].Mark, r.pubs[len(r.pubs)-1].Mark
	if lo <= 3 {
		t.Fatalf("replay from mark %d, want after B's live marks 1..3", lo)
	}

	// Everything published reaches B (the last of each topic).
	full := func(topic string) []backends.Publication {
		msgs, err := c.XRange(bg, b.topicKey(topic), "-", "+").Result()
		if err != nil {
			t.Fatal(err)
		}
		out := make([]backends.Publication, len(msgs))
		for i, m := range msgs {
			out[i] = backends.Publication{Topic: topic, Data: []byte(str(m.Values["d"])), Position: backends.Position(m.ID)}
		}
		return out
	}
	all1, all2 := full("t1"), full("t2")
	if len(all1) != 3+more || len(all2) != 3+more {
		t.Fatalf("t1 holds %d, t2 %d, want %d each", len(all1), len(all2), 3+more)
	}
	var bcast []backends.Publication
	eventually(t, 10*time.Second, "B broadcasts the last of t1 and t2", func() bool {
		_, n := rb.Counts()
		bcast = rb.WaitPublications(t, n)
		seen := 0
		for _, p := range bcast {
			if p.Position == all1[len(all1)-1].Position || p.Position == all2[len(all2)-1].Position {
				seen++
			}
		}
		return seen == 2
	})

	// No live mark within the replay; live ones at or before the joined
	// position are below it, the later ones above it.
	pos := func(p backends.Position) streamID {
		id, ok := parsePosition(p)
		if !ok {
			t.Fatalf("position %q", p)
		}
		return id
	}
	got := map[string][]string{} // what session s1 receives, per topic
	for _, p := range r.pubs {
		got[p.Topic] = append(got[p.Topic], string(p.Data))
	}
	for _, p := range bcast {
		last := pos(r.lasts[p.Topic])
		if pos(p.Position).less(last) || pos(p.Position) == last {
			if p.Mark >= lo {
				t.Fatalf("live %+v at or before the joined %q, with a mark not below the replay's %d", p, last, lo)
			}
			continue
		}
		if p.Mark <= hi {
			t.Fatalf("live %+v after the joined %q, with a mark not above the replay's %d", p, last, hi)
		}
		got[p.Topic] = append(got[p.Topic], string(p.Data))
	}
	for topic, all := range map[string][]backends.Publication{"t1": all1, "t2": all2} {
		if g, w := strings.Join(got[topic], ","), pubData(all); g != w {
			t.Fatalf("s1 gets %s: %s, want %s", topic, g, w)
		}
	}

	// The client got up to the last replayed t1 entry (mark hold) and
	// dropped: C places t1 after it and t2 at its record position.
	hold := r.pubs[n1-1]
	rc.Accept("s1")
	s, err := cn.Claim(bg, "s1", backends.Cursor{Seq: 7, Mark: hold.Mark})
	if err != nil {
		t.Fatal(err)
	}
	// Positions are ids of the topic bucket's stream order: just before
	// b1 need not be r2, but nothing of t2 lies in between.
	if p := pos(s.Topics["t2"]); !p.less(pos(all2[0].Position)) || p.less(pos(r2)) {
		t.Fatalf("claim from t1's last replay mark puts t2 at %q, want its record position %q or later before b1 %q", s.Topics["t2"], r2, all2[0].Position)
	}
	end1, end2 := all1[len(all1)-1].Position, all2[len(all2)-1].Position
	if g, err := replayAll(cn, "t2", s.Topics["t2"], end2); err != nil || strings.Join(g, ",") != pubData(all2) {
		t.Fatalf("C replays t2: %q, %v; want all of it", g, err)
	}
	i := slices.IndexFunc(all1, func(p backends.Publication) bool { return p.Position == hold.Position })
	if g, err := replayAll(cn, "t1", s.Topics["t1"], end1); err != nil || strings.Join(g, ",") != pubData(all1[i+1:]) {
		t.Fatalf("C replays t1: %q, %v; want %q", g, err, pubData(all1[i+1:]))
	}
}
