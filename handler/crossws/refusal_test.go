package crossws_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/ssebridge/ssebridge/handler"
	"github.com/ssebridge/ssebridge/handler/engine"
	"github.com/ssebridge/ssebridge/internal/ssetest"
)

// A streamed upload that is refused (unknown peer, rejected by the Upgrade
// hook) is answered while its body is still open, as crossws's stream mode
// never ends it; the connection is then closed rather than drained.
func TestRefusedStreamedUploadAnsweredAtOnce(t *testing.T) {
	t.Parallel()
	hooks := handler.Hooks{Upgrade: func(u *handler.Upgrade) error {
		if u.Request.Header("X-Test") == "reject" {
			return handler.Reject(http.StatusUnauthorized, "nope")
		}
		return nil
	}}
	s := newServer(t, handler.Config{Hooks: hooks})
	_, id := s.open()
	for _, c := range []struct {
		id, extra string
		status    int
		body      string
	}{
		{engine.NewID(), "", http.StatusBadRequest, "invalid peer id"},
		{id, "X-Test: reject\r\n", http.StatusUnauthorized, "nope"},
	} {
		conn, err := net.Dial("tcp", s.host())
		if err != nil {
			t.Fatal(err)
		}
		// One chunk, and the body never ends.
		fmt.Fprintf(conn, "POST /sse HTTP/1.1\r\nHost: %s\r\nX-Crossws-Id: %s\r\n%sContent-Type: application/octet-stream\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n", s.host(), c.id, c.extra)
		_ = conn.SetReadDeadline(time.Now().Add(ssetest.Timeout))
		br := bufio.NewReader(conn)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("no answer to a refused streamed upload: %v", err)
		}
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != c.status || string(body) != c.body {
			t.Errorf("refused streamed upload: %d %q, want %d %q", resp.StatusCode, body, c.status, c.body)
		}
		// The server closes the connection instead of waiting for the end
		// of a body that never comes.
		if _, err := br.ReadByte(); err == nil {
			t.Error("the connection stayed open after the refusal")
		}
		conn.Close()
	}
}

// A panicking Message hook is reported; a streamed upload goes on and its
// later messages are delivered.
func TestStreamedUploadSurvivesPanickingHook(t *testing.T) {
	t.Parallel()
	rec := newRecorder()
	hooks := rec.hooks()
	msg := hooks.Message
	hooks.Message = func(p *handler.Peer, m handler.Message) {
		if m.Text() == "boom" {
			panic("boom")
		}
		msg(p, m)
	}
	s := newServer(t, handler.Config{Hooks: hooks})
	_, id := s.open()
	u := s.startUpload(id)
	u.write("before")
	rec.msg(t, id, "before")
	u.write("boom")
	if e := ssetest.Recv(t, rec.errs, "Error hook"); e.peer == nil || e.peer.ID() != id {
		t.Fatalf("Error hook got peer %v", e.peer)
	}
	u.write("after")
	rec.msg(t, id, "after")
	if err := u.w.Close(); err != nil {
		t.Fatal(err)
	}
	u.result(http.StatusOK, "")
}

// Over MaxPeers, a stream request is asked to retry later (an empty 200
// stream with a retry field: any other status would make EventSource give
// up for good), and no peer is opened.
func TestMaxPeers(t *testing.T) {
	t.Parallel()
	s := newServer(t, handler.Config{MaxPeers: 1})
	s.open()
	resp, body := s.do(http.MethodGet, nil, "Accept", "text/event-stream")
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, "retry: 1000\n") || strings.Contains(body, "crossws-id") {
		t.Fatalf("stream request over MaxPeers: %d %q, want 200 with a retry field and no peer", resp.StatusCode, body)
	}
	if n := s.peerCount(); n != 1 {
		t.Fatalf("%d peers, want 1", n)
	}
}
