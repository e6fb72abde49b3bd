package bench

// Connection-scale benchmarks: N real SSE streams over loopback TCP to one
// server. The server runs alone in a fresh child process for each
// measurement (servers_test.go), so that its runtime.MemStats and
// runtime.NumGoroutine count the server alone and do not depend on what ran
// before in the process (the runtime keeps the descriptors of goroutines
// that ended, about 0.5 KB each, to reuse them, and sizes new goroutines'
// stacks by the history). The streams are held by a load generator in
// another child process (loadgen_test.go). This process only drives both.
//
//	BenchmarkIdleConnections/server=S/conns=N   memory and goroutines per idle stream
//	BenchmarkFanOutConnections/server=S/conns=N publications to a topic all N follow
//
// conns=10000 runs only with SSEBRIDGE_BENCH_10K=1 (see gate).

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ssebridge/ssebridge/internal/ssetest"
)

const (
	// env10k, set to 1, enables the 10 000-connection cases.
	env10k = "SSEBRIDGE_BENCH_10K"
	// pubsPerBurst is the publications of one fan-out burst, published
	// back to back; the next burst starts once every client has them all.
	pubsPerBurst = 100
	// deliveriesPerOp sizes one fan-out op: as many bursts as make this
	// many deliveries (5 at 1 000 connections), but at least one.
	deliveriesPerOp = 500_000
	// burstTimeout bounds the wait for one burst's deliveries.
	burstTimeout = 2 * time.Minute
)

// connCounts are the numbers of connections measured.
var connCounts = []int{1000, 10000}

// gate skips the 10 000-connection cases unless env10k is set, and any case
// the file descriptor limit cannot hold (each child raises its soft limit
// to the hard limit, as this process does here).
func gate(b *testing.B, n int) {
	b.Helper()
	if n > 1000 && os.Getenv(env10k) != "1" {
		b.Skipf("%d connections: set %s=1 to run", n, env10k)
	}
	lim, err := raiseFileLimit()
	if err != nil {
		b.Fatalf("RLIMIT_NOFILE: %v", err)
	}
	if need := uint64(n) + 256; lim < need {
		b.Skipf("RLIMIT_NOFILE is %d, %d connections need about %d (raise ulimit -Hn)", lim, n, need)
	}
}

// server starts a server process running the server of kind; it returns
// the process and the server's address.
func server(tb testing.TB, kind string) (*child, string) {
	tb.Helper()
	s := startChild(tb, roleServer)
	return s, s.do("start %s", kind)
}

func sampleOf(tb testing.TB, s *child) memSample {
	tb.Helper()
	m, err := parseSample(s.do("sample"))
	if err != nil {
		tb.Fatalf("sample: %v", err)
	}
	return m
}

func perConn(after, before uint64, n int) float64 {
	return (float64(after) - float64(before)) / float64(n)
}

// benchName is a sub-benchmark's name.
func benchName(server string, n int) string {
	return fmt.Sprintf("server=%s/conns=%d", server, n)
}

// BenchmarkIdleConnections opens N streams to a fresh server process and
// measures there what they hold once idle: live heap (HeapAlloc after GC),
// goroutine stacks (StackInuse) and goroutines, each per connection, against
// the same figures taken after the server started. The op is opening the N
// streams (until every client has its hello event): ns/op is that time.
func BenchmarkIdleConnections(b *testing.B) {
	for _, sk := range serverKinds {
		for _, n := range connCounts {
			b.Run(benchName(sk.name, n), func(b *testing.B) {
				gate(b, n)
				b.StopTimer()
				c := startChild(b, roleLoadgen)
				var heap, stack, gor float64
				for range b.N {
					s, addr := server(b, sk.name)
					before := sampleOf(b, s)
					b.StartTimer()
					c.do("open %s %d", addr, n)
					b.StopTimer()
					after := sampleOf(b, s)
					c.do("close")
					s.do("stop")
					s.stop()
					heap += perConn(after.heapAlloc, before.heapAlloc, n)
					stack += perConn(after.stackInuse, before.stackInuse, n)
					gor += float64(after.goroutines-before.goroutines) / float64(n)
				}
				runs := float64(b.N)
				b.ReportMetric(heap/runs, "heapB/conn")
				b.ReportMetric(stack/runs, "stackB/conn")
				b.ReportMetric(gor/runs, "goroutines/conn")
			})
		}
	}
}

// BenchmarkFanOutConnections opens N streams, then publishes bursts of
// pubsPerBurst publications of fanOutPayload (64 B) to the topic all of them
// follow, from one goroutine of the server process, as fast as Publish
// returns; a burst ends when every client has counted every publication,
// and an op is max(1, deliveriesPerOp/(pubsPerBurst·N)) bursts. A few bursts
// run untimed first (serverKind.warmup), so that the steady state is
// measured. Reported: publications and deliveries (publications × N) per
// second; events/read, the events a client got per read that returned data
// (how much the server batched, or the client fell behind); B/op and
// allocs/op of the server process; and busyHeapB/conn, the live heap per
// connection after the publications (HeapAlloc after GC, against the figure
// before the streams opened).
func BenchmarkFanOutConnections(b *testing.B) {
	for _, sk := range serverKinds {
		for _, n := range connCounts {
			b.Run(benchName(sk.name, n), func(b *testing.B) {
				runFanOut(b, fanOutCase{start: sk.name, warmup: sk.warmup, target: "/", hello: 1}, n)
			})
		}
	}
}

// fanOutCase is what runFanOut needs to know of a server.
type fanOutCase struct {
	// start is the server child's start command's arguments: the kind and
	// what it takes.
	start string
	// warmup is the untimed bursts (see serverKind.warmup).
	warmup int
	// target is the request target every stream GETs.
	target string
	// hello is the events every stream receives before it follows the
	// topic (the native protocols' hello: 1; Centrifugo's connect and
	// subscribe replies: 2).
	hello int
	// publish, when set, publishes k publications back to back, instead
	// of the server child (a node of the same cluster in this process).
	publish func(k int) error
}

// runFanOut is BenchmarkFanOutConnections's body for one server and n
// connections (see there).
func runFanOut(b *testing.B, fc fanOutCase, n int) {
	gate(b, n)
	b.StopTimer()
	c := startChild(b, roleLoadgen)
	s, addr := server(b, fc.start)
	before := sampleOf(b, s)
	c.do("open %s %d %s", addr, n, fc.target)
	bursts := max(1, deliveriesPerOp/(pubsPerBurst*n))
	timeout := burstTimeout.Milliseconds()

	events := fc.hello
	if events > 1 {
		c.do("arm %d", events)
		c.do("wait %d", timeout)
	}
	burst := func() {
		events += pubsPerBurst
		c.do("arm %d", events)
		b.StartTimer()
		if fc.publish != nil {
			if err := fc.publish(pubsPerBurst); err != nil {
				b.Fatalf("publish: %v", err)
			}
		} else {
			s.do("publish %d", pubsPerBurst)
		}
		c.do("wait %d", timeout)
		b.StopTimer()
	}
	for range fc.warmup {
		burst()
	}

	counters := func() (mallocs, bytes float64) {
		if _, err := fmt.Sscan(s.do("counters"), &mallocs, &bytes); err != nil {
			b.Fatalf("counters: %v", err)
		}
		return mallocs, bytes
	}
	b.ResetTimer()
	c.do("reads")
	mallocs0, bytes0 := counters()
	for range b.N {
		for range bursts {
			burst()
		}
	}
	mallocs1, bytes1 := counters()
	elapsed := b.Elapsed()
	reads, err := strconv.ParseInt(c.do("reads"), 10, 64)
	if err != nil {
		b.Fatal(err)
	}
	after := sampleOf(b, s)
	c.do("close")
	s.do("stop")

	ops := float64(b.N)
	pubs := ops * float64(bursts*pubsPerBurst)
	rate := pubs / elapsed.Seconds()
	b.ReportAllocs()
	b.ReportMetric((mallocs1-mallocs0)/ops, "allocs/op")
	b.ReportMetric((bytes1-bytes0)/ops, "B/op")
	b.ReportMetric(pubs/ops, "pubs/op")
	b.ReportMetric(rate, "pubs/s")
	b.ReportMetric(rate*float64(n), "deliveries/s")
	b.ReportMetric(pubs*float64(n)/float64(reads), "events/read")
	b.ReportMetric(perConn(after.heapAlloc, before.heapAlloc, n), "busyHeapB/conn")
}

// TestLoadGeneratorCounts checks, against every server, that the load
// generator counts exactly what was published (so the benchmarks cannot
// measure nothing), and that an independent client (ssetest.Reader) sees
// the publications' data as published.
func TestLoadGeneratorCounts(t *testing.T) {
	const conns, pubs = 20, 50
	for _, sk := range serverKinds {
		t.Run("server="+sk.name, func(t *testing.T) {
			c := startChild(t, roleLoadgen)
			s, addr := server(t, sk.name)
			c.do("open %s %d", addr, conns)

			// An independent reader, in this process.
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/", nil)
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Accept", "text/event-stream")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			rd := ssetest.NewReader(resp.Body)
			rd.Event(t) // the hello: subscribed from here on

			c.do("arm %d", 1+pubs)
			s.do("publish %d seq", pubs)
			c.do("wait %d", 20_000)
			for i := range pubs {
				if ev, want := rd.Event(t), fanOutPayload+" "+strconv.Itoa(i); ev.Data != want {
					t.Fatalf("publication %d: data %q, want %q", i, ev.Data, want)
				}
			}
			// Nothing more arrives: the counts stay exact.
			time.Sleep(100 * time.Millisecond)
			c.do("arm %d", 1+pubs)
			c.do("wait %d", 1000)
			if got := c.do("close"); got != strconv.Itoa(conns) {
				t.Fatalf("closed %s streams, want %d", got, conns)
			}
			cancel()
			s.do("stop") // fails unless every goroutine of the server is gone
		})
	}
}

// TestCountEvents checks the load generator's event counter on a stream
// with every kind of line it must skip or count.
func TestCountEvents(t *testing.T) {
	long := strings.Repeat("y", 5000)
	input := strings.Join([]string{
		": ping", "", // comment: no event
		"event: x", "", // no data: no event
		"data", "", // 1: a data field with no value
		"data:x\r", "\r", // 2: CRLF
		"id: 7", "event: message", "data: a", "data: b", "", // 3
		"dataX: y", "", // not a data field
		"data: " + long, "", // 4: a line longer than the buffer
		"x" + long + "data: z", "", // "data" inside a long line is no field
		"retry: 10", "data: last", "", // 5
		"data: incomplete", // never dispatched
	}, "\n")
	s := &stream{}
	if err := s.countEvents(newLoadgen(), strings.NewReader(input)); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("countEvents: %v, want io.ErrUnexpectedEOF", err)
	}
	if got := s.count.Load(); got != 5 {
		t.Fatalf("counted %d events, want 5", got)
	}
}
