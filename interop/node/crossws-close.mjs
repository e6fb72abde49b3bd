// crossws's WebSocketSSE client (stream mode) closed by the server.
//
//   node crossws-close.mjs '{"url":"ws://127.0.0.1:PORT/sse","quietMs":500}'
//
// Sends "hello" once open. Prints the server's SSE close event, the
// WebSocketSSE close event, the EventSource's requests and errors. Once the
// EventSource has given up (readyState CLOSED), it waits quietMs to show
// that no further request follows, then exits.

import { WebSocketSSE } from "crossws/websocket/sse";
import { TrackedEventSource, config, emit, fail, finish, installEventSource } from "./lib.mjs";

let sent = false;
let closed = false;
const cfg = config(() => JSON.stringify({ sent, closed, readyState: es?.readyState }));
installEventSource();

const ws = new WebSocketSSE(cfg.url);
const es = TrackedEventSource.instances[0];
if (!es) fail("WebSocketSSE did not construct an EventSource");

ws.addEventListener("open", () => {
  emit({ event: "open" });
  if (sent) return;
  sent = true;
  ws.send("hello").then(
    () => emit({ event: "sent", data: "hello" }),
    (err) => fail(`send: ${err?.message ?? err}`),
  );
});
es.addEventListener("close", (e) => emit({ event: "sse-close", data: e.data, lastEventId: e.lastEventId }));
ws.addEventListener("close", () => {
  closed = true;
  emit({ event: "close", readyState: ws.readyState });
});
es.addEventListener("error", (e) => {
  emit({ event: "error", status: e.code ?? 0, message: e.message ?? "", readyState: es.readyState });
  if (es.readyState === EventSource.CLOSED) {
    setTimeout(() => {
      emit({ event: "quiet", readyState: es.readyState });
      finish(0);
    }, cfg.quietMs ?? 500);
  }
});
