package token

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// MaxLen is the longest token, in bytes, that a [Verifier] parses. A longer
// one is refused with [ErrInvalid] before any decoding.
const MaxLen = 64 << 10

var (
	// ErrInvalid is wrapped by every error about a token that can never be
	// accepted: malformed, not signed with a configured key, an algorithm
	// that is refused, a wrong audience or issuer, "nbf" still in the
	// future, or claims of the wrong shape. Centrifugo answers it with
	// disconnect 3500 "invalid token" (error 103 on subscribe).
	ErrInvalid = errors.New("invalid token")

	// ErrExpired is wrapped by the error about a token that is good but
	// whose "exp" has passed. Centrifugo answers it with error 109 "token
	// expired", and the client fetches a new token.
	ErrExpired = errors.New("token expired")

	// ErrNoKey is wrapped, along with [ErrInvalid], by the error about a
	// token signed with an algorithm for which the Verifier has no key
	// (an RS256 token and only HMACSecret set, say).
	ErrNoKey = errors.New("no key for the algorithm")
)

// Verifier checks the signature and the claims of Centrifugo tokens. Its
// zero value has no key and refuses every token with [ErrNoKey]: set at
// least one key. A Verifier may be used by many goroutines at once as long
// as its fields are not changed meanwhile.
//
// Each key enables only its own algorithms, so an HS256 token is never
// checked against an RSA or ECDSA key, and "none" is always refused.
type Verifier struct {
	// HMACSecret, when not empty, enables HS256, HS384 and HS512: it is
	// Centrifugo's client.token.hmac_secret_key, as bytes.
	HMACSecret []byte

	// RSAPublicKey, when set, enables RS256, RS384 and RS512.
	RSAPublicKey *rsa.PublicKey

	// ECDSAPublicKey, when set, enables the ES algorithm of its curve:
	// ES256 for P-256, ES384 for P-384, ES512 for P-521.
	ECDSAPublicKey *ecdsa.PublicKey

	// Audience, when set, must be one of the token's "aud" values; a token
	// without "aud" is then refused.
	Audience string

	// Issuer, when set, must equal the token's "iss".
	Issuer string

	// Leeway is the clock skew allowed when checking "exp" and "nbf": a
	// token is accepted until exp+Leeway and from nbf-Leeway. Negative
	// counts as 0. ("iat" is not checked, as in Centrifugo.)
	Leeway time.Duration

	// Now tells the time; nil means time.Now. For tests.
	Now func() time.Time
}

// ConnectClaims is what a connection token grants.
type ConnectClaims struct {
	// UserID is the "sub" claim; "" is an anonymous user.
	UserID string

	// ExpireAt is when the connection expires and must be refreshed: the
	// "expire_at" claim (Unix seconds) when the token has one, where 0 (or
	// less) means never; otherwise "exp". The zero time means never.
	ExpireAt time.Time

	// Info is the connection info, compacted JSON: "info", or "b64info"
	// decoded when that is set (it must hold JSON). Nil when absent or null.
	Info json.RawMessage

	// Channels is the "channels" claim: channels the server subscribes the
	// connection to. Centrifugo ignores it when Subs is not empty.
	Channels []string

	// Subs is the "subs" claim: server-side subscriptions with options,
	// keyed by channel. Nil when absent.
	Subs map[string]SubscribeOptions

	// Meta is the "meta" claim, compacted JSON, for the server only; it is
	// never sent to clients. Nil when absent or null.
	Meta json.RawMessage
}

// SubscribeOptions is one entry of a connection token's "subs" claim:
// {"info": …, "b64info": "…", "data": …, "b64data": "…", "override": {…}}.
// Other fields are ignored.
type SubscribeOptions struct {
	// Info is the channel info, compacted JSON: "info", or "b64info"
	// decoded when that is set (it must hold JSON). Nil when absent.
	Info json.RawMessage

	// Data is sent to the client with the subscription, compacted JSON:
	// "data", or "b64data" decoded when that is set (it must hold JSON).
	// Nil when absent.
	Data json.RawMessage

	// Override holds the channel options this subscription overrides.
	Override Override
}

// Override is Centrifugo's "override" object: each field, when not nil,
// replaces the channel's configured option for this subscription. In the
// token each is written {"value": true|false}.
type Override struct {
	Presence           *bool // "presence"
	JoinLeave          *bool // "join_leave"
	ForcePushJoinLeave *bool // "force_push_join_leave"
	ForcePositioning   *bool // "force_positioning"
	ForceRecovery      *bool // "force_recovery"
}

// SubscribeClaims is what a subscription token grants.
type SubscribeClaims struct {
	// UserID is the "sub" claim; the caller checks that it is the
	// connection's user ("" for an anonymous one).
	UserID string

	// Channel is the "channel" claim, never empty; the caller checks that
	// it is the channel being subscribed to.
	Channel string

	// Client is the "client" claim: when not empty, the only client id the
	// token is good for.
	Client string

	// ExpireAt is when the subscription expires and must be refreshed:
	// "expire_at" (Unix seconds; 0 or less means never) when present,
	// otherwise "exp". The zero time means never.
	ExpireAt time.Time

	// Info is the channel info, compacted JSON: "info", or "b64info"
	// decoded when that is set (it must hold JSON). Nil when absent.
	Info json.RawMessage

	// Data is sent to the client in the subscribe reply, compacted JSON:
	// "data", or "b64data" decoded when that is set (it must hold JSON).
	// Nil when absent.
	Data json.RawMessage

	// Override holds the channel options this subscription overrides.
	Override Override
}

// VerifyConnect checks a connection token and returns its claims. The
// error wraps [ErrInvalid] or [ErrExpired] (and [ErrNoKey] when the
// Verifier has no key for the token's algorithm).
func (v *Verifier) VerifyConnect(tok string) (ConnectClaims, error) {
	now := v.now()
	var c connectJSON
	if err := v.verify(tok, &c, &c.RegisteredClaims, now); err != nil {
		return ConnectClaims{}, err
	}
	if c.Channel != "" {
		return ConnectClaims{}, invalid("a connection token has a channel claim (only subscription tokens have one)")
	}
	info, err := payload(c.Info, c.B64Info, "b64info")
	if err != nil {
		return ConnectClaims{}, err
	}
	meta, err := payload(c.Meta, "", "")
	if err != nil {
		return ConnectClaims{}, err
	}
	var subs map[string]SubscribeOptions
	if len(c.Subs) > 0 {
		subs = make(map[string]SubscribeOptions, len(c.Subs))
		for ch, o := range c.Subs {
			so, err := o.options()
			if err != nil {
				return ConnectClaims{}, fmt.Errorf("%w (subs, channel %s)", err, clip(ch))
			}
			subs[ch] = so
		}
	}
	if err := v.checkExp(c.ExpiresAt, now); err != nil {
		return ConnectClaims{}, err
	}
	var channels []string
	if len(c.Channels) > 0 {
		channels = c.Channels
	}
	return ConnectClaims{
		UserID:   c.Subject,
		ExpireAt: expireAt(c.ExpireAt, c.ExpiresAt),
		Info:     info,
		Channels: channels,
		Subs:     subs,
		Meta:     meta,
	}, nil
}

// VerifySubscribe checks a subscription token and returns its claims. A
// token without a "channel" claim is invalid. The error wraps [ErrInvalid]
// or [ErrExpired] (and [ErrNoKey] when the Verifier has no key for the
// token's algorithm).
func (v *Verifier) VerifySubscribe(tok string) (SubscribeClaims, error) {
	now := v.now()
	var c subscribeJSON
	if err := v.verify(tok, &c, &c.RegisteredClaims, now); err != nil {
		return SubscribeClaims{}, err
	}
	if c.Channel == "" {
		return SubscribeClaims{}, invalid("a subscription token needs a channel claim")
	}
	o, err := c.subOptionsJSON.options()
	if err != nil {
		return SubscribeClaims{}, err
	}
	if err := v.checkExp(c.ExpiresAt, now); err != nil {
		return SubscribeClaims{}, err
	}
	return SubscribeClaims{
		UserID:   c.Subject,
		Channel:  c.Channel,
		Client:   c.Client,
		ExpireAt: expireAt(c.ExpireAt, c.ExpiresAt),
		Info:     o.Info,
		Data:     o.Data,
		Override: o.Override,
	}, nil
}

// connectJSON is a connection token's payload as Centrifugo decodes it.
type connectJSON struct {
	jwt.RegisteredClaims
	ExpireAt *int64                    `json:"expire_at"`
	Info     json.RawMessage           `json:"info"`
	B64Info  string                    `json:"b64info"`
	Channels []string                  `json:"channels"`
	Subs     map[string]subOptionsJSON `json:"subs"`
	Meta     json.RawMessage           `json:"meta"`
	Channel  string                    `json:"channel"`
}

// subscribeJSON is a subscription token's payload as Centrifugo decodes it.
type subscribeJSON struct {
	jwt.RegisteredClaims
	subOptionsJSON
	Channel  string `json:"channel"`
	Client   string `json:"client"`
	ExpireAt *int64 `json:"expire_at"`
}

// subOptionsJSON is Centrifugo's SubscribeOptions in a token.
type subOptionsJSON struct {
	Info     json.RawMessage `json:"info"`
	B64Info  string          `json:"b64info"`
	Data     json.RawMessage `json:"data"`
	B64Data  string          `json:"b64data"`
	Override *overrideJSON   `json:"override"`
}

type overrideJSON struct {
	Presence           *boolValue `json:"presence"`
	JoinLeave          *boolValue `json:"join_leave"`
	ForcePushJoinLeave *boolValue `json:"force_push_join_leave"`
	ForcePositioning   *boolValue `json:"force_positioning"`
	ForceRecovery      *boolValue `json:"force_recovery"`
}

type boolValue struct {
	Value bool `json:"value"`
}

func (b *boolValue) ptr() *bool {
	if b == nil {
		return nil
	}
	v := b.Value
	return &v
}

func (o *subOptionsJSON) options() (SubscribeOptions, error) {
	info, err := payload(o.Info, o.B64Info, "b64info")
	if err != nil {
		return SubscribeOptions{}, err
	}
	data, err := payload(o.Data, o.B64Data, "b64data")
	if err != nil {
		return SubscribeOptions{}, err
	}
	so := SubscribeOptions{Info: info, Data: data}
	if ov := o.Override; ov != nil {
		so.Override = Override{
			Presence:           ov.Presence.ptr(),
			JoinLeave:          ov.JoinLeave.ptr(),
			ForcePushJoinLeave: ov.ForcePushJoinLeave.ptr(),
			ForcePositioning:   ov.ForcePositioning.ptr(),
			ForceRecovery:      ov.ForceRecovery.ptr(),
		}
	}
	return so, nil
}

// payload returns an embedded JSON value, compacted: the standard base64
// b64 decoded when it is not empty (as Centrifugo prefers it), raw
// otherwise. JSON null is nil.
func payload(raw json.RawMessage, b64, name string) (json.RawMessage, error) {
	if b64 != "" {
		b, err := base64.StdEncoding.DecodeString(b64)
		if err != nil {
			return nil, invalid(name + " is not standard base64")
		}
		if !json.Valid(b) {
			return nil, invalid(name + " does not hold JSON (ssebridge speaks the JSON protocol only)")
		}
		raw = b
	}
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	if bytes.ContainsAny(raw, " \t\r\n") {
		var buf bytes.Buffer
		buf.Grow(len(raw))
		if err := json.Compact(&buf, raw); err != nil { // raw is valid JSON: cannot happen
			return nil, invalid("embedded JSON: " + err.Error())
		}
		raw = buf.Bytes()
	}
	return raw, nil
}

// expireAt is Centrifugo's rule: expire_at when present (≤ 0: never),
// else exp.
func expireAt(ea *int64, exp *jwt.NumericDate) time.Time {
	if ea != nil {
		if *ea > 0 {
			return time.Unix(*ea, 0)
		}
		return time.Time{}
	}
	if exp != nil {
		return time.Unix(exp.Unix(), 0)
	}
	return time.Time{}
}

func (v *Verifier) now() time.Time {
	if v.Now != nil {
		return v.Now()
	}
	return time.Now()
}

func (v *Verifier) leeway() time.Duration {
	return max(v.Leeway, 0)
}

// verify checks the token's size, characters, algorithm, signature, "nbf", "aud" and
// "iss", and decodes its payload into claims (whose registered claims are
// rc). It leaves "exp" to checkExp, so that a token wrong in some other
// way is invalid rather than expired.
func (v *Verifier) verify(tok string, claims jwt.Claims, rc *jwt.RegisteredClaims, now time.Time) error {
	if len(tok) > MaxLen {
		return invalid("longer than " + strconv.Itoa(MaxLen) + " bytes")
	}
	for i := 0; i < len(tok); i++ {
		if !tokenByte[tok[i]] {
			// The base64 decoder would skip CR and LF: refuse them and
			// everything else outside the compact serialization.
			return invalid("byte " + strconv.Itoa(i) + " is not base64url nor '.'")
		}
	}
	methods := v.methods()
	if len(methods) == 0 {
		// Never hand the parser an empty list: a nil one lets every
		// algorithm through.
		return fmt.Errorf("%w: %w: the verifier has no key", ErrInvalid, ErrNoKey)
	}
	p := jwt.NewParser(jwt.WithValidMethods(methods), jwt.WithStrictDecoding(), jwt.WithoutClaimsValidation())
	t, err := p.ParseWithClaims(tok, claims, v.key)
	if err != nil {
		return v.parseError(t, methods, err)
	}
	if rc.NotBefore == nil && v.Audience == "" && v.Issuer == "" {
		return nil
	}
	opts := []jwt.ParserOption{
		jwt.WithLeeway(v.leeway()),
		jwt.WithTimeFunc(func() time.Time { return now }),
	}
	if v.Audience != "" {
		opts = append(opts, jwt.WithAudience(v.Audience))
	}
	if v.Issuer != "" {
		opts = append(opts, jwt.WithIssuer(v.Issuer))
	}
	noExp := *rc
	noExp.ExpiresAt = nil
	if err := jwt.NewValidator(opts...).Validate(&noExp); err != nil {
		return invalid(short(err.Error()))
	}
	return nil
}

// checkExp refuses a token whose "exp" has passed.
func (v *Verifier) checkExp(exp *jwt.NumericDate, now time.Time) error {
	if exp == nil || now.Before(exp.Add(v.leeway())) {
		return nil
	}
	return fmt.Errorf("%w: exp %s has passed", ErrExpired, exp.UTC().Format(time.RFC3339))
}

// tokenByte tells the bytes of a token in JWS compact serialization:
// base64url without padding, and '.'.
var tokenByte = func() (t [256]bool) {
	for _, c := range "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_." {
		t[c] = true
	}
	return t
}()

// methods lists the algorithms the Verifier has keys for.
func (v *Verifier) methods() []string {
	m := make([]string, 0, 7)
	if len(v.HMACSecret) > 0 {
		m = append(m, "HS256", "HS384", "HS512")
	}
	if v.RSAPublicKey != nil {
		m = append(m, "RS256", "RS384", "RS512")
	}
	if k := v.ECDSAPublicKey; k != nil {
		switch k.Curve {
		case elliptic.P256():
			m = append(m, "ES256")
		case elliptic.P384():
			m = append(m, "ES384")
		case elliptic.P521():
			m = append(m, "ES512")
		}
	}
	return m
}

// key is the parser's key function. The parser has already refused every
// algorithm not in methods; the checks here are a second line.
func (v *Verifier) key(t *jwt.Token) (any, error) {
	switch t.Method.(type) {
	case *jwt.SigningMethodHMAC:
		if len(v.HMACSecret) > 0 {
			return v.HMACSecret, nil
		}
	case *jwt.SigningMethodRSA:
		if v.RSAPublicKey != nil {
			return v.RSAPublicKey, nil
		}
	case *jwt.SigningMethodECDSA:
		if v.ECDSAPublicKey != nil {
			return v.ECDSAPublicKey, nil
		}
	}
	return nil, ErrNoKey
}

// parseError turns the parser's error into ours.
func (v *Verifier) parseError(t *jwt.Token, methods []string, err error) error {
	if errors.Is(err, jwt.ErrTokenMalformed) || t == nil || t.Method == nil {
		return invalid(short(err.Error()))
	}
	alg := t.Method.Alg() // one of the library's registered names, not the header's text
	known := false
	for _, m := range methods {
		if m == alg {
			known = true
			break
		}
	}
	switch {
	case !known && (alg == "HS256" || alg == "HS384" || alg == "HS512" ||
		alg == "RS256" || alg == "RS384" || alg == "RS512" ||
		alg == "ES256" || alg == "ES384" || alg == "ES512"):
		return fmt.Errorf("%w: %w: %s", ErrInvalid, ErrNoKey, alg)
	case !known:
		return invalid("algorithm " + alg + " is refused")
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return invalid("bad " + alg + " signature")
	}
	return invalid(short(err.Error()))
}

func invalid(reason string) error {
	return fmt.Errorf("%w: %s", ErrInvalid, reason)
}

// short bounds a message taken from the parser (a JSON error may quote a
// long number from the payload).
func short(s string) string {
	const n = 160
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n], "") + "…"
}

// clip quotes a claim value for a message, at most 64 bytes of it.
func clip(s string) string {
	const n = 64
	if len(s) > n {
		return strconv.Quote(s[:n]) + "…"
	}
	return strconv.Quote(s)
}
