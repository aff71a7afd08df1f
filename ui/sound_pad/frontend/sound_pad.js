// The sound pad: a Streamlit component that decodes latent codes in the page (ONNX Runtime
// Web, wasm) and recovers phase with griffin_lim.js, so a slider, the morph's alpha or a
// point dragged over the latent map sounds while it moves. The server only hears the value
// when the hand lets go (to redraw its own figures and downloads).
//
// Protocol: Streamlit's component messages (componentReady / render / setComponentValue /
// setFrameHeight), written out here to need no bundler. The root element's
// data-rendered-at (epoch ms) changes whenever a new sound is ready: tests time it.

"use strict";

const root = document.getElementById("root");
const controls = document.getElementById("controls");
const canvas = document.getElementById("spectrogram");
const statusLine = document.getElementById("status");

// Griffin-Lim iterations per sound while moving, each started from the last sound's phase:
// on a drag along direction 1 of the shipped model, 4 warm iterations reach a median
// spectral convergence of 0.157, the server's 32 from zero phase 0.160.
const LIVE_ITERS = 4;
const FADE = 0.015; // seconds of crossfade when one sound replaces another
const CHUNK_ITERS = 4; // full-quality iterations between looks at the input
const SETTLE_MS = 350; // the hand is still this long: full-quality phase, and tell Python

let args = null; // the latest render arguments from Python
let layoutKey = null; // what the controls were built for
let revision = null; // Python's revision of the values it set (Random sample, Reset...)
let values = null; // the controls' values: amounts (sliders), [alpha] or [x, y] (pad)
let pending = false; // moves made while a sound was being made
let held = false; // a pointer holds a control: the sound loops until it lets go
let live = false; // moving now: warm-started, quick phase; full quality once settled
let settleTimer = null;
let audio = null; // {ctx, source, gain, startedAt, duration}
let wasRendered = 0;
let heardKey = null; // what the last sound was made from (a rerun that changes nothing is silent)
let interacted = false; // browsers play sound only after a gesture in the page
const reloadAsked = new Set(); // model URLs that failed to load and were asked for again
for (const type of ["pointerdown", "keydown"]) {
  window.addEventListener(type, () => { interacted = true; }, { capture: true });
}

function send(type, data) {
  window.parent.postMessage(Object.assign({ isStreamlitMessage: true, type }, data), "*");
}
let frameHeight = 0;
function setHeight() {
  const height = Math.ceil(document.body.scrollHeight) + 4;
  if (height === frameHeight) return;
  frameHeight = height;
  send("streamlit:setFrameHeight", { height });
}
// The frame grows with what it holds (a status line that wraps, a longer caption).
new ResizeObserver(setHeight).observe(document.body);

// ---- the page's look: Streamlit's theme and the server's colour map (colours.js) --------

let themeKey = null;
function applyTheme(theme) {
  const key = JSON.stringify(theme || null);
  if (key === themeKey) return;
  themeKey = key;
  const style = document.documentElement.style;
  for (const [name, value] of Object.entries(themeVariables(theme))) style.setProperty(name, value);
  if (theme && theme.base) style.colorScheme = theme.base === "dark" ? "dark" : "light";
  if (theme && theme.font) borrowFonts(theme.font);
  if (redrawPad) redrawPad(); // its marker is drawn in the text colour
}

// Magma (ui/figures.py) until Python's own stops arrive with the first render.
let levelsKey = null;
let LUT = colourTable([[0, "#000004"], [0.5, "#b73779"], [1, "#fcfdbf"]]);
function useLevels(stops) {
  const key = JSON.stringify(stops || null);
  if (!stops || key === levelsKey) return;
  levelsKey = key;
  LUT = colourTable(stops);
}
function setStatus(text, error) {
  statusLine.textContent = text;
  statusLine.classList.toggle("error", !!error);
}
function report(extra) {
  // Tell Python the values the hand left (it redraws its figures and downloads from them).
  send("streamlit:setComponentValue", {
    value: Object.assign({ values: Array.from(values), revision }, extra || {}),
    dataType: "json",
  });
}

// ---- the code the controls point at -------------------------------------------------

function codeAndLabels() {
  // latent.js holds the arithmetic (vae/synthesis/latent.py's, tested against it).
  let weights = args.label_weights ? Float32Array.from(args.label_weights) : null;
  let z;
  if (args.mode === "sliders") {
    z = alongDirections(args.centre, args.directions, args.spread, values, args.residual);
  } else if (args.mode === "alpha") {
    const t = values[0];
    z = (args.interpolation === "slerp" ? slerp : lerp)(args.code_a, args.code_b, t);
    if (args.weights_a) weights = mixWeights(args.weights_a, args.weights_b, t);
  } else {
    z = alongDirections(args.centre, args.axes, [1, 1], values, null);
  }
  return { z, weights };
}

// Sounds are made in a worker (sound_worker.js): the page's main thread keeps drawing
// frames and taking pointer moves meanwhile. One job in flight; moves that come meanwhile
// are folded into the next (the latest position wins), except that a full-quality job is
// superseded at once.
const worker = new Worker("sound_worker.js");
const wasmPaths = new URL("node_modules/onnxruntime-web/dist/", location.href).href;
let inFlight = null; // {id, quick}
let nextId = 0;

function renderSound() {
  if (inFlight && inFlight.quick) { pending = true; return; }
  pending = false;
  const { z, weights } = codeAndLabels();
  const quick = live;
  const f = args.feature_config;
  inFlight = { id: ++nextId, quick };
  worker.postMessage({
    id: inFlight.id, modelUrl: new URL(args.model_url, location.href).href, wasmPaths,
    z, weights: args.conditional ? weights : null, config: f, melPinv: args.mel_pinv,
    phase: args.phase, quick, liveIters: LIVE_ITERS, chunkIters: CHUNK_ITERS,
  });
}

worker.onmessage = (event) => {
  const r = event.data;
  if (!inFlight || r.id !== inFlight.id) return; // an older job's answer
  inFlight = null;
  if (r.error && r.load && !reloadAsked.has(args.model_url)) {
    // The model file is gone (its export was cleaned up) or broken: ask Python for the
    // current export once per URL; the rerun brings a new model_url and a new sound.
    reloadAsked.add(args.model_url);
    root.dataset.state = "reloading";
    setStatus("Fetching the in-browser player again...");
    report({ reload: args.model_url });
    return;
  }
  if (r.error) {
    root.dataset.state = "error";
    setStatus(`In-browser sound failed: ${r.error}`, true);
    send("streamlit:setComponentValue", {
      value: { error: r.error, values: values ? Array.from(values) : null },
      dataType: "json",
    });
    return;
  }
  const f = args.feature_config;
  play(r.wave, f.sample_rate);
  let stamp = Date.now();
  if (stamp <= wasRendered) stamp = wasRendered + 1; // every new sound changes it
  wasRendered = stamp;
  root.dataset.renderedAt = String(stamp); // the sound is playing: now the picture
  drawSpectrogram(r.features, r.shape);
  // What was heard, for tests and the curious (devtools): code, features, audio.
  window.soundPad = { code: Array.from(r.code), features: Array.from(r.features),
                      shape: r.shape, wave: Array.from(r.wave), quick: r.quick };
  root.dataset.decodeMs = r.decodeMs.toFixed(1);
  root.dataset.phaseMs = r.phaseMs.toFixed(1);
  root.dataset.state = "ready";
  setStatus(`In the browser: decoder ${r.decodeMs.toFixed(0)} ms, Griffin-Lim ` +
            `${r.phaseMs.toFixed(0)} ms (${r.quick ? LIVE_ITERS + " warm" :
            args.phase.n_iter} iterations, momentum ${args.phase.momentum})`);
  if (pending) renderSound();
};
worker.onerror = (event) => {
  root.dataset.state = "error";
  setStatus(`In-browser sound failed: ${event.message}`, true);
};

function ensureAudio(rate) {
  if (audio && audio.ctx.sampleRate === rate) return audio;
  try {
    const ctx = new AudioContext({ sampleRate: rate });
    const gain = ctx.createGain();
    gain.gain.value = args.volume ?? 0.8;
    gain.connect(ctx.destination);
    audio = { ctx, gain, source: null, fade: null, startedAt: 0, duration: 1 };
  } catch (err) {
    audio = null; // no Web Audio: the sound is still drawn and the server path plays it
  }
  return audio;
}

function play(wave, rate) {
  if (args.muted || !interacted) return;
  const a = ensureAudio(rate);
  if (!a) return;
  if (a.ctx.state === "suspended") a.ctx.resume();
  let peak = 1e-9;
  for (let i = 0; i < wave.length; i++) peak = Math.max(peak, Math.abs(wave[i]));
  const buffer = a.ctx.createBuffer(1, wave.length, rate);
  const data = buffer.getChannelData(0);
  for (let i = 0; i < wave.length; i++) data[i] = wave[i] / peak;
  const now = a.ctx.currentTime;
  // Carry on from where the last sound was: a drag morphs the sound rather than restarting it.
  let offset = 0;
  if (a.source) {
    offset = ((now - a.startedAt) % a.duration + a.duration) % a.duration;
    const old = a.source, oldFade = a.fade;
    oldFade.gain.setValueAtTime(oldFade.gain.value, now);
    oldFade.gain.linearRampToValueAtTime(0, now + FADE);
    old.stop(now + FADE + 0.005);
  }
  const source = a.ctx.createBufferSource();
  source.buffer = buffer;
  source.loop = held;
  const fade = a.ctx.createGain();
  fade.gain.setValueAtTime(a.source ? 0 : 1, now);
  if (a.source) fade.gain.linearRampToValueAtTime(1, now + FADE);
  source.connect(fade).connect(a.gain);
  source.start(now, offset);
  source.onended = () => { if (a.source === source) a.source = null; };
  a.source = source; a.fade = fade;
  a.startedAt = now - offset; a.duration = buffer.duration;
}

function stopLooping() {
  held = false;
  if (audio && audio.source) audio.source.loop = false; // finish the clip, then stop
}

function drawSpectrogram(feats, shape) {
  const [rows, frames] = shape; // the decoder's output: the export's feature_shape
  const ctx = canvas.getContext("2d");
  const image = ctx.createImageData(frames, rows);
  for (let r = 0; r < rows; r++) {
    const y = rows - 1 - r; // low frequencies at the bottom
    for (let t = 0; t < frames; t++) {
      const c = 3 * Math.round(Math.min(Math.max(feats[r * frames + t], 0), 1) * 255);
      const o = (y * frames + t) * 4;
      image.data[o] = LUT[c]; image.data[o + 1] = LUT[c + 1]; image.data[o + 2] = LUT[c + 2];
      image.data[o + 3] = 255;
    }
  }
  const off = new OffscreenCanvas(frames, rows);
  off.getContext("2d").putImageData(image, 0, 0);
  ctx.imageSmoothingEnabled = false;
  ctx.drawImage(off, 0, 0, canvas.width, canvas.height);
}

// ---- controls ---------------------------------------------------------------------------

function onMove() {
  root.dataset.inputAt = String(Date.now());
  live = true;
  clearTimeout(settleTimer);
  if (!held) settleTimer = setTimeout(onRelease, SETTLE_MS); // keys have no "let go"
  renderSound();
}

function onHold() {
  held = true;
  clearTimeout(settleTimer);
}

function onRelease() {
  clearTimeout(settleTimer);
  stopLooping();
  live = false;
  report(); // Python redraws its figures and downloads once, where the hand stopped
  renderSound(); // the full-quality phase once the hand is still
}

// A slider's value above its thumb and its track filled up to it, as Streamlit draws them.
function showValue(input, out, value) {
  const lo = parseFloat(input.min), hi = parseFloat(input.max);
  const share = hi > lo ? Math.min(Math.max((value - lo) / (hi - lo), 0), 1) : 0;
  input.style.setProperty("--fill", `${(share * 100).toFixed(2)}%`);
  out.textContent = Number(value).toFixed(2);
  out.style.left = `calc(6px + (100% - 12px) * ${share.toFixed(4)})`; // the thumb's centre
}

function buildSliders(names, lo, hi, step) {
  controls.innerHTML = "";
  names.forEach((name, k) => {
    const row = document.createElement("div");
    row.className = "axis";
    const id = `axis-${k}`;
    row.innerHTML = `<label for="${id}"></label><div class="track">` +
      `<output for="${id}"></output><input type="range" id="${id}"></div>`;
    row.querySelector("label").textContent = name;
    const input = row.querySelector("input"), out = row.querySelector("output");
    Object.assign(input, { min: lo, max: hi, step, value: values[k] });
    showValue(input, out, values[k]);
    input.addEventListener("pointerdown", onHold);
    input.addEventListener("input", () => {
      values[k] = parseFloat(input.value);
      showValue(input, out, values[k]);
      onMove();
    });
    input.addEventListener("pointerup", onRelease);
    controls.appendChild(row);
  });
}

function syncSliders() {
  controls.querySelectorAll("input[type=range]").forEach((input, k) => {
    input.value = values[k];
    showValue(input, input.parentElement.querySelector("output"), values[k]);
  });
}

function buildPad() {
  controls.innerHTML = "";
  const pad = document.createElement("canvas");
  pad.id = "pad";
  pad.width = args.pad_size || 320;
  pad.height = args.pad_size || 320;
  pad.setAttribute("aria-label", "latent pad: drag to move through the map");
  pad.tabIndex = 0;
  controls.appendChild(pad);
  const caption = document.createElement("div");
  caption.id = "pad-caption";
  caption.className = "row";
  controls.appendChild(caption);
  const [x0, x1, y0, y1] = args.extent;
  const toPad = (x, y) => [((x - x0) / (x1 - x0)) * pad.width, (1 - (y - y0) / (y1 - y0)) * pad.height];
  const fromPad = (px, py) => [x0 + (px / pad.width) * (x1 - x0), y0 + (1 - py / pad.height) * (y1 - y0)];
  // The clips are drawn once; a move only redraws the marker over them.
  const background = new OffscreenCanvas(pad.width, pad.height);
  const bg = background.getContext("2d");
  const palette = args.palette || ["#1f77b4"];
  bg.globalAlpha = 0.5;
  for (const [x, y, c] of args.points || []) {
    const [px, py] = toPad(x, y);
    bg.fillStyle = palette[(c >= 0 ? c : 0) % palette.length];
    bg.fillRect(px - 1.5, py - 1.5, 3, 3);
  }
  const draw = () => {
    const ctx = pad.getContext("2d");
    ctx.clearRect(0, 0, pad.width, pad.height);
    ctx.drawImage(background, 0, 0);
    const [cx, cy] = toPad(values[0], values[1]);
    ctx.strokeStyle = cssVariable("--text") || "#31333f"; ctx.lineWidth = 2;
    ctx.beginPath(); ctx.arc(cx, cy, 7, 0, 2 * Math.PI); ctx.stroke();
    caption.textContent = `${args.axis_names[0]} ${values[0].toFixed(2)}, ` +
      `${args.axis_names[1]} ${values[1].toFixed(2)}`;
  };
  const moveTo = (event) => {
    const r = pad.getBoundingClientRect();
    const px = Math.min(Math.max(event.clientX - r.left, 0), pad.width);
    const py = Math.min(Math.max(event.clientY - r.top, 0), pad.height);
    [values[0], values[1]] = fromPad(px, py);
    draw();
    onMove();
  };
  pad.addEventListener("pointerdown", (e) => {
    onHold();
    try { pad.setPointerCapture(e.pointerId); } catch (err) { /* no such pointer: a script */ }
    moveTo(e);
  });
  pad.addEventListener("pointermove", (e) => { if (held) moveTo(e); });
  pad.addEventListener("pointerup", () => { onRelease(); });
  pad.addEventListener("keydown", (e) => {
    const step = (x1 - x0) / 50;
    const d = { ArrowLeft: [-step, 0], ArrowRight: [step, 0], ArrowUp: [0, step], ArrowDown: [0, -step] }[e.key];
    if (!d) return;
    e.preventDefault();
    values[0] = Math.min(Math.max(values[0] + d[0], x0), x1);
    values[1] = Math.min(Math.max(values[1] + d[1], y0), y1);
    draw();
    onMove();
  });
  draw();
  return draw;
}

let redrawPad = null;

function onRender(event) {
  args = event.data.args;
  window.padArgs = args; // for tests and devtools
  window.padTheme = event.data.theme;
  applyTheme(event.data.theme);
  useLevels(args.colourscale);
  const key = JSON.stringify([args.mode, args.names, args.extent, args.model_url,
                              args.points ? args.points.length : 0, args.range]);
  const newValues = revision !== args.revision || !values;
  if (newValues) {
    values = Float64Array.from(args.values);
    revision = args.revision;
  }
  if (key !== layoutKey) {
    layoutKey = key;
    if (args.mode === "pad") redrawPad = buildPad();
    else {
      redrawPad = null;
      const lo = args.mode === "alpha" ? 0 : -args.range, hi = args.mode === "alpha" ? 1 : args.range;
      buildSliders(args.names, lo, hi, args.step || 0.01);
    }
  } else if (newValues) {
    if (redrawPad) redrawPad(); else syncSliders();
  }
  setHeight();
  if (root.dataset.state === "reloading" && reloadAsked.has(args.model_url)) {
    // Python answered the request with the same file (it allows a few a session): give up.
    root.dataset.state = "error";
    setStatus("In-browser sound failed: the model did not load; switch it off to use the " +
              "server.", true);
    return;
  }
  const { values: _v, revision: _r, ...rest } = args;
  const soundKey = JSON.stringify(rest);
  if (newValues || soundKey !== heardKey) {
    heardKey = soundKey;
    renderSound(); // the sound of what Python shows (a new label, clip or random draw)
  }
}

window.addEventListener("message", (event) => {
  if (event.data && event.data.type === "streamlit:render") onRender(event);
});
window.addEventListener("resize", setHeight);
send("streamlit:componentReady", { apiVersion: 1 });
