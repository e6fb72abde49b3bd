package centrifugo_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ssebridge/ssebridge/handler"
	"github.com/ssebridge/ssebridge/handler/centrifugo"
	"github.com/ssebridge/ssebridge/handler/centrifugo/wire"
)

// open channels: every client may subscribe, publish, read history and
// presence; presence is kept.
var openChannels = centrifugo.ChannelOptions{Subscribe: true, Publish: true, History: true, Presence: true, TrackPresence: true}

func TestSubscribePublish(t *testing.T) {
	s := newServer(t, handler.Config{}, centrifugo.Config{Channels: openChannels})
	a := s.open(`{"connect":{},"id":1}`)
	b := s.open(`{"connect":{},"id":1}`)
	r := a.call(`{"subscribe":{"channel":"news","flag":1,"newer":true},"id":2}`)
	if r.Subscribe == nil || r.Subscribe.Positioned || r.Subscribe.Recoverable {
		t.Fatalf("subscribe reply %+v: want a plain subscription", r)
	}
	if r := a.call(`{"subscribe":{"channel":"news"},"id":3}`); errCode(r) != 105 {
		t.Fatalf("second subscribe %+v, want 105", r)
	}
	// b is not subscribed: it may not publish.
	if r := b.call(`{"publish":{"channel":"news","data":{"x":1}},"id":2}`); errCode(r) != 103 {
		t.Fatalf("publish without subscription %+v, want 103", r)
	}
	if r := b.call(`{"subscribe":{"channel":"news"},"id":3}`); r.Subscribe == nil {
		t.Fatalf("b subscribe %+v", r)
	}
	if r := b.call(`{"publish":{"channel":"news","data":{"x": [1, 2]}},"id":4}`); r.Publish == nil || r.Error != nil {
		t.Fatalf("publish %+v", r)
	}
	for _, c := range []*conn{b, a} {
		r := c.reply()
		if r.Push == nil || r.Push.Channel != "news" || r.Push.Pub == nil || string(r.Push.Pub.Data) != `{"x":[1,2]}` {
			t.Fatalf("publication %+v", r)
		}
	}
	// Handler.Publish reaches Centrifugo subscribers; text that is not
	// JSON arrives as a JSON string.
	if err := s.h.Publish("news", "plain text"); err != nil {
		t.Fatal(err)
	}
	for _, c := range []*conn{a, b} {
		if r := c.reply(); r.Push == nil || string(r.Push.Pub.Data) != `"plain text"` {
			t.Fatalf("publication %+v", r)
		}
	}
	if r := a.call(`{"unsubscribe":{"channel":"news"},"id":5}`); r.Unsubscribe == nil {
		t.Fatalf("unsubscribe %+v", r)
	}
	if err := s.h.Centrifugo().Publish("news", []byte(`"after"`)); err != nil {
		t.Fatal(err)
	}
	if r := b.reply(); r.Push == nil || string(r.Push.Pub.Data) != `"after"` {
		t.Fatalf("publication %+v", r)
	}
	// a left: its next reply is the answer to its next command.
	if r := a.call(`{"rpc":{"method":"m"},"id":6}`); errCode(r) != 104 {
		t.Fatalf("rpc without hook %+v, want 104", r)
	}
}

func TestCommandErrors(t *testing.T) {
	s := newServer(t, handler.Config{}, centrifugo.Config{Channels: openChannels, ChannelLimit: 2})
	c := s.open(`{"connect":{},"id":1}`)
	for _, tc := range []struct {
		cmd  string
		code uint32
	}{
		{`{"subscribe":{"channel":""},"id":2}`, 107},
		{`{"subscribe":{"channel":"` + strings.Repeat("c", 1025) + `"},"id":3}`, 107},
		{`{"publish":{"channel":"a"},"id":4}`, 107},
		{`{"history":{"channel":"a"},"id":5}`, 103},
		{`{"presence":{"channel":"a"},"id":6}`, 103},
		{`{"sub_refresh":{"channel":"a","token":"x"},"id":7}`, 103},
		{`{"refresh":{"token":"x"},"id":8}`, 108},
		{`{"unknown_newer_method":{},"id":9}`, 104},
		{`{"subscribe":{"channel":"a"},"id":10}`, 0},
		{`{"subscribe":{"channel":"b"},"id":11}`, 0},
		{`{"subscribe":{"channel":"c"},"id":12}`, 106},
	} {
		if r := c.call(tc.cmd); errCode(r) != tc.code {
			t.Errorf("%s: reply %+v, want code %d", tc.cmd, r, tc.code)
		}
	}
	// A connect on an open connection is a bad request.
	c.send(nil, `{"connect":{},"id":13}`)
	if d := c.disconnected(); d.Code != 3501 {
		t.Fatalf("disconnect %+v, want 3501", d)
	}
	// So is a command that is not JSON; the POST is still accepted.
	c2 := s.open(`{"connect":{},"id":1}`)
	c2.send(nil, `{"rpc":`)
	if d := c2.disconnected(); d.Code != 3501 {
		t.Fatalf("disconnect %+v, want 3501", d)
	}
	// And a command that needs a reply without an id.
	c3 := s.open(`{"connect":{},"id":1}`)
	c3.send(nil, `{"rpc":{"method":"x"}}`)
	if d := c3.disconnected(); d.Code != 3501 {
		t.Fatalf("disconnect %+v, want 3501", d)
	}
	// The session is gone: its emulation requests get 404.
	resp, _ := s.do("POST", "/emulation", c3.envelope(`{}`))
	if resp.StatusCode != 404 {
		t.Fatalf("emulation for a closed session: %d, want 404", resp.StatusCode)
	}
}

func TestHooks(t *testing.T) {
	var mu sync.Mutex
	var events []string
	logf := func(f string, a ...any) {
		mu.Lock()
		events = append(events, fmt.Sprintf(f, a...))
		mu.Unlock()
	}
	cf := centrifugo.Config{
		Channels: centrifugo.ChannelOptions{TrackPresence: true},
		Hooks: centrifugo.Hooks{
			Connecting: func(_ context.Context, e centrifugo.ConnectEvent) (centrifugo.ConnectReply, error) {
				var d struct{ User string }
				_ = json.Unmarshal(e.Data, &d)
				switch d.User {
				case "":
					return centrifugo.ConnectReply{}, centrifugo.ErrorUnauthorized
				case "banned":
					return centrifugo.ConnectReply{}, centrifugo.DisconnectPermissionDenied
				case "broken":
					return centrifugo.ConnectReply{}, errors.New("database down")
				}
				return centrifugo.ConnectReply{
					UserID: d.User, Info: json.RawMessage(`{"name":"` + d.User + `"}`), Data: json.RawMessage(`{"welcome":true}`),
					Subscriptions: map[string]centrifugo.SubscribeOptions{"personal:" + d.User: {Data: json.RawMessage(`"mine"`)}},
				}, nil
			},
			Connect: func(c *centrifugo.Client) { logf("connect %s", c.UserID()) },
			Subscribe: func(c *centrifugo.Client, e centrifugo.SubscribeEvent) (centrifugo.SubscribeReply, error) {
				switch e.Channel {
				case "secret":
					return centrifugo.SubscribeReply{}, centrifugo.ErrorPermissionDenied
				case "kick":
					return centrifugo.SubscribeReply{}, &centrifugo.Disconnect{Code: 4501, Reason: "go away"}
				case "panic":
					panic("subscribe hook")
				}
				return centrifugo.SubscribeReply{Options: centrifugo.SubscribeOptions{ChanInfo: json.RawMessage(`{"role":"x"}`)}}, nil
			},
			Publish: func(c *centrifugo.Client, e centrifugo.PublishEvent) (centrifugo.PublishReply, error) {
				return centrifugo.PublishReply{Data: json.RawMessage(`{"by":"` + c.UserID() + `","was":` + string(e.Data) + `}`)}, nil
			},
			RPC: func(c *centrifugo.Client, e centrifugo.RPCEvent) (centrifugo.RPCReply, error) {
				if e.Method == "bad" {
					return centrifugo.RPCReply{Data: json.RawMessage(`{oops`)}, nil
				}
				return centrifugo.RPCReply{Data: e.Data}, nil
			},
			Presence:    func(*centrifugo.Client, string) error { return nil },
			Message:     func(c *centrifugo.Client, d json.RawMessage) { logf("message %s %s", c.UserID(), d) },
			Unsubscribe: func(c *centrifugo.Client, ch string) { logf("unsubscribe %s %s", c.UserID(), ch) },
			Disconnect:  func(c *centrifugo.Client, d centrifugo.Disconnect) { logf("disconnect %s %d", c.UserID(), d.Code) },
		},
	}
	s := newServer(t, handler.Config{}, cf)

	refused := s.openRaw("GET", "/connection/sse?cf_connect="+qesc(`{"connect":{},"id":1}`), nil)
	if r := refused.reply(); r.ID != 1 || errCode(r) != 101 {
		t.Fatalf("anonymous connect %+v, want error 101", r)
	}
	refused.r.End(t)
	banned := s.openRaw("GET", "/connection/sse?cf_connect="+qesc(`{"connect":{"data":{"user":"banned"}},"id":1}`), nil)
	if d := banned.disconnected(); d.Code != 3507 {
		t.Fatalf("banned: %+v, want 3507", d)
	}
	broken := s.openRaw("GET", "/connection/sse?cf_connect="+qesc(`{"connect":{"data":{"user":"broken"}},"id":1}`), nil)
	if r := broken.reply(); errCode(r) != 100 || !r.Error.Temporary {
		t.Fatalf("broken: %+v, want temporary error 100", r)
	}

	alice := s.open(`{"connect":{"data":{"user":"alice"}},"id":1}`, `{"subscribe":{"channel":"room"},"id":2}`)
	if string(alice.connect.Data) != `{"welcome":true}` || string(alice.connect.Subs["personal:alice"].Data) != `"mine"` {
		t.Fatalf("connect result %+v", alice.connect)
	}
	if r := alice.reply(); r.ID != 2 || r.Subscribe == nil {
		t.Fatalf("cf_connect subscribe %+v", r)
	}
	for _, tc := range []struct {
		cmd  string
		code uint32
	}{
		{`{"subscribe":{"channel":"secret"},"id":3}`, 103},
		{`{"subscribe":{"channel":"panic"},"id":4}`, 100},
		{`{"rpc":{"method":"bad"},"id":5}`, 100},
	} {
		if r := alice.call(tc.cmd); errCode(r) != tc.code {
			t.Errorf("%s: %+v, want %d", tc.cmd, r, tc.code)
		}
	}
	if r := alice.call(`{"rpc":{"method":"echo","data":{"a":"b"}},"id":6}`); r.RPC == nil || string(r.RPC.Data) != `{"a":"b"}` {
		t.Fatalf("rpc %+v", r)
	}
	if r := alice.call(`{"publish":{"channel":"room","data":1},"id":7}`); r.Publish == nil {
		t.Fatalf("publish %+v", r)
	}
	if r := alice.reply(); r.Push == nil || string(r.Push.Pub.Data) != `{"by":"alice","was":1}` {
		t.Fatalf("publication %+v", r)
	}
	r := alice.call(`{"presence":{"channel":"room"},"id":8}`)
	if r.Presence == nil || len(r.Presence.Presence) != 1 {
		t.Fatalf("presence %+v", r)
	}
	info := r.Presence.Presence[alice.connect.Client]
	if info.User != "alice" || info.Client != alice.connect.Client || string(info.ConnInfo) != `{"name":"alice"}` || string(info.ChanInfo) != `{"role":"x"}` {
		t.Fatalf("presence info %+v", info)
	}
	alice.send(nil, `{"send":{"data":{"hi":1}}}`)
	r = alice.call(`{"presence_stats":{"channel":"room"},"id":9}`)
	if r.PresenceStats == nil || r.PresenceStats.NumClients != 1 || r.PresenceStats.NumUsers != 1 {
		t.Fatalf("presence stats %+v", r)
	}
	alice.send(nil, `{"subscribe":{"channel":"kick"},"id":10}`)
	if d := alice.disconnected(); d.Code != 4501 || d.Reason != "go away" {
		t.Fatalf("disconnect %+v", d)
	}
	waitFor(t, "the Disconnect hook", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(events) > 0 && strings.HasPrefix(events[len(events)-1], "disconnect")
	})
	mu.Lock()
	got := strings.Join(events, "|")
	mu.Unlock()
	for _, want := range []string{"connect alice", `message alice {"hi":1}`, "unsubscribe alice room", "unsubscribe alice personal:alice", "disconnect alice 4501"} {
		if !strings.Contains(got, want) {
			t.Errorf("hook events %q lack %q", got, want)
		}
	}
	// Presence was removed when alice left.
	bob := s.open(`{"connect":{"data":{"user":"bob"}},"id":1}`)
	if r := bob.call(`{"presence_stats":{"channel":"room"},"id":2}`); r.PresenceStats == nil || r.PresenceStats.NumClients != 0 {
		t.Fatalf("presence after alice left %+v", r)
	}
}

func qesc(s string) string {
	return strings.NewReplacer("%", "%25", "&", "%26", "+", "%2B", "#", "%23", " ", "%20", "\n", "%0A").Replace(s)
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestPingPong(t *testing.T) {
	s := newServer(t, handler.Config{}, centrifugo.Config{PingInterval: 200 * time.Millisecond, PongTimeout: 150 * time.Millisecond, PresenceTTL: time.Second})
	if s.h.Centrifugo().Config().PingInterval != 200*time.Millisecond {
		t.Fatal("config not applied")
	}
	// A client that answers every ping stays.
	good := s.open(`{"connect":{},"id":1}`)
	if good.connect.Ping != 0 { // 200 ms rounds down to 0 s
		t.Logf("ping %d", good.connect.Ping)
	}
	for range 4 {
		if d := good.event(); d != "{}" {
			t.Fatalf("event %q, want a ping", d)
		}
		good.send(nil, `{}`)
	}
	// One that does not is disconnected with 3012.
	bad := s.open(`{"connect":{},"id":1}`)
	if d := bad.event(); d != "{}" {
		t.Fatalf("event %q, want a ping", d)
	}
	if d := bad.disconnected(); d.Code != 3012 || d.Reason != "no pong" {
		t.Fatalf("disconnect %+v, want 3012", d)
	}
	// A unidirectional client gets pings and owes no pong.
	uni := s.openUni("")
	for range 3 {
		if d := uni.event(); d != "{}" {
			t.Fatalf("uni event %q, want a ping", d)
		}
	}
}

func TestRecovery(t *testing.T) {
	s := newServer(t, handler.Config{}, centrifugo.Config{Channels: openChannels, RecoveryMaxPublicationLimit: 3})
	a := s.open(`{"connect":{},"id":1}`)
	r := a.call(`{"subscribe":{"channel":"c","recoverable":true,"positioned":true},"id":2}`)
	sr := r.Subscribe
	if sr == nil || !sr.Recoverable || !sr.Positioned || sr.Epoch == "" || sr.Offset != 0 || sr.WasRecovering {
		t.Fatalf("subscribe %+v", r)
	}
	epoch := sr.Epoch
	for i := 1; i <= 5; i++ {
		if err := s.h.Centrifugo().Publish("c", []byte(fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
	for i := 1; i <= 5; i++ {
		r := a.reply()
		if r.Push == nil || r.Push.Pub.Offset != uint64(i) || string(r.Push.Pub.Data) != fmt.Sprint(i) {
			t.Fatalf("publication %d: %+v", i, r)
		}
	}
	b := s.open(`{"connect":{},"id":1}`)
	check := func(id int, offset uint64, ep string, flag int, wantRecovered bool, wantPubs ...int) {
		t.Helper()
		r := b.call(fmt.Sprintf(`{"subscribe":{"channel":"c","recover":true,"offset":%d,"epoch":%q,"flag":%d},"id":%d}`, offset, ep, flag, id))
		sr := r.Subscribe
		if sr == nil || !sr.WasRecovering || sr.Recovered != wantRecovered || sr.Offset != 5 || sr.Epoch != epoch || len(sr.Publications) != len(wantPubs) {
			t.Fatalf("recover from %d@%s: %+v", offset, ep, r)
		}
		for i, p := range sr.Publications {
			if p.Offset != uint64(wantPubs[i]) || string(p.Data) != fmt.Sprint(wantPubs[i]) {
				t.Fatalf("recovered %+v, want offsets %v", sr.Publications, wantPubs)
			}
		}
		if r := b.call(fmt.Sprintf(`{"unsubscribe":{"channel":"c"},"id":%d}`, id+1)); r.Unsubscribe == nil {
			t.Fatalf("unsubscribe %+v", r)
		}
	}
	check(2, 2, epoch, 0, true, 3, 4, 5)
	check(4, 5, epoch, 0, true)
	check(6, 1, epoch, 0, false) // 4 missed, over the limit of 3
	check(8, 3, "other", 0, false)
	check(10, 9, epoch, 0, false) // a position the channel never had
	if r := b.call(`{"subscribe":{"channel":"c","recover":true,"offset":1,"epoch":"other","flag":3},"id":12}`); errCode(r) != 112 {
		t.Fatalf("recovery that must not fail silently: %+v, want 112", r)
	}
	// Publications after the recovered ones follow, once each.
	r = b.call(`{"subscribe":{"channel":"c","recover":true,"offset":4,"epoch":"` + epoch + `"},"id":13}`)
	if len(r.Subscribe.Publications) != 1 {
		t.Fatalf("%+v", r)
	}
	_ = s.h.Centrifugo().Publish("c", []byte("6"))
	if r := b.reply(); r.Push == nil || r.Push.Pub.Offset != 6 {
		t.Fatalf("live after recovery %+v", r)
	}
	// History.
	h := b.call(`{"history":{"channel":"c","limit":2},"id":14}`).History
	if h == nil || h.Epoch != epoch || h.Offset != 6 || len(h.Publications) != 2 || h.Publications[0].Offset != 1 {
		t.Fatalf("history %+v", h)
	}
	h = b.call(`{"history":{"channel":"c","limit":2,"reverse":true},"id":15}`).History
	if h == nil || len(h.Publications) != 2 || h.Publications[0].Offset != 6 || h.Publications[1].Offset != 5 {
		t.Fatalf("reverse history %+v", h)
	}
	h = b.call(`{"history":{"channel":"c","limit":-1,"since":{"offset":4,"epoch":"` + epoch + `"}},"id":16}`).History
	if h == nil || len(h.Publications) != 2 || h.Publications[0].Offset != 5 {
		t.Fatalf("history since %+v", h)
	}
	if r := b.call(`{"history":{"channel":"c","since":{"offset":4,"epoch":"x"}},"id":17}`); errCode(r) != 112 {
		t.Fatalf("history since another epoch %+v, want 112", r)
	}
	h = b.call(`{"history":{"channel":"c"},"id":18}`).History
	if h == nil || h.Offset != 6 || len(h.Publications) != 0 {
		t.Fatalf("history limit 0 %+v", h)
	}
}

// TestRecoveryUnderLoad: a client subscribing with recovery while
// publications keep coming gets every one once, in order: recovered, then
// live.
func TestRecoveryUnderLoad(t *testing.T) {
	s := newServer(t, handler.Config{}, centrifugo.Config{Channels: openChannels, RecoveryMaxPublicationLimit: 1000})
	a := s.open(`{"connect":{},"id":1}`)
	epoch := a.call(`{"subscribe":{"channel":"c","recoverable":true},"id":2}`).Subscribe.Epoch
	const n = 300
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 1; i <= n; i++ {
			_ = s.h.Centrifugo().Publish("c", []byte(fmt.Sprint(i)))
		}
	}()
	b := s.open(`{"connect":{},"id":1}`)
	r := b.call(`{"subscribe":{"channel":"c","recover":true,"offset":0,"epoch":"` + epoch + `"},"id":2}`)
	if !r.Subscribe.Recovered {
		t.Fatalf("%+v", r)
	}
	next := uint64(1)
	for _, p := range r.Subscribe.Publications {
		if p.Offset != next {
			t.Fatalf("recovered offset %d, want %d", p.Offset, next)
		}
		next++
	}
	<-done
	for next <= n {
		r := b.reply()
		if r.Push == nil || r.Push.Pub == nil || r.Push.Pub.Offset != next {
			t.Fatalf("live %+v, want offset %d", r, next)
		}
		next++
	}
	_ = wire.Reply{}
}

func TestShutdownDisconnects(t *testing.T) {
	s := newServer(t, handler.Config{}, centrifugo.Config{})
	c := s.open(`{"connect":{},"id":1}`)
	u := s.openUni("")
	go func() { _ = s.h.Shutdown(context.Background()) }()
	if d := c.disconnected(); d.Code != 3001 || d.Reason != "shutdown" {
		t.Fatalf("disconnect %+v", d)
	}
	for {
		p := u.push()
		if p.Disconnect != nil {
			if p.Disconnect.Code != 3001 {
				t.Fatalf("uni disconnect %+v", p.Disconnect)
			}
			break
		}
	}
	u.r.End(t)
}

func TestSlowClient(t *testing.T) {
	s := newServer(t, handler.Config{QueueSize: 64 << 10}, centrifugo.Config{Channels: openChannels})
	c := s.openRaw("GET", "/connection/sse?cf_connect="+qesc(`{"connect":{},"id":1}`+"\n"+`{"subscribe":{"channel":"c"},"id":2}`), nil)
	// The client reads nothing more while 4 MiB are published.
	big := `"` + strings.Repeat("x", 16<<10) + `"`
	for range 256 {
		if err := s.h.Centrifugo().Publish("c", []byte(big)); err != nil {
			t.Fatal(err)
		}
	}
	for {
		r := c.reply()
		if r.Push != nil && r.Push.Disconnect != nil {
			if r.Push.Disconnect.Code != 3008 {
				t.Fatalf("disconnect %+v, want 3008", r.Push.Disconnect)
			}
			break
		}
	}
}

// TestRecoverySoleSubscriber: a channel's only subscriber loses its
// stream; what is published meanwhile is recovered when it comes back
// (the history outlives the last subscriber).
func TestRecoverySoleSubscriber(t *testing.T) {
	s := newServer(t, handler.Config{}, centrifugo.Config{Channels: openChannels})
	a := s.open(`{"connect":{},"id":1}`)
	sr := a.call(`{"subscribe":{"channel":"solo","recoverable":true},"id":2}`).Subscribe
	_ = s.h.Centrifugo().Publish("solo", []byte("1"))
	if r := a.reply(); r.Push == nil || r.Push.Pub.Offset != 1 {
		t.Fatalf("publication %+v", r)
	}
	a.cancel()
	waitFor(t, "the connection to close", func() bool { _, ok := s.h.Peer(a.connect.Session); return !ok })
	_ = s.h.Centrifugo().Publish("solo", []byte("2"))
	_ = s.h.Centrifugo().Publish("solo", []byte("3"))
	b := s.open(`{"connect":{},"id":1}`)
	r := b.call(`{"subscribe":{"channel":"solo","recover":true,"offset":1,"epoch":"` + sr.Epoch + `"},"id":2}`).Subscribe
	if r == nil || !r.Recovered || len(r.Publications) != 2 || string(r.Publications[1].Data) != "3" {
		t.Fatalf("recovery %+v", r)
	}
}

// TestJoinLeave: subscribers that ask for join and leave pushes get them,
// with the client's info, when others subscribe, unsubscribe or go away.
func TestJoinLeave(t *testing.T) {
	cf := userConfig()
	cf.Channels.JoinLeave = true
	s := newServer(t, handler.Config{}, cf)
	a := s.open(`{"connect":{"data":{"user":"ann"}},"id":1}`)
	if r := a.call(`{"subscribe":{"channel":"room","join_leave":true},"id":2}`); r.Subscribe == nil {
		t.Fatalf("%+v", r)
	}
	if r := a.reply(); r.Push == nil || r.Push.Join == nil || r.Push.Join.Info.Client != a.connect.Client {
		t.Fatalf("own join %+v", r)
	}
	quiet := s.open(`{"connect":{"data":{"user":"quiet"}},"id":1}`)
	if r := quiet.call(`{"subscribe":{"channel":"room"},"id":2}`); r.Subscribe == nil {
		t.Fatalf("%+v", r)
	}
	if r := a.reply(); r.Push == nil || r.Push.Channel != "room" || r.Push.Join == nil || r.Push.Join.Info.User != "quiet" || r.Push.Join.Info.Client != quiet.connect.Client {
		t.Fatalf("join push %+v", r.Push)
	}
	if r := quiet.call(`{"unsubscribe":{"channel":"room"},"id":3}`); r.Unsubscribe == nil {
		t.Fatalf("%+v", r)
	}
	if r := a.reply(); r.Push == nil || r.Push.Leave == nil || r.Push.Leave.Info.User != "quiet" {
		t.Fatalf("leave push %+v", r.Push)
	}
	b := s.open(`{"connect":{"data":{"user":"bob"}},"id":1}`, `{"subscribe":{"channel":"room"},"id":2}`)
	if r := a.reply(); r.Push == nil || r.Push.Join == nil || r.Push.Join.Info.User != "bob" {
		t.Fatalf("join push %+v", r.Push)
	}
	b.cancel()
	if r := a.reply(); r.Push == nil || r.Push.Leave == nil || r.Push.Leave.Info.User != "bob" {
		t.Fatalf("leave push on disconnect %+v", r.Push)
	}
	// The quiet subscriber, who did not ask, got none: its next reply is
	// its next command's.
	if r := quiet.call(`{"rpc":{"method":"m","data":1},"id":4}`); r.RPC == nil {
		t.Fatalf("%+v", r)
	}
	if len(quiet.backlog) != 0 {
		t.Fatalf("pushes to a subscriber that did not ask: %+v", quiet.backlog)
	}
}
