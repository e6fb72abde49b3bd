package redis

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/ssebridge/ssebridge/backends"
)

// TestRedisRestart: while Redis is down, Route and Publish fail with
// ErrUnavailable and the node reports the failure; once Redis is back,
// empty, the node re-creates its keys and session records by itself and
// routing and publishing work again.
func TestRedisRestart(t *testing.T) {
	t.Parallel()
	s, c := startServer(t)
	logs := &logBuffer{}
	cfg := testConfig(c, s.Prefix())
	cfg.NodeTTL = 900 * time.Millisecond
	cfg.BlockTimeout = 300 * time.Millisecond
	cfg.Logger = logs.logger()
	b := newBackend(t, cfg)
	a, ra := attachNode(t, b)
	o, _ := attachNode(t, b)
	mustRegister(t, a, ra, "s1")
	if err := a.SetSessionTopic(bg, "s1", "t", mustSubscribe(t, a, "t")); err != nil {
		t.Fatal(err)
	}
	if err := o.Route(bg, "s1", []byte("before")); err != nil {
		t.Fatal(err)
	}
	mustPublish(t, o, "t", "before")
	ra.WaitUpstream(t, 1)
	ra.WaitPublications(t, 1)

	s.Kill(t)
	if err := o.Route(bg, "s1", []byte("down")); !errors.Is(err, backends.ErrUnavailable) {
		t.Fatalf("Route while Redis is down = %v, want ErrUnavailable", err)
	}
	if err := o.Publish(bg, backends.Publication{Topic: "t", Data: []byte("down")}); !errors.Is(err, backends.ErrUnavailable) {
		t.Fatalf("Publish while Redis is down = %v, want ErrUnavailable", err)
	}
	if _, err := o.Claim(bg, "s1", backends.Cursor{}); !errors.Is(err, backends.ErrUnavailable) {
		t.Fatalf("Claim while Redis is down = %v, want ErrUnavailable", err)
	}
	eventually(t, 3*time.Second, "the node reports the failure", func() bool { return len(ra.Errors()) > 0 })
	time.Sleep(500 * time.Millisecond)
	s.Restart(t)
	restarted := time.Now()

	eventually(t, 5*time.Second, "Route works again", func() bool {
		return o.Route(bg, "s1", []byte("after")) == nil
	})
	got := ra.WaitUpstream(t, 2)
	if got[1].Data != "after" {
		t.Fatalf("after the restart got %+v", got[1])
	}
	eventually(t, 5*time.Second, "Publish reaches the subscribed node", func() bool {
		if err := o.Publish(bg, backends.Publication{Topic: "t", Data: []byte("after")}); err != nil {
			return false
		}
		_, n := ra.Counts()
		return n >= 2
	})
	t.Logf("recovered %v after the restart", time.Since(restarted))
	p := ra.WaitPublications(t, 2)[1]
	if string(p.Data) != "after" || p.Mark != 2 {
		t.Fatalf("publication after the restart: %+v, want mark 2", p)
	}
	for _, err := range ra.Errors() {
		if !errors.Is(err, backends.ErrUnavailable) && !strings.Contains(err.Error(), "inbox was gone") {
			t.Errorf("reported %v", err)
		}
	}
	// The session record was re-created from the node's mirror, with its
	// topic: the session is still resumable.
	if sess, err := o.Claim(bg, "s1", backends.Cursor{}); err != nil || sess.Namespace != "/ns" || len(sess.Topics) != 1 {
		t.Fatalf("Claim after the restart = %+v, %v", sess, err)
	}
	ra.WaitReleased(t, "s1")
	for _, want := range []string{"recovered", "re-created missing session records"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, logs.String())
		}
	}
}
