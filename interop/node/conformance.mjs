// The runtime conformance suite's crossws client (runtimetest): one
// WebSocketSSE client in either upload mode, as a sender or a listener.
//
//   node conformance.mjs '{"url":"ws://127.0.0.1:PORT/sse","mode":"message"|"stream",
//                          "send":["echo 1","pub all hi"],"replies":["echo 1",null],
//                          "expect":["hi"],"close":[4001,"done"]}'
//
// Once open, it sends "send" one at a time; after a send whose "replies"
// entry is a string it waits for that exact message before the next send
// (null: no reply expected). "expect" lists messages that must also arrive,
// in this order, among the others (publications from other clients). With
// "close", it finally sends "close <code> <reason>" and waits for the
// server's close event with that code and reason. It prints
// {"event":"open"|"sent"|"message"|"close"|"done",...} lines and exits 0 when
// everything arrived.

import { WebSocketSSE } from "crossws/websocket/sse";
import { TrackedEventSource, config, emit, fail, finish, installEventSource } from "./lib.mjs";

let next = 0;
let awaiting = null;
let expected = 0;
let opened = false;
let closing = false;
const cfg = config(() => JSON.stringify({ next, awaiting, expected, opened, closing }));
const send = cfg.send ?? [];
const replies = cfg.replies ?? [];
const expect = cfg.expect ?? [];
installEventSource();

const ws = new WebSocketSSE(cfg.url, cfg.mode === "message" ? { stream: false } : {});
const es = TrackedEventSource.instances[0];
if (!es) fail("WebSocketSSE did not construct an EventSource");

function sendNext() {
  if (next >= send.length) {
    maybeClose();
    return;
  }
  const i = next++;
  const text = send[i];
  awaiting = replies[i] ?? null;
  ws.send(text).then(
    () => {
      emit({ event: "sent", data: text });
      if (awaiting === null) sendNext();
    },
    (err) => fail(`send ${JSON.stringify(text)}: ${err?.message ?? err}`),
  );
}

function maybeClose() {
  if (next < send.length || awaiting !== null || expected < expect.length || closing) return;
  if (!cfg.close) {
    emit({ event: "done" });
    finish(0);
    return;
  }
  closing = true;
  ws.send(`close ${cfg.close[0]} ${cfg.close[1]}`).catch((err) => fail(`send close: ${err?.message ?? err}`));
}

es.addEventListener("crossws-id", (e) => emit({ event: "crossws-id", data: e.data, lastEventId: e.lastEventId }));
ws.addEventListener("open", () => {
  emit({ event: "open" });
  if (opened) return;
  opened = true;
  sendNext();
});
ws.addEventListener("message", (e) => {
  emit({ event: "message", data: e.data });
  if (awaiting !== null && e.data === awaiting) {
    awaiting = null;
    sendNext();
  } else if (expected < expect.length && e.data === expect[expected]) {
    expected++;
  }
  maybeClose();
});
es.addEventListener("close", (e) => {
  let d;
  try {
    d = JSON.parse(e.data);
  } catch {
    fail(`close event data is not JSON: ${JSON.stringify(e.data)}`);
  }
  emit({ event: "close", status: d.code, message: d.reason });
  if (!closing) fail(`closed by the server before the test asked: ${e.data}`);
  if (d.code !== cfg.close[0] || d.reason !== cfg.close[1]) fail(`close ${e.data}, want ${JSON.stringify(cfg.close)}`);
  emit({ event: "done" });
  finish(0);
});
