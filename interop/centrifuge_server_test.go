package interop

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/ssebridge/ssebridge/handler"
	"github.com/ssebridge/ssebridge/handler/centrifugo"
	"github.com/ssebridge/ssebridge/netfx"
)

// This file holds the in-process Centrifugo server of the tests that need
// their own configuration (short pings, server-side subscriptions) or
// their own routes (a page for Chromium), and the test of the
// unidirectional transport against it.

// testPingInterval is the ping interval of the in-process server.
const testPingInterval = 2 * time.Second

// cfDisconnect is one call of the Disconnect hook.
type cfDisconnect struct {
	Client, User, Transport string
	centrifugo.Disconnect
}

// testCentrifugoConfig is the configuration of the in-process tests: the
// channel "chat" is open to every client (subscribe, publish, history and
// presence once subscribed), positioned and recoverable, with presence;
// rpc "echo" returns its data, other methods fail with 104. A client's
// user is the "user" of its connect data ({"user":"…"}; none: anonymous);
// unidirectional clients are subscribed to "chat" by the server. Pings
// every 2 s (the first within 1 to 2 s), pongs due within 1.5 s.
func testCentrifugoConfig(disconnects *recorder[cfDisconnect]) centrifugo.Config {
	return centrifugo.Config{
		PingInterval: testPingInterval,
		PongTimeout:  1500 * time.Millisecond,
		Channels: centrifugo.ChannelOptions{
			Subscribe: true, Publish: true, History: true, Presence: true,
			TrackPresence: true, ForceRecovery: true,
		},
		Hooks: centrifugo.Hooks{
			Connecting: func(_ context.Context, e centrifugo.ConnectEvent) (centrifugo.ConnectReply, error) {
				var d struct {
					User string `json:"user"`
				}
				_ = json.Unmarshal(e.Data, &d)
				r := centrifugo.ConnectReply{UserID: d.User}
				if e.Transport == "uni_sse" {
					r.Subscriptions = map[string]centrifugo.SubscribeOptions{"chat": {}}
				}
				return r, nil
			},
			RPC: func(_ *centrifugo.Client, e centrifugo.RPCEvent) (centrifugo.RPCReply, error) {
				if e.Method != "echo" {
					return centrifugo.RPCReply{}, centrifugo.ErrorMethodNotFound
				}
				return centrifugo.RPCReply{Data: e.Data}, nil
			},
			Disconnect: func(c *centrifugo.Client, d centrifugo.Disconnect) {
				disconnects.add(cfDisconnect{c.ID(), c.UserID(), c.Transport(), d})
			},
		},
	}
}

// cfServer is an in-process server with the Centrifugo transports at
// /connection/sse, /connection/uni_sse and /emulation, behind a requestLog.
type cfServer struct {
	h    *handler.Handler
	log  *requestLog
	logs *syncBuffer // the handler's log, shown if the test failed
	base string      // http://127.0.0.1:PORT

	mu   sync.Mutex
	hold chan struct{} // not nil: new /connection/sse streams wait until it is closed
}

// startCentrifugoServer starts a server with cf; routes, if not nil, adds
// handlers (a page, say). It is shut down when the test ends.
func startCentrifugoServer(t *testing.T, cf centrifugo.Config, routes func(mux *http.ServeMux)) *cfServer {
	t.Helper()
	s := &cfServer{log: new(requestLog), logs: new(syncBuffer)}
	h, err := handler.New(handler.Config{Centrifugo: &cf, Logger: bufferLogger(s.logs)})
	if err != nil {
		t.Fatal(err)
	}
	s.h = h
	mux := http.NewServeMux()
	cfHandler := s.log.wrap(s.gate(netfx.New(h)))
	mux.Handle("/connection/", cfHandler)
	mux.Handle("/emulation", cfHandler)
	if routes != nil {
		routes(mux)
	}
	srv := httptest.NewServer(mux)
	s.base = srv.URL
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		s.release()
		if err := h.Shutdown(ctx); err != nil {
			t.Errorf("handler shutdown: %v", err)
		}
		srv.CloseClientConnections()
		srv.Close()
		if t.Failed() {
			t.Logf("server requests:%s", s.log)
			t.Logf("server log:\n%s", s.logs.String())
		}
	})
	return s
}

// gate holds new bidirectional streams while holdStreams is in force.
func (s *cfServer) gate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/connection/sse" {
			s.mu.Lock()
			hold := s.hold
			s.mu.Unlock()
			if hold != nil {
				select {
				case <-hold:
				case <-r.Context().Done():
					return
				}
			}
		}
		next.ServeHTTP(w, r)
	})
}

// holdStreams makes new /connection/sse requests wait until release.
func (s *cfServer) holdStreams() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.hold == nil {
		s.hold = make(chan struct{})
	}
}

// release lets the held stream requests through.
func (s *cfServer) release() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.hold != nil {
		close(s.hold)
		s.hold = nil
	}
}

// uniURL returns the URL of a unidirectional stream with connect (a
// ConnectRequest's JSON) in cf_connect.
func uniURL(base, connect string) string {
	return base + "/connection/uni_sse?cf_connect=" + url.QueryEscape(connect)
}

// openUniStream opens a unidirectional stream with net/http and waits for
// its first event, the connect push. It is closed when the test ends.
func openUniStream(t *testing.T, ctx context.Context, u string) *goStream {
	t.Helper()
	sctx, cancel := context.WithCancel(ctx)
	req, err := http.NewRequestWithContext(sctx, http.MethodGet, u, nil)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		cancel()
		t.Fatalf("GET %s: %v", u, err)
	}
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
		_ = resp.Body.Close()
		cancel()
		t.Fatalf("GET %s: %s %q", u, resp.Status, body)
	}
	s := &goStream{changed: make(chan struct{}, 1), done: make(chan struct{})}
	go s.read(resp.Body)
	t.Cleanup(func() {
		cancel()
		_ = resp.Body.Close()
		<-s.done
	})
	if _, err := s.waitFor(ctx, func(ev sseEvent) bool { return ev.Event == "message" }); err != nil {
		t.Fatalf("GET %s: no connect push: %v", u, err)
	}
	return s
}

// uniSub is a subscription in a unidirectional connect push.
type uniSub struct {
	Recoverable   bool                         `json:"recoverable"`
	Positioned    bool                         `json:"positioned"`
	Epoch         string                       `json:"epoch"`
	Offset        uint64                       `json:"offset"`
	WasRecovering bool                         `json:"was_recovering"`
	Recovered     bool                         `json:"recovered"`
	Publications  []map[string]json.RawMessage `json:"publications"`
}

// chatSubOf returns the subscription to "chat" of a connect push.
func chatSubOf(t *testing.T, c uniConnect) uniSub {
	t.Helper()
	var s uniSub
	raw, ok := c.Connect.Subs["chat"]
	if !ok || json.Unmarshal(raw, &s) != nil {
		t.Fatalf("connect push subs %v: want chat", c.Connect.Subs)
	}
	return s
}

// uniPub is a publication push as the unidirectional transport sends it:
// bare, not wrapped in a reply.
func uniPub(offset uint64, data string) string {
	return fmt.Sprintf(`{"channel":"chat","pub":{"data":%s,"offset":%d}}`, data, offset)
}

// TestCentrifugoUniSSE: a plain EventSource (npm eventsource) on
// /connection/uni_sse of an in-process server whose Connecting hook
// subscribes unidirectional clients to "chat". The connect push comes
// first, with the subscription (positioned, recoverable) and ping 2; then
// the server's publications as bare pushes with consecutive offsets (JSON
// data as it is, text as a JSON string), pings as {} (every 2 s), and,
// when the server disconnects the client's user, the disconnect push
// {"disconnect":{"code":3503,…}}. A new connection asking in cf_connect to
// recover "chat" from the last offset gets the 2 publications it missed
// in its connect push, recovered. (A second unidirectional client, "holder",
// stays subscribed throughout: the in-memory backend forgets the history
// of a channel nobody subscribes to.)
func TestCentrifugoUniSSE(t *testing.T) {
	requireNode(t)
	ctx := testContext(t)
	disconnects := newRecorder[cfDisconnect]()
	s := startCentrifugoServer(t, testCentrifugoConfig(disconnects), nil)
	cf := s.h.Centrifugo()
	holder := openUniStream(t, ctx, uniURL(s.base, `{"data":{"user":"holder"}}`))
	var hc uniConnect
	if err := json.Unmarshal([]byte(holder.events()[0].Data), &hc); err != nil || hc.Connect == nil {
		t.Fatalf("holder's connect push %q: %v", holder.events()[0].Data, err)
	}
	top := chatSubOf(t, hc)

	p := startNode(t, ctx, "uni.mjs", map[string]any{
		"url":    uniURL(s.base, `{"name":"uni-node","version":"2.0","data":{"user":"uni"}}`),
		"holdMs": 300,
	})
	var evs []nodeEvent
	next := func(what string, until func(nodeEvent) bool) {
		t.Helper()
		for {
			ev, ok := p.Next(ctx)
			if !ok {
				t.Fatalf("uni.mjs ended while waiting for %s: %v%s", what, p.Wait(ctx), dump(evs))
			}
			evs = append(evs, ev)
			if until(ev) {
				return
			}
		}
	}
	isMessage := func(ev nodeEvent) bool { return ev.Event == "message" }
	next("the connect push", isMessage)
	c := checkUniConnect(t, evs[len(evs)-1].Data, int(testPingInterval/time.Second))
	sub := chatSubOf(t, c)
	if !sub.Positioned || !sub.Recoverable || sub.Epoch != top.Epoch || sub.Offset != top.Offset || sub.WasRecovering || len(sub.Publications) != 0 {
		t.Errorf("connect push subs.chat %+v: want positioned and recoverable at the holder's position %d in epoch %q", sub, top.Offset, top.Epoch)
	}

	datas := []string{`{"n":1,"text":"héllo\nuni ✓"}`, "plain text\nline 2", `{"n":3}`}
	wantData := []string{`{"n":1,"text":"héllo\nuni ✓"}`, `"plain text\nline 2"`, `{"n":3}`}
	for _, d := range datas {
		if err := cf.Publish("chat", []byte(d)); err != nil {
			t.Fatal(err)
		}
	}
	var pubs, pings int
	next("3 publications and a ping", func(ev nodeEvent) bool {
		switch {
		case ev.Event != "message":
		case ev.Data == "{}":
			pings++
		default:
			pubs++
		}
		return pubs >= len(datas) && pings >= 1
	})
	if err := cf.Disconnect(ctx, "uni", *centrifugo.DisconnectForceNoReconnect); err != nil {
		t.Fatal(err)
	}
	rest, err := p.Collect(ctx)
	evs = append(evs, rest...)
	if err != nil {
		t.Fatalf("%v%s", err, dump(evs))
	}

	// The messages: the connect push, the publications in order among
	// pings, the disconnect push; the stream then ends.
	var msgs []string
	for _, ev := range only(evs, "message") {
		if ev.Data != "{}" {
			msgs = append(msgs, ev.Data)
		}
	}
	want := []string{evs[slices.IndexFunc(evs, isMessage)].Data}
	for i, d := range wantData {
		want = append(want, uniPub(top.Offset+1+uint64(i), d))
	}
	want = append(want, `{"disconnect":{"code":3503,"reason":"force disconnect"}}`)
	if !slices.Equal(msgs, want) {
		t.Errorf("messages besides pings:\n\t%q\nwant\n\t%q", msgs, want)
	}
	if gets := only(evs, "get"); len(gets) == 0 || gets[0].Status != 200 {
		t.Errorf("stream requests %s: want the first answered 200", dump(gets))
	}
	got, err := disconnects.waitFor(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	if want := (cfDisconnect{c.Connect.Client, "uni", "uni_sse", *centrifugo.DisconnectForceNoReconnect}); got[0] != want {
		t.Errorf("Disconnect hook: %+v, want %+v", got[0], want)
	}
	// The holder got the same publications.
	var holderPubs []string
	for _, ev := range holder.events()[1:] {
		if ev.Data != "{}" {
			holderPubs = append(holderPubs, ev.Data)
		}
	}
	if !slices.Equal(holderPubs, want[1:len(want)-1]) {
		t.Errorf("holder received %q, want %q", holderPubs, want[1:len(want)-1])
	}

	// Two publications while the client is away, then it comes back and
	// recovers them in its connect push.
	last := top.Offset + uint64(len(datas))
	for i := 1; i <= 2; i++ {
		if err := cf.Publish("chat", fmt.Appendf(nil, `{"missed":%d}`, i)); err != nil {
			t.Fatal(err)
		}
	}
	again := uniEvents(t, ctx, map[string]any{
		"url":   uniURL(s.base, fmt.Sprintf(`{"data":{"user":"uni"},"subs":{"chat":{"recover":true,"offset":%d,"epoch":%q}}}`, last, top.Epoch)),
		"count": 1,
	})
	first := only(again, "message")
	if len(first) != 1 {
		t.Fatalf("reconnection: %d messages, want 1 (the connect push):%s", len(first), dump(again))
	}
	rc := checkUniConnect(t, first[0].Data, int(testPingInterval/time.Second))
	rs := chatSubOf(t, rc)
	var rpubs []string
	for _, p := range rs.Publications {
		rpubs = append(rpubs, fmt.Sprintf("%s@%s", p["data"], p["offset"]))
	}
	wantR := []string{fmt.Sprintf(`{"missed":1}@%d`, last+1), fmt.Sprintf(`{"missed":2}@%d`, last+2)}
	if !rs.WasRecovering || !rs.Recovered || rs.Epoch != top.Epoch || rs.Offset != last+2 || !slices.Equal(rpubs, wantR) {
		t.Errorf("reconnection's subs.chat %s: want was_recovering, recovered, offset %d in epoch %q, publications %q", first[0].Data, last+2, top.Epoch, wantR)
	}
	if rc.Connect.Client == c.Connect.Client || rc.Connect.Session == c.Connect.Session {
		t.Errorf("the reconnection has the client id or session of the first connection")
	}
}
