// A plain EventSource (npm eventsource) plus fetch on the native endpoint.
//
//   node eventsource.mjs '{"url":"http://127.0.0.1:PORT/sse"}'
//
// Prints every stream request ({"event":"get","lastEventId","status"}), every
// crossws-id and message event with its lastEventId, and after each
// crossws-id POSTs "hello <k>" (k counts the crossws-id events) with the id
// in x-crossws-id ({"event":"post","data","status"}). It closes the
// EventSource and exits when a message "done" arrives, or, with
// "exitOnGiveUp": true, when the EventSource gives up reconnecting
// ({"event":"gave-up"}).

import { EventSource } from "eventsource";
import { config, emit, fail, finish, loggingFetch } from "./lib.mjs";

let hellos = 0;
let messages = 0;
const posts = [];
const cfg = config(() => JSON.stringify({ hellos, messages }));

const es = new EventSource(cfg.url, { fetch: loggingFetch });
es.addEventListener("open", () => emit({ event: "open" }));
es.addEventListener("error", (e) => {
  emit({ event: "error", status: e.code ?? 0, message: e.message ?? "", readyState: es.readyState });
  if (cfg.exitOnGiveUp && es.readyState === EventSource.CLOSED) {
    emit({ event: "gave-up" });
    Promise.all(posts).then(() => finish(0));
  }
});
es.addEventListener("crossws-id", (e) => {
  const k = ++hellos;
  emit({ event: "crossws-id", data: e.data, lastEventId: e.lastEventId });
  const body = `hello ${k}`;
  posts.push(
    fetch(cfg.url, { method: "POST", headers: { "x-crossws-id": e.data }, body }).then(
      async (res) => emit({ event: "post", data: body, status: res.status, body: await res.text() }),
      (err) => fail(`POST ${body}: ${err?.message ?? err}`),
    ),
  );
});
es.addEventListener("message", (e) => {
  messages++;
  emit({ event: "message", data: e.data, lastEventId: e.lastEventId });
  if (e.data === "done") {
    es.close();
    Promise.all(posts).then(() => finish(0));
  }
});
