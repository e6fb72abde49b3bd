package redis

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/ssebridge/ssebridge/backends"
	"github.com/ssebridge/ssebridge/backends/backendtest"
)

// TestKeyLayout: the keys a node, a session and a topic use, and their
// TTLs: no key lives forever.
func TestKeyLayout(t *testing.T) {
	t.Parallel()
	s, c := startServer(t)
	b := newBackend(t, testConfig(c, s.Prefix()))
	a, ra := attachNode(t, b)
	o, _ := attachNode(t, b)
	mustRegister(t, a, ra, "s1")
	mustSubscribe(t, a, "t1")
	mustSubscribe(t, a, "t2") // wakes the bucket reader if t1 and t2 share a bucket
	mustPublish(t, o, "t1", "x")
	ra.WaitPublications(t, 1)
	p := s.Prefix()
	for _, k := range s.Keys(t) {
		if !strings.HasPrefix(k, p+":{") {
			t.Errorf("key %q outside the layout", k)
		}
		if ttl := c.PTTL(bg, k).Val(); ttl < 0 {
			t.Errorf("key %q has no TTL (%v)", k, ttl)
		}
	}
	want := []string{
		p + ":{n." + a.id + "}:alive", p + ":{n." + a.id + "}:inbox", p + ":{n." + a.id + "}:log", p + ":{n." + a.id + "}:cur", p + ":{n." + a.id + "}:top",
		p + ":{n." + o.id + "}:alive", p + ":{n." + o.id + "}:inbox",
		p + ":{s.s1}", b.topicKey("t1"), b.topicKey("t2"), b.buckets[b.bucketOf("t1")] + "last",
		b.metaKey("t1"), b.metaKey("t2"),
	}
	keys := s.Keys(t)
	for _, k := range want {
		if !slices.Contains(keys, k) {
			t.Errorf("missing key %q in %q", k, keys)
		}
	}
	h := c.HGetAll(bg, p+":{s.s1}").Val()
	if h["o"] != a.id || h["ns"] != "/ns" || h["b"] != "0" || h["v"] != "1" {
		t.Errorf("session record %v", h)
	}
	if typ := c.Type(bg, a.inbox).Val(); typ != "stream" {
		t.Errorf("inbox is a %s", typ)
	}
}

// TestClose: Close deletes alive, inbox and wake streams, leaves the
// session records, log and cur, and the Receiver gets nothing afterwards.
func TestClose(t *testing.T) {
	t.Parallel()
	s, c := startServer(t)
	cfg := testConfig(c, s.Prefix())
	cfg.TopicBuckets = 1 // one bucket: the second Subscribe wakes the reader
	b := newBackend(t, cfg)
	a, ra := attachNode(t, b)
	o, _ := attachNode(t, b)
	mustRegister(t, a, ra, "s1")
	mustSubscribe(t, a, "t1")
	mustSubscribe(t, a, "t2")
	mustPublish(t, o, "t1", "x")
	ra.WaitPublications(t, 1)
	if c.Exists(bg, b.wakeKey(0, a.id)).Val() != 1 {
		t.Fatal("no wake stream")
	}
	start := time.Now()
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 300*time.Millisecond {
		t.Errorf("Close took %v: the readers were not woken", d)
	}
	a.readers.Wait() // all readers ended
	<-a.hbDone
	for _, k := range []string{a.alive, a.inbox, b.wakeKey(0, a.id)} {
		if c.Exists(bg, k).Val() != 0 {
			t.Errorf("Close left %s", k)
		}
	}
	for _, k := range []string{a.log, a.cur, b.sessionKey("s1")} {
		if c.Exists(bg, k).Val() != 1 {
			t.Errorf("Close deleted %s", k)
		}
	}
	if b.Nodes() != 1 {
		t.Errorf("Nodes = %d after Close", b.Nodes())
	}
	for name, err := range map[string]error{
		"Route":     a.Route(bg, "s1", nil),
		"Publish":   a.Publish(bg, backends.Publication{Topic: "t1"}),
		"Register":  a.RegisterSession(bg, "s2", backends.SessionInfo{}),
		"Subscribe": func() error { _, err := a.Subscribe(bg, "t3"); return err }(),
		"Claim":     func() error { _, err := a.Claim(bg, "s1", backends.Cursor{}); return err }(),
	} {
		if !errors.Is(err, backends.ErrClosed) {
			t.Errorf("%s after Close = %v, want ErrClosed", name, err)
		}
	}
	mustPublish(t, o, "t1", "y")
	time.Sleep(100 * time.Millisecond)
	if u, p := ra.Counts(); u != 0 || p != 1 || len(ra.Errors()) != 0 {
		t.Fatalf("after Close: %d messages, %d publications, errors %v", u, p, ra.Errors())
	}
	// Backend.Close closes the rest.
	if err := b.Close(); err != nil || b.Nodes() != 0 {
		t.Fatalf("Backend.Close: %v, %d nodes", err, b.Nodes())
	}
	if _, err := b.Attach(bg, backendtest.NewRecorder()); !errors.Is(err, backends.ErrClosed) {
		t.Fatalf("Attach after Close = %v", err)
	}
}

// TestSubscribeWakesReader: with a long BlockTimeout, a topic subscribed
// while the bucket's reader is blocked is read at once.
func TestSubscribeWakesReader(t *testing.T) {
	t.Parallel()
	s, c := startServer(t)
	cfg := testConfig(c, s.Prefix())
	cfg.TopicBuckets = 1
	cfg.BlockTimeout = 10 * time.Second
	b := newBackend(t, cfg)
	a, ra := attachNode(t, b)
	mustSubscribe(t, a, "first")
	time.Sleep(100 * time.Millisecond) // the reader blocks on "first"
	mustSubscribe(t, a, "second")
	start := time.Now()
	mustPublish(t, a, "second", "x")
	ra.WaitPublications(t, 1)
	if d := time.Since(start); d > time.Second {
		t.Fatalf("publication arrived after %v", d)
	}
	// Unsubscribing every topic ends the reader; subscribing again starts
	// one.
	for _, topic := range []string{"first", "second"} {
		if err := a.Unsubscribe(bg, topic); err != nil {
			t.Fatal(err)
		}
	}
	mustSubscribe(t, a, "third")
	mustPublish(t, a, "third", "y")
	if p := ra.WaitPublications(t, 2)[1]; p.Topic != "third" || p.Mark != 2 {
		t.Fatalf("got %+v", p)
	}
}

// TestReadTimeoutShorterThanBlock: go-redis gives a blocking XREAD a read
// deadline of Block + 10 s, whatever the client's ReadTimeout: the loops
// survive idle periods longer than ReadTimeout without reporting errors.
func TestReadTimeoutShorterThanBlock(t *testing.T) {
	t.Parallel()
	s, _ := startServer(t)
	c := goredis.NewClient(&goredis.Options{Addr: s.Addr(), ReadTimeout: 200 * time.Millisecond, PoolSize: 30})
	t.Cleanup(func() { _ = c.Close() })
	cfg := testConfig(c, s.Prefix())
	cfg.BlockTimeout = 700 * time.Millisecond
	b := newBackend(t, cfg)
	a, ra := attachNode(t, b)
	o, _ := attachNode(t, b)
	mustRegister(t, a, ra, "s1")
	mustSubscribe(t, a, "t")
	time.Sleep(1500 * time.Millisecond) // idle: two blocks of 700 ms, ReadTimeout 200 ms
	if err := o.Route(bg, "s1", []byte("m")); err != nil {
		t.Fatal(err)
	}
	mustPublish(t, o, "t", "p")
	ra.WaitUpstream(t, 1)
	ra.WaitPublications(t, 1)
	if errs := ra.Errors(); len(errs) != 0 {
		t.Fatalf("errors while idle: %v", errs)
	}
}

// TestMarksAcrossBuckets: marks are 1, 2, 3… in Broadcast order across
// topics of different buckets read concurrently, each in the log before
// its Broadcast, and cur holds the last position per topic.
func TestMarksAcrossBuckets(t *testing.T) {
	t.Parallel()
	s, c := startServer(t)
	b := newBackend(t, testConfig(c, s.Prefix()))
	var bad atomic.Value
	var a *node // set before any Broadcast
	r := &checkingReceiver{Recorder: backendtest.NewRecorder(), check: func(p backends.Publication) {
		// The mark is in the log before Broadcast.
		msgs, err := c.XRange(bg, a.log, fmt.Sprintf("%d-1", p.Mark), fmt.Sprintf("%d-1", p.Mark)).Result()
		if err != nil || len(msgs) != 1 || msgs[0].Values["p"] != string(p.Position) || msgs[0].Values["t"] != p.Topic {
			bad.Store(fmt.Sprintf("mark %d of %s not in the log: %v %v", p.Mark, p.Topic, msgs, err))
		}
	}}
	n, err := b.Attach(bg, r)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = n.Close() })
	a = n.(*node)
	o, _ := attachNode(t, b)
	var topics []string
	for i := range 20 {
		topics = append(topics, fmt.Sprint("topic", i))
		mustSubscribe(t, a, topics[i])
	}
	var wg sync.WaitGroup
	for _, topic := range topics {
		wg.Go(func() {
			for j := range 10 {
				mustPublish(t, o, topic, fmt.Sprint(j))
			}
		})
	}
	wg.Wait()
	pubs := r.WaitPublications(t, 200)
	if v := bad.Load(); v != nil {
		t.Fatal(v)
	}
	last := map[string]backends.Position{}
	next := map[string]int{}
	seen := map[backends.Position]bool{}
	for i, p := range pubs {
		// Positions are unique across topics: within a bucket one
		// sequence, across buckets seq ≡ bucket (mod TopicBuckets).
		id, ok := parseID(string(p.Position))
		if !ok || seen[p.Position] || id.seq%uint64(b.cfg.TopicBuckets) != uint64(b.bucketOf(p.Topic)) {
			t.Fatalf("position %q of %s (bucket %d): invalid or repeated", p.Position, p.Topic, b.bucketOf(p.Topic))
		}
		seen[p.Position] = true
		if p.Mark != uint64(i+1) {
			t.Fatalf("publication %d has mark %d", i, p.Mark)
		}
		if string(p.Data) != fmt.Sprint(next[p.Topic]) {
			t.Fatalf("%s: %s after %d", p.Topic, p.Data, next[p.Topic]-1)
		}
		next[p.Topic]++
		last[p.Topic] = p.Position
	}
	cur := c.HGetAll(bg, a.cur).Val()
	for topic, p := range last {
		if cur[topic] != string(p) {
			t.Errorf("cur[%s] = %s, want %s", topic, cur[topic], p)
		}
	}
}

// checkingReceiver runs check in Broadcast.
type checkingReceiver struct {
	*backendtest.Recorder
	check func(p backends.Publication)
}

func (r *checkingReceiver) Broadcast(p backends.Publication) {
	r.check(p)
	r.Recorder.Broadcast(p)
}

// TestPositionsUniqueInOneBucket: topics of one bucket, published to
// concurrently within the same milliseconds, never share a position.
func TestPositionsUniqueInOneBucket(t *testing.T) {
	t.Parallel()
	s, c := startServer(t)
	cfg := testConfig(c, s.Prefix())
	cfg.TopicBuckets = 1
	b := newBackend(t, cfg)
	a, ra := attachNode(t, b)
	o, _ := attachNode(t, b)
	for i := range 4 {
		mustSubscribe(t, a, fmt.Sprint("u", i))
	}
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Go(func() {
			for j := range 50 {
				mustPublish(t, o, fmt.Sprint("u", i), fmt.Sprint(j))
			}
		})
	}
	wg.Wait()
	seen := map[backends.Position]bool{}
	for _, p := range ra.WaitPublications(t, 200) {
		if seen[p.Position] {
			t.Fatalf("position %s repeated", p.Position)
		}
		seen[p.Position] = true
	}
}

// TestPoolWarningOnAttach: the pool check counts the attached nodes.
func TestPoolWarningOnAttach(t *testing.T) {
	t.Parallel()
	s, _ := startServer(t)
	c := goredis.NewClient(&goredis.Options{Addr: s.Addr(), PoolSize: 30})
	t.Cleanup(func() { _ = c.Close() })
	logs := &logBuffer{}
	cfg := testConfig(c, s.Prefix())
	cfg.Logger = logs.logger()
	b := newBackend(t, cfg)
	attachNode(t, b)
	if strings.Contains(logs.String(), "PoolSize") {
		t.Fatalf("warning for one node and a pool of 30:\n%s", logs)
	}
	attachNode(t, b)
	if !strings.Contains(logs.String(), "nodes=2 want=41") {
		t.Fatalf("no warning for two nodes and a pool of 30:\n%s", logs)
	}
}
