package fasthttp_test

import (
	"bufio"
	"fmt"
	"net/http"
	"strings"
	"testing"

	fh "github.com/valyala/fasthttp"

	"github.com/ssebridge/ssebridge/handler"
	"github.com/ssebridge/ssebridge/internal/ssetest"
)

// crossws's stream mode: one POST whose body never ends, each read one
// message, delivered while the body is still open.
func TestStreamedUpload(t *testing.T) {
	t.Parallel()
	s, msgs := newRecordingServer(t, handler.Config{}, nil)
	st := s.open()
	u := s.startUpload(st.id)
	for _, w := range []struct{ write, want string }{
		{"first", "first"},
		{"second", "second"},
		{"x\xF0\x9F", "x"},  // a split UTF-8 sequence is held back…
		{"\x98\x80y", "😀y"}, // …until the rest arrives
	} {
		u.write(t, w.write)
		if got := ssetest.Recv(t, msgs, "message "+w.want); got != w.want {
			t.Fatalf("message %q, want %q", got, w.want)
		}
	}
	// A single POST meanwhile, on another connection.
	if code, _ := s.post(st.id, "single"); code != http.StatusOK {
		t.Fatalf("POST: %d", code)
	}
	if got := ssetest.Recv(t, msgs, "single message"); got != "single" {
		t.Fatalf("message %q", got)
	}
	if err := u.pw.Close(); err != nil {
		t.Fatal(err)
	}
	r := ssetest.Recv(t, u.done, "upload response")
	if r.err != nil || r.status != http.StatusOK || r.body != "" || !r.close {
		t.Fatalf("upload response %+v, want 200 with Connection: close", r)
	}
}

// Node's fetch (undici) sends the CRLF that ends a chunk only with the next
// chunk; each message must still arrive as soon as its bytes have.
func TestStreamedUploadDelayedCRLF(t *testing.T) {
	t.Parallel()
	s, msgs := newRecordingServer(t, handler.Config{}, nil)
	st := s.open()
	c := s.rawConn()
	fmt.Fprintf(c, "POST /sse HTTP/1.1\r\nHost: %s\r\nX-Crossws-Id: %s\r\nContent-Type: application/octet-stream\r\nTransfer-Encoding: chunked\r\n\r\n7\r\nhello a", s.addr, st.id)
	if got := ssetest.Recv(t, msgs, "first message"); got != "hello a" {
		t.Fatalf("message %q", got)
	}
	fmt.Fprint(c, "\r\n7\r\nhello b")
	if got := ssetest.Recv(t, msgs, "second message"); got != "hello b" {
		t.Fatalf("message %q", got)
	}
	fmt.Fprint(c, "\r\n0\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !resp.Close {
		t.Fatalf("upload response %d (close %v), want 200 and Connection: close", resp.StatusCode, resp.Close)
	}
	if err := readUntilClosed(c); err != nil {
		t.Fatalf("connection still open: %v", err)
	}
}

// An upload of a peer that closes ends at once: the engine aborts it from
// another goroutine with a read deadline in the past.
func TestStreamedUploadEndsWhenPeerCloses(t *testing.T) {
	t.Parallel()
	s, msgs := newRecordingServer(t, handler.Config{}, nil)
	st := s.open()
	u := s.startUpload(st.id)
	u.write(t, "a")
	ssetest.Recv(t, msgs, "message")
	if err := s.peer(st.id).Close(handler.CloseNormal, "bye"); err != nil {
		t.Fatal(err)
	}
	r := ssetest.Recv(t, u.done, "upload response")
	if r.err == nil && (r.status != http.StatusGone || !r.close) {
		t.Fatalf("upload response %+v, want 410 and Connection: close", r)
	}
}

// One more upload than MaxUploads ends the oldest.
func TestStreamedUploadReplaced(t *testing.T) {
	t.Parallel()
	s, msgs := newRecordingServer(t, handler.Config{MaxUploads: 1}, nil)
	st := s.open()
	u1 := s.startUpload(st.id)
	u1.write(t, "one")
	ssetest.Recv(t, msgs, "first upload's message")
	u2 := s.startUpload(st.id)
	u2.write(t, "two")
	ssetest.Recv(t, msgs, "second upload's message")
	if r := ssetest.Recv(t, u1.done, "first upload's response"); r.err == nil && r.status != http.StatusOK {
		t.Fatalf("replaced upload: %+v", r)
	}
	u2.write(t, "still")
	if got := ssetest.Recv(t, msgs, "second upload's message"); got != "still" {
		t.Fatalf("message %q", got)
	}
}

// A streamed upload for a peer that does not exist is refused at once
// (after a short drain), not read forever.
func TestStreamedUploadUnknownPeer(t *testing.T) {
	t.Parallel()
	s := newServer(t, handler.Config{}, nil)
	u := s.startUpload("AAAAAAAAAAAAAAAAAAAAAA")
	u.write(t, "hello?")
	r := ssetest.Recv(t, u.done, "upload response")
	if r.err == nil && (r.status != http.StatusBadRequest || r.body != "invalid peer id") {
		t.Fatalf("upload response %+v, want 400 invalid peer id", r)
	}
}

// Without StreamRequestBody (a limitation documented in the package doc),
// fasthttp reads a whole body before calling the handler: a streamed upload
// is delivered when its body ends, in one piece; crossws's endless body
// fails with 413 once MaxRequestBodySize is reached, nothing delivered.
func TestUploadWithoutStreamRequestBody(t *testing.T) {
	t.Parallel()
	const bodyLimit = 8 << 10
	s, msgs := newRecordingServer(t, handler.Config{}, func(srv *fh.Server) {
		srv.StreamRequestBody = false
		srv.MaxRequestBodySize = bodyLimit
	})
	st := s.open()

	// Single POSTs (crossws's { stream: false }) work as ever.
	if code, _ := s.post(st.id, "single"); code != http.StatusOK {
		t.Fatalf("POST: %d", code)
	}
	if got := ssetest.Recv(t, msgs, "single message"); got != "single" {
		t.Fatalf("message %q", got)
	}

	// A streamed body that ends: one message, at the end.
	u := s.startUpload(st.id)
	u.write(t, "one ")
	u.write(t, "two")
	if err := u.pw.Close(); err != nil {
		t.Fatal(err)
	}
	if r := ssetest.Recv(t, u.done, "upload response"); r.err != nil || r.status != http.StatusOK {
		t.Fatalf("upload response %+v", r)
	}
	if got := ssetest.Recv(t, msgs, "upload message"); got != "one two" {
		t.Fatalf("message %q, want the whole body", got)
	}

	// An endless one: 413 from fasthttp once past its limit.
	c := s.rawConn()
	fmt.Fprintf(c, "POST /sse HTTP/1.1\r\nHost: %s\r\nX-Crossws-Id: %s\r\nContent-Type: application/octet-stream\r\nTransfer-Encoding: chunked\r\n\r\n", s.addr, st.id)
	chunk := strings.Repeat("z", 1<<10)
	for range bodyLimit/len(chunk) + 1 {
		fmt.Fprintf(c, "%x\r\n%s\r\n", len(chunk), chunk)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge || !resp.Close {
		t.Fatalf("endless upload: %d (close %v), want 413 and Connection: close", resp.StatusCode, resp.Close)
	}
	if err := readUntilClosed(c); err != nil {
		t.Fatalf("connection still open: %v", err)
	}
	// Nothing of it was delivered: the next message is the next one sent.
	if code, _ := s.post(st.id, "after"); code != http.StatusOK {
		t.Fatalf("POST: %d", code)
	}
	if got := ssetest.Recv(t, msgs, "message"); got != "after" {
		t.Fatalf("message %q, want after", got)
	}
}
