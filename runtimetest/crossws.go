package runtimetest

import (
	"fmt"
	"io"
	"net/http"
	"slices"
	"testing"
	"time"
)

// testCrosswsMessageMode runs crossws's WebSocketSSE client with one POST
// per message.
func testCrosswsMessageMode(t *testing.T, rt Runtime) { crosswsClient(t, rt, "message") }

// testCrosswsStreamMode runs crossws's client with its one streamed upload,
// or checks that the runtime refuses such an upload cleanly.
func testCrosswsStreamMode(t *testing.T, rt Runtime) {
	if rt.StreamedUploads {
		crosswsClient(t, rt, "stream")
		return
	}
	refusedUpload(t, rt)
}

// crosswsClient: a Node crossws client sends echoes (each answered before
// the next), publishes to a Go listener, and asks the server to close it
// with a code and reason, which it must receive.
func crosswsClient(t *testing.T, rt Runtime, mode string) {
	d := deploy(t, rt, 1, false)
	c := newClient(t)
	listener := c.open(d.urls[0])

	var send []string
	var replies []any
	for i := range 10 {
		m := fmt.Sprintf("echo %d ünïcode\n😀 %s", i, mode)
		send = append(send, m)
		replies = append(replies, m)
	}
	send = append(send, "pub all hello from "+mode)
	run := startNode(t, "conformance.mjs", map[string]any{
		"url":     wsURL(d.urls[0]),
		"mode":    mode,
		"send":    send,
		"replies": append(replies, "published all"),
		"close":   []any{4001, "done " + mode},
	})
	evs := run.wait(t)
	got := messages(evs)
	want := append(send[:len(send)-1:len(send)-1], "published all")
	if !slices.Equal(got, want) {
		t.Fatalf("the crossws client received %q, want %q", got, want)
	}
	listener.expect(t, "hello from "+mode)
}

// refusedUpload: on a runtime without streamed uploads, a POST whose body
// never ends is answered with an error in bounded time, and the peer's
// stream goes on working.
func refusedUpload(t *testing.T, rt Runtime) {
	d := deploy(t, rt, 1, false)
	c := newClient(t)
	st := c.open(d.urls[0])

	pr, pw := io.Pipe()
	defer pw.Close()
	go func() {
		for i := 0; ; i++ {
			if _, err := fmt.Fprintf(pw, "echo streamed %d", i); err != nil {
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
	}()
	req := c.request(t.Context(), http.MethodPost, d.urls[0], pr, "X-Crossws-Id", st.id, "Content-Type", "application/octet-stream")
	req.ContentLength = -1
	done := make(chan int, 1)
	go func() {
		resp, err := c.hc.Do(req)
		if err != nil {
			done <- 0 // the connection was cut: refused too
			return
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		done <- resp.StatusCode
	}()
	select {
	case code := <-done:
		if code != 0 && code < 400 {
			t.Fatalf("a never-ending upload got %d, want an error status or a cut connection", code)
		}
	case <-time.After(40 * time.Second):
		t.Fatal("a never-ending upload got no answer in 40 s")
	}
	pw.Close()
	c.send(d.urls[0], st.id, "echo after")
	st.expect(t, "echo after")
}
