// Runs the sound pad's colour code (ui/sound_pad/frontend/colours.js) under node for
// tests/unit/test_sound_pad_look.py: reads a job as JSON from argv[2], writes to argv[3].
"use strict";
const fs = require("fs");
const path = require("path");
const C = require(path.join(__dirname, "../../ui/sound_pad/frontend/colours.js"));

const job = JSON.parse(fs.readFileSync(process.argv[2], "utf8"));
const table = Array.from(C.colourTable(job.stops, job.size));
const parsed = job.colours.map((c) => C.parseColour(c));
const variables = C.themeVariables(job.theme);
fs.writeFileSync(process.argv[3], JSON.stringify({ table, parsed, variables }));
