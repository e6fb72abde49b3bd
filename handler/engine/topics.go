package engine

import (
	"context"
	"fmt"

	"github.com/ssebridge/ssebridge/backends"
)

// topicSubs are the local subscribers of one topic, by namespace.
type topicSubs struct {
	byNS  map[string]map[*Peer]struct{}
	count int
}

func checkTopic(topic string) error {
	if topic == "" || len(topic) > MaxTopicLength {
		return fmt.Errorf("%w: %d bytes (want 1 to %d)", ErrInvalidTopic, len(topic), MaxTopicLength)
	}
	return nil
}

// addSubscriber adds p to topic's local subscribers, subscribing the node
// with the backend when p is the first.
func (e *Engine) addSubscriber(topic string, p *Peer) error {
	e.subMu.Lock()
	defer e.subMu.Unlock()
	e.topicsMu.Lock()
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
	if _, ok := set[p]; !ok {
		set[p] = struct{}{}
		ts.count++
	}
	first := ts.count == 1
	e.topicsMu.Unlock()
	if !first {
		return nil
	}
	if err := e.node.Subscribe(context.Background(), topic); err != nil {
		e.topicsMu.Lock()
		e.dropLocked(topic, p)
		e.topicsMu.Unlock()
		p.mu.Lock()
		delete(p.topics, topic)
		p.mu.Unlock()
		return fmt.Errorf("ssebridge: subscribe to %q: %w", topic, err)
	}
	return nil
}

// removeSubscriber removes p from topic's local subscribers, unsubscribing
// the node when none is left.
func (e *Engine) removeSubscriber(topic string, p *Peer) error {
	e.subMu.Lock()
	defer e.subMu.Unlock()
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
		// are not affected.
		_ = p.push(enc.frame(p.codec, pub))
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
	f := encodeFrame(func(dst []byte) []byte { return codec.AppendPublication(dst, pub.Topic, pub.Data) })
	if c.n < len(c.codecs) {
		c.codecs[c.n], c.frames[c.n] = codec, f
		c.n++
	}
	return f
}
