package redis

import (
	"testing"

	goredis "github.com/redis/go-redis/v9"

	"github.com/ssebridge/ssebridge/backends"
)

// signalReceiver signals every Deliver and Broadcast on a channel.
type signalReceiver struct {
	delivered chan struct{}
	broadcast chan struct{}
}

func newSignalReceiver() *signalReceiver {
	return &signalReceiver{delivered: make(chan struct{}, 1), broadcast: make(chan struct{}, 1)}
}

func (r *signalReceiver) Deliver(string, []byte) error {
	r.delivered <- struct{}{}
	return nil
}

func (r *signalReceiver) Broadcast(backends.Publication) { r.broadcast <- struct{}{} }
func (r *signalReceiver) Release(string)                 {}
func (r *signalReceiver) Error(error)                    {}

func benchBackend(b *testing.B) (*Backend, *node, *signalReceiver, *node) {
	b.Helper()
	s, _ := startServer(b)
	c := goredis.NewClient(&goredis.Options{Addr: s.Addr(), PoolSize: 32})
	b.Cleanup(func() { _ = c.Close() })
	be := newBackend(b, testConfig(c, s.Prefix()))
	r := newSignalReceiver()
	owner, err := be.Attach(bg, r)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = owner.Close() })
	other, err := be.Attach(bg, newSignalReceiver())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = other.Close() })
	return be, owner.(*node), r, other.(*node)
}

// BenchmarkRoute: Route from one node to a session on another, until the
// owner's Deliver is called (one message at a time).
func BenchmarkRoute(b *testing.B) {
	_, owner, r, other := benchBackend(b)
	if err := owner.RegisterSession(bg, "s1", backends.SessionInfo{}); err != nil {
		b.Fatal(err)
	}
	data := []byte(`{"type":"message","text":"hello, world"}`)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if err := other.Route(bg, "s1", data); err != nil {
			b.Fatal(err)
		}
		<-r.delivered
	}
}

// BenchmarkPublish: Publish to a topic one node subscribes to, until its
// Broadcast is called (one publication at a time).
func BenchmarkPublish(b *testing.B) {
	_, sub, r, pub := benchBackend(b)
	if _, err := sub.Subscribe(bg, "bench"); err != nil {
		b.Fatal(err)
	}
	p := backends.Publication{Topic: "bench", Data: []byte(`{"type":"message","text":"hello, world"}`)}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if err := pub.Publish(bg, p); err != nil {
			b.Fatal(err)
		}
		<-r.broadcast
	}
}
