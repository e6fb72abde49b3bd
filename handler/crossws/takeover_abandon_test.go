package crossws_test

import (
	"testing"
	"time"

	"github.com/ssebridge/ssebridge/backends/memory"
	"github.com/ssebridge/ssebridge/handler"
	"github.com/ssebridge/ssebridge/internal/ssetest"
)

// A takeover that fails transiently leaves the session claimed by the node
// that tried, with no peer there. If the client never retries (it went
// away mid-takeover), the session must still end like any session whose
// client does not come back: its record removed after ReconnectGrace and
// the Close hook run once.
func TestFailedTakeoverWithoutRetryEndsTheSession(t *testing.T) {
	t.Parallel()
	fb := &flakyBackend{Backend: memory.New()}
	mem := fb.Backend.(*memory.Backend)
	recA, recB := newRecorder(), newRecorder()
	a := newServer(t, handler.Config{Backend: fb, Hooks: subscribingHooks(recA, "t")})
	o := newServer(t, handler.Config{Backend: fb, Hooks: subscribingHooks(recB, "t"), ReconnectGrace: 20 * time.Millisecond})
	st, id := a.open()
	ssetest.Recv(t, recA.opens, "Open on A")
	if err := a.h.Publish("t", "p1"); err != nil {
		t.Fatal(err)
	}
	last := expectMessage(t, st.ev, "p1", id, 1)
	st.close()
	waitDetached(t, a, id)
	fb.failReplays.Store(1)
	st2 := o.get("Last-Event-ID", last)
	if got := st2.resp.Header.Get("X-Crossws-Id"); got != "" {
		t.Fatalf("got peer %q, want a retry-later answer", got)
	}
	st2.ev.Rest(t)
	// The client never comes back. Well past B's grace period:
	time.Sleep(300 * time.Millisecond)
	if n := mem.Sessions(); n != 0 {
		t.Errorf("%d session records left %v after a failed takeover whose client never retried (grace 20ms); want 0", n, 300*time.Millisecond)
	}
	select {
	case <-recA.closes:
	case <-recB.closes:
	default:
		t.Errorf("no Close hook ran for session %s on either node", id)
	}
}
