package redis

import (
	"math"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

func TestStreamIDs(t *testing.T) {
	for _, tc := range []struct {
		in     string
		ok     bool
		before string
	}{
		{"5-3", true, "5-2"},
		{"5-0", true, "4-18446744073709551615"},
		{"0-1", true, "0-0"},
		{"0-0", true, "0-0"},
		{"18446744073709551615-18446744073709551615", true, "18446744073709551615-18446744073709551614"},
		{"", false, ""},
		{"5", false, ""},
		{"-5", false, ""},
		{"5-", false, ""},
		{"a-1", false, ""},
		{"1-2-3", false, ""},
		{"18446744073709551616-0", false, ""},
		{"+5-1", false, ""},
	} {
		id, ok := parseID(tc.in)
		if ok != tc.ok {
			t.Errorf("parseID(%q) ok = %v", tc.in, ok)
			continue
		}
		if ok && id.before().String() != tc.before {
			t.Errorf("before(%s) = %s, want %s", tc.in, id.before(), tc.before)
		}
		if ok && id.String() != tc.in {
			t.Errorf("String(parseID(%q)) = %s", tc.in, id)
		}
	}
	// Numeric, not string, order.
	a, _ := parseID("9-0")
	b, _ := parseID("10-0")
	c, _ := parseID("10-10")
	d, _ := parseID("10-9")
	if !a.less(b) || b.less(a) || !d.less(c) || c.less(d) || a.less(a) {
		t.Error("less compares as strings")
	}
	if maxID(a, b) != b || maxID(c, d) != c {
		t.Error("maxID")
	}
	if (streamID{5, math.MaxUint64}).next() != (streamID{6, 0}) || (streamID{5, 1}).next() != (streamID{5, 2}) {
		t.Error("next")
	}
	if p, ok := parsePosition(""); !ok || !p.isZero() || p.position() != "" {
		t.Error(`Position "" is 0-0`)
	}
	if exclusiveStart(streamID{}) != "-" || exclusiveStart(streamID{1, 2}) != "(1-2" {
		t.Error("exclusiveStart")
	}
}

func TestValidID(t *testing.T) {
	for _, s := range []string{"a", "A-z_09", strings.Repeat("x", 64), "Dp2v0y3YbA9c-_Xx7w1zQg"} {
		if !validID(s) {
			t.Errorf("validID(%q) = false", s)
		}
	}
	for _, s := range []string{"", strings.Repeat("x", 65), "a{b", "a}b", "a:b", "a.b", "a b", "é", "a\x00"} {
		if validID(s) {
			t.Errorf("validID(%q) = true", s)
		}
	}
	if !validPrefix("ssebridge.prod-1_x") || validPrefix("") || validPrefix("a:b") || validPrefix("{x}") || validPrefix(strings.Repeat("p", 65)) {
		t.Error("validPrefix")
	}
}

func TestBuckets(t *testing.T) {
	// FNV-1a test vectors.
	if fnv1a32("") != 0x811c9dc5 || fnv1a32("a") != 0xe40c292c || fnv1a32("foobar") != 0xbf9cf968 {
		t.Fatal("fnv1a32")
	}
	b, err := New(Config{Client: goredis.NewClient(&goredis.Options{Addr: "127.0.0.1:1"}), Prefix: "p", TopicBuckets: 4, Logger: (&logBuffer{}).logger()})
	if err != nil {
		t.Fatal(err)
	}
	if got := b.topicKey("foobar"); got != "p:{t"+string(rune('0'+0xbf9cf968%4))+"}:topic:foobar" {
		t.Fatalf("topicKey = %q", got)
	}
	if got := b.sessionKey("s1"); got != "p:{s.s1}" {
		t.Fatalf("sessionKey = %q", got)
	}
	if got := b.nodeKey("n1", "inbox"); got != "p:{n.n1}:inbox" {
		t.Fatalf("nodeKey = %q", got)
	}
	if got := b.wakeKey(3, "n1"); got != "p:{t3}:wake:n1" {
		t.Fatalf("wakeKey = %q", got)
	}
}

func TestNewValidates(t *testing.T) {
	c := goredis.NewClient(&goredis.Options{Addr: "127.0.0.1:1", PoolSize: 100})
	defer c.Close()
	quiet := (&logBuffer{}).logger()
	ring := goredis.NewRing(&goredis.RingOptions{Addrs: map[string]string{"a": "127.0.0.1:1"}})
	defer ring.Close()
	for name, cfg := range map[string]Config{
		"no client":        {},
		"ring":             {Client: ring},
		"prefix":           {Client: c, Prefix: "a{b}"},
		"long prefix":      {Client: c, Prefix: strings.Repeat("p", 65)},
		"negative TTL":     {Client: c, NodeTTL: -time.Second},
		"tiny NodeTTL":     {Client: c, NodeTTL: time.Millisecond},
		"sub-ms block":     {Client: c, BlockTimeout: time.Microsecond},
		"negative history": {Client: c, HistoryLength: -1},
		"buckets":          {Client: c, TopicBuckets: 20000},
		"inbox":            {Client: c, InboxLength: -5},
	} {
		cfg.Logger = quiet
		if _, err := New(cfg); err == nil {
			t.Errorf("%s: New succeeded", name)
		}
	}
	b, err := New(Config{Client: c, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	want := Config{Client: c, Prefix: "ssebridge", NodeTTL: 15 * time.Second, SessionTTL: 2 * time.Minute,
		HistoryLength: 1000, HistoryAge: 5 * time.Minute, MarkLogLength: 20000, InboxLength: 10000,
		TopicBuckets: 16, BlockTimeout: 2 * time.Second, Logger: quiet}
	if b.cfg != want {
		t.Fatalf("defaults: %+v", b.cfg)
	}
	if b.Close() != nil || b.Nodes() != 0 {
		t.Fatal("Close of an unused backend")
	}
	if _, err := b.Attach(bg, nil); err == nil {
		t.Fatal("Attach with a nil receiver succeeded")
	}
}

func TestPoolWarning(t *testing.T) {
	logs := &logBuffer{}
	c := goredis.NewClient(&goredis.Options{Addr: "127.0.0.1:1", PoolSize: 5})
	defer c.Close()
	if _, err := New(Config{Client: c, Logger: logs.logger()}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logs.String(), "PoolSize") || !strings.Contains(logs.String(), "want=24") {
		t.Fatalf("no pool warning:\n%s", logs)
	}
	logs = &logBuffer{}
	cc := goredis.NewClusterClient(&goredis.ClusterOptions{Addrs: []string{"127.0.0.1:1"}, PoolSize: 64, MaxActiveConns: 10})
	defer cc.Close()
	if _, err := New(Config{Client: cc, Logger: logs.logger()}); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(logs.String(), "PoolSize") || !strings.Contains(logs.String(), "MaxActiveConns") {
		t.Fatalf("warnings for a cluster pool of 64 and 10 active:\n%s", logs)
	}
	logs = &logBuffer{}
	big := goredis.NewClient(&goredis.Options{Addr: "127.0.0.1:1", PoolSize: 24})
	defer big.Close()
	if _, err := New(Config{Client: big, Logger: logs.logger()}); err != nil {
		t.Fatal(err)
	}
	if logs.String() != "" {
		t.Fatalf("warnings for a pool of 24:\n%s", logs)
	}
}

func TestParseURL(t *testing.T) {
	c, err := ParseURL("redis://user:pw@127.0.0.1:6380/2?pool_size=40")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	cl, ok := c.(*goredis.Client)
	if !ok || cl.Options().Addr != "127.0.0.1:6380" || cl.Options().DB != 2 || cl.Options().PoolSize != 40 || cl.Options().Password != "pw" {
		t.Fatalf("%T %+v", c, c)
	}
	c2, err := ParseURL("rediss://h1:7000?addr=h2:7001&addr=h3:7002&read_timeout=3s")
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	cc, ok := c2.(*goredis.ClusterClient)
	if !ok || strings.Join(cc.Options().Addrs, ",") != "h1:7000,h2:7001,h3:7002" || cc.Options().TLSConfig == nil || cc.Options().ReadTimeout != 3*time.Second {
		t.Fatalf("%T %+v", c2, cc.Options())
	}
	for _, bad := range []string{"http://h:1", "redis://h:1?nonsense=1", "::", "redis://h1?addr=h2&nonsense=1"} {
		if c, err := ParseURL(bad); err == nil {
			c.Close()
			t.Errorf("ParseURL(%q) succeeded", bad)
		}
	}
}
