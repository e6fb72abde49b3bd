package token

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/hmac"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// FuzzVerifyConnect feeds VerifyConnect two kinds of input: tok as it
// comes, and claims signed with the HMAC secret (so that the fuzzer reaches
// the claims decoding). It must never panic; every error wraps ErrInvalid
// or ErrExpired and stays short; a token it accepts must carry a signature
// that the standard library verifies with the configured key for the
// algorithm its header names, and a payload that is JSON.
func FuzzVerifyConnect(f *testing.F) {
	k := rsaKey()
	ek := ecKey()
	v := &Verifier{
		HMACSecret:     testSecret,
		RSAPublicKey:   &k.PublicKey,
		ECDSAPublicKey: &ek.PublicKey,
		Leeway:         time.Second,
		Now:            func() time.Time { return testNow },
	}
	seeds := []string{
		sign(f, jwt.SigningMethodHS256, testSecret, jwt.MapClaims{"sub": "42", "exp": at(time.Hour), "info": map[string]any{"a": 1}}),
		sign(f, jwt.SigningMethodHS512, testSecret, jwt.MapClaims{"sub": "", "expire_at": 0, "channels": []string{"a", "b"}}),
		sign(f, jwt.SigningMethodRS256, k, jwt.MapClaims{"sub": "r", "b64info": "eyJ4IjoxfQ=="}),
		sign(f, jwt.SigningMethodES256, ek, jwt.MapClaims{"sub": "e", "meta": []int{1}}),
		sign(f, jwt.SigningMethodHS256, testSecret, jwt.MapClaims{"sub": "x", "exp": at(-time.Hour)}),
		sign(f, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, jwt.MapClaims{"sub": "admin"}),
		"", "a.b", "a.b.c", "garbage", "..", "eyJhbGciOiJIUzI1NiJ9.e30.",
	}
	claims := []string{
		`{"sub":"42","exp":` + mustJSON(f, at(time.Hour)) + `}`,
		`{"subs":{"c":{"data":{"x":[1,2]},"b64info":"WzFd","override":{"presence":{"value":true}}}},"channels":["c"]}`,
		`{"info": {"a" : "b"} , "b64info":"", "meta":null, "expire_at": 17}`,
		`{"channel":"x"}`, `{"nbf":1e10}`, `{"exp":-1}`, `null`, `[]`, `{`,
	}
	for i, s := range seeds {
		f.Add(s, []byte(claims[i%len(claims)]))
	}
	for _, c := range claims {
		f.Add("", []byte(c))
	}
	f.Fuzz(func(t *testing.T, tok string, claims []byte) {
		c, err := v.VerifyConnect(tok)
		checkResult(t, v, tok, c, err)
		// The same payload, signed.
		signed := rawHS256(`{"alg":"HS256","typ":"JWT"}`, string(claims), testSecret)
		c, err = v.VerifyConnect(signed)
		checkResult(t, v, signed, c, err)
		if err == nil && len(signed) <= MaxLen && !json.Valid(claims) {
			t.Fatalf("accepted a payload that is not JSON: %q", claims)
		}
	})
}

func checkResult(t *testing.T, v *Verifier, tok string, c ConnectClaims, err error) {
	t.Helper()
	if err != nil {
		if !errors.Is(err, ErrInvalid) && !errors.Is(err, ErrExpired) {
			t.Fatalf("error %q wraps neither ErrInvalid nor ErrExpired", err)
		}
		if errors.Is(err, ErrInvalid) && errors.Is(err, ErrExpired) {
			t.Fatalf("error %q wraps both", err)
		}
		if len(err.Error()) > 300 {
			t.Fatalf("error is %d bytes long", len(err.Error()))
		}
		if len(tok) > 20 && strings.Contains(err.Error(), tok) {
			t.Fatalf("error %q quotes the token", err)
		}
		return
	}
	if len(tok) > MaxLen {
		t.Fatalf("accepted a token of %d bytes", len(tok))
	}
	if !signatureOK(v, tok) {
		t.Fatalf("accepted a token that the standard library does not verify: %q", tok)
	}
	for name, raw := range map[string][]byte{"Info": c.Info, "Meta": c.Meta} {
		if raw != nil && (!json.Valid(raw) || bytes.ContainsAny(raw, "\n\r\t")) {
			t.Fatalf("%s = %q is not compact JSON", name, raw)
		}
	}
	for ch, o := range c.Subs {
		for name, raw := range map[string][]byte{"Info": o.Info, "Data": o.Data} {
			if raw != nil && (!json.Valid(raw) || bytes.ContainsAny(raw, "\n\r\t")) {
				t.Fatalf("Subs[%q].%s = %q is not compact JSON", ch, name, raw)
			}
		}
	}
}

// signatureOK checks tok's signature with crypto/* directly, not with the
// JWT library.
func signatureOK(v *Verifier, tok string) bool {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return false
	}
	hb, err1 := b64url.DecodeString(parts[0])
	sig, err2 := b64url.DecodeString(parts[2])
	if err1 != nil || err2 != nil {
		return false
	}
	var h map[string]any
	if json.Unmarshal(hb, &h) != nil {
		return false
	}
	alg, _ := h["alg"].(string)
	if len(alg) != 5 {
		return false
	}
	input := []byte(parts[0] + "." + parts[1])
	var hash crypto.Hash
	switch alg[2:] {
	case "256":
		hash = crypto.SHA256
	case "384":
		hash = crypto.SHA384
	case "512":
		hash = crypto.SHA512
	default:
		return false
	}
	hw := hash.New()
	hw.Write(input)
	digest := hw.Sum(nil)
	switch alg[:2] {
	case "HS":
		mac := hmac.New(hash.New, v.HMACSecret)
		mac.Write(input)
		return len(v.HMACSecret) > 0 && hmac.Equal(mac.Sum(nil), sig)
	case "RS":
		return v.RSAPublicKey != nil && rsa.VerifyPKCS1v15(v.RSAPublicKey, hash, digest, sig) == nil
	case "ES":
		k := v.ECDSAPublicKey
		if k == nil {
			return false
		}
		n := (k.Curve.Params().BitSize + 7) / 8
		if len(sig) != 2*n || n != map[crypto.Hash]int{crypto.SHA256: 32, crypto.SHA384: 48, crypto.SHA512: 66}[hash] {
			return false
		}
		r := new(big.Int).SetBytes(sig[:n])
		s := new(big.Int).SetBytes(sig[n:])
		return ecdsa.Verify(k, digest, r, s)
	}
	return false
}
