package crossws

import (
	"errors"
	"io"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/ssebridge/ssebridge/backends"
	"github.com/ssebridge/ssebridge/handler/engine"
)

// serveUpload handles a POST carrying messages for a peer.
func (p *Protocol) serveUpload(x engine.Exchange, cors engine.CORS) {
	streamed := x.ContentLength() < 0 && isOctetStream(x.Header("Content-Type"))
	if streamed {
		// crossws's stream mode never ends its body. Answer without
		// reading it all first (full duplex), and once answered stop
		// reading it: a past read deadline keeps the runtime from draining
		// it, and the connection is closed.
		_ = x.EnableFullDuplex()
		x.SetHeader("Connection", "close")
		defer func() { _ = x.SetReadDeadline(time.Unix(1, 0)) }()
		x = &refusal{Exchange: x}
	}
	id := x.Header("X-Crossws-Id")
	if id == "" {
		engine.WriteError(x, http.StatusBadRequest, "missing x-crossws-id header")
		return
	}
	if !engine.ValidID(id) {
		engine.WriteError(x, http.StatusBadRequest, "invalid peer id")
		return
	}
	u := engine.NewUpgrade(engine.NewRequest(x), engine.UpgradeMessage, id)
	if !p.upgrade(x, u) {
		return
	}
	cors.Set(x, "")
	for _, h := range u.Headers() {
		x.SetHeader(h[0], h[1])
	}
	if streamed {
		p.serveStreamedUpload(x, id)
		return
	}
	p.serveSingleUpload(x, id)
}

// refusal wraps the exchange of a streamed upload: before an error status is
// written, it reads what the client is still sending for a moment, so that a
// client whose body does end (a finite stream) reads the answer instead of
// failing to write into a closed connection.
type refusal struct {
	engine.Exchange
}

// drainFor and drainMax bound what a refused streamed upload is read for.
const (
	drainFor = 100 * time.Millisecond
	drainMax = 256 << 10
)

func (r *refusal) WriteHeader(status int) {
	if status >= 400 {
		_ = r.SetReadDeadline(time.Now().Add(drainFor))
		_, _ = io.CopyN(io.Discard, r.Body(), drainMax)
	}
	r.Exchange.WriteHeader(status)
}

// serveSingleUpload delivers a whole body as one message.
func (p *Protocol) serveSingleUpload(x engine.Exchange, id string) {
	limit := p.cfg.MaxMessageSize
	if x.ContentLength() > int64(limit) {
		engine.WriteError(x, http.StatusRequestEntityTooLarge, "message too large: the limit is "+limitText(limit))
		return
	}
	bp := p.buffer()
	defer p.bufPool.Put(bp)
	buf := (*bp)[:limit+1]
	n, err := io.ReadFull(x.Body(), buf)
	switch {
	case err == nil: // filled limit+1 bytes: too large
		engine.WriteError(x, http.StatusRequestEntityTooLarge, "message too large: the limit is "+limitText(limit))
		return
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
	default:
		engine.WriteError(x, http.StatusBadRequest, "cannot read the request body")
		return
	}
	if err := p.e.Upstream(x.Context(), id, buf[:n]); err != nil {
		p.writeUpstreamError(x, err)
		return
	}
	x.WriteHeader(http.StatusOK)
}

// serveStreamedUpload reads a never-ending body (crossws's stream mode):
// each read, cut so as not to split a UTF-8 sequence, is one message.
func (p *Protocol) serveStreamedUpload(x engine.Exchange, id string) {
	ctx := x.Context()
	// The upload lasts as long as the peer: no server read timeout. This
	// comes before TrackUpload, whose abort (a past read deadline) must not
	// be undone.
	_ = x.SetReadDeadline(time.Time{})
	peer, local := p.e.Peer(id)
	if local {
		release, err := peer.TrackUpload(x, p.cfg.MaxUploads)
		if err != nil {
			engine.WriteError(x, http.StatusBadRequest, "invalid peer id")
			return
		}
		defer release()
	} else if exists, err := p.e.Exists(ctx, id); err != nil || !exists {
		if err == nil {
			err = backends.ErrUnknownSession
		}
		p.writeUpstreamError(x, err)
		return
	}

	bp := p.buffer()
	defer p.bufPool.Put(bp)
	buf := (*bp)[:max(p.cfg.MaxMessageSize, utf8.UTFMax)]
	body := x.Body()
	held := 0
	for {
		n, rerr := body.Read(buf[held:])
		n += held
		cut := n
		if rerr == nil {
			cut = completeUTF8(buf[:n])
		}
		if cut > 0 {
			// A panicking Message hook was reported; the upload goes on.
			if err := p.e.Upstream(ctx, id, buf[:cut]); err != nil && !errors.Is(err, engine.ErrHookPanicked) {
				p.writeUpstreamError(x, err)
				return
			}
		}
		held = copy(buf, buf[cut:n])
		if rerr == nil {
			continue
		}
		if errors.Is(rerr, io.EOF) {
			x.WriteHeader(http.StatusOK)
			return
		}
		if q, ok := p.e.Peer(id); !ok || q.Closed() {
			engine.WriteError(x, http.StatusGone, "peer closed")
			return
		}
		// The client went away or a newer upload replaced this one.
		x.WriteHeader(http.StatusOK)
		return
	}
}

func (p *Protocol) writeUpstreamError(x engine.Exchange, err error) {
	switch {
	case errors.Is(err, backends.ErrUnknownSession):
		engine.WriteError(x, http.StatusBadRequest, "invalid peer id")
	case errors.Is(err, backends.ErrClosed), errors.Is(err, engine.ErrShuttingDown):
		x.SetHeader("Retry-After", "1")
		engine.WriteError(x, http.StatusServiceUnavailable, "shutting down")
	case errors.Is(err, backends.ErrUnavailable):
		x.SetHeader("Retry-After", "1")
		engine.WriteError(x, http.StatusServiceUnavailable, "backend unavailable")
	default:
		engine.WriteError(x, http.StatusInternalServerError, "internal error")
	}
}

// completeUTF8 returns the length of the longest prefix of b that does not
// end inside a UTF-8 sequence: it holds back (at most 3) trailing bytes only
// when they are the valid start of a sequence that the next read may
// complete. Bytes that can never become valid UTF-8 are not held back.
func completeUTF8(b []byte) int {
	n := len(b)
	for i := n - 1; i >= 0 && i >= n-(utf8.UTFMax-1); i-- {
		if !utf8.RuneStart(b[i]) {
			continue // a continuation byte: look further back
		}
		if utf8.FullRune(b[i:]) { // complete, or never valid
			return n
		}
		return i
	}
	return n
}

func isOctetStream(contentType string) bool {
	mt, _, _ := strings.Cut(contentType, ";")
	return strings.EqualFold(strings.TrimSpace(mt), "application/octet-stream")
}

// buffer returns a pooled buffer of max(MaxMessageSize, 4)+1 bytes.
func (p *Protocol) buffer() *[]byte {
	if bp, ok := p.bufPool.Get().(*[]byte); ok {
		return bp
	}
	b := make([]byte, max(p.cfg.MaxMessageSize, utf8.UTFMax)+1)
	return &b
}
