package redis

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ssebridge/ssebridge/backends"
	"github.com/ssebridge/ssebridge/backends/backendtest"
)

// releaseCounter counts Release calls.
type releaseCounter struct {
	*backendtest.Recorder
	n atomic.Int64
}

func (r *releaseCounter) Release(session string) {
	r.n.Add(1)
	r.Recorder.Release(session)
}

func attachCounting(t *testing.T, b *Backend) (*node, *releaseCounter) {
	t.Helper()
	r := &releaseCounter{Recorder: backendtest.NewRecorder()}
	n, err := b.Attach(context.Background(), r)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = n.Close() })
	return n.(*node), r
}

// claimFixture: node A owns session s1 with topics x, y, z, w; A has
// broadcast x1 (mark 1), y1 (2), x2 (3), y2 (4), and z1 (5) before the
// session's record of z starts (z's record position is after z1). w never
// got anything.
type claimFixture struct {
	b     *Backend
	a, c  *node
	ra    *releaseCounter
	rc    *backendtest.Recorder
	pubs  []backends.Publication
	recZ  backends.Position // the record's position of z
	start map[string]backends.Position
}

func newClaimFixture(t *testing.T, cfg Config) *claimFixture {
	t.Helper()
	f := &claimFixture{b: newBackend(t, cfg), start: map[string]backends.Position{}}
	f.a, f.ra = attachCounting(t, f.b)
	f.c, f.rc = attachNode(t, f.b)
	mustRegister(t, f.a, f.ra.Recorder, "s1")
	for _, topic := range []string{"x", "y", "z", "w"} {
		f.start[topic] = mustSubscribe(t, f.a, topic)
		if topic != "z" {
			if err := f.a.SetSessionTopic(bg, "s1", topic, f.start[topic]); err != nil {
				t.Fatal(err)
			}
		}
	}
	// One at a time: topics in different buckets are read concurrently.
	for i, p := range []string{"x1", "y1", "x2", "y2", "z1"} {
		mustPublish(t, f.c, p[:1], p)
		f.ra.WaitPublications(t, i+1)
	}
	f.pubs = f.ra.WaitPublications(t, 5)
	for i, p := range f.pubs {
		if p.Mark != uint64(i+1) || string(p.Data) != []string{"x1", "y1", "x2", "y2", "z1"}[i] {
			t.Fatalf("publication %d: %+v", i, p)
		}
	}
	// The session joined z after z1: its record starts there.
	f.recZ = f.pubs[4].Position
	if err := f.a.SetSessionTopic(bg, "s1", "z", f.recZ); err != nil {
		t.Fatal(err)
	}
	return f
}

// missed replays, per topic, what a client at the claimed positions
// missed up to A's last broadcast.
func (f *claimFixture) missed(t *testing.T, s backends.Session) map[string]string {
	t.Helper()
	last := map[string]backends.Position{"x": f.pubs[2].Position, "y": f.pubs[3].Position, "z": f.pubs[4].Position, "w": f.start["w"]}
	out := map[string]string{}
	for topic, until := range last {
		got, err := replayAll(f.c, topic, s.Topics[topic], until)
		if err != nil {
			t.Fatalf("Replay %s: %v", topic, err)
		}
		out[topic] = strings.Join(got, ",")
	}
	return out
}

func TestClaimBranches(t *testing.T) {
	t.Parallel()
	s, c := startServer(t)
	cases := []struct {
		name   string
		cursor backends.Cursor
		want   map[string]string // per topic, the publications replayed
	}{
		// S == B: the record's positions: everything since subscribing.
		{"AtBase", backends.Cursor{Seq: 0, Mark: 3}, map[string]string{"x": "x1,x2", "y": "y1,y2", "z": "", "w": ""}},
		// S > B, M == 0: no live publication received: the record.
		{"NoMark", backends.Cursor{Seq: 4, Mark: 0}, map[string]string{"x": "x1,x2", "y": "y1,y2", "z": "", "w": ""}},
		// S > B, M = 1: x1 received; y's first mark after 1 is y1.
		{"Mark1", backends.Cursor{Seq: 4, Mark: 1}, map[string]string{"x": "x2", "y": "y1,y2", "z": "", "w": ""}},
		// M = 3: x1 y1 x2; y2 is the first mark after.
		{"Mark3", backends.Cursor{Seq: 4, Mark: 3}, map[string]string{"x": "", "y": "y2", "z": "", "w": ""}},
		// M = 5: everything; no mark after M for any topic: A's last
		// position (cur), never before the record (z).
		{"Mark5", backends.Cursor{Seq: 9, Mark: 5}, map[string]string{"x": "", "y": "", "z": "", "w": ""}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newClaimFixture(t, testConfig(c, subPrefix(s.Prefix())))
			f.rc.Accept("s1")
			sess, err := f.c.Claim(bg, "s1", tc.cursor)
			if err != nil {
				t.Fatalf("Claim(%+v): %v", tc.cursor, err)
			}
			if sess.Namespace != "/ns" || len(sess.Topics) != 4 {
				t.Fatalf("claimed %+v", sess)
			}
			if got := f.missed(t, sess); !maps.Equal(got, tc.want) {
				t.Fatalf("missed %v, want %v", got, tc.want)
			}
			if sess.Topics["z"] != f.recZ && tc.cursor.Mark < 5 {
				t.Fatalf("z at %q, want the record's %q", sess.Topics["z"], f.recZ)
			}
			f.ra.WaitReleased(t, "s1")
			if owner, err := f.a.Owner(bg, "s1"); err != nil || owner != f.c.ID() {
				t.Fatalf("Owner = %q, %v", owner, err)
			}
			// The record moved: base S, the computed positions.
			h := c.HGetAll(bg, f.b.sessionKey("s1")).Val()
			if h["b"] != fmt.Sprint(tc.cursor.Seq) || h["o"] != f.c.ID() {
				t.Fatalf("record %v", h)
			}
			// A claim at the new base gets the same positions, even by
			// the owner itself (no release then).
			again, err := f.c.Claim(bg, "s1", backends.Cursor{Seq: tc.cursor.Seq, Mark: 77})
			if err != nil || !maps.Equal(again.Topics, sess.Topics) {
				t.Fatalf("claim by the owner at the new base = %+v, %v; want %v", again, err, sess.Topics)
			}
			// Behind the new base.
			if tc.cursor.Seq > 0 {
				if _, err := f.a.Claim(bg, "s1", backends.Cursor{Seq: tc.cursor.Seq - 1}); !errors.Is(err, backends.ErrGap) {
					t.Fatalf("claim behind the base = %v, want ErrGap", err)
				}
			}
			time.Sleep(50 * time.Millisecond)
			if n := f.ra.n.Load(); n != 1 {
				t.Fatalf("old owner released %d times, want 1", n)
			}
		})
	}
}

// TestClaimGaps: a mark log that no longer holds every mark after M, or
// none at all, and a mark past the log's last, are gaps.
func TestClaimGaps(t *testing.T) {
	t.Parallel()
	s, c := startServer(t)
	cfg := testConfig(c, s.Prefix())
	cfg.MarkLogLength = 10 // MAXLEN ~: whole stream nodes of 100 go
	b := newBackend(t, cfg)
	a, ra := attachNode(t, b)
	o, _ := attachNode(t, b)
	mustRegister(t, a, ra, "s1")
	mustRegister(t, a, ra, "quiet")
	if err := a.SetSessionTopic(bg, "s1", "t", mustSubscribe(t, a, "t")); err != nil {
		t.Fatal(err)
	}
	const total = 350
	for i := range total {
		mustPublish(t, o, "t", fmt.Sprint(i))
	}
	ra.WaitPublications(t, total)
	if l := c.XLen(bg, a.log).Val(); l > 200 {
		t.Fatalf("mark log holds %d marks, want it trimmed", l)
	}
	if _, err := o.Claim(bg, "s1", backends.Cursor{Seq: 5, Mark: 1}); !errors.Is(err, backends.ErrGap) {
		t.Fatalf("Claim with a trimmed mark = %v, want ErrGap", err)
	}
	// A mark past A's last one: A never gave it.
	for _, m := range []uint64{total + 1, 1 << 63} {
		if _, err := o.Claim(bg, "s1", backends.Cursor{Seq: 5, Mark: m}); !errors.Is(err, backends.ErrGap) {
			t.Fatalf("Claim with mark %d, past the last (%d) = %v, want ErrGap", m, total, err)
		}
	}
	// A recent mark is still covered; the refused claims changed nothing.
	if owner, _ := o.Owner(bg, "s1"); owner != a.ID() {
		t.Fatalf("a refused claim moved the session to %s", owner)
	}
	sess, err := o.Claim(bg, "s1", backends.Cursor{Seq: 5, Mark: total - 1})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := replayAll(o, "t", sess.Topics["t"], ra.WaitPublications(t, total)[total-1].Position); err != nil || fmt.Sprint(got) != fmt.Sprintf("[%d]", total-1) {
		t.Fatalf("missed %v, %v", got, err)
	}
	// A node without a mark log (it never broadcast) and a mark > 0.
	q, rq := attachNode(t, b)
	mustRegister(t, q, rq, "s2")
	if _, err := o.Claim(bg, "s2", backends.Cursor{Seq: 1, Mark: 3}); !errors.Is(err, backends.ErrGap) {
		t.Fatalf("Claim with a mark of a node without a log = %v, want ErrGap", err)
	}
	if _, err := o.Claim(bg, "s2", backends.Cursor{Seq: 1, Mark: 0}); err != nil {
		t.Fatalf("Claim with mark 0 of a node without a log: %v", err)
	}
}

// TestClaimFromDeadOwner: no release notice goes to a dead node, and the
// claim works.
func TestClaimFromDeadOwner(t *testing.T) {
	t.Parallel()
	s, c := startServer(t)
	b := newBackend(t, testConfig(c, s.Prefix()))
	a, ra := attachNode(t, b)
	o, ro := attachNode(t, b)
	mustRegister(t, a, ra, "s1")
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	ro.Accept("s1")
	if _, err := o.Claim(bg, "s1", backends.Cursor{Seq: 2}); err != nil {
		t.Fatal(err)
	}
	if c.Exists(bg, a.inbox).Val() != 0 {
		t.Fatal("the release notice re-created the dead node's inbox")
	}
	if len(ro.Errors()) != 0 {
		t.Fatalf("errors: %v", ro.Errors())
	}
	if err := o.Route(bg, "s1", []byte("x")); err != nil {
		t.Fatal(err)
	}
	ro.WaitUpstream(t, 1)
}

// TestStaleReleaseIgnored: a release notice from a claim the node has
// since taken back does not release the session.
func TestStaleReleaseIgnored(t *testing.T) {
	t.Parallel()
	s, c := startServer(t)
	b := newBackend(t, testConfig(c, s.Prefix()))
	a, ra := attachCounting(t, b)
	o, ro := attachCounting(t, b)
	mustRegister(t, a, ra.Recorder, "s1")
	ro.Accept("s1")
	if _, err := o.Claim(bg, "s1", backends.Cursor{Seq: 1}); err != nil {
		t.Fatal(err)
	}
	ra.WaitReleased(t, "s1")
	v1 := c.HGet(bg, b.sessionKey("s1"), "v").Val()
	ra.Accept("s1")
	if _, err := a.Claim(bg, "s1", backends.Cursor{Seq: 2}); err != nil {
		t.Fatal(err)
	}
	ro.WaitReleased(t, "s1")
	// The first release notice again, late.
	if err := o.send(bg, a.id, "r", "s1", v1, 0); err != nil {
		t.Fatal(err)
	}
	if err := o.Route(bg, "s1", []byte("still here")); err != nil {
		t.Fatal(err)
	}
	ra.WaitUpstream(t, 1)
	if n := ra.n.Load(); n != 1 {
		t.Fatalf("node A released %d times, want 1 (the late notice must be ignored)", n)
	}
	if a.mirrored() != 1 {
		t.Fatal("node A forgot the session")
	}
}

// TestConcurrentClaims: nodes claiming one session at once end with one
// owner; the others are told to release it.
func TestConcurrentClaims(t *testing.T) {
	t.Parallel()
	s, c := startServer(t)
	b := newBackend(t, testConfig(c, s.Prefix()))
	a, ra := attachNode(t, b)
	mustRegister(t, a, ra, "s1")
	var nodes []*node
	for range 4 {
		n, r := attachNode(t, b)
		r.Accept("s1")
		nodes = append(nodes, n)
	}
	var wg sync.WaitGroup
	var ok atomic.Int64
	for _, n := range nodes {
		wg.Go(func() {
			_, err := n.Claim(bg, "s1", backends.Cursor{Seq: 1})
			if err == nil {
				ok.Add(1)
			} else if !errors.Is(err, backends.ErrUnavailable) && !errors.Is(err, backends.ErrMoved) {
				t.Errorf("Claim: %v", err)
			}
		})
	}
	wg.Wait()
	if ok.Load() == 0 {
		t.Fatal("no claim succeeded")
	}
	owner, err := a.Owner(bg, "s1")
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, 2*time.Second, "only the owner mirrors the session", func() bool {
		for _, n := range nodes {
			if (n.mirrored() == 1) != (n.id == owner) {
				return false
			}
		}
		return a.mirrored() == 0
	})
}
