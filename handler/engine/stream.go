package engine

import (
	"errors"
	"sync"
	"time"

	"github.com/ssebridge/ssebridge/backends"
)

// Stream is one HTTP response carrying a peer's frames. The protocol creates
// it with Engine.Open or Engine.Resume, sets its response headers and calls
// Run on the goroutine serving the request.
type Stream struct {
	p       *Peer
	x       Exchange
	resumed bool
	last    backends.Cursor // where the resuming client said it is, or zero

	wake     chan struct{} // a frame was queued or a close requested
	stop     chan struct{} // closed when another stream took over or the peer closed
	stopOnce sync.Once
}

func newStream(p *Peer, x Exchange) *Stream {
	return &Stream{p: p, x: x, wake: make(chan struct{}, 1), stop: make(chan struct{})}
}

// Peer returns the peer the stream serves.
func (st *Stream) Peer() *Peer { return st.p }

// LastSeq returns the sequence number the resuming client said it had
// received (0 for a new peer).
func (st *Stream) LastSeq() uint64 { return st.last.Seq }

// LastMark returns the mark the resuming client's last frame carried (0 for
// a new peer).
func (st *Stream) LastMark() uint64 { return st.last.Mark }

func (st *Stream) signal() {
	select {
	case st.wake <- struct{}{}:
	default:
	}
}

func (st *Stream) halt() { st.stopOnce.Do(func() { close(st.stop) }) }

var errStreamDeadline = errors.New("ssebridge: stream reached its maximum duration")

// Run runs the Open hook (new peer) or Resume hook (resumed peer), then
// (or, for a peer opened with PeerOptions.HelloFirst, while the hook runs
// on its own goroutine once hello is written) hands the response to the
// exchange's StreamBody: status 200, the headers
// already set on the exchange, hello, and then the peer's frames (those
// queued by the hook first) until the client goes away (the exchange's
// context is done, or a write fails: on runtimes that give no disconnect
// signal, fasthttp and Lambda, at the next frame or heartbeat), the peer
// closes, another stream takes the peer over or the stream's time is up. On runtimes that write while the handler runs,
// Run returns when the response is complete; on the others (see
// Exchange.StreamBody) it returns once the body is handed over.
func (st *Stream) Run(hello []byte) {
	// The body may run after the request is gone: take what it needs now.
	done := st.x.Context().Done()
	if st.p.helloFirst {
		st.x.StreamBody(200, func() { st.body(done, hello, true) })
		return
	}
	// The hook runs before the client learns its peer id, so that what it
	// sets up (subscriptions, say) is in place before the client can act.
	st.runOpenHook()
	st.x.StreamBody(200, func() { st.body(done, hello, false) })
}

// body writes hello and then the peer's frames; done is closed when the
// client goes away or the runtime ends the response. With openHook, the
// Open hook is started once hello is written.
func (st *Stream) body(done <-chan struct{}, hello []byte, openHook bool) {
	p, e := st.p, st.p.e
	if err := st.write(hello); err != nil {
		p.detach(st)
		return
	}
	if openHook {
		e.finalizing.Add(1) // Shutdown waits for the hook too
		go func() {
			defer e.finalizing.Add(-1)
			st.runOpenHook()
		}()
	}

	var heartbeat *time.Timer
	var beat <-chan time.Time
	if e.cfg.Heartbeat > 0 {
		heartbeat = time.NewTimer(e.cfg.Heartbeat)
		defer heartbeat.Stop()
		beat = heartbeat.C
	}
	var limit <-chan time.Time
	if e.cfg.MaxStreamDuration > 0 {
		t := time.NewTimer(e.cfg.MaxStreamDuration)
		defer t.Stop()
		limit = t.C
	}

	for {
		sc := getScratch()
		frames, upto, closing, ok := st.take(sc)
		if !ok {
			putScratch(sc)
			return // another stream took over, or the peer was finalized
		}
		if len(frames) > 0 {
			err := st.writeFrames(sc, upto)
			putScratch(sc)
			if err != nil {
				p.detach(st)
				return
			}
			p.advance(st, upto)
			if heartbeat != nil {
				heartbeat.Reset(e.cfg.Heartbeat)
			}
			continue
		}
		putScratch(sc) // an idle stream holds no buffer
		if closing {
			st.finish()
			return
		}
		select {
		case <-st.wake:
		case <-st.stop:
			return
		case <-done:
			p.detach(st)
			return
		case <-limit:
			e.log.Debug("ssebridge: stream ended", "peer", p.id, "reason", errStreamDeadline)
			p.detach(st)
			return
		case <-beat:
			if err := st.writeOnce(p.codec.AppendHeartbeat); err != nil {
				p.detach(st)
				return
			}
			p.mu.Lock()
			p.log.compact() // idle: give back what a burst grew
			p.mu.Unlock()
			heartbeat.Reset(e.cfg.Heartbeat)
		}
	}
}

func (st *Stream) runOpenHook() {
	p := st.p
	hooks := p.hooks
	name, h := "Open", hooks.Open
	if st.resumed {
		name, h = "Resume", hooks.Resume
	}
	if h == nil {
		return
	}
	p.in.Lock()
	defer p.in.Unlock()
	p.runHook(name, func() { h(p) })
}

// take puts the frames to write next (up to maxBatch bytes) in sc.frames and
// returns them, the seq after them, and whether the peer is closing. ok is
// false when this stream is no longer the peer's.
func (st *Stream) take(sc *scratch) (frames []logEntry, upto uint64, closing, ok bool) {
	p := st.p
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stream != st {
		return nil, 0, false, false
	}
	closing = p.state == stateClosing
	if closing && !p.drain {
		return nil, 0, true, true
	}
	sc.frames, upto = p.log.pending(sc.frames[:0], maxBatch)
	return sc.frames, upto, closing, true
}

// advance records that the frames before upto were written by st.
func (p *Peer) advance(st *Stream, upto uint64) {
	p.mu.Lock()
	if p.stream == st && p.state != stateClosed {
		replay := p.e.cfg.ReplaySize
		if p.ephemeral {
			replay = 0 // never resumed: keep nothing written
		}
		p.log.advance(upto, replay)
	}
	p.mu.Unlock()
}

// writeFrames writes the frames in sc, each preceded by its id, in one
// Write.
func (st *Stream) writeFrames(sc *scratch, upto uint64) error {
	p := st.p
	buf := sc.buf[:0]
	seq := upto - uint64(len(sc.frames))
	for i, f := range sc.frames {
		buf = p.codec.AppendID(buf, p, seq+uint64(i), f.mark)
		buf = append(buf, f.frame...)
	}
	sc.buf = buf
	return st.write(buf)
}

// writeOnce writes what app appends, through a pooled buffer.
func (st *Stream) writeOnce(app func([]byte) []byte) error {
	sc := getScratch()
	sc.buf = app(sc.buf[:0])
	err := st.write(sc.buf)
	putScratch(sc)
	return err
}

// scratch is a writer's working memory for one batch. It comes from a pool
// and goes back after the write, so that idle streams hold no buffers and
// busy ones do not allocate.
type scratch struct {
	buf    []byte
	frames []logEntry
}

var scratches = sync.Pool{New: func() any { return new(scratch) }}

func getScratch() *scratch { return scratches.Get().(*scratch) }

func putScratch(sc *scratch) {
	clear(sc.frames) // do not pin frames the logs may drop
	sc.frames = sc.frames[:0]
	if cap(sc.buf) > 2*maxBatch {
		sc.buf = nil // one unusually large frame: do not keep its buffer
	}
	scratches.Put(sc)
}

// write writes b and flushes, within the write timeout.
func (st *Stream) write(b []byte) error {
	e := st.p.e
	derr := st.x.SetWriteDeadline(time.Now().Add(e.cfg.WriteTimeout))
	deadline := derr == nil
	if !deadline {
		e.noDeadline.Do(func() {
			e.log.Warn("ssebridge: the runtime cannot set write deadlines: a client that stops reading blocks its stream until the connection breaks", "err", derr)
		})
	}
	_, err := st.x.Write(b)
	if err == nil {
		err = st.x.Flush()
	}
	if deadline {
		// An HTTP/2 write deadline is a timer that resets the stream when
		// it fires, even when idle: clear it after each batch.
		_ = st.x.SetWriteDeadline(time.Time{})
	}
	return err
}

// finish completes a close requested while st was the peer's stream: it
// writes the close frame if asked, then finalizes the peer.
func (st *Stream) finish() {
	p := st.p
	p.mu.Lock()
	final, d := p.final, p.closeInfo
	p.mu.Unlock()
	if final {
		_ = st.writeOnce(func(dst []byte) []byte { return p.codec.AppendClose(dst, p, d) })
	}
	p.finalize()
}
