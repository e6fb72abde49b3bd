// Package backends defines the Backend interface: the state that several
// ssebridge nodes (Handlers, processes, Lambda execution environments) share.
//
// A node holds the open SSE streams of its own sessions. What crosses nodes
// goes through the backend:
//
//   - the session registry: which node owns a session, so that an upstream
//     message posted to any node reaches the owner ([Node.Route]);
//   - topic fan-out: a publication reaches every node that has subscribers
//     for the topic, in one order per topic that every node sees
//     ([Node.Publish], [Receiver.Broadcast]);
//   - topic history and session records, so that a client whose node is gone
//     resumes its session on another node with the publications it missed
//     ([Node.Claim], [Node.Replay]);
//   - optionally, presence: which clients are in each channel, with expiry
//     ([Presence]).
//
// # Positions and marks
//
// Every publication has a [Position] in its topic's history, assigned by the
// backend. A node numbers the publications it hands to Broadcast 1, 2, 3…
// across all topics (the publication's Mark) and never calls Broadcast
// concurrently, so the marks give one order to everything a node delivered.
// The engine stamps each frame it sends with the highest mark its peer has
// received (publications replayed to a session taken over get marks too:
// see Node.Join); a client presents that stamp when it reconnects, and the node it
// reached claims the session with it ([Cursor]). From the session record
// (the position each topic started from), the old owner's mark log and its
// last position per topic, the backend computes, for each topic, the
// position the client is at; publications after it are replayed. The
// computation is the same for every backend:
//
//	record: owner O, base seq B, topics T → position R[T]
//	claim with cursor (S, M):
//	  no record                → ErrUnknownSession
//	  S <  B                   → ErrGap (the client is behind the record)
//	  S == B                   → position[T] = R[T]
//	  S >  B, M == 0           → position[T] = R[T] (the client got no
//	                             live publication from O)
//	  S >  B, M >  0 (M is O's mark):
//	    O's mark log no longer holds every mark after M, or M is past
//	    O's last mark              → ErrGap
//	    first mark g > M that O gave a publication of T, live or replayed
//	    for this session (Join), at position P:
//	                             position[T] = max(R[T], just before P)
//	    none:                    position[T] = max(R[T], O's last position of T)
//	  then atomically: owner = claimer, B = S, R = position; O is told to
//	  release the session (Receiver.Release) if O is another node.
//
// Implementations: backends/memory (one process, the default) and
// backends/redis. Every implementation must pass the conformance suite in
// backends/backendtest.
//
// Import direction: backends imports only the standard library. The engine
// (handler/engine) imports backends; backends never import the engine, an
// adapter or a protocol.
package backends

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Errors a backend returns. Implementations wrap them with context; callers
// test with errors.Is.
var (
	// ErrUnknownSession means no live node owns the session: it never
	// existed, it was removed, or its owner is gone.
	ErrUnknownSession = errors.New("backends: unknown session")
	// ErrMoved means another node owns the session now: it was claimed
	// away from this node.
	ErrMoved = errors.New("backends: session owned by another node")
	// ErrGap means the history no longer holds everything a resuming client
	// missed: the session cannot be resumed without loss.
	ErrGap = errors.New("backends: history no longer kept")
	// ErrClosed means the node or backend was closed.
	ErrClosed = errors.New("backends: closed")
	// ErrUnavailable means the backend cannot be reached right now (for
	// example Redis is down), or is overloaded. The operation may succeed
	// later.
	ErrUnavailable = errors.New("backends: unavailable")
)

// Backend is shared state for one or more nodes.
type Backend interface {
	// Attach joins a new node to the backend. Until the returned Node is
	// closed, the backend calls r for upstream messages addressed to the
	// node's sessions and for publications on topics the node subscribed to.
	Attach(ctx context.Context, r Receiver) (Node, error)
}

// Position is a publication's place in its topic's history, opaque outside
// the backend that assigned it. The zero value is the start of every
// topic's history: before any publication.
type Position string

// Cursor is how far a resuming client got: the seq of the last frame it
// received, and the mark that frame carried (the highest Mark of the
// publications its node had delivered to it, 0 for none).
type Cursor struct {
	Seq  uint64
	Mark uint64
}

// SessionInfo is what a session record holds besides its owner and topics.
type SessionInfo struct {
	// Namespace is the session's namespace ("" is stored as is).
	Namespace string
}

// Session is a session record as a claim returns it.
type Session struct {
	SessionInfo
	// Topics maps each topic of the session to the position the client is
	// at: it has received every publication of the topic up to and
	// including it, and none after.
	Topics map[string]Position
}

// Node is one node's handle on a Backend. Its methods are safe for
// concurrent use.
type Node interface {
	// ID returns the node id, unique among the nodes of the backend.
	ID() string

	// RegisterSession records that this node owns a new session, with no
	// topics and base seq 0.
	RegisterSession(ctx context.Context, id string, info SessionInfo) error
	// RemoveSession forgets a session this node owns. Removing an unknown
	// session is not an error; a session another node has claimed is left
	// alone and the error wraps ErrMoved.
	RemoveSession(ctx context.Context, id string) error
	// Owner returns the id of the node the session record names as owner,
	// alive or not (a session whose owner died can still be claimed). The
	// error wraps ErrUnknownSession when there is no session record.
	Owner(ctx context.Context, id string) (string, error)

	// Route delivers an upstream message to the node that owns the session,
	// which hands it to its Receiver's Deliver. Messages routed for one
	// session from one goroutine arrive in the order they were routed
	// (except around a claim: a message that reached the old owner after
	// the claim is forwarded, and may arrive after later ones).
	// Route returns an error wrapping ErrUnknownSession, at once, when no
	// live node owns the session; it never queues a message for nobody. It
	// returns once the message is with the owner (for Redis: in its inbox),
	// not once the owner handled it. data may be reused by the caller after
	// Route returns.
	Route(ctx context.Context, session string, data []byte) error

	// Subscribe tells the backend that this node has subscribers for topic
	// and returns the position after which publications will be broadcast
	// to the node. Unsubscribe says it has none left. Both are idempotent
	// (a repeated Subscribe returns a position no later than the node's
	// last broadcast publication of the topic).
	Subscribe(ctx context.Context, topic string) (Position, error)
	Unsubscribe(ctx context.Context, topic string) error

	// SetSessionTopic records, for resume on another node, that the session
	// (owned by this node) receives topic's publications after from.
	// RemoveSessionTopic removes the record. Both wrap ErrMoved when another
	// node owns the session.
	SetSessionTopic(ctx context.Context, session, topic string, from Position) error
	RemoveSessionTopic(ctx context.Context, session, topic string) error

	// Publish delivers p to every node subscribed to p.Topic, this node
	// included, through their Receiver's Broadcast, and adds it to the
	// topic's history. All nodes see the publications of one topic in the
	// same order. p.Data may be reused by the caller after Publish returns;
	// p.Position and p.Mark are ignored.
	Publish(ctx context.Context, p Publication) error

	// Replay calls fn, in order, for the publications of topic after the
	// position after, up to and including until, from the topic's history.
	// The publications have their Position set and Mark 0. It returns an
	// error wrapping ErrGap, before calling fn, when the history no longer
	// holds every publication after after. fn's p.Data is only valid during
	// the call.
	Replay(ctx context.Context, topic string, after, until Position, fn func(p Publication)) error

	// Join adds a session this node took over (Claim) to the live
	// publications of its topics, each continuing right after its position
	// in topics. It subscribes the node to the topics it lacks; then, with
	// no Broadcast in between (for any topic), for each topic in turn (in
	// name order) it gives each publication after the session's position
	// that the node has already broadcast a new mark of this node, logged
	// (as Broadcast marks are, but tagged with the session, so that only
	// claims of this session consider it), and calls replay with it, in
	// order; then it calls joined for each topic with the position of the
	// node's last broadcast of it, after which Broadcasts go on. So every
	// replayed publication's mark is below every live one the session gets.
	// replay and joined run with the backend's broadcast order held: they
	// must return quickly and not call the Node. It returns an error
	// wrapping ErrGap, before calling either, when the history no longer
	// holds every publication after a topic's position.
	Join(ctx context.Context, session string, topics map[string]Position, replay func(p Publication), joined func(topic string, last Position)) error

	// Claim takes a session over for a client that reconnected to this node
	// having got as far as c; see the package documentation for what it
	// computes. It wraps ErrUnknownSession when there is no session to
	// resume, ErrGap when it cannot be resumed without loss, and
	// ErrUnavailable when the backend cannot be reached.
	Claim(ctx context.Context, session string, c Cursor) (Session, error)

	// Close detaches the node: its sessions stay resumable elsewhere until
	// they expire (memory: they are forgotten), and once Close returns its
	// Receiver gets no new calls (a call already under way may still
	// finish; the engine expects that).
	Close() error
}

// DirectRouter is implemented by nodes that can hand an upstream message to
// a node the caller names, saving the look-up of the session's owner that
// Route makes (a round trip to Redis). Protocols whose clients know the
// node holding their session (Centrifugo's emulation requests name it) use
// it. It is optional; callers test for it with a type assertion.
type DirectRouter interface {
	// RouteTo delivers data for session to node's Receiver, as Route
	// does, if node is alive; it returns an error wrapping
	// ErrUnknownSession, at once, when no live node has that id. Whether
	// node holds the session is not checked here: a node forwards a
	// message for a session it does not hold to the session's owner, or
	// drops it when the session is gone. (So a client naming sessions at
	// random costs the named node a look-up per request, as a client
	// posting to its own session costs it the message.)
	RouteTo(ctx context.Context, node, session string, data []byte) error
}

// SessionKeeper is implemented by nodes whose session records outlive the
// node (Redis): a node that shuts down then leaves its sessions for other
// nodes to resume instead of ending them.
type SessionKeeper interface {
	// KeepsSessions reports whether the node's sessions outlive Close.
	KeepsSessions() bool
}

// PresenceInfo is one client present in a channel.
type PresenceInfo struct {
	Client   string // the client's id, unique per connection
	User     string // the user's id; "" for an anonymous client
	ConnInfo []byte // connection info (raw JSON, or nil), as the application set it
	ChanInfo []byte // channel info (raw JSON, or nil)
}

// Presence is implemented by nodes whose backend keeps who is present in
// each channel, across nodes: every node of a backend sees the same
// presence. It is optional; callers test for it with a type assertion.
//
// Implementations enforce the limits below ([CheckPresence]), refusing a
// call that breaks them before touching any state. ConnInfo and ChanInfo
// are opaque bytes (they need not be valid JSON) and round-trip exactly,
// nil and empty included; implementations copy them in and out, so callers
// may reuse their buffers.
type Presence interface {
	// AddPresence records info as present in channel, or refreshes it,
	// until ttl passes without another AddPresence. ttl must be positive.
	AddPresence(ctx context.Context, channel string, info PresenceInfo, ttl time.Duration) error
	// RemovePresence removes client from channel; removing an absent one
	// is not an error.
	RemovePresence(ctx context.Context, channel, client string) error
	// Presence returns the clients present in channel (expired entries are
	// never returned), by client id.
	Presence(ctx context.Context, channel string) (map[string]PresenceInfo, error)
	// PresenceStats returns how many clients and how many distinct
	// non-empty users are present in channel.
	PresenceStats(ctx context.Context, channel string) (clients, users int, err error)
}

// Limits of presence entries, the same for every backend.
const (
	// MaxChannelLen bounds channel names, in bytes (as topic names).
	MaxChannelLen = 1024
	// MaxClientLen bounds client ids, in bytes.
	MaxClientLen = 1024
	// MaxPresenceSize bounds one entry: the sum of the lengths of Client,
	// User, ConnInfo and ChanInfo.
	MaxPresenceSize = 64 << 10
)

// CheckPresence checks a presence call's arguments against the limits: the
// channel and the client must be non-empty and not too long, and, when info
// is not nil, the entry must not exceed MaxPresenceSize and ttl must be
// positive. Backends call it first; callers need not.
func CheckPresence(channel, client string, info *PresenceInfo, ttl time.Duration) error {
	switch {
	case channel == "":
		return errors.New("backends: presence: empty channel name")
	case len(channel) > MaxChannelLen:
		return fmt.Errorf("backends: presence: channel name of %d bytes, longer than %d", len(channel), MaxChannelLen)
	case client == "":
		return errors.New("backends: presence: empty client id")
	case len(client) > MaxClientLen:
		return fmt.Errorf("backends: presence: client id of %d bytes, longer than %d", len(client), MaxClientLen)
	}
	if info == nil {
		return nil
	}
	if size := len(info.Client) + len(info.User) + len(info.ConnInfo) + len(info.ChanInfo); size > MaxPresenceSize {
		return fmt.Errorf("backends: presence: entry of %d bytes (client, user, conn info and chan info), more than %d", size, MaxPresenceSize)
	}
	if ttl <= 0 {
		return fmt.Errorf("backends: presence: ttl %v, want a positive duration", ttl)
	}
	return nil
}

// CheckChannel checks a channel name against the limits of CheckPresence.
func CheckChannel(channel string) error {
	return CheckPresence(channel, "-", nil, 0)
}

// StreamPosition is where a topic's numbered history stands: the epoch of
// its numbering and the offset of its last publication (0: none yet).
type StreamPosition struct {
	Offset uint64
	Epoch  string
}

// HistoryRequest asks History for a topic's publications.
type HistoryRequest struct {
	// Since, when not nil, asks for the publications after Since.Offset
	// (with Reverse: before it), oldest first (with Reverse: newest first).
	// When Since.Epoch is not the topic's epoch, no publication is
	// returned. Nil asks for the newest publications (with Reverse) or the
	// oldest kept (without).
	Since *StreamPosition
	// Limit bounds the publications returned: 0 returns none (only the
	// position), a negative limit every one the history holds.
	Limit int
	// Reverse returns publications newest first.
	Reverse bool
}

// HistoryResult is a topic's position and the publications History found.
type HistoryResult struct {
	// StreamPosition is the topic's current position: its epoch and the
	// offset of its last publication.
	StreamPosition
	// Publications have Topic, Data, Namespace, Exclude and Offset set
	// (Position too, and Mark 0); their Data is owned by the caller.
	Publications []Publication
}

// History is implemented by nodes whose backend numbers each topic's
// publications 1, 2, 3… within an epoch and keeps the recent ones, so that
// a client that knows the offset and epoch of the last publication it got
// asks for what followed (the Centrifugo protocol's history and recovery).
// It is optional; callers test for it with a type assertion.
//
// A topic's epoch changes when its numbering starts again: the topic's
// history was lost (expired with no subscriber left, or the backend lost
// its data). Within an epoch, offsets increase by one per publication, with
// no gap, in the order every node broadcasts them. The history keeps the
// newest publications (as many as the backend is configured to keep); a
// caller detects that some it asked for were dropped when the first
// publication returned after Since is not Since.Offset+1 (or none is
// returned although the offset is past Since.Offset).
type History interface {
	// History returns the topic's position and the publications req asks
	// for. A topic never published to has offset 0 and an epoch all the
	// same (which stays the topic's epoch for its first publications as
	// long as the history lives) once a node subscribed to it; a topic
	// whose history the backend does not keep (for example, no node
	// subscribed to it, or it was lost) has offset 0 and epoch "".
	History(ctx context.Context, topic string, req HistoryRequest) (HistoryResult, error)
}

// Receiver is implemented by the engine of a node; the backend calls it.
type Receiver interface {
	// Deliver hands over an upstream message for a session this node
	// registered. It returns an error wrapping ErrUnknownSession if the
	// session is no longer here. data is only valid during the call.
	//
	// Deliver runs the application's Message hook before it returns, and
	// the hook may call back into the Node (Publish, Subscribe, Route): a
	// backend must not hold its own locks while it calls Deliver. A
	// backend that reads several sessions' messages in one loop should hand
	// them to Deliver so that one slow hook does not hold up the others,
	// while keeping each session's messages in order.
	Deliver(session string, data []byte) error
	// Broadcast hands over a publication for a topic this node subscribed
	// to, with its Position and Mark set. p.Data is only valid during the
	// call. The backend calls Broadcast from one goroutine at a time, in
	// Mark order, and may hold locks meanwhile, so Broadcast must return
	// quickly and must not call the Node.
	Broadcast(p Publication)
	// Release tells the node that another node claimed one of its sessions:
	// the node drops it without ending it (no hooks, no close event). It
	// must return quickly and must not call the Node.
	Release(session string)
	// Error reports a failure of the backend's own background work (a
	// lost connection, a failed read, a message it could not hand over).
	// The engine logs it and passes it to the application's Error hook. It
	// must not call the Node.
	Error(err error)
}

// Publication is a message for the subscribers of a topic.
type Publication struct {
	// Topic is the topic name.
	Topic string
	// Namespace limits delivery to subscribers in that namespace; empty
	// means every namespace.
	Namespace string
	// Exclude is a session id that must not receive the publication (the
	// publishing peer); empty excludes nobody.
	Exclude string
	// Data is the payload, text as the protocols send it.
	Data []byte
	// Transient marks a signal rather than a message (Centrifugo's join
	// and leave): it reaches the topic's current subscribers, but a
	// backend need not keep or number it, nor keep a topic for it.
	Transient bool

	// Position is the publication's place in the topic's history, set by
	// the backend.
	Position Position
	// Offset is the publication's number in its topic's epoch (1, 2, 3…;
	// see History), set by backends that implement History in Broadcast,
	// Replay and History; 0 otherwise. p.Offset is ignored by Publish.
	Offset uint64
	// Mark is the receiving node's number for the publication (see the
	// package documentation), set by the backend in Broadcast; 0 in Replay.
	Mark uint64
}
