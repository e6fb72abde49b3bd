// Package memory is the default backend: all state in the memory of one
// process. Several Handlers in one process may share one Backend; they then
// behave like the nodes of a cluster (a POST to one reaches a session on
// another). Nothing survives the process.
//
// Import direction: memory → backends.
package memory

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"slices"
	"sync"

	"github.com/ssebridge/ssebridge/backends"
)

// Backend keeps sessions and topic subscriptions in memory. The zero value is
// not usable; call New.
type Backend struct {
	mu       sync.RWMutex
	nodes    map[string]*node
	sessions map[string]*node
	topics   map[string]*topic
}

// topic holds the nodes subscribed to one topic. Its mutex is held while a
// publication is delivered so that every node sees one order per topic.
type topic struct {
	mu    sync.Mutex
	nodes []*node
}

// New returns an empty in-memory backend.
func New() *Backend {
	return &Backend{
		nodes:    make(map[string]*node),
		sessions: make(map[string]*node),
		topics:   make(map[string]*topic),
	}
}

// Attach joins a node. It implements backends.Backend.
func (b *Backend) Attach(_ context.Context, r backends.Receiver) (backends.Node, error) {
	var raw [12]byte
	_, _ = rand.Read(raw[:])
	n := &node{b: b, id: base64.RawURLEncoding.EncodeToString(raw[:]), recv: r}
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
	return len(b.topics)
}

type node struct {
	b      *Backend
	id     string
	recv   backends.Receiver
	closed bool // guarded by b.mu
	topics map[string]struct{}
}

func (n *node) ID() string { return n.id }

func (n *node) RegisterSession(_ context.Context, id string) error {
	n.b.mu.Lock()
	defer n.b.mu.Unlock()
	if n.closed {
		return backends.ErrClosed
	}
	if owner, ok := n.b.sessions[id]; ok && owner != n {
		return fmt.Errorf("memory: session %q is owned by node %s", id, owner.id)
	}
	n.b.sessions[id] = n
	return nil
}

func (n *node) RemoveSession(_ context.Context, id string) error {
	n.b.mu.Lock()
	defer n.b.mu.Unlock()
	if n.b.sessions[id] == n {
		delete(n.b.sessions, id)
	}
	return nil
}

func (n *node) SessionExists(_ context.Context, id string) (bool, error) {
	n.b.mu.RLock()
	defer n.b.mu.RUnlock()
	if n.closed {
		return false, backends.ErrClosed
	}
	_, ok := n.b.sessions[id]
	return ok, nil
}

func (n *node) Route(_ context.Context, session string, data []byte) error {
	n.b.mu.RLock()
	owner, ok := n.b.sessions[session]
	closed := n.closed
	n.b.mu.RUnlock()
	if closed {
		return backends.ErrClosed
	}
	if !ok {
		return fmt.Errorf("memory: route: %w", backends.ErrUnknownSession)
	}
	return owner.recv.Deliver(session, data)
}

func (n *node) Subscribe(_ context.Context, name string) error {
	n.b.mu.Lock()
	defer n.b.mu.Unlock()
	if n.closed {
		return backends.ErrClosed
	}
	if _, ok := n.topics[name]; ok {
		return nil
	}
	if n.topics == nil {
		n.topics = make(map[string]struct{})
	}
	n.topics[name] = struct{}{}
	t := n.b.topics[name]
	if t == nil {
		t = &topic{}
		n.b.topics[name] = t
	}
	t.mu.Lock()
	t.nodes = append(t.nodes, n)
	t.mu.Unlock()
	return nil
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
	empty := len(t.nodes) == 0
	t.mu.Unlock()
	if empty {
		delete(n.b.topics, name)
	}
}

func (n *node) Publish(_ context.Context, p backends.Publication) error {
	n.b.mu.RLock()
	t := n.b.topics[p.Topic]
	closed := n.closed
	n.b.mu.RUnlock()
	if closed {
		return backends.ErrClosed
	}
	if t == nil {
		return nil
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, m := range t.nodes {
		m.recv.Broadcast(p)
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
	for id, owner := range n.b.sessions {
		if owner == n {
			delete(n.b.sessions, id)
		}
	}
	delete(n.b.nodes, n.id)
	return nil
}
