package engine

import "fmt"

// hold keeps a peer's live publications aside while its protocol prepares
// what must reach the client before them (see Peer.Hold).
type hold struct {
	frames []heldFrame
	bytes  int
}

type heldFrame struct {
	frame  []byte
	mark   uint64
	topic  string
	offset uint64
}

// PushFrame queues a frame that the peer's protocol encoded (a reply to a
// command, say). Applications use Send. It returns ErrClosed for a closed
// peer, ErrTooLarge for a frame larger than the whole queue, and
// ErrSlowConsumer (closing the peer) when the queue is full.
func (p *Peer) PushFrame(frame []byte) error { return p.push(frame, 0) }

// Hold starts keeping the peer's live publications aside, in order, instead
// of queuing them, until Release. A protocol holds them while it subscribes
// the peer and reads the topics' history, so that its answer (with the
// publications the client missed) reaches the client before any live
// publication, and none is delivered twice. Frames pushed otherwise
// (PushFrame, Send) are not held. Held publications have a budget of their
// own, the queue size: more closes the peer as a slow consumer, and so
// does Release when they do not fit the queue. It returns ErrClosed for a
// closed peer, and
// an error when the peer's publications are already held.
func (p *Peer) Hold() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case p.state != stateOpen:
		return ErrClosed
	case p.hold != nil:
		return fmt.Errorf("ssebridge: peer %s: publications already held", p.id)
	}
	p.hold = new(hold)
	return nil
}

// Release queues frames, then the publications held since Hold, except
// those of a topic in covered whose offset is not above covered[topic]
// (the client got them in frames already, or they predate its position),
// and stops holding. Publications with offset 0 (a backend without
// numbered history) are never dropped. It returns what pushing the frames
// returns (ErrClosed, ErrSlowConsumer).
func (p *Peer) Release(frames [][]byte, covered map[string]uint64) error {
	p.mu.Lock()
	h := p.hold
	p.hold = nil
	if p.state != stateOpen {
		p.mu.Unlock()
		return ErrClosed
	}
	idle := p.log.cursor == p.log.next
	for _, f := range frames {
		if _, ok := p.log.push(f, p.mark, p.e.cfg.QueueSize); !ok {
			return p.overflowLocked()
		}
	}
	if h != nil {
		for i, f := range h.frames {
			if c, ok := covered[f.topic]; ok && f.offset != 0 && f.offset <= c {
				continue
			}
			p.mark = max(p.mark, f.mark)
			if _, ok := p.log.push(f.frame, p.mark, p.e.cfg.QueueSize); !ok {
				clear(h.frames[i:])
				return p.overflowLocked()
			}
		}
	}
	st := p.stream
	queued := p.log.cursor != p.log.next
	p.mu.Unlock()
	if st != nil && idle && queued {
		st.signal()
	}
	return nil
}

// pushPublication queues a publication's frame, or holds it.
func (p *Peer) pushPublication(frame []byte, mark uint64, topic string, offset uint64) error {
	if err := p.lockToPush(frame); err != nil {
		return err
	}
	if h := p.hold; h != nil {
		h.bytes += cost(frame)
		if h.bytes > p.e.cfg.QueueSize {
			p.hold = nil
			return p.overflowLocked()
		}
		h.frames = append(h.frames, heldFrame{frame: frame, mark: mark, topic: topic, offset: offset})
		p.mu.Unlock()
		return nil
	}
	return p.appendLocked(frame, mark)
}
