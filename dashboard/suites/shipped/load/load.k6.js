// The `load` suite's k6 twin of locustfile.py: the same scenarios, the same thresholds.
//
// Run by the suite after Locust when k6 is on PATH (k6.py), or by hand:
//   SCALEDASH_SERVICE_URL=http://127.0.0.1:8080 k6 run load.k6.js
// The stack comes from the environment only (there is no default host): SCALEDASH_SERVICE_URL,
// SCALEDASH_EDGES (a JSON list of {name, url, method, headers, expect_status}; default: the
// service's /functions/v1/hello), SCALEDASH_K6_USERS and SCALEDASH_K6_DURATION.
//
// Keep `options` a JSON literal (quoted keys, no comments inside): the suite's tests read it
// without a JavaScript engine and check it against locustfile.py's SCENARIOS and THRESHOLDS.
// Per request kind (tag `kind`): http_req_failed / ws_failed carry THRESHOLDS[kind].error_rate,
// http_req_duration / ws_connecting its p95_ms, ws_frames its min_frames.

import http from "k6/http";
import ws from "k6/ws";
import { Counter, Rate } from "k6/metrics";
import { sleep } from "k6";

export const options = {
  "scenarios": {
    "browse": {"executor": "constant-vus", "exec": "browse", "vus": 5, "duration": "30s"},
    "write": {"executor": "constant-vus", "exec": "write", "vus": 1, "duration": "30s"},
    "edge": {"executor": "constant-vus", "exec": "edge", "vus": 2, "duration": "30s"},
    "subscribe": {"executor": "constant-vus", "exec": "subscribe", "vus": 2, "duration": "30s"}
  },
  "thresholds": {
    "http_req_failed{kind:read}": ["rate<=0.01"],
    "http_req_duration{kind:read}": ["p(95)<=500"],
    "http_req_failed{kind:write}": ["rate<=0.01"],
    "http_req_duration{kind:write}": ["p(95)<=1000"],
    "http_req_failed{kind:edge}": ["rate<=0.02"],
    "http_req_duration{kind:edge}": ["p(95)<=1000"],
    "ws_failed{kind:subscribe}": ["rate<=0.01"],
    "ws_connecting{kind:subscribe}": ["p(95)<=1000"],
    "ws_frames{kind:subscribe}": ["count>=1"]
  }
};

const SERVICE = (__ENV.SCALEDASH_SERVICE_URL || "").replace(/\/+$/, "");
if (!/^https?:\/\//.test(SERVICE)) {
  throw new Error("SCALEDASH_SERVICE_URL is not set to the stack's http(s) URL: refusing to send load anywhere else");
}
const EDGES = __ENV.SCALEDASH_EDGES ? JSON.parse(__ENV.SCALEDASH_EDGES)
  : [{"name": "hello", "url": SERVICE + "/functions/v1/hello", "method": "POST", "headers": {}, "expect_status": 200}];

// Bounded users and run time from the suite, split like Locust's weights (5:1:2:2).
const USERS = Math.max(parseInt(__ENV.SCALEDASH_K6_USERS || "10", 10), 1);
const WEIGHTS = {"browse": 5, "write": 1, "edge": 2, "subscribe": 2};
for (const [name, scenario] of Object.entries(options.scenarios)) {
  scenario.vus = Math.max(1, Math.round(USERS * WEIGHTS[name] / 10));
  if (__ENV.SCALEDASH_K6_DURATION) scenario.duration = __ENV.SCALEDASH_K6_DURATION;
}

const ITEM_COUNT = 1000;
const ZIPF_EXPONENT = 1.1;
const CUMULATIVE = [];
for (let k = 1, total = 0; k <= ITEM_COUNT; k++) { total += 1 / Math.pow(k, ZIPF_EXPONENT); CUMULATIVE.push(total); }

function zipfKey() {
  const x = Math.random() * CUMULATIVE[CUMULATIVE.length - 1];
  let lo = 0, hi = CUMULATIVE.length - 1;
  while (lo < hi) { const mid = (lo + hi) >> 1; if (CUMULATIVE[mid] < x) lo = mid + 1; else hi = mid; }
  return lo + 1;
}

function between(low, high) { sleep(low + Math.random() * (high - low)); }

const wsFailed = new Rate("ws_failed");
const wsFrames = new Counter("ws_frames");

export function browse() {
  http.get(`${SERVICE}/items/${zipfKey()}`, {"tags": {"kind": "read", "name": "read /items/[id]"},
    "responseCallback": http.expectedStatuses(200, 404)});
  between(0.05, 0.2);
}

export function write() {
  const id = 1 + Math.floor(Math.random() * ITEM_COUNT);
  http.put(`${SERVICE}/items/${id}`, JSON.stringify({"price": Math.round(Math.random() * 9900 + 100) / 100}),
    {"headers": {"Content-Type": "application/json"}, "tags": {"kind": "write", "name": "write /items/[id]"}});
  between(0.2, 0.6);
}

export function edge() {
  const fn = EDGES[Math.floor(Math.random() * EDGES.length)];
  const method = (fn.method || "GET").toUpperCase();
  const hasBody = ["POST", "PUT", "PATCH"].includes(method);
  const headers = Object.assign(hasBody ? {"Content-Type": "application/json"} : {}, fn.headers || {});
  http.request(method, fn.url, hasBody ? JSON.stringify({"name": "load"}) : null,
    {"headers": headers, "tags": {"kind": "edge", "name": `edge ${fn.name}`},
     "responseCallback": http.expectedStatuses(fn.expect_status || 200)});
  between(0.1, 0.4);
}

export function subscribe() {
  const url = SERVICE.replace(/^http/, "ws") + "/realtime";
  const tags = {"kind": "subscribe", "name": "subscribe /realtime"};
  let broke = false;
  const res = ws.connect(url, {"tags": tags}, (socket) => {
    socket.on("message", () => wsFrames.add(1, tags));
    socket.on("error", () => { broke = true; });
    socket.setTimeout(() => socket.close(), 5000);
  });
  wsFailed.add(broke || !res || res.status !== 101, tags);
  sleep(0.5);
}
