package runtimetest

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/ssebridge/ssebridge/backends"
	"github.com/ssebridge/ssebridge/backends/redis"
	"github.com/ssebridge/ssebridge/handler"
	"github.com/ssebridge/ssebridge/handler/centrifugo"
)

// The application's limits, which the suite's tests probe.
const (
	// AppMaxMessageSize bounds one upstream message.
	AppMaxMessageSize = 4 << 10
	// AppQueueSize bounds what a peer may have queued and unwritten.
	AppQueueSize = 4 << 20
	// AppOrigin is the one cross-origin browser origin the app allows.
	AppOrigin = "https://allowed.example"
	// AppRetry is the reconnection delay the app tells clients.
	AppRetry = 200 * time.Millisecond
	// AppTopic is the topic every peer joins when its stream opens.
	AppTopic = "all"
)

// Env says which backend the application runs on.
type Env struct {
	// Redis is a redis:// URL (backends/redis.ParseURL); empty for the
	// in-memory backend.
	Redis string
	// Prefix is the Redis key prefix: instances with the same Redis and
	// prefix form one deployment.
	Prefix string
}

// App returns the handler configuration every runtime serves for the suite.
// Its peers join AppTopic when they open, and its Message hook runs these
// commands (one per message, words separated by one space):
//
//	echo <text>              sends "echo <text>" back to the sender
//	pub <topic> <text>       publishes <text> to <topic> (others receive it),
//	                         then sends "published <topic>"
//	sub <topic>              subscribes, then sends "subscribed <topic>"
//	flood <n> <size>         publishes n messages of size bytes to AppTopic
//	                         ("flood <i> " and padding), one a millisecond
//	close <code> <reason>    closes the peer
//	whoami                   sends "peer <id> node <node id>"
//
// Anything else is sent back unchanged, so that binary and odd messages
// make a round trip.
func App(b backends.Backend, log *slog.Logger) handler.Config {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	a := &app{}
	cfg := handler.Config{
		Backend:        b,
		Logger:         log,
		AllowedOrigins: []string{AppOrigin},
		MaxMessageSize: AppMaxMessageSize,
		QueueSize:      AppQueueSize,
		Heartbeat:      time.Second,
		ReconnectGrace: 10 * time.Second,
		WriteTimeout:   2 * time.Second,
		Retry:          AppRetry,
		Hooks: handler.Hooks{
			Open:    func(p *handler.Peer) { _ = p.Subscribe(AppTopic) },
			Message: a.message,
		},
		// Centrifugo's transports, beside: open channels with history
		// and presence, and an RPC that echoes.
		Centrifugo: &centrifugo.Config{
			AllowedOrigins: []string{AppOrigin},
			Channels: centrifugo.ChannelOptions{Subscribe: true, Publish: true, History: true,
				Presence: true, TrackPresence: true, ForceRecovery: true},
			Hooks: centrifugo.Hooks{
				RPC: func(_ *centrifugo.Client, e centrifugo.RPCEvent) (centrifugo.RPCReply, error) {
					return centrifugo.RPCReply{Data: e.Data}, nil
				},
			},
		},
	}
	return cfg
}

type app struct{}

func (a *app) message(p *handler.Peer, m handler.Message) {
	text := m.Text()
	cmd, rest, _ := strings.Cut(text, " ")
	switch cmd {
	case "echo":
		_ = p.SendText(text)
	case "pub":
		topic, msg, _ := strings.Cut(rest, " ")
		if err := p.Publish(topic, msg); err != nil {
			_ = p.SendText("error " + err.Error())
			return
		}
		_ = p.SendText("published " + topic)
	case "sub":
		if err := p.Subscribe(rest); err != nil {
			_ = p.SendText("error " + err.Error())
			return
		}
		_ = p.SendText("subscribed " + rest)
	case "flood":
		ns, ss, _ := strings.Cut(rest, " ")
		n, err1 := strconv.Atoi(ns)
		size, err2 := strconv.Atoi(ss)
		if err1 != nil || err2 != nil || n < 0 || n > 10000 || size < 0 || size > 1<<20 {
			_ = p.SendText("error bad flood")
			return
		}
		for i := range n {
			msg := fmt.Sprintf("flood %d ", i)
			if pad := size - len(msg); pad > 0 {
				msg += strings.Repeat("x", pad)
			}
			if err := p.Publish(AppTopic, msg); err != nil {
				_ = p.SendText("error " + err.Error())
				return
			}
			time.Sleep(time.Millisecond)
		}
		_ = p.SendText("flooded")
	case "close":
		cs, reason, _ := strings.Cut(rest, " ")
		code, err := strconv.Atoi(cs)
		if err != nil {
			code = handler.CloseNormal
		}
		_ = p.Close(code, reason)
	case "whoami":
		_ = p.SendText(fmt.Sprintf("peer %s node %s", p.ID(), p.NodeID()))
	default:
		_ = p.SendBytes(m.Bytes())
	}
}

// Backend returns the backend env asks for and a function that releases it
// after the Handler using it has shut down.
func Backend(env Env) (backends.Backend, func(), error) {
	if env.Redis == "" {
		return nil, func() {}, nil // the Handler's private memory backend
	}
	client, err := redis.ParseURL(env.Redis)
	if err != nil {
		return nil, nil, err
	}
	b, err := redis.New(redis.Config{Client: client, Prefix: env.Prefix})
	if err != nil {
		_ = client.Close()
		return nil, nil, err
	}
	return b, func() { _ = client.Close() }, nil
}

// NewHandler returns a Handler serving App on env's backend, and a function
// that shuts it down and releases the backend.
func NewHandler(env Env, log *slog.Logger) (*handler.Handler, func(), error) {
	b, release, err := Backend(env)
	if err != nil {
		return nil, nil, err
	}
	h, err := handler.New(App(b, log))
	if err != nil {
		release()
		return nil, nil, err
	}
	return h, func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = h.Shutdown(ctx)
		release()
	}, nil
}
