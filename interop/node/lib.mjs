// Helpers shared by the interop scripts. A script prints one JSON object per
// line on stdout (the Go test reads them), exits 0 when it saw what it waited
// for, and exits 1 with a message on stderr otherwise, at the latest when its
// own deadline runs out.

import { EventSource } from "eventsource";

const script = process.argv[1]?.split("/").pop() ?? "script";

/** Prints one event for the Go side. Writes to a pipe are synchronous on Linux. */
export function emit(obj) {
  process.stdout.write(JSON.stringify(obj) + "\n");
}

/** Ends the script. The crossws client in stream mode keeps a POST open for ever, so exit explicitly. */
export function finish(code = 0) {
  process.stdout.write("", () => process.exit(code));
}

/** Fails the script with a message on stderr; does not return. */
export function fail(message) {
  process.stderr.write(`${script}: ${message}\n`);
  process.exit(1);
}

/**
 * Reads the configuration: one JSON object in argv[2] with at least "url",
 * and "timeoutMs" (default 30000), after which the script fails with
 * describe() in its message.
 */
export function config(describe = () => "") {
  let cfg;
  try {
    cfg = JSON.parse(process.argv[2] ?? "");
  } catch {
    fail(`usage: node ${script} '{"url":"http://127.0.0.1:PORT/sse",...}'`);
    return {};
  }
  if (typeof cfg.url !== "string") fail("config has no url");
  const ms = cfg.timeoutMs ?? 30000;
  setTimeout(() => fail(`timed out after ${ms} ms; state: ${describe()}`), ms);
  process.on("unhandledRejection", (err) => fail(`unhandled rejection: ${err?.stack ?? err}`));
  return cfg;
}

/** fetch for EventSource that reports every stream request and its status. */
export async function loggingFetch(url, init) {
  const lastEventId = init?.headers?.["Last-Event-ID"] ?? "";
  try {
    const res = await fetch(url, init);
    emit({ event: "get", lastEventId, status: res.status });
    return res;
  } catch (err) {
    emit({ event: "get", lastEventId, status: 0, message: String(err?.message ?? err) });
    throw err;
  }
}

/**
 * EventSource from the eventsource package that reports its requests and
 * remembers its instances, so that a script can watch the EventSource that
 * crossws's WebSocketSSE keeps private.
 */
export class TrackedEventSource extends EventSource {
  static instances = [];
  constructor(url, init) {
    super(url, { ...init, fetch: loggingFetch });
    TrackedEventSource.instances.push(this);
  }
}

/** Node 20 has no global EventSource; crossws's WebSocketSSE needs one. */
export function installEventSource() {
  globalThis.EventSource = TrackedEventSource;
}

/**
 * Wraps the global fetch so that every POST is reported when it starts:
 * {"event":"post-start","contentType","streamed"} (streamed: the body is a
 * ReadableStream, as in crossws's stream mode).
 */
export function reportPosts() {
  const inner = globalThis.fetch;
  globalThis.fetch = (url, init) => {
    if ((init?.method ?? "GET").toUpperCase() === "POST") {
      const headers = new Headers(init.headers);
      emit({
        event: "post-start",
        contentType: headers.get("content-type") ?? "",
        id: headers.get("x-crossws-id") ?? "",
        streamed: init.body instanceof ReadableStream,
      });
    }
    return inner(url, init);
  };
}
