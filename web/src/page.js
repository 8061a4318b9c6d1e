// The master's page: polls /api/topics for the graph and the table, /api/plot for the plot.
"use strict";
const SVG = "http://www.w3.org/2000/svg";

function el(name, attrs, text) {
  const e = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
}

function human(n, unit) {
  const steps = ["", "k", "M", "G"];
  let i = 0;
  while (n >= 1000 && i < steps.length - 1) { n /= 1000; i++; }
  return (i ? n.toFixed(1) : n.toFixed(n < 10 && n % 1 ? 1 : 0)) + " " + steps[i] + unit;
}

// Three columns: nodes that publish, topics, nodes that only subscribe. Edges go publisher ->
// topic -> subscriber; a subscriber in the left column gets a curved edge back.
let lastGraph = "";
function drawGraph(state) {
  const key = JSON.stringify([state.nodes, state.topics.map(t => [t.name, t.publishers, t.subscribers])]);
  if (key === lastGraph) return;
  lastGraph = key;
  const svg = document.getElementById("graph");
  svg.replaceChildren();
  const defs = el("defs");
  const marker = el("marker", { id: "arrow", viewBox: "0 0 10 10", refX: 10, refY: 5, markerWidth: 7, markerHeight: 7, orient: "auto" });
  marker.appendChild(el("path", { d: "M0,0 L10,5 L0,10 z", style: "fill:#888;stroke:none" }));
  defs.appendChild(marker);
  svg.appendChild(defs);
  const publishing = new Set(state.topics.flatMap(t => t.publishers));
  const left = state.nodes.filter(n => publishing.has(n) || !state.topics.some(t => t.subscribers.includes(n)));
  const right = state.nodes.filter(n => !left.includes(n));
  const rows = Math.max(left.length, right.length, state.topics.length, 1);
  const H = 50, W = 900, X = [130, 450, 770];
  svg.setAttribute("height", rows * H + 20);
  const pos = new Map();
  const place = (names, x, kind) => names.forEach((n, i) => {
    const y = 10 + (rows - names.length) * H / 2 + i * H + H / 2;
    pos.set(kind + n, [x, y]);
  });
  place(left, X[0], "n:"); place(right, X[2], "n:"); place(state.topics.map(t => t.name), X[1], "t:");
  const edges = el("g");
  svg.appendChild(edges);
  for (const t of state.topics) {
    const [tx, ty] = pos.get("t:" + t.name);
    for (const p of t.publishers) {
      const at = pos.get("n:" + p); if (!at) continue;
      edges.appendChild(el("line", { x1: at[0] + 60, y1: at[1], x2: tx - 70, y2: ty }));
    }
    for (const s of t.subscribers) {
      const at = pos.get("n:" + s); if (!at) continue;
      if (at[0] > tx) edges.appendChild(el("line", { x1: tx + 70, y1: ty, x2: at[0] - 60, y2: at[1] }));
      else edges.appendChild(el("path", { d: `M${tx},${ty + 14} C${tx},${ty + 50} ${at[0]},${at[1] + 50} ${at[0]},${at[1] + 16}` }));
    }
  }
  for (const n of state.nodes) {
    const [x, y] = pos.get("n:" + n);
    const g = el("g", { class: "node", "data-node": n });
    g.appendChild(el("ellipse", { cx: x, cy: y, rx: 60, ry: 16 }));
    g.appendChild(el("text", { x, y }, n));
    svg.appendChild(g);
  }
  for (const t of state.topics) {
    const [x, y] = pos.get("t:" + t.name);
    const lonely = !t.publishers.length || !t.subscribers.length;
    const g = el("g", { class: "topic" + (lonely ? " lonely" : ""), "data-topic": t.name });
    g.appendChild(el("rect", { x: x - 70, y: y - 14, width: 140, height: 28, rx: 4 }));
    g.appendChild(el("text", { x, y }, t.name));
    svg.appendChild(g);
  }
}

function drawTable(state) {
  const body = document.querySelector("#topics tbody");
  body.replaceChildren();
  for (const t of state.topics) {
    const tr = document.createElement("tr");
    tr.dataset.topic = t.name;
    tr.dataset.rate = t.rate.toFixed(2);
    const cells = [t.name, t.publishers.join(", "), t.subscribers.join(", "),
      t.rate.toFixed(1), human(t.bandwidth, "B/s"), String(t.messages), String(t.overflows)];
    cells.forEach((c, i) => {
      const td = document.createElement("td");
      td.textContent = c;
      if (i >= 3) td.className = "num";
      tr.appendChild(td);
    });
    body.appendChild(tr);
  }
  const select = document.getElementById("plot-topic");
  const have = new Set([...select.options].map(o => o.value));
  for (const t of state.topics) {
    if (!have.has(t.name)) select.appendChild(new Option(t.name, t.name));
  }
}

async function pollTopics() {
  try {
    const r = await fetch("/api/topics", { cache: "no-store" });
    const state = await r.json();
    document.getElementById("status").textContent = state.error ? "master: " + state.error : "";
    drawGraph(state);
    drawTable(state);
  } catch (e) {
    document.getElementById("status").textContent = "the master's web server does not answer: " + e;
  }
  setTimeout(pollTopics, 1000);
}

function drawPlot(data) {
  const svg = document.getElementById("plot");
  svg.replaceChildren();
  const pts = data.points || [];
  const W = 900, H = 240, M = 40;
  document.getElementById("plot-last").textContent = pts.length ? "last: " + pts[pts.length - 1][1] : "(no numbers yet)";
  if (pts.length < 2) return;
  const xs = pts.map(p => p[0]), ys = pts.map(p => p[1]);
  const x0 = Math.min(...xs), x1 = Math.max(...xs);
  let y0 = Math.min(...ys), y1 = Math.max(...ys);
  if (y0 === y1) { y0 -= 1; y1 += 1; }
  const sx = x => M + (x - x0) / Math.max(x1 - x0, 1e-9) * (W - 2 * M);
  const sy = y => H - M / 2 - (y - y0) / (y1 - y0) * (H - M);
  svg.appendChild(el("polyline", { points: pts.map(p => sx(p[0]).toFixed(1) + "," + sy(p[1]).toFixed(1)).join(" ") }));
  svg.appendChild(el("text", { x: 2, y: sy(y1) + 4 }, String(+y1.toPrecision(4))));
  svg.appendChild(el("text", { x: 2, y: sy(y0) }, String(+y0.toPrecision(4))));
  svg.appendChild(el("text", { x: W - M, y: H - 4 }, (x1 - x0).toFixed(1) + " s"));
}

async function pollPlot() {
  const topic = document.getElementById("plot-topic").value;
  if (topic) {
    try {
      const r = await fetch("/api/plot?topic=" + encodeURIComponent(topic), { cache: "no-store" });
      const data = await r.json();
      if (data.error) document.getElementById("plot-last").textContent = data.error;
      else drawPlot(data);
    } catch (e) { /* the topics poll reports the server gone */ }
  }
  setTimeout(pollPlot, 500);
}

// ?plot=TOPIC picks the plotted topic from the address (a bookmark, or a test).
const wanted = new URLSearchParams(location.search).get("plot");
if (wanted) {
  const select = document.getElementById("plot-topic");
  select.appendChild(new Option(wanted, wanted));
  select.value = wanted;
}
pollTopics();
pollPlot();
