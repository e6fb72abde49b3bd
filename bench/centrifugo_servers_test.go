package bench

// The servers of the Centrifugo benchmarks (centrifugo_test.go): ssebridge
// serving Centrifugo's SSE transports (handler.Config.Centrifugo, served by
// netfx) and the github.com/centrifugal/centrifuge library (a Node with
// its SSEHandler and EmulationHandler on net/http), each on one node with
// its in-memory backend or broker, or as two nodes sharing a Redis server:
// ssebridge's backends/redis (Redis Streams) and centrifuge's RedisBroker
// (Redis PUB/SUB).
//
// Both are set up alike: anonymous connections, every subscribe allowed,
// rpc answered with its own data, and no pings (centrifuge: PingInterval
// -1; ssebridge cannot turn them off, so one an hour), so that a client
// that never pongs is never disconnected and a stream carries nothing but
// replies and publications.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/centrifugal/centrifuge"
	"github.com/prometheus/client_golang/prometheus"
	goredis "github.com/redis/go-redis/v9"

	redisbackend "github.com/ssebridge/ssebridge/backends/redis"
	"github.com/ssebridge/ssebridge/handler"
	"github.com/ssebridge/ssebridge/handler/centrifugo"
	"github.com/ssebridge/ssebridge/netfx"
)

const (
	// cfChannel is the channel every Centrifugo subscriber follows.
	cfChannel = "bench"
	// cfSSEPath and cfEmulationPath are the endpoints, the same on both
	// servers (Centrifugo's defaults).
	cfSSEPath       = "/connection/sse"
	cfEmulationPath = "/emulation"
)

// cfServer names a Centrifugo server implementation.
type cfServer struct {
	name string
	// start starts one node on loopback: with an in-memory backend or
	// broker when redisURL is "", else sharing the Redis server at
	// redisURL under prefix with the other nodes started so.
	start func(redisURL, prefix string) (*sseServer, error)
	// warmup is the untimed fan-out bursts (see serverKind.warmup).
	warmup int
}

var cfServers = []cfServer{
	{"ssebridge", startCfBridge, 6},
	{"centrifuge", startCentrifuge, 2},
}

// cfKind is a server of the Centrifugo fan-out benchmark, as the server
// child starts it (start <kind> [args]).
type cfKind struct {
	name  string
	start func(args []string) (*sseServer, error)
}

// cfKinds are, for each of cfServers, "cf-<name>": one node with its
// in-memory backend or broker; and "cf-<name>-redis <redis-url> <prefix>":
// one node on the Redis server at redis-url, under prefix (the benchmark
// runs another node there, which publishes).
var cfKinds = func() []cfKind {
	var ks []cfKind
	for _, cs := range cfServers {
		ks = append(ks,
			cfKind{"cf-" + cs.name, func([]string) (*sseServer, error) { return cs.start("", "") }},
			cfKind{"cf-" + cs.name + "-redis", func(args []string) (*sseServer, error) {
				if len(args) != 2 {
					return nil, errors.New("start cf-" + cs.name + "-redis <redis-url> <prefix>")
				}
				return cs.start(args[0], args[1])
			}},
		)
	}
	return ks
}()

// cfSubscriberTarget is the request target of a subscriber's stream: its
// cf_connect is a connect command and a subscribe command to cfChannel.
func cfSubscriberTarget() string {
	return cfSSEPath + "?cf_connect=" + urlQueryEscape(
		`{"connect":{"name":"bench"},"id":1}`+"\n"+
			`{"subscribe":{"channel":"`+cfChannel+`"},"id":2}`)
}

// urlQueryEscape escapes s for a query parameter, spaces as %20 (the load
// generator splits its commands at spaces).
func urlQueryEscape(s string) string {
	var b strings.Builder
	const hex = "0123456789ABCDEF"
	for i := range len(s) {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '-', c == '_', c == '.', c == '~':
			b.WriteByte(c)
		default:
			b.WriteByte('%')
			b.WriteByte(hex[c>>4])
			b.WriteByte(hex[c&15])
		}
	}
	return b.String()
}

// startCfBridge serves ssebridge with the Centrifugo transports on
// net/http through netfx.
func startCfBridge(redisURL, prefix string) (*sseServer, error) {
	s := new(sseServer)
	cfg := handler.Config{
		Logger: slog.New(slog.DiscardHandler),
		Hooks: handler.Hooks{
			Error: func(_ *handler.Peer, err error) { s.report(err) },
		},
		Centrifugo: &centrifugo.Config{
			PingInterval: time.Hour,
			PongTimeout:  -1,
			PresenceTTL:  2 * time.Hour,
			Hooks: centrifugo.Hooks{
				Subscribe: func(*centrifugo.Client, centrifugo.SubscribeEvent) (centrifugo.SubscribeReply, error) {
					return centrifugo.SubscribeReply{}, nil
				},
				RPC: func(_ *centrifugo.Client, e centrifugo.RPCEvent) (centrifugo.RPCReply, error) {
					return centrifugo.RPCReply{Data: e.Data}, nil
				},
			},
		},
	}
	closeBackend := func() error { return nil }
	if redisURL != "" {
		client, err := redisbackend.ParseURL(redisURL)
		if err != nil {
			return nil, err
		}
		inflight := new(inflightHook)
		client.AddHook(inflight)
		be, err := redisbackend.New(redisbackend.Config{
			Client: client,
			Prefix: prefix,
			Logger: slog.New(slog.DiscardHandler),
		})
		if err != nil {
			_ = client.Close()
			return nil, err
		}
		cfg.Backend = be
		closeBackend = func() error {
			// Handler.Shutdown can return while peers whose streams ended
			// just before are still removing their sessions from Redis
			// (see inflightHook): let them finish before the client closes.
			inflight.settle(10 * time.Second)
			return errors.Join(be.Close(), client.Close())
		}
	}
	h, err := handler.New(cfg)
	if err != nil {
		return nil, errors.Join(err, closeBackend())
	}
	cf := h.Centrifugo()
	s.publish = func(data string) error { return cf.Publish(cfChannel, []byte(data)) }
	if err := serveHTTP(s, netfx.New(h), h.Shutdown, nil); err != nil {
		return nil, errors.Join(err, closeBackend())
	}
	stop := s.stop
	s.stop = func() error { return errors.Join(stop(), closeBackend()) }
	return s, nil
}

// startCentrifuge serves a centrifuge Node: its SSE and emulation
// handlers on net/http.
func startCentrifuge(redisURL, prefix string) (*sseServer, error) {
	node, err := centrifuge.New(centrifuge.Config{
		Name: "bench",
		// A registry of its own: the default one is process-wide.
		Metrics: centrifuge.MetricsConfig{RegistererGatherer: prometheus.NewRegistry()},
	})
	if err != nil {
		return nil, err
	}
	node.OnConnecting(func(context.Context, centrifuge.ConnectEvent) (centrifuge.ConnectReply, error) {
		return centrifuge.ConnectReply{Credentials: &centrifuge.Credentials{}}, nil // anonymous
	})
	node.OnConnect(func(c *centrifuge.Client) {
		c.OnSubscribe(func(_ centrifuge.SubscribeEvent, cb centrifuge.SubscribeCallback) {
			cb(centrifuge.SubscribeReply{}, nil)
		})
		c.OnRPC(func(e centrifuge.RPCEvent, cb centrifuge.RPCCallback) {
			cb(centrifuge.RPCReply{Data: e.Data}, nil)
		})
	})
	closeShard := func() {}
	if redisURL != "" {
		shard, err := centrifuge.NewRedisShard(node, centrifuge.RedisShardConfig{Address: redisURL})
		if err != nil {
			return nil, err
		}
		closeShard = shard.Close
		broker, err := centrifuge.NewRedisBroker(node, centrifuge.RedisBrokerConfig{
			Prefix: prefix,
			Shards: []*centrifuge.RedisShard{shard},
		})
		if err != nil {
			closeShard()
			return nil, err
		}
		node.SetBroker(broker)
	}
	if err := node.Run(); err != nil {
		closeShard()
		return nil, err
	}
	noPings := centrifuge.PingPongConfig{PingInterval: -1, PongTimeout: -1}
	mux := http.NewServeMux()
	mux.Handle(cfSSEPath, centrifuge.NewSSEHandler(node, centrifuge.SSEConfig{PingPongConfig: noPings}))
	mux.Handle(cfEmulationPath, centrifuge.NewEmulationHandler(node, centrifuge.EmulationConfig{}))

	s := new(sseServer)
	s.publish = func(data string) error {
		_, err := node.Publish(cfChannel, []byte(data))
		return err
	}
	if err := serveHTTP(s, mux, node.Shutdown, nil); err != nil {
		_ = node.Shutdown(context.Background())
		closeShard()
		return nil, err
	}
	stop := s.stop
	s.stop = func() error {
		err := stop()
		closeShard()
		return err
	}
	s.nodes = func() int {
		info, err := node.Info()
		if err != nil {
			return 0
		}
		return len(info.Nodes)
	}
	return s, nil
}

// waitNodes waits until every one of servers that counts the nodes it
// knows (centrifuge, whose emulation handler answers 404 for a node it
// has not heard of yet) knows n.
func waitNodes(servers []*sseServer, n int) error {
	deadline := time.Now().Add(15 * time.Second)
	for _, s := range servers {
		if s.nodes == nil {
			continue
		}
		for s.nodes() < n {
			if time.Now().After(deadline) {
				return fmt.Errorf("a node knows %d nodes of %d after 15 s", s.nodes(), n)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	return nil
}

// inflightHook counts the commands a go-redis client is running (waiting
// for a connection included). ssebridge's Handler.Shutdown waits until
// every peer left the engine's table, but a peer leaves it before it
// removes its session from the backend (engine.forget): a Shutdown right
// after many streams ended returns while those removals are still under
// way, and closing the client then fails them ("redis: client is closed",
// reported through the Error hook). settle waits for them.
type inflightHook struct{ n atomic.Int64 }

func (h *inflightHook) DialHook(next goredis.DialHook) goredis.DialHook {
	return func(ctx context.Context, network, addr string) (net.Conn, error) { return next(ctx, network, addr) }
}

func (h *inflightHook) ProcessHook(next goredis.ProcessHook) goredis.ProcessHook {
	return func(ctx context.Context, cmd goredis.Cmder) error {
		h.n.Add(1)
		defer h.n.Add(-1)
		return next(ctx, cmd)
	}
}

func (h *inflightHook) ProcessPipelineHook(next goredis.ProcessPipelineHook) goredis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []goredis.Cmder) error {
		h.n.Add(1)
		defer h.n.Add(-1)
		return next(ctx, cmds)
	}
}

// settle waits until no command has run for 50 ms, or timeout.
func (h *inflightHook) settle(timeout time.Duration) {
	quiet := 0
	for deadline := time.Now().Add(timeout); quiet < 10 && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond)
		if h.n.Load() == 0 {
			quiet++
		} else {
			quiet = 0
		}
	}
}
