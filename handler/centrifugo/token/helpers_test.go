package token

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// testNow is the clock of every test Verifier.
var testNow = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

var testSecret = []byte("ssebridge-test-secret-0123456789")

var (
	rsaKey = sync.OnceValue(func() *rsa.PrivateKey {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			panic(err)
		}
		return k
	})
	ecKey = sync.OnceValue(func() *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			panic(err)
		}
		return k
	})
)

func rsaGenerate() (*rsa.PrivateKey, error) { return rsa.GenerateKey(rand.Reader, 2048) }

// hsVerifier knows only testSecret.
func hsVerifier() *Verifier {
	return &Verifier{HMACSecret: testSecret, Now: func() time.Time { return testNow }}
}

// at is testNow moved by d, in Unix seconds.
func at(d time.Duration) int64 { return testNow.Add(d).Unix() }

// sign signs claims with the library.
func sign(t testing.TB, m jwt.SigningMethod, key any, claims jwt.MapClaims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(m, claims).SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

var b64url = base64.RawURLEncoding

// rawHS256 builds an HS256 token by hand from a header and a payload as
// written, signed with secret.
func rawHS256(header, payload string, secret []byte) string {
	s := b64url.EncodeToString([]byte(header)) + "." + b64url.EncodeToString([]byte(payload))
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(s))
	return s + "." + b64url.EncodeToString(mac.Sum(nil))
}

func mustJSON(t testing.TB, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
