package redis

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/ssebridge/ssebridge/backends"
)

// closeTimeout bounds the Redis calls Close makes.
const closeTimeout = 5 * time.Second

// node is one attached node. See the package documentation.
type node struct {
	b    *Backend
	id   string
	recv backends.Receiver

	// keys in the node's slot
	alive, inbox, log, cur, top string

	ctx     context.Context // cancelled by Close
	cancel  context.CancelFunc
	closed  atomic.Bool
	readers sync.WaitGroup // the inbox reader and the bucket readers
	hbMu    sync.Mutex     // held by a heartbeat run; Close takes it before deleting alive
	hbDone  chan struct{}

	// The session mirror: what this node knows of the sessions it owns,
	// to refresh their records and re-create them if Redis loses them.
	smu       sync.Mutex
	sessions  map[string]*mirror
	pending   map[string]*pending // sessions being claimed or registered
	recoverMu sync.RWMutex        // Lock: re-creating records; RLock: forgetting a session and deleting its record

	// Topic subscriptions.
	subMu   sync.Mutex
	subs    map[string]*sub
	buckets map[int]*bucket

	// bcast is the broadcast lock (a semaphore so that Subscribe can give
	// up on its context). Held while marks are assigned, written and
	// broadcast; one per node, shared by all buckets.
	bcast      chan struct{}
	mark       uint64 // last mark assigned; guarded by bcast
	markStreak streak // guarded by bcast

	disp dispatcher

	// New epochs for the scripts that may start one (see newEpoch).
	epochPrefix string
	epochSeq    atomic.Uint64
}

// newEpoch returns an epoch no node ever used: the node's random prefix (8
// base64url characters of crypto/rand) and a counter, in base 36. The
// scripts that may start an epoch take one as a candidate and use it only
// if the topic has none, so every call takes a new one.
func (n *node) newEpoch() string {
	var buf [8 + 13]byte // the prefix, and 2^64-1 in base 36
	return string(strconv.AppendUint(append(buf[:0], n.epochPrefix...), n.epochSeq.Add(1), 36))
}

// pending tracks a claim or registration under way: a release notice that
// arrives before it mirrors the session is remembered here.
type pending struct {
	calls    int
	released int64 // highest record version of a release notice seen
}

// beginPending marks a claim or registration of session under way.
func (n *node) beginPending(session string) *pending {
	n.smu.Lock()
	defer n.smu.Unlock()
	p := n.pending[session]
	if p == nil {
		p = &pending{}
		n.pending[session] = p
	}
	p.calls++
	return p
}

func (n *node) endPending(session string, p *pending) {
	n.smu.Lock()
	defer n.smu.Unlock()
	if p.calls--; p.calls == 0 {
		delete(n.pending, session)
	}
}

// adopt mirrors a session record of version v that this node just wrote,
// unless a release notice of version v or later arrived meanwhile (the
// session was claimed away at once): it then reports false.
func (n *node) adopt(session string, p *pending, m *mirror) bool {
	n.smu.Lock()
	defer n.smu.Unlock()
	if p.released >= m.v {
		return false
	}
	if old := n.sessions[session]; old == nil || old.v < m.v {
		n.sessions[session] = m
	}
	return true
}

// mirror is the node's copy of one of its session records.
type mirror struct {
	ns     string
	base   uint64
	v      int64
	topics map[string]streamID
}

func newNode(b *Backend, r backends.Receiver) *node {
	var raw [16]byte
	_, _ = rand.Read(raw[:])
	id := base64.RawURLEncoding.EncodeToString(raw[:])
	var er [6]byte
	_, _ = rand.Read(er[:])
	ctx, cancel := context.WithCancel(context.Background())
	n := &node{
		b:        b,
		id:       id,
		recv:     r,
		alive:    b.nodeKey(id, "alive"),
		inbox:    b.nodeKey(id, "inbox"),
		log:      b.nodeKey(id, "log"),
		cur:      b.nodeKey(id, "cur"),
		top:      b.nodeKey(id, "top"),
		ctx:      ctx,
		cancel:   cancel,
		hbDone:   make(chan struct{}),
		sessions: make(map[string]*mirror),
		pending:  make(map[string]*pending),
		subs:     make(map[string]*sub),
		buckets:  make(map[int]*bucket),
		bcast:    make(chan struct{}, 1),

		epochPrefix: base64.RawURLEncoding.EncodeToString(er[:]),
	}
	n.markStreak = streak{n: n, what: "writing marks"}
	n.disp.init(n)
	return n
}

func (n *node) start() {
	n.readers.Add(1)
	go n.inboxLoop()
	go n.heartbeatLoop()
}

// ID returns the node id. It implements backends.Node.
func (n *node) ID() string { return n.id }

// KeepsSessions reports true: session records outlive the node, which
// implements backends.SessionKeeper.
func (n *node) KeepsSessions() bool { return true }

// report hands a background failure to the Receiver unless the node is
// closed.
func (n *node) report(err error) {
	if !n.closed.Load() {
		n.recv.Error(err)
	}
}

func (n *node) errClosed(op string) error {
	return fmt.Errorf("redis backend: %s: %w", op, backends.ErrClosed)
}

// short quotes an id for an error message without copying a hostile,
// huge one.
func short(s string) string {
	if len(s) > maxIDLen {
		return strconv.Quote(s[:maxIDLen]) + "…"
	}
	return strconv.Quote(s)
}

func errBadSession(op, id string) error {
	return fmt.Errorf("redis backend: %s: invalid session id %s: %w", op, short(id), backends.ErrUnknownSession)
}

// Close detaches the node: it stops the loops, deletes alive, inbox and
// the wake streams, and leaves the session records, the mark log, cur and top
// to expire, so that the sessions can be claimed elsewhere. Once Close
// returns the Receiver gets no new calls. The node is closed even if the
// keys could not be deleted (they expire); the error then wraps
// ErrUnavailable. It implements backends.Node.
func (n *node) Close() error {
	if !n.closed.CompareAndSwap(false, true) {
		return nil
	}
	n.subMu.Lock() // no reader starts after this
	wakes := make([]string, 0, len(n.buckets))
	for _, bk := range n.buckets {
		wakes = append(wakes, bk.wake)
	}
	n.subMu.Unlock()
	n.cancel()
	n.hbMu.Lock() // a heartbeat under way finishes before alive goes
	n.hbMu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), closeTimeout)
	defer cancel()
	err := n.dropKeys(ctx, wakes)
	// The readers wake up on the entries dropKeys added before deleting
	// the keys; wait for them a little, not for a Deliver under way.
	done := make(chan struct{})
	go func() {
		n.readers.Wait()
		close(done)
	}()
	t := time.NewTimer(n.b.cfg.BlockTimeout)
	select {
	case <-done:
	case <-t.C:
	}
	t.Stop()
	n.b.detach(n)
	return wrap("close", err)
}

// dropKeys deletes alive, inbox and the wake streams. It first adds an
// entry to the streams a reader may be blocked on, so that the read
// returns at once: to the inbox with NOMKSTREAM, to a wake stream with the
// wake script, which gives it a TTL, so that no key is left without one
// if the DEL that follows fails.
func (n *node) dropKeys(ctx context.Context, wakes []string) error {
	cmds, err := n.b.client.Pipelined(ctx, func(p goredis.Pipeliner) error {
		p.XAdd(ctx, &goredis.XAddArgs{Stream: n.inbox, NoMkStream: true, Values: []any{"t", "x"}})
		p.Del(ctx, n.alive, n.inbox)
		for _, w := range wakes {
			p.Eval(ctx, wakeSrc, []string{w}, ms(n.b.keyTTL()))
			p.Del(ctx, w)
		}
		return nil
	})
	if errors.Is(err, goredis.Nil) { // XADD NOMKSTREAM of a missing stream
		err = nil
		for _, c := range cmds {
			if e := c.Err(); e != nil && !errors.Is(e, goredis.Nil) {
				err = e
				break
			}
		}
	}
	return err
}

// RegisterSession creates the session's record, owned by this node. It
// fails if a record exists. It implements backends.Node.
func (n *node) RegisterSession(ctx context.Context, id string, info backends.SessionInfo) error {
	if n.closed.Load() {
		return n.errClosed("register session")
	}
	if !validID(id) {
		return errBadSession("register session", id)
	}
	p := n.beginPending(id)
	defer n.endPending(id, p)
	r, err := scriptRegister.Run(ctx, n.b.client, []string{n.b.sessionKey(id)},
		n.id, info.Namespace, ms(n.b.cfg.SessionTTL)).Int64()
	if err != nil {
		return wrap("register session "+id, err)
	}
	if r == 0 {
		return fmt.Errorf("redis backend: register session %s: a session with this id exists", id)
	}
	if !n.adopt(id, p, &mirror{ns: info.Namespace, v: 1, topics: map[string]streamID{}}) {
		return fmt.Errorf("redis backend: register session %s: claimed by another node at once: %w", id, backends.ErrMoved)
	}
	return nil
}

// RemoveSession deletes the session's record if this node owns it. An
// unknown session, or an invalid id, is not an error; a session another
// node owns is left alone and the error wraps ErrMoved. It implements
// backends.Node.
func (n *node) RemoveSession(ctx context.Context, id string) error {
	if !validID(id) {
		return nil
	}
	n.recoverMu.RLock()
	defer n.recoverMu.RUnlock()
	n.smu.Lock()
	delete(n.sessions, id)
	n.smu.Unlock()
	r, err := scriptRemove.Run(ctx, n.b.client, []string{n.b.sessionKey(id)}, n.id).Int64()
	if err != nil {
		return wrap("remove session "+id, err)
	}
	if r < 0 {
		return fmt.Errorf("redis backend: remove session %s: %w", id, backends.ErrMoved)
	}
	return nil
}

// Owner returns the id of the node the session record names as owner,
// whether that node is alive or not (Route refuses a dead one). It
// implements backends.Node.
func (n *node) Owner(ctx context.Context, id string) (string, error) {
	if !validID(id) {
		return "", errBadSession("owner", id)
	}
	return n.owner(ctx, id)
}

// owner reads the owner field of a session record. id must be valid.
func (n *node) owner(ctx context.Context, id string) (string, error) {
	owner, err := n.b.client.HGet(ctx, n.b.sessionKey(id), "o").Result()
	if errors.Is(err, goredis.Nil) {
		return "", fmt.Errorf("redis backend: session %s: %w", id, backends.ErrUnknownSession)
	}
	if err != nil {
		return "", wrap("owner of "+id, err)
	}
	if !validID(owner) {
		return "", fmt.Errorf("redis backend: session %s names an invalid owner %s: %w", id, short(owner), backends.ErrUnknownSession)
	}
	return owner, nil
}

// Route adds the message to the inbox of the session's owner. It
// implements backends.Node.
func (n *node) Route(ctx context.Context, session string, data []byte) error {
	if n.closed.Load() {
		return n.errClosed("route")
	}
	if !validID(session) {
		return errBadSession("route", session)
	}
	owner, err := n.owner(ctx, session)
	if err != nil {
		return err
	}
	return n.routeTo(ctx, owner, session, data)
}

// RouteTo adds a message for session to node's inbox, without looking the
// session's owner up. It implements backends.DirectRouter.
func (n *node) RouteTo(ctx context.Context, node, session string, data []byte) error {
	if n.closed.Load() {
		return n.errClosed("route")
	}
	return n.routeTo(ctx, node, session, data)
}

// routeTo adds a message for session to node's inbox. Both ids are checked
// before a key is built; an unknown or dead node gets nothing written and
// no key created.
func (n *node) routeTo(ctx context.Context, node, session string, data []byte) error {
	return n.send(ctx, node, "m", session, data, n.b.cfg.InboxLength)
}

// send adds an entry of the given type to node's inbox; limit 0 ignores
// InboxLength (release notices must get through).
func (n *node) send(ctx context.Context, node, kind, session string, data any, limit int) error {
	if !validID(session) {
		return errBadSession("route", session)
	}
	if !validID(node) {
		return fmt.Errorf("redis backend: route %s: invalid node id %s: %w", session, short(node), backends.ErrUnknownSession)
	}
	r, err := scriptRoute.Run(ctx, n.b.client,
		[]string{n.b.nodeKey(node, "alive"), n.b.nodeKey(node, "inbox")},
		limit, kind, session, data).Int64()
	switch {
	case err != nil:
		return wrap("route "+session, err)
	case r == 0:
		return fmt.Errorf("redis backend: route %s: node %s is gone: %w", session, node, backends.ErrUnknownSession)
	case r < 0:
		return fmt.Errorf("redis backend: route %s: the inbox of node %s is full: %w", session, node, backends.ErrUnavailable)
	}
	return nil
}

// SetSessionTopic records the topic in the session's record. It
// implements backends.Node.
func (n *node) SetSessionTopic(ctx context.Context, session, topic string, from backends.Position) error {
	pos, ok := parsePosition(from)
	if !ok {
		return fmt.Errorf("redis backend: set session topic: invalid position %s", short(string(from)))
	}
	return n.sessionTopic(ctx, "set session topic", session, topic, &pos)
}

// RemoveSessionTopic removes the topic from the session's record. It
// implements backends.Node.
func (n *node) RemoveSessionTopic(ctx context.Context, session, topic string) error {
	return n.sessionTopic(ctx, "remove session topic", session, topic, nil)
}

func (n *node) sessionTopic(ctx context.Context, op, session, topic string, pos *streamID) error {
	if n.closed.Load() {
		return n.errClosed(op)
	}
	if !validID(session) {
		return errBadSession(op, session)
	}
	if err := checkTopic(topic); err != nil {
		return err
	}
	args := []any{n.id, ms(n.b.cfg.SessionTTL), "t:" + topic}
	if pos != nil {
		args = append(args, pos.String())
	}
	v, err := scriptTopic.Run(ctx, n.b.client, []string{n.b.sessionKey(session)}, args...).Int64()
	if err != nil {
		return wrap(op+" "+session, err)
	}
	switch {
	case v == 0:
		return fmt.Errorf("redis backend: %s: session %s: %w", op, session, backends.ErrUnknownSession)
	case v < 0:
		n.forget(session, 0)
		return fmt.Errorf("redis backend: %s: session %s: %w", op, session, backends.ErrMoved)
	}
	n.smu.Lock()
	if m := n.sessions[session]; m != nil && m.v < v {
		m.v = v
		if pos != nil {
			m.topics[topic] = *pos
		} else {
			delete(m.topics, topic)
		}
	}
	n.smu.Unlock()
	return nil
}

// forget drops a session from the mirror unless the mirror's version is
// above v (the session was claimed back since); v 0 drops it anyway. It
// reports whether the session is no longer mirrored.
func (n *node) forget(session string, v int64) bool {
	gone, _ := n.drop(session, v)
	return gone
}

// drop is forget that also reports whether the session was mirrored.
func (n *node) drop(session string, v int64) (gone, dropped bool) {
	n.recoverMu.RLock()
	defer n.recoverMu.RUnlock()
	n.smu.Lock()
	defer n.smu.Unlock()
	p := n.pending[session]
	if p != nil && v > p.released {
		p.released = v
	}
	m := n.sessions[session]
	if m == nil && p != nil {
		// A claim of the session is under way here: adopt decides from
		// p.released whether the notice is newer than it; telling the
		// Receiver now would undo a claim that may stand.
		return false, false
	}
	if m != nil {
		if v > 0 && m.v > v {
			return false, false
		}
		delete(n.sessions, session)
		return true, true
	}
	return true, false
}

// mirrored returns the number of sessions the node mirrors.
func (n *node) mirrored() int {
	n.smu.Lock()
	defer n.smu.Unlock()
	return len(n.sessions)
}

func (n *node) logInfo(msg string, attrs ...slog.Attr) {
	n.b.log.LogAttrs(context.Background(), slog.LevelInfo, msg, append([]slog.Attr{slog.String("node", n.id)}, attrs...)...)
}
