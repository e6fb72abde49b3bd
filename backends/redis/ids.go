package redis

import (
	"errors"
	"hash/fnv"
	"math"
	"strconv"
	"strings"

	"github.com/ssebridge/ssebridge/backends"
)

// maxIDLen bounds node and session ids.
const maxIDLen = 64

// validID reports whether s can be a node or session id: 1 to 64 bytes of
// [A-Za-z0-9_-]. Ids are checked before any key is built from them, so a
// hostile id can neither escape its hash tag ("{", "}") nor add a key part
// (":").
func validID(s string) bool {
	if len(s) == 0 || len(s) > maxIDLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '_', c == '-':
		default:
			return false
		}
	}
	return true
}

// validPrefix reports whether s can be a key prefix: 1 to 64 bytes of
// [A-Za-z0-9_.-].
func validPrefix(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '_', c == '-', c == '.':
		default:
			return false
		}
	}
	return true
}

// maxTopicLen bounds topic names, which become part of Redis keys and hash
// fields.
const maxTopicLen = 1024

func checkTopic(topic string) error {
	if topic == "" {
		return errors.New("redis backend: empty topic name")
	}
	if len(topic) > maxTopicLen {
		return errors.New("redis backend: topic name longer than 1024 bytes")
	}
	return nil
}

// fnv1a32 is the 32-bit FNV-1a hash of s; a topic's bucket is
// fnv1a32(topic) % TopicBuckets.
func fnv1a32(s string) uint32 {
	h := fnv.New32a()
	_, _ = h.Write([]byte(s))
	return h.Sum32()
}

// streamID is a Redis stream entry id, ms-seq. Positions are stream ids of
// topic streams; marks are stored as ids <mark>-1 of the mark log.
type streamID struct {
	ms, seq uint64
}

// parseID parses "ms-seq". Both parts are required.
func parseID(s string) (streamID, bool) {
	i := strings.IndexByte(s, '-')
	if i <= 0 || i == len(s)-1 {
		return streamID{}, false
	}
	ms, err1 := strconv.ParseUint(s[:i], 10, 64)
	seq, err2 := strconv.ParseUint(s[i+1:], 10, 64)
	if err1 != nil || err2 != nil {
		return streamID{}, false
	}
	return streamID{ms, seq}, true
}

// parsePosition parses a Position: "" is 0-0.
func parsePosition(p backends.Position) (streamID, bool) {
	if p == "" {
		return streamID{}, true
	}
	return parseID(string(p))
}

func (id streamID) String() string {
	var buf [41]byte
	b := strconv.AppendUint(buf[:0], id.ms, 10)
	b = append(b, '-')
	b = strconv.AppendUint(b, id.seq, 10)
	return string(b)
}

// position returns id as a Position: 0-0 is "".
func (id streamID) position() backends.Position {
	if id.isZero() {
		return ""
	}
	return backends.Position(id.String())
}

func (id streamID) isZero() bool { return id.ms == 0 && id.seq == 0 }

// less compares numerically, never as strings.
func (id streamID) less(o streamID) bool {
	if id.ms != o.ms {
		return id.ms < o.ms
	}
	return id.seq < o.seq
}

// before returns the id just before id: ms-(seq-1), or
// (ms-1)-18446744073709551615 when seq is 0. The id before 0-0 is 0-0.
func (id streamID) before() streamID {
	switch {
	case id.seq > 0:
		return streamID{id.ms, id.seq - 1}
	case id.ms > 0:
		return streamID{id.ms - 1, math.MaxUint64}
	default:
		return id
	}
}

// next returns the id just after id (saturating).
func (id streamID) next() streamID {
	switch {
	case id.seq < math.MaxUint64:
		return streamID{id.ms, id.seq + 1}
	case id.ms < math.MaxUint64:
		return streamID{id.ms + 1, 0}
	default:
		return id
	}
}

func maxID(a, b streamID) streamID {
	if a.less(b) {
		return b
	}
	return a
}

// exclusiveStart is the XRANGE start for entries after id.
func exclusiveStart(id streamID) string {
	if id.isZero() {
		return "-"
	}
	return "(" + id.String()
}
