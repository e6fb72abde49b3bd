package engine

// frameLog is a peer's outbound log: a ring of frames numbered with
// consecutive sequence numbers. Frames at or after the cursor are queued
// (not yet written to the current stream); frames before it were written and
// are kept for replay while they fit in the replay budget.
//
// Frames are shared, immutable byte slices: a publication is encoded once
// and the same bytes are appended to every subscriber's log. Each entry also
// carries a mark: the highest backend mark among the publications queued to
// the peer up to and including this frame (see package backends), which the
// frame's event id tells the client so that any node can resume it.
type frameLog struct {
	ring  []logEntry // len is a power of two, or 0
	head  int        // ring index of the oldest entry
	n     int        // number of entries
	first uint64     // seq of the oldest entry (== next when empty)
	next  uint64     // seq the next appended frame gets

	cursor   uint64 // seq of the next frame to write
	queued   int    // cost of frames with seq >= cursor
	retained int    // cost of frames with seq < cursor
	// rewound is the part of queued that a rewind moved back from
	// retained: frames written once already, which count against the
	// replay budget, not against the queue limit.
	rewound int
	// low counts the drains in a row that left a ring without replay
	// budget mostly empty.
	low int
}

// shrinkAfter is how many drains in a row must leave a ring without
// replay budget at most 1/8 full before it is halved.
const shrinkAfter = 64

// logEntry is one frame of a log and its mark.
type logEntry struct {
	frame []byte
	mark  uint64
}

// newFrameLog returns an empty log whose first frame will have seq next.
func newFrameLog(next uint64) frameLog { return frameLog{first: next, next: next, cursor: next} }

// entryCost is what one entry costs beyond its frame bytes (its slice header
// and mark in the ring); the byte budgets count it so that many tiny frames
// cannot hold much more memory than the budgets say.
const entryCost = 32

func cost(frame []byte) int { return len(frame) + entryCost }

func (l *frameLog) at(seq uint64) logEntry {
	i := (l.head + int(seq-l.first)) & (len(l.ring) - 1)
	return l.ring[i]
}

// push appends a frame and returns its seq. It refuses (ok false) a frame
// that would make the queued bytes exceed limit.
func (l *frameLog) push(frame []byte, mark uint64, limit int) (seq uint64, ok bool) {
	if l.queued-l.rewound+cost(frame) > limit {
		return 0, false
	}
	if l.n == len(l.ring) {
		l.grow()
	}
	l.ring[(l.head+l.n)&(len(l.ring)-1)] = logEntry{frame, mark}
	l.n++
	seq = l.next
	l.next++
	l.queued += cost(frame)
	return seq, true
}

func (l *frameLog) grow() {
	size := 2 * len(l.ring)
	if size == 0 {
		size = 8
	}
	l.resize(size)
}

func (l *frameLog) resize(size int) {
	ring := make([]logEntry, size)
	for i := 0; i < l.n; i++ {
		ring[i] = l.ring[(l.head+i)&(len(l.ring)-1)]
	}
	l.ring = ring
	l.head = 0
}

// pending appends to dst the entries from the cursor on, at most maxBytes of
// frames (but at least one), and returns the seq after the last one taken.
func (l *frameLog) pending(dst []logEntry, maxBytes int) ([]logEntry, uint64) {
	seq, size := l.cursor, 0
	for ; seq < l.next; seq++ {
		e := l.at(seq)
		if size > 0 && size+len(e.frame) > maxBytes {
			break
		}
		dst = append(dst, e)
		size += len(e.frame)
	}
	return dst, seq
}

// advance marks the frames before upto as written and drops the oldest
// written frames beyond the replay budget.
func (l *frameLog) advance(upto uint64, replay int) {
	for ; l.cursor < upto; l.cursor++ {
		n := cost(l.at(l.cursor).frame)
		l.queued -= n
		l.retained += n
		l.rewound = max(l.rewound-n, 0)
	}
	l.trim(replay)
}

func (l *frameLog) trim(replay int) {
	for l.retained > replay && l.first < l.cursor {
		i := l.head
		l.retained -= cost(l.ring[i].frame)
		l.ring[i] = logEntry{}
		l.head = (l.head + 1) & (len(l.ring) - 1)
		l.n--
		l.first++
	}
	switch {
	case len(l.ring) <= 64:
	case replay == 0:
		// Nothing is kept for replay: the ring holds only what is queued,
		// which swings between empty and a burst's worth. Shrinking it as
		// it drains would allocate on every swing: it shrinks when the
		// stream is idle (compact), or after many drains in a row that
		// left it mostly empty (a stream never idle long enough).
		if l.n >= len(l.ring)/8 {
			l.low = 0
		} else if l.low++; l.low >= shrinkAfter {
			l.low = 0
			l.resize(len(l.ring) / 2)
		}
	case l.n < len(l.ring)/4:
		l.resize(len(l.ring) / 2)
	}
}

// compact shrinks an empty ring that a burst made large, for a stream
// that went idle.
func (l *frameLog) compact() {
	if l.n == 0 && len(l.ring) > 64 {
		l.resize(64)
	}
}

// canRewind reports whether a client that received every frame up to and
// including seq last can be given all the frames after it.
func (l *frameLog) canRewind(last uint64) bool {
	return last < l.next && last+1 >= l.first
}

// rewind moves the cursor so that the frames after last are written again.
// The caller checked canRewind.
func (l *frameLog) rewind(last uint64) {
	old := l.cursor
	l.cursor = last + 1
	l.queued, l.retained, l.rewound = 0, 0, 0
	for seq := l.first; seq < l.next; seq++ {
		switch c := cost(l.at(seq).frame); {
		case seq < l.cursor:
			l.retained += c
		case seq < old:
			l.queued += c
			l.rewound += c
		default:
			l.queued += c
		}
	}
}

// release drops every frame, for a closed peer.
func (l *frameLog) release() {
	l.ring = nil
	l.head, l.n = 0, 0
	l.first, l.cursor = l.next, l.next
	l.queued, l.retained, l.rewound = 0, 0, 0
}
