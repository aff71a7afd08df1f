// Where the controls point in latent space: the same arithmetic as vae/synthesis/latent.py, so the
// page decodes the code the server would (tests/unit/test_sound_pad.py compares them under node).

"use strict";

// vae.synthesis.latent.along_directions: centre + residual + sum_k amounts[k] spread[k] directions[k].
function alongDirections(centre, directions, spread, amounts, residual) {
  const D = centre.length, z = new Float32Array(D);
  for (let d = 0; d < D; d++) z[d] = centre[d] + (residual ? residual[d] : 0);
  for (let k = 0; k < directions.length; k++) {
    const a = amounts[k] * spread[k];
    for (let d = 0; d < D; d++) z[d] += a * directions[k][d];
  }
  return z;
}

// vae.synthesis.latent.lerp
function lerp(a, b, t) {
  return Float32Array.from(a, (v, d) => v + (b[d] - v) * t);
}

// vae.synthesis.latent.slerp: great circle between the directions, the norm moved linearly; nearly
// parallel codes fall back to lerp's weights.
function slerp(a, b, t) {
  const D = a.length, out = new Float32Array(D);
  let na = 0, nb = 0, dot = 0;
  for (let d = 0; d < D; d++) { na += a[d] * a[d]; nb += b[d] * b[d]; }
  na = Math.sqrt(na); nb = Math.sqrt(nb);
  const ca = Math.max(na, 1e-12), cb = Math.max(nb, 1e-12);
  for (let d = 0; d < D; d++) dot += (a[d] / ca) * (b[d] / cb);
  const omega = Math.acos(Math.min(1, Math.max(-1, dot)));
  const s = Math.sin(omega);
  const safe = Math.abs(s) > 1e-4;
  const wa = safe ? Math.sin((1 - t) * omega) / Math.max(s, 1e-12) : 1 - t;
  const wb = safe ? Math.sin(t * omega) / Math.max(s, 1e-12) : t;
  let n = 0;
  for (let d = 0; d < D; d++) { out[d] = wa * (a[d] / ca) + wb * (b[d] / cb); n += out[d] ** 2; }
  n = Math.max(Math.sqrt(n), 1e-12);
  const norm = na + (nb - na) * t;
  for (let d = 0; d < D; d++) out[d] = (out[d] / n) * norm;
  return out;
}

// Synthesiser._mixed_labels: the label's one-hot weight moves from A's to B's with t.
function mixWeights(wa, wb, t) {
  return Float32Array.from(wa, (v, i) => v * (1 - t) + wb[i] * t);
}

if (typeof module !== "undefined") module.exports = { alongDirections, lerp, slerp, mixWeights };
