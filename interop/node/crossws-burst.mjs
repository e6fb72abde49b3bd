// crossws's WebSocketSSE client in stream mode sending a burst: every
// message in "send" back to back, with no wait, on the one streamed upload.
// HTTP does not keep the chunk boundaries, so the server may see them
// merged or split; it answers "all received" once it has every byte.
//
//   node crossws-burst.mjs '{"url":"ws://127.0.0.1:PORT/sse","send":["a","b"],"repeat":["é",40000]}'
//
// "repeat":[s, n] adds s repeated n times as one last message. Prints
// {"event":"sent","data":<count>} and every message, and exits on
// "all received".

import { WebSocketSSE } from "crossws/websocket/sse";
import { TrackedEventSource, config, emit, fail, finish, installEventSource } from "./lib.mjs";

let sent = false;
const cfg = config(() => JSON.stringify({ sent }));
installEventSource();
const ws = new WebSocketSSE(cfg.url);
const es = TrackedEventSource.instances[0];
const messages = [...cfg.send];
if (cfg.repeat) messages.push(cfg.repeat[0].repeat(cfg.repeat[1]));

// Added after WebSocketSSE's own listener: the upload exists by then.
es.addEventListener("crossws-id", () => {
  if (sent) fail("a second crossws-id: the stream was resumed, the test expects one stream");
  sent = true;
  for (const m of messages) ws.send(m).catch((err) => fail(`send: ${err?.message ?? err}`));
  emit({ event: "sent", data: String(messages.length) });
});
ws.addEventListener("message", (e) => {
  emit({ event: "message", data: e.data });
  if (e.data === "all received") finish(0);
});
