// Package sse writes the Server-Sent Events wire format ("text/event-stream",
// WHATWG HTML Living Standard §9.2) and is the only place in ssebridge that
// does so.
//
// # The format
//
// An event stream is UTF-8 text made of lines. A line is a field
// ("name: value"), a comment (a line starting with ':') or blank. The client
// collects fields until a blank line, and the blank line dispatches the event:
//
//	id: 13435
//	event: message
//	retry: 3000
//	data: first line
//	data: second line
//
// The fields this package writes are:
//
//   - "id:", the event id. The client remembers it and sends it back in the
//     Last-Event-ID header when it reconnects. An empty id resets it.
//   - "event:", the event type. Clients dispatch events without one as type
//     "message".
//   - "retry:", the reconnection delay in milliseconds (ASCII digits only).
//   - "data:", one line of the payload. The client joins consecutive data
//     lines of one event with LF.
//
// Every line this package writes ends in a single LF and every field name is
// followed by a colon and exactly one space. The client strips one space after
// the colon, so a value that itself starts with a space (" x") arrives intact.
//
// # Line terminators in data and comments
//
// A client accepts LF, CR and CRLF as line terminators, so a payload can only
// travel as a sequence of lines. [AppendData] splits its input at every LF, CR
// and CRLF and writes one "data: " line per piece. The client joins them with
// LF, which means that what arrives is exactly the text that was sent, with
// every CR and CRLF turned into LF. A payload that ends in a line terminator
// gets a final empty "data: " line, so the trailing newline arrives too; an
// empty payload is written as a single "data: " line and still dispatches an
// event (with empty data). NUL and every other character travel unchanged.
// Comments ([AppendComment]) are split the same way, one ':' line per piece.
//
// Clients cannot tell the three terminators apart, so binary data or text in
// which CR must survive has to be encoded first (base64, JSON, …).
//
// # Why ids and event types are validated
//
// An id or event type is a single field value: it cannot be split over
// lines. A CR or LF inside one would end the field early, and whatever
// followed it would be read as a field of its own: an id of
// "1\ndata: forged" injects a data line, and "1\n\n" dispatches an event
// early. Such values are therefore refused with [ErrInvalidID] or
// [ErrInvalidType] instead of being written. NUL is refused in ids because
// clients ignore an id field that contains NUL (the previous id would
// silently stay in force). It is refused in event types too, so that ids and
// types follow one rule and no value that passes here can be cut short by a
// proxy or client that treats NUL as the end of a string. An event type must
// also be non-empty: an empty "event:" field makes the client use "message",
// so omit the field instead.
//
// # Appending
//
// Every function appends to a caller-supplied byte slice and returns the
// extended slice, like [strconv.AppendInt]. When dst has enough spare
// capacity nothing is allocated, so a connection can encode every event into
// one reused buffer. When dst must grow, it grows once per call to the size
// the whole write needs. On error the functions return dst unchanged.
package sse
