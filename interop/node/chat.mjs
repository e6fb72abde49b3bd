// One member of the example chat room (examples/chat), on crossws's
// WebSocketSSE client.
//
//   node chat.mjs '{"url":"ws://127.0.0.1:PORT/sse?name=alice","name":"alice",
//                   "mode":"stream"|"message","send":["hi","line1\nline2"],
//                   "peers":["alice","bob"],"expect":{"alice":2,"bob":3}}'
//
// It waits until the presence updates (one list per chat instance, merged)
// list every name in "peers", then sends
// "send" one message at a time, each after the previous one came back (so
// that the streamed upload never carries two messages in one chunk). It
// prints {"event":"presence"|"sent"|"message",...} lines ("sent" as it calls
// send) and exits when it has received "expect[name]" messages from each
// sender and every send has settled.

import { WebSocketSSE } from "crossws/websocket/sse";
import { config, emit, fail, finish, installEventSource, reportPosts } from "./lib.mjs";

const got = {};
const lists = new Map(); // chat instance (node) → its members
let next = 0;
let awaiting = null;
let started = false;
let pending = 0; // sends whose promise has not settled (one POST each in message mode)

const cfg = config(() => JSON.stringify({ started, next, awaiting, pending, got }));
installEventSource();
reportPosts();

const ws = new WebSocketSSE(cfg.url, cfg.mode === "message" ? { stream: false } : {});
ws.addEventListener("error", () => emit({ event: "error" }));

async function sendNext() {
  if (next >= cfg.send.length) {
    checkDone();
    return;
  }
  const text = cfg.send[next++];
  awaiting = text;
  pending++;
  emit({ event: "sent", text });
  try {
    await ws.send(text);
  } catch (err) {
    fail(`send ${JSON.stringify(text)}: ${err?.message ?? err}`);
    return;
  }
  pending--;
  checkDone();
}

function checkDone() {
  if (awaiting !== null || pending > 0 || next < cfg.send.length) return;
  for (const [name, n] of Object.entries(cfg.expect)) {
    if ((got[name] ?? 0) < n) return;
  }
  emit({ event: "done" });
  finish(0);
}

ws.addEventListener("message", (e) => {
  let msg;
  try {
    msg = JSON.parse(e.data);
  } catch {
    fail(`message is not JSON: ${JSON.stringify(e.data)}`);
    return;
  }
  if (msg.type === "welcome") {
    emit({ event: "welcome", id: msg.id, name: msg.name });
    return;
  }
  if (msg.type === "presence") {
    lists.set(msg.node, msg.peers);
    const byId = new Map();
    for (const peers of lists.values()) for (const p of peers) byId.set(p.id, p);
    const merged = [...byId.values()];
    emit({ event: "presence", peers: merged });
    const names = merged.map((p) => p.name);
    if (!started && cfg.peers.every((n) => names.includes(n))) {
      started = true;
      sendNext();
    }
    return;
  }
  if (msg.type !== "message") {
    fail(`unexpected message type: ${JSON.stringify(e.data)}`);
    return;
  }
  emit({ event: "message", from: msg.from, id: msg.id, text: msg.text });
  got[msg.from] = (got[msg.from] ?? 0) + 1;
  if (msg.from === cfg.name && msg.text === awaiting) {
    awaiting = null;
    sendNext();
    return;
  }
  checkDone();
});
