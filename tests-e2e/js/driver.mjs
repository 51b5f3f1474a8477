// The frontend's own Socket.io client (socket.io-client@4), driven by the Python end-to-end tests over JSON lines.
//
// stdin, one command per line (every command carries an `id`; the reply carries it back):
//   {"id":1,"op":"connect","socket":"a","url":"http://127.0.0.1:13001","auth":{"token":"…"}|null,
//    "transports":["polling","websocket"]|["websocket"]|null,"timeoutMs":10000}
//       -> {"type":"reply","id":1,"ok":true,"result":{"sid":…,"transport":<now>,"opened":<the first transport>}}
//       or {"type":"reply","id":1,"ok":false,"error":{"message":…,"data":…}} (connect_error)
//   {"id":2,"op":"emit","socket":"a","event":"join:conversation","data":{…},"ack":true,"timeoutMs":10000}
//       ("args":[…] instead of "data" sends no argument, or several)
//       -> {"type":"reply","id":2,"ok":true,"result":{"ack":<the server's ack>,"t":…}} (ack:false -> result null)
//   {"id":3,"op":"burst","socket":"a","event":"typing:start","args":[{…}],"count":60,"timeoutMs":10000}
//       -> every emit sent at once, each with an ack: {"result":{"acks":[…]}} in emit order
//   {"id":4,"op":"state","socket":"a"} -> {"result":{"connected":…,"sid":…,"transport":…}}
//   {"id":5,"op":"disconnect","socket":"a"}   {"id":6,"op":"exit"}
// stdout, besides the replies, every event the server sends and the socket's life, in the order received:
//   {"type":"event","socket":"a","event":"message:new","data":<first argument>,"args":[…],"t":<epoch ms, fraction>}
//   {"type":"lifecycle","socket":"a","event":"open"|"upgrade"|"connect"|"disconnect"|"connect_error","data":…,"t":…}
// Sockets connect with the client's defaults (polling first, then the upgrade to WebSocket) unless `transports`
// says otherwise; they never reconnect on their own (the tests reconnect explicitly, as a new socket).
import { createInterface } from "node:readline";
import { performance } from "node:perf_hooks";
import { io } from "socket.io-client";

const sockets = new Map();

const now = () => performance.timeOrigin + performance.now();
const write = (message) => process.stdout.write(JSON.stringify(message) + "\n");
const reply = (id, result) => write({ type: "reply", id, ok: true, result: result ?? null });
const fail = (id, error) => write({ type: "reply", id, ok: false, error });
const lifecycle = (name, event, data) => write({ type: "lifecycle", socket: name, event, data: data ?? null, t: now() });

// The arguments of an emit: `args` (none, one or several), or `data` as the only one.
const argsOf = (command) => command.args ?? ("data" in command ? [command.data] : []);

function socketOf(command) {
  const socket = sockets.get(command.socket);
  if (!socket) throw new Error(`no socket named ${command.socket}`);
  return socket;
}

function describeError(error) {
  return { message: String(error?.message ?? error), data: error?.data ?? null };
}

function connect(command) {
  const name = command.socket;
  sockets.get(name)?.disconnect();
  const options = { reconnection: false, forceNew: true, timeout: command.timeoutMs ?? 10000 };
  if (command.auth) options.auth = command.auth;
  if (command.transports) options.transports = command.transports;
  const socket = io(command.url, options);
  sockets.set(name, socket);
  let settled = false;
  let opened = null; // the transport the Engine.IO connection opened with (the upgrade may come before `connect`)
  socket.io.on("open", () => {
    const engine = socket.io.engine;
    opened = engine.transport.name;
    lifecycle(name, "open", { transport: opened });
    engine.on("upgrade", (transport) => lifecycle(name, "upgrade", { transport: transport.name }));
  });
  socket.onAny((event, ...args) => write({ type: "event", socket: name, event, data: args[0] ?? null, args, t: now() }));
  socket.on("connect", () => {
    const transport = socket.io.engine.transport.name;
    lifecycle(name, "connect", { sid: socket.id, transport, opened });
    if (!settled) {
      settled = true;
      reply(command.id, { sid: socket.id, transport, opened });
    }
  });
  socket.on("connect_error", (error) => {
    lifecycle(name, "connect_error", describeError(error));
    if (!settled) {
      settled = true;
      fail(command.id, describeError(error));
    }
  });
  socket.on("disconnect", (reason, details) => {
    lifecycle(name, "disconnect", { reason, description: details?.description?.message ?? null });
  });
}

async function emit(command) {
  const socket = socketOf(command);
  const args = argsOf(command);
  if (!command.ack) {
    socket.emit(command.event, ...args);
    return null;
  }
  const ack = await socket.timeout(command.timeoutMs ?? 10000).emitWithAck(command.event, ...args);
  return { ack: ack ?? null, t: now() };
}

async function burst(command) {
  const socket = socketOf(command);
  const timed = socket.timeout(command.timeoutMs ?? 10000);
  const pending = [];
  for (let i = 0; i < command.count; i += 1) {
    pending.push(timed.emitWithAck(command.event, ...argsOf(command)).catch((error) => ({ error: String(error) })));
  }
  return { acks: await Promise.all(pending) };
}

function state(command) {
  const socket = socketOf(command);
  return { connected: socket.connected, sid: socket.id ?? null, transport: socket.io.engine?.transport?.name ?? null };
}

async function handle(command) {
  switch (command.op) {
    case "connect":
      connect(command); // replies on connect or connect_error
      return;
    case "emit":
      reply(command.id, await emit(command));
      return;
    case "burst":
      reply(command.id, await burst(command));
      return;
    case "state":
      reply(command.id, state(command));
      return;
    case "disconnect":
      socketOf(command).disconnect();
      sockets.delete(command.socket);
      reply(command.id, null);
      return;
    case "exit":
      for (const socket of sockets.values()) socket.disconnect();
      reply(command.id, null);
      process.exit(0);
    default:
      throw new Error(`unknown op ${command.op}`);
  }
}

const lines = createInterface({ input: process.stdin });
lines.on("line", (line) => {
  if (!line.trim()) return;
  let command;
  try {
    command = JSON.parse(line);
  } catch (error) {
    write({ type: "error", message: `not JSON: ${line}` });
    return;
  }
  handle(command).catch((error) => fail(command.id, describeError(error)));
});
lines.on("close", () => {
  for (const socket of sockets.values()) socket.disconnect();
  process.exit(0);
});
