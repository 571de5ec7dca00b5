// A ramp of concurrent SSE streams against Sluice's simulated model.
//
// Each virtual user opens one-shot streams (GET /v1/stream) back to back and
// checks that every response is an event stream ending with `event: done`.
// k6's http client returns a response once its body is complete, so a stream
// is measured as a whole: time to first byte (`http_req_waiting`: Sluice sends
// its headers before the model answers, so this is the gateway's own latency)
// and the stream's duration. Run by `make load` (ops/k6/run.py), which starts
// Sluice when SLUICE_URL is not given.
//
// Environment (all optional):
//   SLUICE_URL    base URL, loopback only   default http://127.0.0.1:8000
//   LOAD_VUS      peak concurrent streams   default 50
//   LOAD_RAMP     ramp-up duration          default 10s
//   LOAD_HOLD     time held at the peak     default 20s
//   LOAD_TOKENS   tokens per stream         default 40
//   LOAD_TPS      tokens per second         default 20 (a model's pace)
//   LOAD_TTFB_P95_MS  threshold             default 500

import http from "k6/http";
import { check } from "k6";
import { Counter, Rate, Trend } from "k6/metrics";

const BASE = (__ENV.SLUICE_URL || "http://127.0.0.1:8000").replace(/\/+$/, "");
const VUS = parseInt(__ENV.LOAD_VUS || "50", 10);
const RAMP = __ENV.LOAD_RAMP || "10s";
const HOLD = __ENV.LOAD_HOLD || "20s";
const TOKENS = parseInt(__ENV.LOAD_TOKENS || "40", 10);
const TPS = __ENV.LOAD_TPS || "20";
const TTFB_P95_MS = parseInt(__ENV.LOAD_TTFB_P95_MS || "500", 10);

// Load is only ever aimed at this machine: a load test against a shared or
// remote host is a decision to make by editing this line, not by accident.
if (!/^https?:\/\/(127\.0\.0\.1|localhost|\[::1\])(:\d+)?$/.test(BASE)) {
  throw new Error(`SLUICE_URL must be a loopback URL, got ${BASE}`);
}

const streamDone = new Rate("stream_done");
const streamDuration = new Trend("stream_duration", true);
const tokens = new Counter("sse_tokens");

export const options = {
  scenarios: {
    streams: {
      executor: "ramping-vus",
      startVUs: 0,
      stages: [
        { duration: RAMP, target: VUS },
        { duration: HOLD, target: VUS },
      ],
      // Bounded: a stream still open when the stages end gets this long to
      // finish, then k6 stops it (and it counts as not done).
      gracefulRampDown: "15s",
      gracefulStop: "15s",
    },
  },
  thresholds: {
    http_req_failed: ["rate<0.01"],
    http_req_waiting: [`p(95)<${TTFB_P95_MS}`],
    stream_done: ["rate>0.99"],
    checks: ["rate>0.99"],
  },
  summaryTrendStats: ["avg", "med", "p(95)", "p(99)", "max"],
};

export default function () {
  const query = [
    "model=sim/lorem",
    `prompt=load-${__VU}-${__ITER}`,
    `max_tokens=${TOKENS}`,
    `sim_tps=${TPS}`,
  ].join("&");
  const res = http.get(`${BASE}/v1/stream?${query}`, {
    timeout: "60s",
    tags: { name: "GET /v1/stream" },
  });
  const body = res.body || "";
  const done = /(^|\n)event: done\n/.test(body) && body.endsWith("\n\n");
  streamDone.add(done);
  streamDuration.add(res.timings.duration);
  tokens.add((body.match(/\nevent: token\n/g) || []).length);
  check(res, {
    "status 200": (r) => r.status === 200,
    "text/event-stream": (r) => (r.headers["Content-Type"] || "").startsWith("text/event-stream"),
    "ends with done": () => done && body.lastIndexOf("event: done") > body.lastIndexOf("event: token"),
  });
}

function fmt(ms) {
  return ms === undefined ? "-" : `${ms.toFixed(1)} ms`;
}

export function handleSummary(data) {
  const m = data.metrics;
  const failed = m.http_req_failed ? m.http_req_failed.values.rate : 1;
  const ttfb = m.http_req_waiting ? m.http_req_waiting.values : {};
  const dur = m.stream_duration ? m.stream_duration.values : {};
  const done = m.stream_done ? m.stream_done.values : { rate: 0, passes: 0, fails: 0 };
  const sent = m.sse_tokens ? m.sse_tokens.values.count : 0;
  const seconds = data.state.testRunDurationMs / 1000;
  const crossed = Object.entries(m)
    .filter(([, metric]) => metric.thresholds)
    .flatMap(([name, metric]) =>
      Object.entries(metric.thresholds).map(([rule, r]) => `${name} ${rule}: ${r.ok ? "ok" : "FAILED"}`),
    );
  const lines = [
    "",
    `sluice load: ${BASE}, ramp 0->${VUS} streams over ${RAMP}, hold ${HOLD}, ` +
      `${TOKENS} tokens at ${TPS} tok/s each`,
    `  streams      ${done.passes + done.fails} (${done.passes} ended with done, ` +
      `${done.fails} did not)`,
    `  errors       ${(failed * 100).toFixed(2)} % of requests`,
    `  ttfb         p50 ${fmt(ttfb.med)}  p95 ${fmt(ttfb["p(95)"])}  p99 ${fmt(ttfb["p(99)"])}`,
    `  stream time  p50 ${fmt(dur.med)}  p95 ${fmt(dur["p(95)"])}  max ${fmt(dur.max)}`,
    `  tokens       ${sent} delivered, ${(sent / seconds).toFixed(0)} tok/s over ${seconds.toFixed(1)} s`,
    "  thresholds",
    ...crossed.map((line) => `    ${line}`),
    "",
  ];
  return { stdout: lines.join("\n") };
}
