// A plain EventSource (npm eventsource) on Centrifugo's unidirectional SSE
// transport: GET /connection/uni_sse?cf_connect=<ConnectRequest JSON>.
//
//   node uni.mjs '{"url":"http://127.0.0.1:PORT/connection/uni_sse?cf_connect=…",
//                  "count":1,"holdMs":500}'
//
// Prints every stream request ({"event":"get","status"}), {"event":"open"},
// every message ({"event":"message","data"}) and error ({"event":"error"}).
// After "count" messages, or at a disconnect push ({"disconnect":…}), it
// keeps listening for "holdMs" (default 0), printing what else arrives, then
// closes the EventSource (which would otherwise reconnect) and exits.

import { EventSource } from "eventsource";
import { config, emit, finish, loggingFetch } from "./lib.mjs";

let messages = 0;
let closing = false;
const cfg = config(() => JSON.stringify({ messages }));

const es = new EventSource(cfg.url, { fetch: loggingFetch });
es.addEventListener("open", () => emit({ event: "open" }));
es.addEventListener("error", (e) =>
  emit({ event: "error", status: e.code ?? 0, message: e.message ?? "", readyState: es.readyState }),
);
es.addEventListener("message", (e) => {
  messages++;
  emit({ event: "message", data: e.data });
  let disconnect = false;
  try {
    disconnect = JSON.parse(e.data)?.disconnect !== undefined;
  } catch {
    // Not JSON: the Go test says so.
  }
  if (!closing && (messages >= (cfg.count ?? Infinity) || disconnect)) {
    closing = true;
    setTimeout(() => {
      es.close();
      emit({ event: "closed" });
      finish(0);
    }, cfg.holdMs ?? 0);
  }
});
