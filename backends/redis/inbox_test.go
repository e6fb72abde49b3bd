package redis

import (
	"errors"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/ssebridge/ssebridge/backends"
	"github.com/ssebridge/ssebridge/backends/backendtest"
)

// TestInboxTrimmed: once 10 000 routed messages are delivered, the inbox
// holds at most one batch.
func TestInboxTrimmed(t *testing.T) {
	t.Parallel()
	s, c := startServer(t)
	b := newBackend(t, testConfig(c, s.Prefix()))
	a, ra := attachNode(t, b)
	o, _ := attachNode(t, b)
	const senders, each = 10, 1000
	for i := range senders {
		mustRegister(t, a, ra, fmt.Sprint("s", i))
	}
	var wg sync.WaitGroup
	for i := range senders {
		wg.Go(func() {
			session := fmt.Sprint("s", i)
			for j := range each {
				if err := o.Route(bg, session, []byte(strconv.Itoa(j))); err != nil {
					t.Errorf("Route: %v", err)
					return
				}
			}
		})
	}
	wg.Wait()
	got := ra.WaitUpstream(t, senders*each)
	next := map[string]int{}
	for _, u := range got {
		if u.Data != strconv.Itoa(next[u.Session]) {
			t.Fatalf("session %s: got %s, want %d", u.Session, u.Data, next[u.Session])
		}
		next[u.Session]++
	}
	eventually(t, 2*time.Second, "inbox trimmed", func() bool {
		l, err := c.XLen(bg, a.inbox).Result()
		return err == nil && l <= readBatch
	})
}

// TestInboxFull: a node that cannot keep up makes Route fail with
// ErrUnavailable once its inbox holds InboxLength messages; nothing
// accepted is lost, and routing works again once it caught up.
func TestInboxFull(t *testing.T) {
	t.Parallel()
	s, c := startServer(t)
	cfg := testConfig(c, s.Prefix())
	cfg.InboxLength = 50
	b := newBackend(t, cfg)
	b.queueLimit = 2 * readBatch // the node stops reading after 256 queued messages
	a, ra := attachNode(t, b)
	o, _ := attachNode(t, b)
	gate := make(chan struct{})
	ra.OnDeliver = func(string, []byte) { <-gate }
	mustRegister(t, a, ra, "slow")
	accepted := 0
	for ; ; accepted++ {
		err := o.Route(bg, "slow", []byte(strconv.Itoa(accepted)))
		if errors.Is(err, backends.ErrUnavailable) {
			break
		}
		if err != nil {
			t.Fatalf("Route %d: %v", accepted, err)
		}
		if accepted > 5000 {
			t.Fatal("Route never reported a full inbox")
		}
	}
	if accepted < cfg.InboxLength {
		t.Fatalf("inbox full after %d messages, want at least %d", accepted, cfg.InboxLength)
	}
	if l := c.XLen(bg, a.inbox).Val(); l < int64(cfg.InboxLength) {
		t.Fatalf("inbox holds %d entries when Route says it is full", l)
	}
	close(gate)
	got := ra.WaitUpstream(t, accepted)
	for i, u := range got {
		if u.Data != strconv.Itoa(i) {
			t.Fatalf("message %d is %s: lost or reordered", i, u.Data)
		}
	}
	if len(got) != accepted {
		t.Fatalf("%d delivered, %d accepted", len(got), accepted)
	}
	// The reader trims what it read right after each read, which may
	// trail the last delivery by a moment.
	var err error
	eventually(t, time.Second, "Route accepted after the inbox drained", func() bool {
		err = o.Route(bg, "slow", []byte("again"))
		return !errors.Is(err, backends.ErrUnavailable)
	})
	if err != nil {
		t.Fatalf("Route after the inbox drained: %v", err)
	}
	ra.WaitUpstream(t, accepted+1)
	eventually(t, time.Second, "the queues drained", func() bool { return a.disp.queued() == 0 })
}

// TestSlowSessionDoesNotBlockOthers: a Deliver that blocks holds up its
// own session only.
func TestSlowSessionDoesNotBlockOthers(t *testing.T) {
	t.Parallel()
	s, c := startServer(t)
	b := newBackend(t, testConfig(c, s.Prefix()))
	a, ra := attachNode(t, b)
	gate := make(chan struct{})
	ra.OnDeliver = func(session string, _ []byte) {
		if session == "slow" {
			<-gate
		}
	}
	mustRegister(t, a, ra, "slow")
	mustRegister(t, a, ra, "fast")
	for i := range 3 {
		if err := a.Route(bg, "slow", []byte(fmt.Sprint("slow", i))); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 100 {
		if err := a.Route(bg, "fast", []byte(fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
	got := ra.WaitUpstream(t, 100)
	for _, u := range got {
		if u.Session != "fast" {
			t.Fatalf("got %+v before the slow session was unblocked", u)
		}
	}
	close(gate)
	got = ra.WaitUpstream(t, 103)
	var slow []string
	for _, u := range got {
		if u.Session == "slow" {
			slow = append(slow, u.Data)
		}
	}
	if fmt.Sprint(slow) != "[slow0 slow1 slow2]" {
		t.Fatalf("slow session got %v", slow)
	}
}

// TestForwardAfterClaim: a message that reached the old owner after a
// claim (Route read the record before the claim moved it) is forwarded to
// the new owner once; one the new owner refuses too is dropped and
// reported.
func TestForwardAfterClaim(t *testing.T) {
	t.Parallel()
	s, c := startServer(t)
	b := newBackend(t, testConfig(c, s.Prefix()))
	a, ra := attachNode(t, b)
	n2, r2 := attachNode(t, b)
	mustRegister(t, a, ra, "s1")
	r2.Accept("s1")
	if _, err := n2.Claim(bg, "s1", backends.Cursor{}); err != nil {
		t.Fatal(err)
	}
	ra.WaitReleased(t, "s1")
	if err := n2.routeTo(bg, a.id, "s1", []byte("late")); err != nil {
		t.Fatal(err)
	}
	if got := r2.WaitUpstream(t, 1); got[0] != (backendtest.Upstream{Session: "s1", Data: "late"}) {
		t.Fatalf("new owner got %+v", got)
	}
	if n, _ := ra.Counts(); n != 0 {
		t.Fatalf("old owner delivered %d messages", n)
	}
	// Neither node has the session: the message is dropped, reported once
	// by each node, and not forwarded back and forth.
	r2.Release("s1")
	if err := n2.routeTo(bg, a.id, "s1", []byte("lost")); err != nil {
		t.Fatal(err)
	}
	eventually(t, 2*time.Second, "drop reported", func() bool { return len(r2.Errors()) == 1 })
	time.Sleep(100 * time.Millisecond)
	if len(ra.Errors()) != 0 || len(r2.Errors()) != 1 {
		t.Fatalf("errors: old owner %v, new owner %v", ra.Errors(), r2.Errors())
	}
	if !errors.Is(r2.Errors()[0], backends.ErrUnknownSession) {
		t.Fatalf("reported %v", r2.Errors()[0])
	}
}

// TestInboxFullBytes: the memory bound also counts bytes: with large
// messages the node stops reading long before 4096 of them.
func TestInboxFullBytes(t *testing.T) {
	t.Parallel()
	s, c := startServer(t)
	cfg := testConfig(c, s.Prefix())
	cfg.InboxLength = 10
	b := newBackend(t, cfg)
	b.queueBytes = 1 << 20
	a, ra := attachNode(t, b)
	o, _ := attachNode(t, b)
	gate := make(chan struct{})
	ra.OnDeliver = func(string, []byte) { <-gate }
	mustRegister(t, a, ra, "big")
	msg := make([]byte, 64<<10)
	accepted := 0
	for ; accepted < 1000; accepted++ {
		msg[0] = byte(accepted)
		err := o.Route(bg, "big", msg)
		if errors.Is(err, backends.ErrUnavailable) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	// 1 MiB of 64 KiB messages in memory (one batch may overshoot) plus
	// 10 in the inbox.
	if accepted > 2*16+10+readBatch/8 || accepted < 10 {
		t.Fatalf("accepted %d messages of 64 KiB before the inbox was full", accepted)
	}
	close(gate)
	got := ra.WaitUpstream(t, accepted)
	for i, u := range got {
		if u.Data[0] != byte(i) || len(u.Data) != len(msg) {
			t.Fatalf("message %d lost or reordered", i)
		}
	}
}
