package interop

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/ssebridge/ssebridge/handler"
)

// startBrowser starts a headless Chromium with a fresh profile and returns
// a context holding it. Pages are opened with newPage. The browser ends with
// ctx or the test.
func startBrowser(t *testing.T, ctx context.Context, extra ...chromedp.ExecAllocatorOption) context.Context {
	t.Helper()
	path := requireChromium(t)
	profile, err := os.MkdirTemp("", "ssebridge-chromium-")
	if err != nil {
		t.Fatal(err)
	}
	output := new(syncBuffer)
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(profile),
		chromedp.CombinedOutput(output),
	)
	opts = append(opts, extra...)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	browser, cancelBrowser := chromedp.NewContext(allocCtx)
	t.Cleanup(func() {
		cancelBrowser()
		cancelAlloc() // waits for the browser process
		removeProfile(t, profile)
		if t.Failed() {
			t.Logf("chromium output:\n%s", output.String())
		}
	})
	if err := chromedp.Do(browser); err != nil { // starts the browser
		t.Fatalf("start %s: %v", path, err)
	}
	return browser
}

// removeProfile removes a browser profile; Chromium's helper processes may
// still write into it for a moment after the browser exits.
func removeProfile(t *testing.T, dir string) {
	var err error
	for range 50 {
		if err = os.RemoveAll(dir); err == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("cannot remove browser profile %s: %v", dir, err)
}

// newPage opens a tab in a new browser context (its own cookies, cache and
// connections, like a separate browser profile) and returns its context.
func newPage(t *testing.T, browser context.Context) context.Context {
	t.Helper()
	page, cancel := chromedp.NewContext(browser, chromedp.WithNewBrowserContext())
	t.Cleanup(cancel)
	if err := chromedp.Do(page); err != nil {
		t.Fatalf("open a page: %v", err)
	}
	return page
}

// poll waits until the JavaScript expression is truthy in the page. It polls
// on a timer: requestAnimationFrame, chromedp's default, may not run in a
// page that is not in front.
func poll(page context.Context, expr string) error {
	_, err := chromedp.Run(page, chromedp.Poll[bool](expr,
		chromedp.WithPollingInterval(20*time.Millisecond),
		chromedp.WithPollingTimeout(20*time.Second)))
	return err
}

// chatLine is one entry of #messages in the chat page.
type chatLine struct {
	From string `json:"from"`
	Text string `json:"text"`
	Self bool   `json:"self"`
}

// peerEntry is one entry of #peers in the chat page.
type peerEntry struct {
	ID   string `json:"id"`
	Text string `json:"text"`
}

// TestChromiumChat: two pages of examples/chat, in two browser contexts of
// a real headless Chromium, join the room, see each other in the member
// list and exchange messages. The page uses a plain EventSource and fetch.
func TestChromiumChat(t *testing.T) {
	ctx := testContext(t)
	requireChromium(t)
	base := startChat(t, ctx)
	chatTwoPages(t, ctx, [2]chatter{
		{name: "alice", base: base, say: "héllo from alice ✓"},
		{name: "bob", base: base, say: "bob's reply <b>not bold</b>"},
	})
}

// chatter is one page of chatTwoPages: its member name, the chat instance
// it opens, what it writes, and how long it waits first (while streams end
// and resume, say).
type chatter struct {
	name, base, say string
	wait            time.Duration
}

// chatTwoPages opens each chatter's page in its own browser context of one
// headless Chromium, joins, waits until both pages list both members (each
// marking itself, with the same member ids), then lets the first and then
// the second write, and checks that both pages show both messages in that
// order with the right senders, still connected.
func chatTwoPages(t *testing.T, ctx context.Context, who [2]chatter) {
	t.Helper()
	start := time.Now()
	browser := startBrowser(t, ctx)
	pages := map[string]context.Context{}
	for _, c := range who {
		pages[c.name] = newPage(t, browser)
	}
	if a, b := chromedp.FromContext(pages[who[0].name]).BrowserContextID, chromedp.FromContext(pages[who[1].name]).BrowserContextID; a == "" || a == b {
		t.Fatalf("browser contexts %q and %q: want two distinct ones", a, b)
	}
	for _, c := range who {
		err := chromedp.Do(pages[c.name],
			chromedp.Navigate(c.base+"/"),
			chromedp.SendKeys(chromedp.ID("name"), c.name),
			chromedp.Click(chromedp.ID("connect")),
			chromedp.WaitReady(chromedp.CSS(`#status[data-state="open"]`)),
			chromedp.WaitEnabled(chromedp.ID("send")), // enabled on crossws-id
		)
		if err != nil {
			t.Fatalf("%s: join on %s: %v", c.name, c.base, err)
		}
	}
	joined := time.Now()
	t.Logf("both pages joined %v after the browser started", joined.Sub(start).Round(time.Millisecond))

	// Both pages list both members, each marking itself: two peers, so two
	// separate EventSource streams.
	const listPeers = `[...document.querySelectorAll("#peers li")].map(li => ({id: li.dataset.id, text: li.textContent}))`
	a, b := who[0].name, who[1].name
	wantText := map[string][]string{a: {a + " (you)", b}, b: {a, b + " (you)"}}
	ids := map[string][]string{}
	for _, c := range who {
		if err := poll(pages[c.name], `document.querySelectorAll("#peers li").length === 2`); err != nil {
			shown, _ := chromedp.Run(pages[c.name], chromedp.Evaluate[[]peerEntry](listPeers))
			t.Fatalf("%s: waiting for two members, %v after both joined: %v; #peers: %+v", c.name, time.Since(joined).Round(time.Millisecond), err, shown)
		}
		t.Logf("%s's page lists two members %v after both joined", c.name, time.Since(joined).Round(time.Millisecond))
		peers, err := chromedp.Run(pages[c.name], chromedp.Evaluate[[]peerEntry](listPeers))
		if err != nil {
			t.Fatal(err)
		}
		var text []string
		for _, p := range peers {
			text = append(text, p.Text)
			ids[c.name] = append(ids[c.name], p.ID)
		}
		if !slices.Equal(text, wantText[c.name]) {
			t.Errorf("%s's member list %q, want %q", c.name, text, wantText[c.name])
		}
	}
	if !slices.Equal(ids[a], ids[b]) || len(ids[a]) != 2 || ids[a][0] == ids[a][1] {
		t.Errorf("member ids: %s's page %q, %s's page %q: want the same two distinct ids", a, ids[a], b, ids[b])
	}

	// The first writes; the second answers once that message is on both
	// pages, so that both pages must show the same order.
	want := []chatLine{{From: a, Text: who[0].say}, {From: b, Text: who[1].say}}
	for i, c := range who {
		time.Sleep(c.wait)
		if err := chromedp.Do(pages[c.name],
			chromedp.SendKeys(chromedp.ID("text"), c.say),
			chromedp.Click(chromedp.ID("send")),
		); err != nil {
			t.Fatalf("%s: send: %v", c.name, err)
		}
		for on, page := range pages {
			if err := poll(page, `document.querySelectorAll("#messages li").length >= `+strconv.Itoa(i+1)); err != nil {
				t.Fatalf("%s's page: waiting for %s's message: %v", on, c.name, err)
			}
		}
	}
	const listMessages = `[...document.querySelectorAll("#messages li")].map(li => ({
		from: li.querySelector(".from").textContent,
		text: li.querySelector(".text").textContent,
		self: li.classList.contains("self")}))`
	for _, c := range who {
		lines, err := chromedp.Run(pages[c.name], chromedp.Evaluate[[]chatLine](listMessages))
		if err != nil {
			t.Fatal(err)
		}
		w := slices.Clone(want)
		for i := range w {
			w[i].Self = w[i].From == c.name
		}
		if !slices.Equal(lines, w) {
			t.Errorf("%s's page shows %+v, want %+v", c.name, lines, w)
		}
		// Open: at once, or once a stream that just ended has resumed.
		if err := poll(pages[c.name], `document.getElementById("status").dataset.state === "open"`); err != nil {
			state, _ := chromedp.Run(pages[c.name], chromedp.Evaluate[string](`document.getElementById("status").dataset.state`))
			t.Errorf("%s's status is %q (%v), want open", c.name, state, err)
		}
	}
}

// crosswsPage loads crossws's WebSocketSSE client (served from
// interop/node/node_modules) as an ES module in the browser, connects to URL
// (a JavaScript expression) and sends SEND (a JSON string) once open, in
// stream mode if STREAM is true. The page records what happens in
// window.__log, and keeps the EventSource that the client creates in
// window.__es. Fill it in with crosswsPageFor.
const crosswsPage = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>crossws in Chromium</title></head>
<body>
<script>
window.__log = [];
window.__es = [];
// Keep a handle on the EventSource that WebSocketSSE creates privately.
window.EventSource = class extends EventSource {
  constructor(...args) { super(...args); window.__es.push(this); }
};
</script>
<script type="module">
import { WebSocketSSE } from "/crossws/sse.mjs";
const log = (e) => window.__log.push(e);
const ws = new WebSocketSSE(URL, { stream: STREAM });
ws.addEventListener("open", () => {
  log({ event: "open" });
  ws.send(SEND).then(() => log({ event: "sent" }), (err) => log({ event: "send-error", data: String(err) }));
}, { once: true });
ws.addEventListener("message", (e) => log({ event: "message", data: e.data }));
ws.addEventListener("close", () => log({ event: "close" }));
</script>
</body></html>`

// crosswsPageFor fills in crosswsPage.
func crosswsPageFor(urlExpr, send string, stream bool) string {
	quoted, _ := json.Marshal(send)
	return strings.NewReplacer("URL", urlExpr, "SEND", string(quoted), "STREAM", strconv.FormatBool(stream)).Replace(crosswsPage)
}

// servePage serves an HTML page at pattern.
func servePage(mux *http.ServeMux, pattern, page string) {
	mux.HandleFunc(pattern, func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = io.WriteString(w, page)
	})
}

// serveCrossws serves crossws's sse.mjs at /crossws/sse.mjs.
func serveCrossws(mux *http.ServeMux, module string) {
	mux.HandleFunc("GET /crossws/sse.mjs", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/javascript; charset=utf-8")
		http.ServeFile(w, r, module)
	})
}

// crosswsModule returns the path of crossws's sse.mjs, or skips (fails on
// CI) if it is not installed.
func crosswsModule(t *testing.T) string {
	t.Helper()
	module := filepath.Join(nodeDir(), "node_modules", "crossws", "dist", "websocket", "sse.mjs")
	if _, err := os.Stat(module); err != nil {
		missingTool(t, fmt.Errorf("%s is missing: run `npm ci --prefix interop/node`", module))
	}
	return module
}

// pageEvent is one entry of window.__log.
type pageEvent struct {
	Event string `json:"event"`
	Data  string `json:"data"`
}

// TestCrosswsInChromium: crossws's WebSocketSSE client, loaded as an ES
// module in a real Chromium (whose native EventSource it uses), in
// { stream: false } mode against an in-process server: it gets the Open
// hook's welcome, sends a multi-line message that reaches the Message hook,
// gets the reply, and fires its close event when the server closes the peer;
// the browser's EventSource then stops after one 204.
func TestCrosswsInChromium(t *testing.T) { testCrosswsInChromium(t, false) }

// TestCrosswsStreamModeInChromium is TestCrosswsInChromium with crossws's
// default stream mode, where the client sends on one streamed fetch upload.
// Browsers stream request bodies only over HTTP/2, so the server runs HTTPS
// with HTTP/2 (its test certificate is not checked).
func TestCrosswsStreamModeInChromium(t *testing.T) { testCrosswsInChromium(t, true) }

func testCrosswsInChromium(t *testing.T, stream bool) {
	ctx := testContext(t)
	requireChromium(t)
	module := crosswsModule(t)
	const send = "hello from chromium\nline 2 ✓ 🌍"
	ups := newRecorder[upstream]()
	closes := newRecorder[closeCall]()
	s := startServerWith(t, handler.Config{
		Retry:          100 * time.Millisecond,
		ReconnectGrace: 10 * time.Second,
		Hooks: handler.Hooks{
			Open: func(p *handler.Peer) { _ = p.SendText("welcome\nto ssebridge") },
			Message: func(p *handler.Peer, m handler.Message) {
				ups.add(upstream{p.ID(), m.Text()})
				_ = p.SendText("echo: " + m.Text())
			},
			Close: func(p *handler.Peer, d handler.CloseDetails) { closes.add(closeCall{p.ID(), d}) },
		},
	}, func(mux *http.ServeMux) {
		servePage(mux, "GET /{$}", crosswsPageFor(`location.origin.replace(/^http/, "ws") + "/sse"`, send, stream))
		serveCrossws(mux, module)
	}, stream)
	var extra []chromedp.ExecAllocatorOption
	if stream {
		extra = append(extra, chromedp.IgnoreCertErrors)
	}
	page := newPage(t, startBrowser(t, ctx, extra...))
	if err := chromedp.Do(page, chromedp.Navigate(s.base+"/")); err != nil {
		t.Fatal(err)
	}
	pageLog := func() []pageEvent {
		evs, err := chromedp.Run(page, chromedp.Evaluate[[]pageEvent](`window.__log`))
		if err != nil {
			t.Fatalf("read the page's log: %v", err)
		}
		return evs
	}
	if err := poll(page, `window.__log.filter(e => e.event === "message").length >= 2`); err != nil {
		t.Fatalf("waiting for the welcome and the echo: %v; page log: %+v", err, pageLog())
	}
	got, err := ups.waitFor(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	peer := got[0].Peer
	if want := []upstream{{peer, send}}; !slices.Equal(got, want) {
		t.Errorf("Message hook got %q, want %q", got, want)
	}
	want := []pageEvent{
		{Event: "open"},
		{Event: "message", Data: "welcome\nto ssebridge"},
		{Event: "message", Data: "echo: " + send},
	}
	evs := slices.DeleteFunc(pageLog(), func(e pageEvent) bool { return e.Event == "sent" })
	if !slices.Equal(evs, want) {
		t.Errorf("page saw %+v, want %+v", evs, want)
	}

	// The server closes the peer: the page's client fires close, and the
	// browser's EventSource, reconnecting with <peer>.closed, gets 204 and
	// stops.
	p, ok := s.h.Peer(peer)
	if !ok {
		t.Fatalf("peer %s not found", peer)
	}
	_ = p.Close(4001, "bye from go")
	if err := poll(page, `window.__log.some(e => e.event === "close") && window.__es.length === 1 && window.__es[0].readyState === EventSource.CLOSED`); err != nil {
		t.Fatalf("waiting for the close event and the EventSource to close: %v; page log: %+v; requests:%s", err, pageLog(), s.log)
	}
	if _, err := closes.waitFor(ctx, 1); err != nil {
		t.Fatal(err)
	}
	if got, want := closes.all(), []closeCall{{peer, handler.CloseDetails{Code: 4001, Reason: "bye from go"}}}; !slices.Equal(got, want) {
		t.Errorf("Close hook calls %v, want %v", got, want)
	}
	var gets []string
	for _, r := range s.log.requests("GET") {
		gets = append(gets, fmt.Sprintf("%q→%d", r.LastEventID, r.Status))
	}
	if want := []string{`""→200`, fmt.Sprintf("%q→204", peer+".closed")}; !slices.Equal(gets, want) {
		t.Errorf("stream requests %v, want %v", gets, want)
	}
	// One upload: a POST per message, or the one streamed upload, which
	// ends when the peer closes.
	if err := waitUntil(ctx, func() bool {
		posts := s.log.requests("POST")
		return len(posts) > 0 && posts[len(posts)-1].Done
	}); err != nil {
		t.Fatalf("waiting for the upload to end: %v; requests:%s", err, s.log)
	}
	var posts []string
	for _, r := range s.log.requests("POST") {
		posts = append(posts, fmt.Sprintf("%s %s %s %q", r.Proto, r.PeerID, r.ContentType, r.Body))
	}
	wantPost := fmt.Sprintf("HTTP/1.1 %s %s %q", peer, "text/plain;charset=UTF-8", send)
	if stream {
		wantPost = fmt.Sprintf("HTTP/2.0 %s %s %q", peer, "application/octet-stream", send)
	}
	if want := []string{wantPost}; !slices.Equal(posts, want) {
		t.Errorf("uploads %q, want %q", posts, want)
	}
}

// TestChromiumCrossOrigin: a page from one origin uses crossws's
// WebSocketSSE ({stream:false}) against servers on other origins. The
// server that lists the page's origin in AllowedOrigins works: the stream,
// the CORS preflight for the x-crossws-id header and the POST. After a
// server-side close the browser's EventSource stops. The server that does
// not list it answers 403 and opens no peer, and the EventSource gives up.
func TestChromiumCrossOrigin(t *testing.T) {
	ctx := testContext(t)
	requireChromium(t)
	module := crosswsModule(t)
	ups := newRecorder[upstream]()
	var refusedOpens atomic.Int32
	pages := httptest.NewServer(nil) // its handler is set below, once the origins are known
	t.Cleanup(pages.Close)
	allowed := startServer(t, handler.Config{
		AllowedOrigins: []string{pages.URL},
		Retry:          100 * time.Millisecond,
		Hooks: handler.Hooks{
			Message: func(p *handler.Peer, m handler.Message) {
				ups.add(upstream{p.ID(), m.Text()})
				_ = p.SendText("echo: " + m.Text())
			},
		},
	}, nil)
	refused := startServer(t, handler.Config{
		AllowedOrigins: []string{"http://elsewhere.example"},
		Retry:          100 * time.Millisecond,
		Hooks:          handler.Hooks{Open: func(*handler.Peer) { refusedOpens.Add(1) }},
	}, nil)
	mux := http.NewServeMux()
	quoted := func(s string) string { b, _ := json.Marshal(s); return string(b) }
	servePage(mux, "GET /allowed", crosswsPageFor(quoted(allowed.wsURL()), "from another origin", false))
	servePage(mux, "GET /refused", crosswsPageFor(quoted(refused.wsURL()), "should not arrive", false))
	serveCrossws(mux, module)
	pages.Config.Handler = mux

	browser := startBrowser(t, ctx)
	tab := newPage(t, browser)
	if err := chromedp.Do(tab, chromedp.Navigate(pages.URL+"/allowed")); err != nil {
		t.Fatal(err)
	}
	if err := poll(tab, `window.__log.some(e => e.event === "message")`); err != nil {
		t.Fatalf("allowed origin: waiting for the echo: %v; requests:%s", err, allowed.log)
	}
	got, err := ups.waitFor(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	peer := got[0].Peer
	if want := []upstream{{peer, "from another origin"}}; !slices.Equal(got, want) {
		t.Errorf("Message hook got %q, want %q", got, want)
	}
	var preflights int
	for _, r := range allowed.log.requests("OPTIONS") {
		if r.Status == http.StatusNoContent {
			preflights++
		}
	}
	if preflights == 0 {
		t.Errorf("no CORS preflight answered 204; requests:%s", allowed.log)
	}
	p, ok := allowed.h.Peer(peer)
	if !ok {
		t.Fatalf("peer %s not found", peer)
	}
	_ = p.Close(4000, "bye")
	if err := poll(tab, `window.__log.some(e => e.event === "close") && window.__es[0].readyState === EventSource.CLOSED`); err != nil {
		t.Fatalf("allowed origin: waiting for close: %v; requests:%s", err, allowed.log)
	}
	var gets []string
	for _, r := range allowed.log.requests("GET") {
		gets = append(gets, fmt.Sprintf("%q→%d", r.LastEventID, r.Status))
	}
	if want := []string{`""→200`, fmt.Sprintf("%q→204", peer+".closed")}; !slices.Equal(gets, want) {
		t.Errorf("allowed origin: stream requests %v, want %v", gets, want)
	}

	tab2 := newPage(t, browser)
	if err := chromedp.Do(tab2, chromedp.Navigate(pages.URL+"/refused")); err != nil {
		t.Fatal(err)
	}
	if err := poll(tab2, `window.__es.length === 1 && window.__es[0].readyState === EventSource.CLOSED`); err != nil {
		t.Fatalf("refused origin: waiting for the EventSource to give up: %v; requests:%s", err, refused.log)
	}
	reqs := refused.log.requests("")
	if len(reqs) == 0 {
		t.Errorf("refused origin: the server saw no request")
	}
	for _, r := range reqs {
		if r.Status != http.StatusForbidden {
			t.Errorf("refused origin: %s answered %d, want 403", r.Method, r.Status)
		}
	}
	if n := refusedOpens.Load(); n != 0 {
		t.Errorf("refused origin: Open ran %d times", n)
	}
	if evs, err := chromedp.Run(tab2, chromedp.Evaluate[[]pageEvent](`window.__log`)); err != nil || slices.ContainsFunc(evs, func(e pageEvent) bool { return e.Event == "open" || e.Event == "message" }) {
		t.Errorf("refused origin: page saw %+v (%v), want no open and no message", evs, err)
	}
}
