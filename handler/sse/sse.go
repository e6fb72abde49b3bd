package sse

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
	"unsafe"
)

// ErrInvalidID is returned (wrapped, with the offending byte and its offset)
// for an event id that contains CR, LF or NUL. See the package documentation
// for why such ids are refused.
var ErrInvalidID = errors.New("sse: invalid event id")

// ErrInvalidType is returned (wrapped, with the reason) for an event type that
// contains CR, LF or NUL, or that is empty where a type is required.
var ErrInvalidType = errors.New("sse: invalid event type")

// Field prefixes, each ending in exactly one space. (An empty comment line
// is written as a bare ":".) Every line ends in a single LF.
const (
	prefixID      = "id: "
	prefixType    = "event: "
	prefixRetry   = "retry: "
	prefixData    = "data: "
	prefixComment = ": "
)

// maxRetryDigits is the number of decimal digits of the largest
// time.Duration expressed in milliseconds (9223372036854).
const maxRetryDigits = 13

// badByte returns the offset of the first CR, LF or NUL in s, or -1.
func badByte(s string) int {
	for i := 0; i < len(s); i++ {
		// One comparison for every byte above CR, which is nearly all text.
		if c := s[i]; c <= '\r' && (c == '\n' || c == '\r' || c == 0) {
			return i
		}
	}
	return -1
}

// byteName names a byte refused by badByte, for error messages.
func byteName(c byte) string {
	switch c {
	case '\n':
		return "LF"
	case '\r':
		return "CR"
	default:
		return "NUL"
	}
}

// CheckID reports whether id can be written as the value of an "id:" field.
// It returns nil for a valid id (the empty id is valid: it resets the
// client's last event id) and an error wrapping [ErrInvalidID] for an id that
// contains CR, LF or NUL.
func CheckID(id string) error {
	if i := badByte(id); i >= 0 {
		return fmt.Errorf("%w: %s at byte %d", ErrInvalidID, byteName(id[i]), i)
	}
	return nil
}

// CheckType reports whether name can be written as the value of an "event:"
// field. It returns nil for a valid name and an error wrapping
// [ErrInvalidType] for an empty name or one that contains CR, LF or NUL.
func CheckType(name string) error {
	if name == "" {
		return fmt.Errorf("%w: empty", ErrInvalidType)
	}
	if i := badByte(name); i >= 0 {
		return fmt.Errorf("%w: %s at byte %d", ErrInvalidType, byteName(name[i]), i)
	}
	return nil
}

// AppendID appends the field "id: <id>\n" to dst and returns the extended
// slice. If id is invalid (see [CheckID]) it returns dst unchanged and an
// error wrapping [ErrInvalidID].
func AppendID(dst []byte, id string) ([]byte, error) {
	if err := CheckID(id); err != nil {
		return dst, err
	}
	return appendField(dst, prefixID, id), nil
}

// AppendType appends the field "event: <name>\n" to dst and returns the
// extended slice. If name is invalid (see [CheckType]) it returns dst
// unchanged and an error wrapping [ErrInvalidType].
func AppendType(dst []byte, name string) ([]byte, error) {
	if err := CheckType(name); err != nil {
		return dst, err
	}
	return appendField(dst, prefixType, name), nil
}

// AppendRetry appends the field "retry: <milliseconds>\n" to dst and returns
// the extended slice. The delay is written in whole milliseconds (truncated,
// as by [time.Duration.Milliseconds]); a negative delay is written as 0.
func AppendRetry(dst []byte, d time.Duration) []byte {
	ms := max(d.Milliseconds(), 0)
	dst = append(dst, prefixRetry...)
	dst = strconv.AppendInt(dst, ms, 10)
	return append(dst, '\n')
}

// AppendData appends data as "data: <line>\n" lines to dst and returns the
// extended slice. data is split at every LF, CR and CRLF; a line terminator at
// the very end yields a final empty "data: \n" line, and empty data yields
// the single line "data: \n". A client therefore receives exactly data, with
// CR and CRLF turned into LF. The event is not dispatched until [AppendEnd]
// writes the blank line.
func AppendData(dst []byte, data string) []byte {
	return appendLines(dst, data, false, 0)
}

// AppendDataBytes is [AppendData] for a byte slice. data is read in place,
// never copied into a string; as with append, it must not overlap the spare
// capacity of dst.
func AppendDataBytes(dst []byte, data []byte) []byte {
	return appendLines(dst, unsafe.String(unsafe.SliceData(data), len(data)), false, 0)
}

// AppendComment appends text as comment lines (": <line>\n") to dst and
// returns the extended slice. text is split into lines like [AppendData]
// splits data; an empty line is written as ":\n", so empty text yields the
// single line ":\n". Clients ignore comments: they carry no data, never
// dispatch an event and cannot inject a field, which makes them suitable as
// keep-alive heartbeats.
func AppendComment(dst []byte, text string) []byte {
	return appendLines(dst, text, true, 0)
}

// AppendEnd appends the blank line ("\n") that ends an event and makes the
// client dispatch it.
func AppendEnd(dst []byte) []byte {
	return append(dst, '\n')
}

// Event is one server-sent event, written by [Append].
type Event struct {
	// ID is written as an "id:" field when non-empty. It must not contain
	// CR, LF or NUL.
	ID string
	// Type is written as an "event:" field when non-empty. It must not
	// contain CR, LF or NUL. Clients treat an event without a type as
	// "message".
	Type string
	// Retry is written as a "retry:" field, in whole milliseconds, when
	// greater than zero.
	Retry time.Duration
	// Data is always written, as at least one "data:" line (see
	// [AppendData]), so that the event is dispatched even when Data is
	// empty.
	Data string
}

// Append appends the whole event ev to dst, in the order id, event, retry,
// data lines, blank line, and returns the extended slice. If ev.ID or
// ev.Type is invalid it returns dst unchanged and an error wrapping
// [ErrInvalidID] or [ErrInvalidType]. dst grows at most once.
func Append(dst []byte, ev Event) ([]byte, error) {
	// Validate everything before writing anything, so that errors leave dst
	// unchanged.
	// badByte is inlined; the Check functions are called only to build the
	// errors.
	need := len(prefixData) + len(ev.Data) + len("\n\n")
	if ev.ID != "" {
		if badByte(ev.ID) >= 0 {
			return dst, CheckID(ev.ID)
		}
		need += len(prefixID) + len(ev.ID) + 1
	}
	if ev.Type != "" {
		if badByte(ev.Type) >= 0 {
			return dst, CheckType(ev.Type)
		}
		need += len(prefixType) + len(ev.Type) + 1
	}
	if ev.Retry > 0 {
		need += len(prefixRetry) + maxRetryDigits + 1
	}
	if cap(dst)-len(dst) < need {
		// need counts the data as one line; make room for all of them now
		// so that dst grows once instead of once per line.
		dst = growLines(dst, len(prefixData), ev.Data, need)
	}
	if ev.ID != "" {
		dst = appendField(dst, prefixID, ev.ID)
	}
	if ev.Type != "" {
		dst = appendField(dst, prefixType, ev.Type)
	}
	if ev.Retry > 0 {
		dst = AppendRetry(dst, ev.Retry)
	}
	dst = appendLines(dst, ev.Data, false, 1)
	return append(dst, '\n'), nil
}

// appendField appends "<prefix><value>\n" for a value already checked to be a
// single line.
func appendField(dst []byte, prefix, value string) []byte {
	dst = append(dst, prefix...)
	dst = append(dst, value...)
	return append(dst, '\n')
}

// growLines returns dst with room for fixed bytes plus every line break in s
// turned into a line of its own ("\n" + prefix). CRLF is counted as two
// breaks, so the room may be a little more than needed, never less.
func growLines(dst []byte, prefixLen int, s string, fixed int) []byte {
	breaks := strings.Count(s, "\n") + strings.Count(s, "\r")
	return slices.Grow(dst, fixed+breaks*(prefixLen+1))
}

// appendLines appends "data: <line>\n" (or, if comment, ": <line>\n", and
// ":\n" for an empty line) for every line of s. It splits at LF, CR and
// CRLF, and a terminator at the very end of s yields a final empty line.
// When dst runs out of room it is grown once, for all the remaining lines
// plus extra bytes that the caller appends afterwards.
//
// Line ends are found with strings.IndexByte, which is vectorised. The
// offsets of the next LF and of the next CR are both remembered and each is
// searched for again only once the line that contains it has been written,
// so every byte of s is scanned at most once for each of the two, whatever
// the mix of terminators (no quadratic rescans on CR-only text).
//
// The prefixes are constants selected by a loop-invariant flag rather than
// a string parameter: appending a constant compiles to a few moves instead
// of a call to memmove, which is worth 15% on multi-line data.
func appendLines(dst []byte, s string, comment bool, extra int) []byte {
	prefixLen := len(prefixData)
	if comment {
		prefixLen = len(prefixComment)
	}
	lf := strings.IndexByte(s, '\n')
	cr := strings.IndexByte(s, '\r')
	for {
		// end: where the current line stops; next: where the following
		// line starts, or -1 if this is the last line.
		end, next := len(s), -1
		switch {
		case cr >= 0 && (lf < 0 || cr < lf):
			end, next = cr, cr+1
			if lf == next { // CRLF
				next++
			}
		case lf >= 0:
			end, next = lf, lf+1
		}

		if cap(dst)-len(dst) < prefixLen+end+1 {
			dst = growLines(dst, prefixLen, s, prefixLen+len(s)+1+extra)
		}
		switch {
		case !comment:
			dst = append(dst, prefixData...)
		case end > 0:
			dst = append(dst, prefixComment...)
		default: // an empty comment line has no trailing space
			dst = append(dst, ':')
		}
		dst = append(dst, s[:end]...)
		dst = append(dst, '\n')

		if next < 0 {
			return dst
		}
		s = s[next:]
		// Rebase the remembered offsets onto the rest of s; search again
		// for one that has been consumed.
		if lf >= 0 {
			if lf -= next; lf < 0 {
				lf = strings.IndexByte(s, '\n')
			}
		}
		if cr >= 0 {
			if cr -= next; cr < 0 {
				cr = strings.IndexByte(s, '\r')
			}
		}
	}
}
