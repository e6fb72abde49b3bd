package redis

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/ssebridge/ssebridge/backends"
	"github.com/ssebridge/ssebridge/internal/redistest"
)

func TestPresenceEncoding(t *testing.T) {
	infos := []backends.PresenceInfo{
		{Client: "c"},
		{Client: "c", User: "1:x", ConnInfo: []byte{}, ChanInfo: []byte("-")},
		{Client: "c", User: "\x00", ConnInfo: []byte("\xff:\n"), ChanInfo: nil},
	}
	for _, in := range infos {
		enc := string(encodePresence(in))
		out, err := decodePresence("c", enc)
		if err != nil || out.User != in.User || string(out.ConnInfo) != string(in.ConnInfo) || (out.ConnInfo == nil) != (in.ConnInfo == nil) ||
			string(out.ChanInfo) != string(in.ChanInfo) || (out.ChanInfo == nil) != (in.ChanInfo == nil) {
			t.Errorf("%q decodes to %+v, %v; want %+v", enc, out, err, in)
		}
	}
	for _, bad := range []string{"", "1", "2|0:--", "1|0:-", "1|0:--x", "1|5:ab--", "1|-1:--", "1|x:--", "1|0:0:", "1|0:-99999999999:"} {
		if _, err := decodePresence("c", bad); err == nil {
			t.Errorf("%q decodes", bad)
		}
	}
}

// TestPresenceKeys: a channel's presence keys carry one hash tag and a
// TTL that follows the latest entry, and disappear with the last entry.
func TestPresenceKeys(t *testing.T) {
	t.Parallel()
	s, c := startServer(t)
	b := newBackend(t, testConfig(c, s.Prefix()))
	a, _ := attachNode(t, b)
	before := s.Keys(t)
	add := func(channel, client string, ttl time.Duration) {
		t.Helper()
		if err := a.AddPresence(bg, channel, backends.PresenceInfo{Client: client, User: "u"}, ttl); err != nil {
			t.Fatal(err)
		}
	}
	add("room", "c1", 10*time.Second)
	add("room", "c2", 5*time.Second) // the later expiry stays the keys' TTL
	add("x}{n.other}", "c1", 10*time.Second)
	keys := keysWith(s.Keys(t), ":{p.")
	want := []string{ // sorted
		s.Prefix() + ":{p.room}:presence", s.Prefix() + ":{p.room}:presence-exp",
		s.Prefix() + ":{p.x}{n.other}}:presence", s.Prefix() + ":{p.x}{n.other}}:presence-exp",
	}
	if !slices.Equal(keys, want) {
		t.Fatalf("presence keys %q, want %q", keys, want)
	}
	for _, k := range keys {
		if ttl := c.PTTL(bg, k).Val(); ttl <= 5*time.Second || ttl > 10*time.Second {
			t.Errorf("PTTL %s = %v, want (5s, 10s]", k, ttl)
		}
		// Both keys of a channel are in one slot.
		pair := strings.TrimSuffix(k, "-exp")
		if s1, s2 := keySlot(k), keySlot(pair); s1 != s2 {
			t.Errorf("%s in slot %d, %s in %d", k, s1, pair, s2)
		}
	}
	// Refreshing with a longer ttl extends the keys' TTL.
	add("room", "c2", time.Minute)
	if ttl := c.PTTL(bg, want[0]).Val(); ttl <= 10*time.Second {
		t.Errorf("after a refresh PTTL = %v, want above 10s", ttl)
	}
	for _, client := range []string{"c1", "c2"} {
		if err := a.RemovePresence(bg, "room", client); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.RemovePresence(bg, "x}{n.other}", "c1"); err != nil {
		t.Fatal(err)
	}
	if after := s.Keys(t); !slices.Equal(after, before) {
		t.Fatalf("keys left: %q, before: %q", after, before)
	}
	// Expired entries go with their keys.
	add("brief", "c", 100*time.Millisecond)
	eventually(t, 5*time.Second, "the presence keys expire", func() bool {
		return len(keysWith(s.Keys(t), ":{p.brief}")) == 0
	})
}

// keySlot is the Redis Cluster hash slot of key (CRC16 of its hash tag).
func keySlot(key string) int {
	if i := strings.IndexByte(key, '{'); i >= 0 {
		if j := strings.IndexByte(key[i+1:], '}'); j > 0 {
			key = key[i+1 : i+1+j]
		}
	}
	var crc uint16
	for i := 0; i < len(key); i++ {
		crc ^= uint16(key[i]) << 8
		for range 8 {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return int(crc % 16384)
}

// TestPresenceCluster: presence of channels spread over every master of
// a three-master cluster, without CROSSSLOT; every key has a TTL.
func TestPresenceCluster(t *testing.T) {
	t.Parallel()
	cl := redistest.StartCluster(t)
	c := cl.Client(t)
	b := newBackend(t, testConfig(c, cl.Prefix()))
	a, _ := attachNode(t, b)
	o, _ := attachNode(t, b)
	slots := map[int]bool{}
	for i := range 30 {
		ch := fmt.Sprint("channel", i)
		for j := range 3 {
			info := backends.PresenceInfo{Client: fmt.Sprint("c", j), User: fmt.Sprint("u", j%2), ConnInfo: []byte("{}")}
			if err := a.AddPresence(bg, ch, info, time.Minute); err != nil {
				t.Fatal(err)
			}
		}
		if err := o.RemovePresence(bg, ch, "c0"); err != nil {
			t.Fatal(err)
		}
		m, err := o.Presence(bg, ch)
		if err != nil || len(m) != 2 {
			t.Fatalf("Presence(%s) = %v, %v", ch, m, err)
		}
		if cs, us, err := o.PresenceStats(bg, ch); err != nil || cs != 2 || us != 2 {
			t.Fatalf("PresenceStats(%s) = %d, %d, %v", ch, cs, us, err)
		}
		// redistest's masters hold slots 0-5460, 5461-10921, 10922-16383.
		switch slot := keySlot(b.presenceKeys(ch)[0]); {
		case slot <= 5460:
			slots[0] = true
		case slot <= 10921:
			slots[1] = true
		default:
			slots[2] = true
		}
	}
	if len(slots) != 3 {
		t.Errorf("channels on %d masters, want 3", len(slots))
	}
	for _, k := range keysWith(cl.Keys(t), ":{p.") {
		if ttl := c.PTTL(bg, k).Val(); ttl <= 0 {
			t.Errorf("PTTL %s = %v", k, ttl)
		}
	}
}

// TestPresenceUnavailable: with Redis down, every presence call fails with
// ErrUnavailable.
func TestPresenceUnavailable(t *testing.T) {
	t.Parallel()
	s, c := startServer(t)
	b := newBackend(t, testConfig(c, s.Prefix()))
	a, _ := attachNode(t, b)
	info := backends.PresenceInfo{Client: "c", User: "u"}
	if err := a.AddPresence(bg, "room", info, time.Minute); err != nil {
		t.Fatal(err)
	}
	s.Kill(t)
	start := time.Now()
	errs := map[string]error{
		"AddPresence":    a.AddPresence(bg, "room", info, time.Minute),
		"RemovePresence": a.RemovePresence(bg, "room", "c"),
		"Presence":       func() error { _, err := a.Presence(bg, "room"); return err }(),
		"PresenceStats":  func() error { _, _, err := a.PresenceStats(bg, "room"); return err }(),
	}
	for op, err := range errs {
		if !errors.Is(err, backends.ErrUnavailable) {
			t.Errorf("%s with Redis down = %v, want ErrUnavailable", op, err)
		}
	}
	t.Logf("4 calls failed in %v", time.Since(start))
}

// BenchmarkPresence: AddPresence (a refresh) and Presence of a channel
// with 100 clients.
func BenchmarkPresence(b *testing.B) {
	s, _ := startServer(b)
	c := goredis.NewClient(&goredis.Options{Addr: s.Addr(), PoolSize: 32})
	b.Cleanup(func() { _ = c.Close() })
	be := newBackend(b, testConfig(c, s.Prefix()))
	n, _ := attachNode(b, be)
	info := func(i int) backends.PresenceInfo {
		return backends.PresenceInfo{
			Client:   fmt.Sprintf("client-%03d", i),
			User:     fmt.Sprintf("user-%d", i%50),
			ConnInfo: []byte(`{"name":"A user","avatar":"https://example.com/a.png"}`),
			ChanInfo: []byte(`{"role":"member"}`),
		}
	}
	for i := range 100 {
		if err := n.AddPresence(bg, "bench", info(i), time.Minute); err != nil {
			b.Fatal(err)
		}
	}
	b.Run("AddPresence", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			if err := n.AddPresence(bg, "bench", info(i%100), time.Minute); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("Presence", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			m, err := n.Presence(bg, "bench")
			if err != nil || len(m) != 100 {
				b.Fatal(len(m), err)
			}
		}
	})
	b.Run("PresenceStats", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if cs, us, err := n.PresenceStats(bg, "bench"); err != nil || cs != 100 || us != 50 {
				b.Fatal(cs, us, err)
			}
		}
	})
}
