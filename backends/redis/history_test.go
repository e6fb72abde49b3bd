package redis

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/ssebridge/ssebridge/backends"
)

// replayAll returns the data Replay yields, or its error.
func replayAll(n *node, topic string, after, until backends.Position) ([]string, error) {
	var out []string
	err := n.Replay(bg, topic, after, until, func(p backends.Publication) {
		out = append(out, string(p.Data))
	})
	return out, err
}

// TestHistoryTrimmedByLength: a topic keeps about HistoryLength
// publications (MAXLEN ~ trims whole stream nodes of 100 entries); a
// replay from before the kept history is a gap, one inside it works, and
// long replays page through the stream.
func TestHistoryTrimmedByLength(t *testing.T) {
	t.Parallel()
	s, c := startServer(t)
	cfg := testConfig(c, s.Prefix())
	cfg.HistoryLength = 300
	b := newBackend(t, cfg)
	a, ra := attachNode(t, b)
	start := mustSubscribe(t, a, "len")
	const total = 1000
	for i := range total {
		mustPublish(t, a, "len", strconv.Itoa(i))
	}
	pubs := ra.WaitPublications(t, total)
	key := b.topicKey("len")
	if l := c.XLen(bg, key).Val(); l < 300 || l > 300+100 {
		t.Fatalf("XLEN = %d, want 300 to 400", l)
	}
	last := pubs[total-1].Position
	if _, err := replayAll(a, "len", start, last); !errors.Is(err, backends.ErrGap) {
		t.Fatalf("Replay from before the kept history = %v, want ErrGap", err)
	}
	if _, err := replayAll(a, "len", pubs[100].Position, last); !errors.Is(err, backends.ErrGap) {
		t.Fatalf("Replay from a trimmed position = %v, want ErrGap", err)
	}
	// The first kept entry's predecessor is the last trimmed one: a replay
	// from exactly there is complete.
	first, err := c.XRangeN(bg, key, "-", "+", 1).Result()
	if err != nil || len(first) != 1 {
		t.Fatal(first, err)
	}
	i := slices.IndexFunc(pubs, func(p backends.Publication) bool { return string(p.Position) == first[0].ID })
	got, err := replayAll(a, "len", pubs[i-1].Position, last)
	if err != nil {
		t.Fatalf("Replay from the last trimmed position: %v", err)
	}
	if len(got) != total-i || got[0] != strconv.Itoa(i) || got[len(got)-1] != strconv.Itoa(total-1) {
		t.Fatalf("replayed %d publications from %s, want %d from %d", len(got), got[0], total-i, i)
	}
	// Replay pages (256 entries) through the range and stops at until.
	got, err = replayAll(a, "len", pubs[total-300].Position, pubs[total-2].Position)
	if err != nil || len(got) != 298 || got[0] != strconv.Itoa(total-299) || got[297] != strconv.Itoa(total-2) {
		t.Fatalf("replayed %d, %v", len(got), err)
	}
}

// TestHistoryTrimmedByAge: publications older than HistoryAge go (MINID ~,
// whole stream nodes); a topic's stream lives while a node subscribes to
// it and expires after that; a stream re-created after expiry does not
// pretend to continue the old one.
func TestHistoryTrimmedByAge(t *testing.T) {
	t.Parallel()
	s, c := startServer(t)
	cfg := testConfig(c, s.Prefix())
	cfg.HistoryAge = 400 * time.Millisecond
	cfg.NodeTTL = 600 * time.Millisecond
	b := newBackend(t, cfg)
	a, ra := attachNode(t, b)
	o, _ := attachNode(t, b)
	start := mustSubscribe(t, a, "age")
	for i := range 250 {
		mustPublish(t, o, "age", strconv.Itoa(i))
	}
	pubs := ra.WaitPublications(t, 250)
	key := b.topicKey("age")
	if pttl := c.PTTL(bg, key).Val(); pttl <= 0 || pttl > b.topicTTL() {
		t.Fatalf("PTTL of the topic = %v, want (0, %v]", pttl, b.topicTTL())
	}
	time.Sleep(cfg.HistoryAge + 100*time.Millisecond)
	mustPublish(t, o, "age", "new")
	if l := c.XLen(bg, key).Val(); l > 100 {
		t.Fatalf("XLEN = %d after HistoryAge, want the old entries trimmed", l)
	}
	pubs = ra.WaitPublications(t, 251)
	if _, err := replayAll(a, "age", start, pubs[250].Position); !errors.Is(err, backends.ErrGap) {
		t.Fatalf("Replay of a trimmed range = %v, want ErrGap", err)
	}
	if got, err := replayAll(a, "age", pubs[249].Position, pubs[250].Position); err != nil || fmt.Sprint(got) != "[new]" {
		t.Fatalf("Replay of the kept range = %q, %v", got, err)
	}
	// Subscribed: the stream outlives its TTL without publications.
	time.Sleep(b.topicTTL() + 200*time.Millisecond)
	if c.Exists(bg, key).Val() != 1 {
		t.Fatal("the stream of a subscribed topic expired")
	}
	// Not subscribed: it expires; a replay of what it held is a gap.
	if err := a.Unsubscribe(bg, "age"); err != nil {
		t.Fatal(err)
	}
	eventually(t, 3*time.Second, "topic key expired", func() bool { return c.Exists(bg, key).Val() == 0 })
	if _, err := replayAll(a, "age", pubs[249].Position, pubs[250].Position); !errors.Is(err, backends.ErrGap) {
		t.Fatalf("Replay from an expired topic = %v, want ErrGap", err)
	}
	if got, err := replayAll(a, "age", pubs[250].Position, pubs[250].Position); err != nil || got != nil {
		t.Fatalf("empty Replay range = %q, %v", got, err)
	}
	// Re-created by a publication: positions of the old stream are gaps.
	mustPublish(t, o, "age", "reborn")
	last := mustSubscribe(t, a, "age")
	if _, err := replayAll(a, "age", pubs[250].Position, last); !errors.Is(err, backends.ErrGap) {
		t.Fatalf("Replay across a re-created stream = %v, want ErrGap", err)
	}
	mustPublish(t, o, "age", "live")
	if p := ra.WaitPublications(t, 252)[251]; string(p.Data) != "live" {
		t.Fatalf("got %q", p.Data)
	}
	if got, err := replayAll(a, "age", last, ra.WaitPublications(t, 252)[251].Position); err != nil || fmt.Sprint(got) != "[live]" {
		t.Fatalf("Replay in the re-created stream = %q, %v", got, err)
	}
}

// TestSubscribeCreatesStream: Subscribe to a topic never published creates
// its stream, empty, at position <now>-0; the first publication continues
// it, from that position and from "". A stream Redis lost and Subscribe
// re-created is a gap for the positions of its old entries.
func TestSubscribeCreatesStream(t *testing.T) {
	t.Parallel()
	s, c := startServer(t)
	b := newBackend(t, testConfig(c, s.Prefix()))
	a, ra := attachNode(t, b)
	start := mustSubscribe(t, a, "new")
	if id, ok := parsePosition(start); !ok || id.seq != 0 || id.ms == 0 {
		t.Fatalf("Subscribe = %q, want <now>-0", start)
	}
	if l, err := c.XLen(bg, b.topicKey("new")).Result(); err != nil || l != 0 {
		t.Fatalf("XLEN = %d, %v", l, err)
	}
	if got, err := replayAll(a, "new", "", start); err != nil || got != nil {
		t.Fatalf("Replay of the empty stream from \"\" = %q, %v", got, err)
	}
	mustPublish(t, a, "new", "first")
	p := ra.WaitPublications(t, 1)[0]
	for _, from := range []backends.Position{"", start} {
		if got, err := replayAll(a, "new", from, p.Position); err != nil || fmt.Sprint(got) != "[first]" {
			t.Fatalf("Replay from %q = %q, %v", from, got, err)
		}
	}

	// Redis loses the stream; another node subscribes (re-creating it),
	// then a publication follows.
	o, ro := attachNode(t, b)
	time.Sleep(2 * time.Millisecond) // the new stream starts at a later ms
	if err := c.Del(bg, b.topicKey("new")).Err(); err != nil {
		t.Fatal(err)
	}
	mustSubscribe(t, o, "new")
	mustPublish(t, o, "new", "second")
	p2 := ro.WaitPublications(t, 1)[0]
	if _, err := replayAll(o, "new", p.Position, p2.Position); !errors.Is(err, backends.ErrGap) {
		t.Fatalf("Replay from a position of the lost stream = %v, want ErrGap", err)
	}
	if _, err := replayAll(o, "new", start, p2.Position); !errors.Is(err, backends.ErrGap) {
		t.Fatalf("Replay from the lost stream's start = %v, want ErrGap", err)
	}
}

// TestReplayAllTrimmed: a stream whose entries were all trimmed by age
// (the key remains) reports a gap from before its last entry.
func TestReplayAllTrimmed(t *testing.T) {
	t.Parallel()
	s, c := startServer(t)
	b := newBackend(t, testConfig(c, s.Prefix()))
	a, ra := attachNode(t, b)
	mustSubscribe(t, a, "t")
	mustPublish(t, a, "t", "1")
	mustPublish(t, a, "t", "2")
	pubs := ra.WaitPublications(t, 2)
	if err := c.XTrimMaxLen(bg, b.topicKey("t"), 0).Err(); err != nil {
		t.Fatal(err)
	}
	if _, err := replayAll(a, "t", pubs[0].Position, pubs[1].Position); !errors.Is(err, backends.ErrGap) {
		t.Fatalf("Replay = %v, want ErrGap", err)
	}
	if got, err := replayAll(a, "t", pubs[1].Position, pubs[1].Position); err != nil || got != nil {
		t.Fatalf("Replay = %q, %v", got, err)
	}
	if _, err := replayAll(a, "t", "garbage", pubs[1].Position); err == nil {
		t.Fatal("Replay from an invalid position succeeded")
	}
}
