package crossws_test

import (
	"testing"

	"github.com/ssebridge/ssebridge/backends/memory"
	"github.com/ssebridge/ssebridge/handler"
	"github.com/ssebridge/ssebridge/internal/ssetest"
)

// Seqs in a Last-Event-ID are bounded (below 2^63): a larger one, which no
// server wrote, gives a new peer; the largest accepted one still leaves room
// for the resumed log, whose frames stream normally.
func TestTakeoverSeqBounds(t *testing.T) {
	t.Parallel()
	b := memory.New()
	recA, recB := newRecorder(), newRecorder()
	a := newServer(t, handler.Config{Backend: b, Hooks: subscribingHooks(recA, "t")})
	o := newServer(t, handler.Config{Backend: b, Hooks: subscribingHooks(recB, "t")})
	st, id := a.open()
	ssetest.Recv(t, recA.opens, "Open on A")
	st.close()
	waitDetached(t, a, id)

	for _, seq := range []string{"18446744073709551614", "9223372036854775808"} {
		st := o.get("Last-Event-ID", id+"."+seq)
		if got := st.resp.Header.Get("X-Crossws-Id"); got == id || got == "" {
			t.Fatalf("seq %s: peer %q, want a new one", seq, got)
		}
		st.close()
	}
	last := id + ".9223372036854775807"
	st2 := o.get("Last-Event-ID", last)
	if got := st2.resp.Header.Get("X-Crossws-Id"); got != id {
		t.Fatalf("resume gave peer %q, want %q", got, id)
	}
	st2.ev.Expect(t, "crossws-id", id, last)
	for i := 1; i <= 2; i++ {
		if err := o.h.Publish("t", "p"+itoa(i)); err != nil {
			t.Fatal(err)
		}
	}
	for i, seq := range []string{"9223372036854775808", "9223372036854775809"} {
		it := st2.ev.Event(t)
		if it.Data != "p"+itoa(i+1) || !ssetest.SameID(it.ID, id+"."+seq) {
			t.Fatalf("event %+v, want p%d with id %s.%s", it, i+1, id, seq)
		}
	}
}
