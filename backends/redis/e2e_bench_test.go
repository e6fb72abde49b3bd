package redis_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ssebridge/ssebridge/handler"
	"github.com/ssebridge/ssebridge/internal/redistest"
)

// BenchmarkUpstreamLatency measures, on loopback, the time from sending a
// POST until the Message hook runs on the instance that holds the peer's
// stream: POSTed to that instance ("same"), and to another one, which
// appends it to the owner's inbox stream in Redis ("cross").
func BenchmarkUpstreamLatency(b *testing.B) {
	srv := redistest.Start(b)
	for _, mode := range []string{"same", "cross"} {
		b.Run(mode, func(b *testing.B) {
			got := make(chan time.Time, 1)
			cfg := handler.Config{Hooks: handler.Hooks{
				Message: func(*handler.Peer, handler.Message) { got <- time.Now() },
			}}
			owner := newBenchInstance(b, srv, cfg)
			other := newBenchInstance(b, srv, cfg)
			id := openBenchStream(b, owner.url, nil)
			target := owner.url
			if mode == "cross" {
				target = other.url
			}
			client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
			lat := make([]time.Duration, 0, b.N)
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				req, _ := http.NewRequest(http.MethodPost, target, strings.NewReader("ping"))
				req.Header.Set("X-Crossws-Id", id)
				start := time.Now()
				resp, err := client.Do(req)
				if err != nil {
					b.Fatal(err)
				}
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					b.Fatalf("POST: %d", resp.StatusCode)
				}
				lat = append(lat, (<-got).Sub(start))
			}
			b.StopTimer()
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
			b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
		})
	}
}

// BenchmarkPublishTwoInstances measures publish throughput across two
// instances: 1000 SSE subscribers (500 on each instance, real loopback
// connections), publications made on one instance by one goroutine
// ("publishers=1", each Publish waits for Redis) or by eight at once; the
// run ends when every subscriber has received every publication.
func BenchmarkPublishTwoInstances(b *testing.B) {
	const subscribers = 1000
	srv := redistest.Start(b)
	cfg := handler.Config{Hooks: handler.Hooks{
		Open: func(p *handler.Peer) { _ = p.Subscribe("bench") },
	}}
	ins := []*benchInstance{newBenchInstance(b, srv, cfg), newBenchInstance(b, srv, cfg)}
	var received atomic.Int64
	for i := range subscribers {
		openBenchStream(b, ins[i%2].url, &received)
	}
	payload := strings.Repeat("x", 64)
	for _, publishers := range []int{1, 8} {
		b.Run(fmt.Sprintf("publishers=%d", publishers), func(b *testing.B) {
			received.Store(0)
			b.ReportAllocs()
			b.ResetTimer()
			start := time.Now()
			var wg sync.WaitGroup
			for w := range publishers {
				wg.Go(func() {
					for i := w; i < b.N; i += publishers {
						if err := ins[0].h.Publish("bench", payload); err != nil {
							b.Error(err)
							return
						}
					}
				})
			}
			wg.Wait()
			want := int64(b.N) * subscribers
			deadline := time.Now().Add(2 * time.Minute)
			for received.Load() < want {
				if time.Now().After(deadline) {
					b.Fatalf("received %d of %d deliveries", received.Load(), want)
				}
				time.Sleep(time.Millisecond)
			}
			elapsed := time.Since(start)
			b.StopTimer()
			b.ReportMetric(float64(want)/elapsed.Seconds(), "deliveries/s")
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "publications/s")
		})
	}
}

type benchInstance struct {
	h   *handler.Handler
	url string
}

func newBenchInstance(b *testing.B, srv *redistest.Server, cfg handler.Config) *benchInstance {
	b.Helper()
	in := newInstance(b, singleClient(b, srv), srv.Prefix(), cfg)
	return &benchInstance{h: in.h, url: in.url}
}

// openBenchStream opens a stream and returns its peer id; when count is not
// nil, a goroutine counts the stream's message events into it.
func openBenchStream(b *testing.B, url string, count *atomic.Int64) string {
	b.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	req.Header.Set("Accept", "text/event-stream")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		cancel()
		b.Fatal(err)
	}
	var once sync.Once
	b.Cleanup(func() { once.Do(func() { cancel(); resp.Body.Close() }) })
	id := resp.Header.Get("X-Crossws-Id")
	go func() {
		br := bufio.NewReaderSize(resp.Body, 64<<10)
		for {
			line, err := br.ReadSlice('\n')
			if err != nil && err != bufio.ErrBufferFull {
				return
			}
			if count != nil && bytes.Equal(line, []byte("event: message\n")) {
				count.Add(1)
			}
		}
	}()
	return id
}
