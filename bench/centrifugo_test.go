package bench

// Centrifugo's SSE transports, served by ssebridge (handler/centrifugo)
// and by the github.com/centrifugal/centrifuge library (v0.40.1), side by
// side (servers in centrifugo_servers_test.go):
//
//	BenchmarkCentrifugoEmulation/server=S/route=R
//	    a client's rpc round trip: POST /emulation, reply on the stream;
//	    R is same (POST to the node holding the stream) or cross (POST to
//	    the other node, which routes it through Redis)
//	BenchmarkCentrifugoFanOut/server=S/broker=B/conns=N
//	    publications to a channel N subscribers follow, as
//	    BenchmarkFanOutConnections measures them; B is memory (one node)
//	    or redis (streams on one node, publications made on another)
//
// conns=10000 runs only with SSEBRIDGE_BENCH_10K=1 (see gate). The Redis
// cases start a private redis-server (internal/redistest: skipped without
// one, failed when CI=true).

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ssebridge/ssebridge/internal/redistest"
)

// cfConnect is the cf_connect command of the round-trip client.
const cfConnect = `{"connect":{"name":"bench"},"id":1}`

// cfPrefixes numbers the Redis prefixes of node pairs, so that pairs
// sharing one redis-server never see each other.
var cfPrefixes atomic.Int64

// cfNode starts a node of cs on the Redis server srv under prefix, in
// this process, stopped when tb ends.
func cfNode(tb testing.TB, cs cfServer, srv *redistest.Server, prefix string) *sseServer {
	tb.Helper()
	s, err := cs.start(srv.URL(), prefix)
	if err != nil {
		tb.Fatalf("%s node: %v", cs.name, err)
	}
	tb.Cleanup(func() {
		if err := s.stop(); err != nil {
			tb.Errorf("stop %s node: %v", cs.name, err)
		}
		if err := s.hookErrors(); err != nil {
			tb.Errorf("%s node: %v", cs.name, err)
		}
	})
	return s
}

// cfPair starts two nodes of cs sharing srv, stopped when tb ends, and
// waits until each knows the other.
func cfPair(tb testing.TB, cs cfServer, srv *redistest.Server) (a, b *sseServer) {
	tb.Helper()
	prefix := srv.Prefix() + "-" + strconv.FormatInt(cfPrefixes.Add(1), 10)
	a, b = cfNode(tb, cs, srv, prefix), cfNode(tb, cs, srv, prefix)
	if err := waitNodes([]*sseServer{a, b}, 2); err != nil {
		tb.Fatal(err)
	}
	return a, b
}

// cfRedisCase is the fan-out case of cs on Redis: a node in the server
// child, which the streams open to, and another in this process, which
// publishes (publications of data(i)).
func cfRedisCase(tb testing.TB, cs cfServer, data func(i int) string) (start string, publish func(k int) error) {
	tb.Helper()
	srv := redistest.Start(tb)
	pub := cfNode(tb, cs, srv, srv.Prefix())
	return "cf-" + cs.name + "-redis " + srv.URL() + " " + srv.Prefix(), func(k int) error {
		for i := range k {
			if err := pub.publish(data(i)); err != nil {
				return err
			}
		}
		return nil
	}
}

// rpcCommand is the i-th rpc command, with id.
func rpcCommand(i int, id uint32) string {
	return `{"rpc":{"method":"echo","data":{"n":` + strconv.Itoa(i) + `}},"id":` + strconv.FormatUint(uint64(id), 10) + `}`
}

// newEmulationClient returns an HTTP client for emulation POSTs, which
// keeps its connections alive.
func newEmulationClient(tb testing.TB) *http.Client {
	tr := &http.Transport{MaxIdleConnsPerHost: 4}
	tb.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 20 * time.Second}
}

// BenchmarkCentrifugoEmulation measures a client's command round trip
// over the bidirectional SSE transport, on two nodes sharing one Redis
// server: the client's stream is on the first node; each op POSTs an rpc
// command (ids increasing, one at a time) to /emulation on the first node
// (route=same) or the second (route=cross), and waits for the rpc reply on
// the stream and for the POST's 204. p50-µs and p99-µs are the times from
// sending the POST until the reply was read from the stream; post-p50-µs
// until the 204 was read. centrifuge routes a cross-node emulation request
// as a survey through its broker's control channel (Redis PUB/SUB), whose
// answer the POST waits for; ssebridge appends it to the owner's inbox
// (Redis Streams) and answers the POST once it is there. B/op and
// allocs/op are this whole process's: client, both nodes and their Redis
// clients. 10 round trips run untimed first (connections, first lookups).
func BenchmarkCentrifugoEmulation(b *testing.B) {
	srv := redistest.Start(b)
	for _, cs := range cfServers {
		for _, route := range []string{"same", "cross"} {
			b.Run(fmt.Sprintf("server=%s/route=%s", cs.name, route), func(b *testing.B) {
				a, other := cfPair(b, cs, srv)
				st, err := dialCf("http://"+a.addr, 0, cfConnect)
				if err != nil {
					b.Fatal(err)
				}
				b.Cleanup(st.close)
				target := "http://" + a.addr
				if route == "cross" {
					target = "http://" + other.addr
				}
				client := newEmulationClient(b)
				id := uint32(1)
				roundTrip := func(i int) (reply, post time.Duration) {
					id++
					body := st.emulationBody(rpcCommand(i, id))
					start := time.Now()
					if err := postEmulation(client, target, body); err != nil {
						b.Fatal(err)
					}
					post = time.Since(start)
					r, err := st.reply(id, 20*time.Second)
					if err != nil {
						b.Fatal(err)
					}
					return r.at.Sub(start), post
				}
				for i := range 10 {
					roundTrip(i)
				}
				lat := make([]time.Duration, 0, b.N)
				posts := make([]time.Duration, 0, b.N)
				b.ReportAllocs()
				b.ResetTimer()
				for i := range b.N {
					r, p := roundTrip(i)
					lat = append(lat, r)
					posts = append(posts, p)
				}
				b.StopTimer()
				slices.Sort(lat)
				slices.Sort(posts)
				b.ReportMetric(micros(lat[len(lat)/2]), "p50-µs")
				b.ReportMetric(micros(lat[len(lat)*99/100]), "p99-µs")
				b.ReportMetric(micros(posts[len(posts)/2]), "post-p50-µs")
			})
		}
	}
}

func micros(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }

// BenchmarkCentrifugoFanOut is BenchmarkFanOutConnections (see there and
// runFanOut) for Centrifugo subscribers: each of the N streams opens with
// cf_connect holding a connect command and a subscribe command to
// cfChannel, and counts once it has both replies; publications are made
// with centrifugo.Protocol.Publish (ssebridge) or Node.Publish
// (centrifuge). broker=memory is one node with its in-memory backend or
// broker, in the server child, which publishes. broker=redis is two nodes
// sharing a private redis-server: the server child's, which holds the
// streams, and one in this process, which publishes, so that every
// publication crosses Redis (ssebridge: a script appending to the
// channel's stream, which the first node's topic reader reads; centrifuge:
// PUBLISH, and the first node's PUB/SUB subscription). B/op and allocs/op
// are the server child's: the node that fans out.
func BenchmarkCentrifugoFanOut(b *testing.B) {
	for _, cs := range cfServers {
		for _, broker := range []string{"memory", "redis"} {
			for _, n := range connCounts {
				b.Run(fmt.Sprintf("server=%s/broker=%s/conns=%d", cs.name, broker, n), func(b *testing.B) {
					gate(b, n)
					fc := fanOutCase{start: "cf-" + cs.name, warmup: cs.warmup, target: cfSubscriberTarget(), hello: 2}
					if broker == "redis" {
						fc.start, fc.publish = cfRedisCase(b, cs, func(int) string { return fanOutPayload })
					}
					runFanOut(b, fc, n)
				})
			}
		}
	}
}

// TestCentrifugoEmulation checks the round trip the benchmark measures: on
// both servers, an rpc POSTed to either node comes back on the stream with
// its data.
func TestCentrifugoEmulation(t *testing.T) {
	srv := redistest.Start(t)
	for _, cs := range cfServers {
		t.Run("server="+cs.name, func(t *testing.T) {
			a, other := cfPair(t, cs, srv)
			st, err := dialCf("http://"+a.addr, 0, cfConnect)
			if err != nil {
				t.Fatal(err)
			}
			defer st.close()
			client := newEmulationClient(t)
			for i, s := range []*sseServer{a, other, a, other} {
				id := uint32(i + 2)
				if err := postEmulation(client, "http://"+s.addr, st.emulationBody(rpcCommand(i, id))); err != nil {
					t.Fatal(err)
				}
				r, err := st.reply(id, 10*time.Second)
				if err != nil {
					t.Fatal(err)
				}
				var got struct {
					ID  uint32 `json:"id"`
					RPC struct {
						Data json.RawMessage `json:"data"`
					} `json:"rpc"`
				}
				if err := json.Unmarshal(r.line, &got); err != nil {
					t.Fatalf("reply %s: %v", r.line, err)
				}
				if want := `{"n":` + strconv.Itoa(i) + `}`; got.ID != id || string(got.RPC.Data) != want {
					t.Fatalf("reply %s, want id %d and rpc data %s", r.line, id, want)
				}
			}
		})
	}
}

// TestCentrifugoLoadGeneratorCounts checks, against each Centrifugo
// server kind, that the load generator's streams count exactly their two
// replies and then every publication, and nothing more, and that an
// independent client (dialCf) receives each publication as a push of
// cfChannel with the data published, in order.
func TestCentrifugoLoadGeneratorCounts(t *testing.T) {
	const conns, pubs = 20, 50
	for _, cs := range cfServers {
		for _, broker := range []string{"memory", "redis"} {
			t.Run("server="+cs.name+"/broker="+broker, func(t *testing.T) {
				start := "cf-" + cs.name
				var publish func(k int) error
				if broker == "redis" {
					start, publish = cfRedisCase(t, cs, jsonSeqPayload)
				}
				c := startChild(t, roleLoadgen)
				s, addr := server(t, start)
				c.do("open %s %d %s", addr, conns, cfSubscriberTarget())
				c.do("arm 2")
				c.do("wait 10000")

				st, err := dialCf("http://"+addr, pubs+10, cfConnect, `{"subscribe":{"channel":"`+cfChannel+`"},"id":2}`)
				if err != nil {
					t.Fatal(err)
				}
				defer st.close()
				if _, err := st.reply(2, 10*time.Second); err != nil {
					t.Fatal(err)
				}

				c.do("arm %d", 2+pubs)
				if publish != nil {
					if err := publish(pubs); err != nil {
						t.Fatal(err)
					}
				} else {
					s.do("publish %d jseq", pubs)
				}
				c.do("wait %d", 20_000)
				for i := range pubs {
					var data []byte
					select {
					case data = <-st.pushes:
					case <-time.After(10 * time.Second):
						t.Fatalf("publication %d: no push within 10 s", i)
					}
					var p struct {
						Push struct {
							Channel string `json:"channel"`
							Pub     struct {
								Data json.RawMessage `json:"data"`
							} `json:"pub"`
						} `json:"push"`
					}
					if err := json.Unmarshal(data, &p); err != nil {
						t.Fatalf("push %s: %v", data, err)
					}
					if want := jsonSeqPayload(i); p.Push.Channel != cfChannel || !bytes.Equal(p.Push.Pub.Data, []byte(want)) {
						t.Fatalf("publication %d: push %s, want channel %q and data %s", i, data, cfChannel, want)
					}
				}
				// Nothing more arrives: the counts stay exact.
				time.Sleep(100 * time.Millisecond)
				c.do("arm %d", 2+pubs)
				c.do("wait %d", 1000)
				select {
				case data := <-st.pushes:
					t.Fatalf("push after the publications: %s", data)
				default:
				}
				if got := c.do("close"); got != strconv.Itoa(conns) {
					t.Fatalf("closed %s streams, want %d", got, conns)
				}
				st.close()
				s.do("stop") // fails unless every goroutine of the server is gone
			})
		}
	}
}
