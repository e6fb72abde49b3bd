package crossws_test

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/ssebridge/ssebridge/handler"
	"github.com/ssebridge/ssebridge/internal/ssetest"
)

// upload is a streamed upload in progress (crossws's stream mode): a POST
// whose body has no length and is written piece by piece.
type upload struct {
	t    *testing.T
	w    *io.PipeWriter
	done chan uploadResult
}

type uploadResult struct {
	status int
	body   string
	err    error
}

// startUpload starts a streamed upload to peer id.
func (s *server) startUpload(id string) *upload {
	s.t.Helper()
	pr, pw := io.Pipe()
	req := s.request(s.ctx, http.MethodPost, pr, "X-Crossws-Id", id, "Content-Type", "application/octet-stream")
	u := &upload{t: s.t, w: pw, done: make(chan uploadResult, 1)}
	go func() {
		resp, err := s.client.Do(req)
		if err != nil {
			u.done <- uploadResult{err: err}
			return
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		u.done <- uploadResult{status: resp.StatusCode, body: string(b), err: err}
	}()
	s.t.Cleanup(func() { _ = pw.CloseWithError(io.ErrClosedPipe) })
	return u
}

// write sends one piece of the body.
func (u *upload) write(s string) {
	u.t.Helper()
	if _, err := io.WriteString(u.w, s); err != nil {
		u.t.Fatalf("upload write: %v", err)
	}
}

// result waits for the response and checks it.
func (u *upload) result(status int, body string) {
	u.t.Helper()
	r := ssetest.Recv(u.t, u.done, "the upload's response")
	if r.err != nil || r.status != status || r.body != body {
		u.t.Fatalf("upload response %d %q (err %v), want %d %q", r.status, r.body, r.err, status, body)
	}
}

func TestStreamedUploadEachWriteIsAMessage(t *testing.T) {
	t.Parallel()
	rec := newRecorder()
	s := newServer(t, handler.Config{Hooks: rec.hooks()})
	_, id := s.open()

	u := s.startUpload(id)
	for _, m := range []string{"hello", "world", "multi\nline\r\n", "{\"json\":true}"} {
		u.write(m)
		rec.msg(t, id, m)
	}
	// A 4-byte character split across two writes arrives whole.
	u.write("ab\xF0\x9F")
	rec.msg(t, id, "ab")
	u.write("\x98\x80cd")
	rec.msg(t, id, "😀cd")
	// Split into single bytes: one message once it is complete.
	u.write("\xE2")
	u.write("\x82")
	u.write("\xAC")
	rec.msg(t, id, "€")
	u.write("z")
	rec.msg(t, id, "z")
	// A normal POST meanwhile is delivered as well.
	if code, _ := s.post(id, strings.NewReader("side")); code != http.StatusOK {
		t.Fatalf("side POST: %d", code)
	}
	rec.msg(t, id, "side")
	if err := u.w.Close(); err != nil {
		t.Fatal(err)
	}
	u.result(http.StatusOK, "")
	// Nothing else was delivered.
	if code, _ := s.post(id, strings.NewReader("end")); code != http.StatusOK {
		t.Fatal("end POST")
	}
	rec.msg(t, id, "end")
}

func TestStreamedUploadBoundedPieces(t *testing.T) {
	t.Parallel()
	const limit = 100
	rec := newRecorder()
	s := newServer(t, handler.Config{Hooks: rec.hooks(), MaxMessageSize: limit})
	_, id := s.open()

	// One write far larger than a message, of 3-byte characters whose
	// boundaries do not line up with the limit.
	big := strings.Repeat("€", 1000)
	u := s.startUpload(id)
	u.write(big)
	var got strings.Builder
	for got.Len() < len(big) {
		m := ssetest.Recv(t, rec.msgs, "a piece of the upload")
		if len(m.text) > limit || len(m.text) == 0 {
			t.Fatalf("piece of %d bytes, want 1 to %d", len(m.text), limit)
		}
		if !utf8.ValidString(m.text) {
			t.Fatalf("piece %q splits a character", m.text)
		}
		got.WriteString(m.text)
	}
	if got.String() != big {
		t.Fatal("pieces do not add up to the body")
	}
	_ = u.w.Close()
	u.result(http.StatusOK, "")
}

func TestStreamedUploadEndsWhenPeerCloses(t *testing.T) {
	t.Parallel()
	rec := newRecorder()
	s := newServer(t, handler.Config{Hooks: rec.hooks()})
	st, id := s.open()

	u := s.startUpload(id)
	u.write("first")
	rec.msg(t, id, "first")
	if err := s.peer(id).Close(4001, "bye"); err != nil {
		t.Fatal(err)
	}
	u.result(http.StatusGone, "peer closed")
	if d := rec.closeOf(t, id); d.Code != 4001 || d.Reason != "bye" {
		t.Fatalf("Close hook %+v", d)
	}
	st.ev.Expect(t, "close", `{"code":4001,"reason":"bye"}`, id+".closed")
	st.ev.End(t)
	// A new upload to the closed peer is refused.
	if code, body := s.post(id, unsized("late"), "Content-Type", "application/octet-stream"); code != http.StatusBadRequest || body != "invalid peer id" {
		t.Fatalf("upload to a closed peer: %d %q", code, body)
	}
}

func TestStreamedUploadEviction(t *testing.T) {
	t.Parallel()
	rec := newRecorder()
	s := newServer(t, handler.Config{Hooks: rec.hooks(), MaxUploads: 2})
	_, id := s.open()

	a := s.startUpload(id)
	a.write("a1")
	rec.msg(t, id, "a1")
	b := s.startUpload(id)
	b.write("b1")
	rec.msg(t, id, "b1")
	select {
	case r := <-a.done:
		t.Fatalf("upload a ended early: %+v", r)
	default:
	}

	c := s.startUpload(id)
	c.write("c1")
	rec.msg(t, id, "c1")
	// The oldest upload was ended, successfully.
	a.result(http.StatusOK, "")

	b.write("b2")
	rec.msg(t, id, "b2")
	c.write("c2")
	rec.msg(t, id, "c2")

	d := s.startUpload(id)
	d.write("d1")
	rec.msg(t, id, "d1")
	b.result(http.StatusOK, "")
	c.write("c3")
	rec.msg(t, id, "c3")

	_ = c.w.Close()
	c.result(http.StatusOK, "")
	_ = d.w.Close()
	d.result(http.StatusOK, "")
	if p := s.peer(id); p.Closed() {
		t.Fatal("peer closed")
	}
}
