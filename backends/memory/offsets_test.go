package memory_test

import (
	"testing"

	"github.com/ssebridge/ssebridge/backends"
	"github.com/ssebridge/ssebridge/backends/backendtest"
	"github.com/ssebridge/ssebridge/backends/memory"
)

// TestEpochPerTopicLife: a topic the backend forgets (no subscriber, no
// session record) and keeps again later starts over at offset 1 in a new
// epoch; while forgotten it has offset 0, epoch "" and no history.
func TestEpochPerTopicLife(t *testing.T) {
	b := memory.New()
	r := backendtest.NewRecorder()
	n, err := b.Attach(t.Context(), r)
	if err != nil {
		t.Fatal(err)
	}
	h := n.(backends.History)
	get := func() backends.HistoryResult {
		t.Helper()
		res, err := h.History(t.Context(), "t", backends.HistoryRequest{Limit: -1})
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	if res := get(); res.Offset != 0 || res.Epoch != "" || res.Publications != nil {
		t.Fatalf("History of an unknown topic = %+v, want offset 0, epoch \"\", nothing", res)
	}
	if _, err := n.Subscribe(t.Context(), "t"); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if err := n.Publish(t.Context(), backends.Publication{Topic: "t", Data: []byte("x")}); err != nil {
			t.Fatal(err)
		}
	}
	first := get()
	if first.Offset != 3 || len(first.Epoch) != 8 || len(first.Publications) != 3 {
		t.Fatalf("History = at %d epoch %q with %d publications, want 3, 8 characters, 3", first.Offset, first.Epoch, len(first.Publications))
	}
	if err := n.Unsubscribe(t.Context(), "t"); err != nil {
		t.Fatal(err)
	}
	if res := get(); res.Offset != 0 || res.Epoch != "" || res.Publications != nil {
		t.Fatalf("History of a forgotten topic = %+v, want offset 0, epoch \"\", nothing", res)
	}
	// Published to while forgotten: nothing is kept, nothing numbered.
	if err := n.Publish(t.Context(), backends.Publication{Topic: "t", Data: []byte("lost")}); err != nil {
		t.Fatal(err)
	}
	if _, err := n.Subscribe(t.Context(), "t"); err != nil {
		t.Fatal(err)
	}
	again := get()
	if again.Offset != 0 || again.Epoch == "" || again.Epoch == first.Epoch {
		t.Fatalf("History of the topic kept again = at %d epoch %q, want 0 and a new epoch (not %q)", again.Offset, again.Epoch, first.Epoch)
	}
	if err := n.Publish(t.Context(), backends.Publication{Topic: "t", Data: []byte("y")}); err != nil {
		t.Fatal(err)
	}
	if p := r.WaitPublications(t, 4)[3]; p.Offset != 1 {
		t.Fatalf("first publication of the new epoch broadcast with offset %d, want 1", p.Offset)
	}
	if res := get(); res.Offset != 1 || res.Epoch != again.Epoch || len(res.Publications) != 1 || res.Publications[0].Offset != 1 {
		t.Fatalf("History = %+v, want offset 1 in epoch %q", res, again.Epoch)
	}
}

// TestEpochKeptBySessionRecord: a session record naming a topic keeps its
// numbering although no node subscribes.
func TestEpochKeptBySessionRecord(t *testing.T) {
	b := memory.New()
	r := backendtest.NewRecorder()
	n, _ := b.Attach(t.Context(), r)
	h := n.(backends.History)
	r.Accept("s")
	if err := n.RegisterSession(t.Context(), "s", backends.SessionInfo{}); err != nil {
		t.Fatal(err)
	}
	start, _ := n.Subscribe(t.Context(), "t")
	if err := n.SetSessionTopic(t.Context(), "s", "t", start); err != nil {
		t.Fatal(err)
	}
	if err := n.Publish(t.Context(), backends.Publication{Topic: "t"}); err != nil {
		t.Fatal(err)
	}
	before, _ := h.History(t.Context(), "t", backends.HistoryRequest{})
	if err := n.Unsubscribe(t.Context(), "t"); err != nil {
		t.Fatal(err)
	}
	if err := n.Publish(t.Context(), backends.Publication{Topic: "t"}); err != nil {
		t.Fatal(err)
	}
	after, _ := h.History(t.Context(), "t", backends.HistoryRequest{Limit: -1})
	if after.Epoch != before.Epoch || after.Offset != 2 || len(after.Publications) != 2 {
		t.Fatalf("History = at %d epoch %q with %d publications, want 2, %q, 2", after.Offset, after.Epoch, len(after.Publications), before.Epoch)
	}
}
