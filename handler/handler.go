// Package handler is the public face of ssebridge: it wires the engine
// (peers, topics, backend) and the wire protocols together into one Handler
// that a runtime adapter serves (netfx for net/http).
//
//	h, err := handler.New(handler.Config{
//		Hooks: handler.Hooks{
//			Open:    func(p *handler.Peer) { p.Subscribe("chat") },
//			Message: func(p *handler.Peer, m handler.Message) { p.Publish("chat", m.Text()) },
//		},
//	})
//	http.Handle("/sse", netfx.New(h))
//
// The zero Config serves the crossws-compatible protocol from an in-memory
// backend with the defaults documented on Config.
//
// # Several instances
//
// With a shared backend (backends/redis; or one memory backend shared by
// Handlers in one process), instances behind one URL need no sticky
// sessions: a POST reaches its peer on whichever instance holds its stream,
// and a client whose instance is gone (crash, deploy, a Lambda stream that
// ended) reconnects to any instance and resumes the same peer: same id,
// namespace and topics. The Upgrade hook runs for the resume request
// (UpgradeResume) and sets the peer's context values there; then Resume runs,
// not Open. What the client gets across a resume on another instance:
//
//   - Publications (Publish, Peer.Publish): every publication of the peer's
//     topics that it missed and that the backend's topic history still
//     holds, exactly once, in publish order per topic (the topics are
//     replayed one after another, then live publications follow). When the
//     history no longer holds them all, the client gets a new peer and the
//     old one closes with CloseAbnormal.
//   - Messages sent with Peer.Send: kept by the instance that holds the
//     peer. They all arrive, in order with the peer's other frames, when the
//     client resumes on that instance within ReconnectGrace (and QueueSize).
//     When it resumes on another instance, those the old instance queued but
//     the client had not received are lost, and Send on the old instance's
//     Peer returns ErrClosed once the takeover reached it (at once while
//     that instance is up). Send is at most once across instances: use a
//     topic (one per user, say) for what must survive an instance.
//
// A peer the server closed while its client was away is remembered by the
// instance that closed it (its tombstone): a reconnection there gets the
// close event; one that lands on another instance gets a new peer.
//
// On Shutdown with the Redis backend, peers are handed off: streams end
// without a close event, sessions stay in Redis, and clients resume them on
// other instances (no Close hook runs on the instance that shut down).
//
// Import direction: adapters (netfx, …) → handler → handler/crossws →
// handler/engine → handler/sse, backends. The types users see (Peer, Hooks,
// Message, …) are defined in handler/engine and aliased here.
package handler

import (
	"context"
	"iter"
	"log/slog"
	"time"

	"github.com/ssebridge/ssebridge/backends"
	"github.com/ssebridge/ssebridge/handler/centrifugo"
	"github.com/ssebridge/ssebridge/handler/crossws"
	"github.com/ssebridge/ssebridge/handler/engine"
)

// Types defined by the engine, under the names users write.
type (
	// Peer is one client session; see engine.Peer.
	Peer = engine.Peer
	// Message is an upstream message given to the Message hook.
	Message = engine.Message
	// Hooks are the application's callbacks.
	Hooks = engine.Hooks
	// Upgrade is what the Upgrade hook sees and may change.
	Upgrade = engine.Upgrade
	// UpgradeKind says whether a request opens, resumes or sends to a peer.
	UpgradeKind = engine.UpgradeKind
	// Request is a read-only view of an HTTP request.
	Request = engine.Request
	// RequestSource is what an adapter provides for a Request.
	RequestSource = engine.RequestSource
	// Exchange is a request and its response, as an adapter presents them.
	Exchange = engine.Exchange
	// CloseDetails tells the Close hook why a peer closed.
	CloseDetails = engine.CloseDetails
	// RejectError refuses a request from the Upgrade hook.
	RejectError = engine.RejectError
	// PanicError reports a panicking hook to the Error hook.
	PanicError = engine.PanicError
)

// Key is a typed key for per-peer context values; see engine.Key.
type Key[T any] = engine.Key[T]

// NewKey returns a new typed key for per-peer context values.
func NewKey[T any](name string) *Key[T] { return engine.NewKey[T](name) }

// Reject returns an error for the Upgrade hook that refuses the request with
// status and body.
func Reject(status int, body string) *RejectError { return engine.Reject(status, body) }

// Kinds of upgrade requests.
const (
	UpgradeOpen    = engine.UpgradeOpen
	UpgradeResume  = engine.UpgradeResume
	UpgradeMessage = engine.UpgradeMessage
)

// Close codes; see engine for their meaning.
const (
	CloseNormal        = engine.CloseNormal
	CloseGoingAway     = engine.CloseGoingAway
	CloseAbnormal      = engine.CloseAbnormal
	CloseInternalError = engine.CloseInternalError
	CloseSlowConsumer  = engine.CloseSlowConsumer
)

// Errors; test with errors.Is.
var (
	ErrClosed        = engine.ErrClosed
	ErrSlowConsumer  = engine.ErrSlowConsumer
	ErrShuttingDown  = engine.ErrShuttingDown
	ErrTooManyTopics = engine.ErrTooManyTopics
	ErrInvalidTopic  = engine.ErrInvalidTopic
	ErrTooLarge      = engine.ErrTooLarge
	ErrTooManyPeers  = engine.ErrTooManyPeers
)

// Config configures a Handler. Every field is optional; the zero value
// serves the crossws-compatible protocol from memory.
type Config struct {
	// Hooks are the application's callbacks.
	Hooks Hooks
	// Backend holds the state shared between instances. Default: a private
	// in-memory backend (backends/memory), which is enough for one process;
	// backends/redis lets instances behind one URL serve any request.
	Backend backends.Backend
	// Logger receives the library's logs. Default: slog.Default().
	Logger *slog.Logger

	// AllowedOrigins lists browser origins allowed besides the server's own
	// origin: "*", exact origins like "https://app.example.com", or
	// wildcard subdomains like "https://*.example.com". Requests without an
	// Origin header (non-browser clients) are always allowed. Others get 403.
	// Listed origins get credentialed CORS access (the user's cookies);
	// origins allowed only by "*" get access without credentials.
	AllowedOrigins []string
	// MaxMessageSize bounds one upstream message. Default 64 KiB; larger
	// POST bodies get 413.
	MaxMessageSize int
	// QueueSize bounds the bytes queued for one peer and not yet written.
	// Default 1 MiB; a peer that overflows it is closed with
	// CloseSlowConsumer, without slowing anyone else.
	QueueSize int
	// ReplaySize bounds the bytes of written frames a peer keeps for a
	// client that reconnects with Last-Event-ID. Default 64 KiB (each frame
	// counts its bytes plus 24; publications share their bytes between
	// subscribers, so this bounds memory per peer from above).
	ReplaySize int
	// Heartbeat is how long a stream may stay idle before a comment is sent
	// to keep proxies from closing it. Default 15 s; negative disables.
	Heartbeat time.Duration
	// ReconnectGrace is how long a peer whose stream dropped waits for its
	// client to resume before Close runs. Default 30 s; negative closes at
	// once.
	ReconnectGrace time.Duration
	// WriteTimeout bounds each write to a stream. Default 10 s.
	WriteTimeout time.Duration
	// MaxStreamDuration ends streams after this long without closing their
	// peers; clients reconnect and resume. Default: no limit.
	MaxStreamDuration time.Duration
	// Retry, when positive, is sent to clients as the SSE retry delay.
	// Default: not sent (browsers wait about 3 s before reconnecting).
	Retry time.Duration
	// MaxTopics bounds the subscriptions of one peer. Default 128.
	MaxTopics int
	// MaxUploads bounds the streamed uploads one peer keeps open. Default 4.
	MaxUploads int
	// MaxPeers bounds the peers of this instance, those waiting for their
	// client to resume included. Stream requests over it are asked to
	// retry later. Default: no limit.
	MaxPeers int

	// Centrifugo, when not nil, also serves Centrifugo's SSE transports
	// for centrifuge-js and any EventSource: /connection/sse with
	// /emulation, and /connection/uni_sse (paths configurable there).
	// Requests for those paths go to it; every other path serves the
	// native protocol. Centrifugo channels are the engine's topics:
	// Publish reaches the subscribers of both protocols.
	Centrifugo *centrifugo.Config
}

// Handler serves ssebridge's protocols. Create it with New, serve it with an
// adapter (netfx.New), stop it with Shutdown.
type Handler struct {
	eng    *engine.Engine
	native *crossws.Protocol
	cf     *centrifugo.Protocol
}

// New returns a Handler for cfg. It fails only for an invalid configuration
// or a backend that cannot be attached.
func New(cfg Config) (*Handler, error) {
	eng, err := engine.New(engine.Config{
		Hooks:             cfg.Hooks,
		Backend:           cfg.Backend,
		Logger:            cfg.Logger,
		QueueSize:         cfg.QueueSize,
		ReplaySize:        cfg.ReplaySize,
		Heartbeat:         cfg.Heartbeat,
		ReconnectGrace:    cfg.ReconnectGrace,
		WriteTimeout:      cfg.WriteTimeout,
		MaxStreamDuration: cfg.MaxStreamDuration,
		MaxTopics:         cfg.MaxTopics,
		MaxPeers:          cfg.MaxPeers,
	})
	if err != nil {
		return nil, err
	}
	native, err := crossws.New(eng, crossws.Config{
		AllowedOrigins: cfg.AllowedOrigins,
		MaxMessageSize: cfg.MaxMessageSize,
		MaxUploads:     cfg.MaxUploads,
		Retry:          cfg.Retry,
	})
	if err != nil {
		_ = eng.Shutdown(context.Background())
		return nil, err
	}
	h := &Handler{eng: eng, native: native}
	if cfg.Centrifugo != nil {
		if h.cf, err = centrifugo.New(eng, *cfg.Centrifugo); err != nil {
			_ = eng.Shutdown(context.Background())
			return nil, err
		}
	}
	return h, nil
}

// Serve answers one request; runtime adapters call it.
func (h *Handler) Serve(x Exchange) {
	if h.cf != nil && h.cf.Handles(x.Path()) {
		h.cf.Serve(x)
		return
	}
	h.native.Serve(x)
}

// IsCentrifugoPath reports whether path is one of the Centrifugo
// endpoints Serve answers (false when Config.Centrifugo is nil).
func (h *Handler) IsCentrifugoPath(path string) bool { return h.cf != nil && h.cf.Handles(path) }

// Centrifugo returns the Centrifugo transports (nil unless
// Config.Centrifugo was set): server-side Publish, Disconnect and
// Unsubscribe of users, and their connections.
func (h *Handler) Centrifugo() *centrifugo.Protocol { return h.cf }

// Publish sends v to every subscriber of topic, on every instance and in
// every namespace. v is converted as Peer.Send converts it.
func (h *Handler) Publish(topic string, v any) error { return h.eng.Publish(topic, v) }

// PublishNamespace is Publish limited to the subscribers in one namespace.
func (h *Handler) PublishNamespace(namespace, topic string, v any) error {
	return h.eng.PublishNamespace(namespace, topic, v)
}

// Peers yields the open peers of this instance.
func (h *Handler) Peers() iter.Seq[*Peer] { return h.eng.Peers() }

// Peer returns the open peer with the given id on this instance.
func (h *Handler) Peer(id string) (*Peer, bool) { return h.eng.Peer(id) }

// KeepsSessions reports whether the backend keeps sessions beyond this
// instance (backends/redis), so that other processes can take POSTs for this
// instance's peers and resume them. The in-memory backend does not.
func (h *Handler) KeepsSessions() bool { return h.eng.KeepsSessions() }

// NodeID returns this instance's id in the backend.
func (h *Handler) NodeID() string { return h.eng.NodeID() }

// Shutdown stops accepting streams and closes every peer with
// CloseGoingAway, ending streams without a close event so that clients
// reconnect (to another instance). It returns when every peer is closed or
// ctx is done. Call it before http.Server.Shutdown, which waits for handlers
// to return and would otherwise wait for the streams.
func (h *Handler) Shutdown(ctx context.Context) error { return h.eng.Shutdown(ctx) }
