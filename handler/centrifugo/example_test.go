package centrifugo_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"log"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"

	"github.com/ssebridge/ssebridge/handler"
	"github.com/ssebridge/ssebridge/handler/centrifugo"
	"github.com/ssebridge/ssebridge/netfx"
)

// A server for centrifuge-js and plain EventSource clients: anonymous
// connections may subscribe to "news", read its history and presence,
// and call the RPC "echo". Here a unidirectional client (what curl or an
// EventSource would be) asks for "news" in cf_connect and gets what the
// server publishes there.
func Example() {
	h, err := handler.New(handler.Config{
		Logger: slog.New(slog.DiscardHandler),
		Centrifugo: &centrifugo.Config{
			Channels: centrifugo.ChannelOptions{History: true, Presence: true, TrackPresence: true, ForceRecovery: true},
			Hooks: centrifugo.Hooks{
				Subscribe: func(_ *centrifugo.Client, e centrifugo.SubscribeEvent) (centrifugo.SubscribeReply, error) {
					if e.Channel != "news" {
						return centrifugo.SubscribeReply{}, centrifugo.ErrorPermissionDenied
					}
					return centrifugo.SubscribeReply{}, nil
				},
				RPC: func(_ *centrifugo.Client, e centrifugo.RPCEvent) (centrifugo.RPCReply, error) {
					if e.Method != "echo" {
						return centrifugo.RPCReply{}, centrifugo.ErrorMethodNotFound
					}
					return centrifugo.RPCReply{Data: e.Data}, nil
				},
			},
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/connection/", netfx.New(h)) // /connection/sse, /connection/uni_sse
	mux.Handle("/emulation", netfx.New(h))
	srv := httptest.NewServer(mux)
	defer srv.Close()
	defer h.Shutdown(context.Background())

	resp, err := http.Get(srv.URL + "/connection/uni_sse?cf_connect=" + url.QueryEscape(`{"subs":{"news":{}}}`))
	if err != nil {
		log.Fatal(err)
	}
	defer resp.Body.Close()
	events := bufio.NewScanner(resp.Body)
	next := func() string {
		for events.Scan() {
			if data, ok := strings.CutPrefix(events.Text(), "data: "); ok {
				return data
			}
		}
		return ""
	}
	var first struct {
		Connect struct {
			Subs map[string]struct {
				Recoverable bool
				Offset      uint64
			}
		}
	}
	_ = json.Unmarshal([]byte(next()), &first)
	fmt.Printf("subscribed to news: recoverable %v, at offset %d\n", first.Connect.Subs["news"].Recoverable, first.Connect.Subs["news"].Offset)

	_ = h.Centrifugo().Publish("news", []byte(`{"title":"hello"}`))
	fmt.Println(next())
	// Output:
	// subscribed to news: recoverable true, at offset 0
	// {"channel":"news","pub":{"data":{"title":"hello"},"offset":1}}
}
