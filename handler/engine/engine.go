package engine

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ssebridge/ssebridge/backends"
	"github.com/ssebridge/ssebridge/backends/memory"
)

// Engine owns the peers of one node and connects them to the backend.
type Engine struct {
	cfg  Config
	log  *slog.Logger
	node backends.Node

	noDeadline sync.Once // warn once that write deadlines are not supported

	mu       sync.RWMutex
	peers    map[string]*Peer
	tombs    map[string]tomb
	tombFIFO []string // ids in the order they were added, oldest first
	// released holds ids of sessions another node claimed while this node
	// had no peer for them (a takeover of them may be under way here).
	released map[string]struct{}
	closing  bool
	// finalizing counts peers being finalized (removed from peers, not yet
	// from the backend) and Open hooks running beside their streams
	// (PeerOptions.HelloFirst): Shutdown waits for both before it detaches
	// from the backend.
	finalizing atomic.Int64

	// subMu serialises changes of the node's backend subscriptions; it is
	// never taken by Broadcast, which a backend may call with its own locks
	// held.
	subMu    sync.Mutex
	topicsMu sync.RWMutex
	topics   map[string]*topicSubs
}

// tomb remembers, for a while, that the server closed a peer, so that its
// client's automatic reconnection is told so instead of silently getting a
// new peer.
type tomb struct {
	d       CloseDetails
	expires time.Time
}

const maxTombs = 1 << 16

// New starts an engine and attaches it to the configured backend.
func New(cfg Config) (*Engine, error) {
	cfg = cfg.withDefaults()
	e := &Engine{
		cfg:      cfg,
		log:      cfg.Logger,
		peers:    make(map[string]*Peer),
		tombs:    make(map[string]tomb),
		released: make(map[string]struct{}),
		topics:   make(map[string]*topicSubs),
	}
	b := cfg.Backend
	if b == nil {
		b = memory.New()
	}
	node, err := b.Attach(context.Background(), e)
	if err != nil {
		return nil, fmt.Errorf("ssebridge: attach backend: %w", err)
	}
	e.node = node
	return e, nil
}

// Config returns the configuration in effect, defaults applied.
func (e *Engine) Config() Config { return e.cfg }

// NodeID returns the backend's id for this node.
func (e *Engine) NodeID() string { return e.node.ID() }

// Node returns the engine's handle on its backend. Protocols use it for
// the optional features a backend may implement (backends.Presence,
// backends.History), found with a type assertion.
func (e *Engine) Node() backends.Node { return e.node }

// Logger returns the engine's logger.
func (e *Engine) Logger() *slog.Logger { return e.log }

// Open creates a peer for a stream request whose Upgrade hook accepted it,
// registers it with the backend and attaches x as its stream. The protocol
// then sets headers and calls Stream.Run.
func (e *Engine) Open(ctx context.Context, x Exchange, u *Upgrade, c Codec) (*Stream, error) {
	return e.OpenWith(ctx, x, u, c, PeerOptions{})
}

// PeerOptions adapt a peer to a protocol whose sessions work differently
// from the native one.
type PeerOptions struct {
	// Hooks, when not nil, replace the engine's Open, Resume, Message and
	// Close hooks for the peer: the protocol runs its own, and calls the
	// application's as its API says. (Upgrade and Error stay the engine's.)
	Hooks *Hooks
	// Ephemeral peers live as long as their stream: they are never resumed
	// (no grace period after the stream ends, no takeover elsewhere: their
	// ids, see ValidEphemeralID, are not the native protocol's) and
	// Shutdown closes them with CloseGoingAway and their close frame
	// instead of handing them off. Centrifugo's clients reconnect with a
	// new connection and recover their channels themselves.
	Ephemeral bool
	// Intercept, when not nil, sees every upstream message of the peer
	// first, without waiting for the peer's hooks: when it returns true
	// the message was handled and the Message hook does not run for it.
	// A protocol answers its keep-alives there (Centrifugo's pongs), which
	// must not wait behind a slow command. It must return quickly.
	Intercept func(data []byte) bool
	// HelloFirst sends the stream's status, headers and hello at once and
	// runs the Open hook on a goroutine of its own, while the stream
	// already writes what the hook queues (Centrifugo's connect reply
	// must not wait for the hook's slower work). Without it the hook runs
	// before the response starts.
	HelloFirst bool
}

// OpenWith is Open for a peer with options.
func (e *Engine) OpenWith(ctx context.Context, x Exchange, u *Upgrade, c Codec, o PeerOptions) (*Stream, error) {
	ns := u.Namespace
	if ns == "" {
		ns = "/" // "" means every namespace to the backend
	}
	id := NewID()
	if o.Ephemeral {
		id = newEphemeralID()
	}
	p := e.newPeer(id, u, x, c, ns, 1)
	if o.Hooks != nil {
		p.hooks = o.Hooks
	}
	p.ephemeral, p.intercept, p.helloFirst = o.Ephemeral, o.Intercept, o.HelloFirst
	if err := e.add(p); err != nil {
		return nil, err
	}
	if err := e.node.RegisterSession(ctx, p.id, backends.SessionInfo{Namespace: ns}); err != nil {
		e.mu.Lock()
		delete(e.peers, p.id)
		e.mu.Unlock()
		p.cancel()
		return nil, fmt.Errorf("ssebridge: register session: %w", err)
	}
	st := newStream(p, x)
	p.stream = st
	return st, nil
}

// newPeer builds a peer whose first frame will have seq next.
func (e *Engine) newPeer(id string, u *Upgrade, x Exchange, c Codec, ns string, next uint64) *Peer {
	pctx, cancel := context.WithCancel(context.WithoutCancel(u.ctx))
	p := &Peer{
		id:     id,
		e:      e,
		codec:  c,
		ns:     ns,
		ctx:    pctx,
		cancel: cancel,
		hooks:  &e.cfg.Hooks,
		log:    newFrameLog(next),
	}
	p.req = NewRequest(takeSnapshot(x, pctx))
	return p
}

// add makes p one of the node's peers, unless the node is shutting down or
// full, or already has a peer with p's id.
func (e *Engine) add(p *Peer) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	switch {
	case e.closing:
		p.cancel()
		return ErrShuttingDown
	case e.cfg.MaxPeers > 0 && len(e.peers) >= e.cfg.MaxPeers:
		p.cancel()
		return fmt.Errorf("%w: %d", ErrTooManyPeers, e.cfg.MaxPeers)
	case e.peers[p.id] != nil:
		p.cancel()
		return fmt.Errorf("ssebridge: peer %s is already here", p.id)
	}
	e.peers[p.id] = p
	return nil
}

// ErrResumeGap means the frames a resuming client missed are no longer all
// kept, so the peer cannot be resumed without loss.
var ErrResumeGap = errors.New("ssebridge: missed frames no longer kept")

// ResumeState says whether a peer can be resumed from a given position.
type ResumeState int

const (
	// ResumeOK: every frame after the position is still kept.
	ResumeOK ResumeState = iota
	// ResumeGap: some frames after the position were already dropped; the
	// peer cannot be resumed without loss.
	ResumeGap
	// ResumeInvalid: the peer is closed, or the position is one the peer
	// never reached (not a position its client can have).
	ResumeInvalid
)

// CheckResume says whether a client that received every frame up to and
// including seq last can resume p.
func (p *Peer) CheckResume(last uint64) ResumeState {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case p.state != stateOpen || last >= p.log.next || p.ephemeral:
		return ResumeInvalid
	case !p.log.canRewind(last):
		return ResumeGap
	}
	return ResumeOK
}

// Resume takes peer p over for a client that reconnected having received
// every frame up to and including the one at c: the peer's current stream,
// if any, is stopped, and x becomes its stream, starting with the frames
// after c.Seq. It returns ErrClosed or ErrResumeGap when that is not
// possible.
func (e *Engine) Resume(p *Peer, x Exchange, c backends.Cursor) (*Stream, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.state != stateOpen || p.ephemeral {
		return nil, ErrClosed
	}
	if !p.log.canRewind(c.Seq) {
		return nil, ErrResumeGap
	}
	if old := p.stream; old != nil {
		old.halt()
	}
	p.cancelGraceLocked()
	p.log.rewind(c.Seq)
	st := newStream(p, x)
	st.resumed, st.last = true, c
	p.stream = st
	p.resumes++
	return st, nil
}

// Takeover resumes, on this node, a peer that another node owned (or that
// this node no longer holds): it claims the session from the backend,
// rebuilds the peer (same id, namespace and topics; its context carries the
// values the resume request's Upgrade hook set), queues the publications the
// client missed on each topic, then the live ones, and attaches x as its
// stream. Messages sent with Peer.Send on the old node that the client did
// not receive are not carried over.
//
// Errors: backends.ErrUnknownSession (nothing to resume), ErrResumeGap (the
// history no longer holds what the client missed; a session already
// claimed is closed), ErrShuttingDown, ErrTooManyPeers, or another error
// (for example backends.ErrUnavailable): the session, if claimed, stays in
// the backend and the client should retry.
func (e *Engine) Takeover(ctx context.Context, x Exchange, u *Upgrade, c Codec, id string, cur backends.Cursor) (*Stream, error) {
	if e.ShuttingDown() {
		return nil, ErrShuttingDown
	}
	if !ValidID(id) { // an ephemeral peer's (or no peer's) id
		return nil, fmt.Errorf("ssebridge: takeover of %q: %w", id, backends.ErrUnknownSession)
	}
	e.mu.Lock()
	delete(e.released, id) // releases from before this claim are stale
	e.mu.Unlock()
	s, err := e.node.Claim(ctx, id, cur)
	if errors.Is(err, backends.ErrGap) {
		return nil, fmt.Errorf("%w: %w", ErrResumeGap, err)
	}
	if err != nil {
		return nil, fmt.Errorf("ssebridge: claim session: %w", err)
	}
	p := e.newPeer(id, u, x, c, s.Namespace, cur.Seq+1)
	if err := e.add(p); err != nil {
		if !errors.Is(err, ErrShuttingDown) { // shutting down: others resume it
			e.abandon(p)
		}
		return nil, err
	}
	if e.takeReleased(id) {
		// Another node claimed the session before p was here to be
		// released: it is that node's now.
		p.release("session claimed by another node")
		return nil, fmt.Errorf("ssebridge: takeover of %s: %w", id, backends.ErrMoved)
	}
	if err := e.rejoin(ctx, p, s.Topics); err != nil {
		// A gap, or more missed than the queue holds: not without loss.
		if errors.Is(err, backends.ErrGap) || errors.Is(err, ErrSlowConsumer) {
			p.Expire("resume failed: " + err.Error())
			return nil, fmt.Errorf("%w: %w", ErrResumeGap, err)
		}
		// The session stays claimed by this node in the backend: the
		// client's retry claims it again, from the same place.
		p.release("takeover failed")
		e.abandon(p)
		return nil, err
	}
	st := newStream(p, x)
	st.resumed, st.last = true, cur
	p.mu.Lock()
	if p.state != stateOpen {
		p.mu.Unlock()
		return nil, ErrClosed
	}
	p.stream = st
	p.resumes++
	p.mu.Unlock()
	return st, nil
}

// abandon ends, after ReconnectGrace, a session this node claimed but
// holds no peer for (its takeover failed), unless its client resumed it
// meanwhile, here or on another node: the record is removed and the Close
// hook runs with CloseAbnormal, as for any client that does not come back.
func (e *Engine) abandon(p *Peer) {
	time.AfterFunc(max(e.cfg.ReconnectGrace, 0), func() {
		if _, ok := e.Peer(p.id); ok {
			return // resumed here
		}
		err := e.node.RemoveSession(context.Background(), p.id)
		switch {
		case errors.Is(err, backends.ErrMoved):
			return // resumed on another node
		case err != nil:
			e.ReportError(p, fmt.Errorf("ssebridge: remove session after a failed takeover: %w", err))
			return
		}
		if h := p.hooks.Close; h != nil {
			d := CloseDetails{Code: CloseAbnormal, Reason: "resume failed and the client did not come back"}
			p.runHook("Close", func() { h(p, d) })
		}
	})
}

// takeReleased reports, and forgets, whether a release for id arrived while
// this node had no peer with that id.
func (e *Engine) takeReleased(id string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	_, ok := e.released[id]
	delete(e.released, id)
	return ok
}

// Peer returns the open peer with the given id on this node.
func (e *Engine) Peer(id string) (*Peer, bool) {
	e.mu.RLock()
	p, ok := e.peers[id]
	e.mu.RUnlock()
	return p, ok
}

// Tombstone returns how a peer that the server closed recently was closed.
func (e *Engine) Tombstone(id string) (CloseDetails, bool) {
	e.mu.RLock()
	t, ok := e.tombs[id]
	e.mu.RUnlock()
	if !ok || time.Now().After(t.expires) {
		return CloseDetails{}, false
	}
	return t.d, true
}

// Peers yields the open peers of this node (not those being closed).
func (e *Engine) Peers() iter.Seq[*Peer] {
	return func(yield func(*Peer) bool) {
		e.mu.RLock()
		list := make([]*Peer, 0, len(e.peers))
		for _, p := range e.peers {
			list = append(list, p)
		}
		e.mu.RUnlock()
		for _, p := range list {
			if p.Closed() {
				continue
			}
			if !yield(p) {
				return
			}
		}
	}
}

// forget removes a finalized peer from the node and, unless keep, from the
// backend, leaving a tombstone when the server closed it. It reports
// whether the session lives on elsewhere (released, or claimed by another
// node meanwhile).
func (e *Engine) forget(p *Peer, d CloseDetails, tombstone, keep bool) (moved bool) {
	e.mu.Lock()
	if e.peers[p.id] == p {
		delete(e.peers, p.id)
	}
	if tombstone {
		e.addTombLocked(p.id, d)
	}
	e.mu.Unlock()
	if keep {
		return true
	}
	err := e.node.RemoveSession(context.Background(), p.id)
	if errors.Is(err, backends.ErrMoved) {
		return true
	}
	if err != nil {
		e.ReportError(p, fmt.Errorf("ssebridge: remove session: %w", err))
	}
	return false
}

func (e *Engine) addTombLocked(id string, d CloseDetails) {
	now := time.Now()
	for len(e.tombFIFO) > 0 && (now.After(e.tombs[e.tombFIFO[0]].expires) || len(e.tombFIFO) >= maxTombs) {
		delete(e.tombs, e.tombFIFO[0])
		e.tombFIFO = e.tombFIFO[1:]
	}
	ttl := max(e.cfg.ReconnectGrace, time.Minute)
	e.tombs[id] = tomb{d: d, expires: now.Add(ttl)}
	e.tombFIFO = append(e.tombFIFO, id)
}

// Upstream hands an upstream message to the peer id, here or, through the
// backend, on the node that owns it. Errors wrap backends.ErrUnknownSession
// when no node has the peer.
//
// A local peer whose stream is gone may have been taken over by another
// node whose release notice has not arrived yet: with a backend whose
// sessions outlive the node, its ownership is checked first (one backend
// round trip, only for peers without a stream), so that the message goes
// to the node that holds the client now. This happens when a node could
// not read its notices for a while: an AWS Lambda execution environment
// frozen between invocations.
func (e *Engine) Upstream(ctx context.Context, id string, data []byte) error {
	if p, ok := e.Peer(id); ok {
		if p.Connected() || !e.KeepsSessions() || e.Owns(ctx, p) {
			return p.deliver(data)
		}
	}
	return e.node.Route(ctx, id, data)
}

// UpstreamVia is Upstream for a client that names the node holding its
// peer: when the peer is not here and the backend can route to a named
// node (backends.DirectRouter), the message goes straight to that node's
// inbox, without looking the owner up. A message for a peer the named node
// does not hold is forwarded or dropped there; ErrUnknownSession then only
// means that the named node is gone. Only ephemeral peers, which never
// move, should be reached this way.
func (e *Engine) UpstreamVia(ctx context.Context, node, id string, data []byte) error {
	if p, ok := e.Peer(id); ok {
		return p.deliver(data)
	}
	if r, ok := e.node.(backends.DirectRouter); ok && node != "" && node != e.node.ID() {
		return r.RouteTo(ctx, node, id, data)
	}
	return e.node.Route(ctx, id, data)
}

// Exists reports whether peer id is open here, or the backend holds its
// session (owned by another node, alive or not: a client may resume it).
func (e *Engine) Exists(ctx context.Context, id string) (bool, error) {
	if _, ok := e.Peer(id); ok {
		return true, nil
	}
	_, err := e.node.Owner(ctx, id)
	switch {
	case errors.Is(err, backends.ErrUnknownSession):
		return false, nil
	case err != nil:
		return false, err
	}
	return true, nil
}

// Owns reports whether this node still owns local peer p's session in the
// backend. When another node claimed it and the release has not reached
// this node yet, p is released now and Owns returns false. When the backend
// cannot tell (unreachable, or the record expired), p is kept.
func (e *Engine) Owns(ctx context.Context, p *Peer) bool {
	owner, err := e.node.Owner(ctx, p.id)
	if err != nil || owner == e.node.ID() {
		return true
	}
	p.release("session claimed by another node")
	return false
}

// Release implements backends.Receiver: another node claimed a session, so
// its peer here is dropped without ending it. A release for a peer this
// node does not hold (yet) is remembered briefly, for a takeover under way.
func (e *Engine) Release(session string) {
	e.mu.Lock()
	p, ok := e.peers[session]
	if !ok {
		if len(e.released) >= maxTombs {
			clear(e.released)
		}
		e.released[session] = struct{}{}
	}
	e.mu.Unlock()
	if ok {
		go p.release("session claimed by another node")
	}
}

// Error implements backends.Receiver.
func (e *Engine) Error(err error) { e.ReportError(nil, err) }

// Expire closes p as lost (CloseAbnormal, no close event, no tombstone), as
// when its client does not come back in time; reason says why.
func (p *Peer) Expire(reason string) {
	p.closeWith(CloseDetails{Code: CloseAbnormal, Reason: reason}, false, false)
}

// Deliver implements backends.Receiver.
func (e *Engine) Deliver(session string, data []byte) error {
	p, ok := e.Peer(session)
	if !ok {
		return fmt.Errorf("ssebridge: peer %s: %w", session, backends.ErrUnknownSession)
	}
	return p.deliver(data)
}

// deliver runs the Message hook for data; a closed peer is an unknown
// session to whoever sent it.
func (p *Peer) deliver(data []byte) error {
	if p.intercept != nil && p.intercept(data) {
		if p.Closed() {
			return fmt.Errorf("ssebridge: peer %s: %w", p.id, backends.ErrUnknownSession)
		}
		return nil
	}
	err := p.Receive(data)
	if errors.Is(err, ErrClosed) {
		return fmt.Errorf("ssebridge: peer %s: %w", p.id, backends.ErrUnknownSession)
	}
	return err
}

// Publish sends v, converted as Peer.Send converts it, to every subscriber of
// topic on every node, in every namespace.
func (e *Engine) Publish(topic string, v any) error {
	return e.publish(topic, "", "", v)
}

// PublishNamespace is Publish limited to the subscribers in one namespace.
func (e *Engine) PublishNamespace(namespace, topic string, v any) error {
	return e.publish(topic, namespace, "", v)
}

func (e *Engine) publish(topic, namespace, exclude string, v any) error {
	if err := checkTopic(topic); err != nil {
		return err
	}
	text, err := payloadText(v)
	if err != nil {
		return fmt.Errorf("ssebridge: publish: %w", err)
	}
	if cost(text) > e.cfg.QueueSize {
		// It could never be queued: refuse it rather than close every
		// subscriber as a slow consumer.
		return fmt.Errorf("ssebridge: publish to %q: %w: %d bytes, queue %d", topic, ErrTooLarge, len(text), e.cfg.QueueSize)
	}
	err = e.node.Publish(context.Background(), backends.Publication{
		Topic: topic, Namespace: namespace, Exclude: exclude, Data: text,
	})
	if err != nil {
		return fmt.Errorf("ssebridge: publish to %q: %w", topic, err)
	}
	return nil
}

// ReportError passes err to the Error hook and the log; protocols use it
// for problems that have no caller to return to.
func (e *Engine) ReportError(p *Peer, err error) {
	if h := e.cfg.Hooks.Error; h != nil {
		func() {
			defer func() {
				if v := recover(); v != nil {
					e.log.Error("ssebridge: Error hook panicked", "panic", v)
				}
			}()
			h(p, err)
		}()
	}
	attrs := []any{"err", err}
	if p != nil {
		attrs = append(attrs, "peer", p.id)
	}
	e.log.Error("ssebridge: error", attrs...)
}

// Shutdown stops accepting streams and ends every peer's stream: queued
// frames are written, then each stream ends without a close event, so
// clients reconnect (to another instance, behind a load balancer). With a
// backend whose sessions outlive the node (Redis), the peers are handed off:
// their sessions stay in the backend for the clients to resume elsewhere,
// and no Close hook runs here (a session whose client never comes back
// expires in the backend). Otherwise the peers close with CloseGoingAway.
// It waits until every stream has ended or ctx is done, then detaches from
// the backend.
func (e *Engine) Shutdown(ctx context.Context) error {
	e.mu.Lock()
	e.closing = true
	e.mu.Unlock()
	keep := e.KeepsSessions()
	for p := range e.Peers() {
		if keep && !p.ephemeral {
			p.handoff()
		} else {
			// An ephemeral peer's client is told why its stream ends.
			p.closeWith(CloseDetails{Code: CloseGoingAway, Reason: "server shutting down"}, true, p.ephemeral)
		}
	}
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	var err error
wait:
	for {
		e.mu.RLock()
		n := len(e.peers)
		e.mu.RUnlock()
		if n == 0 && e.finalizing.Load() == 0 {
			break
		}
		select {
		case <-ctx.Done():
			err = fmt.Errorf("ssebridge: shutdown: %d peers still closing: %w", n, ctx.Err())
			e.mu.RLock()
			left := make([]*Peer, 0, len(e.peers))
			for _, p := range e.peers {
				left = append(left, p) // closing ones too, unlike Peers
			}
			e.mu.RUnlock()
			for _, p := range left {
				p.finalize()
			}
			break wait
		case <-tick.C:
		}
	}
	if cerr := e.node.Close(); cerr != nil && err == nil {
		err = fmt.Errorf("ssebridge: shutdown: %w", cerr)
	}
	return err
}

// KeepsSessions reports whether the backend's session records outlive this
// node (see backends.SessionKeeper).
func (e *Engine) KeepsSessions() bool {
	k, ok := e.node.(backends.SessionKeeper)
	return ok && k.KeepsSessions()
}

// ShuttingDown reports whether Shutdown was called.
func (e *Engine) ShuttingDown() bool {
	e.mu.RLock()
	defer e.mu.RUnlock()
	return e.closing
}
