// Reads one SSE response with @microsoft/fetch-event-source under Node, retrying
// as the library does (it sends the last id it parsed as Last-Event-ID), and
// prints the messages it dispatched as JSON on stdout.
//
// usage: node fes_client.cjs URL [JSON_BODY]   (a body makes it a POST)
"use strict";

// The library is written for browsers: it schedules retries on `window` and
// unsubscribes from `document` visibility changes when it is done.
globalThis.window = globalThis;
globalThis.document = {
  hidden: false,
  addEventListener() {},
  removeEventListener() {},
};

const { fetchEventSource } = require("@microsoft/fetch-event-source");

class Finished extends Error {}

const [url, body] = process.argv.slice(2);
const messages = [];
const done = new AbortController();
let finished = false;
let attempts = 0;

function isEnd(message) {
  if (message.event === "done" || message.event === "error") return true;
  if (message.data === "[DONE]") return true;
  return message.data.startsWith('{"error":');
}

fetchEventSource(url, {
  method: body ? "POST" : "GET",
  body: body || undefined,
  headers: body ? { "content-type": "application/json" } : {},
  openWhenHidden: true,
  signal: done.signal,
  async onopen(response) {
    attempts += 1;
    if (attempts > 20) throw new Error("more than 20 attempts");
    if (response.status === 204) {
      // Nothing left to send: the server says this client has everything.
      finished = true;
      throw new Finished();
    }
    const type = response.headers.get("content-type") || "";
    if (response.status !== 200 || !type.startsWith("text/event-stream")) {
      throw new Error(`status ${response.status}: ${await response.text()}`);
    }
  },
  onmessage(message) {
    if (message.data === "" && message.event === "") return; // the opening, a ping
    messages.push({ event: message.event || "message", data: message.data, id: message.id });
    if (isEnd(message)) {
      finished = true;
      done.abort();
    }
  },
  onclose() {
    if (!finished) throw new Error("the response ended before the stream did: retry");
  },
  onerror(error) {
    if (finished || error instanceof Finished) throw new Finished();
    if (attempts > 20) throw error;
    return 20; // ms before the retry
  },
})
  .catch((error) => {
    if (!(error instanceof Finished)) {
      console.error(String(error));
      process.exit(1);
    }
  })
  .then(() => {
    process.stdout.write(JSON.stringify({ attempts, messages }));
  });
