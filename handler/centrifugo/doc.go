// Package centrifugo serves Centrifugo's SSE transports, so that
// unmodified centrifuge-js clients (transport "sse") and any EventSource or
// curl (unidirectional SSE) use ssebridge instead of a Centrifugo server,
// on net/http, fasthttp or AWS Lambda. Enable it with
// handler.Config.Centrifugo; it speaks Centrifugo's JSON client protocol
// (package wire).
//
// Wire summary (paths are the defaults):
//
//	GET  /connection/sse?cf_connect=<commands, one JSON per line>
//	POST /connection/sse   body = the same commands
//	  ← 200 text/event-stream; charset=utf-8, then "\r\n", then one event
//	    per reply: data: {"id":1,"connect":{"client":…,"session":…,
//	    "node":…,"ping":25,"pong":true,…}}\n\n
//	    data: {"push":{"channel":"c","pub":{"data":…,"offset":7}}}\n\n
//	    data: {}\n\n                            (ping; answered by {} below)
//	    data: {"push":{"disconnect":{"code":3001,"reason":"shutdown"}}}\n\n
//	POST /emulation  {"session":…,"node":…,"data":"<commands as a string>"}
//	  ← 204 (replies come on the stream); 400 bad envelope; 404 unknown
//	    session or node (centrifuge-js reconnects); 413 over 64 KiB;
//	    OPTIONS → 204
//	GET  /connection/uni_sse[?cf_connect=<ConnectRequest JSON>]
//	POST /connection/uni_sse  body = ConnectRequest JSON
//	  ← the same stream headers; data: {"connect":{…,"session":…}}\n\n
//	    first, then bare pushes and {} pings
//	bad cf_connect ← 400; over the body limit ← 413; other methods ← 405;
//	origin not allowed ← 403
//
// A connection is an engine peer whose session id is the peer id; the
// client id shown to others (presence) is a separate random UUID. Its
// emulation requests reach it on whichever node holds its stream (through
// the backend: straight into that node's Redis Streams inbox, the node
// being named in the request), in order, so no sticky sessions are
// needed. Channels are engine topics: a publication reaches Centrifugo
// subscribers and native (crossws) subscribers of the same topic alike,
// each encoded once per protocol.
//
// Commands: connect (with server-side subscriptions from the Connecting
// hook or the token, and their recovery), subscribe (with recovery),
// unsubscribe, publish, rpc, send, presence, presence_stats, history,
// refresh, sub_refresh; pings every PingInterval with a pong deadline
// (3012). History and recovery use the backend's numbered topic history
// (backends.History: offsets and epochs, memory and Redis); presence the
// backend's presence (backends.Presence). Connection and subscription
// tokens are Centrifugo's JWTs (package token). Join and leave pushes
// (ChannelOptions.JoinLeave) travel on a companion topic per channel.
// Delta compression, channel compaction and the protobuf protocol are not
// implemented: clients that ask for them get plain subscriptions.
//
// Differences from Centrifugo, all compatible with centrifuge-js: a page
// served by the same host may connect without being listed in
// AllowedOrigins; an emulation request for a session the receiving node
// knows is gone gets 404 (Centrifugo gives 204), so that centrifuge-js 5.8
// reconnects at once (a request sent on to another node, named by the
// client, is answered 204 as in Centrifugo: it is not looked up on the
// way); presence_stats counts distinct users among the clients with a
// user id (Centrifugo counts all anonymous clients as one user); a
// connection is closed when its
// stream ends (there is nothing to resume: the client reconnects and
// recovers its subscriptions itself).
//
// Import direction: centrifugo → engine, centrifugo/wire, centrifugo/token,
// backends; nothing imports it but package handler.
package centrifugo
