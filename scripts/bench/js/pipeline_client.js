// One attendant's live inbox for scripts/bench/outbound.py and statuses.py: a socket.io-client@4 socket (websocket
// transport, handshake auth {token}) that prints one JSON line per `message:new` (with the message's id and, for a
// guest's message, its wamid) and per `message:status`, each with its arrival time (ms since the epoch, sub-ms).
// Lines: {"type":"ready"} once connected, {"type":"new","id","wamid","direction","t"},
// {"type":"status","id","status","t"}, {"type":"disconnect","reason","t"} if the socket drops. Ends when stdin closes
// (or after --max-seconds).
"use strict";
const { io } = require("socket.io-client");
const { performance } = require("node:perf_hooks");

// the access token comes in the environment (EVA_ACCESS_TOKEN): a command line is visible to every local user
const [url, maxSecondsArg] = process.argv.slice(2);
const token = process.env.EVA_ACCESS_TOKEN;
if (!url || !token) {
  process.stderr.write("usage: EVA_ACCESS_TOKEN=<access token> node pipeline_client.js <gateway url> [max seconds]\n");
  process.exit(2);
}
const maxSeconds = Math.min(Number(maxSecondsArg || 900), 3600);
const now = () => performance.timeOrigin + performance.now();
const out = (line) => process.stdout.write(JSON.stringify(line) + "\n");
process.stdout.on("error", () => process.exit(0)); // the parent went away

const socket = io(url, {
  path: "/socket.io", transports: ["websocket"], auth: { token }, reconnection: false, timeout: 10000,
});
socket.on("connect", () => out({ type: "ready", t: now() }));
socket.on("connect_error", (error) => { out({ type: "error", message: String(error && error.message) }); finish(1); });
socket.on("disconnect", (reason) => out({ type: "disconnect", reason, t: now() }));
socket.on("message:new", (data) => {
  const t = now();
  out({ type: "new", id: data && data.id, wamid: data && data.wamid, direction: data && data.direction, t });
});
socket.on("message:status", (data) => {
  const t = now();
  out({ type: "status", id: data && data.messageId, status: data && data.status, t });
});

let finished = false;
function finish(code) {
  if (finished) return;
  finished = true;
  socket.close();
  setTimeout(() => process.exit(code), 50);
}
process.stdin.on("end", () => finish(0));
process.stdin.resume();
setTimeout(() => finish(0), maxSeconds * 1000).unref();
