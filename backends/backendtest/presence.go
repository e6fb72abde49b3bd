package backendtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ssebridge/ssebridge/backends"
)

// presenceTests run when the backend's nodes implement backends.Presence.
var presenceTests = []struct {
	name string
	fn   func(t *testing.T, b backends.Backend)
}{
	{"PresenceAddGetStats", testPresenceAddGetStats},
	{"PresenceRefresh", testPresenceRefresh},
	{"PresenceExpiry", testPresenceExpiry},
	{"PresenceRemove", testPresenceRemove},
	{"PresenceAcrossNodes", testPresenceAcrossNodes},
	{"PresenceChannelsIndependent", testPresenceChannels},
	{"PresenceInfoRoundTrip", testPresenceRoundTrip},
	{"PresenceInvalid", testPresenceInvalid},
	{"PresenceClosedNode", testPresenceClosed},
}

// implementsPresence attaches a node to a fresh backend to see whether it
// implements backends.Presence.
func implementsPresence(t *testing.T, newBackend func(t *testing.T) backends.Backend) bool {
	t.Helper()
	n, err := newBackend(t).Attach(context.Background(), NewRecorder())
	if err != nil {
		t.Fatalf("Attach: %v", err)
	}
	defer func() { _ = n.Close() }()
	_, ok := n.(backends.Presence)
	return ok
}

// presenceNode attaches a node and returns it as a backends.Presence.
func presenceNode(t *testing.T, b backends.Backend) backends.Presence {
	t.Helper()
	n, _ := attach(t, b)
	p, ok := n.(backends.Presence)
	if !ok {
		t.Fatalf("node %T does not implement backends.Presence", n)
	}
	return p
}

// long is a ttl no test outlives.
const long = time.Minute

func addPresence(t *testing.T, p backends.Presence, channel string, info backends.PresenceInfo, ttl time.Duration) {
	t.Helper()
	if err := p.AddPresence(context.Background(), channel, info, ttl); err != nil {
		t.Fatalf("AddPresence(%q, %q): %v", channel, info.Client, err)
	}
}

func getPresence(t *testing.T, p backends.Presence, channel string) map[string]backends.PresenceInfo {
	t.Helper()
	m, err := p.Presence(context.Background(), channel)
	if err != nil {
		t.Fatalf("Presence(%q): %v", channel, err)
	}
	for c, info := range m {
		if info.Client != c {
			t.Fatalf("Presence(%q): entry %q has Client %q", channel, c, info.Client)
		}
	}
	return m
}

func stats(t *testing.T, p backends.Presence, channel string) (int, int) {
	t.Helper()
	c, u, err := p.PresenceStats(context.Background(), channel)
	if err != nil {
		t.Fatalf("PresenceStats(%q): %v", channel, err)
	}
	return c, u
}

func sameInfo(a, b backends.PresenceInfo) bool {
	return a.Client == b.Client && a.User == b.User &&
		bytes.Equal(a.ConnInfo, b.ConnInfo) && (a.ConnInfo == nil) == (b.ConnInfo == nil) &&
		bytes.Equal(a.ChanInfo, b.ChanInfo) && (a.ChanInfo == nil) == (b.ChanInfo == nil)
}

func fmtInfo(i backends.PresenceInfo) string {
	q := func(b []byte) string {
		if b == nil {
			return "nil"
		}
		return fmt.Sprintf("%q", b)
	}
	return fmt.Sprintf("{%q %q %s %s}", i.Client, i.User, q(i.ConnInfo), q(i.ChanInfo))
}

// wantPresence checks that channel holds exactly want.
func wantPresence(t *testing.T, p backends.Presence, channel string, want ...backends.PresenceInfo) {
	t.Helper()
	got := getPresence(t, p, channel)
	ok := len(got) == len(want)
	for _, w := range want {
		if g, found := got[w.Client]; !found || !sameInfo(g, w) {
			ok = false
		}
	}
	if !ok {
		var gs, ws []string
		for _, g := range got {
			gs = append(gs, fmtInfo(g))
		}
		for _, w := range want {
			ws = append(ws, fmtInfo(w))
		}
		t.Fatalf("Presence(%q):\ngot  %s\nwant %s", channel, strings.Join(gs, " "), strings.Join(ws, " "))
	}
}

func wantStats(t *testing.T, p backends.Presence, channel string, clients, users int) {
	t.Helper()
	if c, u := stats(t, p, channel); c != clients || u != users {
		t.Fatalf("PresenceStats(%q) = %d clients, %d users; want %d, %d", channel, c, u, clients, users)
	}
}

// poll calls cond every 20 ms until it holds or Timeout passes.
func poll(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(Timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %s", Timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func testPresenceAddGetStats(t *testing.T, b backends.Backend) {
	p := presenceNode(t, b)
	wantPresence(t, p, "room")
	wantStats(t, p, "room", 0, 0)
	infos := []backends.PresenceInfo{
		{Client: "c1", User: "alice", ConnInfo: []byte(`{"name":"Alice"}`), ChanInfo: []byte(`{"role":"admin"}`)},
		{Client: "c2", User: "alice", ConnInfo: []byte(`{"name":"Alice","device":"phone"}`)},
		{Client: "c3", User: "bob"},
		{Client: "c4"}, // anonymous
	}
	for _, info := range infos {
		addPresence(t, p, "room", info, long)
	}
	wantPresence(t, p, "room", infos...)
	wantStats(t, p, "room", 4, 2)
	// Adding again replaces the entry.
	infos[3] = backends.PresenceInfo{Client: "c4", User: "carol", ChanInfo: []byte(`[]`)}
	addPresence(t, p, "room", infos[3], long)
	wantPresence(t, p, "room", infos...)
	wantStats(t, p, "room", 4, 3)
}

func testPresenceRefresh(t *testing.T, b backends.Backend) {
	p := presenceNode(t, b)
	start := time.Now()
	addPresence(t, p, "room", backends.PresenceInfo{Client: "c1", User: "u"}, 300*time.Millisecond)
	addPresence(t, p, "room", backends.PresenceInfo{Client: "c2", User: "v"}, 200*time.Millisecond)
	// Refresh c1, with new info, before its first ttl passes (on a slow
	// machine perhaps after: then the test proves less, but still holds).
	refreshed := backends.PresenceInfo{Client: "c1", User: "u", ConnInfo: []byte("2")}
	addPresence(t, p, "room", refreshed, long)
	poll(t, "c2 expires", func() bool { _, ok := getPresence(t, p, "room")["c2"]; return !ok })
	time.Sleep(max(0, 400*time.Millisecond-time.Since(start)))
	// The first ttl of c1 has passed: the refresh kept it.
	wantPresence(t, p, "room", refreshed)
	wantStats(t, p, "room", 1, 1)
}

func testPresenceExpiry(t *testing.T, b backends.Backend) {
	p := presenceNode(t, b)
	short := backends.PresenceInfo{Client: "short", User: "u1"}
	keep := backends.PresenceInfo{Client: "keep", User: "u2"}
	addPresence(t, p, "room", short, 200*time.Millisecond)
	addPresence(t, p, "room", keep, long)
	addPresence(t, p, "gone", short, 200*time.Millisecond)
	poll(t, "the short entry expires", func() bool { return len(getPresence(t, p, "room")) == 1 })
	wantPresence(t, p, "room", keep)
	wantStats(t, p, "room", 1, 1)
	// Once expired, an entry is never returned again (stats first here).
	poll(t, "the other channel's entry expires", func() bool { c, _ := stats(t, p, "gone"); return c == 0 })
	wantPresence(t, p, "gone")
	wantStats(t, p, "gone", 0, 0)
}

func testPresenceRemove(t *testing.T, b backends.Backend) {
	p := presenceNode(t, b)
	ctx := context.Background()
	a := backends.PresenceInfo{Client: "a", User: "u"}
	c := backends.PresenceInfo{Client: "c", User: "u"}
	addPresence(t, p, "room", a, long)
	addPresence(t, p, "room", c, long)
	if err := p.RemovePresence(ctx, "room", "a"); err != nil {
		t.Fatal(err)
	}
	wantPresence(t, p, "room", c)
	wantStats(t, p, "room", 1, 1)
	for _, tc := range [][2]string{{"room", "a"}, {"room", "never"}, {"empty", "a"}} {
		if err := p.RemovePresence(ctx, tc[0], tc[1]); err != nil {
			t.Fatalf("RemovePresence(%q, %q) of an absent client: %v", tc[0], tc[1], err)
		}
	}
	wantPresence(t, p, "room", c)
	if err := p.RemovePresence(ctx, "room", "c"); err != nil {
		t.Fatal(err)
	}
	wantPresence(t, p, "room")
	wantStats(t, p, "room", 0, 0)
	// A removed client can come back.
	addPresence(t, p, "room", a, long)
	wantPresence(t, p, "room", a)
}

func testPresenceAcrossNodes(t *testing.T, b backends.Backend) {
	p1 := presenceNode(t, b)
	p2 := presenceNode(t, b)
	i1 := backends.PresenceInfo{Client: "c1", User: "u1", ConnInfo: []byte(`{"n":1}`)}
	i2 := backends.PresenceInfo{Client: "c2", User: "u2"}
	addPresence(t, p1, "room", i1, long)
	addPresence(t, p2, "room", i2, long)
	wantPresence(t, p1, "room", i1, i2)
	wantPresence(t, p2, "room", i1, i2)
	wantStats(t, p2, "room", 2, 2)
	if err := p2.RemovePresence(context.Background(), "room", "c1"); err != nil {
		t.Fatal(err)
	}
	wantPresence(t, p1, "room", i2)
	wantStats(t, p1, "room", 1, 1)
}

func testPresenceChannels(t *testing.T, b backends.Backend) {
	p := presenceNode(t, b)
	x := backends.PresenceInfo{Client: "c", User: "x", ChanInfo: []byte(`"in x"`)}
	y := backends.PresenceInfo{Client: "c", User: "y", ChanInfo: []byte(`"in y"`)}
	other := backends.PresenceInfo{Client: "d"}
	addPresence(t, p, "x", x, long)
	addPresence(t, p, "y", y, long)
	addPresence(t, p, "y", other, long)
	addPresence(t, p, "x}", other, long) // a name another contains
	wantPresence(t, p, "x", x)
	wantPresence(t, p, "y", y, other)
	wantPresence(t, p, "x}", other)
	wantStats(t, p, "x", 1, 1)
	wantStats(t, p, "y", 2, 1)
	if err := p.RemovePresence(context.Background(), "x", "c"); err != nil {
		t.Fatal(err)
	}
	wantPresence(t, p, "x")
	wantPresence(t, p, "y", y, other)
	wantPresence(t, p, "x}", other)
}

func testPresenceRoundTrip(t *testing.T, b backends.Backend) {
	p := presenceNode(t, b)
	all := make([]byte, 256)
	for i := range all {
		all[i] = byte(i)
	}
	infos := []backends.PresenceInfo{
		{Client: "binary", User: "u:1|-", ConnInfo: all, ChanInfo: []byte("not json {")},
		{Client: "empty", User: "", ConnInfo: []byte{}, ChanInfo: []byte{}},
		{Client: "nil", User: "12:x", ConnInfo: nil, ChanInfo: nil},
		{Client: "mixed", User: "-", ConnInfo: []byte("-"), ChanInfo: []byte{}},
		{Client: "odd ids: \x00{}*\n é", User: "\x00\xff", ConnInfo: []byte("0:"), ChanInfo: []byte(":")},
		{Client: "max", User: "big", ConnInfo: bytes.Repeat([]byte("a"), backends.MaxPresenceSize-len("max")-len("big"))},
	}
	for _, info := range infos {
		// The caller may reuse its buffers after AddPresence.
		in := info
		in.ConnInfo = bytes.Clone(info.ConnInfo)
		in.ChanInfo = bytes.Clone(info.ChanInfo)
		addPresence(t, p, "room", in, long)
		if len(in.ConnInfo) > 0 {
			in.ConnInfo[0] ^= 0xff
		}
		if len(in.ChanInfo) > 0 {
			in.ChanInfo[0] ^= 0xff
		}
	}
	wantPresence(t, p, "room", infos...)
	wantStats(t, p, "room", len(infos), 5)
	// What Presence returns is the caller's to change.
	got := getPresence(t, p, "room")
	got["binary"].ConnInfo[0] = 'X'
	wantPresence(t, p, "room", infos...)
}

func testPresenceInvalid(t *testing.T, b backends.Backend) {
	p := presenceNode(t, b)
	ctx := context.Background()
	ok := backends.PresenceInfo{Client: "c"}
	long1 := strings.Repeat("x", backends.MaxChannelLen+1)
	cases := map[string]error{
		"add empty channel":     p.AddPresence(ctx, "", ok, long),
		"add long channel":      p.AddPresence(ctx, long1, ok, long),
		"add empty client":      p.AddPresence(ctx, "room", backends.PresenceInfo{User: "u"}, long),
		"add long client":       p.AddPresence(ctx, "room", backends.PresenceInfo{Client: long1}, long),
		"add zero ttl":          p.AddPresence(ctx, "room", ok, 0),
		"add negative ttl":      p.AddPresence(ctx, "room", ok, -time.Second),
		"add large conn info":   p.AddPresence(ctx, "room", backends.PresenceInfo{Client: "c", ConnInfo: make([]byte, backends.MaxPresenceSize)}, long),
		"add large chan info":   p.AddPresence(ctx, "room", backends.PresenceInfo{Client: "c", User: "u", ChanInfo: make([]byte, backends.MaxPresenceSize-1)}, long),
		"remove empty channel":  p.RemovePresence(ctx, "", "c"),
		"remove long channel":   p.RemovePresence(ctx, long1, "c"),
		"remove empty client":   p.RemovePresence(ctx, "room", ""),
		"presence empty":        func() error { _, err := p.Presence(ctx, ""); return err }(),
		"presence long channel": func() error { _, err := p.Presence(ctx, long1); return err }(),
		"stats empty":           func() error { _, _, err := p.PresenceStats(ctx, ""); return err }(),
		"stats long channel":    func() error { _, _, err := p.PresenceStats(ctx, long1); return err }(),
	}
	for name, err := range cases {
		if err == nil {
			t.Errorf("%s: no error", name)
		} else if errors.Is(err, backends.ErrUnavailable) {
			t.Errorf("%s: %v, want a validation error", name, err)
		}
	}
	wantPresence(t, p, "room")
	// The longest channel name is fine.
	addPresence(t, p, long1[1:], ok, long)
	wantPresence(t, p, long1[1:], ok)
}

func testPresenceClosed(t *testing.T, b backends.Backend) {
	n, _ := attach(t, b)
	p := n.(backends.Presence)
	addPresence(t, p, "room", backends.PresenceInfo{Client: "c"}, long)
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	errs := map[string]error{
		"AddPresence":    p.AddPresence(ctx, "room", backends.PresenceInfo{Client: "d"}, long),
		"RemovePresence": p.RemovePresence(ctx, "room", "c"),
		"Presence":       func() error { _, err := p.Presence(ctx, "room"); return err }(),
		"PresenceStats":  func() error { _, _, err := p.PresenceStats(ctx, "room"); return err }(),
	}
	for op, err := range errs {
		if !errors.Is(err, backends.ErrClosed) {
			t.Errorf("%s on a closed node = %v, want ErrClosed", op, err)
		}
	}
	// Presence outlives the node that added it, until it expires or is
	// removed (the engine removes its clients' entries).
	wantPresence(t, presenceNode(t, b), "room", backends.PresenceInfo{Client: "c"})
}
