// Package ssetest holds helpers for tests only: no program code may import
// it. It offers an event-stream reader written from the WHATWG rules (HTML
// §9.2.5–9.2.6), independent of the encoder under test, and generic
// helpers that wait for a channel or a condition.
//
// The Reader parses a stream on its own goroutine: lines end at CRLF, LF
// or CR; a leading BOM is dropped; a line starting with ':' is a comment;
// other lines are fields ("event", "data", "id", "retry"; others are
// ignored); "data" lines are joined with LF; an empty line dispatches the
// event when it has data; the last event ID buffer survives dispatch, and
// an incomplete event at the end of the stream is never dispatched. The
// reader reports events, comments and valid retry fields, in order.
package ssetest

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"
)

// Timeout bounds each single wait of a Reader, Recv and Eventually.
const Timeout = 5 * time.Second

// Kind says what an Item is.
type Kind int

const (
	// ItemEvent is a dispatched event.
	ItemEvent Kind = iota + 1
	// ItemComment is a comment line.
	ItemComment
	// ItemRetry is a retry field that set the reconnection time.
	ItemRetry
)

// String names the kind, for failure messages.
func (k Kind) String() string {
	switch k {
	case ItemEvent:
		return "event"
	case ItemComment:
		return "comment"
	case ItemRetry:
		return "retry"
	}
	return fmt.Sprintf("Kind(%d)", int(k))
}

// Item is one thing a client observes on a stream, in order.
type Item struct {
	Kind Kind
	// Event: type ("message" when none), data, the last event ID buffer at
	// dispatch, and whether the event's own lines carried an id field.
	Type, Data, ID string
	OwnID          bool
	// Comment text after ':' (a heartbeat ": ping" gives " ping"), or
	// retry value.
	Text string
}

// Reader parses an event stream on its own goroutine and queues what it
// sees without bound, so that a slow test never slows the stream.
type Reader struct {
	mu    sync.Mutex
	items []Item
	err   error // the end of the stream: io.EOF for a clean end
	wake  chan struct{}
}

// NewReader starts reading body, until it ends or fails. The caller still
// owns body and closes it.
func NewReader(body io.Reader) *Reader {
	r := &Reader{wake: make(chan struct{}, 1)}
	go r.run(bufio.NewReader(body))
	return r
}

func (r *Reader) emit(it Item) {
	r.mu.Lock()
	r.items = append(r.items, it)
	r.mu.Unlock()
	r.signal()
}

func (r *Reader) signal() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

func (r *Reader) run(br *bufio.Reader) {
	var (
		data     strings.Builder
		haveData bool
		evType   string
		lastID   string
		ownID    bool
		line     []byte
		afterCR  bool
		first    = true
	)
	dispatch := func() {
		if haveData {
			typ := evType
			if typ == "" {
				typ = "message"
			}
			r.emit(Item{Kind: ItemEvent, Type: typ, Data: strings.TrimSuffix(data.String(), "\n"), ID: lastID, OwnID: ownID})
		}
		data.Reset()
		haveData, evType, ownID = false, "", false
	}
	process := func(l string) {
		if first {
			l = strings.TrimPrefix(l, "\uFEFF")
			first = false
		}
		switch {
		case l == "":
			dispatch()
		case l[0] == ':':
			r.emit(Item{Kind: ItemComment, Text: l[1:]})
		default:
			field, value, found := strings.Cut(l, ":")
			if found {
				value = strings.TrimPrefix(value, " ")
			}
			switch field {
			case "event":
				evType = value
			case "data":
				data.WriteString(value)
				data.WriteByte('\n')
				haveData = true
			case "id":
				if !strings.Contains(value, "\x00") {
					lastID, ownID = value, true
				}
			case "retry":
				if value != "" && strings.Trim(value, "0123456789") == "" {
					r.emit(Item{Kind: ItemRetry, Text: value})
				}
			}
		}
	}
	for {
		c, err := br.ReadByte()
		if err != nil {
			// An incomplete event at the end is never dispatched.
			r.mu.Lock()
			r.err = err
			r.mu.Unlock()
			r.signal()
			return
		}
		switch {
		case c == '\n' && afterCR:
			afterCR = false
		case c == '\n' || c == '\r':
			afterCR = c == '\r'
			process(string(line))
			line = line[:0]
		default:
			afterCR = false
			line = append(line, c)
		}
	}
}

// Next returns the next item, waiting up to Timeout for it; ok is false at
// the end of the stream.
func (r *Reader) Next(t testing.TB) (it Item, ok bool) {
	t.Helper()
	timeout := time.After(Timeout)
	for {
		r.mu.Lock()
		if len(r.items) > 0 {
			it = r.items[0]
			r.items = r.items[1:]
			r.mu.Unlock()
			return it, true
		}
		done := r.err != nil
		r.mu.Unlock()
		if done {
			return Item{}, false
		}
		select {
		case <-r.wake:
		case <-timeout:
			t.Fatalf("timed out waiting for the stream")
		}
	}
}

// Event returns the next event, skipping comments and retry fields; the
// stream must not end first.
func (r *Reader) Event(t testing.TB) Item {
	t.Helper()
	for {
		it, ok := r.Next(t)
		if !ok {
			t.Fatalf("stream ended (%v), want an event", r.Err())
		}
		if it.Kind == ItemEvent {
			return it
		}
	}
}

// Expect reads the next event and checks its type, data and id, which the
// event's own lines must have set. The id may carry a backend mark after
// the one given ("<id>.<mark>", see handler/crossws), which depends on the
// backend.
func (r *Reader) Expect(t testing.TB, typ, data, id string) {
	t.Helper()
	it := r.Event(t)
	if it.Type != typ || it.Data != data || !SameID(it.ID, id) || !it.OwnID {
		t.Fatalf("event %+v, want type %q data %q own id %q", it, typ, short(data), id)
	}
}

// Rest reads to the end of the stream and returns what is left; the
// stream must end cleanly (io.EOF).
func (r *Reader) Rest(t testing.TB) []Item {
	t.Helper()
	var out []Item
	for {
		it, ok := r.Next(t)
		if !ok {
			break
		}
		out = append(out, it)
	}
	if err := r.Err(); !errors.Is(err, io.EOF) {
		t.Fatalf("stream ended with %v, want a clean end (EOF)", err)
	}
	return out
}

// End reads to the end of the stream and checks that it ends cleanly with
// nothing left but comments and items of the kinds in also.
func (r *Reader) End(t testing.TB, also ...Kind) {
	t.Helper()
next:
	for _, it := range r.Rest(t) {
		if it.Kind == ItemComment {
			continue
		}
		for _, k := range also {
			if it.Kind == k {
				continue next
			}
		}
		t.Fatalf("got %+v, want the end of the stream", it)
	}
}

// Ended reports, without waiting, whether the stream has ended (cleanly
// or not) with nothing left to read.
func (r *Reader) Ended() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.err != nil && len(r.items) == 0
}

// Err returns how the stream ended: nil while it is open, io.EOF for a
// clean end.
func (r *Reader) Err() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.err
}

// short shortens s for failure messages.
func short(s string) string {
	if len(s) > 80 {
		return fmt.Sprintf("%s…(%d bytes)", s[:60], len(s))
	}
	return s
}

// SameID reports whether the event id got is want, possibly followed by a
// backend mark: "." and a positive decimal number.
func SameID(got, want string) bool {
	if got == want {
		return true
	}
	mark, ok := strings.CutPrefix(got, want+".")
	if !ok || mark == "" || mark[0] == '0' {
		return false
	}
	for i := 0; i < len(mark); i++ {
		if mark[i] < '0' || mark[i] > '9' {
			return false
		}
	}
	return true
}
