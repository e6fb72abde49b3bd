package redis

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/ssebridge/ssebridge/backends"
)

// bucket is a node's reader of one topic bucket. Its fields are guarded by
// the node's subMu.
type bucket struct {
	idx     int
	wake    string
	running bool
	subs    map[string]*sub // by topic
}

// sub is a node's subscription to a topic.
type sub struct {
	topic  string
	key    string   // the topic's stream
	meta   string   // the topic's meta hash (offsets, see History)
	cursor streamID // the last position broadcast (or the start); guarded by subMu
}

// item is a publication read from a topic stream.
type item struct {
	sub *sub
	id  streamID
	msg goredis.XMessage
}

func (n *node) lockBcast(ctx context.Context) bool {
	select {
	case n.bcast <- struct{}{}:
		return true
	default:
	}
	select {
	case n.bcast <- struct{}{}:
		return true
	case <-ctx.Done():
		return false
	}
}

// lockBcastFor is lockBcast waiting at most BlockTimeout: the lock is held
// for long only while Redis is out of reach (the marks are being retried),
// and Subscribe and Unsubscribe then go on without it.
func (n *node) lockBcastFor(ctx context.Context) bool {
	ctx, cancel := context.WithTimeout(ctx, n.b.cfg.BlockTimeout)
	defer cancel()
	return n.lockBcast(ctx)
}

func (n *node) unlockBcast() { <-n.bcast }

// Subscribe starts broadcasting the topic's publications to the node. It
// returns the position after which they are broadcast: for a new
// subscription the topic's last generated id (the stream is created, empty,
// if it does not exist: "" then), for an existing one the last position
// broadcast. While subscribed, the node's heartbeat keeps the topic's
// stream from expiring. It implements backends.Node.
func (n *node) Subscribe(ctx context.Context, topic string) (backends.Position, error) {
	if n.closed.Load() {
		return "", n.errClosed("subscribe")
	}
	if err := checkTopic(topic); err != nil {
		return "", err
	}
	// Under the broadcast lock, the cursor of an existing subscription
	// includes every Broadcast of a batch under way; without it (Redis is
	// out of reach), it is at most the last position broadcast.
	locked := n.lockBcastFor(ctx)
	if err := ctx.Err(); err != nil {
		if locked {
			n.unlockBcast()
		}
		return "", wrap("subscribe", err)
	}
	n.subMu.Lock()
	s := n.subs[topic]
	var cur streamID
	if s != nil {
		cur = s.cursor
	}
	n.subMu.Unlock()
	if locked {
		n.unlockBcast()
	}
	if s != nil {
		return cur.position(), nil
	}

	key, meta := n.b.topicKey(topic), n.b.metaKey(topic)
	last, err := scriptSubscribe.Run(ctx, n.b.client, []string{key, meta}, ms(n.b.topicTTL()), n.newEpoch()).Text()
	if err != nil {
		return "", wrap("subscribe "+topic, err)
	}
	start, ok := parseID(last)
	if !ok {
		return "", fmt.Errorf("redis backend: subscribe %s: stream id %q", topic, last)
	}

	n.subMu.Lock()
	if n.closed.Load() {
		n.subMu.Unlock()
		return "", n.errClosed("subscribe")
	}
	if s := n.subs[topic]; s != nil { // subscribed meanwhile
		cur := s.cursor
		n.subMu.Unlock()
		return cur.position(), nil
	}
	k := n.b.bucketOf(topic)
	bk := n.buckets[k]
	if bk == nil {
		bk = &bucket{idx: k, wake: n.b.wakeKey(k, n.id), subs: make(map[string]*sub)}
		n.buckets[k] = bk
	}
	s = &sub{topic: topic, key: key, meta: meta, cursor: start}
	n.subs[topic] = s
	bk.subs[topic] = s
	wake := bk.running
	if !bk.running {
		bk.running = true
		n.readers.Add(1)
		go n.bucketLoop(bk)
	}
	n.subMu.Unlock()
	if wake {
		// The reader may be blocked on its old list of keys. If this
		// fails, it reads the topic after its current block anyway.
		_ = scriptWake.Run(ctx, n.b.client, []string{bk.wake}, ms(n.b.keyTTL())).Err()
	}
	return start.position(), nil
}

// Unsubscribe stops broadcasting the topic's publications to the node;
// once it returns, none is broadcast. It implements backends.Node.
func (n *node) Unsubscribe(ctx context.Context, topic string) error {
	// Waiting for a batch under way keeps the marks consecutive: its
	// publications of the topic are broadcast before the topic goes.
	if n.lockBcastFor(ctx) {
		defer n.unlockBcast()
	}
	n.subMu.Lock()
	defer n.subMu.Unlock()
	if s := n.subs[topic]; s != nil {
		delete(n.subs, topic)
		delete(n.buckets[n.b.bucketOf(topic)].subs, topic)
	}
	return nil
}

// bucketLoop reads the streams of the node's topics in one bucket, with
// the bucket's wake stream, until the bucket has no topic left or the node
// is closed.
func (n *node) bucketLoop(bk *bucket) {
	defer n.readers.Done()
	st := streak{n: n, what: "reading topic bucket " + strconv.Itoa(bk.idx)}
	var bo backoff
	wakeID := "0-0"
	var streams []string
	var subs []*sub
	bykey := make(map[string]*sub)
	for {
		n.subMu.Lock()
		if n.ctx.Err() != nil || len(bk.subs) == 0 {
			bk.running = false
			n.subMu.Unlock()
			return
		}
		clear(bykey)
		subs = subs[:0]
		streams = append(streams[:0], bk.wake)
		for _, s := range bk.subs {
			bykey[s.key] = s
			subs = append(subs, s)
			streams = append(streams, s.key)
		}
		streams = append(streams, wakeID)
		for _, s := range subs {
			streams = append(streams, s.cursor.String())
		}
		n.subMu.Unlock()

		res, err := n.b.client.XRead(n.ctx, &goredis.XReadArgs{Streams: streams, Count: readBatch, Block: n.b.cfg.BlockTimeout}).Result()
		if err != nil && !errors.Is(err, goredis.Nil) {
			if n.ctx.Err() != nil {
				n.stopBucket(bk)
				return
			}
			st.fail(err)
			if !sleep(n.ctx, bo.next()) {
				n.stopBucket(bk)
				return
			}
			continue
		}
		st.ok()
		bo.reset()
		var items []item
		for _, xs := range res {
			if xs.Stream == bk.wake {
				if len(xs.Messages) > 0 {
					wakeID = xs.Messages[len(xs.Messages)-1].ID
				}
				continue
			}
			s := bykey[xs.Stream]
			if s == nil {
				continue
			}
			for _, m := range xs.Messages {
				if id, ok := parseID(m.ID); ok {
					items = append(items, item{sub: s, id: id, msg: m})
				}
			}
		}
		if len(items) > 0 {
			n.broadcast(items)
		}
	}
}

func (n *node) stopBucket(bk *bucket) {
	n.subMu.Lock()
	bk.running = false
	n.subMu.Unlock()
}

// broadcast numbers the items with the node's marks, writes the marks to
// the log, then broadcasts the items in mark order. Items of topics
// unsubscribed since the read are skipped. A failed log write is retried
// (the same marks) until it succeeds or the node closes: no mark is
// skipped or used twice, and none is broadcast before it is in the log.
func (n *node) broadcast(items []item) {
	if !n.lockBcast(n.ctx) {
		return
	}
	defer n.unlockBcast()
	n.subMu.Lock()
	kept := items[:0]
	for _, it := range items {
		if n.subs[it.sub.topic] == it.sub && it.sub.cursor.less(it.id) {
			kept = append(kept, it)
		}
	}
	n.subMu.Unlock()
	if len(kept) == 0 {
		return
	}
	args := make([]any, 0, 4+3*len(kept))
	args = append(args, n.b.cfg.MarkLogLength, ms(n.b.keyTTL()), "", 0)
	for i, it := range kept {
		args = append(args, strconv.FormatUint(n.mark+uint64(i)+1, 10), it.sub.topic, it.msg.ID)
	}
	var bo backoff
	for {
		err := scriptMarks.Run(n.ctx, n.b.client, []string{n.log, n.cur, n.top}, args...).Err()
		if err == nil {
			break
		}
		if n.ctx.Err() != nil {
			return
		}
		n.markStreak.fail(err)
		if !sleep(n.ctx, bo.next()) {
			return
		}
	}
	n.markStreak.ok()
	var data []byte
	for _, it := range kept {
		n.mark++
		v := it.msg.Values
		data = append(data[:0], str(v["d"])...)
		// Under subMu, so that once Unsubscribe or Close returns no
		// Broadcast of the topic starts. The topic can only have gone
		// meanwhile if Unsubscribe gave up waiting for this batch (Redis
		// was out of reach): its mark is then skipped, which a claim
		// handles like any mark the client did not get.
		n.subMu.Lock()
		if !n.closed.Load() && n.subs[it.sub.topic] == it.sub {
			n.recv.Broadcast(backends.Publication{
				Topic:     it.sub.topic,
				Namespace: str(v["ns"]),
				Exclude:   str(v["x"]),
				Data:      data,
				Position:  backends.Position(it.msg.ID),
				Offset:    offsetOf(v),
				Mark:      n.mark,
			})
			if it.sub.cursor.less(it.id) {
				it.sub.cursor = it.id
			}
		}
		n.subMu.Unlock()
	}
}

// Publish adds the publication to the topic's stream, from which every
// subscribed node (this one included) reads it. It implements
// backends.Node.
func (n *node) Publish(ctx context.Context, p backends.Publication) error {
	if n.closed.Load() {
		return n.errClosed("publish")
	}
	if err := checkTopic(p.Topic); err != nil {
		return err
	}
	c := n.b.cfg
	k := n.b.bucketOf(p.Topic)
	err := scriptPublish.Run(ctx, n.b.client, []string{n.b.topicKey(p.Topic), n.b.buckets[k] + "last", n.b.metaKey(p.Topic)},
		c.HistoryLength, ms(c.HistoryAge), ms(n.b.topicTTL()),
		p.Namespace, p.Exclude, p.Data, c.TopicBuckets, k, n.newEpoch()).Err()
	return wrap("publish to "+p.Topic, err)
}

// Replay calls fn for the publications of topic in (after, until], from
// the topic's stream. It implements backends.Node.
func (n *node) Replay(ctx context.Context, topic string, after, until backends.Position, fn func(p backends.Publication)) error {
	if err := checkTopic(topic); err != nil {
		return err
	}
	a, ok1 := parsePosition(after)
	u, ok2 := parsePosition(until)
	if !ok1 || !ok2 {
		return fmt.Errorf("redis backend: replay %s: invalid position %s or %s", topic, short(string(after)), short(string(until)))
	}
	var data []byte
	return n.history(ctx, "replay", topic, a, u, func(m goredis.XMessage) {
		data = append(data[:0], str(m.Values["d"])...)
		fn(backends.Publication{
			Topic:     topic,
			Namespace: str(m.Values["ns"]),
			Exclude:   str(m.Values["x"]),
			Data:      data,
			Position:  backends.Position(m.ID),
			Offset:    offsetOf(m.Values),
		})
	})
}

// offsetOf returns the offset an entry of a topic stream records (field
// o, see History); 0 for an entry without one.
func offsetOf(v map[string]any) uint64 {
	o, err := strconv.ParseUint(str(v["o"]), 10, 64)
	if err != nil {
		return 0
	}
	return o
}

// history calls fn, in order, for the entries of topic's stream in
// (a, u]. It returns an error wrapping ErrGap when an entry after a was
// trimmed or the stream expired: before calling fn, unless the history is
// trimmed while it reads it page by page (Join collects the entries before
// it uses them).
func (n *node) history(ctx context.Context, op, topic string, a, u streamID, fn func(m goredis.XMessage)) error {
	if !a.less(u) {
		return nil
	}
	key := n.b.topicKey(topic)
	gap := func(why string) error {
		return fmt.Errorf("redis backend: %s %s after %s: %s: %w", op, topic, a, why, backends.ErrGap)
	}
	res, err := scriptReplay.Run(ctx, n.b.client, []string{key}, exclusiveStart(a)).Slice()
	if err != nil {
		return wrap(op+" "+topic, err)
	}
	switch st, _ := res[0].(int64); st {
	case 0:
		// The history of publications up to until existed and is gone.
		return gap("the topic's history expired")
	case 1:
		if last, ok := parseID(str(res[1])); !ok || !continues(a, last) {
			return gap("the publications after it were trimmed")
		}
		return nil
	}
	if len(res) < 3 {
		return fmt.Errorf("redis backend: %s %s: unexpected reply %v", op, topic, res)
	}
	if pv, ok := parseID(str(res[2])); !ok || !continues(a, pv) {
		return gap("publications after it were trimmed")
	}
	prev := a
	first := true
	start := exclusiveStart(a)
	end := u.String()
	for {
		msgs, err := n.b.client.XRangeN(ctx, key, start, end, readBatch).Result()
		if err != nil {
			return wrap(op+" "+topic, err)
		}
		for _, m := range msgs {
			id, ok := parseID(m.ID)
			pv, ok2 := parseID(str(m.Values["pv"]))
			if !ok || !ok2 || (first && !continues(prev, pv)) || (!first && pv != prev) {
				return gap("the history was trimmed during the read")
			}
			first = false
			prev = id
			fn(m)
		}
		if len(msgs) < readBatch {
			return nil
		}
		start = "(" + msgs[len(msgs)-1].ID
	}
}

// continues reports whether an entry whose predecessor (pv) is prev
// comes right after position a, or a stream whose last id is prev holds
// nothing after a: prev is not after a, or a is 0-0 ("before any
// publication") and prev the start of the stream, <ms>-0 (see
// publish.lua).
func continues(a, prev streamID) bool {
	return !a.less(prev) || (a.isZero() && prev.seq == 0)
}

// joinTopic is one topic of a Join: the session's position, the node's
// subscription cursor (last) and the entries in between.
type joinTopic struct {
	topic string
	after streamID
	last  streamID
	msgs  []goredis.XMessage
}

// joinLock takes the broadcast lock for Join and sets each topic's last to
// the node's subscription cursor of it. While a cursor is before the
// session's position and the topic's stream holds publications in
// between, which the node's reader is about to broadcast (it lags, or it
// has just read them), it lets go of the lock, waits, and starts over with
// every topic: broadcast after joined, they would reach the session a
// second time, and a Broadcast must not come between two topics' replays.
// It gives up after BlockTimeout (the reader cannot read: Redis is out of
// reach) with an error wrapping ErrUnavailable. On success the lock is
// held.
func (n *node) joinLock(ctx context.Context, op string, jts []*joinTopic) error {
	deadline := time.Now().Add(n.b.cfg.BlockTimeout)
	wait := time.Millisecond
	for {
		// The lock is held for long only while Redis is out of reach (a
		// batch's marks are being retried).
		if !n.lockBcastFor(ctx) {
			if err := ctx.Err(); err != nil {
				return wrap(op, err)
			}
			return fmt.Errorf("redis backend: %s: the node's broadcasts are held up (Redis out of reach?): %w", op, backends.ErrUnavailable)
		}
		if n.closed.Load() {
			n.unlockBcast()
			return n.errClosed("join")
		}
		var behind *joinTopic
		for _, jt := range jts {
			n.subMu.Lock()
			s := n.subs[jt.topic]
			if s != nil {
				jt.last = s.cursor
			}
			n.subMu.Unlock()
			if s == nil {
				n.unlockBcast()
				return fmt.Errorf("redis backend: %s %s: the topic was unsubscribed meanwhile: %w", op, jt.topic, backends.ErrClosed)
			}
			if !jt.last.less(jt.after) {
				continue
			}
			ahead, err := n.b.client.XRangeN(ctx, s.key, "("+jt.last.String(), jt.after.String(), 1).Result()
			if err != nil {
				n.unlockBcast()
				return wrap(op+" "+jt.topic, err)
			}
			if len(ahead) > 0 {
				behind = jt
				break
			}
			// Nothing in between to broadcast.
		}
		if behind == nil {
			return nil
		}
		n.unlockBcast()
		if time.Now().After(deadline) {
			return fmt.Errorf("redis backend: %s %s: the node's broadcasts of the topic stay behind %s: %w", op, behind.topic, behind.after, backends.ErrUnavailable)
		}
		if !sleep(ctx, wait) {
			return wrap(op, ctx.Err())
		}
		wait = min(2*wait, 50*time.Millisecond)
	}
}

// Join adds a session this node took over to the publications of its
// topics, each after its position in topics: it subscribes the node to the
// topics it lacks, then, holding the broadcast lock once for all the
// topics (see joinLock), reads each topic's history (in name order) from
// the session's position up to the node's last broadcast position of the
// topic (its subscription's cursor), writes a new mark for every entry of
// every topic to the node's log in one script, tagged with the session
// (and each replayed topic's cursor to cur, see marks.lua), and only then
// calls replay for each entry, topic by topic, and joined for each topic
// with its cursor. No Broadcast comes in between, so every replayed mark
// is below every live mark the session gets, whatever the topic. It
// implements backends.Node.
//
// If any topic's history no longer holds everything after the session's
// position, Join calls neither replay nor joined and returns an error
// wrapping ErrGap. If the marks cannot be written (Redis is out of reach),
// it calls neither and returns an error wrapping ErrUnavailable. The marks
// it meant to give are then skipped, not reused: the write may have
// reached the log although it failed (a lost reply), and a Broadcast
// reusing a mark would find it logged with this session's tag and a
// replayed position (marks.lua keeps a mark already in the log). Skipping
// is safe: a skipped mark was never delivered, so no client presents it; a
// claim of another session ignores the skipped entries (tagged with this
// session); a claim of this session from an earlier mark finds, at worst,
// for each topic the first skipped entry of it, the first publication
// after the session's position, which places the client there, where it
// is; from a later mark it does not read them.
func (n *node) Join(ctx context.Context, session string, topics map[string]backends.Position, replay func(p backends.Publication), joined func(topic string, last backends.Position)) error {
	if n.closed.Load() {
		return n.errClosed("join")
	}
	if !validID(session) {
		return errBadSession("join", session)
	}
	jts := make([]*joinTopic, 0, len(topics))
	for topic, after := range topics {
		if err := checkTopic(topic); err != nil {
			return err
		}
		a, ok := parsePosition(after)
		if !ok {
			return fmt.Errorf("redis backend: join %s: invalid position %s", topic, short(string(after)))
		}
		jts = append(jts, &joinTopic{topic: topic, after: a})
	}
	if len(jts) == 0 {
		return nil
	}
	slices.SortFunc(jts, func(x, y *joinTopic) int { return strings.Compare(x.topic, y.topic) })
	for _, jt := range jts {
		if _, err := n.Subscribe(ctx, jt.topic); err != nil {
			return err
		}
	}
	op := "join " + session + " to"
	if err := n.joinLock(ctx, op, jts); err != nil {
		return err
	}
	defer n.unlockBcast()
	total, replayed := 0, 0
	for _, jt := range jts {
		if err := n.history(ctx, op, jt.topic, jt.after, jt.last, func(m goredis.XMessage) { jt.msgs = append(jt.msgs, m) }); err != nil {
			return err
		}
		total += len(jt.msgs)
		if len(jt.msgs) > 0 {
			replayed++
		}
	}
	if total > 0 {
		args := make([]any, 0, 4+2*replayed+3*total)
		args = append(args, n.b.cfg.MarkLogLength, ms(n.b.keyTTL()), session, replayed)
		for _, jt := range jts {
			if len(jt.msgs) > 0 {
				args = append(args, jt.topic, jt.last.String())
			}
		}
		m := n.mark
		for _, jt := range jts {
			for _, msg := range jt.msgs {
				m++
				args = append(args, strconv.FormatUint(m, 10), jt.topic, msg.ID)
			}
		}
		if err := scriptMarks.Run(ctx, n.b.client, []string{n.log, n.cur, n.top}, args...).Err(); err != nil {
			n.mark += uint64(total) // skipped: see above
			return wrap(op+" "+joinNames(jts)+": writing marks", err)
		}
	}
	for _, jt := range jts {
		for _, m := range jt.msgs {
			n.mark++
			replay(backends.Publication{
				Topic:     jt.topic,
				Namespace: str(m.Values["ns"]),
				Exclude:   str(m.Values["x"]),
				Data:      []byte(str(m.Values["d"])),
				Position:  backends.Position(m.ID),
				Offset:    offsetOf(m.Values),
				Mark:      n.mark,
			})
		}
	}
	for _, jt := range jts {
		joined(jt.topic, jt.last.position())
	}
	return nil
}

func joinNames(jts []*joinTopic) string {
	names := make([]string, len(jts))
	for i, jt := range jts {
		names[i] = jt.topic
	}
	return strings.Join(names, ",")
}
