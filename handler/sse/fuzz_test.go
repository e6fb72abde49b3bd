package sse_test

import (
	"errors"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ssebridge/ssebridge/handler/sse"
)

// clientText is what a client's UTF-8 decoder makes of a value: invalid
// sequences become U+FFFD. The encoder passes bytes through unchanged, so
// the comparison has to be made on decoded text.
func clientText(s string) string {
	return strings.ToValidUTF8(s, "\uFFFD")
}

// FuzzAppendRoundTrip encodes arbitrary events and checks with the
// independent parser that a client dispatches exactly one event with the
// same id, type and data (CR and CRLF in data turned into LF), and nothing
// else; or, for an invalid id or type, that Append refuses it and leaves dst
// alone.
func FuzzAppendRoundTrip(f *testing.F) {
	f.Add("13435", "message", "hello", int64(0))
	f.Add("", "", "", int64(0))
	f.Add("1", "t", "a\nb\rc\r\nd", int64(3000))
	f.Add("", "", "\n", int64(-1))
	f.Add("", "", "\r\n\r\r\n\n", int64(1))
	f.Add("x", "y", " leading\n  spaces", int64(10))
	f.Add("é", "世界", "🎉\x00\xff\xfe", int64(1<<40))
	f.Add("id\n", "t", "d", int64(0))
	f.Add("id", "t\r", "d", int64(0))
	f.Add("\x00", "", "d", int64(0))
	f.Add("1", "\x00", "d", int64(0))
	f.Add("", "", "data: x\n\nid: 2\nevent: e\nretry: 5", int64(0))
	f.Add("\uFEFF", "", "\uFEFF", int64(0))
	f.Fuzz(func(t *testing.T, id, typ, data string, retryMs int64) {
		retry := time.Duration(retryMs%(1<<40)) * time.Millisecond
		ev := sse.Event{ID: id, Type: typ, Retry: retry, Data: data}
		dst := withSentinel("prev")
		got, err := sse.Append(dst, ev)

		// Independent expectations: the id is checked before the type.
		badID := strings.ContainsAny(id, "\r\n\x00")
		badType := strings.ContainsAny(typ, "\r\n\x00")
		switch {
		case badID:
			if !errors.Is(err, sse.ErrInvalidID) {
				t.Fatalf("Append(%+v) error = %v, want ErrInvalidID", ev, err)
			}
			checkUnchanged(t, dst, got, "prev")
			return
		case badType:
			if !errors.Is(err, sse.ErrInvalidType) {
				t.Fatalf("Append(%+v) error = %v, want ErrInvalidType", ev, err)
			}
			checkUnchanged(t, dst, got, "prev")
			return
		case err != nil:
			t.Fatalf("Append(%+v) error = %v", ev, err)
		}
		if string(got[:4]) != "prev" {
			t.Fatalf("Append overwrote dst: %q", got)
		}
		stream := string(got[4:])

		res := parseStream(stream)
		wantType := typ
		if wantType == "" {
			wantType = "message"
		}
		want := clientEvent{Type: clientText(wantType), Data: clientText(normalize(data)), LastEventID: clientText(id)}
		if !slices.Equal(res.Events, []clientEvent{want}) {
			t.Fatalf("stream %q: client got %q, want %q", stream, res.Events, want)
		}
		var wantRetries []string
		if retry > 0 {
			wantRetries = []string{strconv.FormatInt(retry.Milliseconds(), 10)}
		}
		if !slices.Equal(res.Retries, wantRetries) {
			t.Fatalf("stream %q: retries %q, want %q", stream, res.Retries, wantRetries)
		}
		if len(res.Comments) != 0 || res.Pending || res.Trailing != "" {
			t.Fatalf("stream %q: comments %q, pending %v, trailing %q", stream, res.Comments, res.Pending, res.Trailing)
		}
		for _, name := range res.Fields {
			switch name {
			case "id", "event", "retry", "data":
			default:
				t.Fatalf("stream %q: injected field %q", stream, name)
			}
		}
		// Every line ends in LF alone and has one space after the colon.
		lines := strings.Split(strings.TrimSuffix(stream, "\n\n"), "\n")
		for _, l := range lines {
			name, _, ok := strings.Cut(l, ": ")
			if !ok || !slices.Contains([]string{"id", "event", "retry", "data"}, name) {
				t.Fatalf("stream %q: malformed line %q", stream, l)
			}
		}
		if strings.Contains(stream, "\r") {
			t.Fatalf("stream %q: CR written", stream)
		}
	})
}

// FuzzAppendComment checks that comments never dispatch an event, never
// inject a field, carry their text line by line, and leave a surrounding
// event intact.
func FuzzAppendComment(f *testing.F) {
	f.Add("")
	f.Add("ping")
	f.Add("a\nb")
	f.Add("\n\ndata: x\n\n")
	f.Add("\r\r\n\r")
	f.Add("id: 1\revent: e\r\n")
	f.Add(" x\x00é")
	f.Fuzz(func(t *testing.T, text string) {
		comment := sse.AppendComment(nil, text)
		res := parseStream(string(comment))
		if len(res.Events) != 0 || len(res.Fields) != 0 || res.Pending || res.Trailing != "" {
			t.Fatalf("comment %q is not inert: %+v", comment, res)
		}
		var want []string
		for _, line := range strings.Split(clientText(normalize(text)), "\n") {
			if line != "" {
				line = " " + line
			}
			want = append(want, line)
		}
		if !slices.Equal(res.Comments, want) {
			t.Fatalf("comment %q: client saw %q, want %q", comment, res.Comments, want)
		}

		// Inside an event, between its fields, a comment changes nothing.
		stream := "id: 7\n" + string(comment) + "data: x\n" + string(sse.AppendComment(nil, text)) + "\n"
		res = parseStream(stream)
		if !slices.Equal(res.Events, []clientEvent{{Type: "message", Data: "x", LastEventID: "7"}}) {
			t.Fatalf("stream %q: client got %q", stream, res.Events)
		}
	})
}
