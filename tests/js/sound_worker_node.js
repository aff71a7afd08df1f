// Runs the sound pad's worker (ui/sound_pad/frontend/sound_worker.js) under node for
// tests/unit/test_sound_pad.py, with ONNX Runtime stubbed by a decoder that returns given
// features: reads {job, features, shape} as JSON from argv[2] (job as sound_pad.js posts it;
// shape: the features' [rows, frames]) and writes the worker's reply ({wave, shape} or
// {error}) as JSON to argv[3].
"use strict";
const fs = require("fs");
const path = require("path");
const vm = require("vm");

const FRONTEND = path.join(__dirname, "../../ui/sound_pad/frontend");
const { job, features, shape } = JSON.parse(fs.readFileSync(process.argv[2], "utf8"));
let reply = null;
const ort = {
  env: { wasm: {} },
  Tensor: class { constructor(type, data, dims) { Object.assign(this, { type, data, dims }); } },
  InferenceSession: {
    create: async (url) => {
      // A model URL naming "missing" answers as a removed export does: a failed load.
      if (url.includes("missing")) throw new Error("failed to load external data file");
      const data = Float32Array.from(features);
      return { run: async () => ({ features: { data, dims: [1, ...shape] } }) };
    },
  },
};
const context = vm.createContext({
  ort, performance, setTimeout, console, Float32Array, Float64Array, Uint32Array, Math,
  postMessage: (message) => { reply = message; },
  importScripts: (...files) => {
    for (const file of files) {
      if (file.endsWith("griffin_lim.js")) {
        // A worker's importScripts puts the script's classes in the global scope.
        const code = fs.readFileSync(path.join(FRONTEND, file), "utf8");
        vm.runInContext(`${code}\nglobalThis.GriffinLim = GriffinLim;`, context);
      }
    }
  },
});
vm.runInContext(fs.readFileSync(path.join(FRONTEND, "sound_worker.js"), "utf8"), context);
(async () => {
  await context.onmessage({ data: job });
  if (reply === null) throw new Error("the worker did not answer");
  let out = { wave: Array.from(reply.wave || []), shape: reply.shape };
  if (reply.error) out = reply.load ? { error: reply.error, load: true } : { error: reply.error };
  fs.writeFileSync(process.argv[3], JSON.stringify(out));
})();
