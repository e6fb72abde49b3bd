// Opens an EventSource (npm eventsource) to get a peer, then sends POSTs
// with fetch, one after the other, and reports each answer.
//
//   node upload.mjs '{"url":"http://127.0.0.1:PORT/sse",
//                     "posts":[{"id":"$self","body":"..."},{"id":"x","repeat":["a",65536]}]}'
//
// "$self" stands for the peer id from the crossws-id event. A post's body is
// "body", or "repeat":[s, n] for s repeated n times (to keep the command
// line short). Prints {"event":"crossws-id","data"}, then
// {"event":"post","status","body"} per POST (body: the response's), then
// exits.

import { EventSource } from "eventsource";
import { config, emit, fail, finish } from "./lib.mjs";

const cfg = config();
const es = new EventSource(cfg.url);
const self = await new Promise((resolve) => es.addEventListener("crossws-id", (e) => resolve(e.data), { once: true }));
emit({ event: "crossws-id", data: self });
for (const [i, p] of cfg.posts.entries()) {
  const body = p.repeat ? p.repeat[0].repeat(p.repeat[1]) : p.body;
  let res;
  try {
    res = await fetch(cfg.url, { method: "POST", headers: { "x-crossws-id": p.id === "$self" ? self : p.id }, body });
  } catch (err) {
    fail(`POST ${i}: ${err?.message ?? err}`);
  }
  emit({ event: "post", status: res.status, body: await res.text() });
}
es.close();
finish(0);
