package interop

import (
	"context"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/ssebridge/ssebridge/internal/redistest"
)

// chromiumRedisBudget bounds TestChromiumChatAcrossRedisInstances from the
// moment both chat instances run (building examples/chat and starting Redis
// come before): the browser, the pages and every wait.
const chromiumRedisBudget = 20 * time.Second

// TestChromiumChatAcrossRedisInstances: two examples/chat instances, A and
// B, share one private Redis. In a real headless Chromium, page "ada" is
// opened on A and page "bob" on B (two browser contexts). Each instance
// announces only its own members; each page merges the instances' lists
// and must list both members. Then ada and bob write: both pages show both
// messages, with the right senders, in the same order.
//
// An instance announces its list when one of its own members joins or
// leaves, and every presenceEvery (10 s) besides. bob joins after A's
// announcement of ada was published, so bob's page lists ada only once A
// re-announces, 10 s after A started: the test takes about 11 s.
func TestChromiumChatAcrossRedisInstances(t *testing.T) {
	ctx := testContext(t)
	requireChromium(t)
	rs := redistest.Start(t)
	a := startRedisChat(t, ctx, "A", rs.URL())
	b := startRedisChat(t, ctx, "B", rs.URL())
	start := time.Now()
	since := func() time.Duration { return time.Since(start).Round(time.Millisecond) }
	ctx, cancel := context.WithTimeout(ctx, chromiumRedisBudget)
	t.Cleanup(cancel)
	browser := startBrowser(t, ctx)
	names := []string{"ada", "bob"}
	base := map[string]string{"ada": a.base, "bob": b.base}
	pages := map[string]context.Context{"ada": newPage(t, browser), "bob": newPage(t, browser)}
	if x, y := chromedp.FromContext(pages["ada"]).BrowserContextID, chromedp.FromContext(pages["bob"]).BrowserContextID; x == "" || x == y {
		t.Fatalf("browser contexts %q and %q: want two distinct ones", x, y)
	}
	t.Logf("A %s, B %s, Redis %s; browser up %v after the instances started", a.base, b.base, rs.Addr(), since())

	for _, name := range names {
		err := chromedp.Do(pages[name],
			chromedp.Navigate(base[name]+"/"),
			chromedp.SendKeys(chromedp.ID("name"), name),
			chromedp.Click(chromedp.ID("connect")),
			chromedp.WaitReady(chromedp.CSS(`#status[data-state="open"]`)),
			chromedp.WaitEnabled(chromedp.ID("send")), // enabled on crossws-id
		)
		if err != nil {
			t.Fatalf("%s: join on %s: %v", name, base[name], err)
		}
	}
	joined := time.Now()
	t.Logf("ada joined on A, bob on B: %v", since())

	// Each page lists both members, marking itself, with the same member
	// ids on both pages: ada's entry comes from A's presence list, bob's
	// from B's, merged by the page.
	const listPeers = `[...document.querySelectorAll("#peers li")].map(li => ({id: li.dataset.id, text: li.textContent}))`
	peersOf := func(name string) []peerEntry {
		t.Helper()
		peers, err := chromedp.Run(pages[name], chromedp.Evaluate[[]peerEntry](listPeers))
		if err != nil {
			t.Fatalf("%s: read #peers: %v", name, err)
		}
		return peers
	}
	wantText := map[string][]string{"ada": {"ada (you)", "bob"}, "bob": {"ada", "bob (you)"}}
	ids := map[string][]string{}
	for _, name := range names {
		if err := poll(pages[name], `document.querySelectorAll("#peers li").length === 2`); err != nil {
			shown, _ := chromedp.Run(pages[name], chromedp.Evaluate[[]peerEntry](listPeers))
			t.Fatalf("%s: waiting for two members, %v after both joined: %v; #peers: %+v", name, time.Since(joined).Round(time.Millisecond), err, shown)
		}
		t.Logf("%s's page lists two members %v after both joined", name, time.Since(joined).Round(time.Millisecond))
		var text []string
		for _, p := range peersOf(name) {
			text = append(text, p.Text)
			ids[name] = append(ids[name], p.ID)
		}
		if !slices.Equal(text, wantText[name]) {
			t.Errorf("%s's member list %q, want %q", name, text, wantText[name])
		}
	}
	if !slices.Equal(ids["ada"], ids["bob"]) || len(ids["ada"]) != 2 || ids["ada"][0] == ids["ada"][1] {
		t.Errorf("member ids: ada's page %q, bob's page %q: want the same two distinct ids", ids["ada"], ids["bob"])
	}

	// ada writes first (POST to A); bob answers (POST to B) once ada's
	// message is on both pages, so both pages must show the same order.
	say := map[string]string{"ada": "hello from A", "bob": "hello from B"}
	want := []chatLine{{From: "ada", Text: say["ada"]}, {From: "bob", Text: say["bob"]}}
	for i, name := range names {
		if err := chromedp.Do(pages[name],
			chromedp.SendKeys(chromedp.ID("text"), say[name]),
			chromedp.Click(chromedp.ID("send")),
		); err != nil {
			t.Fatalf("%s: send: %v", name, err)
		}
		for _, on := range names {
			if err := poll(pages[on], `document.querySelectorAll("#messages li").length >= `+strconv.Itoa(i+1)); err != nil {
				t.Fatalf("%s's page: waiting for %s's message: %v", on, name, err)
			}
		}
	}
	t.Logf("both messages on both pages: %v", since())
	const listMessages = `[...document.querySelectorAll("#messages li")].map(li => ({
		from: li.querySelector(".from").textContent,
		text: li.querySelector(".text").textContent,
		self: li.classList.contains("self")}))`
	for _, name := range names {
		lines, err := chromedp.Run(pages[name], chromedp.Evaluate[[]chatLine](listMessages))
		if err != nil {
			t.Fatal(err)
		}
		w := slices.Clone(want)
		for i := range w {
			w[i].Self = w[i].From == name
		}
		if !slices.Equal(lines, w) {
			t.Errorf("%s's page shows %+v, want %+v", name, lines, w)
		}
		state, err := chromedp.Run(pages[name], chromedp.Evaluate[string](`document.getElementById("status").dataset.state`))
		if err != nil || state != "open" {
			t.Errorf("%s's status is %q (%v), want open", name, state, err)
		}
	}
}
