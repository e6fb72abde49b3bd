package engine

import (
	"context"
	"errors"
	"fmt"

	"github.com/ssebridge/ssebridge/backends"
)

// topicSubs are the local subscribers of one topic, by namespace.
type topicSubs struct {
	byNS  map[string]map[*Peer]struct{}
	count int
	// last is the position of the last publication broadcast here (or
	// where the node's subscription started); known says it is set. It is
	// written by Broadcast under topicsMu's read lock (the backend never
	// calls Broadcast concurrently) and read under its write lock.
	last  backends.Position
	known bool
}

func checkTopic(topic string) error {
	if topic == "" || len(topic) > MaxTopicLength {
		return fmt.Errorf("%w: %d bytes (want 1 to %d)", ErrInvalidTopic, len(topic), MaxTopicLength)
	}
	return nil
}

// subscribe adds topic to p's topics and p to the topic's local
// subscribers, subscribing the node with the backend when p is the first,
// and records in p's session record where p started receiving the topic.
func (e *Engine) subscribe(p *Peer, topic string) error {
	from, added, err := e.addSub(p, topic, true)
	if err != nil || !added {
		return err
	}
	if err := e.node.SetSessionTopic(context.Background(), p.id, topic, from); err != nil {
		e.subMu.Lock()
		p.mu.Lock()
		delete(p.topics, topic)
		p.mu.Unlock()
		uerr := e.unsubscribeLocked(p, topic)
		e.subMu.Unlock()
		return errors.Join(fmt.Errorf("ssebridge: subscribe to %q: %w", topic, err), uerr)
	}
	return nil
}

// rejoin adds a peer taken over (Takeover) to its topics: the backend
// replays to it the publications after its positions that this node already
// broadcast, then p joins the topics' local subscribers, with no broadcast
// in between.
func (e *Engine) rejoin(ctx context.Context, p *Peer, topics map[string]backends.Position) error {
	if len(topics) == 0 {
		return nil
	}
	e.subMu.Lock()
	defer e.subMu.Unlock()
	p.mu.Lock()
	if p.state != stateOpen {
		p.mu.Unlock()
		return ErrClosed
	}
	if p.topics == nil {
		p.topics = make(map[string]struct{}, len(topics))
	}
	for t := range topics {
		p.topics[t] = struct{}{}
	}
	p.mu.Unlock()
	var perr error
	replay := func(pub backends.Publication) {
		if perr != nil || pub.Exclude == p.id || (pub.Namespace != "" && pub.Namespace != p.ns) {
			return
		}
		frame := encodeFrame(func(dst []byte) []byte { return p.codec.AppendPublication(dst, pub.Topic, pub.Data, pub.Offset) })
		if err := p.push(frame, pub.Mark); !errors.Is(err, ErrTooLarge) {
			perr = err // a frame too large for any queue is skipped, as live
		}
	}
	joined := func(topic string, last backends.Position) {
		e.topicsMu.Lock()
		defer e.topicsMu.Unlock()
		ts := e.addLocked(topic, p)
		ts.last, ts.known = last, true
	}
	err := e.node.Join(ctx, p.id, topics, replay, joined)
	if err == nil {
		err = perr
	}
	if err != nil {
		p.mu.Lock()
		for t := range topics {
			delete(p.topics, t)
		}
		p.mu.Unlock()
		for t := range topics {
			e.topicsMu.Lock()
			e.dropLocked(t, p)
			_, still := e.topics[t]
			e.topicsMu.Unlock()
			if !still { // Join may have subscribed the node for p alone
				_ = e.node.Unsubscribe(context.Background(), t)
			}
		}
		return fmt.Errorf("ssebridge: rejoin topics: %w", err)
	}
	return nil
}

// addSub adds topic to p's topics (within MaxTopics if limit) and p to the
// topic's local subscribers, and returns the position after which p gets
// the topic's publications. Both sides change under subMu, and p.topics is
// checked under p.mu, so a peer being finalized (which reads p.topics under
// p.mu, then unsubscribes under subMu) is never left behind in e.topics.
func (e *Engine) addSub(p *Peer, topic string, limit bool) (from backends.Position, added bool, err error) {
	e.subMu.Lock()
	defer e.subMu.Unlock()
	p.mu.Lock()
	if p.state != stateOpen {
		p.mu.Unlock()
		return "", false, ErrClosed
	}
	if _, ok := p.topics[topic]; ok {
		p.mu.Unlock()
		return "", false, nil
	}
	if limit && len(p.topics) >= e.cfg.MaxTopics {
		p.mu.Unlock()
		return "", false, fmt.Errorf("%w: %d", ErrTooManyTopics, e.cfg.MaxTopics)
	}
	if p.topics == nil {
		p.topics = make(map[string]struct{})
	}
	p.topics[topic] = struct{}{}
	p.mu.Unlock()

	e.topicsMu.Lock()
	ts := e.addLocked(topic, p)
	from, known := ts.last, ts.known
	e.topicsMu.Unlock()
	if known {
		return from, true, nil
	}
	// p is the first: publications reach it from where the node's
	// subscription starts.
	from, err = e.node.Subscribe(context.Background(), topic)
	if err != nil {
		e.topicsMu.Lock()
		e.dropLocked(topic, p)
		e.topicsMu.Unlock()
		p.mu.Lock()
		delete(p.topics, topic)
		p.mu.Unlock()
		return "", false, fmt.Errorf("ssebridge: subscribe to %q: %w", topic, err)
	}
	e.topicsMu.Lock()
	if !ts.known {
		ts.last, ts.known = from, true
	}
	e.topicsMu.Unlock()
	return from, true, nil
}

// unsubscribe removes topic from p's topics and p from the topic's local
// subscribers, unsubscribing the node when none is left.
func (e *Engine) unsubscribe(p *Peer, topic string) error {
	e.subMu.Lock()
	p.mu.Lock()
	_, ok := p.topics[topic]
	delete(p.topics, topic)
	p.mu.Unlock()
	var err error
	if ok {
		err = e.unsubscribeLocked(p, topic)
	}
	e.subMu.Unlock()
	if !ok {
		return nil
	}
	if rerr := e.node.RemoveSessionTopic(context.Background(), p.id, topic); rerr != nil && !errors.Is(rerr, backends.ErrMoved) {
		err = errors.Join(err, fmt.Errorf("ssebridge: unsubscribe from %q: %w", topic, rerr))
	}
	return err
}

// unsubscribeLocked removes p from topic's local subscribers; e.subMu is
// held.
func (e *Engine) unsubscribeLocked(p *Peer, topic string) error {
	e.topicsMu.Lock()
	last := e.dropLocked(topic, p)
	e.topicsMu.Unlock()
	if !last {
		return nil
	}
	if err := e.node.Unsubscribe(context.Background(), topic); err != nil {
		return fmt.Errorf("ssebridge: unsubscribe from %q: %w", topic, err)
	}
	return nil
}

// leaveAll removes a finalized peer from the topics it had.
func (e *Engine) leaveAll(p *Peer, topics map[string]struct{}) {
	e.subMu.Lock()
	defer e.subMu.Unlock()
	for t := range topics {
		if err := e.unsubscribeLocked(p, t); err != nil {
			e.ReportError(p, err)
		}
	}
}

// addLocked adds p to topic's local subscribers and returns them; e.topicsMu
// is held.
func (e *Engine) addLocked(topic string, p *Peer) *topicSubs {
	ts := e.topics[topic]
	if ts == nil {
		ts = &topicSubs{byNS: make(map[string]map[*Peer]struct{})}
		e.topics[topic] = ts
	}
	set := ts.byNS[p.ns]
	if set == nil {
		set = make(map[*Peer]struct{})
		ts.byNS[p.ns] = set
	}
	set[p] = struct{}{}
	ts.count++
	return ts
}

// dropLocked removes p from topic and reports whether the topic has no
// local subscriber left.
func (e *Engine) dropLocked(topic string, p *Peer) (empty bool) {
	ts := e.topics[topic]
	if ts == nil {
		return false
	}
	set := ts.byNS[p.ns]
	if _, ok := set[p]; !ok {
		return false
	}
	delete(set, p)
	ts.count--
	if len(set) == 0 {
		delete(ts.byNS, p.ns)
	}
	if ts.count == 0 {
		delete(e.topics, topic)
		return true
	}
	return false
}

// Broadcast implements backends.Receiver: it encodes the publication once
// per protocol and queues the same bytes to every local subscriber.
func (e *Engine) Broadcast(pub backends.Publication) {
	e.topicsMu.RLock()
	defer e.topicsMu.RUnlock()
	ts := e.topics[pub.Topic]
	if ts == nil {
		return
	}
	ts.last, ts.known = pub.Position, true
	var enc frameCache
	if pub.Namespace != "" {
		e.fanOut(ts.byNS[pub.Namespace], &pub, &enc)
		return
	}
	for _, set := range ts.byNS {
		e.fanOut(set, &pub, &enc)
	}
}

func (e *Engine) fanOut(set map[*Peer]struct{}, pub *backends.Publication, enc *frameCache) {
	for p := range set {
		if p.id == pub.Exclude {
			continue
		}
		// A full queue closes that peer (ErrSlowConsumer); the others
		// are not affected. A frame larger than any queue (published on
		// a node with a larger QueueSize) is skipped.
		if err := p.pushPublication(enc.frame(p.codec, pub), pub.Mark, pub.Topic, pub.Offset); errors.Is(err, ErrTooLarge) {
			go e.ReportError(p, err) // not under the backend's locks
		}
	}
}

// frameCache holds the frames of one publication, one per protocol.
type frameCache struct {
	n      int
	codecs [4]Codec
	frames [4][]byte
}

func (c *frameCache) frame(codec Codec, pub *backends.Publication) []byte {
	for i := 0; i < c.n; i++ {
		if c.codecs[i] == codec {
			return c.frames[i]
		}
	}
	f := encodeFrame(func(dst []byte) []byte { return codec.AppendPublication(dst, pub.Topic, pub.Data, pub.Offset) })
	if c.n < len(c.codecs) {
		c.codecs[c.n], c.frames[c.n] = codec, f
		c.n++
	}
	return f
}
