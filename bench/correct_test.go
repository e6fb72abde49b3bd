package bench

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	r3sse "github.com/r3labs/sse/v2"
)

// event is one event as a browser's EventSource dispatches it.
type event struct {
	ID, Type, Data string
}

// parse interprets an event stream the way the WHATWG HTML standard
// (§9.2.6) tells clients to: lines end at CRLF, LF or CR; ':' starts a
// comment; a field's value starts after the first colon and one optional
// space; data lines are joined with LF; an id with NUL is ignored; a blank
// line dispatches the event unless the data buffer is empty, dropping the
// data's final LF; the type defaults to "message". Text after the last line
// terminator is discarded.
func parse(stream string) []event {
	var (
		events      []event
		data        strings.Builder
		typ, lastID string
		haveData    bool
	)
	for {
		i := strings.IndexAny(stream, "\r\n")
		if i < 0 {
			return events
		}
		line := stream[:i]
		if strings.HasPrefix(stream[i:], "\r\n") {
			i++
		}
		stream = stream[i+1:]

		if line == "" {
			if haveData {
				t := typ
				if t == "" {
					t = "message"
				}
				events = append(events, event{ID: lastID, Type: t, Data: strings.TrimSuffix(data.String(), "\n")})
			}
			data.Reset()
			haveData, typ = false, ""
			continue
		}
		if line[0] == ':' {
			continue
		}
		name, value, _ := strings.Cut(line, ":")
		value = strings.TrimPrefix(value, " ")
		switch name {
		case "data":
			data.WriteString(value)
			data.WriteByte('\n')
			haveData = true
		case "event":
			typ = value
		case "id":
			if !strings.Contains(value, "\x00") {
				lastID = value
			}
		}
	}
}

// normalized is what a correct encoder delivers: the data with CRLF and CR
// turned into LF (a client cannot tell the three line terminators apart).
func normalized(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, "\r\n", "\n"), "\r", "\n")
}

// TestSameEvent checks what a client receives from each library's output,
// for the benchmark payloads and for edge cases. ssebridge must deliver every
// input exactly (CR/CRLF as LF). Where a peer delivers something else, the
// table records what it delivers, so the differences are documented and
// kept honest: a peer that changes behaviour fails this test.
func TestSameEvent(t *testing.T) {
	t.Parallel()
	// One row per input: what the client receives from each library. A
	// nil slice means no event is dispatched at all.
	type row struct {
		name, data string
		got        map[string][]string // library -> data of each event received
	}
	one := func(d string) []string { return []string{d} }
	var rows []row
	for _, sz := range sizes {
		p := payload(sz.Size)
		rows = append(rows, row{"payload " + sz.Name, p, map[string][]string{
			"ssebridge": one(normalized(p)),
			"go-sse":    one(normalized(p)),
			"r3labs":    one(normalized(p)),
			// gin escapes every CR as the two characters `\r`.
			"gin": one(strings.ReplaceAll(p, "\r", `\r`)),
		}})
	}
	rows = append(rows,
		row{"empty", "", map[string][]string{
			"ssebridge": one(""),
			"go-sse":    nil, // writes no data line, so nothing is dispatched
			"r3labs":    nil, // writes nothing: its server ends the response on empty data
			"gin":       one(""),
		}},
		row{"trailing LF", "a\n", map[string][]string{
			"ssebridge": one("a\n"),
			"go-sse":    one("a"), // the final line break is dropped
			"r3labs":    one("a\n"),
			"gin":       one("a\n"),
		}},
		row{"leading space", " x", map[string][]string{
			"ssebridge": one(" x"),
			"go-sse":    one(" x"),
			"r3labs":    one(" x"),
			"gin":       one("x"), // writes "data:" with no space, so the client strips the data's own space
		}},
		row{"lone CR", "a\rb", map[string][]string{
			"ssebridge": one("a\nb"),
			"go-sse":    one("a\nb"),
			"r3labs":    one("a"), // splits at LF only; the client reads "b" as a field named "b"
			"gin":       one(`a\rb`),
		}},
		row{"CRLF", "a\r\nb", map[string][]string{
			"ssebridge": one("a\nb"),
			"go-sse":    one("a\nb"),
			"r3labs":    one("a\nb"),
			"gin":       one("a\\r\nb"),
		}},
		row{"NUL and unicode", "é\x00世界", map[string][]string{
			"ssebridge": one("é\x00世界"),
			"go-sse":    one("é\x00世界"),
			"r3labs":    one("é\x00世界"),
			"gin":       one("é\x00世界"),
		}},
	)

	for _, r := range rows {
		for _, enc := range encoders {
			var s sink
			out, err := enc.encode(&s, eventID, eventType, r.data)
			if err != nil {
				t.Errorf("%s/%s: %v", r.name, enc.name, err)
				continue
			}
			var got []string
			for _, ev := range parse(string(out)) {
				if ev.ID != eventID || ev.Type != eventType {
					t.Errorf("%s/%s: event id %q type %q", r.name, enc.name, ev.ID, ev.Type)
				}
				got = append(got, ev.Data)
			}
			if want := r.got[enc.name]; !slices.Equal(got, want) {
				t.Errorf("%s/%s: client got %q, want %q (wire %q)", r.name, enc.name, got, want, out)
			}
		}
	}
}

// flushRecorder is an http.ResponseWriter and http.Flusher that a test can
// read while the handler is still writing.
type flushRecorder struct {
	mu     sync.Mutex
	header http.Header
	body   bytes.Buffer
	code   int
}

func (r *flushRecorder) Header() http.Header { return r.header }

func (r *flushRecorder) WriteHeader(code int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.code = code
}

func (r *flushRecorder) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.code == 0 {
		r.code = http.StatusOK
	}
	return r.body.Write(p)
}

func (r *flushRecorder) Flush() {}

func (r *flushRecorder) state() (int, string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.code, r.body.String()
}

// waitFor polls cond for up to five seconds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestR3labsReproduction runs the real r3labs/sse server (in process, no
// network) and checks that for every input encodeR3labs writes exactly the
// bytes the server writes for the same event.
func TestR3labsReproduction(t *testing.T) {
	t.Parallel()
	inputs := []string{"", "a\n", " x", "a\rb", "a\r\nb", "é\x00世界", ":colon first"}
	for _, sz := range sizes {
		inputs = append(inputs, payload(sz.Size))
	}
	for _, data := range inputs {
		var s sink
		out, err := encodeR3labs(&s, eventID, eventType, data)
		if err != nil {
			t.Fatal(err)
		}
		want := string(out)

		srv := r3sse.New()
		srv.AutoReplay = false // replay would overwrite the id with a log index
		srv.SplitData = true
		srv.CreateStream("bench")

		ctx, cancel := context.WithCancel(context.Background())
		req := httptest.NewRequest(http.MethodGet, "/events?stream=bench", nil).WithContext(ctx)
		rec := &flushRecorder{header: http.Header{}}
		done := make(chan struct{})
		go func() {
			defer close(done)
			srv.ServeHTTP(rec, req)
		}()
		// The status is written once the subscriber is registered.
		waitFor(t, "the subscription", func() bool { code, _ := rec.state(); return code != 0 })

		srv.Publish("bench", &r3sse.Event{ID: []byte(eventID), Event: []byte(eventType), Data: []byte(data)})
		if data == "" {
			// The server ends the response without writing the event.
			waitFor(t, "the handler to end", func() bool {
				select {
				case <-done:
					return true
				default:
					return false
				}
			})
		} else {
			waitFor(t, "the event", func() bool { _, body := rec.state(); return len(body) >= len(want) })
		}
		cancel()
		<-done
		srv.Close()

		if _, got := rec.state(); got != want {
			t.Errorf("data %.40q: server wrote %q, reproduction %q", data, got, want)
		}
	}
}
