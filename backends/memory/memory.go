// Package memory is the default backend: all state in the memory of one
// process. Several Handlers in one process may share one Backend; they then
// behave like the nodes of a cluster (a POST to one reaches a session on
// another, a client may resume its session on another). Nothing survives the
// process.
//
// Positions are decimal publication counters per topic. Each topic keeps its
// last HistoryLength publications and each node its last MarkLogLength marks
// (see package backends for what they are for).
//
// Nodes implement backends.History (see history.go): each topic numbers its
// publications 1, 2, 3… in an epoch chosen when the backend starts keeping
// the topic (a node subscribes to it, or a session record names it); a
// topic forgotten and kept again later starts a new epoch.
//
// Import direction: memory → backends.
package memory

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ssebridge/ssebridge/backends"
)

// Defaults of Config.
const (
	DefaultHistoryLength = 1000
	DefaultMarkLogLength = 100_000
	DefaultHistoryTTL    = 5 * time.Minute
	DefaultMaxKept       = 10_000
)

// Config configures a Backend. Zero values mean the defaults.
type Config struct {
	// HistoryLength is how many publications each topic keeps for clients
	// that resume (default 1000).
	HistoryLength int
	// MarkLogLength is how many marks each node keeps (default 100 000).
	MarkLogLength int
	// HistoryTTL is how long a topic's history (and its epoch) is kept
	// once no node subscribes to it and no session record names it,
	// counted from then or from its last publication (default 5 min, as
	// the Redis backend's HistoryAge). A client whose stream dropped while
	// it was a topic's only subscriber can so recover what was published
	// meanwhile; publications to a topic nobody subscribes to are kept
	// too, for as long.
	HistoryTTL time.Duration
	// MaxKept bounds the topics kept that way, with no subscriber and no
	// session record (default 10 000): beyond it the oldest are
	// forgotten first, so that publications to ever new topics cannot
	// fill the memory.
	MaxKept int
}

// Backend keeps sessions, topics and their history in memory. The zero value
// is not usable; call New.
type Backend struct {
	cfg Config

	seq atomic.Uint64 // the last position given, across topics

	mu       sync.RWMutex
	nodes    map[string]*node
	sessions map[string]*session
	topics   map[string]*topic

	// kept lists, oldest first, the topics that were left without
	// subscriber and session record (or created so by a publication);
	// entries may be stale (the topic is used again, or gone). Guarded by
	// mu.
	kept []keptTopic

	pmu      sync.Mutex
	presence map[string]map[string]presenceEntry // channel → client → entry; see presence.go
}

// session is a session record.
type session struct {
	owner  *node
	info   backends.SessionInfo
	base   uint64
	topics map[string]uint64
}

// topic holds the nodes subscribed to one topic and its history, which is
// kept while some node subscribes or some session record names the topic
// (only then can a session resume with it).
// Its mutex is held while a publication is delivered so that every node sees
// one order per topic.
type topic struct {
	mu      sync.Mutex
	nodes   []*node
	refs    int                    // session records naming the topic; guarded by b.mu
	last    uint64                 // position of the last publication
	deleted uint64                 // highest position dropped from history
	history []backends.Publication // oldest first, Data owned; Offsets consecutive
	epoch   string                 // the epoch of the offsets (see history.go); immutable
	offset  uint64                 // offset of the last publication (0: none)
	touched time.Time              // when it was last published to or left unused
	expiry  bool                   // an expiry check is scheduled; guarded by b.mu
	dead    bool                   // forgotten (deleted from b.topics); set under b.mu and t.mu
}

// keptTopic is an entry of the queue of topics kept without users.
type keptTopic struct {
	name string
	t    *topic
}

// newTopic returns an empty topic with a new epoch.
func newTopic() *topic { return &topic{epoch: newEpoch()} }

// New returns an empty in-memory backend with the default configuration.
func New() *Backend { return NewWithConfig(Config{}) }

// NewWithConfig returns an empty in-memory backend.
func NewWithConfig(cfg Config) *Backend {
	if cfg.HistoryLength <= 0 {
		cfg.HistoryLength = DefaultHistoryLength
	}
	if cfg.MarkLogLength <= 0 {
		cfg.MarkLogLength = DefaultMarkLogLength
	}
	if cfg.HistoryTTL <= 0 {
		cfg.HistoryTTL = DefaultHistoryTTL
	}
	if cfg.MaxKept <= 0 {
		cfg.MaxKept = DefaultMaxKept
	}
	return &Backend{
		cfg:      cfg,
		nodes:    make(map[string]*node),
		sessions: make(map[string]*session),
		topics:   make(map[string]*topic),
		presence: make(map[string]map[string]presenceEntry),
	}
}

// Attach joins a node. It implements backends.Backend.
func (b *Backend) Attach(_ context.Context, r backends.Receiver) (backends.Node, error) {
	var raw [12]byte
	_, _ = rand.Read(raw[:])
	n := &node{b: b, id: base64.RawURLEncoding.EncodeToString(raw[:]), recv: r, cur: make(map[string]uint64)}
	b.mu.Lock()
	b.nodes[n.id] = n
	b.mu.Unlock()
	return n, nil
}

// Sessions reports how many sessions are registered, for tests and metrics.
func (b *Backend) Sessions() int {
	b.mu.RLock()
	defer b.mu.RUnlock()
	return len(b.sessions)
}

// Topics reports how many topics have at least one subscribed node.
func (b *Backend) Topics() int {
	b.mu.RLock()
	defer b.mu.RUnlock()
	n := 0
	for _, t := range b.topics {
		t.mu.Lock()
		if len(t.nodes) > 0 {
			n++
		}
		t.mu.Unlock()
	}
	return n
}

type node struct {
	b      *Backend
	id     string
	recv   backends.Receiver
	closed bool                // guarded by b.mu
	topics map[string]struct{} // guarded by b.mu

	// bcast serialises Broadcast calls and guards the marks.
	bcast   sync.Mutex
	mark    uint64            // the last mark given
	trimmed uint64            // the highest mark dropped from log
	log     []markEntry       // marks after trimmed, in order
	cur     map[string]uint64 // topic → position of the last broadcast
}

type markEntry struct {
	topic   string
	pos     uint64
	session string // the session a Join replayed it for; "" for a broadcast
}

func (n *node) ID() string { return n.id }

func pos(p uint64) backends.Position {
	if p == 0 {
		return ""
	}
	return backends.Position(strconv.FormatUint(p, 10))
}

func parsePos(p backends.Position) (uint64, error) {
	if p == "" {
		return 0, nil
	}
	v, err := strconv.ParseUint(string(p), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("memory: invalid position %q", p)
	}
	return v, nil
}

func (n *node) RegisterSession(_ context.Context, id string, info backends.SessionInfo) error {
	n.b.mu.Lock()
	defer n.b.mu.Unlock()
	if n.closed {
		return backends.ErrClosed
	}
	if s, ok := n.b.sessions[id]; ok {
		return fmt.Errorf("memory: session %q already exists (owner %s)", id, s.owner.id)
	}
	n.b.sessions[id] = &session{owner: n, info: info, topics: make(map[string]uint64)}
	return nil
}

// owned returns the record of a session n owns; b.mu is held.
func (n *node) ownedLocked(id string) (*session, error) {
	if n.closed {
		return nil, backends.ErrClosed
	}
	s, ok := n.b.sessions[id]
	switch {
	case !ok:
		return nil, fmt.Errorf("memory: session %q: %w", id, backends.ErrUnknownSession)
	case s.owner != n:
		return nil, fmt.Errorf("memory: session %q: %w", id, backends.ErrMoved)
	}
	return s, nil
}

func (n *node) RemoveSession(_ context.Context, id string) error {
	n.b.mu.Lock()
	defer n.b.mu.Unlock()
	s, ok := n.b.sessions[id]
	switch {
	case !ok:
		return nil
	case s.owner != n:
		return fmt.Errorf("memory: remove session %q: %w", id, backends.ErrMoved)
	}
	n.b.forgetLocked(id, s)
	return nil
}

func (n *node) Owner(_ context.Context, id string) (string, error) {
	n.b.mu.RLock()
	defer n.b.mu.RUnlock()
	if n.closed {
		return "", backends.ErrClosed
	}
	s, ok := n.b.sessions[id]
	if !ok {
		return "", fmt.Errorf("memory: session %q: %w", id, backends.ErrUnknownSession)
	}
	return s.owner.id, nil
}

func (n *node) Route(_ context.Context, id string, data []byte) error {
	n.b.mu.RLock()
	s, ok := n.b.sessions[id]
	closed := n.closed
	var owner *node
	if ok {
		owner = s.owner
	}
	n.b.mu.RUnlock()
	if closed {
		return backends.ErrClosed
	}
	if !ok {
		return fmt.Errorf("memory: route: %w", backends.ErrUnknownSession)
	}
	return owner.recv.Deliver(id, data)
}

func (n *node) Subscribe(_ context.Context, name string) (backends.Position, error) {
	n.b.mu.Lock()
	defer n.b.mu.Unlock()
	if n.closed {
		return "", backends.ErrClosed
	}
	if _, ok := n.topics[name]; ok {
		n.bcast.Lock()
		defer n.bcast.Unlock()
		return pos(n.cur[name]), nil
	}
	if n.topics == nil {
		n.topics = make(map[string]struct{})
	}
	n.topics[name] = struct{}{}
	t := n.b.topics[name]
	if t == nil {
		t = newTopic()
		n.b.topics[name] = t
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.nodes = append(t.nodes, n)
	start := t.last
	n.bcast.Lock() // under t.mu: no publication of the topic can move cur first
	n.cur[name] = start
	n.bcast.Unlock()
	return pos(start), nil
}

func (n *node) Unsubscribe(_ context.Context, name string) error {
	n.b.mu.Lock()
	defer n.b.mu.Unlock()
	n.unsubscribeLocked(name)
	return nil
}

func (n *node) unsubscribeLocked(name string) {
	if _, ok := n.topics[name]; !ok {
		return
	}
	delete(n.topics, name)
	t := n.b.topics[name]
	if t == nil {
		return
	}
	t.mu.Lock()
	t.nodes = slices.DeleteFunc(t.nodes, func(m *node) bool { return m == n })
	t.mu.Unlock()
	n.b.dropIfUnusedLocked(name, t)
}

// dropIfUnusedLocked forgets, HistoryTTL later, a topic no node subscribes
// and no session record names, unless it is used or published to
// meanwhile (its history and epoch are kept until then); b.mu is held.
func (b *Backend) dropIfUnusedLocked(name string, t *topic) {
	t.mu.Lock()
	unused := t.unusedLocked()
	if unused {
		t.touched = time.Now()
	}
	t.mu.Unlock()
	if !unused || b.topics[name] != t {
		return
	}
	b.keepLocked(name, t)
}

// keepLocked keeps an unused topic for HistoryTTL, forgetting the oldest
// kept ones beyond MaxKept; b.mu is held.
func (b *Backend) keepLocked(name string, t *topic) {
	b.kept = append(b.kept, keptTopic{name, t})
	for len(b.kept) > b.cfg.MaxKept {
		k := b.kept[0]
		b.kept[0] = keptTopic{}
		b.kept = b.kept[1:]
		if b.topics[k.name] == k.t {
			k.t.mu.Lock()
			unused := k.t.unusedLocked()
			k.t.mu.Unlock()
			if unused {
				b.forgetTopicLocked(k.name, k.t)
			}
		}
	}
	b.scheduleExpiryLocked(name, t, b.cfg.HistoryTTL)
}

// unusedLocked reports whether no node subscribes to t and no session
// record names it; b.mu and t.mu are held.
func (t *topic) unusedLocked() bool { return len(t.nodes) == 0 && t.refs == 0 }

// forgetTopicLocked deletes a topic; b.mu is held. A publication that
// found it before sees it dead and looks again.
func (b *Backend) forgetTopicLocked(name string, t *topic) {
	t.mu.Lock()
	t.dead = true
	t.mu.Unlock()
	delete(b.topics, name)
}

// scheduleExpiryLocked checks, after d, whether an unused topic's history
// has expired; b.mu is held.
func (b *Backend) scheduleExpiryLocked(name string, t *topic, d time.Duration) {
	if t.expiry {
		return
	}
	t.expiry = true
	time.AfterFunc(d, func() {
		b.mu.Lock()
		defer b.mu.Unlock()
		t.expiry = false
		if b.topics[name] != t {
			return
		}
		t.mu.Lock()
		unused := t.unusedLocked()
		left := b.cfg.HistoryTTL - time.Since(t.touched)
		t.mu.Unlock()
		switch {
		case !unused:
			// Used again; a later drop schedules a new check.
		case left > 0:
			b.scheduleExpiryLocked(name, t, left)
		default:
			b.forgetTopicLocked(name, t)
		}
	})
}

// refLocked counts one more (delta 1) or one less (-1) session record
// naming topic; b.mu is held.
func (b *Backend) refLocked(name string, delta int) {
	t := b.topics[name]
	if t == nil {
		if delta < 0 {
			return
		}
		t = newTopic()
		b.topics[name] = t
	}
	t.refs += delta
	if delta < 0 {
		b.dropIfUnusedLocked(name, t)
	}
}

// forgetLocked deletes a session record; b.mu is held.
func (b *Backend) forgetLocked(id string, s *session) {
	delete(b.sessions, id)
	for name := range s.topics {
		b.refLocked(name, -1)
	}
}

func (n *node) SetSessionTopic(_ context.Context, id, topic string, from backends.Position) error {
	p, err := parsePos(from)
	if err != nil {
		return err
	}
	n.b.mu.Lock()
	defer n.b.mu.Unlock()
	s, err := n.ownedLocked(id)
	if err != nil {
		return err
	}
	if _, ok := s.topics[topic]; !ok {
		n.b.refLocked(topic, 1)
	}
	s.topics[topic] = p
	return nil
}

func (n *node) RemoveSessionTopic(_ context.Context, id, topic string) error {
	n.b.mu.Lock()
	defer n.b.mu.Unlock()
	s, err := n.ownedLocked(id)
	if err != nil {
		return err
	}
	if _, ok := s.topics[topic]; ok {
		delete(s.topics, topic)
		n.b.refLocked(topic, -1)
	}
	return nil
}

func (n *node) Publish(_ context.Context, p backends.Publication) error {
	for {
		n.b.mu.RLock()
		t := n.b.topics[p.Topic]
		closed := n.closed
		n.b.mu.RUnlock()
		if closed {
			return backends.ErrClosed
		}
		if t == nil {
			if p.Transient {
				return nil // nobody to tell, nothing to keep
			}
			// No subscriber: the history starts here, kept for
			// HistoryTTL.
			n.b.mu.Lock()
			if t = n.b.topics[p.Topic]; t == nil {
				t = newTopic()
				t.touched = time.Now()
				n.b.topics[p.Topic] = t
				n.b.keepLocked(p.Topic, t)
			}
			n.b.mu.Unlock()
		}
		if n.publish(t, p) {
			return nil
		}
		// The topic was forgotten meanwhile: look again.
	}
}

// publish numbers p in t, keeps it and broadcasts it; false when t is
// dead.
func (n *node) publish(t *topic, p backends.Publication) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.dead {
		return false
	}
	if len(t.nodes) == 0 {
		t.touched = time.Now()
	}
	t.last = n.b.seq.Add(1)
	p.Position, p.Mark = pos(t.last), 0
	if !p.Transient {
		t.offset++
		p.Offset = t.offset
		kept := p
		kept.Data = slices.Clone(p.Data)
		t.history = append(t.history, kept)
		if over := len(t.history) - n.b.cfg.HistoryLength; over > 0 {
			t.deleted, _ = parsePos(t.history[over-1].Position)
			clear(t.history[:over])
			t.history = t.history[over:]
		}
	}
	for _, m := range t.nodes {
		m.broadcast(p, t.last)
	}
	return true
}

// broadcast gives p the node's next mark, logs it and hands it over.
func (n *node) broadcast(p backends.Publication, at uint64) {
	n.bcast.Lock()
	defer n.bcast.Unlock()
	n.logMarkLocked(markEntry{topic: p.Topic, pos: at})
	p.Mark = n.mark
	n.cur[p.Topic] = at
	n.recv.Broadcast(p)
}

// logMarkLocked gives e the next mark and logs it; n.bcast is held.
func (n *node) logMarkLocked(e markEntry) {
	n.mark++
	n.log = append(n.log, e)
	if over := len(n.log) - n.b.cfg.MarkLogLength; over > 0 {
		n.trimmed += uint64(over)
		clear(n.log[:over])
		n.log = n.log[over:]
	}
}

func (n *node) Replay(_ context.Context, name string, after, until backends.Position, fn func(backends.Publication)) error {
	a, err := parsePos(after)
	if err != nil {
		return err
	}
	u, err := parsePos(until)
	if err != nil {
		return err
	}
	n.b.mu.RLock()
	t := n.b.topics[name]
	n.b.mu.RUnlock()
	if t == nil || u <= a {
		return nil
	}
	t.mu.Lock()
	if a < t.deleted {
		t.mu.Unlock()
		return fmt.Errorf("memory: replay %q after %d: %w (history starts after %d)", name, a, backends.ErrGap, t.deleted)
	}
	var out []backends.Publication
	for _, p := range t.history {
		if v, _ := parsePos(p.Position); v > a && v <= u {
			out = append(out, p)
		}
	}
	t.mu.Unlock()
	for _, p := range out {
		fn(p)
	}
	return nil
}

func (n *node) Join(ctx context.Context, session string, topics map[string]backends.Position, replay func(backends.Publication), joined func(string, backends.Position)) error {
	names := slices.Sorted(maps.Keys(topics))
	after := make([]uint64, len(names))
	for i, name := range names {
		var err error
		if after[i], err = parsePos(topics[name]); err != nil {
			return err
		}
		if _, err := n.Subscribe(ctx, name); err != nil {
			return err
		}
	}
	ts := make([]*topic, len(names))
	n.b.mu.RLock()
	for i, name := range names {
		ts[i] = n.b.topics[name]
	}
	n.b.mu.RUnlock()
	for i, t := range ts {
		if t == nil {
			return fmt.Errorf("memory: join %q: unsubscribed meanwhile: %w", names[i], backends.ErrClosed)
		}
		t.mu.Lock() // in name order: no publication of these topics meanwhile
		defer t.mu.Unlock()
	}
	n.bcast.Lock() // and no Broadcast at all: marks stay in delivery order
	defer n.bcast.Unlock()
	for i, t := range ts {
		if last := n.cur[names[i]]; after[i] < last && after[i] < t.deleted {
			return fmt.Errorf("memory: join %q after %d: %w (history starts after %d)", names[i], after[i], backends.ErrGap, t.deleted)
		}
	}
	for i, t := range ts {
		last := n.cur[names[i]]
		for _, p := range t.history {
			v, _ := parsePos(p.Position)
			if v <= after[i] || v > last {
				continue
			}
			n.logMarkLocked(markEntry{topic: names[i], pos: v, session: session})
			p.Mark = n.mark
			replay(p)
		}
	}
	for _, name := range names {
		joined(name, pos(n.cur[name]))
	}
	return nil
}

func (n *node) Claim(_ context.Context, id string, c backends.Cursor) (backends.Session, error) {
	n.b.mu.Lock()
	if n.closed {
		n.b.mu.Unlock()
		return backends.Session{}, backends.ErrClosed
	}
	s, ok := n.b.sessions[id]
	if !ok {
		n.b.mu.Unlock()
		return backends.Session{}, fmt.Errorf("memory: claim %q: %w", id, backends.ErrUnknownSession)
	}
	if c.Seq < s.base {
		n.b.mu.Unlock()
		return backends.Session{}, fmt.Errorf("memory: claim %q at seq %d, record at %d: %w", id, c.Seq, s.base, backends.ErrGap)
	}
	old := s.owner
	if c.Seq > s.base && c.Mark > 0 {
		if err := old.advance(id, s.topics, c.Mark); err != nil {
			n.b.mu.Unlock()
			return backends.Session{}, fmt.Errorf("memory: claim %q: %w", id, err)
		}
	}
	s.owner, s.base = n, c.Seq
	out := backends.Session{SessionInfo: s.info, Topics: make(map[string]backends.Position, len(s.topics))}
	for t, p := range s.topics {
		out.Topics[t] = pos(p)
	}
	n.b.mu.Unlock()
	if old != n {
		old.recv.Release(id)
	}
	return out, nil
}

// advance moves each topic position of session's record to where a client
// that received everything up to mark is (see package backends).
func (n *node) advance(session string, topics map[string]uint64, mark uint64) error {
	n.bcast.Lock()
	defer n.bcast.Unlock()
	if mark < n.trimmed || mark > n.mark {
		return fmt.Errorf("marks after %d: %w (kept: %d to %d)", mark, backends.ErrGap, n.trimmed+1, n.mark)
	}
	first := make(map[string]uint64, len(topics))
	for _, e := range n.log[mark-n.trimmed:] {
		if _, ok := topics[e.topic]; !ok || e.session != "" && e.session != session {
			continue
		}
		if _, seen := first[e.topic]; !seen {
			first[e.topic] = e.pos
		}
	}
	for t, p := range topics {
		at := n.cur[t]
		if f, ok := first[t]; ok {
			at = f - 1
		}
		topics[t] = max(p, at)
	}
	return nil
}

func (n *node) Close() error {
	n.b.mu.Lock()
	defer n.b.mu.Unlock()
	if n.closed {
		return nil
	}
	n.closed = true
	for name := range n.topics {
		n.unsubscribeLocked(name)
	}
	for id, s := range n.b.sessions {
		if s.owner == n {
			n.b.forgetLocked(id, s)
		}
	}
	delete(n.b.nodes, n.id)
	return nil
}
