// Many chat listeners in one process: plain EventSources (npm eventsource)
// on the examples/chat endpoint, each counting the chat messages "seq <k>"
// it receives, across reconnections.
//
//   node seq-listeners.mjs '{"url":"http://127.0.0.1:PORT/sse","count":20,"name":"l","expect":300}'
//
// Config: "url" (the endpoint, without query), "count" listeners (default
// 1) named "<name><i>" for i = 0…count-1 (name defaults to "l"), or an
// explicit "names" list instead; "expect" is K, the last seq; "settleMs"
// (default 300) how long to keep listening once everybody got "seq K", to
// catch duplicates.
//
// Prints, each with "listener" (the index) and "name":
//
//	{"event":"get","lastEventId","status"}      every stream request
//	{"event":"error","message","readyState"}    every EventSource error
//	{"event":"crossws-id","data","lastEventId"} every crossws-id event
//	{"event":"close","data","lastEventId"}      a close event (the server
//	                                            ended the peer)
//	{"event":"welcome","id"}                    the room's welcome (member id)
//	{"event":"message","from","id","text","seq","lastEventId"}
//	                                            every chat message (seq is k
//	                                            for "seq <k>", else 0)
//
// then, once every listener got "seq K" and settleMs passed, one
// {"event":"summary",…} per listener and {"event":"done"}, and exits 0. On
// timeout it prints the summaries (the state) and fails. Presence updates
// are only counted (in the summary).

import { EventSource } from "eventsource";
import { config, emit, fail, finish } from "./lib.mjs";

const listeners = [];
let finishing = false;

function summary(l) {
  const missing = [];
  const dups = [];
  const seen = new Map();
  for (const k of l.seqs) seen.set(k, (seen.get(k) ?? 0) + 1);
  for (let k = 1; k <= expect; k++) {
    const n = seen.get(k) ?? 0;
    if (n === 0) missing.push(k);
    if (n > 1) dups.push(k);
  }
  let disorder = -1; // index of the first seq not greater than the one before
  for (let i = 1; i < l.seqs.length; i++) {
    if (l.seqs[i] <= l.seqs[i - 1]) {
      disorder = i;
      break;
    }
  }
  return {
    event: "summary",
    listener: l.index,
    name: l.name,
    peerIds: [...new Set(l.peers)],
    hellos: l.peers.length,
    gets: l.gets,
    errors: l.errors,
    closes: l.closes,
    welcomes: l.welcomes,
    presence: l.presence,
    received: l.seqs.length,
    last: l.seqs.at(-1) ?? 0,
    missing: compress(missing),
    dups: compress(dups),
    disorder,
    readyState: l.es.readyState,
  };
}

// compress writes runs of consecutive numbers as "a-b".
function compress(list) {
  const out = [];
  for (let i = 0; i < list.length; ) {
    let j = i;
    while (j + 1 < list.length && list[j + 1] === list[j] + 1) j++;
    out.push(i === j ? `${list[i]}` : `${list[i]}-${list[j]}`);
    i = j + 1;
  }
  return out;
}

const cfg = config(() => {
  // The state, in full on stdout for the Go side, in short on stderr.
  for (const l of listeners) emit(summary(l));
  return JSON.stringify(listeners.map((l) => ({ name: l.name, received: l.seqs.length, last: l.seqs.at(-1) ?? 0, hellos: l.peers.length, readyState: l.es.readyState })));
});
const expect = cfg.expect;
if (!Number.isInteger(expect) || expect < 1) fail("config needs expect ≥ 1");
const names = cfg.names ?? Array.from({ length: cfg.count ?? 1 }, (_, i) => `${cfg.name ?? "l"}${i}`);
const settleMs = cfg.settleMs ?? 300;

function maybeDone() {
  if (finishing || !listeners.every((l) => l.seqs.includes(expect))) return;
  finishing = true;
  setTimeout(() => {
    for (const l of listeners) {
      l.es.close();
      emit(summary(l));
    }
    emit({ event: "done" });
    finish(0);
  }, settleMs);
}

names.forEach((name, index) => {
  const base = { listener: index, name };
  const l = { index, name, peers: [], seqs: [], gets: 0, errors: 0, closes: 0, welcomes: 0, presence: 0, es: null };
  listeners.push(l);
  const url = new URL(cfg.url);
  url.searchParams.set("name", name);
  const logging = async (u, init) => {
    const lastEventId = init?.headers?.["Last-Event-ID"] ?? "";
    l.gets++;
    try {
      const res = await fetch(u, init);
      emit({ event: "get", ...base, lastEventId, status: res.status });
      return res;
    } catch (err) {
      emit({ event: "get", ...base, lastEventId, status: 0, message: String(err?.message ?? err) });
      throw err;
    }
  };
  const es = new EventSource(url, { fetch: logging });
  l.es = es;
  es.addEventListener("error", (e) => {
    l.errors++;
    emit({ event: "error", ...base, status: e.code ?? 0, message: e.message ?? "", readyState: es.readyState });
  });
  es.addEventListener("crossws-id", (e) => {
    l.peers.push(e.data);
    emit({ event: "crossws-id", ...base, data: e.data, lastEventId: e.lastEventId });
  });
  es.addEventListener("close", (e) => {
    l.closes++;
    emit({ event: "close", ...base, data: e.data, lastEventId: e.lastEventId });
  });
  es.addEventListener("message", (e) => {
    let m;
    try {
      m = JSON.parse(e.data);
    } catch {
      fail(`${name}: a message that is not JSON: ${JSON.stringify(e.data)}`);
    }
    switch (m.type) {
      case "presence":
        l.presence++;
        return;
      case "welcome":
        l.welcomes++;
        emit({ event: "welcome", ...base, id: m.id, lastEventId: e.lastEventId });
        return;
      case "message": {
        const match = /^seq ([1-9][0-9]*)$/.exec(m.text ?? "");
        const seq = match ? Number(match[1]) : 0;
        if (seq) l.seqs.push(seq);
        emit({ event: "message", ...base, from: m.from, id: m.id, text: m.text, seq, lastEventId: e.lastEventId });
        if (seq === expect) maybeDone();
        return;
      }
      default:
        emit({ event: "other", ...base, data: e.data, lastEventId: e.lastEventId });
    }
  });
});
