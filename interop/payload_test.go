package interop

import (
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/ssebridge/ssebridge/handler"
)

// downstreamCase is a text the server sends and what an EventSource must
// deliver: SSE has no way to carry a CR, so CR and CRLF arrive as LF.
type downstreamCase struct{ send, want string }

// bigText is about 100 KB of lines.
var bigText = strings.Repeat(strings.Repeat("0123456789", 10)+"\n", 1000) + "end"

var downstreamCases = []downstreamCase{
	{"", ""},
	{"\n", "\n"},
	{"a\n", "a\n"},
	{"\nb", "\nb"},
	{"a\n\n\nb", "a\n\n\nb"},
	{"a\r\nb", "a\nb"},
	{"a\rb", "a\nb"},
	{"a\r", "a\n"},
	{"\r\n\r\n", "\n\n"},
	{"  leading and trailing spaces  ", "  leading and trailing spaces  "},
	{": looks like a comment", ": looks like a comment"},
	{"data: nested\nid: 7\nevent: close\nretry: 1\n:comment", "data: nested\nid: 7\nevent: close\nretry: 1\n:comment"},
	{"é 🌍 \u2028 \u0085 \u00a0 tab\there", "é 🌍 \u2028 \u0085 \u00a0 tab\there"},
	{"nul\x00byte", "nul\x00byte"},
	{"\uFEFFstarts with a BOM", "\uFEFFstarts with a BOM"},
	{bigText, bigText},
}

// downstreamServer sends every case from the Open hook, then "done".
func downstreamServer(t *testing.T, routes func(*http.ServeMux)) *testServer {
	return startServer(t, handler.Config{
		Hooks: handler.Hooks{
			Open: func(p *handler.Peer) {
				for _, c := range downstreamCases {
					_ = p.SendText(c.send)
				}
				_ = p.SendText("done")
			},
		},
	}, routes)
}

func checkDownstream(t *testing.T, client string, got []string) {
	t.Helper()
	if len(got) != len(downstreamCases) {
		t.Errorf("%s received %d messages, want %d: %q", client, len(got), len(downstreamCases), got)
		return
	}
	for i, c := range downstreamCases {
		if got[i] != c.want {
			t.Errorf("%s: message %d: sent %q, received %q, want %q", client, i+1, abbrev(c.send), abbrev(got[i]), abbrev(c.want))
		}
	}
}

func abbrev(s string) string {
	if len(s) > 80 {
		return fmt.Sprintf("%s…(%d bytes)", s[:60], len(s))
	}
	return s
}

// TestDownstreamPayloadsNode: texts with every kind of line break, empty
// lines, field-like and non-ASCII content and 100 KB, sent with
// Peer.SendText, reach a Node EventSource (npm eventsource) exactly.
func TestDownstreamPayloadsNode(t *testing.T) {
	requireNode(t)
	ctx := testContext(t)
	s := downstreamServer(t, nil)
	evs, err := startNode(t, ctx, "eventsource.mjs", map[string]any{"url": s.url}).Collect(ctx)
	if err != nil {
		t.Fatalf("%v\nevents:%s", err, dump(evs))
	}
	got := datas(only(evs, "message"))
	if len(got) == 0 || got[len(got)-1] != "done" {
		t.Fatalf("no done message:%s", dump(evs))
	}
	checkDownstream(t, "node eventsource", got[:len(got)-1])
}

// TestDownstreamPayloadsChromium is TestDownstreamPayloadsNode with
// Chromium's native EventSource.
func TestDownstreamPayloadsChromium(t *testing.T) {
	ctx := testContext(t)
	requireChromium(t)
	s := downstreamServer(t, func(mux *http.ServeMux) {
		mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			_, _ = io.WriteString(w, `<!doctype html><meta charset="utf-8"><title>payloads</title>
<script>
window.__msgs = [];
const es = new EventSource("/sse");
es.addEventListener("message", (e) => {
  if (e.data === "done") { es.close(); window.__done = true; } else window.__msgs.push(e.data);
});
</script>`)
		})
	})
	page := newPage(t, startBrowser(t, ctx))
	if err := chromedp.Do(page, chromedp.Navigate(s.base+"/")); err != nil {
		t.Fatal(err)
	}
	if err := poll(page, `window.__done === true`); err != nil {
		t.Fatalf("waiting for done: %v", err)
	}
	got, err := chromedp.Run(page, chromedp.Evaluate[[]string](`window.__msgs`))
	if err != nil {
		t.Fatal(err)
	}
	checkDownstream(t, "chromium EventSource", got)
}

// TestUploadsNode: POSTs from Node's fetch, per message: the body arrives
// byte for byte (CRs included: no SSE framing upstream), empty bodies are
// messages too, 64 KiB is accepted and one byte more refused with 413, and
// an unknown or malformed peer id gets 400 "invalid peer id".
func TestUploadsNode(t *testing.T) {
	requireNode(t)
	ctx := testContext(t)
	ups := newRecorder[upstream]()
	s := startServer(t, handler.Config{
		Hooks: handler.Hooks{
			Message: func(p *handler.Peer, m handler.Message) { ups.add(upstream{p.ID(), m.Text()}) },
		},
	}, nil)
	type post struct {
		id      string
		body    string
		repeat  []any
		status  int
		resp    string
		message string // what the Message hook must get, if status is 200
	}
	posts := []post{
		{id: "$self", body: "", status: 200},
		{id: "$self", body: "a\r\nb\rc\n", status: 200, message: "a\r\nb\rc\n"},
		{id: "$self", body: "é 🌍", status: 200, message: "é 🌍"},
		{id: "$self", repeat: []any{"x", 64 << 10}, status: 200, message: strings.Repeat("x", 64<<10)},
		{id: "$self", repeat: []any{"é", 32 << 10}, status: 200, message: strings.Repeat("é", 32<<10)},
		{id: "$self", repeat: []any{"x", 64<<10 + 1}, status: 413},
		{id: "AAAAAAAAAAAAAAAAAAAAAA", body: "to nobody", status: 400, resp: "invalid peer id"},
		{id: "not-a-peer-id", body: "to nobody", status: 400, resp: "invalid peer id"},
		{id: "$self", body: "still works", status: 200, message: "still works"},
	}
	var arg []map[string]any
	for _, p := range posts {
		m := map[string]any{"id": p.id}
		if p.repeat != nil {
			m["repeat"] = p.repeat
		} else {
			m["body"] = p.body
		}
		arg = append(arg, m)
	}
	evs, err := startNode(t, ctx, "upload.mjs", map[string]any{"url": s.url, "posts": arg}).Collect(ctx)
	if err != nil {
		t.Fatalf("%v\nevents:%s", err, dump(evs))
	}
	peer := only(evs, "crossws-id")[0].Data
	answers := only(evs, "post")
	if len(answers) != len(posts) {
		t.Fatalf("%d answers for %d POSTs:%s", len(answers), len(posts), dump(evs))
	}
	var want []upstream
	for i, p := range posts {
		a := answers[i]
		if a.Status != p.status || (p.resp != "" && a.Body != p.resp) {
			t.Errorf("POST %d (id %s, %d bytes): got %d %q, want %d %q", i+1, p.id, len(p.message), a.Status, abbrev(a.Body), p.status, p.resp)
		}
		if p.status == 200 {
			want = append(want, upstream{peer, p.message})
		}
	}
	got := ups.all()
	if !slices.EqualFunc(got, want, func(a, b upstream) bool { return a == b }) {
		var g, w []string
		for _, u := range got {
			g = append(g, abbrev(u.Text))
		}
		for _, u := range want {
			w = append(w, abbrev(u.Text))
		}
		t.Errorf("Message hook got %q, want %q (peer %s)", g, w, peer)
	}
}
