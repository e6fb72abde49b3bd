package sse_test

import (
	"strings"
	"unicode/utf8"
)

// This file holds an event-stream parser written from the WHATWG HTML
// standard, §9.2.5 "Parsing an event stream" and §9.2.6 "Interpreting an
// event stream", for checking the encoder. It shares no code with the
// package under test on purpose: the tests only mean something if the two
// sides were written independently. It favours being obviously like the
// spec over being fast.

// clientEvent is one event as a browser's EventSource would dispatch it.
type clientEvent struct {
	Type        string // event type; "message" when the stream gave none
	Data        string // data buffer without its final LF
	LastEventID string // the last event id string at dispatch time
}

// streamResult is everything a client observes while reading a stream.
type streamResult struct {
	Events   []clientEvent
	Retries  []string // values of every retry field that set the reconnection time
	Fields   []string // names of every field line, in order (comments excluded)
	Comments []string // text of every comment line, after the ':'
	// Trailing is the text after the last line terminator. A client
	// discards it at the end of the stream.
	Trailing string
	// LastEventID is the last event id buffer at the end of the stream.
	LastEventID string
	// Pending reports an incomplete event (fields seen but no blank line
	// yet) at the end of the stream; a client never dispatches it.
	Pending bool
}

// parseStream interprets a complete event stream.
func parseStream(stream string) streamResult {
	var (
		res      streamResult
		data     strings.Builder // the data buffer
		haveData bool            // the data buffer is not the empty string
		evType   string          // the event type buffer
		lastID   string          // the last event ID buffer
		pending  bool
	)

	// The stream is decoded as UTF-8 with one leading BOM ignored.
	stream = strings.TrimPrefix(stream, "\uFEFF")
	if !utf8.ValidString(stream) {
		// A UTF-8 decoder replaces invalid sequences with U+FFFD.
		stream = strings.ToValidUTF8(stream, "\uFFFD")
	}

	dispatch := func() {
		pending = false
		// Step 1: the last event ID string takes the buffer's value
		// (recorded in the event below).
		// Step 2: an empty data buffer resets the buffers, no event.
		if !haveData {
			data.Reset()
			evType = ""
			return
		}
		// Step 3: remove one trailing LF.
		d := strings.TrimSuffix(data.String(), "\n")
		typ := evType
		if typ == "" {
			typ = "message"
		}
		res.Events = append(res.Events, clientEvent{Type: typ, Data: d, LastEventID: lastID})
		data.Reset()
		haveData = false
		evType = ""
	}

	process := func(field, value string) {
		res.Fields = append(res.Fields, field)
		pending = true
		switch field {
		case "event":
			evType = value
		case "data":
			data.WriteString(value)
			data.WriteByte('\n')
			haveData = true
		case "id":
			if !strings.Contains(value, "\x00") {
				lastID = value
			}
		case "retry":
			if value != "" && strings.Trim(value, "0123456789") == "" {
				res.Retries = append(res.Retries, value)
			}
		default:
			// Unknown fields are ignored.
		}
	}

	for {
		// A line ends at CRLF, LF or CR, whichever comes first.
		i := strings.IndexAny(stream, "\r\n")
		if i < 0 {
			res.Trailing = stream
			break
		}
		line := stream[:i]
		if stream[i] == '\r' && i+1 < len(stream) && stream[i+1] == '\n' {
			stream = stream[i+2:]
		} else {
			stream = stream[i+1:]
		}

		switch {
		case line == "":
			dispatch()
		case line[0] == ':':
			res.Comments = append(res.Comments, line[1:])
		default:
			field, value, found := strings.Cut(line, ":")
			if found {
				value = strings.TrimPrefix(value, " ")
			}
			process(field, value)
		}
	}
	res.LastEventID = lastID
	res.Pending = pending
	return res
}
