// Runs the sound pad's Griffin-Lim (ui/sound_pad/frontend/griffin_lim.js) under node for
// tests/unit/test_sound_pad.py: reads {cfg, feats, n_iter, momentum} as JSON from argv[2],
// writes the waveform as a JSON list to argv[3].
"use strict";
const fs = require("fs");
const path = require("path");
const { GriffinLim } = require(path.join(__dirname, "../../ui/sound_pad/frontend/griffin_lim.js"));

const job = JSON.parse(fs.readFileSync(process.argv[2], "utf8"));
const gl = new GriffinLim(job.cfg);
const wave = gl.run(Float64Array.from(job.feats), job.n_iter, job.momentum, false);
fs.writeFileSync(process.argv[3], JSON.stringify(Array.from(wave)));
