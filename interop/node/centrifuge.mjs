// centrifuge-js (npm centrifuge) with its "sse" transport, on the
// Centrifugo endpoints of the chat room (examples/chat, examples/lambda):
// the stream on GET /connection/sse?cf_connect=…, commands on POST
// /emulation. Node has no EventSource: the one of npm eventsource is passed
// in, as the centrifuge-js docs say.
//
//   node centrifuge.mjs '{"url":"http://127.0.0.1:PORT","scenario":"full",
//                         "emulation":"http://…/emulation",        (default url + "/emulation")
//                         "url2":"http://…","emulation2":"http://…/emulation",
//                         "missed":5,"history":3,"echo":{…},"dropBy":"client"}'
//   node centrifuge.mjs '{"url":"http://127.0.0.1:PORT","scenario":"across",
//                         "count":25,"paceMs":200,"minStreams":3}'
//
// Two clients: c1 (the member "ada": ?name=ada on its stream URL) on url and
// emulation, c2 ("bob") on url2 and emulation2 (default: c1's). Scenarios:
//
// "full": c1 connects and subscribes to "chat" (recoverable, positioned);
// subscribing to "nochan" is refused; c1 publishes {"text"} and receives its
// own chat message; a publish without text is refused; rpc "echo" returns its
// data and rpc "nope" fails; c2 connects, subscribes and publishes, and c1
// receives that; presence, presence stats and history (newest N, since c1's
// first position, top only). Then c1's stream drops: its EventSource's
// onerror is called, as on a network error; centrifuge-js closes it and
// reconnects with backoff, but the stream request is held back until c2 has
// published "missed 1" … "missed K". c1's resubscribe recovers them, c1
// publishes once more, and history since c1's first position is read again.
// With "dropBy":"server", the script does not fail the EventSource: it
// prints the dropping event and waits for the stream to fail (the Go test
// stops the server), then goes on the same way.
//
// "across": for streams that end by themselves (Lambda invocations): c1
// subscribes, then c2 publishes "seq 1" … "seq K" one every paceMs (a
// publish whose reply was lost with a stream is checked in history and sent
// again only if it is not there), and the script ends once c1 received
// "seq K" and its stream was opened at least minStreams times.
//
// Output, one JSON object a line, "who" being "c1" or "c2":
//   {"event":"stream","who","connect"}              an EventSource opens; connect: the cf_connect commands
//   {"event":"stream-response","who","status","contentType"}
//   {"event":"post","who","url","status","session","node","commands"}  an emulation POST answered (status 0: aborted)
//   {"event":"connecting"|"disconnected","who","code","reason"}
//   {"event":"connected","who","client","transport","session","node"}
//   {"event":"subscribed","who","channel","wasRecovering","recovered","positioned","recoverable","offset","epoch"}
//   {"event":"subscribing","who","channel","code","reason"}
//   {"event":"refused","who","channel","code","reason"}  a subscription unsubscribed (by an error: its code)
//   {"event":"publication","who","channel","offset","data"}  data: the publication's JSON text
//   {"event":"published","who","text"} / {"event":"publish-error","who","code","message"}
//   {"event":"rpc","method","data"} / {"event":"rpc-error","method","code","message"}
//   {"event":"presence","clients":[{"client","user"}]} / {"event":"presence-stats","numClients","numUsers"}
//   {"event":"history","name","offset","epoch","pubs":[{"offset","data"}]}
//   {"event":"dropping","who","offset","epoch"}  c1's position when its stream is dropped
//   {"event":"done"}

import { Centrifuge } from "centrifuge";
import { EventSource } from "eventsource";
import { config, emit, fail, finish } from "./lib.mjs";

const log = [];
const waiters = new Set();
let step = "start";

const cfg = config(() =>
  JSON.stringify({ step, waiting: [...waiters].map((w) => w.what), events: log.length, last: log.slice(-5) }),
);

/** Prints ev and wakes the waiters it satisfies. */
function record(ev) {
  emit(ev);
  log.push(ev);
  for (const w of [...waiters]) {
    if (w.pred(ev)) {
      waiters.delete(w);
      w.resolve(ev);
    }
  }
}

/** The first event from log index `from` on that satisfies pred, waiting for it if need be. */
function waitFor(what, pred, from = 0) {
  for (let i = from; i < log.length; i++) {
    if (pred(log[i])) return Promise.resolve(log[i]);
  }
  return new Promise((resolve) => waiters.add({ what, pred, resolve }));
}

const mark = () => log.length;

/** A publication's chat message, or null. */
function chat(ev) {
  if (ev.event !== "publication") return null;
  const msg = JSON.parse(ev.data);
  return msg?.type === "message" ? msg : null;
}

function errorOf(err) {
  return { code: err?.code ?? -1, message: String(err?.message ?? err) };
}

let pending = 0; // emulation POSTs not answered yet

// Stream requests of a client wait for its gate (a promise) when one is set.
const gates = { c1: null, c2: null };

/** EventSource for client `who`: reports and keeps its instances, and fetches through the gate. */
function eventSourceFor(who) {
  return class extends EventSource {
    static instances = [];
    constructor(url, init) {
      const cf = new URL(url).searchParams.get("cf_connect") ?? "";
      super(url, {
        ...init,
        fetch: async (u, i) => {
          await gates[who];
          const res = await fetch(u, i);
          record({ event: "stream-response", who, status: res.status, contentType: res.headers.get("content-type") ?? "" });
          return res;
        },
      });
      this.constructor.instances.push(this);
      record({ event: "stream", who, connect: cf.split("\n").map((c) => JSON.parse(c)) });
    }
  };
}

/** fetch for the emulation POSTs of `who`: reports each with its status and commands. */
function emulationFetch(who) {
  return async (url, init) => {
    let env = {};
    try {
      env = JSON.parse(init.body);
    } catch {
      fail(`${who}: emulation body is not JSON: ${init.body}`);
    }
    const commands = String(env.data ?? "")
      .split("\n")
      .filter((s) => s !== "")
      .map((s) => JSON.parse(s));
    const ev = { event: "post", who, url: String(url), session: env.session, node: env.node, commands };
    pending++;
    try {
      const res = await fetch(url, init);
      pending--;
      record({ ...ev, status: res.status });
      return res;
    } catch (err) {
      // centrifuge-js aborts the POSTs still pending when its transport closes.
      pending--;
      record({ ...ev, status: 0, message: String(err?.message ?? err) });
      throw err;
    }
  };
}

/**
 * Waits until every emulation POST was answered. A reply comes on the
 * stream, often before the POST's 204: a transport closed then would abort
 * the POST.
 */
function settled() {
  return pending === 0 ? Promise.resolve() : waitFor("POSTs answered", () => pending === 0, log.length);
}

/** A client of the chat: its Centrifuge, its EventSource class and its "chat" subscription. */
function newClient(who, base, emulation, name) {
  const ES = eventSourceFor(who);
  const c = new Centrifuge([{ transport: "sse", endpoint: `${base}/connection/sse?name=${encodeURIComponent(name)}` }], {
    eventsource: ES,
    fetch: emulationFetch(who),
    emulationEndpoint: emulation ?? `${base}/emulation`,
    minReconnectDelay: 50,
    maxReconnectDelay: 500,
  });
  c.on("connecting", (ctx) => record({ event: "connecting", who, code: ctx.code, reason: ctx.reason }));
  c.on("connected", (ctx) =>
    record({ event: "connected", who, client: ctx.client, transport: ctx.transport, session: c._session, node: c._node }),
  );
  c.on("disconnected", (ctx) => record({ event: "disconnected", who, code: ctx.code, reason: ctx.reason }));
  c.on("error", (ctx) => emit({ event: "client-error", who, type: ctx.type, message: String(ctx.error?.message ?? "") }));
  const sub = c.newSubscription("chat", { recoverable: true, positioned: true });
  watch(who, sub);
  return { who, c, ES, sub };
}

function watch(who, sub) {
  sub.on("subscribing", (ctx) => record({ event: "subscribing", who, channel: ctx.channel, code: ctx.code, reason: ctx.reason }));
  sub.on("subscribed", (ctx) =>
    record({
      event: "subscribed",
      who,
      channel: ctx.channel,
      wasRecovering: ctx.wasRecovering,
      recovered: ctx.recovered,
      positioned: ctx.positioned,
      recoverable: ctx.recoverable,
      offset: ctx.streamPosition?.offset ?? null,
      epoch: ctx.streamPosition?.epoch ?? null,
    }),
  );
  sub.on("unsubscribed", (ctx) => record({ event: "refused", who, channel: ctx.channel, code: ctx.code, reason: ctx.reason }));
  sub.on("publication", (ctx) =>
    record({ event: "publication", who, channel: ctx.channel, offset: ctx.offset ?? null, data: JSON.stringify(ctx.data) }),
  );
}

async function history(c, name, opts) {
  const h = await c.history("chat", opts);
  const ev = {
    event: "history",
    name,
    offset: h.offset,
    epoch: h.epoch,
    pubs: h.publications.map((p) => ({ offset: p.offset ?? null, data: JSON.stringify(p.data) })),
  };
  record(ev);
  return ev;
}

/** Publishes {"text"} as `cl` and waits for the reply. */
async function publish(cl, text) {
  await cl.sub.publish({ text });
  record({ event: "published", who: cl.who, text });
}

/** Connects `cl` and waits until its "chat" subscription is subscribed. */
async function join(cl) {
  const from = mark();
  cl.c.connect();
  cl.sub.subscribe();
  await waitFor(`${cl.who} connected`, (ev) => ev.event === "connected" && ev.who === cl.who, from);
  return waitFor(`${cl.who} subscribed`, (ev) => ev.event === "subscribed" && ev.who === cl.who, from);
}

/** Waits until c1 received the chat message `text` from `from`, from log index `since` on. */
function received(text, from, since) {
  return waitFor(`c1 receives ${JSON.stringify(text)}`, (ev) => {
    const m = ev.who === "c1" && chat(ev);
    return Boolean(m) && m.text === text && m.from === from;
  }, since);
}

const c1 = newClient("c1", cfg.url, cfg.emulation, "ada");
const base2 = cfg.url2 ?? cfg.url;
const c2 = newClient("c2", base2, cfg.emulation2 ?? (cfg.url2 ? undefined : cfg.emulation), "bob");

async function full() {
  const missed = cfg.missed ?? 5;
  step = "c1 joins";
  const first = await join(c1);

  step = "unknown channel";
  const other = c1.c.newSubscription("nochan");
  watch("c1", other);
  let from = mark();
  other.subscribe();
  await waitFor("nochan refused", (ev) => ev.event === "refused" && ev.channel === "nochan", from);
  c1.c.removeSubscription(other);

  step = "c1 publishes";
  from = mark();
  await publish(c1, "hello from ada");
  await received("hello from ada", "ada", from);
  try {
    await c1.sub.publish({ nope: 1 });
    record({ event: "published", who: "c1", text: "" });
  } catch (err) {
    record({ event: "publish-error", who: "c1", ...errorOf(err) });
  }

  step = "rpc";
  const r = await c1.c.rpc("echo", cfg.echo ?? { hello: "wörld" });
  record({ event: "rpc", method: "echo", data: JSON.stringify(r.data) });
  try {
    const r2 = await c1.c.rpc("nope", {});
    record({ event: "rpc", method: "nope", data: JSON.stringify(r2.data) });
  } catch (err) {
    record({ event: "rpc-error", method: "nope", ...errorOf(err) });
  }

  step = "c2 joins and publishes";
  await join(c2);
  from = mark();
  await publish(c2, "hello from bob");
  await received("hello from bob", "bob", from);

  step = "presence";
  const p = await c1.c.presence("chat");
  record({
    event: "presence",
    clients: Object.values(p.clients)
      .map((ci) => ({ client: ci.client, user: ci.user }))
      .sort((a, b) => a.client.localeCompare(b.client)),
  });
  const ps = await c1.c.presenceStats("chat");
  record({ event: "presence-stats", numClients: ps.numClients, numUsers: ps.numUsers });

  step = "history";
  await history(c1.c, "newest", { limit: cfg.history ?? 3, reverse: true });
  await history(c1.c, "since-first", { since: { offset: first.offset, epoch: first.epoch }, limit: 300 });
  await history(c1.c, "top", {});

  step = "drop c1's stream";
  await settled();
  let release;
  gates.c1 = new Promise((resolve) => (release = resolve));
  const es = c1.ES.instances.at(-1);
  from = mark();
  record({ event: "dropping", who: "c1", offset: c1.sub._offset, epoch: c1.sub._epoch });
  // "server": the Go test ends the stream (it stops c1's instance) when it
  // reads the dropping event.
  if ((cfg.dropBy ?? "client") === "client") es.onerror(new Event("error"));
  await waitFor("c1 connecting", (ev) => ev.event === "connecting" && ev.who === "c1", from);
  await waitFor("c1 subscribing", (ev) => ev.event === "subscribing" && ev.who === "c1", from);

  step = "c2 publishes while c1 is away";
  for (let i = 1; i <= missed; i++) await publish(c2, `missed ${i}`);
  gates.c1 = null;
  release();

  step = "c1 recovers";
  await waitFor("c1 resubscribed", (ev) => ev.event === "subscribed" && ev.who === "c1", from);
  await received(`missed ${missed}`, "bob", from);
  from = mark();
  await publish(c1, "ada is back");
  await received("ada is back", "ada", from);
  await history(c1.c, "since-first-after", { since: { offset: first.offset, epoch: first.epoch }, limit: 300 });
  await settled();
}

async function across() {
  const k = cfg.count ?? 20;
  step = "c1 joins";
  await join(c1);
  step = "c2 connects";
  c2.c.connect();
  await waitFor("c2 connected", (ev) => ev.event === "connected" && ev.who === "c2");
  for (let i = 1; i <= k; i++) {
    step = `c2 publishes seq ${i}`;
    const text = `seq ${i}`;
    for (;;) {
      try {
        await c2.c.publish("chat", { text });
        record({ event: "published", who: "c2", text });
        break;
      } catch (err) {
        record({ event: "publish-error", who: "c2", ...errorOf(err), text });
        // The reply may have been lost with the stream, not the
        // publication: send it again only if history does not have it.
        await waitFor("c2 reconnected", (ev) => ev.event === "connected" && ev.who === "c2", mark());
        const h = await c2.c.history("chat", { limit: 50, reverse: true });
        if (h.publications.some((p) => p.data?.type === "message" && p.data.text === text && p.data.from === "bob")) break;
      }
    }
    await new Promise((r) => setTimeout(r, cfg.paceMs ?? 200));
  }
  step = `c1 receives seq ${k}`;
  await received(`seq ${k}`, "bob", 0);
  const minStreams = cfg.minStreams ?? 1;
  step = `c1 opens ${minStreams} streams`;
  await waitFor(`c1's stream #${minStreams}`, () => c1.ES.instances.length >= minStreams);
  await settled();
}

const scenarios = { full, across };
const run = scenarios[cfg.scenario ?? "full"];
if (!run) fail(`unknown scenario ${JSON.stringify(cfg.scenario)}`);
run().then(
  () => {
    record({ event: "done" });
    c1.c.disconnect();
    c2.c.disconnect();
    finish(0);
  },
  (err) => fail(`${step}: ${err?.stack ?? JSON.stringify(err)}`),
);
