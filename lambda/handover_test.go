package lambda_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/ssebridge/ssebridge/internal/redistest"
	"github.com/ssebridge/ssebridge/internal/ssetest"
	"github.com/ssebridge/ssebridge/runtimetest"
)

// TestStreamsEndAndResume: with a 2.5 s function timeout and a 1 s margin,
// each stream ends after about 1.5 s, and the client (a plain SSE client
// that reconnects with Last-Event-ID, as EventSource does) resumes its peer
// in whichever environment serves the next invocation — the same one,
// thawed, or another that takes the session over through Redis. A server
// outside Lambda publishes throughout: the client gets every publication
// exactly once, in order, under one peer id, and every message it POSTs
// after each (re)connection, in order — wherever the POST lands.
func TestStreamsEndAndResume(t *testing.T) {
	rs := redistest.Start(t)
	env := runtimetest.Env{Redis: rs.URL(), Prefix: rs.Prefix()}
	u := emulate(t, env, 2500*time.Millisecond, time.Second)
	publisher := runtimetest.StartHandler(t, env)

	const total = 80
	published := make(chan error, 1)
	publish := func() {
		for i := 1; i <= total; i++ {
			if err := publisher.Publish(runtimetest.AppTopic, fmt.Sprintf("n %d", i)); err != nil {
				published <- fmt.Errorf("publish %d: %w", i, err)
				return
			}
			time.Sleep(60 * time.Millisecond)
		}
		published <- nil
	}

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var got []string
	var peer, last string
	streams := 0
	echoes := 0
	for countPrefix(got, "n ") < total || countPrefix(got, "echo ") < echoes {
		if ctx.Err() != nil {
			t.Fatalf("after %d streams, got %d publications: %q", streams, len(got), got)
		}
		streams++
		// Once the stream is open: the first starts the publisher (the peer
		// is subscribed now), each sends a message of its own through a
		// POST, which may land in any environment, the frozen one that
		// held the peer before included.
		hello := func(peer string) {
			if streams == 1 {
				go publish()
			}
			echoes++
			go post(t, u, peer, fmt.Sprintf("echo %d", echoes))
		}
		id, evs, lastID := readStream(t, ctx, u, last, hello)
		if peer == "" {
			peer = id
		} else if id != peer {
			t.Fatalf("stream %d resumed as peer %s, want %s (last id %q)", streams, id, peer, last)
		}
		if lastID != "" {
			last = lastID
		}
		got = append(got, evs...)
	}
	if err := <-published; err != nil {
		t.Fatal(err)
	}
	var pubs, echoed []string
	for _, g := range got {
		if strings.HasPrefix(g, "echo ") {
			echoed = append(echoed, g)
		} else {
			pubs = append(pubs, g)
		}
	}
	for i, g := range pubs {
		if want := fmt.Sprintf("n %d", i+1); g != want {
			t.Fatalf("publication %d is %q, want %q (all: %q)", i, g, want, got)
		}
	}
	for i, g := range echoed {
		if want := fmt.Sprintf("echo %d", i+1); g != want {
			t.Fatalf("echo %d is %q, want %q (all: %q)", i, g, want, got)
		}
	}
	if streams < 3 {
		t.Fatalf("%d streams over %d publications: the streams did not end with their invocations", streams, total)
	}
	t.Logf("%d publications and %d POSTs over %d streams of one peer", total, echoes, streams)
}

// countPrefix counts the strings that start with prefix.
func countPrefix(ss []string, prefix string) int {
	n := 0
	for _, s := range ss {
		if strings.HasPrefix(s, prefix) {
			n++
		}
	}
	return n
}

// post sends one message for peer; a failure is reported to the test.
func post(t *testing.T, u, peer, body string) {
	req, _ := http.NewRequest(http.MethodPost, u, strings.NewReader(body))
	req.Header.Set("X-Crossws-Id", peer)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Errorf("POST %q: %v", body, err)
		return
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("POST %q: %d", body, resp.StatusCode)
	}
}

// readStream opens a stream with Last-Event-ID last (if any) and reads it to
// its end, calling hello after the hello event; it returns the peer id, the
// data of the message events, and the last event id seen.
func readStream(t *testing.T, ctx context.Context, u, last string, hello func(peer string)) (peer string, data []string, lastID string) {
	t.Helper()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	req.Header.Set("Accept", "text/event-stream")
	if last != "" {
		req.Header.Set("Last-Event-ID", last)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET: %d", resp.StatusCode)
	}
	r := ssetest.NewReader(resp.Body)
	for {
		it, ok := r.Next(t)
		if !ok {
			break
		}
		if it.Kind != ssetest.ItemEvent {
			continue
		}
		lastID = it.ID // EventSource's last event ID buffer
		switch it.Type {
		case "crossws-id":
			peer = it.Data
			hello(peer)
		case "message":
			data = append(data, it.Data)
		}
	}
	return peer, data, lastID
}
