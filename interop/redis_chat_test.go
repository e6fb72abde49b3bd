package interop

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ssebridge/ssebridge/internal/redistest"
)

// The tests of this file run examples/chat as separate processes sharing a
// private Redis (redistest): instances A and B, real EventSources
// (seq-listeners.mjs, npm eventsource), a publisher streaming with net/http.

// TestRedisChatAcrossInstances: a client streams on A, another on B; POSTs
// for a peer go to either instance, whichever holds its stream (routed
// through Redis to the other one), and every chat message reaches both
// clients, in order, with the right sender. POSTs for unknown or malformed
// peer ids get 400 on both instances, and a flood of them leaves no trace
// in Redis.
func TestRedisChatAcrossInstances(t *testing.T) {
	requireNode(t)
	ctx := testContext(t)
	start := time.Now()
	rs := redistest.Start(t)
	a := startRedisChat(t, ctx, "A", rs.URL())
	b := startRedisChat(t, ctx, "B", rs.URL())
	endpoint := map[string]string{"A": a.base + "/sse", "B": b.base + "/sse"}
	// Before the instances stop (cleanups run last-in first-out): a
	// connection the pool dialed but never used would hold the chat's
	// http.Server.Shutdown for 5 s (net/http waits that long for a new
	// connection's first request).
	t.Cleanup(postClient.CloseIdleConnections)

	// Who sends each message, and through which instance: alice streams
	// on A, bob on B; "B" for alice means B routes it to A through Redis.
	type step struct{ sender, via string }
	steps := []step{
		{"alice", "B"}, {"bob", "A"}, {"alice", "B"}, {"alice", "A"},
		{"bob", "B"}, {"bob", "A"}, {"alice", "B"},
	}
	last := len(steps) + 1 // one more, from alice through B, after the flood
	watch := map[string]*seqWatch{}
	for name, on := range map[string]string{"alice": "A", "bob": "B"} {
		p := startNode(t, ctx, "seq-listeners.mjs", map[string]any{"url": endpoint[on], "names": []string{name}, "expect": last})
		watch[name] = watchSeqListeners(ctx, p)
	}
	peer, member := map[string]string{}, map[string]string{}
	for name, w := range watch {
		if err := w.waitFor(ctx, name+"'s welcome", func(evs []seqEvent) bool { return len(of(evs, 0, "welcome")) > 0 }); err != nil {
			t.Fatalf("%s: %v%s", name, err, seqDump(w.events()))
		}
		evs := w.events()
		peer[name] = of(evs, 0, "crossws-id")[0].Data
		member[name] = of(evs, 0, "welcome")[0].ID
	}
	t.Logf("A %s, B %s, Redis %s; alice (on A) is %s, bob (on B) is %s; %v", a.base, b.base, rs.Addr(), peer["alice"], peer["bob"], time.Since(start).Round(time.Millisecond))

	send := func(k int, st step) {
		t.Helper()
		status, body, err := postText(ctx, endpoint[st.via], peer[st.sender], fmt.Sprintf("seq %d", k))
		if err != nil || status != http.StatusOK {
			t.Fatalf("POST seq %d for %s to %s: %d %q %v", k, st.sender, st.via, status, body, err)
		}
		// One at a time: messages sent through different instances have
		// no order between them until they were delivered.
		for name, w := range watch {
			if err := w.waitFor(ctx, fmt.Sprintf("seq %d", k), func(evs []seqEvent) bool {
				return slices.ContainsFunc(of(evs, 0, "message"), func(ev seqEvent) bool { return ev.Seq == k })
			}); err != nil {
				t.Fatalf("%s (%s's message via %s): %v%s", name, st.sender, st.via, err, seqDump(w.events()))
			}
		}
	}
	for i, st := range steps {
		send(i+1, st)
	}
	t.Logf("%d messages across instances: %v", len(steps), time.Since(start).Round(time.Millisecond))

	// Unknown and malformed ids, on both instances.
	malformed := []string{
		"not-a-peer-id",
		strings.Repeat("A", 21),
		strings.Repeat("A", 23),
		strings.Repeat("A", 21) + "B", // non-canonical: padding bits set
		strings.Repeat("A", 20) + ".x",
		strings.Repeat("A", 20) + "+/",
		"{" + strings.Repeat("A", 20) + "}",
		peer["alice"] + ".1",
		strings.Repeat("x", 4000),
	}
	type attempt struct {
		via, id, kind string // kind: "text", "streamed", "missing"
	}
	var checks []attempt
	for _, via := range []string{"A", "B"} {
		checks = append(checks, attempt{via, randomPeerID(), "text"}, attempt{via, randomPeerID(), "streamed"}, attempt{via, "", "missing"})
		for _, id := range malformed {
			checks = append(checks, attempt{via, id, "text"})
		}
	}
	try := func(at attempt) (int, string, error) {
		if at.kind == "streamed" {
			return postStreamed(ctx, endpoint[at.via], at.id, "hello?")
		}
		return postText(ctx, endpoint[at.via], at.id, "hello?")
	}
	for _, at := range checks {
		status, body, err := try(at)
		if err != nil || status != http.StatusBadRequest {
			t.Errorf("POST (%s) for peer id %.40q to %s: %d %q %v, want 400", at.kind, at.id, at.via, status, body, err)
		}
	}

	// A flood of 500 such POSTs, with fresh unknown ids, leaves Redis as
	// it was: no key for a session, inbox or anything else.
	const flood = 500
	var before []string
	if privateRedis() {
		before = allKeys(t, rs)
	}
	floodStart := time.Now()
	jobs := make(chan attempt)
	var (
		mu     sync.Mutex
		bad    []string
		status = map[int]int{}
		tried  []string
	)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for at := range jobs {
				code, body, err := try(at)
				mu.Lock()
				status[code]++
				if err != nil || code != http.StatusBadRequest {
					bad = append(bad, fmt.Sprintf("%s %s %.40q: %d %q %v", at.via, at.kind, at.id, code, body, err))
				}
				mu.Unlock()
			}
		})
	}
	for i := range flood {
		at := attempt{via: []string{"A", "B"}[i%2], kind: "text"}
		switch i % 10 {
		case 8:
			at.id = malformed[i%len(malformed)]
		case 9:
			at.id, at.kind = randomPeerID(), "streamed"
		default:
			at.id = randomPeerID()
		}
		if peerIDPattern.MatchString(at.id) {
			tried = append(tried, at.id)
		}
		jobs <- at
	}
	close(jobs)
	wg.Wait()
	t.Logf("%d POSTs for unknown peers in %v: statuses %v", flood, time.Since(floodStart).Round(time.Millisecond), status)
	if len(bad) > 0 {
		t.Errorf("%d of %d POSTs for unknown or malformed peers did not get 400, e.g.:\n\t%s", len(bad), flood, strings.Join(bad[:min(len(bad), 10)], "\n\t"))
	}
	after := allKeys(t, rs)
	for _, k := range after {
		for _, id := range tried {
			if strings.Contains(k, id) {
				t.Errorf("Redis key %q names the unknown peer %s", k, id)
			}
		}
	}
	if before != nil {
		if !slices.Equal(before, after) {
			t.Errorf("Redis keys changed during the flood: %d before, %d after\nbefore: %q\nafter:  %q", len(before), len(after), before, after)
		} else {
			t.Logf("Redis: %d keys before and after the flood", len(after))
		}
	} else {
		t.Logf("REDIS_URL server (no redis-server on PATH): keys shared with others; checked only that none names an unknown peer")
	}

	// The peers still work: the last message, which ends the scripts.
	send(last, step{"alice", "B"})
	all := append(steps, step{"alice", "B"})
	for name, w := range watch {
		evs, err := w.finish(ctx)
		if err != nil {
			t.Fatalf("%s: %v%s", name, err, seqDump(evs))
		}
		msgs := of(evs, 0, "message")
		var seqs []int
		for _, m := range msgs {
			seqs = append(seqs, m.Seq)
			if m.Seq < 1 || m.Seq > len(all) {
				t.Errorf("%s: unexpected message %s", name, m.raw)
				continue
			}
			sender := all[m.Seq-1].sender
			if m.From != sender || m.ID != member[sender] {
				t.Errorf("%s: %s: want from %q with member id %q", name, m.raw, sender, member[sender])
			}
			if !strings.HasPrefix(m.LastEventID, peer[name]+".") {
				t.Errorf("%s: %s: event id is not one of peer %s", name, m.raw, peer[name])
			}
		}
		if r := seqReport(seqs, len(all)); r != "" {
			t.Errorf("%s received seq %v: %s", name, seqs, r)
		}
		if h := of(evs, 0, "crossws-id"); len(h) != 1 {
			t.Errorf("%s: %d crossws-id events, want 1 (no reconnection):%s", name, len(h), seqDump(h))
		}
	}
	t.Logf("total %v", time.Since(start).Round(time.Millisecond))
}

// Parameters of the failover tests.
const (
	failoverListeners = 20
	failoverMessages  = 300 // K: "seq 1" … "seq K"
	failoverStopAfter = 100 // A is stopped once this many were published
	failoverBacklog   = 200 // published after the stop without waiting: replayed from Redis
	failoverPace      = 2 * time.Millisecond
	failoverBurst     = 10 // messages on each side of the stop are published unpaced
	// failoverScriptTimeout bounds seq-listeners.mjs: a run takes about
	// 5 s (3 s of it the EventSource's default reconnection delay); a
	// listener that lost messages waits for "seq K" until then, and the
	// script prints its state.
	failoverScriptTimeout = 25 * time.Second
)

// TestRedisKillInstanceNoLoss: 20 EventSources stream through a failover
// proxy, on A; a publisher on B posts "seq 1" … "seq 300". After 100, A is
// killed (SIGKILL). The EventSources reconnect through the proxy, now to B,
// with their Last-Event-ID; B claims their sessions from Redis and replays
// what they missed (messages 101…200 are published before any reconnection,
// 201…300 while they come back). Every listener must get every message
// exactly once, in order, as the same peer.
func TestRedisKillInstanceNoLoss(t *testing.T) { testRedisFailover(t, false) }

// TestRedisGracefulShutdownHandsOff is the same with SIGTERM: A shuts down,
// handing its sessions off, and exits 0.
func TestRedisGracefulShutdownHandsOff(t *testing.T) { testRedisFailover(t, true) }

func testRedisFailover(t *testing.T, graceful bool) {
	requireNode(t)
	ctx := testContext(t)
	start := time.Now()
	since := func() time.Duration { return time.Since(start).Round(time.Millisecond) }
	rs := redistest.Start(t)
	a := startRedisChat(t, ctx, "A", rs.URL())
	b := startRedisChat(t, ctx, "B", rs.URL())
	px := startFailoverProxy(t, a.base, b.base)
	t.Cleanup(postClient.CloseIdleConnections) // see TestRedisChatAcrossInstances
	pub := openStream(t, ctx, b.base+"/sse?name=publisher")

	const n, k = failoverListeners, failoverMessages
	w := watchSeqListeners(ctx, startNode(t, ctx, "seq-listeners.mjs", map[string]any{
		"url": px.url + "/sse", "count": n, "name": "l", "expect": k,
		"timeoutMs": failoverScriptTimeout.Milliseconds(),
	}))
	if err := w.waitFor(ctx, "every listener's welcome", func(evs []seqEvent) bool {
		seen := map[int]bool{}
		for _, ev := range evs {
			if ev.Event == "welcome" {
				seen[ev.Listener] = true
			}
		}
		return len(seen) == n
	}); err != nil {
		t.Fatalf("%v%s", err, seqDump(w.events()))
	}
	for _, h := range px.requests() {
		if h.Backend != "A" || h.Status != http.StatusOK {
			t.Fatalf("before A was stopped, the proxy sent a request elsewhere than A or it failed:%s", px)
		}
	}
	peers := map[int]string{}
	for i := range n {
		peers[i] = of(w.events(), i, "crossws-id")[0].Data
	}
	t.Logf("%d listeners on A (%s) through the proxy, publisher %s on B (%s): %v", n, a.base, pub.peer, b.base, since())

	sig := os.Signal(syscall.SIGKILL)
	if graceful {
		sig = syscall.SIGTERM
	}
	stopped := make(chan error, 1)
	var stoppedAt, firstResume time.Time
	resumedOnB := func() int {
		c := 0
		for _, h := range px.requests() {
			if h.Backend == "B" && h.LastEventID != "" && h.At.After(stoppedAt) {
				c++
			}
		}
		return c
	}
	for s := 1; s <= k; s++ {
		switch s {
		case failoverStopAfter + 1:
			// Stop A without waiting, amid a burst of publications: some
			// reach A's listeners, some A reads but does not deliver,
			// some it never reads.
			stoppedAt = time.Now()
			go func() { stopped <- a.cmd.Process.Signal(sig) }()
			t.Logf("stopping A (%s) after %d messages: %v", sig, failoverStopAfter, since())
		case failoverBacklog + 1:
			// Publish the rest while the listeners come back.
			wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			err := waitUntil(wctx, func() bool { return resumedOnB() > 0 })
			cancel()
			if err != nil {
				t.Errorf("no reconnection reached B within 10 s of the stop:%s", px)
			}
			firstResume = time.Now()
			t.Logf("first reconnection on B %v after the stop; publishing %d…%d: %v", firstResume.Sub(stoppedAt).Round(time.Millisecond), s, k, since())
		}
		status, body, err := postText(ctx, b.base+"/sse", pub.peer, fmt.Sprintf("seq %d", s))
		if err != nil || status != http.StatusOK {
			t.Fatalf("publisher: POST seq %d to B: %d %q %v", s, status, body, err)
		}
		if s <= failoverStopAfter-failoverBurst || s > failoverStopAfter+failoverBurst {
			time.Sleep(failoverPace)
		}
	}
	if err := <-stopped; err != nil {
		t.Fatalf("stop A (%s): %v", sig, err)
	}
	t.Logf("published %d messages, %d reconnections on B so far: %v", k, resumedOnB(), since())

	evs, err := w.finish(ctx)
	t.Logf("listeners done: %v", since())
	if err != nil {
		t.Errorf("seq-listeners.mjs: %v", err)
	}
	for i := range n {
		name := fmt.Sprintf("l%d", i)
		peer := peers[i]
		var seqs []int
		var odd []seqEvent // not from the publisher, or not an event of the peer
		for _, m := range of(evs, i, "message") {
			seqs = append(seqs, m.Seq)
			if m.From != "publisher" || !strings.HasPrefix(m.LastEventID, peer+".") {
				odd = append(odd, m)
			}
		}
		if len(odd) > 0 {
			t.Errorf("%s: %d messages not from the publisher or with an event id not of peer %s, the first: %s", name, len(odd), peer, odd[0].raw)
		}
		if r := seqReport(seqs, k); r != "" {
			t.Errorf("%s (peer %s) lost or repeated messages: %s", name, peer, r)
		}
		hellos := of(evs, i, "crossws-id")
		var ids []string
		for _, h := range hellos {
			ids = append(ids, h.Data)
		}
		switch {
		case len(hellos) < 2:
			t.Errorf("%s: %d crossws-id events, want ≥ 2 (a reconnection):%s", name, len(hellos), seqDump(hellos))
		case slices.ContainsFunc(ids, func(id string) bool { return id != peer }):
			t.Errorf("%s did not keep its peer %s across the reconnection: crossws-id %q", name, peer, ids)
		default:
			// The hello of the resumed stream repeats the position the
			// client presented.
			if h := hellos[len(hellos)-1]; !strings.HasPrefix(h.LastEventID, peer+".") || h.LastEventID == peer+".0" && len(seqs) > 0 {
				t.Errorf("%s: resumed hello %s: want the client's position", name, h.raw)
			}
		}
		if cs := of(evs, i, "close"); len(cs) > 0 {
			t.Errorf("%s: the server closed the peer instead of handing it over:%s", name, seqDump(cs))
		}
		if ws := of(evs, i, "welcome"); len(ws) != 1 {
			t.Errorf("%s: %d welcome messages, want 1 (a resumed peer is not new):%s", name, len(ws), seqDump(ws))
		}
		for _, g := range of(evs, i, "get") {
			if g.Status != http.StatusOK {
				t.Errorf("%s: stream request answered %s", name, g.raw)
			}
		}
	}
	// Where the clients resumed from ("<seq>.<mark>" of their
	// Last-Event-ID), for the log: several positions mean A died in the
	// middle of delivering.
	positions := map[string]int{}
	for _, h := range px.requests() {
		if h.Backend == "B" && h.LastEventID != "" {
			_, pos, _ := strings.Cut(h.LastEventID, ".")
			positions[pos]++
		}
	}
	t.Logf("resume positions (seq.mark: listeners): %v", positions)
	if c := resumedOnB(); c < n {
		t.Errorf("%d reconnections with Last-Event-ID reached B, want ≥ %d:%s", c, n, px)
	}
	if got := chatSeqs(pub.events()); seqReport(got, k) != "" {
		t.Errorf("the publisher (on B, never moved) received: %s", seqReport(got, k))
	}
	if graceful {
		wctx, cancel := context.WithTimeout(ctx, chatStopTimeout)
		defer cancel()
		if err := a.wait(wctx); err != nil {
			t.Errorf("A after SIGTERM: %v, want exit status 0", err)
		}
		// A clean shutdown reports nothing: the handoff went through.
		for _, line := range strings.Split(a.stderr.String(), "\n") {
			if strings.Contains(line, "level=ERROR") || strings.Contains(line, `msg="chat: shutdown"`) {
				t.Errorf("A's graceful shutdown reported: %s", line)
			}
		}
	}
	if t.Failed() {
		t.Logf("listener events:%s", seqDump(slices.DeleteFunc(evs, func(ev seqEvent) bool { return ev.Event == "message" })))
	}
	t.Logf("total %v (stop → first reconnection on B %v)", since(), firstResume.Sub(stoppedAt).Round(time.Millisecond))
}
