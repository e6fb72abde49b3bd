package interop

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ssebridge/ssebridge/internal/redistest"
)

// The Centrifugo transports of the chat room (examples/chat,
// examples/lambda) with the real centrifuge-js client (npm centrifuge, its
// "sse" transport: EventSource down, POST /emulation up), driven by
// interop/node/centrifuge.mjs, and with a plain EventSource on
// /connection/uni_sse (interop/node/uni.mjs).

// uuidPattern matches a client id: a version 4 UUID.
var uuidPattern = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

// cfEvent is one line of centrifuge.mjs (see the script for the events).
type cfEvent struct {
	Event         string           `json:"event"`
	Who           string           `json:"who"`
	Connect       []map[string]any `json:"connect"`
	Status        int              `json:"status"`
	ContentType   string           `json:"contentType"`
	URL           string           `json:"url"`
	Session       string           `json:"session"`
	Node          string           `json:"node"`
	Commands      []cfCommand      `json:"commands"`
	Code          int              `json:"code"`
	Reason        string           `json:"reason"`
	Message       string           `json:"message"`
	Client        string           `json:"client"`
	Transport     string           `json:"transport"`
	Channel       string           `json:"channel"`
	WasRecovering bool             `json:"wasRecovering"`
	Recovered     bool             `json:"recovered"`
	Positioned    bool             `json:"positioned"`
	Recoverable   bool             `json:"recoverable"`
	Offset        uint64           `json:"offset"`
	Epoch         string           `json:"epoch"`
	Data          string           `json:"data"`
	Text          string           `json:"text"`
	Method        string           `json:"method"`
	Clients       []cfPresent      `json:"clients"`
	NumClients    int              `json:"numClients"`
	NumUsers      int              `json:"numUsers"`
	Name          string           `json:"name"`
	Pubs          []cfPub          `json:"pubs"`

	raw string
	pos int // its index in the script's output
}

func (ev cfEvent) String() string { return ev.raw }

// cfCommand is a protocol command as centrifuge-js sent it.
type cfCommand struct {
	ID        uint32 `json:"id"`
	Subscribe *struct {
		Channel     string `json:"channel"`
		Recover     bool   `json:"recover"`
		Offset      uint64 `json:"offset"`
		Epoch       string `json:"epoch"`
		Positioned  bool   `json:"positioned"`
		Recoverable bool   `json:"recoverable"`
	} `json:"subscribe"`
}

type cfPresent struct {
	Client string `json:"client"`
	User   string `json:"user"`
}

// cfPub is a publication as a client got it: offset and data (JSON text).
type cfPub struct {
	Offset uint64 `json:"offset"`
	Data   string `json:"data"`
}

// chatPub is the data of a publication in the channel "chat": a chat
// message ({"type":"message",…}) or a room's presence announcement.
type chatPub struct {
	Type string `json:"type"`
	From string `json:"from"`
	ID   string `json:"id"`
	Text string `json:"text"`
}

func parseChatPub(data string) (chatPub, error) {
	var m chatPub
	err := json.Unmarshal([]byte(data), &m)
	return m, err
}

// cfEvents parses the lines of centrifuge.mjs.
func cfEvents(t *testing.T, evs []nodeEvent) []cfEvent {
	t.Helper()
	out := make([]cfEvent, 0, len(evs))
	for i, ev := range evs {
		var c cfEvent
		if err := json.Unmarshal([]byte(ev.raw), &c); err != nil {
			t.Fatalf("centrifuge.mjs line %s: %v", ev.raw, err)
		}
		c.raw, c.pos = ev.raw, i
		out = append(out, c)
	}
	return out
}

// cfDump formats events for a failure message.
func cfDump(evs []cfEvent) string {
	var b strings.Builder
	for _, ev := range evs {
		b.WriteString("\n\t")
		b.WriteString(ev.raw)
	}
	return b.String()
}

// cfOf returns the events of a kind ("" any) by a client ("" any).
func cfOf(evs []cfEvent, who, kind string) []cfEvent {
	var out []cfEvent
	for _, ev := range evs {
		if (who == "" || ev.Who == who) && (kind == "" || ev.Event == kind) {
			out = append(out, ev)
		}
	}
	return out
}

// jsonEqual reports whether two JSON texts hold the same value.
func jsonEqual(a, b string) bool {
	var va, vb any
	if json.Unmarshal([]byte(a), &va) != nil || json.Unmarshal([]byte(b), &vb) != nil {
		return false
	}
	return reflect.DeepEqual(va, vb)
}

// runCentrifugeJS runs centrifuge.mjs with cfg and returns its events; it
// fails the test if the script does not exit 0.
func runCentrifugeJS(t *testing.T, ctx context.Context, cfg map[string]any) []cfEvent {
	t.Helper()
	p := startNode(t, ctx, "centrifuge.mjs", cfg)
	raw, err := p.Collect(ctx)
	evs := cfEvents(t, raw)
	if err != nil {
		t.Fatalf("%v\nevents:%s", err, cfDump(evs))
	}
	return evs
}

// centrifugeEcho is what the full scenario's rpc "echo" sends: nested
// values, non-ASCII and a line break in a string.
var centrifugeEcho = map[string]any{
	"text":   "héllo\nwörld ✓ 🚀",
	"n":      []any{1, 2.5, -3},
	"ok":     true,
	"nil":    nil,
	"nested": map[string]any{"a": map[string]any{"b": "c"}},
}

// fullWant is what checkCentrifugeFull expects besides the script's fixed
// steps.
type fullWant struct {
	missed, history int
	// emulation1 and emulation2 are the emulation URLs of c1 and c2.
	emulation1, emulation2 string
	// nodes: "same" (one instance), "cross" (c1's streams on one instance,
	// c2's on another), "failover" (c1 first on one instance, then on
	// c2's), "" (Lambda: any).
	nodes string
}

// testCentrifugeFull runs the "full" scenario of centrifuge.mjs: c1's
// stream on base1 and its POSTs to emulation1, c2 on base2.
func testCentrifugeFull(t *testing.T, ctx context.Context, base1, emulation1, base2, nodes string) {
	t.Helper()
	start := time.Now()
	w := fullWant{missed: 5, history: 3, emulation1: emulation1, emulation2: base2 + "/emulation", nodes: nodes}
	evs := runCentrifugeJS(t, ctx, map[string]any{
		"url": base1, "emulation": emulation1, "url2": base2,
		"scenario": "full", "missed": w.missed, "history": w.history, "echo": centrifugeEcho,
	})
	t.Logf("full scenario: %d events in %v", len(evs), time.Since(start).Round(time.Millisecond))
	checkCentrifugeFull(t, evs, w)
}

// checkCentrifugeFull checks the events of the "full" scenario.
func checkCentrifugeFull(t *testing.T, all []cfEvent, w fullWant) {
	t.Helper()
	done := slices.IndexFunc(all, func(ev cfEvent) bool { return ev.Event == "done" })
	if done < 0 {
		t.Fatalf("no done event:%s", cfDump(all))
	}
	evs := all[:done] // what follows is the clients' disconnect
	defer func() {
		if t.Failed() {
			t.Logf("centrifuge.mjs events:%s", cfDump(all))
		}
	}()
	index := func(ev cfEvent) int { return ev.pos }

	// Connections: c1 twice (before and after the drop), c2 once.
	conn1, conn2 := cfOf(evs, "c1", "connected"), cfOf(evs, "c2", "connected")
	if len(conn1) != 2 || len(conn2) != 1 {
		t.Fatalf("c1 connected %d times, c2 %d times: want 2 and 1", len(conn1), len(conn2))
	}
	for _, c := range slices.Concat(conn1, conn2) {
		if c.Transport != "sse" || !uuidPattern.MatchString(c.Client) || !peerIDPattern.MatchString(c.Session) || c.Node == "" {
			t.Errorf("connected %s: want transport sse, a UUID client id, a session and a node", c)
		}
	}
	if conn1[0].Client == conn1[1].Client || conn1[0].Session == conn1[1].Session {
		t.Errorf("c1's reconnection has the client id or session of its first connection: %s, %s", conn1[0], conn1[1])
	}
	switch w.nodes {
	case "same":
		if conn1[0].Node != conn1[1].Node || conn2[0].Node != conn1[0].Node {
			t.Errorf("nodes: c1 %q then %q, c2 %q: want one node", conn1[0].Node, conn1[1].Node, conn2[0].Node)
		}
	case "cross":
		if conn1[0].Node != conn1[1].Node || conn2[0].Node == conn1[0].Node {
			t.Errorf("nodes: c1 %q then %q, c2 %q: want c1 on one instance both times, c2 on another", conn1[0].Node, conn1[1].Node, conn2[0].Node)
		}
	case "failover":
		if conn1[0].Node == conn1[1].Node || conn2[0].Node != conn1[1].Node {
			t.Errorf("nodes: c1 %q then %q, c2 %q: want c1 on A, then on B with c2", conn1[0].Node, conn1[1].Node, conn2[0].Node)
		}
	}

	// Stream requests: one connect command each (no optimistic
	// subscription), answered 200 with an event stream.
	if s1, s2 := cfOf(evs, "c1", "stream"), cfOf(evs, "c2", "stream"); len(s1) != 2 || len(s2) != 1 {
		t.Errorf("stream requests: c1 %d, c2 %d: want 2 and 1", len(s1), len(s2))
	}
	for _, s := range cfOf(evs, "", "stream") {
		if len(s.Connect) != 1 || s.Connect[0]["connect"] == nil || s.Connect[0]["id"] == nil || s.Connect[0]["id"].(float64) < 1 {
			t.Errorf("stream request %s: want cf_connect with one connect command with an id", s)
		}
	}
	for _, r := range cfOf(evs, "", "stream-response") {
		if r.Status != 200 || r.ContentType != "text/event-stream; charset=utf-8" {
			t.Errorf("stream response %s: want 200 text/event-stream; charset=utf-8", r)
		}
	}

	// Emulation POSTs: 204 each, to the client's emulation endpoint,
	// with the session and node of the client's connection at the time.
	current := map[string]cfEvent{}
	for _, ev := range evs {
		switch ev.Event {
		case "connected":
			current[ev.Who] = ev
		case "post":
			wantURL := w.emulation1
			if ev.Who == "c2" {
				wantURL = w.emulation2
			}
			c := current[ev.Who]
			if ev.Status != 204 || ev.URL != wantURL || ev.Session != c.Session || ev.Node != c.Node {
				t.Errorf("POST %s: want 204 from %s with session %q and node %q", ev, wantURL, c.Session, c.Node)
			}
		}
	}

	// The subscriptions to "chat": positioned and recoverable (the room
	// forces recovery); c1's second one recovered.
	subs1 := slices.DeleteFunc(cfOf(evs, "c1", "subscribed"), func(ev cfEvent) bool { return ev.Channel != "chat" })
	subs2 := cfOf(evs, "c2", "subscribed")
	if len(subs1) != 2 || len(subs2) != 1 {
		t.Fatalf("c1 subscribed to chat %d times, c2 %d times: want 2 and 1", len(subs1), len(subs2))
	}
	first, again := subs1[0], subs1[1]
	if !first.Positioned || !first.Recoverable || first.WasRecovering || first.Recovered || first.Epoch == "" {
		t.Errorf("c1's first subscribe: %s: want positioned, recoverable, not recovering, with an epoch", first)
	}
	if !again.Positioned || !again.Recoverable || !again.WasRecovering || !again.Recovered || again.Epoch != first.Epoch {
		t.Errorf("c1's resubscribe: %s: want positioned, recoverable, was recovering and recovered, in epoch %q", again, first.Epoch)
	}
	if s := subs2[0]; !s.Positioned || !s.Recoverable || s.WasRecovering || s.Epoch != first.Epoch || s.Offset < first.Offset {
		t.Errorf("c2's subscribe: %s: want positioned and recoverable in epoch %q at offset ≥ %d", s, first.Epoch, first.Offset)
	}

	// The refusals and the RPCs.
	if r := cfOf(evs, "c1", "refused"); len(r) != 1 || r[0].Channel != "nochan" || r[0].Code != 102 || r[0].Reason != "unknown channel" {
		t.Errorf("subscription to nochan ended with %s, want code 102 unknown channel", cfDump(r))
	}
	if e := cfOf(evs, "c1", "publish-error"); len(e) != 1 || e[0].Code != 107 || e[0].Message != "bad request" {
		t.Errorf("publish without text: %s, want error 107 bad request", cfDump(e))
	}
	echo, _ := json.Marshal(centrifugeEcho)
	if r := cfOf(evs, "", "rpc"); len(r) != 1 || r[0].Method != "echo" || !jsonEqual(r[0].Data, string(echo)) {
		t.Errorf("rpc: %s, want echo's result %s", cfDump(r), echo)
	}
	if r := cfOf(evs, "", "rpc-error"); len(r) != 1 || r[0].Method != "nope" || r[0].Code != 104 || r[0].Message != "method not found" {
		t.Errorf("rpc nope: %s, want error 104 method not found", cfDump(r))
	}

	// Presence: both clients, anonymous (a backend counts only non-empty
	// users).
	wantPresent := []cfPresent{{Client: conn1[0].Client}, {Client: conn2[0].Client}}
	slices.SortFunc(wantPresent, func(a, b cfPresent) int { return strings.Compare(a.Client, b.Client) })
	if p := cfOf(evs, "", "presence"); len(p) != 1 || !slices.Equal(p[0].Clients, wantPresent) {
		t.Errorf("presence: %s, want clients %v", cfDump(p), wantPresent)
	}
	if p := cfOf(evs, "", "presence-stats"); len(p) != 1 || p[0].NumClients != 2 || p[0].NumUsers != 0 {
		t.Errorf("presence stats: %s, want 2 clients, 0 users", cfDump(p))
	}

	// c1's publications: every offset after its first position exactly
	// once, in order, across the drop.
	pubs1 := slices.DeleteFunc(cfOf(evs, "c1", "publication"), func(ev cfEvent) bool { return ev.Channel != "chat" })
	got := map[uint64]string{}
	for i, p := range pubs1 {
		if want := first.Offset + 1 + uint64(i); p.Offset != want {
			t.Fatalf("c1's publication #%d has offset %d, want %d (consecutive from %d):%s", i, p.Offset, want, first.Offset+1, cfDump(pubs1))
		}
		got[p.Offset] = p.Data
	}
	drops := cfOf(evs, "c1", "dropping")
	if len(drops) != 1 {
		t.Fatalf("%d dropping events, want 1", len(drops))
	}
	drop := drops[0]
	// The stream is lost when c1 goes back to connecting: at once when
	// the client fails it, when the server's end fails otherwise (live
	// publications may arrive meanwhile).
	lost := slices.IndexFunc(evs, func(ev cfEvent) bool { return ev.Who == "c1" && ev.Event == "connecting" && index(ev) > index(drop) })
	if lost < 0 || lost > index(again) {
		t.Fatalf("c1 did not go back to connecting between the drop and its resubscribe")
	}
	var before, recovered, after []cfEvent // c1's publications before the stream was lost, with the resubscribe, after it
	for _, p := range pubs1 {
		switch i := index(p); {
		case i < lost:
			before = append(before, p)
		case i < index(again):
			t.Errorf("c1 received %s between the loss of its stream and its resubscribe", p)
		case p.Offset <= again.Offset:
			recovered = append(recovered, p)
		default:
			after = append(after, p)
		}
	}
	if len(before) == 0 || drop.Epoch != first.Epoch || drop.Offset > before[len(before)-1].Offset {
		t.Fatalf("c1 dropped at %s, want an offset it received, in epoch %q", drop, first.Epoch)
	}
	lastSeen := before[len(before)-1].Offset
	if n := int(again.Offset - lastSeen); len(recovered) != n || n < w.missed {
		t.Errorf("c1 recovered %d publications, want the %d from offset %d to %d (≥ %d missed)", len(recovered), n, lastSeen+1, again.Offset, w.missed)
	}
	// c1 resubscribed from where it was.
	var resub []cfCommand
	for _, p := range cfOf(evs, "c1", "post") {
		if index(p) > index(drop) {
			for _, c := range p.Commands {
				if c.Subscribe != nil {
					resub = append(resub, c)
				}
			}
		}
	}
	if len(resub) != 1 || resub[0].Subscribe.Channel != "chat" || !resub[0].Subscribe.Recover ||
		resub[0].Subscribe.Offset != lastSeen || resub[0].Subscribe.Epoch != first.Epoch {
		t.Errorf("c1's subscribe commands after the drop: %+v, want one recovering chat from offset %d in epoch %q", resub, lastSeen, first.Epoch)
	}

	// What c1 received: the chat messages in order (presence
	// announcements between them), the missed ones recovered.
	type line struct{ From, Text string }
	var missed []line
	for i := 1; i <= w.missed; i++ {
		missed = append(missed, line{"bob", fmt.Sprintf("missed %d", i)})
	}
	wantLines := map[string][]line{
		"before the drop":            {{"ada", "hello from ada"}, {"bob", "hello from bob"}},
		"recovered on resubscribe":   missed,
		"live after the resubscribe": {{"ada", "ada is back"}},
	}
	ids := map[string]map[string]bool{}
	for part, ps := range map[string][]cfEvent{"before the drop": before, "recovered on resubscribe": recovered, "live after the resubscribe": after} {
		var lines []line
		for _, p := range ps {
			m, err := parseChatPub(p.Data)
			switch {
			case err != nil:
				t.Errorf("c1's publication %s: %v", p, err)
			case m.Type == "presence":
			case m.Type == "message" && m.ID != "":
				lines = append(lines, line{m.From, m.Text})
				if ids[m.From] == nil {
					ids[m.From] = map[string]bool{}
				}
				ids[m.From][m.ID] = true
			default:
				t.Errorf("c1's publication %s: want a chat message or a presence announcement", p)
			}
		}
		if !slices.Equal(lines, wantLines[part]) {
			t.Errorf("c1's chat messages %s: %q, want %q", part, lines, wantLines[part])
		}
	}
	if len(ids["bob"]) != 1 {
		t.Errorf("bob's messages carry member ids %v, want one", ids["bob"])
	}

	// History: the newest N, all since c1's first position (before the
	// drop and at the end), the top only; the same publications as c1
	// received.
	hist := map[string]cfEvent{}
	for _, h := range cfOf(evs, "", "history") {
		hist[h.Name] = h
	}
	checkPubs := func(h cfEvent, from uint64, n int, reverse bool) {
		t.Helper()
		if h.Epoch != first.Epoch || len(h.Pubs) != n {
			t.Errorf("history %s: %s: want %d publications in epoch %q", h.Name, h, n, first.Epoch)
			return
		}
		for i, p := range h.Pubs {
			want := from + uint64(i)
			if reverse {
				want = from - uint64(i)
			}
			if p.Offset != want {
				t.Errorf("history %s: publication #%d has offset %d, want %d", h.Name, i, p.Offset, want)
			}
			if d, ok := got[p.Offset]; ok && d != p.Data {
				t.Errorf("history %s: offset %d has %s, c1 received %s", h.Name, p.Offset, p.Data, d)
			} else if m, err := parseChatPub(p.Data); !ok && (err != nil || m.Type != "presence") {
				t.Errorf("history %s: offset %d has %s, which c1 never received (only a presence announcement may come later)", h.Name, p.Offset, p.Data)
			}
		}
	}
	if h, ok := hist["newest"]; !ok {
		t.Error("no history newest")
	} else {
		checkPubs(h, h.Offset, w.history, true)
	}
	if h, ok := hist["since-first"]; !ok {
		t.Error("no history since-first")
	} else {
		checkPubs(h, first.Offset+1, int(h.Offset-first.Offset), false)
		if top := hist["top"]; top.Epoch != first.Epoch || len(top.Pubs) != 0 || top.Offset < h.Offset {
			t.Errorf("history top: %s: want no publication, epoch %q, offset ≥ %d", top, first.Epoch, h.Offset)
		}
	}
	if h, ok := hist["since-first-after"]; !ok {
		t.Error("no history since-first-after")
	} else {
		checkPubs(h, first.Offset+1, int(h.Offset-first.Offset), false)
		if last := pubs1[len(pubs1)-1].Offset; h.Offset < last {
			t.Errorf("history since-first-after ends at %d, before c1's last publication %d", h.Offset, last)
		}
	}

	// c2: what it published, and every publication from its position on.
	wantPublished := []string{"hello from bob"}
	for _, l := range missed {
		wantPublished = append(wantPublished, l.Text)
	}
	var published []string
	for _, p := range cfOf(evs, "c2", "published") {
		published = append(published, p.Text)
	}
	if !slices.Equal(published, wantPublished) {
		t.Errorf("c2 published %q, want %q", published, wantPublished)
	}
	for i, p := range cfOf(evs, "c2", "publication") {
		if want := subs2[0].Offset + 1 + uint64(i); p.Offset != want {
			t.Errorf("c2's publication #%d has offset %d, want %d", i, p.Offset, want)
			break
		}
		if d, ok := got[p.Offset]; ok && d != p.Data {
			t.Errorf("c2 received %s at offset %d, c1 %s", p.Data, p.Offset, d)
		}
	}
}

// TestCentrifugeJSChat: centrifuge-js over SSE with emulation on the chat
// example (net/http): connect, subscribe (positioned, recoverable), a
// refused subscribe, publish (the room turns {"text"} into its chat
// message), a refused publish, rpc echo and an unknown rpc, presence and
// presence stats with a second client, history (newest N, since a
// position, top only); then c1's EventSource fails while c2 publishes 5
// messages, and c1's automatic resubscribe recovers exactly what it
// missed: offsets consecutive across the drop, recovered true.
func TestCentrifugeJSChat(t *testing.T) {
	requireNode(t)
	ctx := testContext(t)
	base := startChat(t, ctx)
	testCentrifugeFull(t, ctx, base, base+"/emulation", base, "same")
}

// TestCentrifugeJSChatFastHTTP is TestCentrifugeJSChat on fasthttp.
func TestCentrifugeJSChatFastHTTP(t *testing.T) {
	requireNode(t)
	ctx := testContext(t)
	base := startChat(t, ctx, "-runtime", "fasthttp")
	testCentrifugeFull(t, ctx, base, base+"/emulation", base, "same")
}

// TestCentrifugeJSChatLambda is TestCentrifugeJSChat on the chat served by
// Lambda execution environments (through the local function URL emulator,
// sharing the room through Redis): every stream and POST is an invocation,
// possibly of another environment (so no node is asserted).
func TestCentrifugeJSChatLambda(t *testing.T) {
	requireNode(t)
	ctx := testContext(t)
	base := startLambdaChat(t, ctx)
	testCentrifugeFull(t, ctx, base, base+"/emulation", base, "")
}

// TestCentrifugeJSChatLambdaAcrossInvocations: with 4 s invocations each
// stream ends 1.5 s before its deadline, and centrifuge-js reconnects and
// resubscribes with recovery, again and again, while another client
// publishes "seq 1" … "seq 25" (one every 200 ms). The subscriber must get
// every message exactly once and in order, with consecutive offsets across
// at least three streams, each resubscribe recovered.
func TestCentrifugeJSChatLambdaAcrossInvocations(t *testing.T) {
	requireNode(t)
	ctx := testContext(t)
	base := startLambdaChat(t, ctx, "-timeout", "4s", "-margin", "1500ms")
	const k, minStreams = 25, 3
	start := time.Now()
	all := runCentrifugeJS(t, ctx, map[string]any{"url": base, "scenario": "across", "count": k, "paceMs": 200, "minStreams": minStreams})
	t.Logf("%d events in %v", len(all), time.Since(start).Round(time.Millisecond))
	defer func() {
		if t.Failed() {
			t.Logf("centrifuge.mjs events:%s", cfDump(all))
		}
	}()
	done := slices.IndexFunc(all, func(ev cfEvent) bool { return ev.Event == "done" })
	if done < 0 {
		t.Fatal("no done event")
	}
	evs := all[:done]
	subs := cfOf(evs, "c1", "subscribed")
	streams := cfOf(evs, "c1", "stream")
	if len(streams) < minStreams || len(subs) < minStreams {
		t.Fatalf("c1 opened %d streams and subscribed %d times, want ≥ %d", len(streams), len(subs), minStreams)
	}
	first := subs[0]
	if !first.Positioned || !first.Recoverable || first.WasRecovering || first.Epoch == "" {
		t.Errorf("c1's first subscribe: %s", first)
	}
	for _, s := range subs[1:] {
		if !s.WasRecovering || !s.Recovered || s.Epoch != first.Epoch {
			t.Errorf("c1's resubscribe %s: want recovered in epoch %q", s, first.Epoch)
		}
	}
	var seqs []string
	for i, p := range cfOf(evs, "c1", "publication") {
		if want := first.Offset + 1 + uint64(i); p.Offset != want {
			t.Fatalf("c1's publication #%d has offset %d, want %d", i, p.Offset, want)
		}
		m, err := parseChatPub(p.Data)
		switch {
		case err != nil:
			t.Errorf("publication %s: %v", p, err)
		case m.Type == "message" && m.From == "bob":
			seqs = append(seqs, m.Text)
		case m.Type != "presence":
			t.Errorf("unexpected publication %s", p)
		}
	}
	var want []string
	for i := 1; i <= k; i++ {
		want = append(want, fmt.Sprintf("seq %d", i))
	}
	if !slices.Equal(seqs, want) {
		t.Errorf("c1 received %q, want %q", seqs, want)
	}
	statuses := map[int]int{}
	for _, p := range cfOf(evs, "", "post") {
		statuses[p.Status]++
	}
	for s := range statuses {
		// 0: aborted by centrifuge-js when its transport closed; 404: the
		// session's stream had just ended.
		if s != 204 && s != 0 && s != 404 {
			t.Errorf("emulation POSTs answered %v", statuses)
		}
	}
	t.Logf("c1: %d streams; c2: %d streams, %d publish errors; POST statuses %v", len(streams),
		len(cfOf(evs, "c2", "stream")), len(cfOf(evs, "c2", "publish-error")), statuses)
}

// TestCentrifugeJSAcrossRedisInstances: two chat instances, A and B, share
// one Redis. c1's stream is on A, but its emulation endpoint is B's: every
// command goes through B to A's session. c2 is on B. The full scenario:
// publications made through B reach c1 on A, presence lists both
// instances' clients, history is shared, and when c1's stream drops while
// c2 publishes on B, c1's resubscribe (its commands again through B)
// recovers what it missed.
func TestCentrifugeJSAcrossRedisInstances(t *testing.T) {
	requireNode(t)
	ctx := testContext(t)
	rs := redistest.Start(t)
	a := startRedisChat(t, ctx, "A", rs.URL())
	b := startRedisChat(t, ctx, "B", rs.URL())
	t.Logf("A %s, B %s, Redis %s", a.base, b.base, rs.Addr())
	testCentrifugeFull(t, ctx, a.base, b.base+"/emulation", b.base, "cross")
}

// TestCentrifugeJSRedisFailover: c1's stream goes through a failover proxy
// to instance A (its commands to B's emulation endpoint), c2 is on B. When
// the scenario drops c1's stream, A is killed (SIGKILL): centrifuge-js
// reconnects through the proxy, now to B, while its new stream is held
// back until c2 has published on B; its resubscribe on B recovers, from
// the history A and B share in Redis, exactly what it missed.
func TestCentrifugeJSRedisFailover(t *testing.T) {
	requireNode(t)
	ctx := testContext(t)
	rs := redistest.Start(t)
	a := startRedisChat(t, ctx, "A", rs.URL())
	b := startRedisChat(t, ctx, "B", rs.URL())
	px := startFailoverProxy(t, a.base, b.base)
	t.Logf("A %s, B %s, proxy %s, Redis %s", a.base, b.base, px.url, rs.Addr())
	w := fullWant{missed: 5, history: 3, emulation1: b.base + "/emulation", emulation2: b.base + "/emulation", nodes: "failover"}
	p := startNode(t, ctx, "centrifuge.mjs", map[string]any{
		"url": px.url, "emulation": w.emulation1, "url2": b.base,
		"scenario": "full", "missed": w.missed, "history": w.history, "echo": centrifugeEcho, "dropBy": "server",
	})
	var raw []nodeEvent
	for {
		ev, ok := p.Next(ctx)
		if !ok {
			t.Fatalf("centrifuge.mjs ended before dropping c1's stream: %v%s", p.Wait(ctx), dump(raw))
		}
		raw = append(raw, ev)
		if ev.Event == "dropping" {
			break
		}
	}
	if err := a.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	rest, err := p.Collect(ctx)
	evs := cfEvents(t, append(raw, rest...))
	if err != nil {
		t.Fatalf("%v\nevents:%s", err, cfDump(evs))
	}
	checkCentrifugeFull(t, evs, w)
	// c1's streams: the first to A, the second, after A's death, to B.
	var backends []string
	for _, h := range px.requests() {
		backends = append(backends, h.Backend)
	}
	if !slices.Equal(backends, []string{"A", "B"}) {
		t.Errorf("the proxy sent c1's streams to %v, want A then B:%s", backends, px)
	}
}

// uniEvents runs uni.mjs on url and returns its output.
func uniEvents(t *testing.T, ctx context.Context, cfg map[string]any) []nodeEvent {
	t.Helper()
	evs, err := startNode(t, ctx, "uni.mjs", cfg).Collect(ctx)
	if err != nil {
		t.Fatalf("%v\nevents:%s", err, dump(evs))
	}
	return evs
}

// uniConnect is the connect push of the unidirectional transport.
type uniConnect struct {
	Connect *struct {
		Client  string                     `json:"client"`
		Version string                     `json:"version"`
		Data    json.RawMessage            `json:"data"`
		Subs    map[string]json.RawMessage `json:"subs"`
		Ping    int                        `json:"ping"`
		Pong    bool                       `json:"pong"`
		Session string                     `json:"session"`
		Node    string                     `json:"node"`
	} `json:"connect"`
}

// checkUniConnect checks a connect push: a client id, the version, the
// ping interval in seconds, a session; no pong and no node (those are for
// bidirectional clients). It returns the push's keys inside connect.
func checkUniConnect(t *testing.T, data string, ping int) uniConnect {
	t.Helper()
	var c uniConnect
	var keys map[string]map[string]json.RawMessage
	if err := json.Unmarshal([]byte(data), &c); err != nil || c.Connect == nil || json.Unmarshal([]byte(data), &keys) != nil || len(keys) != 1 {
		t.Fatalf("first message %q: want a bare connect push {\"connect\":{…}}", data)
	}
	cc := c.Connect
	if !uuidPattern.MatchString(cc.Client) || cc.Version != "ssebridge" || cc.Ping != ping || !peerIDPattern.MatchString(cc.Session) {
		t.Errorf("connect push %s: want a UUID client, version ssebridge, ping %d, a session", data, ping)
	}
	if _, ok := keys["connect"]["pong"]; ok {
		t.Errorf("connect push %s has pong: a unidirectional client cannot answer pings", data)
	}
	if _, ok := keys["connect"]["node"]; ok {
		t.Errorf("connect push %s has node: only emulation clients need it", data)
	}
	return c
}

// TestCentrifugoUniSSEChat: a plain EventSource (npm eventsource) on the
// chat example's /connection/uni_sse, with a bare ConnectRequest in
// cf_connect. The chat gives uni clients no subscription, so what it gets is
// the connect push (client, version, ping 25, session; no pong, no node),
// and then nothing for the next 500 ms: no publication, and the first ping
// comes after at least 12.5 s.
func TestCentrifugoUniSSEChat(t *testing.T) {
	requireNode(t)
	ctx := testContext(t)
	base := startChat(t, ctx)
	u := base + "/connection/uni_sse?cf_connect=" + url.QueryEscape(`{"name":"uni-node","version":"1.0"}`)
	evs := uniEvents(t, ctx, map[string]any{"url": u, "count": 1, "holdMs": 500})
	want := []string{"get", "open", "message", "closed"}
	var kinds []string
	for _, ev := range evs {
		kinds = append(kinds, ev.Event)
	}
	if !slices.Equal(kinds, want) {
		t.Fatalf("events %q, want %q:%s", kinds, want, dump(evs))
	}
	if evs[0].Status != 200 {
		t.Errorf("stream request answered %d", evs[0].Status)
	}
	c := checkUniConnect(t, evs[2].Data, 25)
	if len(c.Connect.Subs) != 0 || c.Connect.Data != nil {
		t.Errorf("connect push %s: want no subs and no data", evs[2].Data)
	}
}
