package lambda_test

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/ssebridge/ssebridge/internal/redistest"
	"github.com/ssebridge/ssebridge/runtimetest"
)

// TestStreamsEndAndResume: with a 2.5 s function timeout and a 1 s margin,
// each stream ends after about 1.5 s, and the client (a plain SSE client
// that reconnects with Last-Event-ID, as EventSource does) resumes its peer
// in whichever environment serves the next invocation — the same one,
// thawed, or another that takes the session over through Redis. A server
// outside Lambda publishes throughout: the client gets every publication
// exactly once, in order, under one peer id.
func TestStreamsEndAndResume(t *testing.T) {
	rs := redistest.Start(t)
	env := runtimetest.Env{Redis: rs.URL(), Prefix: rs.Prefix()}
	u := emulate(t, env, 2500*time.Millisecond, time.Second)
	publisher := runtimetest.StartHandler(t, env)

	const total = 80
	publish := func() {
		for i := 1; i <= total; i++ {
			if err := publisher.Publish(runtimetest.AppTopic, fmt.Sprintf("n %d", i)); err != nil {
				t.Errorf("publish %d: %v", i, err)
				return
			}
			time.Sleep(60 * time.Millisecond)
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var got []string
	var peer, last string
	streams := 0
	for len(got) < total {
		if ctx.Err() != nil {
			t.Fatalf("after %d streams, got %d publications: %q", streams, len(got), got)
		}
		streams++
		hello := func() {}
		if streams == 1 {
			hello = func() { go publish() } // once the peer is subscribed
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
	for i, g := range got {
		if want := fmt.Sprintf("n %d", i+1); g != want {
			t.Fatalf("publication %d is %q, want %q (all: %q)", i, g, want, got)
		}
	}
	if streams < 3 {
		t.Fatalf("%d streams over %d publications: the streams did not end with their invocations", streams, total)
	}
	t.Logf("%d publications over %d streams of one peer", total, streams)
}

// readStream opens a stream with Last-Event-ID last (if any) and reads it to
// its end, calling hello after the hello event; it returns the peer id, the
// data of the message events, and the last event id seen.
func readStream(t *testing.T, ctx context.Context, u, last string, hello func()) (peer string, data []string, lastID string) {
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
	sc := bufio.NewScanner(resp.Body)
	var typ, d, id string
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			if id != "" {
				lastID = id
			}
			switch typ {
			case "crossws-id":
				peer = d
				hello()
			case "", "message":
				if d != "" {
					data = append(data, d)
				}
			}
			typ, d = "", ""
		case strings.HasPrefix(line, "event: "):
			typ = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			d = strings.TrimPrefix(line, "data: ")
		case strings.HasPrefix(line, "id: "):
			id = strings.TrimPrefix(line, "id: ")
		}
	}
	return peer, data, lastID
}
