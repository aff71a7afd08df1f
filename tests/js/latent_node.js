// Runs the sound pad's latent arithmetic (ui/sound_pad/frontend/latent.js) under node for
// tests/unit/test_sound_pad.py: reads cases as JSON from argv[2], writes results to argv[3].
"use strict";
const fs = require("fs");
const path = require("path");
const L = require(path.join(__dirname, "../../ui/sound_pad/frontend/latent.js"));

const job = JSON.parse(fs.readFileSync(process.argv[2], "utf8"));
const out = job.pairs.map(([a, b]) => ({
  lerp: job.ts.map((t) => Array.from(L.lerp(a, b, t))),
  slerp: job.ts.map((t) => Array.from(L.slerp(a, b, t))),
}));
const along = Array.from(
  L.alongDirections(job.centre, job.directions, job.spread, job.amounts, job.residual),
);
const mix = job.ts.map((t) => Array.from(L.mixWeights(job.wa, job.wb, t)));
fs.writeFileSync(process.argv[3], JSON.stringify({ pairs: out, along, mix }));
