package redis

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"testing"

	goredis "github.com/redis/go-redis/v9"

	"github.com/ssebridge/ssebridge/backends"
	"github.com/ssebridge/ssebridge/internal/redistest"
)

// TestCluster runs scenarios that touch many slots on a three-master
// Redis Cluster: every script and XREAD stays in one slot (no CROSSSLOT),
// refused routes create no key on any master, and claims read the old
// owner's log in its slot.
func TestCluster(t *testing.T) {
	t.Parallel()
	cl := redistest.StartCluster(t)
	c := goredis.NewClusterClient(&goredis.ClusterOptions{Addrs: cl.Addrs(), PoolSize: 40})
	t.Cleanup(func() { _ = c.Close() })
	cfg := testConfig(c, cl.Prefix())
	cfg.InboxLength = 100000
	b := newBackend(t, cfg)
	a, ra := attachNode(t, b)
	o, ro := attachNode(t, b)

	t.Run("RefusedRoutesWriteNothing", func(t *testing.T) {
		before := cl.Keys(t)
		var raw [12]byte
		for range 300 {
			_, _ = rand.Read(raw[:])
			id := base64.RawURLEncoding.EncodeToString(raw[:])
			if err := o.Route(bg, id, []byte("x")); !errors.Is(err, backends.ErrUnknownSession) {
				t.Fatalf("Route(%s) = %v", id, err)
			}
			if err := o.routeTo(bg, id, "s", []byte("x")); !errors.Is(err, backends.ErrUnknownSession) {
				t.Fatalf("routeTo(forged node %s) = %v", id, err)
			}
		}
		if after := cl.Keys(t); !slices.Equal(before, after) {
			t.Fatalf("keys changed:\nbefore %q\nafter  %q", before, after)
		}
	})

	t.Run("ManySessionsAndTopics", func(t *testing.T) {
		// Sessions and topics spread over the slots of all masters.
		for i := range 50 {
			mustRegister(t, a, ra, fmt.Sprint("c", i))
		}
		for i := range 40 {
			mustSubscribe(t, a, fmt.Sprint("topic", i))
		}
		for i := range 50 {
			if err := o.Route(bg, fmt.Sprint("c", i), []byte(strconv.Itoa(i))); err != nil {
				t.Fatal(err)
			}
		}
		for i := range 40 {
			mustPublish(t, o, fmt.Sprint("topic", i), strconv.Itoa(i))
		}
		ra.WaitUpstream(t, 50)
		pubs := ra.WaitPublications(t, 40)
		seen := map[backends.Position]bool{}
		for i, p := range pubs {
			if p.Mark != uint64(i+1) || seen[p.Position] {
				t.Fatalf("publication %d: %+v", i, p)
			}
			seen[p.Position] = true
		}
		if err := a.refreshSessions(bg); err != nil {
			t.Fatalf("refresh across slots: %v", err)
		}
		if err := a.refreshTopics(bg); err != nil {
			t.Fatalf("refresh across slots: %v", err)
		}
	})

	t.Run("ClaimWithMarks", func(t *testing.T) {
		mustRegister(t, a, ra, "cs")
		if err := a.SetSessionTopic(bg, "cs", "topic1", ""); err != nil {
			t.Fatal(err)
		}
		if err := a.SetSessionTopic(bg, "cs", "topic2", ""); err != nil {
			t.Fatal(err)
		}
		n0 := len(ra.WaitPublications(t, 40))
		mustPublish(t, o, "topic1", "a")
		ra.WaitPublications(t, n0+1)
		mustPublish(t, o, "topic2", "b")
		pubs := ra.WaitPublications(t, n0+2)
		ro.Accept("cs")
		// The client got "a" (mark n0+1), not "b".
		s, err := o.Claim(bg, "cs", backends.Cursor{Seq: 3, Mark: uint64(n0 + 1)})
		if err != nil {
			t.Fatal(err)
		}
		if got, err := replayAll(o, "topic2", s.Topics["topic2"], pubs[n0+1].Position); err != nil || fmt.Sprint(got) != "[b]" {
			t.Fatalf("topic2 missed %q, %v", got, err)
		}
		if got, err := replayAll(o, "topic1", s.Topics["topic1"], pubs[n0].Position); err != nil || got != nil {
			t.Fatalf("topic1 missed %q, %v", got, err)
		}
		ra.WaitReleased(t, "cs")
	})

	t.Run("Close", func(t *testing.T) {
		if err := a.Close(); err != nil {
			t.Fatal(err)
		}
		for _, k := range cl.Keys(t) {
			if k == a.alive || k == a.inbox || slices.Contains(keysWith([]string{k}, ":wake:"+a.id), k) {
				t.Errorf("Close left %s", k)
			}
		}
	})
}
