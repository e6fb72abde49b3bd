package memory_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/ssebridge/ssebridge/backends"
	"github.com/ssebridge/ssebridge/backends/backendtest"
	"github.com/ssebridge/ssebridge/backends/memory"
)

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

// TestHistoryRetention: a topic's history and epoch outlive its last
// subscriber for HistoryTTL (so that a sole subscriber whose stream
// dropped recovers), publications to a topic nobody subscribes to are
// kept as long, and then the topic is forgotten.
func TestHistoryRetention(t *testing.T) {
	ctx := t.Context()
	b := memory.NewWithConfig(memory.Config{HistoryTTL: 200 * time.Millisecond})
	n, err := b.Attach(ctx, backendtest.NewRecorder())
	if err != nil {
		t.Fatal(err)
	}
	h := n.(backends.History)
	if _, err := n.Subscribe(ctx, "t"); err != nil {
		t.Fatal(err)
	}
	before, _ := h.History(ctx, "t", backends.HistoryRequest{})
	_ = n.Publish(ctx, backends.Publication{Topic: "t", Data: []byte("1")})
	_ = n.Unsubscribe(ctx, "t")
	_ = n.Publish(ctx, backends.Publication{Topic: "t", Data: []byte("2")})
	got, _ := h.History(ctx, "t", backends.HistoryRequest{Limit: -1})
	if got.Epoch != before.Epoch || got.Offset != 2 || len(got.Publications) != 2 {
		t.Fatalf("history after the last subscriber left: %+v, want epoch %q and 2 publications", got, before.Epoch)
	}
	_ = n.Publish(ctx, backends.Publication{Topic: "nobody", Data: []byte("x")})
	if got, _ := h.History(ctx, "nobody", backends.HistoryRequest{Limit: -1}); got.Offset != 1 || got.Epoch == "" || len(got.Publications) != 1 {
		t.Fatalf("history of a topic nobody subscribes to: %+v", got)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		a, _ := h.History(ctx, "t", backends.HistoryRequest{})
		c, _ := h.History(ctx, "nobody", backends.HistoryRequest{})
		if a.Epoch == "" && c.Epoch == "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("histories still kept after their TTL: %+v %+v", a, c)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// A topic subscribed again after expiry starts a new epoch.
	if _, err := n.Subscribe(ctx, "t"); err != nil {
		t.Fatal(err)
	}
	if got, _ := h.History(ctx, "t", backends.HistoryRequest{}); got.Epoch == "" || got.Epoch == before.Epoch || got.Offset != 0 {
		t.Fatalf("history after expiry %+v", got)
	}
	_ = n.Publish(ctx, backends.Publication{Topic: "t", Data: []byte("3")})
	if got, _ := h.History(ctx, "t", backends.HistoryRequest{Limit: -1}); got.Offset != 1 || len(got.Publications) != 1 || got.Publications[0].Offset != 1 {
		t.Fatalf("offsets do not restart at 1 in the new epoch: %+v", got)
	}
}

// TestKeptTopicsBounded: publications to ever new topics keep at most
// MaxKept of them; transient publications keep none.
func TestKeptTopicsBounded(t *testing.T) {
	ctx := t.Context()
	b := memory.NewWithConfig(memory.Config{MaxKept: 50})
	n, err := b.Attach(ctx, backendtest.NewRecorder())
	if err != nil {
		t.Fatal(err)
	}
	h := n.(backends.History)
	for i := range 500 {
		_ = n.Publish(ctx, backends.Publication{Topic: fmt.Sprint("t", i), Data: []byte("x")})
		_ = n.Publish(ctx, backends.Publication{Topic: fmt.Sprint("signal", i), Data: []byte("x"), Transient: true})
	}
	kept := 0
	for i := range 500 {
		if r, _ := h.History(ctx, fmt.Sprint("t", i), backends.HistoryRequest{}); r.Epoch != "" {
			kept++
			if i < 450 {
				t.Errorf("topic t%d kept, older than the newest 50", i)
			}
		}
		if r, _ := h.History(ctx, fmt.Sprint("signal", i), backends.HistoryRequest{}); r.Epoch != "" {
			t.Errorf("a transient publication kept topic signal%d", i)
		}
	}
	if kept != 50 {
		t.Fatalf("%d topics kept, want 50", kept)
	}
	// A subscribed topic gets transient publications, not numbered.
	if _, err := n.Subscribe(ctx, "t499"); err != nil {
		t.Fatal(err)
	}
	_ = n.Publish(ctx, backends.Publication{Topic: "t499", Data: []byte("sig"), Transient: true})
	if r, _ := h.History(ctx, "t499", backends.HistoryRequest{Limit: -1}); r.Offset != 1 || len(r.Publications) != 1 {
		t.Fatalf("history after a transient publication %+v", r)
	}
}
