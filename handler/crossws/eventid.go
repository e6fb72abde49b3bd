package crossws

import (
	"strconv"
	"strings"

	"github.com/ssebridge/ssebridge/backends"
	"github.com/ssebridge/ssebridge/handler/engine"
)

// Event ids. Every event that can be resumed from carries an SSE id of the
// form "<peer id>.<seq>" or "<peer id>.<seq>.<mark>", where seq numbers the
// peer's frames from 1 (the crossws-id event carries seq 0, or on resume the
// seq the client had) and mark, when not 0, is the backend mark of the last
// publication the peer had been given (see package backends): with it, a
// node that does not hold the peer can tell which publications the client
// missed. The browser sends the last id back as Last-Event-ID when it
// reconnects, which is how a reconnecting stream finds its peer and what it
// missed. The close event carries "<peer id>.closed": a reconnection that
// presents it is told (204) that the peer is gone for good.

// maxSeq bounds the seqs accepted in a Last-Event-ID.
const maxSeq = 1 << 63

// closedMarker ends the event id of a close event.
const closedMarker = "closed"

// maxEventIDLength bounds a Last-Event-ID worth parsing.
const maxEventIDLength = engine.IDLength + 2 + 2*20

// appendEventID appends "<id>.<seq>", or "<id>.<seq>.<mark>" when mark is
// not 0.
func appendEventID(dst []byte, id string, seq, mark uint64) []byte {
	dst = append(dst, id...)
	dst = append(dst, '.')
	dst = strconv.AppendUint(dst, seq, 10)
	if mark != 0 {
		dst = append(dst, '.')
		dst = strconv.AppendUint(dst, mark, 10)
	}
	return dst
}

// parseEventID parses a Last-Event-ID. ok is false for anything this server
// did not write (such ids are ignored: the client gets a new peer).
func parseEventID(s string) (id string, c backends.Cursor, closed, ok bool) {
	if len(s) > maxEventIDLength {
		return "", c, false, false
	}
	id, rest, found := strings.Cut(s, ".")
	if !found || !engine.ValidID(id) {
		return "", c, false, false
	}
	if rest == closedMarker {
		return id, c, true, true
	}
	seqText, markText, hasMark := strings.Cut(rest, ".")
	seq, ok1 := parseDecimal(seqText)
	mark, ok2 := parseDecimal(markText)
	// Seqs count frames: a seq this large was never written, and would
	// leave no room after it for a resumed log.
	if !ok1 || seq >= maxSeq || hasMark && (!ok2 || mark == 0) {
		return "", c, false, false
	}
	return id, backends.Cursor{Seq: seq, Mark: mark}, false, true
}

// parseDecimal parses a canonical decimal uint64 (no sign, no leading
// zero); "" is 0 and not ok.
func parseDecimal(s string) (uint64, bool) {
	if s == "" || (len(s) > 1 && s[0] == '0') {
		return 0, false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
	}
	v, err := strconv.ParseUint(s, 10, 64)
	return v, err == nil
}
