package main

import (
	"cmp"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/ssebridge/ssebridge/handler"
)

// topic is the one room everybody joins.
const topic = "chat"

// maxNameRunes bounds a display name.
const maxNameRunes = 32

// nameKey holds each peer's display name, set in the Upgrade hook.
var nameKey = handler.NewKey[string]("name")

// chatMessage is what every peer receives when someone writes.
type chatMessage struct {
	Type string `json:"type"` // "message"
	From string `json:"from"`
	ID   string `json:"id"` // the sender's peer id
	Text string `json:"text"`
}

// presence lists who is connected.
type presence struct {
	Type  string   `json:"type"` // "presence"
	Peers []member `json:"peers"`
}

type member struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

type room struct {
	h *handler.Handler
}

func newRoom() *room { return &room{} }

func (r *room) hooks() handler.Hooks {
	return handler.Hooks{
		Upgrade: func(u *handler.Upgrade) error {
			if u.Kind == handler.UpgradeOpen {
				nameKey.Set(u, displayName(u.Request.Query().Get("name")))
			}
			return nil
		},
		Open: func(p *handler.Peer) {
			if err := p.Subscribe(topic); err != nil {
				_ = p.Close(handler.CloseInternalError, "cannot join the room")
				return
			}
			r.announce()
		},
		Message: func(p *handler.Peer, m handler.Message) {
			name, _ := nameKey.Get(p)
			_ = r.h.Publish(topic, chatMessage{Type: "message", From: name, ID: p.ID(), Text: m.Text()})
		},
		Close: func(*handler.Peer, handler.CloseDetails) { r.announce() },
	}
}

// announce sends the list of connected peers to everyone.
func (r *room) announce() {
	list := presence{Type: "presence", Peers: []member{}}
	for p := range r.h.Peers() {
		if p.Closed() {
			continue
		}
		name, _ := nameKey.Get(p)
		list.Peers = append(list.Peers, member{ID: p.ID(), Name: name})
	}
	slices.SortFunc(list.Peers, func(a, b member) int {
		return cmp.Or(cmp.Compare(a.Name, b.Name), cmp.Compare(a.ID, b.ID))
	})
	_ = r.h.Publish(topic, list)
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
