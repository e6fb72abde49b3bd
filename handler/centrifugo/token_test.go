package centrifugo_test

import (
	"context"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/ssebridge/ssebridge/handler"
	"github.com/ssebridge/ssebridge/handler/centrifugo"
	"github.com/ssebridge/ssebridge/handler/centrifugo/token"
)

var secret = []byte("test secret, 32 bytes long......")

func sign(t *testing.T, claims jwt.MapClaims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(secret)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestTokens(t *testing.T) {
	s := newServer(t, handler.Config{}, centrifugo.Config{
		Token:    &token.Verifier{HMACSecret: secret},
		Channels: centrifugo.ChannelOptions{TrackPresence: true, Presence: true},
	})
	exp := time.Now().Add(time.Hour).Unix()
	connect := func(tok string) string { return `{"connect":{"token":"` + tok + `"},"id":1}` }

	// A valid token: its user, info and server-side channels.
	c := s.open(connect(sign(t, jwt.MapClaims{"sub": "alice", "exp": exp, "info": map[string]any{"n": 1}, "channels": []string{"news"}})))
	if !c.connect.Expires || c.connect.TTL < 3500 || c.connect.TTL > 3600 {
		t.Fatalf("connect %+v: want expires with a TTL of an hour", c.connect)
	}
	if _, ok := c.connect.Subs["news"]; !ok {
		t.Fatalf("server-side subscription missing: %+v", c.connect.Subs)
	}
	p := c.call(`{"presence":{"channel":"news"},"id":2}`).Presence
	if p == nil || p.Presence[c.connect.Client].User != "alice" || string(p.Presence[c.connect.Client].ConnInfo) != `{"n":1}` {
		t.Fatalf("presence %+v", p)
	}
	if err := s.h.Centrifugo().Publish("news", []byte(`{"n":2}`)); err != nil {
		t.Fatal(err)
	}
	if r := c.reply(); r.Push == nil || r.Push.Channel != "news" {
		t.Fatalf("publication on a server-side channel %+v", r)
	}

	// Subscription tokens: for this user and channel only.
	subTok := sign(t, jwt.MapClaims{"sub": "alice", "channel": "private", "exp": exp})
	if r := c.call(`{"subscribe":{"channel":"private","token":"` + subTok + `"},"id":3}`); r.Subscribe == nil || !r.Subscribe.Expires {
		t.Fatalf("subscribe with a token %+v", r)
	}
	if r := c.call(`{"subscribe":{"channel":"other","token":"` + subTok + `"},"id":4}`); errCode(r) != 103 {
		t.Fatalf("token for another channel %+v, want 103", r)
	}
	if r := c.call(`{"subscribe":{"channel":"nosub"},"id":5}`); errCode(r) != 103 {
		t.Fatalf("subscribe without token nor hook %+v, want 103", r)
	}
	bobTok := sign(t, jwt.MapClaims{"sub": "bob", "channel": "bobs", "exp": exp})
	if r := c.call(`{"subscribe":{"channel":"bobs","token":"` + bobTok + `"},"id":6}`); errCode(r) != 103 {
		t.Fatalf("token of another user %+v, want 103", r)
	}
	oldSub := sign(t, jwt.MapClaims{"sub": "alice", "channel": "late", "exp": time.Now().Add(-time.Minute).Unix()})
	if r := c.call(`{"subscribe":{"channel":"late","token":"` + oldSub + `"},"id":7}`); errCode(r) != 109 {
		t.Fatalf("expired subscription token %+v, want 109", r)
	}
	// sub_refresh and refresh with new tokens.
	later := time.Now().Add(2 * time.Hour).Unix()
	if r := c.call(`{"sub_refresh":{"channel":"private","token":"` + sign(t, jwt.MapClaims{"sub": "alice", "channel": "private", "exp": later}) + `"},"id":8}`); r.SubRefresh == nil || r.SubRefresh.TTL < 7000 {
		t.Fatalf("sub_refresh %+v", r)
	}
	if r := c.call(`{"refresh":{"token":"` + sign(t, jwt.MapClaims{"sub": "alice", "exp": later}) + `"},"id":9}`); r.Refresh == nil || r.Refresh.TTL < 7000 || r.Refresh.Client != c.connect.Client {
		t.Fatalf("refresh %+v", r)
	}
	c.send(nil, `{"refresh":{"token":"`+sign(t, jwt.MapClaims{"sub": "mallory", "exp": later})+`"},"id":10}`)
	if d := c.disconnected(); d.Code != 3500 {
		t.Fatalf("refresh as another user: %+v, want 3500", d)
	}

	// Refusals at connect.
	for _, tc := range []struct {
		name      string
		cmd       string
		errCode   uint32
		disconnet uint32
	}{
		{"no token", `{"connect":{},"id":1}`, 101, 0},
		{"expired", connect(sign(t, jwt.MapClaims{"sub": "a", "exp": time.Now().Add(-time.Minute).Unix()})), 109, 0},
		{"bad signature", connect(sign(t, jwt.MapClaims{"sub": "a"}) + "x"), 0, 3500},
		{"garbage", connect("not.a.token"), 0, 3500},
	} {
		r := s.openRaw("GET", "/connection/sse?cf_connect="+qesc(tc.cmd), nil)
		if tc.errCode != 0 {
			if rep := r.reply(); errCode(rep) != tc.errCode {
				t.Errorf("%s: %+v, want error %d", tc.name, rep, tc.errCode)
			}
			continue
		}
		if d := r.disconnected(); d.Code != tc.disconnet {
			t.Errorf("%s: %+v, want %d", tc.name, d, tc.disconnet)
		}
	}
	if n := countPeers(s.h); n != 0 {
		t.Errorf("%d peers left, want 0", n)
	}
}

func TestExpiry(t *testing.T) {
	refreshed := make(chan struct{}, 1)
	s := newServer(t, handler.Config{}, centrifugo.Config{Hooks: centrifugo.Hooks{
		Connecting: func(_ context.Context, e centrifugo.ConnectEvent) (centrifugo.ConnectReply, error) {
			return centrifugo.ConnectReply{UserID: "u", ExpireAt: time.Now().Add(300 * time.Millisecond)}, nil
		},
		Refresh: func(*centrifugo.Client, centrifugo.RefreshEvent) (centrifugo.RefreshReply, error) {
			refreshed <- struct{}{}
			return centrifugo.RefreshReply{ExpireAt: time.Now().Add(400 * time.Millisecond)}, nil
		},
	}})
	c := s.open(`{"connect":{},"id":1}`)
	if !c.connect.Expires || c.connect.TTL != 1 {
		t.Fatalf("connect %+v", c.connect)
	}
	start := time.Now()
	if r := c.call(`{"refresh":{},"id":2}`); r.Refresh == nil || !r.Refresh.Expires {
		t.Fatalf("refresh %+v", r)
	}
	<-refreshed
	if d := c.disconnected(); d.Code != 3005 {
		t.Fatalf("disconnect %+v, want 3005 expired", d)
	}
	if el := time.Since(start); el < 350*time.Millisecond {
		t.Fatalf("disconnected after %v: the refresh did not extend the connection", el)
	}
	// A uni client expires the same way.
	u := s.openUni("")
	for {
		p := u.push()
		if p.Disconnect != nil {
			if p.Disconnect.Code != 3005 {
				t.Fatalf("uni disconnect %+v", p.Disconnect)
			}
			break
		}
	}
}
