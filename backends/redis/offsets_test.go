package redis

import (
	"math"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/ssebridge/ssebridge/backends"
)

// mustHistory calls History and fails the test on an error.
func mustHistory(t testing.TB, n *node, topic string, req backends.HistoryRequest) backends.HistoryResult {
	t.Helper()
	res, err := n.History(bg, topic, req)
	if err != nil {
		t.Fatalf("History(%q): %v", topic, err)
	}
	return res
}

func pubOffsets(pubs []backends.Publication) []uint64 {
	out := make([]uint64, len(pubs))
	for i, p := range pubs {
		out[i] = p.Offset
	}
	return out
}

// TestMetaKey: a topic's meta hash shares its stream's hash tag, and holds
// the epoch, the last offset and the id of the epoch's first entry; the
// entries hold their offsets.
func TestMetaKey(t *testing.T) {
	t.Parallel()
	s, c := startServer(t)
	b := newBackend(t, testConfig(c, s.Prefix()))
	a, ra := attachNode(t, b)
	for _, topic := range []string{"t", "a:b", "}{x", strings.Repeat("t", maxTopicLen)} {
		tk, mk := b.topicKey(topic), b.metaKey(topic)
		tag := tk[:strings.Index(tk, "}")+1]
		if !strings.HasPrefix(mk, tag+":meta:") || mk == tk {
			t.Fatalf("meta key %q, topic key %q: want the same hash tag, distinct keys", mk, tk)
		}
	}
	mustSubscribe(t, a, "t")
	mustPublish(t, a, "t", "1")
	mustPublish(t, a, "t", "2")
	pubs := ra.WaitPublications(t, 2)
	h := c.HGetAll(bg, b.metaKey("t")).Val()
	if h["o"] != "2" || h["s"] != string(pubs[0].Position) || !strings.HasPrefix(h["e"], a.epochPrefix) || len(h) != 3 {
		t.Fatalf("meta %v, want o=2, s=%s, e from node %s's prefix %s", h, pubs[0].Position, a.id, a.epochPrefix)
	}
	msgs := c.XRange(bg, b.topicKey("t"), "-", "+").Val()
	if len(msgs) != 2 || msgs[0].Values["o"] != "1" || msgs[1].Values["o"] != "2" {
		t.Fatalf("stream entries %v, want o=1 and o=2", msgs)
	}
	if got := mustHistory(t, a, "t", backends.HistoryRequest{}); got.Epoch != h["e"] || got.Offset != 2 {
		t.Fatalf("History = %+v, want the meta's epoch and offset", got.StreamPosition)
	}
}

// TestEpochCandidatesUnique: every call takes a new candidate, and nodes
// have distinct prefixes.
func TestEpochCandidatesUnique(t *testing.T) {
	t.Parallel()
	s, c := startServer(t)
	b := newBackend(t, testConfig(c, s.Prefix()))
	a, _ := attachNode(t, b)
	o, _ := attachNode(t, b)
	if len(a.epochPrefix) != 8 || a.epochPrefix == o.epochPrefix {
		t.Fatalf("epoch prefixes %q and %q: want 8 characters, distinct", a.epochPrefix, o.epochPrefix)
	}
	seen := map[string]bool{}
	for range 1000 {
		for _, n := range []*node{a, o} {
			e := n.newEpoch()
			if seen[e] {
				t.Fatalf("epoch %q given twice", e)
			}
			seen[e] = true
		}
	}
}

// TestEpochAfterDataLoss: when Redis loses a topic's keys (or its stream
// alone, or its meta alone), the numbering starts over at 1 in a new
// epoch, and History never mixes the epochs.
func TestEpochAfterDataLoss(t *testing.T) {
	t.Parallel()
	s, c := startServer(t)
	b := newBackend(t, testConfig(c, s.Prefix()))
	a, ra := attachNode(t, b)
	o, _ := attachNode(t, b)
	mustSubscribe(t, a, "t")
	for i := range 3 {
		mustPublish(t, o, "t", strconv.Itoa(i))
	}
	seen := 3
	ra.WaitPublications(t, seen)
	epochs := []string{mustHistory(t, a, "t", backends.HistoryRequest{}).Epoch}
	// restarted checks that the next publication starts a new epoch at 1,
	// broadcast and in History, and that History holds nothing of the
	// epochs before.
	restarted := func(how string) {
		t.Helper()
		mustPublish(t, o, "t", how)
		seen++
		if p := ra.WaitPublications(t, seen)[seen-1]; p.Offset != 1 || string(p.Data) != how {
			t.Fatalf("%s: broadcast %q with offset %d, want %q with 1", how, p.Data, p.Offset, how)
		}
		res := mustHistory(t, a, "t", backends.HistoryRequest{Limit: -1})
		if res.Offset != 1 || slices.Contains(epochs, res.Epoch) || res.Epoch == "" {
			t.Fatalf("%s: History at %d epoch %q, want 1 and a new epoch (not one of %q)", how, res.Offset, res.Epoch, epochs)
		}
		for _, req := range []backends.HistoryRequest{
			{Limit: -1}, {Limit: 5}, {Limit: -1, Reverse: true}, {Limit: 5, Reverse: true},
			{Since: &backends.StreamPosition{Epoch: res.Epoch}, Limit: -1},
			{Since: &backends.StreamPosition{Offset: 9, Epoch: res.Epoch}, Limit: -1, Reverse: true},
		} {
			got := mustHistory(t, a, "t", req)
			if len(got.Publications) != 1 || got.Publications[0].Offset != 1 || string(got.Publications[0].Data) != how {
				t.Fatalf("%s: History(%+v) = offsets %v, want only the new epoch's 1", how, req, pubOffsets(got.Publications))
			}
		}
		// The epoch before is gone: Since in it gives nothing.
		old := &backends.StreamPosition{Offset: 1, Epoch: epochs[len(epochs)-1]}
		if got := mustHistory(t, a, "t", backends.HistoryRequest{Since: old, Limit: -1}); len(got.Publications) != 0 {
			t.Fatalf("%s: History since the old epoch = %v, want none", how, pubOffsets(got.Publications))
		}
		epochs = append(epochs, res.Epoch)
	}

	// Redis lost both keys.
	if err := c.Del(bg, b.topicKey("t"), b.metaKey("t")).Err(); err != nil {
		t.Fatal(err)
	}
	restarted("both keys lost")

	// The stream alone: the meta that outlived it is dropped.
	mustPublish(t, o, "t", "x")
	seen++
	if err := c.Del(bg, b.topicKey("t")).Err(); err != nil {
		t.Fatal(err)
	}
	restarted("stream lost")

	// The meta alone (evicted): the stream still holds the old epoch's
	// entries, with offsets the new epoch reuses.
	for i := range 3 {
		mustPublish(t, o, "t", strconv.Itoa(i))
	}
	seen += 3
	ra.WaitPublications(t, seen)
	if err := c.Del(bg, b.metaKey("t")).Err(); err != nil {
		t.Fatal(err)
	}
	restarted("meta lost")

	// Lost, then re-created by a Subscribe (of another node): the new
	// epoch is there before the first publication.
	if err := c.Del(bg, b.topicKey("t"), b.metaKey("t")).Err(); err != nil {
		t.Fatal(err)
	}
	mustSubscribe(t, o, "t")
	before := mustHistory(t, a, "t", backends.HistoryRequest{Limit: -1})
	if before.Offset != 0 || before.Epoch == "" || slices.Contains(epochs, before.Epoch) || len(before.Publications) != 0 {
		t.Fatalf("History of a re-created stream = %+v, want offset 0 in a new epoch", before)
	}
	restarted("re-created by Subscribe")
	if epochs[len(epochs)-1] != before.Epoch {
		t.Fatalf("epoch %q after the first publication, %q before it", epochs[len(epochs)-1], before.Epoch)
	}

	// The stream alone lost, then re-created by a Subscribe: the meta that
	// outlived it is replaced at once.
	if err := o.Unsubscribe(bg, "t"); err != nil {
		t.Fatal(err)
	}
	if err := c.Del(bg, b.topicKey("t")).Err(); err != nil {
		t.Fatal(err)
	}
	if c.Exists(bg, b.metaKey("t")).Val() != 1 {
		t.Fatal("no meta left")
	}
	mustSubscribe(t, o, "t")
	before = mustHistory(t, a, "t", backends.HistoryRequest{Limit: -1})
	if before.Offset != 0 || before.Epoch == "" || slices.Contains(epochs, before.Epoch) || len(before.Publications) != 0 {
		t.Fatalf("History of a stream re-created while its meta stayed = %+v, want offset 0 in a new epoch", before)
	}
	restarted("re-created by Subscribe, meta left")
	if epochs[len(epochs)-1] != before.Epoch {
		t.Fatalf("epoch %q after the first publication, %q before it", epochs[len(epochs)-1], before.Epoch)
	}

	// A stream without its meta and without History's answer yet: History
	// starts the new epoch, which the next publication keeps.
	if err := c.Del(bg, b.metaKey("t")).Err(); err != nil {
		t.Fatal(err)
	}
	fresh := mustHistory(t, a, "t", backends.HistoryRequest{Limit: -1})
	if fresh.Offset != 0 || fresh.Epoch == "" || slices.Contains(epochs, fresh.Epoch) || len(fresh.Publications) != 0 {
		t.Fatalf("History of a stream without meta = %+v, want offset 0 in a new epoch", fresh)
	}
	if pttl := c.PTTL(bg, b.metaKey("t")).Val(); pttl <= 0 || pttl > b.topicTTL() {
		t.Fatalf("PTTL of the meta History created: %v, want the stream's", pttl)
	}
	restarted("meta re-created by History")
	if epochs[len(epochs)-1] != fresh.Epoch {
		t.Fatalf("epoch %q after the first publication, %q before it", epochs[len(epochs)-1], fresh.Epoch)
	}
}

// TestEntriesWithoutOffsets: a stream written before offsets existed (no
// o field, no meta) gets an epoch at Subscribe; History returns only the
// publications numbered since, and Broadcast gives the old entries offset
// 0.
func TestEntriesWithoutOffsets(t *testing.T) {
	t.Parallel()
	s, c := startServer(t)
	b := newBackend(t, testConfig(c, s.Prefix()))
	a, ra := attachNode(t, b)
	key := b.topicKey("old")
	for i := 1; i <= 3; i++ {
		id, pv := "1000-"+strconv.Itoa(i), "1000-"+strconv.Itoa(i-1)
		if err := c.XAdd(bg, &goredis.XAddArgs{Stream: key, ID: id, Values: []any{"pv", pv, "ns", "", "x", "", "d", strconv.Itoa(i)}}).Err(); err != nil {
			t.Fatal(err)
		}
	}
	c.PExpire(bg, key, time.Minute)
	res := mustHistory(t, a, "old", backends.HistoryRequest{Limit: -1})
	if res.Offset != 0 || res.Epoch == "" || len(res.Publications) != 0 {
		t.Fatalf("History of an unnumbered stream = %+v, want offset 0, an epoch, nothing", res)
	}
	var replayed []uint64
	if err := a.Replay(bg, "old", "", "1000-3", func(p backends.Publication) {
		replayed = append(replayed, p.Offset)
	}); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(replayed, []uint64{0, 0, 0}) {
		t.Fatalf("Replay of unnumbered entries: offsets %v, want 0 0 0", replayed)
	}
	mustSubscribe(t, a, "old")
	mustPublish(t, a, "old", "new")
	if p := ra.WaitPublications(t, 1)[0]; p.Offset != 1 {
		t.Fatalf("broadcast offset %d, want 1", p.Offset)
	}
	for _, req := range []backends.HistoryRequest{{Limit: -1}, {Limit: -1, Reverse: true}, {Since: &backends.StreamPosition{Epoch: res.Epoch}, Limit: -1}} {
		got := mustHistory(t, a, "old", req)
		if got.Epoch != res.Epoch || got.Offset != 1 || len(got.Publications) != 1 || string(got.Publications[0].Data) != "new" {
			t.Fatalf("History(%+v) = %+v, want only %q at 1 in epoch %q", req, got, "new", res.Epoch)
		}
	}
}

// TestMetaTTL: the meta hash lives as long as its stream: Subscribe,
// Publish and the heartbeat refresh both; with no subscriber both expire.
func TestMetaTTL(t *testing.T) {
	t.Parallel()
	s, c := startServer(t)
	b := newBackend(t, testConfig(c, s.Prefix()))
	a, _ := attachNode(t, b)
	o, _ := attachNode(t, b)
	stream, meta := b.topicKey("t"), b.metaKey("t")
	const short = time.Second
	shorten := func() {
		t.Helper()
		for _, k := range []string{stream, meta} {
			if !c.PExpire(bg, k, short).Val() {
				t.Fatalf("PEXPIRE %s: no such key", k)
			}
		}
	}
	refreshed := func(by string) {
		t.Helper()
		for _, k := range []string{stream, meta} {
			if pttl := c.PTTL(bg, k).Val(); pttl <= short || pttl > b.topicTTL() {
				t.Fatalf("after %s: PTTL of %s = %v, want above %v, at most %v", by, k, pttl, short, b.topicTTL())
			}
		}
	}
	mustSubscribe(t, a, "t")
	refreshed("the Subscribe that created the stream")
	shorten()
	mustSubscribe(t, o, "t")
	refreshed("a Subscribe of an existing stream")
	shorten()
	mustPublish(t, o, "t", "x")
	refreshed("a publication")
	shorten()
	if err := a.heartbeat(); err != nil {
		t.Fatal(err)
	}
	refreshed("the heartbeat")
	// No subscriber left: both expire.
	if err := a.Unsubscribe(bg, "t"); err != nil {
		t.Fatal(err)
	}
	if err := o.Unsubscribe(bg, "t"); err != nil {
		t.Fatal(err)
	}
	shorten()
	eventually(t, 3*short, "stream and meta expired", func() bool { return c.Exists(bg, stream, meta).Val() == 0 })
}

// TestHistoryHostile: odd requests are answered, not refused; bad topic
// names are refused before Redis is called.
func TestHistoryHostile(t *testing.T) {
	t.Parallel()
	s, c := startServer(t)
	b := newBackend(t, testConfig(c, s.Prefix()))
	a, ra := attachNode(t, b)
	mustSubscribe(t, a, "t")
	for i := range 5 {
		mustPublish(t, a, "t", strconv.Itoa(i))
	}
	ra.WaitPublications(t, 5)
	epoch := mustHistory(t, a, "t", backends.HistoryRequest{}).Epoch
	cases := []struct {
		req  backends.HistoryRequest
		want int
	}{
		{backends.HistoryRequest{Limit: math.MaxInt}, 5},
		{backends.HistoryRequest{Limit: math.MinInt}, 5},
		{backends.HistoryRequest{Limit: math.MaxInt, Reverse: true}, 5},
		{backends.HistoryRequest{Since: &backends.StreamPosition{Offset: math.MaxUint64, Epoch: epoch}, Limit: -1}, 0},
		{backends.HistoryRequest{Since: &backends.StreamPosition{Offset: math.MaxUint64, Epoch: epoch}, Limit: -1, Reverse: true}, 5},
		{backends.HistoryRequest{Since: &backends.StreamPosition{Offset: 2, Epoch: strings.Repeat("e", 1<<16)}, Limit: -1}, 0},
	}
	for _, tc := range cases {
		res := mustHistory(t, a, "t", tc.req)
		if len(res.Publications) != tc.want || res.Offset != 5 {
			t.Errorf("History(%+v) = %d publications at %d, want %d at 5", tc.req, len(res.Publications), res.Offset, tc.want)
		}
	}
	for _, topic := range []string{"", strings.Repeat("t", maxTopicLen+1)} {
		if _, err := a.History(bg, topic, backends.HistoryRequest{Limit: -1}); err == nil {
			t.Errorf("History of a topic of %d bytes succeeded", len(topic))
		}
	}
	// History of topics without a stream writes nothing.
	before := s.Keys(t)
	for _, topic := range []string{"nobody", "}{n.x}:alive", strings.Repeat("t", maxTopicLen)} {
		res := mustHistory(t, a, topic, backends.HistoryRequest{Since: &backends.StreamPosition{Offset: 1, Epoch: "e"}, Limit: -1})
		if res.Offset != 0 || res.Epoch != "" || len(res.Publications) != 0 {
			t.Errorf("History of a topic without a stream = %+v, want offset 0, epoch \"\", none", res)
		}
	}
	if after := s.Keys(t); !slices.Equal(before, after) {
		t.Fatalf("History changed the keys:\nbefore %q\nafter  %q", before, after)
	}
}

// BenchmarkHistory: recovery of a client that missed 10 of a topic's 1000
// kept publications (History since the offset of the 990th).
func BenchmarkHistory(b *testing.B) {
	_, sub, r, pub := benchBackend(b)
	if _, err := sub.Subscribe(bg, "bench"); err != nil {
		b.Fatal(err)
	}
	p := backends.Publication{Topic: "bench", Data: []byte(`{"type":"message","text":"hello, world"}`)}
	for range 1000 {
		if err := pub.Publish(bg, p); err != nil {
			b.Fatal(err)
		}
		<-r.broadcast
	}
	res, err := pub.History(bg, "bench", backends.HistoryRequest{})
	if err != nil || res.Offset != 1000 {
		b.Fatalf("History = %+v, %v", res.StreamPosition, err)
	}
	req := backends.HistoryRequest{Since: &backends.StreamPosition{Offset: 990, Epoch: res.Epoch}, Limit: -1}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		got, err := pub.History(bg, "bench", req)
		if err != nil || len(got.Publications) != 10 || got.Publications[0].Offset != 991 {
			b.Fatalf("History = %d publications, %v", len(got.Publications), err)
		}
	}
}
