// A Foxglove WebSocket client for the tests: the official protocol client
// (@foxglove/ws-protocol) on the `ws` package, driven by JSON commands on stdin, one a line,
// reporting what the server says as JSON events on stdout, one a line.
//
//   node client.mjs ws://127.0.0.1:PORT
//
// Commands: {"cmd":"subscribe","topic":T} (waits for T's channel if it is not advertised yet),
// {"cmd":"unsubscribe","topic":T}, {"cmd":"subscribe_id","id":N}, {"cmd":"graph"},
// {"cmd":"advertise","topic":T}, {"cmd":"send","topic":T,"json":OBJ}, {"cmd":"close"},
// {"cmd":"raw","text":S} / {"cmd":"raw","hex":H} / {"cmd":"raw","bytes":N} (a frame of N
// bytes) sent on a second, bare connection, answered by the first status or close it gets;
// {"cmd":"churn","clients":N}: N bare connections that drop as soon as they are greeted.
import wsProtocol from "@foxglove/ws-protocol"; // CommonJS: no named exports
import WebSocket from "ws";
import readline from "node:readline";

const { FoxgloveClient } = wsProtocol;

const url = process.argv[2];
const out = (event) => process.stdout.write(JSON.stringify(event) + "\n");

// The protocol's name was foxglove.websocket.v1; the Foxglove SDK (and foxglove_bridge 3,
// Foxglove, recent Lichtblick) call the same protocol foxglove.sdk.v1. Offer both, as
// Lichtblick does; the server picks.
const SUBPROTOCOLS = [FoxgloveClient.SUPPORTED_SUBPROTOCOL, "foxglove.sdk.v1"];
const ws = new WebSocket(url, SUBPROTOCOLS);
const client = new FoxgloveClient({ ws });
const channels = new Map(); // topic -> channel
const wanted = new Set(); // topics to subscribe once advertised
const subscriptions = new Map(); // subscription id -> topic
const bySubscribedTopic = new Map(); // topic -> subscription id
const published = new Map(); // topic -> client channel id
const decoder = new TextDecoder();

function subscribe(topic) {
  const channel = channels.get(topic);
  if (!channel) {
    wanted.add(topic);
    return;
  }
  const id = client.subscribe(channel.id);
  subscriptions.set(id, topic);
  bySubscribedTopic.set(topic, id);
  out({ ev: "subscribed", topic, channel: channel.id });
}

client.on("open", () => out({ ev: "open", protocol: ws.protocol }));
client.on("serverInfo", (info) => {
  out({ ev: "serverInfo", name: info.name, capabilities: info.capabilities, supportedEncodings: info.supportedEncodings ?? [] });
  readCommands();
});
client.on("status", (s) => out({ ev: "status", level: s.level, message: s.message }));
client.on("advertise", (list) => {
  for (const c of list) {
    channels.set(c.topic, c);
    out({ ev: "advertise", topic: c.topic, id: c.id, encoding: c.encoding, schemaName: c.schemaName, schemaEncoding: c.schemaEncoding, schema: c.schema });
    if (wanted.delete(c.topic)) subscribe(c.topic);
  }
});
client.on("unadvertise", (ids) => {
  for (const [topic, c] of channels) {
    if (ids.includes(c.id)) {
      channels.delete(topic);
      out({ ev: "unadvertise", topic });
    }
  }
});
client.on("message", (m) => {
  const topic = subscriptions.get(m.subscriptionId);
  const text = decoder.decode(new Uint8Array(m.data.buffer, m.data.byteOffset, m.data.byteLength));
  out({ ev: "message", topic, logTime: m.timestamp.toString(), data: JSON.parse(text) });
});
client.on("connectionGraphUpdate", (g) => out({ ev: "graph", publishedTopics: g.publishedTopics, subscribedTopics: g.subscribedTopics, removedTopics: g.removedTopics }));
client.on("error", (e) => out({ ev: "error", message: String(e?.message ?? e) }));
client.on("close", (e) => {
  out({ ev: "close", code: e.code });
  process.exit(0);
});

function raw(cmd) {
  const bare = new WebSocket(url, SUBPROTOCOLS);
  let sent = false;
  let answered = false;
  const answer = (event) => {
    if (!answered) {
      answered = true;
      out(event);
      bare.terminate();
    }
  };
  bare.on("message", (data, isBinary) => {
    if (isBinary) return;
    const msg = JSON.parse(data.toString());
    if (msg.op === "serverInfo" && !sent) {
      sent = true;
      if (cmd.text !== undefined) bare.send(cmd.text);
      else if (cmd.hex !== undefined) bare.send(Buffer.from(cmd.hex, "hex"));
      else bare.send(Buffer.alloc(cmd.bytes, 0x41), { binary: false });
    } else if (msg.op === "status") {
      answer({ ev: "raw", status: msg.level, message: msg.message });
    }
  });
  bare.on("close", (code) => answer({ ev: "raw", closed: code }));
  bare.on("error", () => {});
}

// Opens `count` bare connections at once, each dropped (TCP closed without a close frame) as
// soon as its serverInfo arrives; reports how many got that far.
function churn(count) {
  let done = 0;
  let greeted = 0;
  for (let i = 0; i < count; i++) {
    const bare = new WebSocket(url, SUBPROTOCOLS);
    const finish = () => {
      if (++done === count) out({ ev: "churn", clients: count, greeted });
    };
    bare.once("message", () => {
      greeted++;
      bare.terminate();
    });
    bare.once("close", finish);
    bare.on("error", () => {});
  }
}

// Commands are read once the server has said hello: the socket is open from then on.
let reading = false;
function readCommands() {
  if (reading) return;
  reading = true;
  const lines = readline.createInterface({ input: process.stdin });
  lines.on("line", command);
  lines.on("close", () => process.exit(0));
}

function command(line) {
  const cmd = JSON.parse(line);
  switch (cmd.cmd) {
    case "subscribe":
      subscribe(cmd.topic);
      break;
    case "unsubscribe": {
      const id = bySubscribedTopic.get(cmd.topic);
      bySubscribedTopic.delete(cmd.topic);
      client.unsubscribe(id);
      out({ ev: "unsubscribed", topic: cmd.topic });
      break;
    }
    case "subscribe_id":
      client.subscribe(cmd.id);
      break;
    case "graph":
      client.subscribeConnectionGraph();
      break;
    case "advertise": {
      const id = client.advertise({ topic: cmd.topic, encoding: "json", schemaName: "zerosmq.Untyped" });
      published.set(cmd.topic, id);
      out({ ev: "advertised", topic: cmd.topic });
      break;
    }
    case "send":
      client.sendMessage(published.get(cmd.topic), new TextEncoder().encode(JSON.stringify(cmd.json)));
      break;
    case "raw":
      raw(cmd);
      break;
    case "churn":
      churn(cmd.clients);
      break;
    case "close":
      client.close();
      break;
  }
}
