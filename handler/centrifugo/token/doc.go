// Package token verifies Centrifugo's JSON Web Tokens (RFC 7519) the way
// Centrifugo v6 does.
//
// # Centrifugo's tokens
//
// Centrifugo never sees the application's users. The application's backend
// signs a JWT that says who the user is, and the browser hands it over; the
// server only checks the signature and the claims. There are two kinds:
//
//   - A connection token authenticates a connection. Its claims are "sub"
//     (the user id; empty means anonymous), "exp", "expire_at", "info" or
//     "b64info" (connection info shown in presence and publications),
//     "channels" and "subs" (server-side subscriptions made at connect), and
//     "meta" (server-only data). It must not carry a "channel" claim.
//   - A subscription token allows one subscription: "channel" (required),
//     "sub" (must match the connection's user), "client" (when set, the
//     connection's client id), "exp", "expire_at", "info" or "b64info"
//     (channel info), "data" or "b64data" (sent with the subscribe reply),
//     and "override" (per-subscription channel options).
//
// Both may carry "aud" and "iss", checked when the [Verifier] sets Audience
// and Issuer, and "nbf". Any other claim is ignored. Tokens are signed with
// HMAC (HS256, HS384, HS512), RSA PKCS #1 v1.5 (RS256, RS384, RS512) or
// ECDSA (ES256, ES384, ES512); a [Verifier] accepts exactly the algorithms
// it has a key for, and never "none".
//
// # Expiration: exp and expire_at
//
// "exp" decides whether the token itself is still good: past it (plus
// Verifier.Leeway) the token is refused with [ErrExpired], Centrifugo's
// error 109 "token expired", on which centrifuge-js fetches a fresh token
// and tries again. A token without "exp" never expires.
//
// The connection or subscription it grants expires at the same time, unless
// the token has "expire_at": then "expire_at" alone (in Unix seconds) is the
// time when the connection or subscription must be refreshed, and 0 means
// never, while "exp" still bounds how long the token can be presented. This
// lets a backend issue short-lived tokens for connections that live on.
//
// # How ssebridge uses them
//
// centrifuge-js sends the connection token in the connect command's "token"
// field (over SSE: in the cf_connect query parameter), and a subscription
// token in the subscribe command's "token" field for channels that need one.
// Before ExpireAt passes, the client sends a refresh command (connection) or
// a sub_refresh command (subscription) carrying a new token, which is
// verified the same way; its ExpireAt becomes the new deadline. See package
// [github.com/ssebridge/ssebridge/handler/centrifugo/wire] for the commands.
//
// The caller turns errors into replies as Centrifugo does: [ErrExpired] is
// error 109 "token expired" on connect and subscribe, and an "expired" reply
// to refresh and sub_refresh; [ErrInvalid] on connect, refresh and
// sub_refresh is disconnect 3500 "invalid token", on subscribe error 103
// "permission denied". The caller also checks what the token cannot: a subscription
// token's Channel must be the channel subscribed to, its UserID the
// connection's, and its Client, when set, the connection's client id; a
// refresh token's UserID must be the connection's.
//
// # Errors
//
// Every error wraps [ErrInvalid] or [ErrExpired] (test with [errors.Is]);
// one about a missing key wraps [ErrNoKey] as well as ErrInvalid. The
// message says what was wrong and never quotes the token. A token that is
// both expired and wrong in some other way is reported as ErrInvalid: a
// fresh token of the same kind would not help.
//
// Differences from Centrifugo: "nbf" in the future is ErrInvalid here
// (Centrifugo says 109 token expired); decoded "b64info" and "b64data" must
// be JSON, as ssebridge only speaks Centrifugo's JSON protocol; an ES
// algorithm is accepted only with the curve it names (ES256 with P-256 and
// so on); and a token must be exactly JWS compact serialization, at most
// [MaxLen] bytes of canonical base64url and dots, where Centrifugo's decoder
// would skip line breaks and ignore stray trailing bits. Like Centrifugo,
// "iat" is not checked.
package token
