package runtimetest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/ssebridge/ssebridge/handler/centrifugo/wire"
	"github.com/ssebridge/ssebridge/internal/ssetest"
)

// Centrifugo's transports on the runtime, with a Go client: the protocol
// itself is tested in handler/centrifugo, centrifuge-js in interop; here,
// what the runtime must carry (stream headers and first bytes, POST bodies
// and their limits, emulation across instances).

// cfBase is the root of the Centrifugo endpoints beside the suite's
// endpoint URL ("…/sse").
func cfBase(u string) string { return strings.TrimSuffix(u, "/sse") }

// cfConn is an open /connection/sse stream.
type cfConn struct {
	t       *testing.T
	c       *client
	base    string
	ev      *ssetest.Reader
	connect *wire.ConnectResult
}

// cfOpen opens a bidirectional stream at base with a connect command.
func (c *client) cfOpen(base string) *cfConn {
	c.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	u := base + "/connection/sse?cf_connect=" + url.QueryEscape(`{"connect":{"name":"go"},"id":1}`)
	resp, err := c.hc.Do(c.request(ctx, http.MethodGet, u, nil))
	if err != nil {
		cancel()
		c.t.Fatalf("GET %s: %v", u, err)
	}
	c.t.Cleanup(func() { cancel(); _ = resp.Body.Close() })
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream; charset=utf-8" {
		c.t.Fatalf("GET %s: status %d, headers %v", u, resp.StatusCode, resp.Header)
	}
	cc := &cfConn{t: c.t, c: c, base: base, ev: ssetest.NewReader(resp.Body)}
	r := cc.reply()
	if r.ID != 1 || r.Connect == nil || r.Connect.Session == "" || r.Connect.Node == "" || !r.Connect.Pong {
		c.t.Fatalf("connect reply %+v", r)
	}
	cc.connect = r.Connect
	return cc
}

// reply returns the next reply that is not a ping.
func (cc *cfConn) reply() wire.Reply {
	cc.t.Helper()
	for {
		it := cc.ev.Event(cc.t)
		if it.Data == "{}" {
			continue
		}
		var r wire.Reply
		if err := json.Unmarshal([]byte(it.Data), &r); err != nil {
			cc.t.Fatalf("event %q: %v", it.Data, err)
		}
		return r
	}
}

// envelope is an emulation body carrying cmds.
func (cc *cfConn) envelope(cmds ...string) string {
	b, _ := json.Marshal(map[string]string{"session": cc.connect.Session, "node": cc.connect.Node, "data": strings.Join(cmds, "\n")})
	return string(b)
}

// send posts cmds to /emulation at base and expects 204.
func (cc *cfConn) send(base string, cmds ...string) {
	cc.t.Helper()
	status, _, body := cc.c.do(http.MethodPost, base+"/emulation", strings.NewReader(cc.envelope(cmds...)), "Content-Type", "application/json")
	if status != http.StatusNoContent {
		cc.t.Fatalf("POST %s/emulation: %d %q, want 204", base, status, short(body))
	}
}

func testCentrifugo(t *testing.T, rt Runtime) {
	base := cfBase(deploy(t, rt, 1, false).urls[0])
	c := newClient(t)
	a := c.cfOpen(base)
	a.send(base, `{"subscribe":{"channel":"cf"},"id":2}`, `{"rpc":{"method":"echo","data":{"x":"€"}},"id":3}`)
	r := a.reply()
	if r.ID != 2 || r.Subscribe == nil || !r.Subscribe.Recoverable || r.Subscribe.Epoch == "" {
		t.Fatalf("subscribe %+v", r)
	}
	epoch := r.Subscribe.Epoch
	if r := a.reply(); r.ID != 3 || r.RPC == nil || string(r.RPC.Data) != `{"x":"€"}` {
		t.Fatalf("rpc %+v", r)
	}
	// Publications, through the stream of the publisher too.
	for i := 1; i <= 3; i++ {
		a.send(base, fmt.Sprintf(`{"publish":{"channel":"cf","data":%d},"id":%d}`, i, 10+i))
	}
	pubs := 0
	for pubs < 3 {
		r := a.reply()
		if r.Push != nil {
			pubs++
			if r.Push.Pub == nil || r.Push.Pub.Offset != uint64(pubs) || string(r.Push.Pub.Data) != fmt.Sprint(pubs) {
				t.Fatalf("publication %+v, want %d", r.Push, pubs)
			}
		}
	}
	// Recovery on a second connection.
	b := c.cfOpen(base)
	b.send(base, `{"subscribe":{"channel":"cf","recover":true,"offset":1,"epoch":"`+epoch+`"},"id":2}`)
	if r := b.reply(); r.Subscribe == nil || !r.Subscribe.Recovered || len(r.Subscribe.Publications) != 2 {
		t.Fatalf("recovery %+v", r.Subscribe)
	}
	// Unidirectional, GET and POST.
	for _, method := range []string{http.MethodGet, http.MethodPost} {
		u := base + "/connection/uni_sse"
		var body *strings.Reader
		if method == http.MethodGet {
			u += "?cf_connect=" + url.QueryEscape(`{"subs":{"cf":{}}}`)
			body = strings.NewReader("")
		} else {
			body = strings.NewReader(`{"subs":{"cf":{}}}`)
		}
		ctx, cancel := context.WithCancel(context.Background())
		resp, err := c.hc.Do(c.request(ctx, method, u, body))
		if err != nil {
			cancel()
			t.Fatalf("%s uni_sse: %v", method, err)
		}
		ev := ssetest.NewReader(resp.Body)
		var p wire.Push
		if err := json.Unmarshal([]byte(ev.Event(t).Data), &p); err != nil || p.Connect == nil || p.Connect.Session == "" || p.Connect.Node != "" {
			t.Fatalf("%s uni_sse: first push %+v (%v)", method, p, err)
		}
		if _, ok := p.Connect.Subs["cf"]; !ok {
			t.Fatalf("%s uni_sse: subs %+v", method, p.Connect.Subs)
		}
		cancel()
		_ = resp.Body.Close()
	}
}

func testCentrifugoBadInput(t *testing.T, rt Runtime) {
	base := cfBase(deploy(t, rt, 1, false).urls[0])
	c := newClient(t)
	a := c.cfOpen(base)
	big := a.envelope(`{"rpc":{"method":"echo","data":"` + strings.Repeat("x", 70<<10) + `"},"id":9}`)
	for _, tc := range []struct {
		name, method, path, body string
		hdr                      []string
		status                   int
	}{
		{"no cf_connect", "GET", "/connection/sse", "", nil, 400},
		{"bad cf_connect", "GET", "/connection/sse?cf_connect=%7B", "", nil, 400},
		{"uni bad cf_connect", "GET", "/connection/uni_sse?cf_connect=x", "", nil, 400},
		{"connect body over the limit", "POST", "/connection/sse", strings.Repeat(" ", 70<<10), nil, 413},
		{"stream PUT", "PUT", "/connection/sse", "", nil, 405},
		{"emulation GET", "GET", "/emulation", "", nil, 405},
		{"emulation not JSON", "POST", "/emulation", "{", nil, 400},
		{"emulation unknown session", "POST", "/emulation", `{"session":"AAAAAAAAAAAAAAAAAAAAAA","node":"n","data":"{}"}`, nil, 404},
		{"emulation over the limit", "POST", "/emulation", big, nil, 413},
		{"emulation origin", "POST", "/emulation", a.envelope(`{}`), []string{"Origin", "https://evil.example"}, 403},
		{"emulation preflight", "OPTIONS", "/emulation", "", []string{"Origin", AppOrigin, "Access-Control-Request-Method", "POST"}, 204},
	} {
		status, hdr, body := c.do(tc.method, base+tc.path, bytes.NewReader([]byte(tc.body)), tc.hdr...)
		if status != tc.status {
			t.Errorf("%s: status %d %q, want %d", tc.name, status, short(body), tc.status)
		}
		if tc.status == 204 && tc.method == "OPTIONS" && hdr.Get("Access-Control-Max-Age") != "300" {
			t.Errorf("%s: headers %v", tc.name, hdr)
		}
	}
	// The connection still works.
	a.send(base, `{"rpc":{"method":"echo","data":1},"id":2}`)
	if r := a.reply(); r.ID != 2 || string(r.RPC.Data) != "1" {
		t.Fatalf("rpc after bad input %+v", r)
	}
}

func testCentrifugoCrossInstance(t *testing.T, rt Runtime) {
	d := deploy(t, rt, 2, true)
	a, b := cfBase(d.urls[0]), cfBase(d.urls[1])
	c := newClient(t)
	st := c.cfOpen(a)
	for i := range 20 {
		st.send(b, fmt.Sprintf(`{"rpc":{"method":"echo","data":%d},"id":%d}`, i, i+2))
	}
	for i := range 20 {
		if r := st.reply(); r.ID != uint32(i+2) || r.RPC == nil || string(r.RPC.Data) != fmt.Sprint(i) {
			t.Fatalf("reply %+v, want rpc %d", r, i)
		}
	}
	other := c.cfOpen(b)
	st.send(b, `{"subscribe":{"channel":"cf"},"id":100}`)
	if r := st.reply(); r.Subscribe == nil {
		t.Fatalf("subscribe %+v", r)
	}
	other.send(a, `{"subscribe":{"channel":"cf"},"id":2}`, `{"publish":{"channel":"cf","data":"across"},"id":3}`)
	for {
		r := st.reply()
		if r.Push != nil && r.Push.Pub != nil {
			if string(r.Push.Pub.Data) != `"across"` {
				t.Fatalf("publication %+v", r.Push)
			}
			break
		}
	}
}
