package redis

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	goredis "github.com/redis/go-redis/v9"

	"github.com/ssebridge/ssebridge/backends"
)

// countHook counts the commands a client sends.
type countHook struct{ n atomic.Int64 }

func (h *countHook) DialHook(next goredis.DialHook) goredis.DialHook { return next }

func (h *countHook) ProcessHook(next goredis.ProcessHook) goredis.ProcessHook {
	return func(ctx context.Context, cmd goredis.Cmder) error {
		h.n.Add(1)
		return next(ctx, cmd)
	}
}

func (h *countHook) ProcessPipelineHook(next goredis.ProcessPipelineHook) goredis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []goredis.Cmder) error {
		h.n.Add(int64(len(cmds)))
		return next(ctx, cmds)
	}
}

func hostileIDs() map[string]string {
	return map[string]string{
		"empty":      "",
		"too long":   strings.Repeat("a", 65),
		"braces":     "x}{n.other}",
		"open brace": "{s.victim",
		"colon":      "a:b",
		"glob":       "a*",
		"space":      "a b",
		"newline":    "a\nb",
		"nul":        "a\x00b",
		"non-ascii":  "sessión",
		"100 KB":     strings.Repeat("z", 100<<10),
	}
}

// TestHostileIDs: malformed session and node ids are refused with
// ErrUnknownSession before any Redis call, and create no key.
func TestHostileIDs(t *testing.T) {
	t.Parallel()
	s, c := startServer(t)
	hook := &countHook{}
	c.AddHook(hook)
	b := newBackend(t, testConfig(c, s.Prefix()))
	a, ra := attachNode(t, b)
	mustRegister(t, a, ra, "good")
	before := s.Keys(t)

	for name, id := range hostileIDs() {
		calls := hook.n.Load()
		checks := map[string]error{
			"Route":     a.Route(bg, id, []byte("x")),
			"Claim":     func() error { _, err := a.Claim(bg, id, backends.Cursor{Seq: 1, Mark: 1}); return err }(),
			"Owner":     func() error { _, err := a.Owner(bg, id); return err }(),
			"SetTopic":  a.SetSessionTopic(bg, id, "t", ""),
			"DropTopic": a.RemoveSessionTopic(bg, id, "t"),
			"Register":  a.RegisterSession(bg, id, backends.SessionInfo{}),
			"routeTo":   a.routeTo(bg, id, "good", []byte("x")), // as a node id
			"routeTo2":  a.routeTo(bg, a.id, id, []byte("x")),   // as a session id
		}
		for op, err := range checks {
			if !errors.Is(err, backends.ErrUnknownSession) {
				t.Errorf("%s(%s id): %v, want ErrUnknownSession", op, name, err)
			}
			if len(id) > 100 && err != nil && len(err.Error()) > 1000 {
				t.Errorf("%s(%s id): error message of %d bytes", op, name, len(err.Error()))
			}
		}
		if err := a.RemoveSession(bg, id); err != nil {
			t.Errorf("RemoveSession(%s id) = %v, want nil (unknown)", name, err)
		}
		if got := hook.n.Load() - calls; got != 0 {
			t.Errorf("%s id: %d Redis commands sent, want none", name, got)
		}
	}

	// Valid-looking node ids that are not alive: refused by the script,
	// no key created.
	for _, id := range []string{"AAAAAAAAAAAAAAAAAAAAAA", "forged-node", strings.Repeat("n", 64)} {
		if err := a.routeTo(bg, id, "good", []byte("x")); !errors.Is(err, backends.ErrUnknownSession) {
			t.Errorf("routeTo(forged node %q) = %v, want ErrUnknownSession", id, err)
		}
	}
	// A record naming a forged owner (written behind the backend's back)
	// cannot make Route build a key outside the owner's slot.
	if err := c.HSet(bg, b.sessionKey("forged"), "o", "x}{evil", "v", "1").Err(); err != nil {
		t.Fatal(err)
	}
	if err := a.Route(bg, "forged", []byte("x")); !errors.Is(err, backends.ErrUnknownSession) {
		t.Errorf("Route to a record with a malformed owner = %v, want ErrUnknownSession", err)
	}
	c.Del(bg, b.sessionKey("forged"))

	if after := s.Keys(t); !slices.Equal(before, after) {
		t.Fatalf("keys changed:\nbefore %q\nafter  %q", before, after)
	}
}

// TestHostileFlood: 2000 routes to random, valid-looking, unknown session
// ids are all refused and write nothing.
func TestHostileFlood(t *testing.T) {
	t.Parallel()
	s, c := startServer(t)
	b := newBackend(t, testConfig(c, s.Prefix()))
	a, _ := attachNode(t, b)
	before := s.Keys(t)
	var wg sync.WaitGroup
	var refused atomic.Int64
	for range 8 {
		wg.Go(func() {
			var raw [12]byte
			for range 250 {
				_, _ = rand.Read(raw[:])
				id := base64.RawURLEncoding.EncodeToString(raw[:])
				err := a.Route(bg, id, []byte("flood"))
				if errors.Is(err, backends.ErrUnknownSession) {
					refused.Add(1)
				} else {
					t.Errorf("Route(%s) = %v, want ErrUnknownSession", id, err)
					return
				}
			}
		})
	}
	wg.Wait()
	if refused.Load() != 2000 {
		t.Fatalf("%d of 2000 refused", refused.Load())
	}
	if after := s.Keys(t); !slices.Equal(before, after) {
		t.Fatalf("keys changed:\nbefore %q\nafter  %q", before, after)
	}
}

// TestHostileData: large and binary messages and publications go through
// intact; to an unknown session they write nothing.
func TestHostileData(t *testing.T) {
	t.Parallel()
	s, c := startServer(t)
	b := newBackend(t, testConfig(c, s.Prefix()))
	a, ra := attachNode(t, b)
	o, _ := attachNode(t, b)
	mustRegister(t, a, ra, "s1")
	big := make([]byte, 8<<20)
	_, _ = rand.Read(big)
	before := s.Keys(t)
	if err := o.Route(bg, "nobody", big); !errors.Is(err, backends.ErrUnknownSession) {
		t.Fatalf("Route of 8 MB to an unknown session = %v", err)
	}
	if after := s.Keys(t); !slices.Equal(before, after) {
		t.Fatalf("keys changed:\nbefore %q\nafter  %q", before, after)
	}
	if err := o.Route(bg, "s1", big); err != nil {
		t.Fatalf("Route of 8 MB: %v", err)
	}
	if got := ra.WaitUpstream(t, 1); !bytes.Equal([]byte(got[0].Data), big) {
		t.Fatal("8 MB message changed on its way")
	}
	mustSubscribe(t, a, "bin")
	if err := o.Publish(bg, backends.Publication{Topic: "bin", Data: big, Namespace: "{ns}", Exclude: "x:y"}); err != nil {
		t.Fatal(err)
	}
	p := ra.WaitPublications(t, 1)[0]
	if !bytes.Equal(p.Data, big) || p.Namespace != "{ns}" || p.Exclude != "x:y" {
		t.Fatal("8 MB publication changed on its way")
	}
	// Topic names with key syntax stay inside their bucket's slot.
	for _, topic := range []string{"}{n.x}:alive", "a:b:c", strings.Repeat("t", 1024)} {
		mustSubscribe(t, a, topic)
		if !strings.HasPrefix(b.topicKey(topic), b.cfg.Prefix+":{t") {
			t.Fatalf("topic key %q", b.topicKey(topic))
		}
	}
	if _, err := a.Subscribe(bg, strings.Repeat("t", 1025)); err == nil {
		t.Fatal("Subscribe to a topic of 1025 bytes succeeded")
	}
	if err := a.Publish(bg, backends.Publication{}); err == nil {
		t.Fatal("Publish without a topic succeeded")
	}
}
