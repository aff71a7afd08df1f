// The sound pad's worker: decodes a code (ONNX Runtime Web, wasm) and recovers its phase
// (griffin_lim.js) off the page's main thread, so the page keeps drawing frames and taking
// pointer moves while a sound is made.
//
// In:  {id, modelUrl, wasmPaths, z, weights, config, melPinv, phase, quick, liveIters,
//       chunkIters}; phase is the export manifest's (export.json "phase": method, n_iter,
//       momentum...), the very settings the server's Griffin-Lim uses.
// Out: {id, code, features, shape, wave, decodeMs, phaseMs, quick} (shape: the features'
//      [rows, frames], the decoder's output dims as the export's feature_shape says them),
//      or {id, error, load}; load is
//      true when the model file could not be loaded (a 404: its export was removed), so the
//      page asks Python for the current export instead of failing.
// A newer job supersedes a full-quality one between its chunks of iterations.

"use strict";

importScripts("node_modules/onnxruntime-web/dist/ort.wasm.min.js", "griffin_lim.js");

let session = null, sessionUrl = null;
let gl = null, glKey = null;
let latest = 0; // id of the newest job
let decoding = Promise.resolve();

async function ensureSession(url, wasmPaths) {
  if (session && sessionUrl === url) return session;
  ort.env.wasm.wasmPaths = wasmPaths;
  ort.env.wasm.numThreads = 1; // a component iframe is not cross-origin isolated
  try {
    session = await ort.InferenceSession.create(url, {
      executionProviders: ["wasm"],
      graphOptimizationLevel: "all",
    });
  } catch (err) {
    session = null;
    sessionUrl = null;
    const failed = new Error(`could not load the model (${(err && err.message) || err})`);
    failed.load = true;
    throw failed;
  }
  sessionUrl = url;
  return session;
}

function ensureGriffinLim(config, melPinv) {
  const key = JSON.stringify(config);
  if (!gl || glKey !== key) {
    gl = new GriffinLim(Object.assign({}, config, { mel_pinv: melPinv }));
    glKey = key;
  }
  return gl;
}

const nextTask = () => new Promise((resolve) => setTimeout(resolve, 0));

async function render(job) {
  const t0 = performance.now();
  const s = await ensureSession(job.modelUrl, job.wasmPaths);
  const feeds = { z: new ort.Tensor("float32", job.z, [1, job.z.length]) };
  if (job.weights) {
    feeds.label_weights = new ort.Tensor("float32", job.weights, [1, job.weights.length]);
  }
  // One run at a time on the session: a new job may arrive while an older one decodes.
  const run = decoding.then(() => s.run(feeds));
  decoding = run.catch(() => {});
  const out = await run;
  const features = Float32Array.from(out.features.data); // (rows x frames)
  const shape = Array.from(out.features.dims.slice(-2), Number); // [rows, frames]
  const t1 = performance.now();
  if (job.id !== latest) return; // superseded while decoding
  const phase = job.phase;
  if (!phase || phase.method !== "griffin-lim") {
    // The server would play a vocoder: a Griffin-Lim here would be another sound.
    const method = phase && phase.method;
    throw new Error(`the export's phase is ${method}; this player has only Griffin-Lim`);
  }
  const g = ensureGriffinLim(job.config, job.melPinv);
  g.begin(features, phase.momentum, job.quick);
  let phaseMs = 0;
  if (job.quick) {
    g.iterate(job.liveIters);
  } else {
    // Full quality once the hand is still, a few iterations at a time.
    for (let done = 0; done < phase.n_iter; ) {
      const n = Math.min(job.chunkIters, phase.n_iter - done);
      const a = performance.now();
      g.iterate(n);
      phaseMs += performance.now() - a;
      done += n;
      await nextTask();
      if (job.id !== latest) return; // the hand moved again: its job goes first
    }
  }
  const t2 = performance.now();
  const wave = Float32Array.from(g.finish());
  phaseMs = (job.quick ? t2 - t1 : phaseMs) + (performance.now() - t2);
  postMessage(
    { id: job.id, code: job.z, features, shape, wave, decodeMs: t1 - t0, phaseMs,
      quick: job.quick },
    [features.buffer, wave.buffer],
  );
}

onmessage = async (event) => {
  const job = event.data;
  latest = job.id;
  try {
    await render(job);
  } catch (err) {
    const error = String((err && err.message) || err);
    postMessage(err && err.load ? { id: job.id, error, load: true } : { id: job.id, error });
  }
};
