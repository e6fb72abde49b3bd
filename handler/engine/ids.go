package engine

import (
	"crypto/rand"
	"encoding/base64"
)

// IDLength is the length of a peer id: 128 random bits from crypto/rand in
// unpadded base64url.
const IDLength = 22

// NewID returns a new unguessable peer id.
func NewID() string {
	var raw [16]byte
	_, _ = rand.Read(raw[:]) // crypto/rand.Read never fails (Go ≥ 1.24)
	return base64.RawURLEncoding.EncodeToString(raw[:])
}

// ValidID reports whether s has the form of a peer id. Anything a client
// sends as a peer id is checked with it before it is looked up or used in a
// key.
func ValidID(s string) bool {
	// 22 characters carry 132 bits: the last 4 bits of the last character
	// are padding and must be zero, so that every id has one spelling.
	pad, ok := idPadding(s)
	return ok && pad == 0
}

// idPadding returns the padding bits of an id (the last 4 bits of its
// last character), and whether s has an id's length and alphabet.
func idPadding(s string) (byte, bool) {
	if len(s) != IDLength {
		return 0, false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return 0, false
		}
	}
	return indexOf(s[len(s)-1]) & 0x0f, true
}

// Ephemeral peers (PeerOptions.Ephemeral) get ids of the same length and
// alphabet whose padding bits, the last 4 bits of the last character, are
// 0001 instead of 0000: ValidID refuses them, so that no request of the
// native protocol can resume, take over or post to an ephemeral peer, and
// ValidEphemeralID accepts only them.

// newEphemeralID returns a new unguessable id for an ephemeral peer.
func newEphemeralID() string {
	id := []byte(NewID())
	last := &id[len(id)-1]
	*last = alphabet[indexOf(*last)|1]
	return string(id)
}

// ValidEphemeralID reports whether s has the form of an ephemeral peer's
// id. Protocols with ephemeral peers check ids from clients with it.
func ValidEphemeralID(s string) bool {
	pad, ok := idPadding(s)
	return ok && pad == 1
}

const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"

// indexOf is the value of a base64url character (its place in alphabet).
func indexOf(c byte) byte {
	switch {
	case 'A' <= c && c <= 'Z':
		return c - 'A'
	case 'a' <= c && c <= 'z':
		return c - 'a' + 26
	case '0' <= c && c <= '9':
		return c - '0' + 52
	case c == '-':
		return 62
	}
	return 63
}
