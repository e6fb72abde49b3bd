// Package chatroom is the chat room of the examples (examples/chat on
// net/http or fasthttp, examples/lambda on AWS Lambda): the application's
// hooks, its presence announcements and its page. It is the same
// application on every runtime; only the serving differs.
package chatroom

import (
	"cmp"
	"crypto/sha256"
	_ "embed"
	"encoding/base64"
	"encoding/json"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/ssebridge/ssebridge/handler"
	"github.com/ssebridge/ssebridge/handler/centrifugo"
)

// topic is the one room everybody joins.
const topic = "chat"

// maxNameRunes bounds a display name.
const maxNameRunes = 32

// nameKey holds each peer's display name, set in the Upgrade hook from the
// stream URL's "name" parameter; EventSource reconnects with the same URL,
// so a peer resumed on another instance gets the same name.
var nameKey = handler.NewKey[string]("name")

// presenceEvery is how often each instance re-announces its members: a page
// that joins through one instance learns of the members of the others
// within this time, and pages drop the lists of instances that are gone.
// (Presence kept in the backend, which would make this immediate, comes with
// the Centrifugo protocol.)
const presenceEvery = 2 * time.Second

// chatMessage is what every peer receives when someone writes.
type chatMessage struct {
	Type string `json:"type"` // "message"
	From string `json:"from"`
	ID   string `json:"id"` // the sender's member id
	Text string `json:"text"`
}

// welcome tells a peer its own member id.
type welcome struct {
	Type string `json:"type"` // "welcome"
	ID   string `json:"id"`
	Name string `json:"name"`
}

// presence lists who is connected to one instance (node). Pages merge the
// lists of all instances, and forget one not repeated within 3×presenceEvery.
type presence struct {
	Type  string   `json:"type"` // "presence"
	Node  string   `json:"node"`
	Every int      `json:"every"` // seconds between repeats
	Peers []member `json:"peers"`
}

type member struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

// Page is the chat's web page (plain EventSource and fetch, no build step),
// to serve at / with PageHeaders.
//
//go:embed index.html
var Page []byte

// PageHeaders are the response headers of Page.
var PageHeaders = [][2]string{
	{"Content-Type", "text/html; charset=utf-8"},
	{"Content-Security-Policy", "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'"},
}

// Room is one instance's side of the chat room.
type Room struct {
	h *handler.Handler

	mu   sync.Mutex
	stop chan struct{}
}

// New returns a room; pass Hooks to handler.New, then Start the room with
// the Handler.
func New() *Room { return &Room{stop: make(chan struct{})} }

// Start attaches the room to its Handler and starts re-announcing this
// instance's members every 2 s, until Close.
func (r *Room) Start(h *handler.Handler) {
	r.h = h
	go r.run()
}

// run re-announces this instance's members until close.
func (r *Room) run() {
	t := time.NewTicker(presenceEvery)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			r.announce()
		case <-r.stop:
			return
		}
	}
}

// Close stops the announcements.
func (r *Room) Close() { close(r.stop) }

// Hooks returns the room's hooks for handler.Config.
func (r *Room) Hooks() handler.Hooks {
	return handler.Hooks{
		Upgrade: func(u *handler.Upgrade) error {
			nameKey.Set(u, displayName(u.Request.Query().Get("name")))
			return nil
		},
		Open: func(p *handler.Peer) {
			if err := p.Subscribe(topic); err != nil {
				_ = p.Close(handler.CloseInternalError, "cannot join the room")
				return
			}
			name, _ := nameKey.Get(p)
			_ = p.Send(welcome{Type: "welcome", ID: memberID(p), Name: name})
			r.announce()
		},
		// A peer resumed on this instance (its client's reconnection
		// landed here) is listed here now.
		Resume: func(*handler.Peer) { r.announce() },
		Message: func(p *handler.Peer, m handler.Message) {
			name, _ := nameKey.Get(p)
			_ = r.h.Publish(topic, chatMessage{Type: "message", From: name, ID: memberID(p), Text: m.Text()})
		},
		Close: func(*handler.Peer, handler.CloseDetails) { r.announce() },
	}
}

// announce sends the list of this instance's peers to everyone.
func (r *Room) announce() {
	r.mu.Lock() // one list at a time, so that the last one sent is current
	defer r.mu.Unlock()
	list := presence{Type: "presence", Node: r.h.NodeID(), Every: int(presenceEvery / time.Second), Peers: []member{}}
	for p := range r.h.Peers() {
		name, _ := nameKey.Get(p)
		list.Peers = append(list.Peers, member{ID: memberID(p), Name: name})
	}
	slices.SortFunc(list.Peers, func(a, b member) int {
		return cmp.Or(cmp.Compare(a.Name, b.Name), cmp.Compare(a.ID, b.ID))
	})
	_ = r.h.Publish(topic, list)
}

// memberID is a peer's public id: derived from the peer id by a one-way
// hash, so every instance computes the same one for a resumed peer and
// nobody can work the secret peer id out of it.
func memberID(p *handler.Peer) string {
	sum := sha256.Sum256([]byte("chat member " + p.ID()))
	return base64.RawURLEncoding.EncodeToString(sum[:6])
}

// displayName cleans a requested name: printable, at most 32 runes, or
// "guest".
func displayName(s string) string {
	s = strings.Map(func(r rune) rune {
		if r < ' ' || r == 0x7f || r == utf8.RuneError {
			return -1
		}
		return r
	}, strings.TrimSpace(s))
	if utf8.RuneCountInString(s) > maxNameRunes {
		s = string([]rune(s)[:maxNameRunes])
	}
	if s == "" {
		return "guest"
	}
	return s
}

// Centrifugo returns the room's Centrifugo transports, for
// handler.Config.Centrifugo: centrifuge-js clients (or any EventSource, on
// /connection/uni_sse) join anonymously, subscribe to and publish in the
// channel "chat" (the room's topic, so they talk with the page's
// clients), read its history and presence, and call the RPC "echo", which
// returns its data.
func (r *Room) Centrifugo() *centrifugo.Config {
	inRoom := func(ch string) error {
		if ch != topic {
			return centrifugo.ErrorUnknownChannel
		}
		return nil
	}
	return &centrifugo.Config{
		Channels: centrifugo.ChannelOptions{TrackPresence: true, ForceRecovery: true, JoinLeave: true},
		Hooks: centrifugo.Hooks{
			Subscribe: func(_ *centrifugo.Client, e centrifugo.SubscribeEvent) (centrifugo.SubscribeReply, error) {
				return centrifugo.SubscribeReply{}, inRoom(e.Channel)
			},
			// A publication becomes a chat message, as the page's
			// clients send them: {"text": "…"} from the client.
			Publish: func(c *centrifugo.Client, e centrifugo.PublishEvent) (centrifugo.PublishReply, error) {
				if err := inRoom(e.Channel); err != nil {
					return centrifugo.PublishReply{}, err
				}
				var in struct {
					Text string `json:"text"`
				}
				if json.Unmarshal(e.Data, &in) != nil || in.Text == "" {
					return centrifugo.PublishReply{}, centrifugo.ErrorBadRequest
				}
				name, _ := nameKey.Get(c.Peer())
				out, err := json.Marshal(chatMessage{Type: "message", From: name, ID: memberID(c.Peer()), Text: in.Text})
				return centrifugo.PublishReply{Data: out}, err
			},
			History:  func(_ *centrifugo.Client, ch string) error { return inRoom(ch) },
			Presence: func(_ *centrifugo.Client, ch string) error { return inRoom(ch) },
			RPC: func(_ *centrifugo.Client, e centrifugo.RPCEvent) (centrifugo.RPCReply, error) {
				if e.Method != "echo" {
					return centrifugo.RPCReply{}, centrifugo.ErrorMethodNotFound
				}
				return centrifugo.RPCReply{Data: e.Data}, nil
			},
			Connect:    func(*centrifugo.Client) { r.announce() },
			Disconnect: func(*centrifugo.Client, centrifugo.Disconnect) { r.announce() },
		},
	}
}
