package centrifugo_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/ssebridge/ssebridge/backends"
	"github.com/ssebridge/ssebridge/backends/backendtest"
	"github.com/ssebridge/ssebridge/backends/memory"
	"github.com/ssebridge/ssebridge/handler"
	"github.com/ssebridge/ssebridge/handler/centrifugo"
	"github.com/ssebridge/ssebridge/handler/centrifugo/token"
	"github.com/ssebridge/ssebridge/internal/ssetest"
)

// Hostile and concurrent uses: what a client must not reach, and hooks
// that call back into the protocol.

// TestReservedChannels: channel names with control characters (the user
// index lives under a NUL-prefixed name) are refused for every command.
func TestReservedChannels(t *testing.T) {
	s := newServer(t, handler.Config{}, userConfig())
	victim := s.open(`{"connect":{"data":{"user":"alice"}},"id":1}`)
	_ = victim
	m := s.open(`{"connect":{"data":{"user":"mallory"}},"id":1}`)
	for i, cmd := range []string{
		`{"subscribe":{"channel":"\u0000centrifugo.user:alice"},"id":%d}`,
		`{"presence":{"channel":"\u0000centrifugo.user:alice"},"id":%d}`,
		`{"presence_stats":{"channel":"\u0000centrifugo.user:alice"},"id":%d}`,
		`{"history":{"channel":"\u0000x"},"id":%d}`,
		`{"publish":{"channel":"a\nb","data":1},"id":%d}`,
	} {
		cmd = strings.Replace(cmd, "%d", string(rune('2'+i)), 1)
		if r := m.call(cmd); errCode(r) != 107 {
			t.Errorf("%s: %+v, want 107", cmd, r)
		}
	}
	// Control messages cannot come from a client.
	resp, _ := s.do("POST", "/emulation", m.envelope("\x00"+`{"disconnect":{"Code":4000,"Reason":"x"}}`))
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("control data through /emulation: %d, want 400", resp.StatusCode)
	}
	// Nor can the native protocol reach a Centrifugo session: no resume,
	// no post.
	resp, _ = s.do("POST", "/sse", []byte("hi"), "X-Crossws-Id", m.connect.Session)
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("native POST to a Centrifugo session: %d, want 400", resp.StatusCode)
	}
	ctx, cancel := context.WithCancel(s.ctx)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", s.url+"/sse", nil)
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set("Last-Event-ID", m.connect.Session+".1")
	nresp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer nresp.Body.Close()
	if id := nresp.Header.Get("X-Crossws-Id"); id == m.connect.Session || nresp.StatusCode != 200 {
		t.Fatalf("native resume of a Centrifugo session: %d, id %q", nresp.StatusCode, id)
	}
	hello := ssetest.NewReader(nresp.Body).Event(t)
	if hello.Data == m.connect.Session {
		t.Fatal("the native stream took the Centrifugo session over")
	}
	// m still works.
	if r := m.call(`{"rpc":{"method":"echo","data":1},"id":20}`); r.RPC == nil {
		t.Fatalf("rpc %+v", r)
	}
}

// TestHooksCallBack: hooks that disconnect or unsubscribe users (their own
// connection included) return; a slow command does not delay pongs.
func TestHooksCallBack(t *testing.T) {
	var p *centrifugo.Protocol
	cf := userConfig()
	cf.PingInterval, cf.PongTimeout, cf.PresenceTTL = 300*time.Millisecond, 200*time.Millisecond, time.Second
	cf.Hooks.RPC = func(c *centrifugo.Client, e centrifugo.RPCEvent) (centrifugo.RPCReply, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		switch e.Method {
		case "kick-me":
			return centrifugo.RPCReply{}, p.Disconnect(ctx, c.UserID(), centrifugo.Disconnect{Code: 4100, Reason: "logged out"})
		case "leave":
			return centrifugo.RPCReply{Data: json.RawMessage(`1`)}, p.Unsubscribe(ctx, c.UserID(), "x")
		case "slow":
			time.Sleep(time.Second)
		}
		return centrifugo.RPCReply{Data: e.Data}, nil
	}
	s := newServer(t, handler.Config{}, cf)
	p = s.h.Centrifugo()

	c := s.open(`{"connect":{"data":{"user":"u"}},"id":1}`, `{"subscribe":{"channel":"x"},"id":2}`)
	c.pong = true
	if r := c.reply(); r.Subscribe == nil {
		t.Fatalf("%+v", r)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.post(`{"rpc":{"method":"leave"},"id":3}`)
	}()
	seen := map[string]bool{}
	for len(seen) < 2 {
		r := c.reply()
		switch {
		case r.Push != nil && r.Push.Unsubscribe != nil:
			seen["unsubscribe"] = true
		case r.ID == 3:
			seen["reply"] = true
		}
	}
	<-done
	// A slow RPC while pings keep coming: the pongs get through (the
	// RPC's POST returns once it ran).
	go c.post(`{"rpc":{"method":"slow"},"id":4}`)
	for {
		r := c.reply()
		if r.Push != nil && r.Push.Disconnect != nil {
			t.Fatalf("disconnected while a slow command ran: %+v", r.Push.Disconnect)
		}
		if r.ID == 4 {
			break
		}
	}
	go c.post(`{"rpc":{"method":"kick-me"},"id":5}`)
	if d := c.disconnected(); d.Code != 4100 {
		t.Fatalf("disconnect %+v", d)
	}
}

func TestRecoveryNeedsHistoryPermission(t *testing.T) {
	cf := centrifugo.Config{Channels: centrifugo.ChannelOptions{Subscribe: true}}
	s := newServer(t, handler.Config{}, cf)
	c := s.open(`{"connect":{},"id":1}`)
	_ = s.h.Centrifugo().Publish("c", []byte("1"))
	r := c.call(`{"subscribe":{"channel":"c","recover":true,"offset":0,"epoch":"","positioned":true},"id":2}`)
	if sr := r.Subscribe; sr == nil || sr.Positioned || sr.Recoverable || sr.WasRecovering || len(sr.Publications) != 0 {
		t.Fatalf("recovery without history permission: %+v", r.Subscribe)
	}
}

func TestSubscriptionTokenClient(t *testing.T) {
	s := newServer(t, handler.Config{}, centrifugo.Config{Token: &token.Verifier{HMACSecret: secret}})
	exp := time.Now().Add(time.Hour).Unix()
	c := s.open(`{"connect":{"token":"` + sign(t, jwt.MapClaims{"sub": "u", "exp": exp}) + `"},"id":1}`)
	other := sign(t, jwt.MapClaims{"sub": "u", "channel": "c", "client": "00000000-0000-4000-8000-000000000000", "exp": exp})
	if r := c.call(`{"subscribe":{"channel":"c","token":"` + other + `"},"id":2}`); errCode(r) != 103 {
		t.Fatalf("token bound to another client: %+v, want 103", r)
	}
	mine := sign(t, jwt.MapClaims{"sub": "u", "channel": "c", "client": c.connect.Client, "exp": exp})
	if r := c.call(`{"subscribe":{"channel":"c","token":"` + mine + `"},"id":3}`); r.Subscribe == nil {
		t.Fatalf("token bound to this client: %+v", r)
	}
}

func TestUniConnectErrors(t *testing.T) {
	cf := centrifugo.Config{Hooks: centrifugo.Hooks{
		Connecting: func(_ context.Context, e centrifugo.ConnectEvent) (centrifugo.ConnectReply, error) {
			switch string(e.Data) {
			case `"expired"`:
				return centrifugo.ConnectReply{}, centrifugo.ErrorTokenExpired
			case `"denied"`:
				return centrifugo.ConnectReply{}, centrifugo.ErrorPermissionDenied
			case `"busy"`:
				return centrifugo.ConnectReply{}, centrifugo.ErrorTooManyRequests
			}
			return centrifugo.ConnectReply{}, centrifugo.ErrorInternal
		},
	}}
	s := newServer(t, handler.Config{}, cf)
	for data, want := range map[string]uint32{`"expired"`: 3005, `"denied"`: 3507, `"busy"`: 3013, `"other"`: 3004} {
		c := s.openRaw("GET", "/connection/uni_sse?cf_connect="+qesc(`{"data":`+data+`}`), nil)
		for {
			p := c.push()
			if p.Disconnect != nil {
				if p.Disconnect.Code != want {
					t.Errorf("%s: disconnect %+v, want %d", data, p.Disconnect, want)
				}
				break
			}
		}
	}
}

// TestHeadersBeforeSlowHooks: the stream's headers and first bytes do not
// wait for the Connect hook.
func TestHeadersBeforeSlowHooks(t *testing.T) {
	release := make(chan struct{})
	cf := centrifugo.Config{Hooks: centrifugo.Hooks{Connect: func(*centrifugo.Client) { <-release }}}
	s := newServer(t, handler.Config{}, cf)
	defer close(release)
	c := s.openRaw("GET", "/connection/sse?cf_connect="+qesc(`{"connect":{},"id":1}`), nil)
	if string(c.first) != "\r\n" {
		t.Fatalf("first bytes %q", c.first)
	}
	if r := c.reply(); r.Connect == nil {
		t.Fatalf("connect reply %+v", r)
	}
}

// slowPresence is a memory backend whose AddPresence takes its time, so
// that a connection's opening work is still running when it closes.
type slowPresence struct {
	backends.Backend
}

func (b slowPresence) Attach(ctx context.Context, r backends.Receiver) (backends.Node, error) {
	n, err := b.Backend.Attach(ctx, r)
	if err != nil {
		return nil, err
	}
	return slowPresenceNode{n.(fullNode)}, nil
}

type fullNode interface {
	backends.Node
	backends.Presence
	backends.History
}

type slowPresenceNode struct{ fullNode }

func (n slowPresenceNode) AddPresence(ctx context.Context, ch string, info backends.PresenceInfo, ttl time.Duration) error {
	time.Sleep(100 * time.Millisecond)
	return n.fullNode.AddPresence(ctx, ch, info, ttl)
}

// TestCloseWhileOpening: a client that goes away while its connection is
// still being set up (the Connect hook runs): the Disconnect hook follows
// the Connect hook, and no presence entry is left behind.
func TestCloseWhileOpening(t *testing.T) {
	var mu sync.Mutex
	var order []string
	connecting := make(chan struct{})
	cf := centrifugo.Config{
		Channels: centrifugo.ChannelOptions{TrackPresence: true},
		Hooks: centrifugo.Hooks{
			Connecting: func(context.Context, centrifugo.ConnectEvent) (centrifugo.ConnectReply, error) {
				return centrifugo.ConnectReply{UserID: "u", Subscriptions: map[string]centrifugo.SubscribeOptions{"a": {}, "b": {}}}, nil
			},
			Connect: func(*centrifugo.Client) {
				close(connecting)
				time.Sleep(200 * time.Millisecond) // the client leaves meanwhile
				mu.Lock()
				order = append(order, "connect")
				mu.Unlock()
			},
			Disconnect: func(*centrifugo.Client, centrifugo.Disconnect) {
				mu.Lock()
				order = append(order, "disconnect")
				mu.Unlock()
			},
		},
	}
	mem := memory.New()
	s := newServer(t, handler.Config{Backend: slowPresence{mem}}, cf)
	ctx, cancel := context.WithCancel(s.ctx)
	req, _ := http.NewRequestWithContext(ctx, "GET", s.url+"/connection/sse?cf_connect="+url.QueryEscape(`{"connect":{},"id":1}`), nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	<-connecting
	cancel() // gone while the Connect hook runs
	resp.Body.Close()
	waitFor(t, "the connection to close", func() bool { return countPeers(s.h) == 0 })
	time.Sleep(300 * time.Millisecond) // the opening work finishes
	mu.Lock()
	got := strings.Join(order, ",")
	mu.Unlock()
	if got != "connect,disconnect" {
		t.Fatalf("hooks ran in the order %q, want connect,disconnect", got)
	}
	n, _ := mem.Attach(context.Background(), backendtest.NewRecorder())
	for _, ch := range []string{"a", "b"} {
		if clients, _, _ := n.(backends.Presence).PresenceStats(context.Background(), ch); clients != 0 {
			t.Errorf("%d clients left in the presence of %q", clients, ch)
		}
	}
}
