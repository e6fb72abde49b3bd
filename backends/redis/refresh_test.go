package redis

import (
	"testing"
	"time"
)

// TestRefreshLeavesOthersRecords: the heartbeat refreshes only the records
// that still name the node; a record another node owns (the release
// notice was lost) is left alone, and the node releases the session once.
func TestRefreshLeavesOthersRecords(t *testing.T) {
	t.Parallel()
	s, c := startServer(t)
	b := newBackend(t, testConfig(c, s.Prefix()))
	a, ra := attachCounting(t, b)
	mustRegister(t, a, ra.Recorder, "mine")
	mustRegister(t, a, ra.Recorder, "lost")
	// Another node claimed "lost"; its notice never came.
	other := "AAAAAAAAAAAAAAAAAAAAAA"
	key := b.sessionKey("lost")
	if err := c.HSet(bg, key, "o", other, "v", "7").Err(); err != nil {
		t.Fatal(err)
	}
	long := 10 * b.cfg.SessionTTL
	c.PExpire(bg, key, long)
	c.PExpire(bg, b.sessionKey("mine"), time.Second)
	if err := a.refreshSessions(bg); err != nil {
		t.Fatal(err)
	}
	ra.WaitReleased(t, "lost")
	if ttl := c.PTTL(bg, key).Val(); ttl <= b.cfg.SessionTTL {
		t.Fatalf("the other node's record was refreshed: PTTL %v", ttl)
	}
	if ttl := c.PTTL(bg, b.sessionKey("mine")).Val(); ttl <= time.Second {
		t.Fatalf("the node's own record was not refreshed: PTTL %v", ttl)
	}
	if a.mirrored() != 1 {
		t.Fatalf("mirror holds %d sessions, want 1", a.mirrored())
	}
	// Again, also after NOSCRIPT (a restarted server): nothing more to
	// release.
	if err := c.ScriptFlush(bg).Err(); err != nil {
		t.Fatal(err)
	}
	if err := a.refreshSessions(bg); err != nil {
		t.Fatal(err)
	}
	if n := ra.n.Load(); n != 1 {
		t.Fatalf("released %d times, want 1", n)
	}
	if h := c.HGet(bg, key, "o").Val(); h != other {
		t.Fatalf("record owner changed to %q", h)
	}
}
