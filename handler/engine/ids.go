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
	if len(s) != IDLength {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	// 22 characters carry 132 bits: the last 4 bits of the last character
	// are padding and must be zero, so that every id has one spelling.
	return lastCharCanonical(s[len(s)-1])
}

func lastCharCanonical(c byte) bool {
	var v byte
	switch {
	case 'A' <= c && c <= 'Z':
		v = c - 'A'
	case 'a' <= c && c <= 'z':
		v = c - 'a' + 26
	case '0' <= c && c <= '9':
		v = c - '0' + 52
	case c == '-':
		v = 62
	default:
		v = 63
	}
	return v&0x0f == 0
}
