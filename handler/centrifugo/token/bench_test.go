package token

import (
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// BenchmarkVerifyConnectHS256 verifies a typical connection token: user,
// expiry, a little info, one channel.
func BenchmarkVerifyConnectHS256(b *testing.B) {
	v := hsVerifier()
	tok := sign(b, jwt.SigningMethodHS256, testSecret, jwt.MapClaims{
		"sub":      "user-1234",
		"exp":      at(time.Hour),
		"iat":      at(-time.Minute),
		"info":     map[string]any{"name": "Alice", "avatar": "/a/1234.png"},
		"channels": []string{"news"},
	})
	if _, err := v.VerifyConnect(tok); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(tok)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := v.VerifyConnect(tok); err != nil {
			b.Fatal(err)
		}
	}
}
