package engine

import (
	"context"
	"errors"
	"fmt"
	"net/http"
)

// Hooks are the application's callbacks. Every hook is optional. Hooks of one
// peer never run concurrently with each other, except Close and Error, which
// may run while a Message hook of the same peer is still returning (and,
// when Shutdown's context expires, while an Open hook still runs).
type Hooks struct {
	// Upgrade runs for every request before anything else: the stream GET,
	// a resuming GET and each upstream POST. It may set response headers,
	// typed context values and the namespace (both only for a new peer), or
	// refuse the request by returning a *RejectError (see Reject). Any other
	// error is answered with 500.
	Upgrade func(u *Upgrade) error
	// Open runs once per peer, when its stream opens, before the client is
	// told its id: what Open sets up (subscriptions, sends) is in place
	// before the client can act. Frames sent from Open follow the id.
	Open func(p *Peer)
	// Resume runs when a client reconnected with Last-Event-ID and took its
	// peer back; the frames it missed are already queued. Open does not run
	// again.
	Resume func(p *Peer)
	// Message runs for each upstream message, in order per peer. The
	// Message's bytes are valid only until the hook returns.
	Message func(p *Peer, m Message)
	// Close runs once, when the peer is gone for good.
	Close func(p *Peer, d CloseDetails)
	// Error reports problems that have no caller to return to: a panicking
	// hook, a failing backend. p is nil when no peer is involved.
	Error func(p *Peer, err error)
}

// UpgradeKind says what a request does.
type UpgradeKind int

const (
	// UpgradeOpen is a stream request that creates a new peer.
	UpgradeOpen UpgradeKind = iota + 1
	// UpgradeResume is a stream request from a client that reconnected to
	// an existing peer: it resumes the peer, or is told that the server
	// closed it. (A client that can no longer be resumed without loss is
	// an UpgradeOpen: it gets a new peer.)
	UpgradeResume
	// UpgradeMessage is an upstream request carrying messages for a peer.
	UpgradeMessage
)

// String returns "open", "resume" or "message".
func (k UpgradeKind) String() string {
	switch k {
	case UpgradeOpen:
		return "open"
	case UpgradeResume:
		return "resume"
	case UpgradeMessage:
		return "message"
	}
	return fmt.Sprintf("UpgradeKind(%d)", int(k))
}

// Upgrade is what the Upgrade hook sees and may change.
type Upgrade struct {
	// Request is the live request; it is valid only during the hook.
	Request Request
	// Kind says whether the request opens, resumes or sends to a peer.
	Kind UpgradeKind
	// PeerID is the id of the peer being resumed or sent to; empty for
	// UpgradeOpen.
	PeerID string
	// Namespace scopes Peer.Publish and Peer.Peers. It defaults to the
	// request path; changing it has effect only for UpgradeOpen.
	Namespace string

	ctx    context.Context
	header [][2]string
}

// NewUpgrade returns an Upgrade for a request; protocols call it.
func NewUpgrade(req Request, kind UpgradeKind, peerID string) *Upgrade {
	return &Upgrade{Request: req, Kind: kind, PeerID: peerID, Namespace: req.Path(), ctx: context.WithoutCancel(req.Context())}
}

// SetHeader adds a response header (it replaces a default header of the same
// name).
func (u *Upgrade) SetHeader(name, value string) {
	u.header = append(u.header, [2]string{name, value})
}

// Headers returns the headers set by SetHeader, in order.
func (u *Upgrade) Headers() [][2]string { return u.header }

// Context returns the context whose values become the peer's (see Key).
func (u *Upgrade) Context() context.Context { return u.ctx }

// SetContext replaces the context whose values become the peer's. Only its
// values are kept: the peer's context is cancelled when the peer closes, not
// when this one is.
func (u *Upgrade) SetContext(ctx context.Context) { u.ctx = ctx }

// Key is a typed key for a per-peer context value. Create keys with NewKey
// once, at package level; set values in the Upgrade hook and read them from
// the peer.
//
//	var userKey = handler.NewKey[string]("user")
//	// in Upgrade: userKey.Set(u, "alice")
//	// anywhere:   name, ok := userKey.Get(peer)
type Key[T any] struct{ name string }

// NewKey returns a new, unique key; name is for debugging.
func NewKey[T any](name string) *Key[T] { return &Key[T]{name: name} }

// Set stores v for the peer being upgraded.
func (k *Key[T]) Set(u *Upgrade, v T) { u.ctx = context.WithValue(u.ctx, k, v) }

// Get returns the value stored for the peer and whether there was one.
func (k *Key[T]) Get(p *Peer) (T, bool) { return k.Value(p.ctx) }

// Value returns the value stored in ctx and whether there was one.
func (k *Key[T]) Value(ctx context.Context) (T, bool) {
	v, ok := ctx.Value(k).(T)
	return v, ok
}

// String names the key, for debugging.
func (k *Key[T]) String() string { return "ssebridge.Key(" + k.name + ")" }

// Upgrade runs the Upgrade hook for u, and answers the request itself when
// the hook refuses it (the hook's status and body, or 500 for an error that
// is not a *RejectError). It reports whether the request may proceed.
// Protocols call it before anything else happens.
func (e *Engine) Upgrade(x Exchange, u *Upgrade) bool {
	h := e.cfg.Hooks.Upgrade
	if h == nil {
		return true
	}
	err := callUpgrade(h, u)
	if err == nil {
		return true
	}
	var rej *RejectError
	if errors.As(err, &rej) {
		for k, v := range rej.Header {
			x.SetHeader(k, v)
		}
		status := rej.Status
		if status < 400 || status > 599 {
			status = http.StatusForbidden
		}
		WriteError(x, status, rej.Body)
		return false
	}
	e.ReportError(nil, fmt.Errorf("ssebridge: Upgrade hook: %w", err))
	WriteError(x, http.StatusInternalServerError, "internal error")
	return false
}

// callUpgrade runs the hook, turning a panic into an error.
func callUpgrade(h func(*Upgrade) error, u *Upgrade) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = &PanicError{Hook: "Upgrade", Value: v}
		}
	}()
	return h(u)
}
