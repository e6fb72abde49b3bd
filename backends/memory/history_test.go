package memory_test

import (
	"context"
	"errors"
	"testing"

	"github.com/ssebridge/ssebridge/backends"
	"github.com/ssebridge/ssebridge/backends/backendtest"
	"github.com/ssebridge/ssebridge/backends/memory"
)

// A topic's history outlives the last node's subscription while a session
// record names the topic: in a takeover, the old owner's engine leaves the
// topic (releasing the peer) before the claimer joins it.
func TestHistoryKeptForClaimedSession(t *testing.T) {
	ctx := context.Background()
	b := memory.New()
	ra, rc := backendtest.NewRecorder(), backendtest.NewRecorder()
	a, _ := b.Attach(ctx, ra)
	c, _ := b.Attach(ctx, rc)
	ra.Accept("s")
	if err := a.RegisterSession(ctx, "s", backends.SessionInfo{Namespace: "/"}); err != nil {
		t.Fatal(err)
	}
	start, _ := a.Subscribe(ctx, "t")
	if err := a.SetSessionTopic(ctx, "s", "t", start); err != nil {
		t.Fatal(err)
	}
	if err := a.Publish(ctx, backends.Publication{Topic: "t", Data: []byte("missed")}); err != nil {
		t.Fatal(err)
	}
	ra.WaitPublications(t, 1)
	s, err := c.Claim(ctx, "s", backends.Cursor{})
	if err != nil {
		t.Fatal(err)
	}
	ra.WaitReleased(t, "s")
	_ = a.Unsubscribe(ctx, "t") // A's engine: the released peer leaves its topics
	upto, _ := c.Subscribe(ctx, "t")
	var got []string
	err = c.Replay(ctx, "t", s.Topics["t"], upto, func(p backends.Publication) { got = append(got, string(p.Data)) })
	if len(got) != 1 && !errors.Is(err, backends.ErrGap) {
		t.Fatalf("replay for the claimed session = %q, %v; want [missed] (or ErrGap)", got, err)
	}
}
