// N idle authenticated sockets for scripts/bench/sockets.py: socket.io-client@4, websocket transport, handshake
// auth {token}, each its own Manager (forceNew), no reconnection. Connects with at most --parallel handshakes in
// flight, then holds them, printing JSON lines:
//   {"type":"connected","connected","failed","seconds","errors"}  once every socket has connected or failed
//   {"type":"status","open","disconnects","reasons"}             every 5 s while holding
//   {"type":"closed","open","disconnects","reasons"}             after stdin closes (or --max-seconds)
"use strict";
const { io } = require("socket.io-client");

// the access token comes in the environment (EVA_ACCESS_TOKEN): a command line is visible to every local user
const [url, countArg, parallelArg, maxSecondsArg] = process.argv.slice(2);
const token = process.env.EVA_ACCESS_TOKEN;
const count = Math.min(Number(countArg || 1000), 20000);
const parallel = Math.max(1, Math.min(Number(parallelArg || 100), 1000));
const maxSeconds = Math.min(Number(maxSecondsArg || 600), 1800);
if (!url || !token) {
  process.stderr.write("usage: EVA_ACCESS_TOKEN=<access token> node idle_sockets.js <gateway url> [count] [parallel] [max s]\n");
  process.exit(2);
}
const out = (line) => process.stdout.write(JSON.stringify(line) + "\n");
process.stdout.on("error", () => process.exit(0)); // the parent went away

const sockets = [];
let open = 0;
let disconnects = 0;
const reasons = {};
const errors = {};
let failed = 0;
let connected = 0;
let holding = false;

function openOne() {
  return new Promise((resolve) => {
    const socket = io(url, {
      path: "/socket.io", transports: ["websocket"], auth: { token }, reconnection: false, forceNew: true,
      timeout: 30000,
    });
    sockets.push(socket);
    socket.once("connect", () => { open += 1; connected += 1; resolve(); });
    socket.once("connect_error", (error) => {
      failed += 1;
      const key = String(error && error.message);
      errors[key] = (errors[key] || 0) + 1;
      resolve();
    });
    socket.on("disconnect", (reason) => {
      open -= 1;
      if (holding) {
        disconnects += 1;
        reasons[reason] = (reasons[reason] || 0) + 1;
      }
    });
  });
}

async function main() {
  const started = process.hrtime.bigint();
  let next = 0;
  async function worker() {
    while (next < count) {
      next += 1;
      await openOne();
    }
  }
  await Promise.all(Array.from({ length: Math.min(parallel, count) }, worker));
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  holding = true;
  out({ type: "connected", connected, failed, seconds, errors });
  const timer = setInterval(() => out({ type: "status", open, disconnects, reasons }), 5000);
  const stop = () => {
    clearInterval(timer);
    out({ type: "closed", open, disconnects, reasons });
    holding = false;
    for (const socket of sockets) socket.close();
    setTimeout(() => process.exit(0), 500);
  };
  process.stdin.on("end", stop);
  process.stdin.resume();
  setTimeout(stop, maxSeconds * 1000).unref();
}

main().catch((error) => { process.stderr.write(String(error && error.stack) + "\n"); process.exit(1); });
