package redis

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/ssebridge/ssebridge/backends"
)

// kill stops the node as a crash would: its loops end and its Receiver
// gets no more calls, but none of its keys is deleted.
func (n *node) kill() {
	n.closed.Store(true)
	n.subMu.Lock() // no reader starts after this
	n.subMu.Unlock()
	n.cancel()
	<-n.hbDone
	n.readers.Wait()
	n.b.detach(n)
}

// TestNodeDeath: a node whose heartbeat stops is dead for Route within
// NodeTTL, while Owner still names it; its sessions can be claimed
// meanwhile; its session records expire after SessionTTL; and every key of
// the prefix goes.
func TestNodeDeath(t *testing.T) {
	t.Parallel()
	s, c := startServer(t)
	cfg := testConfig(c, s.Prefix())
	cfg.NodeTTL = 600 * time.Millisecond
	cfg.SessionTTL = 1200 * time.Millisecond
	cfg.HistoryAge = 1500 * time.Millisecond
	cfg.BlockTimeout = 200 * time.Millisecond
	b := newBackend(t, cfg)
	a, ra := attachNode(t, b)
	o, ro := attachNode(t, b)
	mustRegister(t, a, ra, "s1")
	mustRegister(t, a, ra, "s2")
	for _, id := range []string{"s1", "s2"} {
		if err := a.SetSessionTopic(bg, id, "t", mustSubscribe(t, a, "t")); err != nil {
			t.Fatal(err)
		}
	}
	mustSubscribe(t, o, "t")
	mustPublish(t, o, "t", "p1")
	mustPublish(t, o, "t", "p2")
	pubs := ra.WaitPublications(t, 2)
	ro.WaitPublications(t, 2)
	if err := o.Route(bg, "s1", []byte("alive")); err != nil {
		t.Fatal(err)
	}
	ra.WaitUpstream(t, 1)

	a.kill()
	died := time.Now()
	eventually(t, cfg.NodeTTL+500*time.Millisecond, "the dead node's alive key expired", func() bool {
		return c.Exists(bg, a.alive).Val() == 0
	})
	if err := o.Route(bg, "s1", []byte("x")); !errors.Is(err, backends.ErrUnknownSession) {
		t.Fatalf("Route to a dead node's session = %v, want ErrUnknownSession", err)
	}
	// Owner names the dead owner: the session can still be claimed.
	if owner, err := o.Owner(bg, "s1"); err != nil || owner != a.ID() {
		t.Fatalf("Owner of a dead node's session = %q, %v; want %q", owner, err, a.ID())
	}
	t.Logf("dead after %v (NodeTTL %v)", time.Since(died), cfg.NodeTTL)
	// The refused routes wrote nothing to the dead node's inbox (which
	// may still hold the "alive" message if kill came before its trim).
	if l := c.XLen(bg, a.inbox).Val(); l > 1 {
		t.Fatalf("dead node's inbox holds %d entries", l)
	}

	// The dead node's session is resumable: the client had p1 (mark 1).
	ro.Accept("s2")
	sess, err := o.Claim(bg, "s2", backends.Cursor{Seq: 3, Mark: 1})
	if err != nil {
		t.Fatalf("Claim of a dead node's session: %v", err)
	}
	if got, err := replayAll(o, "t", sess.Topics["t"], pubs[1].Position); err != nil || strings.Join(got, ",") != "p2" {
		t.Fatalf("replay after the claim = %q, %v; want p2", got, err)
	}

	eventually(t, cfg.SessionTTL+time.Second, "the dead node's session record expired", func() bool {
		return c.Exists(bg, b.sessionKey("s1")).Val() == 0
	})
	if c.Exists(bg, b.sessionKey("s2")).Val() != 1 {
		t.Fatal("the claimed session's record expired: its new owner does not refresh it")
	}
	if err := o.Close(); err != nil {
		t.Fatal(err)
	}
	eventually(t, 6*time.Second, "every key expired", func() bool { return len(s.Keys(t)) == 0 })
}
