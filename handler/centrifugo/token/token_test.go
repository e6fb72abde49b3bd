package token

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// wantErr fails unless err wraps want and, for ErrInvalid, not ErrExpired
// (and the other way round), and its message does not quote tok.
func wantErr(t *testing.T, err, want error, tok string) {
	t.Helper()
	if err == nil {
		t.Fatalf("accepted; want %v", want)
	}
	if !errors.Is(err, want) {
		t.Fatalf("error %q does not wrap %q", err, want)
	}
	other := ErrExpired
	if want == ErrExpired {
		other = ErrInvalid
	}
	if errors.Is(err, other) {
		t.Fatalf("error %q wraps %q too", err, other)
	}
	if len(tok) > 16 && strings.Contains(err.Error(), tok) {
		t.Fatalf("error quotes the token: %q", err)
	}
	if len(err.Error()) > 300 {
		t.Fatalf("error message is %d bytes long", len(err.Error()))
	}
}

func TestConnectHS256RoundTrip(t *testing.T) {
	for _, m := range []jwt.SigningMethod{jwt.SigningMethodHS256, jwt.SigningMethodHS384, jwt.SigningMethodHS512} {
		t.Run(m.Alg(), func(t *testing.T) {
			tok := sign(t, m, testSecret, jwt.MapClaims{
				"sub":  "42",
				"exp":  at(time.Hour),
				"info": map[string]any{"name": "Alice", "tags": []int{1, 2}},
				"meta": map[string]any{"role": "admin"},
			})
			c, err := hsVerifier().VerifyConnect(tok)
			if err != nil {
				t.Fatal(err)
			}
			if c.UserID != "42" {
				t.Errorf("UserID = %q", c.UserID)
			}
			if !c.ExpireAt.Equal(testNow.Add(time.Hour)) {
				t.Errorf("ExpireAt = %v, want %v", c.ExpireAt, testNow.Add(time.Hour))
			}
			if string(c.Info) != `{"name":"Alice","tags":[1,2]}` {
				t.Errorf("Info = %s", c.Info)
			}
			if string(c.Meta) != `{"role":"admin"}` {
				t.Errorf("Meta = %s", c.Meta)
			}
			if c.Channels != nil || c.Subs != nil {
				t.Errorf("Channels = %v, Subs = %v; want nil", c.Channels, c.Subs)
			}
		})
	}
}

func TestConnectRS256RoundTrip(t *testing.T) {
	k := rsaKey()
	v := &Verifier{RSAPublicKey: &k.PublicKey, Now: func() time.Time { return testNow }}
	for _, m := range []jwt.SigningMethod{jwt.SigningMethodRS256, jwt.SigningMethodRS384, jwt.SigningMethodRS512} {
		t.Run(m.Alg(), func(t *testing.T) {
			tok := sign(t, m, k, jwt.MapClaims{"sub": "rsa-user", "exp": at(time.Minute)})
			c, err := v.VerifyConnect(tok)
			if err != nil {
				t.Fatal(err)
			}
			if c.UserID != "rsa-user" || !c.ExpireAt.Equal(testNow.Add(time.Minute)) {
				t.Errorf("got %+v", c)
			}
		})
	}
	// Signed by another RSA key.
	other, err := rsaGenerate()
	if err != nil {
		t.Fatal(err)
	}
	tok := sign(t, jwt.SigningMethodRS256, other, jwt.MapClaims{"sub": "x"})
	_, err = v.VerifyConnect(tok)
	wantErr(t, err, ErrInvalid, tok)
	// PS256 uses the same key type but is not Centrifugo's: refused.
	tok = sign(t, jwt.SigningMethodPS256, k, jwt.MapClaims{"sub": "x"})
	_, err = v.VerifyConnect(tok)
	wantErr(t, err, ErrInvalid, tok)
	if errors.Is(err, ErrNoKey) {
		t.Errorf("PS256: %v wraps ErrNoKey", err)
	}
}

func TestConnectES256RoundTrip(t *testing.T) {
	k := ecKey()
	v := &Verifier{ECDSAPublicKey: &k.PublicKey, Now: func() time.Time { return testNow }}
	tok := sign(t, jwt.SigningMethodES256, k, jwt.MapClaims{"sub": "ec-user", "info": "hi"})
	c, err := v.VerifyConnect(tok)
	if err != nil {
		t.Fatal(err)
	}
	if c.UserID != "ec-user" || string(c.Info) != `"hi"` || !c.ExpireAt.IsZero() {
		t.Errorf("got %+v", c)
	}
	// One bit of the signature flipped.
	dot := strings.LastIndexByte(tok, '.')
	sig, err := b64url.DecodeString(tok[dot+1:])
	if err != nil {
		t.Fatal(err)
	}
	sig[10] ^= 1
	bad := tok[:dot+1] + b64url.EncodeToString(sig)
	_, err = v.VerifyConnect(bad)
	wantErr(t, err, ErrInvalid, bad)

	// The key's curve decides the algorithm: ES384 with a P-256 key is
	// refused, ES384 with a P-384 key accepted.
	k384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tok = sign(t, jwt.SigningMethodES384, k384, jwt.MapClaims{"sub": "x"})
	_, err = v.VerifyConnect(tok)
	wantErr(t, err, ErrInvalid, tok)
	if !errors.Is(err, ErrNoKey) {
		t.Errorf("ES384 with a P-256 key: %v does not wrap ErrNoKey", err)
	}
	v384 := &Verifier{ECDSAPublicKey: &k384.PublicKey}
	if _, err := v384.VerifyConnect(tok); err != nil {
		t.Errorf("ES384 with its key: %v", err)
	}
}

func TestWrongSecret(t *testing.T) {
	tok := sign(t, jwt.SigningMethodHS256, []byte("another secret"), jwt.MapClaims{"sub": "42"})
	_, err := hsVerifier().VerifyConnect(tok)
	wantErr(t, err, ErrInvalid, tok)
	if errors.Is(err, ErrNoKey) {
		t.Errorf("%v wraps ErrNoKey", err)
	}
	// A payload swapped under a good signature.
	good := sign(t, jwt.SigningMethodHS256, testSecret, jwt.MapClaims{"sub": "42"})
	parts := strings.Split(good, ".")
	parts[1] = b64url.EncodeToString([]byte(`{"sub":"admin"}`))
	forged := strings.Join(parts, ".")
	_, err = hsVerifier().VerifyConnect(forged)
	wantErr(t, err, ErrInvalid, forged)
}

func TestAlgConfusion(t *testing.T) {
	pub := &rsaKey().PublicKey
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	pemBytes := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	pkcs1 := x509.MarshalPKCS1PublicKey(pub)
	pkcs1PEM := pem.EncodeToMemory(&pem.Block{Type: "RSA PUBLIC KEY", Bytes: pkcs1})
	rsaOnly := &Verifier{RSAPublicKey: pub, Now: func() time.Time { return testNow }}
	both := &Verifier{RSAPublicKey: pub, HMACSecret: testSecret, Now: func() time.Time { return testNow }}
	for name, secret := range map[string][]byte{"PKIX PEM": pemBytes, "PKIX DER": der, "PKCS1 DER": pkcs1, "PKCS1 PEM": pkcs1PEM} {
		for _, m := range []jwt.SigningMethod{jwt.SigningMethodHS256, jwt.SigningMethodHS512} {
			tok := sign(t, m, secret, jwt.MapClaims{"sub": "admin"})
			_, err := rsaOnly.VerifyConnect(tok)
			wantErr(t, err, ErrInvalid, tok)
			if !errors.Is(err, ErrNoKey) {
				t.Errorf("%s %s, RSA key only: %v does not wrap ErrNoKey", name, m.Alg(), err)
			}
			// With an HMAC secret too, HS tokens are checked against the
			// secret alone.
			_, err = both.VerifyConnect(tok)
			wantErr(t, err, ErrInvalid, tok)
			if errors.Is(err, ErrNoKey) {
				t.Errorf("%s %s, both keys: %v wraps ErrNoKey", name, m.Alg(), err)
			}
		}
	}
	// The other way round: an RS256 token is not checked with the secret.
	tok := sign(t, jwt.SigningMethodRS256, rsaKey(), jwt.MapClaims{"sub": "x"})
	_, err = hsVerifier().VerifyConnect(tok)
	wantErr(t, err, ErrNoKey, tok)
	if _, err := both.VerifyConnect(tok); err != nil {
		t.Errorf("RS256 with both keys: %v", err)
	}
}

func TestAlgNoneRefused(t *testing.T) {
	k := rsaKey()
	all := &Verifier{HMACSecret: testSecret, RSAPublicKey: &k.PublicKey, ECDSAPublicKey: &ecKey().PublicKey}
	payload := b64url.EncodeToString([]byte(`{"sub":"admin"}`))
	lib := sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, jwt.MapClaims{"sub": "admin"})
	toks := []string{lib}
	for _, alg := range []string{"none", "None", "NONE", "nOnE", "", "HS256 ", "hs256"} {
		h := b64url.EncodeToString([]byte(`{"alg":"` + alg + `","typ":"JWT"}`))
		toks = append(toks, h+"."+payload+".", h+"."+payload+".c2ln")
	}
	h := b64url.EncodeToString([]byte(`{"typ":"JWT"}`))
	toks = append(toks, h+"."+payload+".")
	for _, tok := range toks {
		_, err := all.VerifyConnect(tok)
		wantErr(t, err, ErrInvalid, tok)
		if errors.Is(err, ErrNoKey) {
			t.Errorf("%s: %v wraps ErrNoKey", tok, err)
		}
	}
}

func TestNoKey(t *testing.T) {
	tok := sign(t, jwt.SigningMethodHS256, testSecret, jwt.MapClaims{"sub": "42"})
	for name, v := range map[string]*Verifier{
		"zero":         {},
		"empty secret": {HMACSecret: []byte{}},
		"ecdsa only":   {ECDSAPublicKey: &ecKey().PublicKey},
	} {
		_, err := v.VerifyConnect(tok)
		wantErr(t, err, ErrInvalid, tok)
		if !errors.Is(err, ErrNoKey) {
			t.Errorf("%s: %v does not wrap ErrNoKey", name, err)
		}
		_, err = v.VerifySubscribe(tok)
		if !errors.Is(err, ErrNoKey) {
			t.Errorf("%s, subscribe: %v does not wrap ErrNoKey", name, err)
		}
	}
	es := sign(t, jwt.SigningMethodES256, ecKey(), jwt.MapClaims{"sub": "42"})
	_, err := hsVerifier().VerifyConnect(es)
	wantErr(t, err, ErrNoKey, es)
	if !strings.Contains(err.Error(), "ES256") {
		t.Errorf("message %q does not name the algorithm", err)
	}
}

func TestExpired(t *testing.T) {
	v := hsVerifier()
	for _, exp := range []int64{at(-time.Second), at(0), at(-24 * time.Hour), 1, 0, -5} {
		tok := sign(t, jwt.SigningMethodHS256, testSecret, jwt.MapClaims{"sub": "42", "exp": exp})
		_, err := v.VerifyConnect(tok)
		wantErr(t, err, ErrExpired, tok)
		stok := sign(t, jwt.SigningMethodHS256, testSecret, jwt.MapClaims{"channel": "news", "exp": exp})
		_, err = v.VerifySubscribe(stok)
		wantErr(t, err, ErrExpired, stok)
	}
	// One second left: good.
	tok := sign(t, jwt.SigningMethodHS256, testSecret, jwt.MapClaims{"sub": "42", "exp": at(time.Second)})
	if _, err := v.VerifyConnect(tok); err != nil {
		t.Fatal(err)
	}
	// Fractional exp, as some libraries write it, counts whole seconds.
	tok = rawHS256(`{"alg":"HS256"}`, `{"exp":`+mustJSON(t, float64(at(0))+1.5)+`}`, testSecret)
	if c, err := v.VerifyConnect(tok); err != nil || !c.ExpireAt.Equal(testNow.Add(time.Second)) {
		t.Fatalf("exp 1.5 s ahead: %v, %v", c.ExpireAt, err)
	}
	tok = rawHS256(`{"alg":"HS256"}`, `{"exp":`+mustJSON(t, float64(at(0))+0.5)+`}`, testSecret)
	_, err := v.VerifyConnect(tok)
	wantErr(t, err, ErrExpired, tok)
	// An expired token with a wrong signature is invalid, not expired.
	tok = sign(t, jwt.SigningMethodHS256, []byte("nope"), jwt.MapClaims{"exp": at(-time.Hour)})
	_, err = v.VerifyConnect(tok)
	wantErr(t, err, ErrInvalid, tok)
}

func TestInvalidBeatsExpired(t *testing.T) {
	v := hsVerifier()
	v.Audience = "ssebridge"
	for name, claims := range map[string]jwt.MapClaims{
		"wrong aud":      {"aud": "other", "exp": at(-time.Hour)},
		"nbf in future":  {"aud": "ssebridge", "nbf": at(time.Hour), "exp": at(-time.Hour)},
		"channel claim":  {"aud": "ssebridge", "channel": "x", "exp": at(-time.Hour)},
		"bad b64info":    {"aud": "ssebridge", "b64info": "***", "exp": at(-time.Hour)},
		"bad subs entry": {"aud": "ssebridge", "subs": map[string]any{"a": map[string]any{"b64data": "!"}}, "exp": at(-time.Hour)},
	} {
		tok := sign(t, jwt.SigningMethodHS256, testSecret, claims)
		_, err := v.VerifyConnect(tok)
		t.Run(name, func(t *testing.T) { wantErr(t, err, ErrInvalid, tok) })
	}
	tok := sign(t, jwt.SigningMethodHS256, testSecret, jwt.MapClaims{"aud": "ssebridge", "exp": at(-time.Hour)})
	_, err := v.VerifySubscribe(tok)
	wantErr(t, err, ErrInvalid, tok) // no channel
}

func TestLeeway(t *testing.T) {
	v := hsVerifier()
	v.Leeway = 10 * time.Second
	ok := []jwt.MapClaims{
		{"exp": at(-9 * time.Second)},
		{"nbf": at(9 * time.Second)},
		{"nbf": at(10 * time.Second)},
	}
	for _, c := range ok {
		tok := sign(t, jwt.SigningMethodHS256, testSecret, c)
		if _, err := v.VerifyConnect(tok); err != nil {
			t.Errorf("%v: %v", c, err)
		}
	}
	tok := sign(t, jwt.SigningMethodHS256, testSecret, jwt.MapClaims{"exp": at(-10 * time.Second)})
	_, err := v.VerifyConnect(tok)
	wantErr(t, err, ErrExpired, tok)
	tok = sign(t, jwt.SigningMethodHS256, testSecret, jwt.MapClaims{"nbf": at(11 * time.Second)})
	_, err = v.VerifyConnect(tok)
	wantErr(t, err, ErrInvalid, tok)
	// The leeway does not stretch ExpireAt.
	tok = sign(t, jwt.SigningMethodHS256, testSecret, jwt.MapClaims{"exp": at(-5 * time.Second)})
	c, err := v.VerifyConnect(tok)
	if err != nil || !c.ExpireAt.Equal(testNow.Add(-5*time.Second)) {
		t.Errorf("ExpireAt = %v, %v", c.ExpireAt, err)
	}
	// Negative leeway counts as none.
	v.Leeway = -time.Hour
	tok = sign(t, jwt.SigningMethodHS256, testSecret, jwt.MapClaims{"exp": at(time.Second), "nbf": at(0)})
	if _, err := v.VerifyConnect(tok); err != nil {
		t.Errorf("negative leeway: %v", err)
	}
}

func TestNotBefore(t *testing.T) {
	v := hsVerifier()
	tok := sign(t, jwt.SigningMethodHS256, testSecret, jwt.MapClaims{"sub": "42", "nbf": at(time.Second), "exp": at(time.Hour)})
	_, err := v.VerifyConnect(tok)
	wantErr(t, err, ErrInvalid, tok)
	if !strings.Contains(err.Error(), "not valid yet") {
		t.Errorf("message %q", err)
	}
	stok := sign(t, jwt.SigningMethodHS256, testSecret, jwt.MapClaims{"channel": "c", "nbf": at(time.Minute)})
	_, err = v.VerifySubscribe(stok)
	wantErr(t, err, ErrInvalid, stok)
	tok = sign(t, jwt.SigningMethodHS256, testSecret, jwt.MapClaims{"sub": "42", "nbf": at(0)})
	if _, err := v.VerifyConnect(tok); err != nil {
		t.Errorf("nbf now: %v", err)
	}
	// iat is not checked, as in Centrifugo.
	tok = sign(t, jwt.SigningMethodHS256, testSecret, jwt.MapClaims{"sub": "42", "iat": at(time.Hour)})
	if _, err := v.VerifyConnect(tok); err != nil {
		t.Errorf("iat in the future: %v", err)
	}
}

func TestAudienceIssuer(t *testing.T) {
	v := hsVerifier()
	v.Audience = "ssebridge"
	v.Issuer = "https://auth.example"
	good := jwt.MapClaims{"sub": "1", "aud": "ssebridge", "iss": "https://auth.example"}
	cases := []struct {
		name string
		set  map[string]any
		ok   bool
	}{
		{"good", nil, true},
		{"aud array", map[string]any{"aud": []string{"x", "ssebridge"}}, true},
		{"aud wrong", map[string]any{"aud": "ssebridge2"}, false},
		{"aud array without", map[string]any{"aud": []string{"x", "y"}}, false},
		{"aud missing", map[string]any{"aud": nil}, false},
		{"aud empty", map[string]any{"aud": ""}, false},
		{"aud not string", map[string]any{"aud": 7}, false},
		{"iss wrong", map[string]any{"iss": "https://auth.example/"}, false},
		{"iss missing", map[string]any{"iss": nil}, false},
		{"iss case", map[string]any{"iss": "HTTPS://AUTH.EXAMPLE"}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := jwt.MapClaims{}
			for k, x := range good {
				c[k] = x
			}
			for k, x := range tc.set {
				if x == nil {
					delete(c, k)
				} else {
					c[k] = x
				}
			}
			tok := sign(t, jwt.SigningMethodHS256, testSecret, c)
			_, err := v.VerifyConnect(tok)
			c["channel"] = "ch"
			stok := sign(t, jwt.SigningMethodHS256, testSecret, c)
			_, serr := v.VerifySubscribe(stok)
			if tc.ok {
				if err != nil || serr != nil {
					t.Fatalf("connect: %v, subscribe: %v", err, serr)
				}
				return
			}
			wantErr(t, err, ErrInvalid, tok)
			wantErr(t, serr, ErrInvalid, stok)
		})
	}
	// Without Audience and Issuer set, both claims are ignored.
	tok := sign(t, jwt.SigningMethodHS256, testSecret, jwt.MapClaims{"aud": "anything", "iss": "anyone"})
	if _, err := hsVerifier().VerifyConnect(tok); err != nil {
		t.Error(err)
	}
}

func TestInfo(t *testing.T) {
	v := hsVerifier()
	enc := base64.StdEncoding.EncodeToString
	cases := []struct {
		name   string
		claims jwt.MapClaims
		want   string // "" for nil
		bad    bool
	}{
		{"none", jwt.MapClaims{}, "", false},
		{"null", jwt.MapClaims{"info": nil}, "", false},
		{"info", jwt.MapClaims{"info": map[string]any{"a": 1}}, `{"a":1}`, false},
		{"b64info", jwt.MapClaims{"b64info": enc([]byte(`{"a": [1, 2]}`))}, `{"a":[1,2]}`, false},
		{"b64info wins", jwt.MapClaims{"info": "raw", "b64info": enc([]byte(`"b64"`))}, `"b64"`, false},
		{"b64info empty", jwt.MapClaims{"info": 5, "b64info": ""}, `5`, false},
		{"b64info url alphabet", jwt.MapClaims{"b64info": base64.URLEncoding.EncodeToString([]byte(`"??>>"`))}, "", true},
		{"b64info not base64", jwt.MapClaims{"b64info": "%%%"}, "", true},
		{"b64info not JSON", jwt.MapClaims{"b64info": enc([]byte{0xff, 0x00, 0x01})}, "", true},
		{"b64info not string", jwt.MapClaims{"b64info": 12}, "", true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tok := sign(t, jwt.SigningMethodHS256, testSecret, tc.claims)
			c, err := v.VerifyConnect(tok)
			tc.claims["channel"] = "ch"
			stok := sign(t, jwt.SigningMethodHS256, testSecret, tc.claims)
			s, serr := v.VerifySubscribe(stok)
			if tc.bad {
				wantErr(t, err, ErrInvalid, tok)
				wantErr(t, serr, ErrInvalid, stok)
				return
			}
			if err != nil || serr != nil {
				t.Fatalf("connect: %v, subscribe: %v", err, serr)
			}
			if string(c.Info) != tc.want || (tc.want == "") != (c.Info == nil) {
				t.Errorf("connect Info = %q, want %q", c.Info, tc.want)
			}
			if string(s.Info) != tc.want || (tc.want == "") != (s.Info == nil) {
				t.Errorf("subscribe Info = %q, want %q", s.Info, tc.want)
			}
		})
	}
	// Info written with whitespace and newlines comes out compacted.
	tok := rawHS256(`{"alg":"HS256"}`, "{\"info\": {\n\t\"a\": \"x y\",\r\n \"b\": [ 1 , 2 ]\n}, \"meta\" :[ ] }", testSecret)
	c, err := v.VerifyConnect(tok)
	if err != nil {
		t.Fatal(err)
	}
	if string(c.Info) != `{"a":"x y","b":[1,2]}` || string(c.Meta) != `[]` {
		t.Errorf("Info = %s, Meta = %s", c.Info, c.Meta)
	}
}

func TestExpireAt(t *testing.T) {
	v := hsVerifier()
	cases := []struct {
		name   string
		claims jwt.MapClaims
		want   time.Time
		err    error
	}{
		{"neither", jwt.MapClaims{}, time.Time{}, nil},
		{"exp only", jwt.MapClaims{"exp": at(time.Hour)}, testNow.Add(time.Hour), nil},
		{"expire_at 0", jwt.MapClaims{"exp": at(time.Hour), "expire_at": 0}, time.Time{}, nil},
		{"expire_at negative", jwt.MapClaims{"exp": at(time.Hour), "expire_at": -3}, time.Time{}, nil},
		{"expire_at null is absent", jwt.MapClaims{"exp": at(time.Hour), "expire_at": nil}, testNow.Add(time.Hour), nil},
		{"expire_at later", jwt.MapClaims{"exp": at(time.Minute), "expire_at": at(24 * time.Hour)}, testNow.Add(24 * time.Hour), nil},
		{"expire_at earlier", jwt.MapClaims{"exp": at(time.Hour), "expire_at": at(time.Minute)}, testNow.Add(time.Minute), nil},
		{"expire_at without exp", jwt.MapClaims{"expire_at": at(time.Minute)}, testNow.Add(time.Minute), nil},
		// expire_at already past: the token is good, the caller sees
		// that the connection has expired.
		{"expire_at past", jwt.MapClaims{"exp": at(time.Hour), "expire_at": at(-time.Minute)}, testNow.Add(-time.Minute), nil},
		// exp still decides the token's own validity.
		{"expire_at 0, exp past", jwt.MapClaims{"exp": at(-time.Second), "expire_at": 0}, time.Time{}, ErrExpired},
		{"expire_at future, exp past", jwt.MapClaims{"exp": at(-time.Second), "expire_at": at(time.Hour)}, time.Time{}, ErrExpired},
		{"expire_at float", jwt.MapClaims{"expire_at": 1.5}, time.Time{}, ErrInvalid},
		{"expire_at string", jwt.MapClaims{"expire_at": "1700000000"}, time.Time{}, ErrInvalid},
		{"exp string", jwt.MapClaims{"exp": "soon"}, time.Time{}, ErrInvalid},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tok := sign(t, jwt.SigningMethodHS256, testSecret, tc.claims)
			c, err := v.VerifyConnect(tok)
			tc.claims["channel"] = "ch"
			stok := sign(t, jwt.SigningMethodHS256, testSecret, tc.claims)
			s, serr := v.VerifySubscribe(stok)
			if tc.err != nil {
				wantErr(t, err, tc.err, tok)
				wantErr(t, serr, tc.err, stok)
				return
			}
			if err != nil || serr != nil {
				t.Fatalf("connect: %v, subscribe: %v", err, serr)
			}
			if !c.ExpireAt.Equal(tc.want) || c.ExpireAt.IsZero() != tc.want.IsZero() {
				t.Errorf("connect ExpireAt = %v, want %v", c.ExpireAt, tc.want)
			}
			if !s.ExpireAt.Equal(tc.want) || s.ExpireAt.IsZero() != tc.want.IsZero() {
				t.Errorf("subscribe ExpireAt = %v, want %v", s.ExpireAt, tc.want)
			}
		})
	}
}

func TestChannelsAndSubs(t *testing.T) {
	v := hsVerifier()
	tok := rawHS256(`{"alg":"HS256","typ":"JWT"}`, `{
		"sub": "7",
		"channels": ["news", "personal:#7"],
		"subs": {
			"chat:1": {"data": {"welcome": true}, "info": {"role": "mod"},
			           "override": {"presence": {"value": true}, "join_leave": {"value": false},
			                        "force_recovery": {"value": true}, "future_option": {"value": 3}},
			           "unknown": [1, 2, 3]},
			"chat:2": {"b64data": "eyJ4IjoxfQ==", "b64info": "WzFd"},
			"chat:3": {}
		}
	}`, testSecret)
	c, err := v.VerifyConnect(tok)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Channels) != 2 || c.Channels[0] != "news" || c.Channels[1] != "personal:#7" {
		t.Errorf("Channels = %q", c.Channels)
	}
	if len(c.Subs) != 3 {
		t.Fatalf("Subs = %+v", c.Subs)
	}
	s1 := c.Subs["chat:1"]
	if string(s1.Data) != `{"welcome":true}` || string(s1.Info) != `{"role":"mod"}` {
		t.Errorf("chat:1 = %s, %s", s1.Data, s1.Info)
	}
	o := s1.Override
	if o.Presence == nil || !*o.Presence || o.JoinLeave == nil || *o.JoinLeave ||
		o.ForceRecovery == nil || !*o.ForceRecovery || o.ForcePushJoinLeave != nil || o.ForcePositioning != nil {
		t.Errorf("chat:1 override = %+v", o)
	}
	s2 := c.Subs["chat:2"]
	if string(s2.Data) != `{"x":1}` || string(s2.Info) != `[1]` || s2.Override != (Override{}) {
		t.Errorf("chat:2 = %s, %s, %+v", s2.Data, s2.Info, s2.Override)
	}
	s3, ok := c.Subs["chat:3"]
	if !ok || s3.Data != nil || s3.Info != nil || s3.Override != (Override{}) {
		t.Errorf("chat:3 = %+v, %v", s3, ok)
	}

	// Empty lists come out nil.
	tok = sign(t, jwt.SigningMethodHS256, testSecret, jwt.MapClaims{"channels": []string{}, "subs": map[string]any{}})
	c, err = v.VerifyConnect(tok)
	if err != nil || c.Channels != nil || c.Subs != nil {
		t.Errorf("empty: %+v, %v", c, err)
	}

	for name, claims := range map[string]jwt.MapClaims{
		"channels not a list":   {"channels": "news"},
		"channels of numbers":   {"channels": []int{1}},
		"subs a list":           {"subs": []string{"news"}},
		"override bare bool":    {"subs": map[string]any{"a": map[string]any{"override": map[string]any{"presence": true}}}},
		"subs b64data not JSON": {"subs": map[string]any{"a": map[string]any{"b64data": base64.StdEncoding.EncodeToString([]byte("not json"))}}},
		"subs b64info garbage":  {"subs": map[string]any{"a": map[string]any{"b64info": "@@"}}},
	} {
		tok := sign(t, jwt.SigningMethodHS256, testSecret, claims)
		_, err := v.VerifyConnect(tok)
		t.Run(name, func(t *testing.T) { wantErr(t, err, ErrInvalid, tok) })
	}
}

func TestConnectTokenWithChannelRefused(t *testing.T) {
	// A subscription token is not a connection token.
	tok := sign(t, jwt.SigningMethodHS256, testSecret, jwt.MapClaims{"sub": "42", "channel": "news"})
	_, err := hsVerifier().VerifyConnect(tok)
	wantErr(t, err, ErrInvalid, tok)
	if !strings.Contains(err.Error(), "channel") {
		t.Errorf("message %q", err)
	}
}

func TestSubscribe(t *testing.T) {
	v := hsVerifier()
	tok := rawHS256(`{"alg":"HS256","typ":"JWT"}`, mustJSON(t, map[string]any{
		"sub":       "42",
		"channel":   "$private:42",
		"client":    "c-123",
		"exp":       at(time.Minute),
		"expire_at": at(time.Hour),
		"info":      map[string]any{"x": 1},
		"b64data":   base64.StdEncoding.EncodeToString([]byte(`{"hello":"world"}`)),
		"override":  map[string]any{"force_positioning": map[string]any{"value": true}, "force_push_join_leave": map[string]any{"value": false}},
		"extra":     []any{1, "two", nil},
	}), testSecret)
	s, err := v.VerifySubscribe(tok)
	if err != nil {
		t.Fatal(err)
	}
	if s.UserID != "42" || s.Channel != "$private:42" || s.Client != "c-123" {
		t.Errorf("got %+v", s)
	}
	if !s.ExpireAt.Equal(testNow.Add(time.Hour)) {
		t.Errorf("ExpireAt = %v", s.ExpireAt)
	}
	if string(s.Info) != `{"x":1}` || string(s.Data) != `{"hello":"world"}` {
		t.Errorf("Info = %s, Data = %s", s.Info, s.Data)
	}
	o := s.Override
	if o.ForcePositioning == nil || !*o.ForcePositioning || o.ForcePushJoinLeave == nil || *o.ForcePushJoinLeave ||
		o.Presence != nil || o.JoinLeave != nil || o.ForceRecovery != nil {
		t.Errorf("Override = %+v", o)
	}
	// Anonymous subscriber, RSA.
	k := rsaKey()
	rv := &Verifier{RSAPublicKey: &k.PublicKey, Now: func() time.Time { return testNow }}
	rtok := sign(t, jwt.SigningMethodRS256, k, jwt.MapClaims{"channel": "news", "data": "d"})
	s, err = rv.VerifySubscribe(rtok)
	if err != nil || s.Channel != "news" || s.UserID != "" || string(s.Data) != `"d"` {
		t.Errorf("RS256: %+v, %v", s, err)
	}

	for name, claims := range map[string]jwt.MapClaims{
		"no channel":        {"sub": "42"},
		"empty channel":     {"sub": "42", "channel": ""},
		"channel not text":  {"sub": "42", "channel": 5},
		"null channel":      {"sub": "42", "channel": nil},
		"connection token":  {"sub": "42", "channels": []string{"news"}},
		"b64data garbage":   {"channel": "c", "b64data": "#"},
		"override not obj":  {"channel": "c", "override": "yes"},
		"client not string": {"channel": "c", "client": 1},
	} {
		tok := sign(t, jwt.SigningMethodHS256, testSecret, claims)
		_, err := v.VerifySubscribe(tok)
		t.Run(name, func(t *testing.T) { wantErr(t, err, ErrInvalid, tok) })
	}
}

func TestUnknownClaimsAccepted(t *testing.T) {
	v := hsVerifier()
	extra := map[string]any{
		"jti": "id-1", "iat": at(-time.Minute), "typ": "whatever", "scope": []string{"a"},
		"nested": map[string]any{"deep": []any{map[string]any{"x": nil}}}, "n": 1e300,
		"user_id": 99, "b64meta": "x",
	}
	c := jwt.MapClaims{"sub": "42"}
	for k, x := range extra {
		c[k] = x
	}
	tok := sign(t, jwt.SigningMethodHS256, testSecret, c)
	got, err := v.VerifyConnect(tok)
	if err != nil || got.UserID != "42" {
		t.Fatalf("%+v, %v", got, err)
	}
	c["channel"] = "news"
	tok = sign(t, jwt.SigningMethodHS256, testSecret, c)
	if s, err := v.VerifySubscribe(tok); err != nil || s.Channel != "news" {
		t.Fatalf("%+v, %v", s, err)
	}
	// Unknown header fields too.
	tok = rawHS256(`{"alg":"HS256","typ":"JWT","kid":"k1","x5t":"??","crit":[]}`, `{"sub":"42"}`, testSecret)
	if _, err := v.VerifyConnect(tok); err != nil {
		t.Fatal(err)
	}
}

func TestLengthBound(t *testing.T) {
	v := hsVerifier()
	// Signed tokens of exactly MaxLen bytes and a little more.
	var exact, over string
	for kid := 0; kid < 4 && exact == ""; kid++ {
		header := `{"alg":"HS256","kid":"` + strings.Repeat("k", kid) + `"}`
		for n := MaxLen*3/4 - 200; n < MaxLen; n++ {
			tok := rawHS256(header, `{"sub":"42","pad":"`+strings.Repeat("p", n-len(`{"sub":"42","pad":""}`))+`"}`, testSecret)
			if len(tok) == MaxLen {
				exact = tok
				over = rawHS256(header, `{"sub":"42","pad":"`+strings.Repeat("p", n+1-len(`{"sub":"42","pad":""}`))+`"}`, testSecret)
				break
			}
			if len(tok) > MaxLen {
				break
			}
		}
	}
	if exact == "" || len(over) <= MaxLen {
		t.Fatalf("could not build the tokens: %d, %d", len(exact), len(over))
	}
	if c, err := v.VerifyConnect(exact); err != nil || c.UserID != "42" {
		t.Fatalf("%d bytes: %+v, %v", len(exact), c, err)
	}
	_, err := v.VerifyConnect(over)
	wantErr(t, err, ErrInvalid, over)
	if !strings.Contains(err.Error(), "longer than 65536") {
		t.Errorf("message %q", err)
	}
	stok := over[:0] + strings.Repeat("a", 10<<20)
	_, err = v.VerifySubscribe(stok)
	wantErr(t, err, ErrInvalid, stok)
	if !strings.Contains(err.Error(), "longer than") {
		t.Errorf("message %q", err)
	}
}

func TestMalformed(t *testing.T) {
	v := &Verifier{HMACSecret: testSecret, RSAPublicKey: &rsaKey().PublicKey, ECDSAPublicKey: &ecKey().PublicKey}
	good := sign(t, jwt.SigningMethodHS256, testSecret, jwt.MapClaims{"sub": "42"})
	parts := strings.Split(good, ".")
	hdr := parts[0]
	enc := func(s string) string { return b64url.EncodeToString([]byte(s)) }
	toks := []string{
		"",
		".",
		"..",
		"a.b",
		"a.b.c",
		"a.b.c.d",
		good + ".",
		"." + good,
		"garbage",
		"\x00\xff\xfe",
		strings.Repeat(".", 100),
		"Bearer " + good,
		" " + good,
		good + " ",
		good + "\n",
		good + "\r\n",
		good[:len(good)-5] + "\n" + good[len(good)-5:],
		good[:len(good)-1] + "=",
		good + "==",
		parts[0] + "." + parts[1] + "." + strings.NewReplacer("_", "/", "-", "+").Replace(parts[2]) + "/",
		parts[0] + "." + parts[1] + "." + parts[2][:len(parts[2])-1] + flipLowBit(parts[2][len(parts[2])-1:]),
		good[:len(good)-1] + "\x80",
		parts[0] + "." + parts[1],
		parts[0] + ".." + parts[2],
		"." + parts[1] + "." + parts[2],
		parts[0] + "." + parts[1] + ".!!!",
		parts[0] + "=" + "." + parts[1] + "." + parts[2],
		enc("not json") + "." + parts[1] + "." + parts[2],
		enc(`["alg","HS256"]`) + "." + parts[1] + "." + parts[2],
		enc(`{"alg":256}`) + "." + parts[1] + "." + parts[2],
		rawHS256(`{"alg":"HS256"}`, `not json`, testSecret),
		rawHS256(`{"alg":"HS256"}`, `["sub"]`, testSecret),
		rawHS256(`{"alg":"HS256"}`, `"sub"`, testSecret),
		rawHS256(`{"alg":"HS256"}`, `{"sub":42}`, testSecret),
		rawHS256(`{"alg":"HS256"}`, `{"sub":"42"`, testSecret),
		rawHS256(`{"alg":"HS256"}`, `{"sub":"42"} {}`, testSecret),
		rawHS256(`{"alg":"HS256"}`, `{"exp":1e999}`, testSecret),
		rawHS256(`{"alg":"HS256"}`, `{"exp":`+strings.Repeat("9", 2000)+`}`, testSecret),
		rawHS256(`{"alg":"HS256"}`, `{"expire_at":`+strings.Repeat("9", 2000)+`}`, testSecret),
		rawHS256(`{"alg":"HS256"}`, `{"nbf":true}`, testSecret),
		rawHS256(`{"alg":"HS256"}`, `{"info":}`, testSecret),
		hdr + "." + enc(`{"sub":"43"}`) + "." + parts[2],
	}
	for i, tok := range toks {
		_, err := v.VerifyConnect(tok)
		_, serr := v.VerifySubscribe(tok)
		t.Run(strconv.Itoa(i), func(t *testing.T) {
			wantErr(t, err, ErrInvalid, tok)
			wantErr(t, serr, ErrInvalid, tok)
		})
	}
	// A JSON error quoting a long number from the payload is cut short.
	tok := rawHS256(`{"alg":"HS256"}`, `{"expire_at":`+strings.Repeat("9", 2000)+`}`, testSecret)
	if _, err := v.VerifyConnect(tok); len(err.Error()) > 200 || strings.Contains(err.Error(), strings.Repeat("9", 200)) {
		t.Errorf("long message: %d bytes", len(err.Error()))
	}
}

func TestNilNowIsTimeNow(t *testing.T) {
	v := &Verifier{HMACSecret: testSecret}
	tok := sign(t, jwt.SigningMethodHS256, testSecret, jwt.MapClaims{"exp": time.Now().Add(time.Hour).Unix()})
	if _, err := v.VerifyConnect(tok); err != nil {
		t.Fatal(err)
	}
	tok = sign(t, jwt.SigningMethodHS256, testSecret, jwt.MapClaims{"exp": time.Now().Add(-time.Minute).Unix()})
	_, err := v.VerifyConnect(tok)
	wantErr(t, err, ErrExpired, tok)
}

func TestErrorMessages(t *testing.T) {
	v := hsVerifier()
	v.Audience = "a"
	cases := map[string]string{
		sign(t, jwt.SigningMethodHS256, []byte("x"), jwt.MapClaims{"aud": "a"}):                 "bad HS256 signature",
		sign(t, jwt.SigningMethodHS256, testSecret, jwt.MapClaims{"aud": "b"}):                  "audience",
		sign(t, jwt.SigningMethodHS256, testSecret, jwt.MapClaims{"aud": "a", "exp": at(-1e9)}): "token expired: exp ",
		sign(t, jwt.SigningMethodRS256, rsaKey(), jwt.MapClaims{"aud": "a"}):                    "no key for the algorithm: RS256",
		sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, jwt.MapClaims{"a": 1}): "algorithm none is refused",
		"x": "malformed",
	}
	for tok, want := range cases {
		_, err := v.VerifyConnect(tok)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v, want it to say %q", err, want)
		}
	}
}

func TestConcurrentUse(t *testing.T) {
	v := &Verifier{HMACSecret: testSecret, RSAPublicKey: &rsaKey().PublicKey, Now: func() time.Time { return testNow }}
	toks := []string{
		sign(t, jwt.SigningMethodHS256, testSecret, jwt.MapClaims{"sub": "h"}),
		sign(t, jwt.SigningMethodRS256, rsaKey(), jwt.MapClaims{"sub": "r"}),
	}
	done := make(chan error)
	for g := range 8 {
		go func() {
			for i := range 50 {
				c, err := v.VerifyConnect(toks[(g+i)%2])
				if err == nil && c.UserID != "h" && c.UserID != "r" {
					err = errors.New("wrong user " + c.UserID)
				}
				if err != nil {
					done <- err
					return
				}
			}
			done <- nil
		}()
	}
	for range 8 {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
}

// json.RawMessage results marshal as they are.
func TestClaimsMarshal(t *testing.T) {
	tok := sign(t, jwt.SigningMethodHS256, testSecret, jwt.MapClaims{"info": map[string]any{"a": "<b>"}})
	c, err := hsVerifier().VerifyConnect(tok)
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(struct {
		Info json.RawMessage `json:"info,omitempty"`
		Meta json.RawMessage `json:"meta,omitempty"`
	}{c.Info, c.Meta})
	if err != nil || string(b) != `{"info":{"a":"\u003cb\u003e"}}` {
		t.Errorf("%s, %v", b, err)
	}
}

// flipLowBit turns a base64url character into the one whose value differs
// in the lowest bit: the last character of a segment then decodes to the
// same bytes with a non-zero trailing bit, which strict decoding refuses.
func flipLowBit(c string) string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	i := strings.Index(alphabet, c)
	return alphabet[i^1 : i^1+1]
}
