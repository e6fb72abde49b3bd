package handler_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"time"

	"github.com/ssebridge/ssebridge/handler"
	"github.com/ssebridge/ssebridge/netfx"
)

// A chat room: every peer joins the topic "room" and every message is
// published to everyone, the sender included.
func Example() {
	var h *handler.Handler
	h, err := handler.New(handler.Config{
		Logger: quietLogger(),
		Hooks: handler.Hooks{
			Open: func(p *handler.Peer) { _ = p.Subscribe("room") },
			Message: func(p *handler.Peer, m handler.Message) {
				_ = h.Publish("room", "someone said: "+m.Text())
			},
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	srv := httptest.NewServer(netfx.New(h))
	defer srv.Close()
	defer shutdown(h)

	alice := dial(srv.URL)
	bob := dial(srv.URL)
	alice.post("hello")
	fmt.Println(alice.next())
	fmt.Println(bob.next())
	// Output:
	// message someone said: hello
	// message someone said: hello
}

// The zero Config serves the native protocol from memory.
func ExampleNew() {
	h, err := handler.New(handler.Config{Logger: quietLogger()})
	if err != nil {
		log.Fatal(err)
	}
	defer shutdown(h)
	http.Handle("/sse", netfx.New(h))
	fmt.Println("serving")
	// Output: serving
}

// The Upgrade hook authenticates every request: it may refuse it, and for a
// new peer it may set typed context values and the namespace.
func ExampleHooks_upgrade() {
	userKey := handler.NewKey[string]("user")
	h, err := handler.New(handler.Config{
		Logger: quietLogger(),
		Hooks: handler.Hooks{
			Upgrade: func(u *handler.Upgrade) error {
				user := u.Request.Query().Get("token") // use real authentication
				if user == "" {
					return handler.Reject(http.StatusUnauthorized, "token required")
				}
				if u.Kind == handler.UpgradeOpen {
					userKey.Set(u, user)
					u.Namespace = "/team/" + user
				}
				return nil
			},
			Open: func(p *handler.Peer) {
				user, _ := userKey.Get(p)
				_ = p.SendText("hello " + user + " in " + p.Namespace())
			},
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	srv := httptest.NewServer(netfx.New(h))
	defer srv.Close()
	defer shutdown(h)

	req, _ := http.NewRequest(http.MethodGet, srv.URL, nil) // no token
	req.Header.Set("Accept", "text/event-stream")
	resp, err := exampleClient.Do(req)
	if err != nil {
		log.Fatal(err)
	}
	resp.Body.Close()
	fmt.Println(resp.StatusCode)
	fmt.Println(dial(srv.URL + "?token=ada").next())
	// Output:
	// 401
	// message hello ada in /team/ada
}

// The Message hook receives upstream messages with text, bytes and JSON
// accessors.
func ExampleMessage() {
	got := make(chan string, 1)
	h, err := handler.New(handler.Config{
		Logger: quietLogger(),
		Hooks: handler.Hooks{
			Message: func(p *handler.Peer, m handler.Message) {
				var v struct{ N int }
				if err := m.JSON(&v); err != nil {
					got <- "not JSON: " + m.Text()
					return
				}
				got <- fmt.Sprintf("%d bytes, N=%d", m.Len(), v.N)
			},
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	srv := httptest.NewServer(netfx.New(h))
	defer srv.Close()
	defer shutdown(h)
	dial(srv.URL).post(`{"N":42}`)
	fmt.Println(<-got)
	// Output: 8 bytes, N=42
}

// Send converts what it is given: strings as they are, []byte as a base64
// data URL (as crossws does), other values as JSON.
func ExamplePeer_Send() {
	h, err := handler.New(handler.Config{
		Logger: quietLogger(),
		Hooks: handler.Hooks{Open: func(p *handler.Peer) {
			_ = p.Send("two\nlines")
			_ = p.Send([]byte{0xff, 0x00})
			_ = p.Send(map[string]int{"n": 1})
		}},
	})
	if err != nil {
		log.Fatal(err)
	}
	srv := httptest.NewServer(netfx.New(h))
	defer srv.Close()
	defer shutdown(h)
	c := dial(srv.URL)
	for range 3 {
		fmt.Printf("%q\n", c.nextData())
	}
	// Output:
	// "two\nlines"
	// "data:application/octet-stream;base64,/wA="
	// "{\"n\":1}"
}

// Peer.Publish reaches the other subscribers in the peer's namespace, not
// the peer itself; Handler.Publish reaches everyone.
func ExamplePeer_Publish() {
	h, err := handler.New(handler.Config{
		Logger: quietLogger(),
		Hooks: handler.Hooks{
			Open: func(p *handler.Peer) { _ = p.Subscribe("news") },
			Message: func(p *handler.Peer, m handler.Message) {
				_ = p.Publish("news", "from a peer: "+m.Text())
			},
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	srv := httptest.NewServer(netfx.New(h))
	defer srv.Close()
	defer shutdown(h)
	alice, bob := dial(srv.URL), dial(srv.URL)
	alice.post("hi")
	fmt.Println("bob:", bob.nextData())
	_ = h.Publish("news", "from the server")
	fmt.Println("alice:", alice.nextData())
	fmt.Println("bob:", bob.nextData())
	// Output:
	// bob: from a peer: hi
	// alice: from the server
	// bob: from the server
}

// Subscribe, Unsubscribe and Topics manage a peer's topics.
func ExamplePeer_Subscribe() {
	h, err := handler.New(handler.Config{
		Logger: quietLogger(),
		Hooks: handler.Hooks{Open: func(p *handler.Peer) {
			_ = p.Subscribe("b")
			_ = p.Subscribe("a")
			_ = p.Subscribe("c")
			_ = p.Unsubscribe("b")
			fmt.Println(p.Topics())
		}},
	})
	if err != nil {
		log.Fatal(err)
	}
	srv := httptest.NewServer(netfx.New(h))
	defer srv.Close()
	defer shutdown(h)
	dial(srv.URL)
	// Output: [a c]
}

// Close sends a close event (crossws's client fires "close") and tells the
// client not to reconnect; the Close hook gets the code and reason.
func ExamplePeer_Close() {
	closed := make(chan handler.CloseDetails, 1)
	h, err := handler.New(handler.Config{
		Logger: quietLogger(),
		Hooks: handler.Hooks{
			Open:  func(p *handler.Peer) { _ = p.Close(4000, "bye") },
			Close: func(p *handler.Peer, d handler.CloseDetails) { closed <- d },
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	srv := httptest.NewServer(netfx.New(h))
	defer srv.Close()
	defer shutdown(h)
	fmt.Println(dial(srv.URL).next())
	fmt.Printf("%+v\n", <-closed)
	// Output:
	// close {"code":4000,"reason":"bye"}
	// {Code:4000 Reason:bye}
}

// Handler.Publish reaches every subscriber in every namespace;
// PublishNamespace only those in one namespace (by default a peer's
// namespace is its request path).
func ExampleHandler_Publish() {
	h, err := handler.New(handler.Config{
		Logger: quietLogger(),
		Hooks:  handler.Hooks{Open: func(p *handler.Peer) { _ = p.Subscribe("news") }},
	})
	if err != nil {
		log.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/a", netfx.New(h))
	mux.Handle("/b", netfx.New(h))
	srv := httptest.NewServer(mux)
	defer srv.Close()
	defer shutdown(h)
	a, b := dial(srv.URL+"/a"), dial(srv.URL+"/b")
	_ = h.PublishNamespace("/b", "news", "only for /b")
	_ = h.Publish("news", "for everyone")
	fmt.Println("a:", a.nextData())
	fmt.Println("b:", b.nextData())
	fmt.Println("b:", b.nextData())
	// Output:
	// a: for everyone
	// b: only for /b
	// b: for everyone
}

// Peer.Request is a copy of the request that opened the peer, valid for the
// peer's whole life.
func ExamplePeer_Request() {
	h, err := handler.New(handler.Config{
		Logger: quietLogger(),
		Hooks: handler.Hooks{Open: func(p *handler.Peer) {
			r := p.Request()
			room := r.Query().Get("room")
			_ = p.SendText(r.Method() + " " + r.Path() + " room=" + room)
		}},
	})
	if err != nil {
		log.Fatal(err)
	}
	srv := httptest.NewServer(netfx.New(h))
	defer srv.Close()
	defer shutdown(h)
	fmt.Println(dial(srv.URL + "/sse?room=go").nextData())
	// Output: GET /sse room=go
}

// Peers lists the open peers of this instance.
func ExampleHandler_Peers() {
	h, err := handler.New(handler.Config{Logger: quietLogger()})
	if err != nil {
		log.Fatal(err)
	}
	srv := httptest.NewServer(netfx.New(h))
	defer srv.Close()
	defer shutdown(h)
	a, b := dial(srv.URL), dial(srv.URL)
	n := 0
	for p := range h.Peers() {
		if p.ID() == a.id || p.ID() == b.id {
			n++
		}
	}
	fmt.Println(n, "peers")
	// Output: 2 peers
}

// Shutdown closes every peer with CloseGoingAway and ends their streams
// without a close event, so that clients reconnect elsewhere.
func ExampleHandler_Shutdown() {
	codes := make(chan int, 1)
	h, err := handler.New(handler.Config{
		Logger: quietLogger(),
		Hooks:  handler.Hooks{Close: func(p *handler.Peer, d handler.CloseDetails) { codes <- d.Code }},
	})
	if err != nil {
		log.Fatal(err)
	}
	srv := httptest.NewServer(netfx.New(h))
	defer srv.Close()
	dial(srv.URL)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := h.Shutdown(ctx); err != nil {
		log.Fatal(err)
	}
	fmt.Println(<-codes == handler.CloseGoingAway)
	// Output: true
}

// exampleClient bounds every exchange of the examples, streams included.
var exampleClient = &http.Client{Timeout: 10 * time.Second}

// client is a minimal native-protocol client for the examples.
type client struct {
	url  string
	id   string
	body *bufio.Reader
}

func dial(url string) *client {
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	req.Header.Set("Accept", "text/event-stream")
	resp, err := exampleClient.Do(req)
	if err != nil {
		log.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		log.Fatalf("GET %s: %s", url, resp.Status)
	}
	c := &client{url: url, body: bufio.NewReader(resp.Body)}
	if typ, data := c.next(); typ == "crossws-id" {
		c.id = data
	} else {
		log.Fatalf("first event %q, want crossws-id", typ)
	}
	return c
}

// next returns the type and data of the next event.
func (c *client) next() (typ, data string) {
	var lines []string
	typ = "message"
	for {
		line, err := c.body.ReadString('\n')
		if err != nil {
			log.Fatal(errors.Join(errors.New("reading the stream"), err))
		}
		line = strings.TrimSuffix(line, "\n")
		switch {
		case line == "":
			if lines != nil {
				return typ, strings.Join(lines, "\n")
			}
		case strings.HasPrefix(line, "event: "):
			typ = line[len("event: "):]
		case strings.HasPrefix(line, "data: "):
			lines = append(lines, line[len("data: "):])
		}
	}
}

func (c *client) nextData() string {
	_, data := c.next()
	return data
}

func (c *client) post(text string) {
	req, _ := http.NewRequest(http.MethodPost, c.url, strings.NewReader(text))
	req.Header.Set("X-Crossws-Id", c.id)
	resp, err := exampleClient.Do(req)
	if err != nil {
		log.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		log.Fatalf("POST: %s", resp.Status)
	}
}

func shutdown(h *handler.Handler) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = h.Shutdown(ctx)
}

func quietLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }
