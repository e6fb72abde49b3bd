package lambda_test

import (
	"bufio"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/ssebridge/ssebridge/internal/redistest"
	"github.com/ssebridge/ssebridge/runtimetest"
)

// BenchmarkLambdaFirstByte measures, through the local function URL
// emulator, the time from sending a stream request to reading its first
// event (the hello): the emulator's invocation, the runtime's next/response
// round trip, the Handler opening a peer (registering it in Redis) and the
// streamed prelude. Each stream then ends with its 300 ms invocation
// (outside the timer), freeing its environment.
func BenchmarkLambdaFirstByte(b *testing.B) {
	rs := redistest.Start(b)
	u := emulateB(b, runtimetest.Env{Redis: rs.URL(), Prefix: rs.Prefix()}, 300*time.Millisecond, 100*time.Millisecond)
	client := &http.Client{}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		req, _ := http.NewRequest(http.MethodGet, u, nil)
		req.Header.Set("Accept", "text/event-stream")
		resp, err := client.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		br := bufio.NewReader(resp.Body)
		line, err := br.ReadString('\n')
		if err != nil || !strings.HasPrefix(line, "id: ") {
			b.Fatalf("first line %q: %v", line, err)
		}
		b.StopTimer()
		_, _ = io.Copy(io.Discard, br) // until the invocation ends
		resp.Body.Close()
		b.StartTimer()
	}
}

// BenchmarkLambdaPost measures a POST through the emulator to a peer whose
// stream is open in another execution environment: the POST's invocation,
// the route through Redis to the environment holding the stream, and the
// answer (200). The message reaching the stream is not waited for.
func BenchmarkLambdaPost(b *testing.B) {
	rs := redistest.Start(b)
	u := emulateB(b, runtimetest.Env{Redis: rs.URL(), Prefix: rs.Prefix()}, 5*time.Minute, 5*time.Second)
	req, _ := http.NewRequest(http.MethodGet, u, nil)
	req.Header.Set("Accept", "text/event-stream")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	id := resp.Header.Get("X-Crossws-Id")
	go func() { _, _ = io.Copy(io.Discard, resp.Body) }()
	client := &http.Client{}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		req, _ := http.NewRequest(http.MethodPost, u, strings.NewReader("echo benchmark"))
		req.Header.Set("X-Crossws-Id", id)
		r, err := client.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, r.Body)
		r.Body.Close()
		if r.StatusCode != http.StatusOK {
			b.Fatalf("POST: %d", r.StatusCode)
		}
	}
}
