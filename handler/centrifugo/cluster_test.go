package centrifugo_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/ssebridge/ssebridge/backends"
	"github.com/ssebridge/ssebridge/backends/memory"
	redisbackend "github.com/ssebridge/ssebridge/backends/redis"
	"github.com/ssebridge/ssebridge/handler"
	"github.com/ssebridge/ssebridge/handler/centrifugo"
	"github.com/ssebridge/ssebridge/internal/redistest"
)

// Two nodes sharing a backend: the stream on one, emulation requests and
// publications on the other.

// userConfig connects every client as the user named in its connect data,
// with open channels and an echo RPC.
func userConfig() centrifugo.Config {
	return centrifugo.Config{
		Channels: openChannels,
		Hooks: centrifugo.Hooks{
			Connecting: func(_ context.Context, e centrifugo.ConnectEvent) (centrifugo.ConnectReply, error) {
				var d struct{ User string }
				_ = json.Unmarshal(e.Data, &d)
				return centrifugo.ConnectReply{UserID: d.User}, nil
			},
			RPC: func(_ *centrifugo.Client, e centrifugo.RPCEvent) (centrifugo.RPCReply, error) {
				return centrifugo.RPCReply{Data: e.Data}, nil
			},
		},
	}
}

// backendsUnderTest returns the shared backends to run a cluster test on:
// one memory backend shared by two Handlers, and Redis.
func backendsUnderTest(t *testing.T) map[string]func(t *testing.T) (backends.Backend, backends.Backend) {
	return map[string]func(t *testing.T) (backends.Backend, backends.Backend){
		"memory": func(*testing.T) (backends.Backend, backends.Backend) {
			b := memory.New()
			return b, b
		},
		"redis": func(t *testing.T) (backends.Backend, backends.Backend) {
			srv := redistest.Start(t)
			mk := func() backends.Backend {
				c := goredis.NewClient(&goredis.Options{Addr: srv.Addr(), PoolSize: 32})
				t.Cleanup(func() { _ = c.Close() })
				b, err := redisbackend.New(redisbackend.Config{Client: c, Prefix: srv.Prefix()})
				if err != nil {
					t.Fatal(err)
				}
				return b
			}
			return mk(), mk()
		},
	}
}

func twoNodes(t *testing.T, mk func(t *testing.T) (backends.Backend, backends.Backend)) (a, b *server) {
	ba, bb := mk(t)
	return newServer(t, handler.Config{Backend: ba}, userConfig()), newServer(t, handler.Config{Backend: bb}, userConfig())
}

func TestCrossNode(t *testing.T) {
	for name, mk := range backendsUnderTest(t) {
		t.Run(name, func(t *testing.T) {
			a, b := twoNodes(t, mk)
			c := a.open(`{"connect":{"data":{"user":"u1"}},"id":1}`)
			if c.connect.Node != a.h.NodeID() || c.connect.Node == b.h.NodeID() {
				t.Fatalf("node %q", c.connect.Node)
			}
			// Commands posted to the other node reach the stream, in
			// order.
			c.send(b, `{"subscribe":{"channel":"x","recoverable":true},"id":2}`)
			r := c.reply()
			if r.ID != 2 || r.Subscribe == nil || r.Subscribe.Epoch == "" {
				t.Fatalf("subscribe %+v", r)
			}
			epoch := r.Subscribe.Epoch
			for i := 3; i < 40; i++ {
				c.send(b, fmt.Sprintf(`{"rpc":{"method":"echo","data":%d},"id":%d}`, i, i))
			}
			for i := 3; i < 40; i++ {
				r := c.reply()
				if r.ID != uint32(i) || r.RPC == nil || string(r.RPC.Data) != fmt.Sprint(i) {
					t.Fatalf("reply %+v, want rpc %d", r, i)
				}
			}
			// A publication on B reaches A's subscriber, with its offset.
			if err := b.h.Centrifugo().Publish("x", []byte(`"from b"`)); err != nil {
				t.Fatal(err)
			}
			if r := c.reply(); r.Push == nil || r.Push.Pub.Offset != 1 || string(r.Push.Pub.Data) != `"from b"` {
				t.Fatalf("publication %+v", r)
			}
			// Presence is the backend's: B sees A's client.
			d := b.open(`{"connect":{"data":{"user":"u2"}},"id":1}`)
			d.call(`{"subscribe":{"channel":"x"},"id":2}`)
			st := d.call(`{"presence_stats":{"channel":"x"},"id":3}`).PresenceStats
			if st == nil || st.NumClients != 2 || st.NumUsers != 2 {
				t.Fatalf("presence stats %+v", st)
			}
			// The stream on A drops; publications go on; the client
			// comes back on B and recovers them.
			c.cancel()
			waitFor(t, "the session to close on A", func() bool { _, ok := a.h.Peer(c.connect.Session); return !ok })
			for i := 2; i <= 4; i++ {
				if err := a.h.Centrifugo().Publish("x", []byte(fmt.Sprint(i))); err != nil {
					t.Fatal(err)
				}
			}
			c2 := b.open(`{"connect":{"data":{"user":"u1"}},"id":1}`)
			r = c2.call(`{"subscribe":{"channel":"x","recover":true,"offset":1,"epoch":"` + epoch + `"},"id":2}`)
			if sr := r.Subscribe; sr == nil || !sr.Recovered || len(sr.Publications) != 3 || sr.Publications[0].Offset != 2 || sr.Offset != 4 {
				t.Fatalf("recovery on the other node %+v", r.Subscribe)
			}
			// The old session is gone: its node says so (404); another
			// node sends the request on to the named node without
			// looking the session up (204, dropped there), as Centrifugo
			// does, except with a memory backend shared in process.
			resp, _ := a.do("POST", "/emulation", c.envelope(`{"rpc":{"method":"echo"},"id":50}`))
			if resp.StatusCode != 404 {
				t.Fatalf("emulation for the dropped session, on its node: %d, want 404", resp.StatusCode)
			}
			resp, _ = b.do("POST", "/emulation", c.envelope(`{"rpc":{"method":"echo"},"id":51}`))
			if want := map[string]int{"memory": 404, "redis": 204}[name]; resp.StatusCode != want {
				t.Fatalf("emulation for the dropped session, on the other node: %d, want %d", resp.StatusCode, want)
			}
			// A node that is gone: 404 everywhere.
			gone := c.envelope(`{}`)
			gone = []byte(strings.Replace(string(gone), c.connect.Node, "AAAAAAAAAAAAAAAAAAAAAA", 1))
			if resp, _ := b.do("POST", "/emulation", gone); resp.StatusCode != 404 {
				t.Fatalf("emulation naming a node that does not exist: %d, want 404", resp.StatusCode)
			}
			// Disconnect and Unsubscribe a user from the other node.
			e := a.open(`{"connect":{"data":{"user":"u3"}},"id":1}`)
			e.call(`{"subscribe":{"channel":"y"},"id":2}`)
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := b.h.Centrifugo().Unsubscribe(ctx, "u3", "y"); err != nil {
				t.Fatal(err)
			}
			if r := e.reply(); r.Push == nil || r.Push.Channel != "y" || r.Push.Unsubscribe == nil || r.Push.Unsubscribe.Code != 2000 {
				t.Fatalf("unsubscribe push %+v", r)
			}
			if err := b.h.Centrifugo().Disconnect(ctx, "u3", centrifugo.Disconnect{Code: 4001, Reason: "bye"}); err != nil {
				t.Fatal(err)
			}
			if d := e.disconnected(); d.Code != 4001 || d.Reason != "bye" {
				t.Fatalf("disconnect %+v", d)
			}
		})
	}
}

// TestShutdownForgetsSessions: with Redis, Shutdown returns once every
// Centrifugo session is removed from the backend (they are not handed off:
// nothing resumes them), so that the caller may close its Redis client.
func TestShutdownForgetsSessions(t *testing.T) {
	srv := redistest.Start(t)
	c := goredis.NewClient(&goredis.Options{Addr: srv.Addr(), PoolSize: 32})
	defer c.Close()
	b, err := redisbackend.New(redisbackend.Config{Client: c, Prefix: srv.Prefix()})
	if err != nil {
		t.Fatal(err)
	}
	cf := userConfig()
	var hooks atomic.Int32
	cf.Hooks.Disconnect = func(*centrifugo.Client, centrifugo.Disconnect) {
		time.Sleep(30 * time.Millisecond) // a hook that takes its time
		hooks.Add(1)
	}
	s := newServer(t, handler.Config{Backend: b}, cf)
	for range 30 {
		s.open(`{"connect":{"data":{"user":"u"}},"id":1}`)
	}
	sessions := func() int {
		n := 0
		for _, k := range srv.Keys(t) {
			if strings.Contains(k, ":{s.") {
				n++
			}
		}
		return n
	}
	if n := sessions(); n != 30 {
		t.Fatalf("%d session records, want 30", n)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.h.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if n := sessions(); n != 0 {
		t.Fatalf("%d session records left when Shutdown returned", n)
	}
	if n := hooks.Load(); n != 30 {
		t.Fatalf("%d Disconnect hooks done when Shutdown returned, want 30", n)
	}
}
