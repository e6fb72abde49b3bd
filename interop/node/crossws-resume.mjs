// crossws's WebSocketSSE client in stream mode across server-forced
// reconnections.
//
//   node crossws-resume.mjs '{"url":"ws://127.0.0.1:PORT/sse","rounds":3}'
//
// After each crossws-id event (the first, then one per resume) it sends
// "ping <k>"; the server answers "pong ping <k>". It exits after the answer
// to round "rounds". It prints the EventSource's requests, the crossws-id
// events, what it sent and every message.

import { WebSocketSSE } from "crossws/websocket/sse";
import { TrackedEventSource, config, emit, fail, finish, installEventSource } from "./lib.mjs";

let round = 0;
const received = [];
const cfg = config(() => JSON.stringify({ round, received }));
const rounds = cfg.rounds ?? 3;
installEventSource();

const ws = new WebSocketSSE(cfg.url);
const es = TrackedEventSource.instances[0];
if (!es) fail("WebSocketSSE did not construct an EventSource");

ws.addEventListener("open", () => emit({ event: "open" }));
ws.addEventListener("error", () => emit({ event: "error", readyState: es.readyState }));
// Added after WebSocketSSE's own listener, so this runs once the client has
// taken the id and opened its new streamed upload.
es.addEventListener("crossws-id", (e) => {
  const k = ++round;
  emit({ event: "crossws-id", data: e.data, lastEventId: e.lastEventId });
  if (k > rounds) return;
  const text = `ping ${k}`;
  ws.send(text).then(
    () => emit({ event: "sent", data: text }),
    (err) => fail(`send ${text}: ${err?.message ?? err}`),
  );
});
ws.addEventListener("message", (e) => {
  received.push(e.data);
  emit({ event: "message", data: e.data });
  if (e.data === `pong ping ${rounds}`) finish(0);
});
