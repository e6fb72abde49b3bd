package backendtest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/ssebridge/ssebridge/backends"
)

// historyTests run when the backend's nodes implement backends.History.
var historyTests = []struct {
	name string
	fn   func(t *testing.T, b backends.Backend)
}{
	{"HistoryOffsetsDense", testHistoryDense},
	{"HistoryEpochStable", testHistoryEpoch},
	{"HistoryQueries", testHistoryQueries},
	{"HistoryOtherEpoch", testHistoryOtherEpoch},
	{"HistoryTrimmed", testHistoryTrimmed},
	{"HistoryConcurrentPublishers", testHistoryConcurrent},
	{"HistoryDataIsCopy", testHistoryCopy},
	{"HistoryReplayAndJoinOffsets", testHistoryReplayJoin},
	{"HistoryUnknownTopic", testHistoryUnknown},
	{"HistoryClosedNode", testHistoryClosed},
}

// implementsHistory attaches a node to a fresh backend to see whether it
// implements backends.History.
func implementsHistory(t *testing.T, newBackend func(t *testing.T) backends.Backend) bool {
	t.Helper()
	n, err := newBackend(t).Attach(context.Background(), NewRecorder())
	if err != nil {
		t.Fatalf("Attach: %v", err)
	}
	defer func() { _ = n.Close() }()
	_, ok := n.(backends.History)
	return ok
}

// historyOf returns n as a backends.History.
func historyOf(t *testing.T, n backends.Node) backends.History {
	t.Helper()
	h, ok := n.(backends.History)
	if !ok {
		t.Fatalf("node %T does not implement backends.History", n)
	}
	return h
}

// history calls History and checks what every result must satisfy: the
// publications are of the topic, with an offset in the result's range, a
// position and mark 0.
func history(t *testing.T, n backends.Node, topic string, req backends.HistoryRequest) backends.HistoryResult {
	t.Helper()
	res, err := historyOf(t, n).History(context.Background(), topic, req)
	if err != nil {
		t.Fatalf("History(%q, %s): %v", topic, fmtRequest(req), err)
	}
	for _, p := range res.Publications {
		if p.Topic != topic || p.Offset == 0 || p.Offset > res.Offset || p.Position == "" || p.Mark != 0 {
			t.Fatalf("History(%q, %s) at %d: publication %+v: want topic %q, offset 1 to %d, a position, mark 0",
				topic, fmtRequest(req), res.Offset, p, topic, res.Offset)
		}
	}
	return res
}

func fmtRequest(req backends.HistoryRequest) string {
	since := "nil"
	if req.Since != nil {
		since = fmt.Sprintf("%d/%q", req.Since.Offset, req.Since.Epoch)
	}
	return fmt.Sprintf("since %s limit %d reverse %t", since, req.Limit, req.Reverse)
}

func offsets(pubs []backends.Publication) []uint64 {
	out := make([]uint64, len(pubs))
	for i, p := range pubs {
		out[i] = p.Offset
	}
	return out
}

// span returns the offsets from, from+1… to, or to, to-1… from when
// from > to.
func span(from, to uint64) []uint64 {
	var out []uint64
	for o := from; ; {
		out = append(out, o)
		switch {
		case o == to:
			return out
		case from < to:
			o++
		default:
			o--
		}
	}
}

// publishN publishes n publications "<prefix><i>", i from 1, on topic.
func publishN(t *testing.T, n backends.Node, topic, prefix string, count int) {
	t.Helper()
	for i := 1; i <= count; i++ {
		publish(t, n, backends.Publication{Topic: topic, Data: fmt.Appendf(nil, "%s%d", prefix, i)})
	}
}

// testHistoryDense: publications are numbered 1, 2, 3… in publish order;
// Broadcast and History give a publication the same offset and fields.
func testHistoryDense(t *testing.T, b backends.Backend) {
	a, ra := attach(t, b)
	c, _ := attach(t, b)
	subscribe(t, a, "h")
	for i := range 5 {
		publish(t, c, backends.Publication{Topic: "h", Namespace: fmt.Sprint("/ns", i), Exclude: fmt.Sprint("peer", i), Data: fmt.Append(nil, "d", i)})
	}
	live := ra.WaitPublications(t, 5)
	if got := offsets(live); !slices.Equal(got, span(1, 5)) {
		t.Fatalf("broadcast offsets %v, want 1 to 5", got)
	}
	for _, n := range []backends.Node{a, c} {
		res := history(t, n, "h", backends.HistoryRequest{Limit: -1})
		if res.Offset != 5 || res.Epoch == "" {
			t.Fatalf("History via node %s: at %d epoch %q, want 5 and an epoch", n.ID(), res.Offset, res.Epoch)
		}
		if len(res.Publications) != 5 {
			t.Fatalf("History via node %s: %d publications, want 5", n.ID(), len(res.Publications))
		}
		for i, p := range res.Publications {
			w := live[i]
			if p.Offset != w.Offset || p.Position != w.Position || p.Namespace != w.Namespace || p.Exclude != w.Exclude || string(p.Data) != string(w.Data) {
				t.Errorf("History's publication %d = %+v (data %q), broadcast %+v (data %q)", i, p, p.Data, w, w.Data)
			}
		}
	}
}

// testHistoryEpoch: a subscribed topic has an epoch before its first
// publication, which stays while it is published to, the same on every
// node.
func testHistoryEpoch(t *testing.T, b backends.Backend) {
	a, ra := attach(t, b)
	c, _ := attach(t, b)
	subscribe(t, a, "e")
	res := history(t, a, "e", backends.HistoryRequest{Limit: -1})
	if res.Offset != 0 || res.Epoch == "" || len(res.Publications) != 0 {
		t.Fatalf("History of a subscribed topic never published to: at %d epoch %q with %d publications; want 0, an epoch, none",
			res.Offset, res.Epoch, len(res.Publications))
	}
	epoch := res.Epoch
	want := func(n backends.Node, offset uint64) {
		t.Helper()
		if r := history(t, n, "e", backends.HistoryRequest{}); r.Offset != offset || r.Epoch != epoch || len(r.Publications) != 0 {
			t.Fatalf("History via %s = at %d epoch %q with %d publications (limit 0); want %d, %q, none",
				n.ID(), r.Offset, r.Epoch, len(r.Publications), offset, epoch)
		}
	}
	publish(t, c, backends.Publication{Topic: "e", Data: []byte("1")})
	want(a, 1)
	want(c, 1)
	subscribe(t, c, "e") // a second subscriber changes nothing
	publishN(t, a, "e", "x", 2)
	want(a, 3)
	want(c, 3)
	if got := offsets(ra.WaitPublications(t, 3)); !slices.Equal(got, span(1, 3)) {
		t.Fatalf("broadcast offsets %v, want 1 to 3", got)
	}
}

// testHistoryQueries: Since, Limit and Reverse select the publications.
func testHistoryQueries(t *testing.T, b backends.Backend) {
	a, ra := attach(t, b)
	subscribe(t, a, "q")
	publishN(t, a, "q", "p", 10)
	ra.WaitPublications(t, 10)
	epoch := history(t, a, "q", backends.HistoryRequest{}).Epoch
	since := func(o uint64) *backends.StreamPosition { return &backends.StreamPosition{Offset: o, Epoch: epoch} }
	cases := []struct {
		req  backends.HistoryRequest
		want []uint64
	}{
		{backends.HistoryRequest{Limit: -1}, span(1, 10)},
		{backends.HistoryRequest{Limit: 3}, span(1, 3)},
		{backends.HistoryRequest{Limit: 100}, span(1, 10)},
		{backends.HistoryRequest{Limit: 3, Reverse: true}, span(10, 8)},
		{backends.HistoryRequest{Limit: -1, Reverse: true}, span(10, 1)},
		{backends.HistoryRequest{Limit: 0}, nil},
		{backends.HistoryRequest{Limit: 0, Reverse: true}, nil},
		{backends.HistoryRequest{Since: since(3), Limit: -1}, span(4, 10)},
		{backends.HistoryRequest{Since: since(3), Limit: 2}, span(4, 5)},
		{backends.HistoryRequest{Since: since(3), Limit: 0}, nil},
		{backends.HistoryRequest{Since: since(3), Limit: -1, Reverse: true}, span(2, 1)},
		{backends.HistoryRequest{Since: since(3), Limit: 1, Reverse: true}, span(2, 2)},
		{backends.HistoryRequest{Since: since(9), Limit: -1}, span(10, 10)},
		{backends.HistoryRequest{Since: since(10), Limit: -1}, nil},
		{backends.HistoryRequest{Since: since(12), Limit: -1}, nil},
		{backends.HistoryRequest{Since: since(0), Limit: -1}, span(1, 10)},
		{backends.HistoryRequest{Since: since(0), Limit: -1, Reverse: true}, nil},
		{backends.HistoryRequest{Since: since(1), Limit: -1, Reverse: true}, nil},
		{backends.HistoryRequest{Since: since(11), Limit: 2, Reverse: true}, span(10, 9)},
		{backends.HistoryRequest{Since: since(20), Limit: -1, Reverse: true}, span(10, 1)},
	}
	for _, c := range cases {
		res := history(t, a, "q", c.req)
		if res.Offset != 10 || res.Epoch != epoch {
			t.Errorf("History(%s) at %d epoch %q, want 10 and %q", fmtRequest(c.req), res.Offset, res.Epoch, epoch)
		}
		if got := offsets(res.Publications); !slices.Equal(got, c.want) && (len(got) != 0 || len(c.want) != 0) {
			t.Errorf("History(%s) = offsets %v, want %v", fmtRequest(c.req), got, c.want)
		}
		for _, p := range res.Publications {
			if want := fmt.Sprint("p", p.Offset); string(p.Data) != want {
				t.Errorf("History(%s): offset %d has data %q, want %q", fmtRequest(c.req), p.Offset, p.Data, want)
			}
		}
	}
}

// testHistoryOtherEpoch: Since with an epoch that is not the topic's
// returns no publication, only the topic's position.
func testHistoryOtherEpoch(t *testing.T, b backends.Backend) {
	a, ra := attach(t, b)
	subscribe(t, a, "o")
	publishN(t, a, "o", "p", 3)
	ra.WaitPublications(t, 3)
	epoch := history(t, a, "o", backends.HistoryRequest{}).Epoch
	for _, other := range []string{"", epoch + "x", "not-" + epoch} {
		for _, rev := range []bool{false, true} {
			req := backends.HistoryRequest{Since: &backends.StreamPosition{Offset: 1, Epoch: other}, Limit: -1, Reverse: rev}
			res := history(t, a, "o", req)
			if res.Offset != 3 || res.Epoch != epoch || len(res.Publications) != 0 {
				t.Errorf("History(%s) = at %d epoch %q with %d publications; want 3, %q, none",
					fmtRequest(req), res.Offset, res.Epoch, len(res.Publications), epoch)
			}
		}
	}
}

// testHistoryTrimmed: once more publications were made than the history
// keeps, the oldest are dropped; a caller sees it because the first
// publication after Since is not Since.Offset+1. The offsets kept are the
// newest ones, consecutive.
func testHistoryTrimmed(t *testing.T, b backends.Backend) {
	a, _ := attach(t, b)
	subscribe(t, a, "trim")
	const batch, most = 100, 5000
	var oldest uint64
	for published := 0; ; {
		if published >= most {
			t.Fatalf("after %d publications the history still holds the first one", published)
		}
		publishN(t, a, "trim", "p", batch) // data repeats: offsets are checked, not data
		published += batch
		res := history(t, a, "trim", backends.HistoryRequest{Limit: 1})
		if len(res.Publications) != 1 {
			t.Fatalf("History(limit 1) after %d publications: %d publications", published, len(res.Publications))
		}
		if oldest = res.Publications[0].Offset; oldest > 1 {
			break
		}
	}
	top := history(t, a, "trim", backends.HistoryRequest{}).StreamPosition
	all := history(t, a, "trim", backends.HistoryRequest{Limit: -1})
	if got := offsets(all.Publications); !slices.Equal(got, span(oldest, top.Offset)) {
		t.Fatalf("History(all) after trimming: %d publications, want offsets %d to %d", len(got), oldest, top.Offset)
	}
	// Since an offset that was dropped: the first returned is not the one
	// after it.
	for _, since := range []uint64{0, oldest - 2} {
		res := history(t, a, "trim", backends.HistoryRequest{Since: &backends.StreamPosition{Offset: since, Epoch: top.Epoch}, Limit: 10})
		if len(res.Publications) == 0 || res.Publications[0].Offset == since+1 {
			t.Fatalf("History since %d, trimmed away: offsets %v; want the oldest kept, %d, first", since, offsets(res.Publications), oldest)
		}
		if got := offsets(res.Publications); !slices.Equal(got, span(oldest, oldest+9)) {
			t.Fatalf("History since %d, limit 10 = %v, want the 10 oldest kept from %d", since, got, oldest)
		}
	}
	// Since the last dropped: complete.
	res := history(t, a, "trim", backends.HistoryRequest{Since: &backends.StreamPosition{Offset: oldest - 1, Epoch: top.Epoch}, Limit: -1})
	if got := offsets(res.Publications); len(got) == 0 || got[0] != oldest || got[len(got)-1] != top.Offset || len(got) != int(top.Offset-oldest+1) {
		t.Fatalf("History since %d (the last dropped): %d publications, want %d to %d", oldest-1, len(got), oldest, top.Offset)
	}
	// Newest first, before an offset: stops at the oldest kept.
	res = history(t, a, "trim", backends.HistoryRequest{Since: &backends.StreamPosition{Offset: oldest + 3, Epoch: top.Epoch}, Limit: 10, Reverse: true})
	if got := offsets(res.Publications); !slices.Equal(got, span(oldest+2, oldest)) {
		t.Fatalf("History before %d, newest first, limit 10 = %v, want %d to %d", oldest+3, got, oldest+2, oldest)
	}
}

// testHistoryConcurrent: two nodes publishing at once still give dense,
// unique offsets, in the order every node broadcasts.
func testHistoryConcurrent(t *testing.T, b backends.Backend) {
	a, ra := attach(t, b)
	c, rc := attach(t, b)
	subscribe(t, a, "conc")
	subscribe(t, c, "conc")
	const each = 100
	var wg sync.WaitGroup
	for i, n := range []backends.Node{a, c} {
		wg.Go(func() {
			for j := range each {
				if err := n.Publish(context.Background(), backends.Publication{Topic: "conc", Data: fmt.Appendf(nil, "%d-%d", i, j)}); err != nil {
					t.Errorf("Publish: %v", err)
					return
				}
			}
		})
	}
	wg.Wait()
	got := ra.WaitPublications(t, 2*each)
	other := rc.WaitPublications(t, 2*each)
	if o := offsets(got); !slices.Equal(o, span(1, 2*each)) {
		t.Fatalf("node A's broadcast offsets %v, want 1 to %d in order", o, 2*each)
	}
	for i := range got {
		if other[i].Offset != got[i].Offset || other[i].Position != got[i].Position {
			t.Fatalf("broadcast %d: node A has offset %d at %q, node C %d at %q", i, got[i].Offset, got[i].Position, other[i].Offset, other[i].Position)
		}
	}
	res := history(t, c, "conc", backends.HistoryRequest{Limit: -1})
	if res.Offset != 2*each || len(res.Publications) != 2*each {
		t.Fatalf("History: at %d with %d publications, want %d and %d", res.Offset, len(res.Publications), 2*each, 2*each)
	}
	for i, p := range res.Publications {
		if p.Offset != got[i].Offset || p.Position != got[i].Position || string(p.Data) != string(got[i].Data) {
			t.Fatalf("History's publication %d: offset %d at %q (%q), broadcast: %d at %q (%q)", i, p.Offset, p.Position, p.Data, got[i].Offset, got[i].Position, got[i].Data)
		}
	}
}

// testHistoryCopy: History's Data belongs to the caller, and the backend
// keeps its own copy of what was published.
func testHistoryCopy(t *testing.T, b backends.Backend) {
	a, ra := attach(t, b)
	subscribe(t, a, "copy")
	buf := []byte("original")
	publish(t, a, backends.Publication{Topic: "copy", Data: buf})
	ra.WaitPublications(t, 1)
	copy(buf, "CHANGED!")
	first := history(t, a, "copy", backends.HistoryRequest{Limit: -1})
	if len(first.Publications) != 1 || string(first.Publications[0].Data) != "original" {
		t.Fatalf("History = %+v, want one publication %q", first.Publications, "original")
	}
	copy(first.Publications[0].Data, "MUTATED!")
	for _, req := range []backends.HistoryRequest{{Limit: -1}, {Limit: 1, Reverse: true}} {
		again := history(t, a, "copy", req)
		if len(again.Publications) != 1 || string(again.Publications[0].Data) != "original" {
			t.Fatalf("History after the caller changed an earlier result's data: %q, want %q", again.Publications[0].Data, "original")
		}
	}
	var replayed string
	err := a.Replay(context.Background(), "copy", "", first.Publications[0].Position, func(p backends.Publication) { replayed = string(p.Data) })
	if err != nil || replayed != "original" {
		t.Fatalf("Replay after the caller changed History's data: %q, %v; want %q", replayed, err, "original")
	}
}

// testHistoryReplayAndJoin: Replay and Join give publications the offsets
// Broadcast gave them.
func testHistoryReplayJoin(t *testing.T, b backends.Backend) {
	a, ra := attach(t, b)
	c, rc := attach(t, b)
	got := takeOver(t, a, c, ra, "s1", "t", "x1", "x2", "x3")
	if o := offsets(got); !slices.Equal(o, span(1, 3)) {
		t.Fatalf("Join replayed offsets %v, want 1 to 3", o)
	}
	publish(t, a, backends.Publication{Topic: "t", Data: []byte("x4")})
	if live := rc.WaitPublications(t, 1)[0]; live.Offset != 4 {
		t.Fatalf("live after Join: offset %d, want 4", live.Offset)
	}
	live := ra.WaitPublications(t, 4)
	var replayed []backends.Publication
	err := a.Replay(context.Background(), "t", "", live[3].Position, func(p backends.Publication) { replayed = append(replayed, p) })
	if err != nil {
		t.Fatal(err)
	}
	if len(replayed) != 4 {
		t.Fatalf("Replay gave %d publications, want 4", len(replayed))
	}
	for i, p := range replayed {
		if p.Offset != live[i].Offset || p.Position != live[i].Position {
			t.Errorf("Replay's publication %d: offset %d at %q; broadcast: %d at %q", i, p.Offset, p.Position, live[i].Offset, live[i].Position)
		}
	}
}

// testHistoryUnknown: a topic nobody subscribed to nor published to has
// offset 0 and no publications.
func testHistoryUnknown(t *testing.T, b backends.Backend) {
	a, _ := attach(t, b)
	for _, req := range []backends.HistoryRequest{{Limit: -1}, {Limit: -1, Reverse: true}, {Since: &backends.StreamPosition{Offset: 3, Epoch: "x"}, Limit: -1}} {
		res := history(t, a, "never-used", req)
		if res.Offset != 0 || len(res.Publications) != 0 {
			t.Fatalf("History(%s) of an unknown topic: at %d with %d publications, want 0 and none", fmtRequest(req), res.Offset, len(res.Publications))
		}
	}
}

func testHistoryClosed(t *testing.T, b backends.Backend) {
	n, _ := attach(t, b)
	subscribe(t, n, "t")
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := historyOf(t, n).History(context.Background(), "t", backends.HistoryRequest{Limit: -1}); !errors.Is(err, backends.ErrClosed) {
		t.Fatalf("History on a closed node = %v, want ErrClosed", err)
	}
}
