// crossws's WebSocketSSE client in stream mode sending bursts on its one
// streamed upload: the messages of each phase back to back, with no wait.
// HTTP does not keep the chunk boundaries, so the server may see messages
// merged or split; it answers "received <k>" once it has every byte of
// phases 1..k, and the script then sends phase k+1.
//
//   node crossws-burst.mjs '{"url":"ws://127.0.0.1:PORT/sse",
//                            "phases":[["a","b"],[["€",30000]]]}'
//
// A message is a string, or [s, n] for s repeated n times (to keep the
// command line short). Prints {"event":"sent","data":"<phase>"} and every
// message, and exits after the last "received".

import { WebSocketSSE } from "crossws/websocket/sse";
import { TrackedEventSource, config, emit, fail, finish, installEventSource } from "./lib.mjs";

let phase = 0;
const cfg = config(() => JSON.stringify({ phase }));
installEventSource();
const ws = new WebSocketSSE(cfg.url);
const es = TrackedEventSource.instances[0];
const phases = cfg.phases.map((msgs) => msgs.map((m) => (Array.isArray(m) ? m[0].repeat(m[1]) : m)));

function sendPhase() {
  for (const m of phases[phase]) ws.send(m).catch((err) => fail(`send: ${err?.message ?? err}`));
  emit({ event: "sent", data: String(phase + 1) });
}

// Added after WebSocketSSE's own listener: the upload exists by then.
es.addEventListener("crossws-id", () => {
  if (phase > 0) fail("a second crossws-id: the stream was resumed, the test expects one stream");
  sendPhase();
});
ws.addEventListener("message", (e) => {
  emit({ event: "message", data: e.data });
  if (e.data !== `received ${phase + 1}`) fail(`unexpected message ${JSON.stringify(e.data)} in phase ${phase + 1}`);
  if (++phase === phases.length) finish(0);
  else sendPhase();
});
