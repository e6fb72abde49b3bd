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
//     ([Node.Publish], [Receiver.Broadcast]).
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
)

// Errors a backend returns. Implementations wrap them with context; callers
// test with errors.Is.
var (
	// ErrUnknownSession means no live node owns the session: it never
	// existed, it was removed, or its owner is gone.
	ErrUnknownSession = errors.New("backends: unknown session")
	// ErrClosed means the node or backend was closed.
	ErrClosed = errors.New("backends: closed")
	// ErrUnavailable means the backend cannot be reached right now (for
	// example Redis is down). The operation may succeed later.
	ErrUnavailable = errors.New("backends: unavailable")
)

// Backend is shared state for one or more nodes.
type Backend interface {
	// Attach joins a new node to the backend. Until the returned Node is
	// closed, the backend calls r for upstream messages addressed to the
	// node's sessions and for publications on topics the node subscribed to.
	Attach(ctx context.Context, r Receiver) (Node, error)
}

// Node is one node's handle on a Backend. Its methods are safe for
// concurrent use.
type Node interface {
	// ID returns the node id, unique among the nodes of the backend.
	ID() string

	// RegisterSession records that this node owns the session id.
	RegisterSession(ctx context.Context, id string) error
	// RemoveSession forgets the session. Removing an unknown session is
	// not an error.
	RemoveSession(ctx context.Context, id string) error
	// SessionExists reports whether a live node owns the session.
	SessionExists(ctx context.Context, id string) (bool, error)

	// Route delivers an upstream message to the node that owns the session,
	// which hands it to its Receiver's Deliver. Messages routed for one
	// session from one goroutine arrive in the order they were routed. Route
	// returns an error wrapping ErrUnknownSession, at once, when no live node
	// owns the session; it never queues a message for nobody. data may be
	// reused by the caller after Route returns.
	Route(ctx context.Context, session string, data []byte) error

	// Subscribe tells the backend that this node has subscribers for topic;
	// Unsubscribe that it has none left. Both are idempotent.
	Subscribe(ctx context.Context, topic string) error
	Unsubscribe(ctx context.Context, topic string) error

	// Publish delivers p to every node subscribed to p.Topic, this node
	// included, through their Receiver's Broadcast. All nodes see the
	// publications of one topic in the same order. p.Data may be reused by
	// the caller after Publish returns.
	Publish(ctx context.Context, p Publication) error

	// Close detaches the node: its sessions are forgotten, and once Close
	// returns its Receiver gets no new calls (a call already under way may
	// still finish; the engine expects that).
	Close() error
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
	// them to Deliver so that one slow hook does not hold up the others.
	Deliver(session string, data []byte) error
	// Broadcast hands over a publication for a topic this node subscribed
	// to. p.Data is only valid during the call. A backend may hold locks
	// while it calls Broadcast (to keep one order per topic), so Broadcast
	// must return quickly and must not call the Node.
	Broadcast(p Publication)
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
}
