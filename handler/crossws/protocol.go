// Package crossws implements the crossws-compatible SSE protocol, the native
// protocol of ssebridge: one URL where GET (Accept: text/event-stream) opens
// a stream and POST with an x-crossws-id header sends messages. It works with
// the WebSocketSSE client of the npm package crossws (both upload modes) and
// with a plain browser EventSource plus fetch.
//
// Beyond crossws's own server it writes correct multi-line data, gives every
// event an id so that a reconnecting EventSource resumes the same peer with
// what it missed, sends heartbeats, and sends a "close" event before a
// server-side close.
//
// Wire summary:
//
//	GET  Accept: text/event-stream [Last-Event-ID: <peer>.<seq>]
//	  ← 200 text/event-stream, x-crossws-id: <peer>
//	    id: <peer>.<seq>\nevent: crossws-id\ndata: <peer>\n\n
//	    id: <peer>.<n>\nevent: message\ndata: <line>\ndata: <line>\n\n …
//	    : ping\n\n                                   (idle heartbeat)
//	    id: <peer>.closed\nevent: close\ndata: {"code":…,"reason":…}\n\n
//	GET  Last-Event-ID: <peer>.closed      ← 204 (the client stops)
//	POST x-crossws-id: <peer>, body = one message        ← 200
//	POST x-crossws-id: <peer>, content-type: application/octet-stream,
//	     body streamed without length: each read is one message ← 200 at end
//	unknown peer ← 400 "invalid peer id"; body too large ← 413;
//	origin not allowed ← 403; other methods ← 405; no event-stream Accept ← 406
//
// Import direction: crossws → engine, sse; nothing imports crossws but
// package handler.
package crossws

import (
	"errors"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ssebridge/ssebridge/backends"
	"github.com/ssebridge/ssebridge/handler/engine"
	"github.com/ssebridge/ssebridge/handler/sse"
)

// Defaults of Config.
const (
	DefaultMaxMessageSize = 64 << 10
	DefaultMaxUploads     = 4
)

// Config configures the protocol. Zero values mean the defaults.
type Config struct {
	// AllowedOrigins lists browser origins allowed besides the server's own
	// (see engine.OriginPolicy for the patterns).
	AllowedOrigins []string
	// MaxMessageSize bounds one upstream message (default 64 KiB): a larger
	// POST body is refused with 413; a streamed upload is read in pieces of
	// at most this size, each one message.
	MaxMessageSize int
	// MaxUploads bounds the streamed uploads one peer keeps open (default
	// 4); one more ends the oldest.
	MaxUploads int
	// Retry, when positive, is sent as the SSE retry field: the delay the
	// client waits before it reconnects.
	Retry time.Duration
}

// Protocol serves the crossws-compatible SSE endpoint.
type Protocol struct {
	e       *engine.Engine
	cfg     Config
	origins *engine.OriginPolicy
	bufPool sync.Pool // *[]byte of MaxMessageSize+1 bytes, for uploads
}

// New returns the protocol served on top of e.
func New(e *engine.Engine, cfg Config) (*Protocol, error) {
	if cfg.MaxMessageSize <= 0 {
		cfg.MaxMessageSize = DefaultMaxMessageSize
	}
	if cfg.MaxUploads <= 0 {
		cfg.MaxUploads = DefaultMaxUploads
	}
	origins, err := engine.NewOriginPolicy(cfg.AllowedOrigins)
	if err != nil {
		return nil, err
	}
	return &Protocol{e: e, cfg: cfg, origins: origins}, nil
}

// Codec returns the protocol's frame encoding.
func Codec() engine.Codec { return theCodec }

const allowedMethods = "GET, POST, OPTIONS"

// Serve answers one request.
func (p *Protocol) Serve(x engine.Exchange) {
	origin := x.Header("Origin")
	cors, ok := p.origins.Check(origin, x.Host())
	if !ok {
		engine.WriteError(x, http.StatusForbidden, "origin not allowed")
		return
	}
	switch x.Method() {
	case http.MethodGet:
		p.serveStream(x, cors)
	case http.MethodPost:
		p.serveUpload(x, cors)
	case http.MethodOptions:
		if origin != "" && x.Header("Access-Control-Request-Method") != "" {
			cors.Preflight(x, allowedMethods)
			return
		}
		x.SetHeader("Allow", allowedMethods)
		x.WriteHeader(http.StatusNoContent)
	default:
		x.SetHeader("Allow", allowedMethods)
		engine.WriteError(x, http.StatusMethodNotAllowed, "method not allowed: use GET to open a stream, POST to send")
	}
}

// upgrade runs the Upgrade hook (see engine.Engine.Upgrade).
func (p *Protocol) upgrade(x engine.Exchange, u *engine.Upgrade) bool { return p.e.Upgrade(x, u) }

// serveStream opens or resumes a stream.
func (p *Protocol) serveStream(x engine.Exchange, cors engine.CORS) {
	if !acceptsEventStream(x.Header("Accept")) {
		engine.WriteError(x, http.StatusNotAcceptable, "this endpoint serves text/event-stream: send Accept: text/event-stream")
		return
	}
	if p.e.ShuttingDown() {
		p.writeRetryLater(x, cors, "shutting down")
		return
	}

	// Find out what the request asks for without changing anything: the
	// Upgrade hook decides before anything happens.
	kind, peerID := engine.UpgradeOpen, ""
	var (
		peer       *engine.Peer // the local peer to resume
		remote     bool         // resume a peer this node does not hold
		last       backends.Cursor
		lost       *engine.Peer // a peer that cannot be resumed without loss
		tombstone  engine.CloseDetails
		closedPeer bool // the client saw the close event
		gone       bool // the server closed the peer while its client was away
	)
	if id, cur, closed, ok := parseEventID(x.Header("Last-Event-Id")); ok {
		q, found := p.e.Peer(id)
		if found && !closed && !p.e.Owns(x.Context(), q) {
			found = false // claimed by another node meanwhile: released
		}
		switch {
		case closed:
			kind, peerID, closedPeer = engine.UpgradeResume, id, true
		case found:
			switch q.CheckResume(cur.Seq) {
			case engine.ResumeOK:
				kind, peerID, peer, last = engine.UpgradeResume, id, q, cur
			case engine.ResumeGap:
				// The client gets a new peer; q is closed once the
				// hook accepted the request.
				lost = q
			}
		default:
			if tombstone, gone = p.e.Tombstone(id); gone {
				kind, peerID = engine.UpgradeResume, id
			} else if exists, err := p.e.Exists(x.Context(), id); exists || err != nil {
				// Another node holds (or held) it, or the backend
				// cannot tell now: a takeover, once the hook agrees.
				kind, peerID, remote, last = engine.UpgradeResume, id, true, cur
			}
			// Otherwise an unknown peer: the client gets a new one, and
			// the hook judges an open.
		}
	}

	u := engine.NewUpgrade(engine.NewRequest(x), kind, peerID)
	if !p.upgrade(x, u) {
		return
	}
	switch {
	case closedPeer:
		// 204 makes EventSource stop for good.
		cors.Set(x, "")
		x.WriteHeader(http.StatusNoContent)
		return
	case gone:
		p.writeTombstone(x, cors, peerID, tombstone)
		return
	case lost != nil:
		lost.Expire("resume failed: the frames the client missed are no longer kept")
	}

	var st *engine.Stream
	var err error
	switch {
	case peer != nil:
		if st, err = p.e.Resume(peer, x, last); err != nil {
			// The peer closed or moved on since the check. The hook
			// accepted a resume, not a new peer: let the client come
			// back, and be judged afresh.
			p.writeRetryLater(x, cors, "cannot resume now")
			return
		}
	case remote:
		st, err = p.e.Takeover(x.Context(), x, u, theCodec, peerID, last)
		switch {
		case err == nil:
		case errors.Is(err, backends.ErrUnknownSession), errors.Is(err, engine.ErrResumeGap):
			// Nothing to resume, or not without loss: a new peer, which
			// the hook judges as what it is, an open.
			st = nil
			u = engine.NewUpgrade(engine.NewRequest(x), engine.UpgradeOpen, "")
			if !p.upgrade(x, u) {
				return
			}
		default:
			if !errors.Is(err, engine.ErrShuttingDown) && !errors.Is(err, engine.ErrTooManyPeers) {
				p.e.ReportError(nil, err)
			}
			p.writeRetryLater(x, cors, "cannot resume now")
			return
		}
	}
	if st == nil {
		st, err = p.e.Open(x.Context(), x, u, theCodec)
		if err != nil {
			if !errors.Is(err, engine.ErrShuttingDown) && !errors.Is(err, engine.ErrTooManyPeers) {
				p.e.ReportError(nil, err)
			}
			p.writeRetryLater(x, cors, "cannot open a stream now")
			return
		}
	}
	id := st.Peer().ID()
	setStreamHeaders(x)
	x.SetHeader("X-Crossws-Id", id)
	cors.Set(x, "X-Crossws-Id")
	for _, h := range u.Headers() {
		x.SetHeader(h[0], h[1])
	}
	st.Run(appendHello(nil, id, st.LastSeq(), st.LastMark(), p.cfg.Retry))
}

// writeTombstone answers a reconnection of a peer the server closed while
// its client was away: the close event, then the end of the stream.
func (p *Protocol) writeTombstone(x engine.Exchange, cors engine.CORS, id string, d engine.CloseDetails) {
	setStreamHeaders(x)
	cors.Set(x, "")
	x.WriteHeader(http.StatusOK)
	_, _ = x.Write(appendCloseEvent(nil, id, d))
	_ = x.Flush()
}

// retryLater is the reconnection delay suggested when a stream cannot be
// served now.
const retryLater = time.Second

// writeRetryLater answers a stream request that cannot be served now
// (shutting down, backend unavailable). Any status but 200 would make
// EventSource give up for good, so the answer is an empty 200 stream that
// sets the reconnection delay and ends: the client reconnects, through the
// load balancer, to this instance once it recovers or to another one. The
// peer the client may be resuming is not touched.
func (p *Protocol) writeRetryLater(x engine.Exchange, cors engine.CORS, reason string) {
	setStreamHeaders(x)
	cors.Set(x, "")
	x.WriteHeader(http.StatusOK)
	b := sse.AppendComment(nil, reason)
	b = sse.AppendRetry(b, retryLater)
	b = sse.AppendEnd(b)
	_, _ = x.Write(b)
	_ = x.Flush()
}

func setStreamHeaders(x engine.Exchange) {
	x.SetHeader("Content-Type", "text/event-stream")
	x.SetHeader("Cache-Control", "no-cache")
	x.SetHeader("X-Accel-Buffering", "no")
	x.SetHeader("Connection", "keep-alive")
}

// acceptsEventStream reports whether an Accept header admits
// text/event-stream.
func acceptsEventStream(accept string) bool {
	const want = "text/event-stream"
	for i := 0; i+len(want) <= len(accept); i++ {
		if strings.EqualFold(accept[i:i+len(want)], want) {
			return true
		}
	}
	return false
}

// limitText formats a size limit for error bodies.
func limitText(n int) string { return strconv.Itoa(n) + " bytes" }
