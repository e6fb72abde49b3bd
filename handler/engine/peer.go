package engine

import (
	"context"
	"fmt"
	"iter"
	"runtime/debug"
	"slices"
	"sync"
	"time"
)

type peerState uint8

const (
	stateOpen    peerState = iota // streaming, or waiting for its client to resume
	stateClosing                  // a close was requested; the writer finishes it
	stateClosed                   // gone; hooks ran
)

// Peer is one client session. It lives from the stream that opened it until
// it is closed, across reconnections that resume it. Its methods are safe for
// concurrent use.
type Peer struct {
	id     string
	e      *Engine
	codec  Codec
	ns     string
	req    Request
	ctx    context.Context
	cancel context.CancelFunc
	// hooks are the Open, Resume, Message and Close hooks of the peer: the
	// engine's, or its protocol's (PeerOptions).
	hooks      *Hooks
	ephemeral  bool
	helloFirst bool
	intercept  func([]byte) bool

	// in serialises the Open, Resume and Message hooks.
	in sync.Mutex

	mu        sync.Mutex
	state     peerState
	log       frameLog
	mark      uint64  // the highest backend mark queued to the peer
	stream    *Stream // the stream being written, nil while detached
	graceGen  uint64
	grace     *time.Timer
	topics    map[string]struct{}
	uploads   []*upload
	resumes   int
	closeInfo CloseDetails
	drain     bool  // closing: write queued frames before the close frame
	final     bool  // closing: write a close frame and leave a tombstone
	moved     bool  // released: the session lives on elsewhere
	hold      *hold // publications held aside (Hold), or nil
}

// ID returns the peer's id, which its client uses to send messages and to
// resume its stream. Treat it as a secret: whoever knows it can send as the
// peer and take its stream over. Show other users something else.
func (p *Peer) ID() string { return p.id }

// String returns the id.
func (p *Peer) String() string { return p.id }

// Request returns a copy of the request that opened the peer's first stream.
func (p *Peer) Request() Request { return p.req }

// Context returns the peer's context: it carries the values set in the
// Upgrade hook (see Key) and is cancelled when the peer closes.
func (p *Peer) Context() context.Context { return p.ctx }

// NodeID returns the backend's id for the node (instance) holding the peer.
func (p *Peer) NodeID() string { return p.e.NodeID() }

// Namespace returns the peer's namespace (by default the request path).
func (p *Peer) Namespace() string { return p.ns }

// Resumes returns how many times a client reconnected and resumed this peer.
func (p *Peer) Resumes() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.resumes
}

// Connected reports whether the peer has a stream right now (false while it
// waits for its client to resume, and after it closed).
func (p *Peer) Connected() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stream != nil && p.state == stateOpen
}

// Closed reports whether the peer is closed or closing.
func (p *Peer) Closed() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.state != stateOpen
}

// Send queues a message for the peer. See SendText, SendBytes and SendJSON
// for what each type becomes: strings and json.RawMessage are sent as they
// are, []byte as a base64 data URL (binary cannot travel in SSE), nil as the
// empty string, anything else as JSON. While the peer waits for its client to
// resume, messages are kept and delivered if it resumes on this node; if it
// resumes on another node they are lost (Send is at most once across nodes;
// see package handler). Send returns ErrClosed
// on a closed peer, ErrTooLarge for a message larger than the whole queue,
// and ErrSlowConsumer (closing the peer) when the peer's queue is full.
func (p *Peer) Send(v any) error {
	text, err := payloadText(v)
	if err != nil {
		return fmt.Errorf("ssebridge: send: %w", err)
	}
	return p.sendText(text)
}

// SendText queues a text message.
func (p *Peer) SendText(s string) error { return p.sendText(stringBytes(s)) }

// SendBytes queues binary data, sent as the text
// "data:application/octet-stream;base64,…" as crossws does.
func (p *Peer) SendBytes(b []byte) error { return p.sendText(binaryText(b)) }

// SendJSON queues the JSON encoding of v.
func (p *Peer) SendJSON(v any) error {
	text, err := marshalJSON(v)
	if err != nil {
		return fmt.Errorf("ssebridge: send: %w", err)
	}
	return p.sendText(text)
}

func (p *Peer) sendText(text []byte) error {
	return p.push(encodeFrame(func(dst []byte) []byte { return p.codec.AppendSend(dst, text) }), 0)
}

// Publish sends v (converted as Send does) to every subscriber of topic in the
// peer's namespace, on every node, except this peer. The peer need not be
// subscribed itself.
func (p *Peer) Publish(topic string, v any) error {
	return p.e.publish(topic, p.ns, p.id, v)
}

// Subscribe subscribes the peer to topic. Subscribing twice is a no-op.
func (p *Peer) Subscribe(topic string) error {
	if err := checkTopic(topic); err != nil {
		return err
	}
	return p.e.subscribe(p, topic)
}

// Unsubscribe removes the peer's subscription to topic, if any.
func (p *Peer) Unsubscribe(topic string) error {
	return p.e.unsubscribe(p, topic)
}

// Topics returns the peer's topics, sorted.
func (p *Peer) Topics() []string {
	p.mu.Lock()
	out := make([]string, 0, len(p.topics))
	for t := range p.topics {
		out = append(out, t)
	}
	p.mu.Unlock()
	slices.Sort(out)
	return out
}

// Peers yields the open peers of this node in the same namespace, this one
// included.
func (p *Peer) Peers() iter.Seq[*Peer] {
	return func(yield func(*Peer) bool) {
		for q := range p.e.Peers() {
			if q.ns == p.ns && !yield(q) {
				return
			}
		}
	}
}

// Close closes the peer: frames already queued are written, then a close
// event carrying code and reason, then the stream ends and the client is told
// not to reconnect. The Close hook runs once everything is written (or the
// stream is found dead). Closing a closed peer does nothing.
func (p *Peer) Close(code int, reason string) error {
	p.closeWith(CloseDetails{Code: code, Reason: reason}, true, true)
	return nil
}

// closeWith starts closing the peer. With a stream attached, its writer
// finishes the close (writes what drain and final ask for, then finalizes);
// without one, the peer is finalized here.
func (p *Peer) closeWith(d CloseDetails, drain, final bool) {
	p.mu.Lock()
	if p.state != stateOpen {
		p.mu.Unlock()
		return
	}
	st := p.beginCloseLocked(d, drain, final)
	p.mu.Unlock()
	if st == nil {
		p.finalize()
	}
}

// beginCloseLocked marks the peer closing and wakes its writer, which it
// returns (nil when detached: then the caller must finalize).
func (p *Peer) beginCloseLocked(d CloseDetails, drain, final bool) *Stream {
	p.state = stateClosing
	p.closeInfo, p.drain, p.final = d, drain, final
	p.cancelGraceLocked()
	if p.stream != nil {
		p.stream.signal()
	}
	return p.stream
}

// push appends a frame to the log and wakes the writer. mark is the
// publication's backend mark (0 for other frames); the frame carries the
// highest mark queued to the peer so far. It may be called from a backend's
// Broadcast, so it never calls the backend or a hook on its own goroutine.
func (p *Peer) push(frame []byte, mark uint64) error {
	if err := p.lockToPush(frame); err != nil {
		return err
	}
	return p.appendLocked(frame, mark)
}

// lockToPush refuses a frame larger than any queue (ErrTooLarge) and a
// closed peer (ErrClosed); otherwise it returns with p.mu held.
func (p *Peer) lockToPush(frame []byte) error {
	if cost(frame) > p.e.cfg.QueueSize {
		return fmt.Errorf("%w: %d bytes, queue %d", ErrTooLarge, len(frame), p.e.cfg.QueueSize)
	}
	p.mu.Lock()
	if p.state != stateOpen {
		p.mu.Unlock()
		return ErrClosed
	}
	return nil
}

// appendLocked appends a frame to the log (p.mu is held, and released).
func (p *Peer) appendLocked(frame []byte, mark uint64) error {
	p.mark = max(p.mark, mark)
	idle := p.log.cursor == p.log.next // the writer may be asleep
	if _, ok := p.log.push(frame, p.mark, p.e.cfg.QueueSize); !ok {
		return p.overflowLocked()
	}
	st := p.stream
	p.mu.Unlock()
	// A writer with frames pending takes new ones before it sleeps: only
	// the first frame after an empty queue needs to wake it.
	if st != nil && idle {
		st.signal()
	}
	return nil
}

// overflowLocked closes the peer as a slow consumer (p.mu is held, and
// released).
func (p *Peer) overflowLocked() error {
	st := p.beginCloseLocked(CloseDetails{
		Code:   CloseSlowConsumer,
		Reason: fmt.Sprintf("slow consumer: more than %d bytes queued", p.e.cfg.QueueSize),
	}, false, true)
	p.mu.Unlock()
	if st == nil {
		go p.finalize()
	}
	return ErrSlowConsumer
}

// finalize closes the peer for good: it releases the log, stops the stream
// and uploads, leaves the topics and the backend, and runs the Close hook.
func (p *Peer) finalize() {
	p.mu.Lock()
	if p.state == stateClosed {
		p.mu.Unlock()
		return
	}
	if p.state == stateOpen { // finalize without a close request: lost
		p.closeInfo = CloseDetails{Code: CloseAbnormal, Reason: "connection lost"}
	}
	p.state = stateClosed
	// Counted until the backend forgot the session and the hook ran:
	// Shutdown waits for it before it detaches from the backend.
	p.e.finalizing.Add(1)
	defer p.e.finalizing.Add(-1)
	d, final, released := p.closeInfo, p.final, p.moved
	p.log.release()
	p.cancelGraceLocked()
	st, uploads, topics := p.stream, p.uploads, p.topics
	p.stream, p.uploads, p.topics = nil, nil, nil
	p.mu.Unlock()

	if st != nil {
		st.halt()
	}
	for _, u := range uploads {
		u.abort()
	}
	p.cancel()
	moved := p.e.forget(p, d, final && !released && !p.ephemeral, released)
	p.e.leaveAll(p, topics)
	if h := p.hooks.Close; h != nil && !moved {
		p.runHook("Close", func() { h(p, d) })
	}
}

// handoff ends the peer's stream after its queued frames, without a close
// event, and then releases it (see release).
func (p *Peer) handoff() {
	p.mu.Lock()
	if p.state != stateOpen {
		p.mu.Unlock()
		return
	}
	p.moved = true
	st := p.beginCloseLocked(CloseDetails{Code: CloseGoingAway, Reason: "server shutting down"}, true, false)
	p.mu.Unlock()
	if st == nil {
		p.finalize()
	}
}

// release drops a peer that lives on elsewhere: another node claimed its
// session, or this node is shutting down and leaves its sessions for others
// to resume. The peer is finalized without a close event, tombstone or
// Close hook, and its session record is left alone.
func (p *Peer) release(reason string) {
	p.mu.Lock()
	if p.state == stateClosed {
		p.mu.Unlock()
		return
	}
	p.moved = true
	if p.state == stateOpen {
		p.state = stateClosing
		p.closeInfo = CloseDetails{Code: CloseGoingAway, Reason: reason}
		p.drain, p.final = false, false
	}
	p.mu.Unlock()
	p.finalize()
}

// detach is called by the writer of st when its stream ended without a
// close: the peer waits for its client to resume, for the grace period.
func (p *Peer) detach(st *Stream) {
	p.mu.Lock()
	if p.stream != st {
		p.mu.Unlock()
		return
	}
	p.stream = nil
	if p.state == stateClosing {
		p.mu.Unlock()
		p.finalize()
		return
	}
	grace := p.e.cfg.ReconnectGrace
	if grace < 0 || p.ephemeral {
		p.mu.Unlock()
		p.finalize()
		return
	}
	p.graceGen++
	gen := p.graceGen
	p.grace = time.AfterFunc(grace, func() { p.expire(gen) })
	p.mu.Unlock()
}

// cancelGraceLocked stops the grace timer; the generation bump makes a timer
// that already fired do nothing.
func (p *Peer) cancelGraceLocked() {
	p.graceGen++
	if p.grace != nil {
		p.grace.Stop()
	}
}

// expire closes a peer whose client did not resume within the grace period.
func (p *Peer) expire(gen uint64) {
	p.mu.Lock()
	stale := p.graceGen != gen || p.stream != nil || p.state != stateOpen
	p.mu.Unlock()
	if !stale {
		p.finalize()
	}
}

// runHook calls fn, turning a panic into a *PanicError for the Error hook.
// It reports whether fn returned normally.
func (p *Peer) runHook(name string, fn func()) (ok bool) {
	defer func() {
		if v := recover(); v != nil {
			p.e.ReportError(p, &PanicError{Hook: name, Value: v, Stack: debug.Stack()})
			ok = false
		}
	}()
	fn()
	return true
}

// Receive runs the Message hook for an upstream message, after any hook of
// the peer still running. It returns ErrClosed for a closed peer.
func (p *Peer) Receive(data []byte) error {
	p.in.Lock()
	defer p.in.Unlock()
	if p.Closed() {
		return ErrClosed
	}
	h := p.hooks.Message
	if h == nil {
		return nil
	}
	if !p.runHook("Message", func() { h(p, Message{data: data}) }) {
		return ErrHookPanicked
	}
	return nil
}

// upload is a streamed upstream request of a peer, which the peer aborts
// when it closes. Once released (its request finished), it no longer
// touches the exchange, which the adapter may reuse.
type upload struct {
	mu       sync.Mutex
	x        Exchange
	released bool
}

func (u *upload) abort() {
	u.mu.Lock()
	defer u.mu.Unlock()
	if !u.released {
		_ = u.x.SetReadDeadline(time.Unix(1, 0))
	}
}

func (u *upload) release() {
	u.mu.Lock()
	u.released = true
	u.mu.Unlock()
}

// TrackUpload registers a long-running upstream request so that it is
// aborted when the peer closes; at most max are kept, and the oldest is
// aborted when one more arrives (its client has most likely moved on to a
// newer one). The returned func unregisters it. It returns ErrClosed for a
// closed peer.
func (p *Peer) TrackUpload(x Exchange, max int) (func(), error) {
	u := &upload{x: x}
	p.mu.Lock()
	if p.state == stateClosed {
		p.mu.Unlock()
		return nil, ErrClosed
	}
	var evicted *upload
	if max > 0 && len(p.uploads) >= max {
		evicted = p.uploads[0]
		p.uploads = slices.Delete(p.uploads, 0, 1)
	}
	p.uploads = append(p.uploads, u)
	p.mu.Unlock()
	if evicted != nil {
		evicted.abort()
	}
	return func() {
		u.release()
		p.mu.Lock()
		p.uploads = slices.DeleteFunc(p.uploads, func(v *upload) bool { return v == u })
		p.mu.Unlock()
	}, nil
}
