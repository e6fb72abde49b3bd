package interop

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/ssebridge/ssebridge/handler/centrifugo"
)

// centrifugePage uses centrifuge-js's browser build (served from
// interop/node/node_modules) with relative endpoints: "/connection/sse"
// resolved against the page, and the default emulation endpoint
// "/emulation". It connects, subscribes to "chat" (positioned,
// recoverable), publishes, calls rpc "echo" and "nope", reads history and
// presence stats, then logs "ready". Everything goes to window.__log; the
// EventSources the client creates are kept in window.__es, and the client
// in window.__c.
const centrifugePage = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>centrifuge-js in Chromium</title></head>
<body>
<script>
window.__log = [];
window.__es = [];
window.EventSource = class extends EventSource {
  constructor(...args) { super(...args); window.__es.push(this); }
};
</script>
<script src="/centrifuge.js"></script>
<script>
const log = (e) => window.__log.push(e);
const c = new Centrifuge([{ transport: "sse", endpoint: "/connection/sse" }], { minReconnectDelay: 50, maxReconnectDelay: 500 });
window.__c = c;
c.on("connecting", (ctx) => log({ event: "connecting", code: ctx.code, reason: ctx.reason }));
c.on("connected", (ctx) => log({ event: "connected", client: ctx.client, transport: ctx.transport, session: c._session }));
c.on("disconnected", (ctx) => log({ event: "disconnected", code: ctx.code, reason: ctx.reason }));
const sub = c.newSubscription("chat", { recoverable: true, positioned: true });
sub.on("subscribed", (ctx) => log({ event: "subscribed", wasRecovering: ctx.wasRecovering, recovered: ctx.recovered,
  hasRecoveredPublications: ctx.hasRecoveredPublications, positioned: ctx.positioned, recoverable: ctx.recoverable,
  offset: ctx.streamPosition.offset, epoch: ctx.streamPosition.epoch }));
sub.on("publication", (ctx) => log({ event: "publication", offset: ctx.offset, data: JSON.stringify(ctx.data) }));
sub.once("subscribed", async () => {
  try {
    await sub.publish({ text: "from chromium ✓" });
    log({ event: "published" });
    const r = await c.rpc("echo", { hello: "wörld", n: [1, 2] });
    log({ event: "rpc", data: JSON.stringify(r.data) });
    try {
      await c.rpc("nope", {});
      log({ event: "rpc", data: "nope answered" });
    } catch (e) {
      log({ event: "rpc-error", code: e.code, reason: e.message });
    }
    const h = await c.history("chat", { limit: 10 });
    log({ event: "history", offset: h.offset, epoch: h.epoch, pubs: h.publications.map((p) => ({ offset: p.offset, data: JSON.stringify(p.data) })) });
    const ps = await c.presenceStats("chat");
    log({ event: "presence-stats", numClients: ps.numClients, numUsers: ps.numUsers });
    log({ event: "ready" });
  } catch (e) {
    log({ event: "failed", reason: String(e?.message ?? JSON.stringify(e)) });
  }
});
c.connect();
sub.subscribe();
</script>
</body></html>`

// centrifugeBrowserBuild returns the path of centrifuge-js's browser build,
// or skips (fails on CI) if it is not installed.
func centrifugeBrowserBuild(t *testing.T) string {
	t.Helper()
	p := filepath.Join(nodeDir(), "node_modules", "centrifuge", "dist", "centrifuge.js")
	if _, err := os.Stat(p); err != nil {
		missingTool(t, fmt.Errorf("%s is missing: run `npm ci --prefix interop/node`", p))
	}
	return p
}

// browserEvent is one entry of the page's window.__log.
type browserEvent struct {
	Event                    string  `json:"event"`
	Code                     int     `json:"code"`
	Reason                   string  `json:"reason"`
	Client                   string  `json:"client"`
	Transport                string  `json:"transport"`
	Session                  string  `json:"session"`
	WasRecovering            bool    `json:"wasRecovering"`
	Recovered                bool    `json:"recovered"`
	HasRecoveredPublications bool    `json:"hasRecoveredPublications"`
	Positioned               bool    `json:"positioned"`
	Recoverable              bool    `json:"recoverable"`
	Offset                   uint64  `json:"offset"`
	Epoch                    string  `json:"epoch"`
	Data                     string  `json:"data"`
	Pubs                     []cfPub `json:"pubs"`
	NumClients               int     `json:"numClients"`
	NumUsers                 int     `json:"numUsers"`
}

func browserOf(evs []browserEvent, kind string) []browserEvent {
	return slices.DeleteFunc(slices.Clone(evs), func(ev browserEvent) bool { return ev.Event != kind })
}

// TestCentrifugeJSInChromium: centrifuge-js's browser build in a real
// headless Chromium (its native EventSource and fetch), on an in-process
// server that serves the page too (same origin, relative endpoints). The
// page connects, subscribes, publishes and gets its publication back,
// calls rpc (echo, and an unknown method: 104), reads history and presence
// stats. The server pings every 2 s: the page answers each ping through
// /emulation in time, and is never disconnected for want of a pong. Then
// its EventSource fails (an error event) while new streams are held back
// and the server publishes 4 messages; the page reconnects, and its
// resubscribe recovers exactly those 4, with consecutive offsets.
func TestCentrifugeJSInChromium(t *testing.T) {
	ctx := testContext(t)
	requireChromium(t)
	build := centrifugeBrowserBuild(t)
	disconnects := newRecorder[cfDisconnect]()
	s := startCentrifugoServer(t, testCentrifugoConfig(disconnects), func(mux *http.ServeMux) {
		servePage(mux, "GET /{$}", centrifugePage)
		mux.HandleFunc("GET /centrifuge.js", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/javascript; charset=utf-8")
			http.ServeFile(w, r, build)
		})
	})
	// A unidirectional client of user "holder", subscribed to "chat" by the
	// server: presence shows it, and the channel keeps its history while
	// the page is away (the in-memory backend forgets the history of a
	// channel nobody subscribes to).
	openUniStream(t, ctx, uniURL(s.base, `{"data":{"user":"holder"}}`))

	page := newPage(t, startBrowser(t, ctx))
	if err := chromedp.Do(page, chromedp.Navigate(s.base+"/")); err != nil {
		t.Fatal(err)
	}
	pageLog := func() []browserEvent {
		t.Helper()
		evs, err := chromedp.Run(page, chromedp.Evaluate[[]browserEvent](`window.__log`))
		if err != nil {
			t.Fatalf("read the page's log: %v", err)
		}
		return evs
	}
	defer func() {
		if t.Failed() {
			raw, _ := chromedp.Run(page, chromedp.Evaluate[string](`JSON.stringify(window.__log)`))
			t.Logf("page log: %s", raw)
		}
	}()
	if err := poll(page, `window.__log.some(e => e.event === "ready" || e.event === "failed")`); err != nil {
		t.Fatalf("waiting for the page: %v", err)
	}
	evs := pageLog()
	if f := browserOf(evs, "failed"); len(f) > 0 {
		t.Fatalf("page failed: %+v", f)
	}
	conn := browserOf(evs, "connected")
	subs := browserOf(evs, "subscribed")
	if len(conn) != 1 || conn[0].Transport != "sse" || !uuidPattern.MatchString(conn[0].Client) || len(subs) != 1 {
		t.Fatalf("connected %+v, subscribed %+v: want one each, over sse", conn, subs)
	}
	first := subs[0]
	if !first.Positioned || !first.Recoverable || first.WasRecovering || first.Epoch == "" {
		t.Errorf("subscribed %+v: want positioned and recoverable", first)
	}
	const own = `{"text":"from chromium ✓"}`
	if p := browserOf(evs, "publication"); len(p) != 1 || p[0].Offset != first.Offset+1 || p[0].Data != own {
		t.Errorf("publications %+v: want %s at offset %d", p, own, first.Offset+1)
	}
	if r := browserOf(evs, "rpc"); len(r) != 1 || !jsonEqual(r[0].Data, `{"hello":"wörld","n":[1,2]}`) {
		t.Errorf("rpc echo: %+v", r)
	}
	if r := browserOf(evs, "rpc-error"); len(r) != 1 || r[0].Code != 104 || r[0].Reason != "method not found" {
		t.Errorf("rpc nope: %+v, want 104 method not found", r)
	}
	if h := browserOf(evs, "history"); len(h) != 1 || h[0].Epoch != first.Epoch || h[0].Offset != first.Offset+1 ||
		!slices.Equal(h[0].Pubs, []cfPub{{Offset: first.Offset + 1, Data: own}}) {
		t.Errorf("history: %+v, want the page's publication at %d in epoch %q", h, first.Offset+1, first.Epoch)
	}
	if p := browserOf(evs, "presence-stats"); len(p) != 1 || p[0].NumClients != 2 || p[0].NumUsers != 1 {
		t.Errorf("presence stats: %+v, want 2 clients (the page, the holder) and 1 user (holder)", p)
	}

	// Pings: the page answers them (a POST of "{}" with its session).
	pongs := func(session string) int {
		n := 0
		for _, r := range s.log.requests("POST") {
			var env struct{ Session, Data string }
			if json.Unmarshal(r.Body, &env) == nil && env.Session == session && env.Data == "{}" && r.Status == http.StatusNoContent {
				n++
			}
		}
		return n
	}
	if err := waitUntil(ctx, func() bool { return pongs(conn[0].Session) >= 1 }); err != nil {
		t.Fatalf("no pong from the page: %v", err)
	}

	// The stream fails; the server publishes while the page is away.
	s.holdStreams()
	if _, err := chromedp.Run(page, chromedp.Evaluate[bool](`window.__es.at(-1).dispatchEvent(new Event("error"))`)); err != nil {
		t.Fatal(err)
	}
	if err := poll(page, `window.__log.filter(e => e.event === "connecting").length === 2 && window.__es.length === 2`); err != nil {
		t.Fatalf("waiting for the page to reconnect: %v", err)
	}
	const k = 4
	for i := 1; i <= k; i++ {
		if err := s.h.Centrifugo().Publish("chat", fmt.Appendf(nil, `{"missed":%d}`, i)); err != nil {
			t.Fatal(err)
		}
	}
	s.release()
	if err := poll(page, `window.__log.filter(e => e.event === "subscribed").length === 2 &&
		window.__log.filter(e => e.event === "publication").length >= `+fmt.Sprint(1+k)); err != nil {
		t.Fatalf("waiting for the recovery: %v", err)
	}
	evs = pageLog()
	conn = browserOf(evs, "connected")
	subs = browserOf(evs, "subscribed")
	if len(conn) != 2 || conn[1].Client == conn[0].Client || conn[1].Session == conn[0].Session || len(subs) != 2 {
		t.Fatalf("after the drop: connected %+v, subscribed %+v: want a second connection and subscription", conn, subs)
	}
	if again := subs[1]; !again.WasRecovering || !again.Recovered || !again.HasRecoveredPublications ||
		again.Epoch != first.Epoch || again.Offset != first.Offset+1+k {
		t.Errorf("resubscribe %+v: want recovered with publications, at offset %d in epoch %q", again, first.Offset+1+k, first.Epoch)
	}
	want := []cfPub{{Offset: first.Offset + 1, Data: own}}
	for i := 1; i <= k; i++ {
		want = append(want, cfPub{Offset: first.Offset + 1 + uint64(i), Data: fmt.Sprintf(`{"missed":%d}`, i)})
	}
	var got []cfPub
	for _, p := range browserOf(evs, "publication") {
		got = append(got, cfPub{p.Offset, p.Data})
	}
	if !slices.Equal(got, want) {
		t.Errorf("page's publications %v, want %v", got, want)
	}
	// Each missed publication came with the resubscribe, none live.
	iSub := slices.IndexFunc(evs, func(ev browserEvent) bool { return ev.Event == "subscribed" && ev.WasRecovering })
	for i, ev := range evs[iSub+1:] {
		if i < k && ev.Event != "publication" {
			t.Errorf("after the resubscribe, event %d is %+v: want the recovered publications first", i, ev)
			break
		}
	}

	// The new connection answers pings too; the only disconnect is the
	// dropped stream's (3000 connection closed), none for "no pong".
	if err := waitUntil(ctx, func() bool { return pongs(conn[1].Session) >= 1 }); err != nil {
		t.Fatalf("no pong from the page's second connection: %v", err)
	}
	if _, err := disconnects.waitFor(ctx, 1); err != nil {
		t.Fatal(err)
	}
	var bidi []cfDisconnect
	for _, d := range disconnects.all() {
		if d.Transport == "sse" {
			bidi = append(bidi, d)
		}
	}
	if want := []cfDisconnect{{conn[0].Client, "", "sse", centrifugo.Disconnect{Code: 3000, Reason: "connection closed"}}}; !slices.Equal(bidi, want) {
		t.Errorf("Disconnect hook calls %+v, want %+v", bidi, want)
	}
	if state, err := chromedp.Run(page, chromedp.Evaluate[string](`window.__c.state`)); err != nil || state != "connected" {
		t.Errorf("client state %q (%v), want connected", state, err)
	}
	if d := browserOf(pageLog(), "disconnected"); len(d) != 0 {
		t.Errorf("page disconnected: %+v", d)
	}
	var posts []string
	for _, r := range s.log.requests("POST") {
		if r.ContentType != "application/json" || r.Status != http.StatusNoContent || !strings.HasPrefix(string(r.Body), `{"session":`) {
			posts = append(posts, fmt.Sprintf("%s %d %q", r.ContentType, r.Status, r.Body))
		}
	}
	if len(posts) > 0 {
		t.Errorf("emulation POSTs not application/json, answered other than 204, or not an envelope: %q", posts)
	}
}
