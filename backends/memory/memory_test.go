package memory_test

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/ssebridge/ssebridge/backends"
	"github.com/ssebridge/ssebridge/backends/backendtest"
	"github.com/ssebridge/ssebridge/backends/memory"
)

func TestConformance(t *testing.T) {
	backendtest.Run(t, func(*testing.T) backends.Backend { return memory.New() })
}

func TestCountsReturnToZero(t *testing.T) {
	b := memory.New()
	r := backendtest.NewRecorder()
	n, err := b.Attach(t.Context(), r)
	if err != nil {
		t.Fatal(err)
	}
	if err := n.RegisterSession(t.Context(), "s", backends.SessionInfo{}); err != nil {
		t.Fatal(err)
	}
	if _, err := n.Subscribe(t.Context(), "t"); err != nil {
		t.Fatal(err)
	}
	if b.Sessions() != 1 || b.Topics() != 1 {
		t.Fatalf("sessions %d topics %d, want 1 and 1", b.Sessions(), b.Topics())
	}
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	if b.Sessions() != 0 || b.Topics() != 0 {
		t.Fatalf("after Close: sessions %d topics %d, want 0 and 0", b.Sessions(), b.Topics())
	}
}

func TestHistoryLength(t *testing.T) {
	b := memory.NewWithConfig(memory.Config{HistoryLength: 3})
	r := backendtest.NewRecorder()
	n, err := b.Attach(t.Context(), r)
	if err != nil {
		t.Fatal(err)
	}
	start, err := n.Subscribe(t.Context(), "t")
	if err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		if err := n.Publish(t.Context(), backends.Publication{Topic: "t", Data: []byte{byte('a' + i)}}); err != nil {
			t.Fatal(err)
		}
	}
	got := r.WaitPublications(t, 5)
	if err := n.Replay(t.Context(), "t", start, got[4].Position, func(backends.Publication) {}); !errors.Is(err, backends.ErrGap) {
		t.Fatalf("Replay of a trimmed range = %v, want ErrGap", err)
	}
	var kept []byte
	if err := n.Replay(t.Context(), "t", got[1].Position, got[4].Position, func(p backends.Publication) { kept = append(kept, p.Data...) }); err != nil {
		t.Fatal(err)
	}
	if string(kept) != "cde" {
		t.Fatalf("replayed %q, want cde", kept)
	}
}

func TestMarkLogLength(t *testing.T) {
	b := memory.NewWithConfig(memory.Config{MarkLogLength: 2})
	ra, rc := backendtest.NewRecorder(), backendtest.NewRecorder()
	a, _ := b.Attach(t.Context(), ra)
	c, _ := b.Attach(t.Context(), rc)
	if err := a.RegisterSession(t.Context(), "s", backends.SessionInfo{}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Subscribe(t.Context(), "t"); err != nil {
		t.Fatal(err)
	}
	for range 4 {
		if err := a.Publish(t.Context(), backends.Publication{Topic: "t"}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.Claim(t.Context(), "s", backends.Cursor{Seq: 3, Mark: 1}); !errors.Is(err, backends.ErrGap) {
		t.Fatalf("Claim from a mark no longer kept = %v, want ErrGap", err)
	}
	if _, err := c.Claim(t.Context(), "s", backends.Cursor{Seq: 3, Mark: 2}); err != nil {
		t.Fatalf("Claim from the oldest kept mark: %v", err)
	}
}

// TestPresencePruned: expired entries and emptied channels do not stay in
// memory: a channel is pruned when used, others by later AddPresence calls.
func TestPresencePruned(t *testing.T) {
	b := memory.New()
	n, err := b.Attach(t.Context(), backendtest.NewRecorder())
	if err != nil {
		t.Fatal(err)
	}
	p := n.(backends.Presence)
	for i := range 20 {
		if err := p.AddPresence(t.Context(), fmt.Sprint("ch", i), backends.PresenceInfo{Client: "c"}, 50*time.Millisecond); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.AddPresence(t.Context(), "removed", backends.PresenceInfo{Client: "c"}, time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := p.RemovePresence(t.Context(), "removed", "c"); err != nil {
		t.Fatal(err)
	}
	if got := b.PresenceChannels(); got != 20 {
		t.Fatalf("%d channels with presence, want 20", got)
	}
	time.Sleep(60 * time.Millisecond)
	if c, _, err := p.PresenceStats(t.Context(), "ch0"); err != nil || c != 0 {
		t.Fatalf("PresenceStats(ch0) = %d, %v", c, err)
	}
	if got := b.PresenceChannels(); got != 19 {
		t.Fatalf("after reading ch0: %d channels with presence, want 19", got)
	}
	// Each AddPresence sweeps a few other channels.
	for i := 0; b.PresenceChannels() > 1; i++ {
		if i == 100 {
			t.Fatalf("after %d AddPresence: %d channels with presence, want 1", i, b.PresenceChannels())
		}
		if err := p.AddPresence(t.Context(), "live", backends.PresenceInfo{Client: "c"}, time.Minute); err != nil {
			t.Fatal(err)
		}
	}
}
