package redis

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"

	goredis "github.com/redis/go-redis/v9"

	"github.com/ssebridge/ssebridge/backends"
)

const (
	// readBatch is the COUNT of every XREAD (per stream).
	readBatch = 256
	// maxQueued bounds the inbox messages waiting in memory for Deliver
	// (Backend.queueLimit), maxQueuedBytes their size (Backend.queueBytes);
	// beyond either the
	// node stops reading its inbox.
	maxQueued      = 4096
	maxQueuedBytes = 32 << 20
)

// inboxMsg is an inbox entry waiting for its session's turn.
type inboxMsg struct {
	kind byte   // 'm' message, 'f' forwarded message, 'r' release notice
	data string // the message; for 'r' the record version after the claim
}

// inboxLoop reads the node's inbox and dispatches what it reads, then
// trims it from the inbox.
func (n *node) inboxLoop() {
	defer n.readers.Done()
	st := streak{n: n, what: "reading the inbox"}
	trim := streak{n: n, what: "trimming the inbox"}
	var bo backoff
	args := &goredis.XReadArgs{Streams: []string{n.inbox, "0-0"}, Count: readBatch, Block: n.b.cfg.BlockTimeout}
	for n.ctx.Err() == nil {
		if !n.disp.waitRoom(n.ctx) {
			return
		}
		res, err := n.b.client.XRead(n.ctx, args).Result()
		if err != nil && !errors.Is(err, goredis.Nil) {
			if n.ctx.Err() != nil {
				return
			}
			st.fail(err)
			if !sleep(n.ctx, bo.next()) {
				return
			}
			continue
		}
		st.ok()
		bo.reset()
		last := ""
		for _, s := range res {
			for _, m := range s.Messages {
				last = m.ID
				n.dispatch(m)
			}
		}
		if last == "" {
			continue
		}
		args.Streams[1] = last
		id, ok := parseID(last)
		if !ok {
			continue
		}
		// Entries before the one after last: what was just read.
		if err := n.b.client.XTrimMinID(n.ctx, n.inbox, id.next().String()).Err(); err != nil {
			if n.ctx.Err() != nil {
				return
			}
			trim.fail(err)
		} else {
			trim.ok()
		}
	}
}

func str(v any) string {
	s, _ := v.(string)
	return s
}

// dispatch queues an inbox entry for its session.
func (n *node) dispatch(m goredis.XMessage) {
	kind, session := str(m.Values["t"]), str(m.Values["s"])
	switch kind {
	case "m", "f", "r":
	case "x":
		return // the poke of Close
	default:
		n.report(fmt.Errorf("redis backend: node %s: inbox entry %s of unknown type %s", n.id, m.ID, short(kind)))
		return
	}
	if !validID(session) {
		n.report(fmt.Errorf("redis backend: node %s: inbox entry %s for invalid session %s", n.id, m.ID, short(session)))
		return
	}
	n.disp.push(session, inboxMsg{kind: kind[0], data: str(m.Values["d"])})
}

// handle hands one inbox entry to the Receiver. It runs on the session's
// queue goroutine, without locks.
func (n *node) handle(session string, m inboxMsg) {
	if n.closed.Load() {
		return
	}
	if m.kind == 'r' {
		v, _ := strconv.ParseInt(m.data, 10, 64)
		if n.forget(session, v) && !n.closed.Load() {
			n.recv.Release(session)
		}
		return
	}
	err := n.recv.Deliver(session, []byte(m.data))
	if err == nil {
		return
	}
	if errors.Is(err, backends.ErrUnknownSession) && m.kind == 'm' {
		// A claim may have raced with the route: the record names the
		// new owner, to which the message goes once.
		ferr := n.forward(session, m.data)
		if ferr == nil {
			return
		}
		if errors.Is(ferr, backends.ErrUnknownSession) {
			// The session is gone (it closed, or a client named a
			// session that never was: RouteTo does not look): nothing
			// to report.
			n.b.log.Debug("redis backend: dropped a message for a session that is gone", "node", n.id, "session", session)
			return
		}
		err = fmt.Errorf("%w (not forwarded: %w)", err, ferr)
	}
	n.report(fmt.Errorf("redis backend: node %s: dropped a message for session %s: %w", n.id, session, err))
}

// forward routes a message this node could not deliver to the session's
// current owner, if that is another node.
func (n *node) forward(session, data string) error {
	owner, err := n.owner(n.ctx, session)
	if err != nil {
		return err
	}
	if owner == n.id {
		return errors.New("the session record names this node")
	}
	return n.send(n.ctx, owner, "f", session, data, n.b.cfg.InboxLength)
}

// dispatcher keeps one FIFO per session with pending inbox messages, each
// drained by its own goroutine, so that one slow Deliver holds up its own
// session only.
type dispatcher struct {
	n      *node
	max    int // Backend.queueLimit
	maxB   int // Backend.queueBytes
	mu     sync.Mutex
	queues map[string]*queue
	total  int           // messages queued or being handled
	bytes  int           // their size
	room   chan struct{} // a token when total may have dropped enough for a batch
}

type queue struct {
	items []inboxMsg
	head  int
}

func (d *dispatcher) init(n *node) {
	d.n = n
	d.max = n.b.queueLimit
	d.maxB = n.b.queueBytes
	d.queues = make(map[string]*queue)
	d.room = make(chan struct{}, 1)
}

// waitRoom waits until a whole batch fits in memory; false when ctx is
// done first.
func (d *dispatcher) waitRoom(ctx context.Context) bool {
	for {
		d.mu.Lock()
		ok := d.hasRoom()
		d.mu.Unlock()
		if ok {
			return true
		}
		select {
		case <-d.room:
		case <-ctx.Done():
			return false
		}
	}
}

// hasRoom reports whether another batch may be read. d.mu is held.
func (d *dispatcher) hasRoom() bool {
	return d.total+readBatch <= d.max && d.bytes < d.maxB
}

func (d *dispatcher) push(session string, m inboxMsg) {
	d.mu.Lock()
	q := d.queues[session]
	start := q == nil
	if start {
		q = &queue{}
		d.queues[session] = q
	}
	q.items = append(q.items, m)
	d.total++
	d.bytes += len(m.data)
	d.mu.Unlock()
	if start {
		go d.drain(session, q)
	}
}

// drain hands the session's messages over in order and exits when the
// queue is empty.
func (d *dispatcher) drain(session string, q *queue) {
	handled := -1 // the size of the message just handled
	for {
		d.mu.Lock()
		if handled >= 0 {
			d.total--
			d.bytes -= handled
			if d.hasRoom() {
				select {
				case d.room <- struct{}{}:
				default:
				}
			}
		}
		if q.head == len(q.items) {
			delete(d.queues, session)
			d.mu.Unlock()
			return
		}
		m := q.items[q.head]
		q.items[q.head] = inboxMsg{}
		q.head++
		if q.head == len(q.items) {
			q.items, q.head = q.items[:0], 0
		} else if q.head >= 64 && 2*q.head >= len(q.items) {
			q.items = append(q.items[:0], q.items[q.head:]...)
			q.head = 0
		}
		d.mu.Unlock()
		d.n.handle(session, m)
		handled = len(m.data)
	}
}

// queued returns the number of messages waiting or being handled.
func (d *dispatcher) queued() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.total
}
