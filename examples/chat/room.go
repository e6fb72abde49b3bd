package main

import (
	"cmp"
	"crypto/rand"
	"encoding/base64"
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

// memberKey holds each peer's public member id. The peer id is a secret
// (whoever knows it can send as the peer and take over its stream), so the
// room never shows it to others.
var memberKey = handler.NewKey[string]("member")

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
				memberKey.Set(u, newMemberID())
			}
			return nil
		},
		Open: func(p *handler.Peer) {
			if err := p.Subscribe(topic); err != nil {
				_ = p.Close(handler.CloseInternalError, "cannot join the room")
				return
			}
			name, _ := nameKey.Get(p)
			member, _ := memberKey.Get(p)
			_ = p.Send(welcome{Type: "welcome", ID: member, Name: name})
			r.announce()
		},
		Message: func(p *handler.Peer, m handler.Message) {
			name, _ := nameKey.Get(p)
			member, _ := memberKey.Get(p)
			_ = r.h.Publish(topic, chatMessage{Type: "message", From: name, ID: member, Text: m.Text()})
		},
		Close: func(*handler.Peer, handler.CloseDetails) { r.announce() },
	}
}

// announce sends the list of connected peers to everyone.
func (r *room) announce() {
	list := presence{Type: "presence", Peers: []member{}}
	for p := range r.h.Peers() {
		name, _ := nameKey.Get(p)
		id, _ := memberKey.Get(p)
		list.Peers = append(list.Peers, member{ID: id, Name: name})
	}
	slices.SortFunc(list.Peers, func(a, b member) int {
		return cmp.Or(cmp.Compare(a.Name, b.Name), cmp.Compare(a.ID, b.ID))
	})
	_ = r.h.Publish(topic, list)
}

// newMemberID returns a random public id for a member.
func newMemberID() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
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
