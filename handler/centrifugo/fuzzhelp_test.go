package centrifugo_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

func ioPipe() (*io.PipeReader, *io.PipeWriter) { return io.Pipe() }

// streamRecorder is a ResponseRecorder whose body also goes to a pipe,
// so that a test reads a stream while it is served.
type streamRecorder struct {
	*httptest.ResponseRecorder
	w       *io.PipeWriter
	discard bool // keep nothing (benchmarks)
	mu      sync.Mutex
	out     bytes.Buffer
}

func (r *streamRecorder) Write(b []byte) (int, error) {
	if !r.discard {
		r.mu.Lock()
		r.out.Write(b)
		r.mu.Unlock()
	}
	_, _ = r.w.Write(b)
	return len(b), nil
}

func (r *streamRecorder) Flush() {}

// readSession reads a stream up to its connect reply and returns the
// session.
func readSession(t *testing.T, r io.Reader) string {
	br := bufio.NewReader(r)
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatalf("stream ended before the connect reply: %v", err)
		}
		if data, ok := strings.CutPrefix(strings.TrimSpace(line), "data: "); ok {
			var rep struct {
				Connect struct{ Session string }
			}
			if json.Unmarshal([]byte(data), &rep) != nil || rep.Connect.Session == "" {
				t.Fatalf("first event %q", data)
			}
			go func() { _, _ = io.Copy(io.Discard, br) }()
			return rep.Connect.Session
		}
	}
}
