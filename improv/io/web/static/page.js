// improv's live page: the jam pushed over one websocket, drawn on a canvas.
// Plain JS, no build step. Every control sends a control/set payload, the same JSON as
// over MQTT, and shows the answer; the server validates, never this page.
"use strict";

const WINDOW_BEATS = 32;      // beats shown on the roll
const PLAYHEAD = 0.75;        // where "now" is, as a share of the width
const KEEP_BEATS = 96;        // notes further back are forgotten
const ANSWER_GUESS = 0.5;     // an answer note's length until its phrase tells
const COLOURS = { call: [47, 123, 216], answer: [224, 112, 31] };
const METRICS = [
  ["notes_out", "notes", 0],
  ["send_error_ms_p50", "send error p50 (ms)", 3],
  ["send_error_ms_p99", "send error p99 (ms)", 3],
  ["send_error_ms_max", "send error max (ms)", 3],
  ["answer_start_error_ms", "answer start error (ms)", 3],
  ["generation_ms", "generation (ms)", 1],
  ["generation_headroom_ms_min", "headroom min (ms)", 1],
  ["deadline_misses", "deadline misses", 0],
  ["fallback_notes", "fallback notes", 0],
  ["candidates", "candidates", 0],
];

// What the page knows; tests read it (window.improv).
const jam = {
  notes: [],          // {role, pitch, velocity, at, dur, open}
  state: null,
  form: null,         // {bars: [[symbol...]...], origin_bar}
  beat: null,         // {bar, beat, chord, at, arrived}
  metrics: null,
  results: [],        // control answers, newest last
  messages: 0,
  counts: { call: 0, answer: 0 },
  connected: false,
  ended: false,
};
window.improv = jam;

const $ = (id) => document.getElementById(id);
const token = new URLSearchParams(location.search).get("token");
let socket = null;
let nextId = 1;

// --- the socket -----------------------------------------------------------------------

function connect() {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  const query = token ? `?token=${encodeURIComponent(token)}` : "";
  socket = new WebSocket(`${scheme}//${location.host}/ws${query}`);
  socket.onopen = () => { jam.connected = true; link("live", "up"); };
  socket.onmessage = (event) => receive(JSON.parse(event.data));
  socket.onclose = (event) => {
    jam.connected = false;
    if (event.code === 1001) {
      jam.ended = true;
      link("the jam has ended", "down");
      return;
    }
    link("disconnected: retrying", "down");
    setTimeout(connect, 1000);
  };
}

function link(text, kind) {
  const el = $("link");
  el.textContent = text;
  el.className = `link ${kind}`;
}

function send(change) {
  const id = `web-${nextId++}`;
  if (!socket || socket.readyState !== WebSocket.OPEN) {
    showResult({ id, ok: false, error: "not connected" });
    return;
  }
  socket.send(JSON.stringify({ id, ...change }));
}

// --- what comes in ----------------------------------------------------------------------

function receive(msg) {
  jam.messages += 1;
  switch (msg.type) {
    case "hello": jam.notes = []; jam.counts = { call: 0, answer: 0 }; break;
    case "state": onState(msg); break;
    case "beat": onBeat(msg); break;
    case "note": onNote(msg); break;
    case "phrase": onPhrase(msg); break;
    case "metrics": onMetrics(msg); break;
    case "form": onForm(msg); break;
    case "result": showResult(msg); break;
  }
}

function onState(state) {
  const first = jam.state === null;
  jam.state = state;
  $("title").textContent = `${state.form} in ${state.key}, ${state.metre}, ${state.mode} ${state.bars} bars`;
  $("turn").textContent = state.turn;
  $("slot").textContent = state.slot ? `${state.slot} (${state.slot_bars_left} bars left)` : "-";
  $("model-now").textContent = `${state.model} (${state.device}, T ${state.temperature})`;
  $("tempo-now").textContent = `${state.tempo} BPM`;
  $("mute").classList.toggle("on", state.muted);
  $("mute").textContent = state.muted ? "unmute" : "mute";
  $("pause").classList.toggle("on", state.paused);
  $("pause").textContent = state.paused ? "resume" : "pause";
  setIfIdle("mode", state.mode, first);
  setIfIdle("bars", String(state.bars), first);
  setIfIdle("tempo", String(state.tempo), first);
  setIfIdle("temperature", String(state.temperature), first);
  if (!jam.beat) showBar(state.bar, state.beat, state.chord);
  drawGrid();
}

function setIfIdle(id, value, force) {
  const el = $(id);
  if (force || document.activeElement !== el) el.value = value;
}

function onBeat(msg) {
  jam.beat = { ...msg, arrived: performance.now() };
  showBar(msg.bar, msg.beat, msg.chord);
  drawGrid();
}

function showBar(bar, beat, chord) {
  $("bar").textContent = bar + 1;
  $("beat").textContent = `.${Math.floor(beat) + 1}`;
  $("chord").textContent = chord || "-";
}

function onNote(msg) {
  if (msg.velocity > 0) {
    close(msg.role, msg.pitch, msg.at);
    const open = msg.role === "call";
    jam.notes.push({ role: msg.role, pitch: msg.pitch, velocity: msg.velocity, at: msg.at,
                     dur: open ? 0 : ANSWER_GUESS, open });
    jam.counts[msg.role] = (jam.counts[msg.role] || 0) + 1;
    $("counts").textContent = `${jam.counts.call || 0} call notes, ${jam.counts.answer || 0} answer notes`;
  } else {
    close(msg.role, msg.pitch, msg.at);
  }
  forget();
}

function close(role, pitch, at) {
  for (let i = jam.notes.length - 1; i >= 0; i--) {
    const n = jam.notes[i];
    if (n.open && n.role === role && n.pitch === pitch) {
      n.open = false;
      n.dur = Math.max(0.05, at - n.at);
      return;
    }
  }
}

function onPhrase(msg) {
  // the answer's true lengths (the notes came when scheduled, lengths unknown)
  for (const [pitch, , onset, duration] of msg.notes) {
    const n = jam.notes.find((x) => x.role === msg.role && x.pitch === pitch
                                   && Math.abs(x.at - onset) < 0.02);
    if (n && !n.open) n.dur = duration;
  }
}

function forget() {
  const now = position();
  if (jam.notes.length > 4000 || (now !== null && jam.notes.length && jam.notes[0].at < now - KEEP_BEATS)) {
    jam.notes = jam.notes.filter((n) => now === null || n.at + n.dur >= now - KEEP_BEATS).slice(-4000);
  }
}

function onMetrics(m) {
  jam.metrics = m;
  $("turn-number").textContent = m.turn != null ? `(turn ${m.turn})` : "";
  const body = $("metrics").tBodies[0];
  body.replaceChildren(...METRICS.map(([key, label, digits]) => {
    const row = document.createElement("tr");
    const value = m[key];
    row.innerHTML = "<td></td><td></td>";
    row.cells[0].textContent = label;
    row.cells[1].textContent = value == null ? "-" : Number(value).toFixed(digits);
    row.dataset.key = key;
    return row;
  }));
}

function onForm(msg) {
  jam.form = msg;
  $("form-name").textContent = msg.form || "";
  drawGrid();
}

function showResult(r) {
  jam.results.push(r);
  const el = $("result");
  el.textContent = r.ok
    ? `${r.id}: ok ${JSON.stringify(r.changes)}`
    : `${r.id}: ${r.error}`;
  el.className = `result ${r.ok ? "ok" : "error"}`;
}

// --- the form grid ------------------------------------------------------------------------

function formBar() {
  const bar = jam.beat ? jam.beat.bar : jam.state ? jam.state.bar : null;
  if (!jam.form || bar === null || bar < 0) return null;
  const n = jam.form.bars.length;
  return (((bar - jam.form.origin_bar) % n) + n) % n;
}

function drawGrid() {
  const grid = $("grid");
  if (!jam.form) return;
  const bars = jam.form.bars;
  if (grid.children.length !== bars.length || grid.dataset.chords !== JSON.stringify(bars)) {
    grid.dataset.chords = JSON.stringify(bars);
    grid.replaceChildren(...bars.map((symbols, i) => {
      const cell = document.createElement("div");
      const number = document.createElement("small");
      number.textContent = i + 1;
      cell.append(number, symbols.join(" "));
      return cell;
    }));
  }
  const current = formBar();
  [...grid.children].forEach((cell, i) => cell.classList.toggle("current", i === current));
}

// --- the roll -----------------------------------------------------------------------------

function position() {
  // the jam position now (beats): the last beat, carried on at the tempo, never
  // more than a beat past it (a stopped jam stops the roll)
  if (!jam.beat) return null;
  const tempo = jam.state ? jam.state.tempo : 120;
  const ahead = (performance.now() - jam.beat.arrived) / 1000 * tempo / 60;
  return jam.beat.at + Math.min(ahead, 1.0);
}

function draw() {
  const canvas = $("roll");
  const scale = window.devicePixelRatio || 1;
  const w = canvas.clientWidth, h = canvas.clientHeight;
  if (canvas.width !== w * scale || canvas.height !== h * scale) {
    canvas.width = w * scale;
    canvas.height = h * scale;
  }
  const g = canvas.getContext("2d");
  g.setTransform(scale, 0, 0, scale, 0, 0);
  g.clearRect(0, 0, w, h);
  const now = position();
  if (now !== null) {
    const left = now - WINDOW_BEATS * PLAYHEAD;
    const x = (beats) => ((beats - left) / WINDOW_BEATS) * w;
    const visible = jam.notes.filter((n) => n.at + (n.open ? now - n.at : n.dur) >= left && n.at <= left + WINDOW_BEATS);
    let lo = 55, hi = 79;
    for (const n of visible) { lo = Math.min(lo, n.pitch - 2); hi = Math.max(hi, n.pitch + 2); }
    const top = 18, row = (h - top) / (hi - lo + 1);
    const y = (pitch) => top + (hi - pitch) * row;
    drawBars(g, x, left, w, h, top);
    for (const n of visible) {
      if (n.at > now) continue;  // scheduled, not yet played: drawn when it sounds
      const [r, gr, b] = COLOURS[n.role] || [200, 200, 200];
      const alpha = 0.3 + 0.7 * (n.velocity / 127);
      const dur = Math.max(0.05, Math.min(n.open ? Infinity : n.dur, now - n.at));
      g.fillStyle = `rgba(${r}, ${gr}, ${b}, ${alpha})`;
      g.fillRect(x(n.at), y(n.pitch), Math.max(2, (dur / WINDOW_BEATS) * w - 1), Math.max(2, row - 1));
    }
    g.strokeStyle = "#e8e8e8";
    g.beginPath();
    g.moveTo(x(now), top);
    g.lineTo(x(now), h);
    g.stroke();
  }
  requestAnimationFrame(draw);
}

function drawBars(g, x, left, w, h, top) {
  const perBar = jam.state ? Number(jam.state.metre.split("/")[0]) : 4;
  const offset = jam.beat ? jam.beat.at - (jam.beat.bar * perBar + jam.beat.beat) : 0;
  g.font = "11px system-ui, sans-serif";
  for (let bar = Math.floor((left - offset) / perBar); bar * perBar + offset < left + WINDOW_BEATS; bar++) {
    const bx = x(bar * perBar + offset);
    g.strokeStyle = "#2e333c";
    g.beginPath();
    g.moveTo(bx, 0);
    g.lineTo(bx, h);
    g.stroke();
    g.fillStyle = "#8a8f98";
    g.fillText(String(bar + 1), bx + 3, 12);
    if (jam.form && bar >= 0) {
      const n = jam.form.bars.length;
      const symbols = jam.form.bars[(((bar - jam.form.origin_bar) % n) + n) % n];
      g.fillStyle = "#c8c8c8";
      g.fillText(symbols.join(" "), bx + 22, 12);
    }
  }
}

// --- the controls -------------------------------------------------------------------------

function number(id) {
  const text = $(id).value.trim();
  const value = Number(text);
  return text !== "" && Number.isFinite(value) ? value : text;  // the server says what is wrong
}

function tempoBy(delta) {
  const tempo = jam.state ? jam.state.tempo : number("tempo");
  send({ tempo: Math.round(tempo + delta) });
}

$("set-tempo").addEventListener("click", () => send({ tempo: number("tempo") }));
$("tempo-down").addEventListener("click", () => tempoBy(-5));
$("tempo-up").addEventListener("click", () => tempoBy(5));
$("mode").addEventListener("change", () => send({ mode: $("mode").value }));
$("bars").addEventListener("change", () => send({ bars: Number($("bars").value) }));
$("set-model").addEventListener("click", () => send({ model: $("model").value }));
$("set-temperature").addEventListener("click", () => send({ temperature: number("temperature") }));
$("mute").addEventListener("click", () => send({ mute: !(jam.state && jam.state.muted) }));
$("pause").addEventListener("click", () => send({ pause: !(jam.state && jam.state.paused) }));
$("panic").addEventListener("click", () => send({ panic: true }));

connect();
requestAnimationFrame(draw);
