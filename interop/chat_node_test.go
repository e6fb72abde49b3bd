package interop

import (
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
)

// TestChatCrosswsStreamMode runs two crossws WebSocketSSE clients with their
// default options (bidir, stream: one never-ending streamed POST per client)
// against the examples/chat binary.
func TestChatCrosswsStreamMode(t *testing.T) {
	testChatCrossws(t, "stream", startChat(t, testContext(t)))
}

// TestChatCrosswsMessageMode is the same with { stream: false }: one POST
// per message.
func TestChatCrosswsMessageMode(t *testing.T) {
	testChatCrossws(t, "message", startChat(t, testContext(t)))
}

// chatScripts is what each member sends, in order. The texts cover newlines
// (LF, CRLF, an empty line), non-ASCII and astral characters, leading and
// trailing spaces, and JSON-looking text.
var chatScripts = map[string][]string{
	"alice": {"hello from alice", "line1\nline2", "héllo 🌍", "  spaced out  "},
	"bob":   {"bob here", "multi\nline\n\nwith a blank one", "ünïcödé ✓ 🚀", `{"type":"presence"}`, "crlf\r\nline", "last from bob"},
}

// testChatCrossws runs the chat clients against the chat at base.
func testChatCrossws(t *testing.T, mode, base string) {
	requireNode(t)
	ctx := testContext(t)
	wsBase := "ws" + strings.TrimPrefix(base, "http")

	names := []string{"alice", "bob"}
	expect := map[string]int{}
	for _, n := range names {
		expect[n] = len(chatScripts[n])
	}
	procs := map[string]*nodeProc{}
	for _, name := range names {
		procs[name] = startNode(t, ctx, "chat.mjs", map[string]any{
			"url":    wsBase + "/sse?name=" + url.QueryEscape(name),
			"name":   name,
			"mode":   mode,
			"send":   chatScripts[name],
			"peers":  names,
			"expect": expect,
		})
	}
	got := map[string][]nodeEvent{}
	errs := map[string]error{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for name, p := range procs {
		wg.Go(func() {
			evs, err := p.Collect(ctx)
			mu.Lock()
			got[name], errs[name] = evs, err
			mu.Unlock()
		})
	}
	wg.Wait()
	for _, name := range names {
		if errs[name] != nil {
			t.Fatalf("%s: %v\nevents:%s", name, errs[name], dump(got[name]))
		}
	}

	// Every client must see the same peer id for each sender.
	idOf := map[string]string{}
	for _, client := range names {
		evs := got[client]
		if sent := texts(only(evs, "sent")); !slices.Equal(sent, chatScripts[client]) {
			t.Errorf("%s sent %q, want %q", client, sent, chatScripts[client])
		}
		msgs := only(evs, "message")
		total := 0
		for _, sender := range names {
			var fromSender []string
			for _, m := range msgs {
				if m.From != sender {
					continue
				}
				fromSender = append(fromSender, m.Text)
				if prev, ok := idOf[sender]; !ok {
					idOf[sender] = m.ID
				} else if prev != m.ID {
					t.Errorf("%s: message from %s has peer id %q, earlier ones %q", client, sender, m.ID, prev)
				}
			}
			total += len(fromSender)
			if !slices.Equal(fromSender, chatScripts[sender]) {
				t.Errorf("%s received from %s:\n\t%q\nwant, in this order:\n\t%q", client, sender, fromSender, chatScripts[sender])
			}
		}
		if total != len(msgs) {
			t.Errorf("%s received %d messages, %d of them from neither alice nor bob:%s", client, len(msgs), len(msgs)-total, dump(msgs))
		}
		// The client started sending only after a presence update listed
		// both members; it must agree with the ids on the messages.
		if !presenceListed(only(evs, "presence"), names) {
			t.Errorf("%s never got a presence update listing %v:%s", client, names, dump(only(evs, "presence")))
		}
	}
	// The upload mode really was the one asked for.
	for _, client := range names {
		posts := only(got[client], "post-start")
		wantPosts := len(chatScripts[client])
		if mode == "stream" {
			wantPosts = 1
		}
		if len(posts) != wantPosts {
			t.Errorf("%s (%s mode) made %d POSTs, want %d:%s", client, mode, len(posts), wantPosts, dump(posts))
		}
		// Every POST carries the client's one secret peer id, which the
		// room never publishes (member ids are not peer ids).
		for _, p := range posts {
			streamed := p.Streamed && p.ContentType == "application/octet-stream"
			if streamed != (mode == "stream") || p.ID == "" || p.ID != posts[0].ID {
				t.Errorf("%s (%s mode): unexpected POST %s", client, mode, p)
			}
			for name, member := range idOf {
				if p.ID == member {
					t.Errorf("%s's peer id %q was published as %s's member id", client, p.ID, name)
				}
			}
		}
		// The welcome gave the client its own member id.
		if w := only(got[client], "welcome"); len(w) != 1 || w[0].ID != idOf[client] || w[0].Name != client {
			t.Errorf("%s: welcome %s, want one with member id %q", client, dump(w), idOf[client])
		}
	}
	if idOf["alice"] == "" || idOf["alice"] == idOf["bob"] {
		t.Errorf("peer ids: alice %q, bob %q: want two distinct ids", idOf["alice"], idOf["bob"])
	}
	for _, client := range names {
		for _, ev := range only(got[client], "presence") {
			for _, p := range ev.Peers {
				if id, ok := idOf[p.Name]; ok && p.ID != id {
					t.Errorf("%s: presence lists %s as %q, messages came from %q", client, p.Name, p.ID, id)
				}
			}
		}
	}
}

// presenceListed reports whether some presence update listed every name.
func presenceListed(evs []nodeEvent, names []string) bool {
	for _, ev := range evs {
		var listed []string
		for _, p := range ev.Peers {
			listed = append(listed, p.Name)
		}
		if !slices.ContainsFunc(names, func(n string) bool { return !slices.Contains(listed, n) }) {
			return true
		}
	}
	return false
}
