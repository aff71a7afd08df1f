// Features -> audio in the page: the same arithmetic as vae.audio.features.features_to_waveform
// (torchaudio's GriffinLim with momentum, zero-phase start, centred Hann STFT), in plain JS
// so a sound follows the hand without a round trip to the server.
//
// Shapes follow the library: features are (rows, frames) row-major, as many rows as the
// decoder gives (STFT bins, or a filter bank's bands: the export's feature_shape); spectra
// are kept frame-major: (frames, n_fft / 2 + 1).
// Runs in a browser page and in node (tests/unit/test_sound_pad.py compares it with torch).

"use strict";

class RealFFT {
  // Real FFT of size n (a power of two) through one complex FFT of size n / 2.
  constructor(n) {
    if (n < 4 || (n & (n - 1)) !== 0) throw new Error(`n_fft=${n}: must be a power of two`);
    this.n = n;
    const h = n / 2;
    this.h = h;
    this.rev = new Uint32Array(h);
    const bits = Math.log2(h);
    for (let i = 0; i < h; i++) {
      let r = 0;
      for (let b = 0; b < bits; b++) r |= ((i >> b) & 1) << (bits - 1 - b);
      this.rev[i] = r;
    }
    this.cos = new Float64Array(h / 2 || 1);
    this.sin = new Float64Array(h / 2 || 1);
    for (let i = 0; i < h / 2; i++) {
      this.cos[i] = Math.cos((2 * Math.PI * i) / h);
      this.sin[i] = -Math.sin((2 * Math.PI * i) / h);
    }
    // Twiddles that split the packed half-size transform into the real one.
    this.wr = new Float64Array(h + 1);
    this.wi = new Float64Array(h + 1);
    for (let k = 0; k <= h; k++) {
      this.wr[k] = Math.cos((2 * Math.PI * k) / n);
      this.wi[k] = -Math.sin((2 * Math.PI * k) / n);
    }
    this.re = new Float64Array(h);
    this.im = new Float64Array(h);
  }

  _complex(re, im, inverse) {
    const h = this.h, rev = this.rev;
    for (let i = 0; i < h; i++) {
      const j = rev[i];
      if (j > i) {
        let t = re[i]; re[i] = re[j]; re[j] = t;
        t = im[i]; im[i] = im[j]; im[j] = t;
      }
    }
    const sign = inverse ? -1 : 1;
    for (let size = 2; size <= h; size <<= 1) {
      const half = size >> 1, step = h / size;
      for (let start = 0; start < h; start += size) {
        for (let k = 0; k < half; k++) {
          const c = this.cos[k * step], s = sign * this.sin[k * step];
          const a = start + k, b = a + half;
          const tr = re[b] * c - im[b] * s, ti = re[b] * s + im[b] * c;
          re[b] = re[a] - tr; im[b] = im[a] - ti;
          re[a] += tr; im[a] += ti;
        }
      }
    }
  }

  // x (n real samples) -> outRe, outIm (n / 2 + 1 bins).
  forward(x, xOffset, outRe, outIm, outOffset) {
    const h = this.h, re = this.re, im = this.im;
    for (let i = 0; i < h; i++) { re[i] = x[xOffset + 2 * i]; im[i] = x[xOffset + 2 * i + 1]; }
    this._complex(re, im, false);
    for (let k = 0; k <= h; k++) {
      const a = k % h, b = (h - k) % h;
      const er = 0.5 * (re[a] + re[b]), ei = 0.5 * (im[a] - im[b]);
      const or = 0.5 * (im[a] + im[b]), oi = -0.5 * (re[a] - re[b]);
      outRe[outOffset + k] = er + this.wr[k] * or - this.wi[k] * oi;
      outIm[outOffset + k] = ei + this.wr[k] * oi + this.wi[k] * or;
    }
  }

  // n / 2 + 1 bins -> n real samples (unscaled by 1/n, like the sum form; caller scales).
  inverse(inRe, inIm, inOffset, y) {
    const h = this.h, re = this.re, im = this.im;
    for (let k = 0; k < h; k++) {
      // Imaginary parts of DC and Nyquist carry nothing in a real signal (as irfft).
      const ar = inRe[inOffset + k], ai = k === 0 ? 0 : inIm[inOffset + k];
      const br = inRe[inOffset + h - k], bi = k === 0 ? 0 : -inIm[inOffset + h - k];
      const er = ar + br, ei = ai + bi; // even part
      const dr = ar - br, di = ai - bi; // odd part times twiddle
      const cr = this.wr[k], ci = -this.wi[k];
      const or = dr * cr - di * ci, oi = dr * ci + di * cr;
      re[k] = er - oi; im[k] = ei + or;
    }
    this._complex(re, im, true);
    for (let i = 0; i < h; i++) { y[2 * i] = re[i]; y[2 * i + 1] = im[i]; }
  }
}

class GriffinLim {
  // cfg: {n_fft, hop_length, clip_samples, top_db, mel_pinv?}: mel_pinv (stft bins x rows)
  // where the rows are a filter bank (the export's), else the rows are the first STFT bins.
  constructor(cfg) {
    this.cfg = cfg;
    const n = cfg.n_fft;
    this.fft = new RealFFT(n);
    this.bins = n / 2 + 1;
    this.frames = 1 + Math.floor(cfg.clip_samples / cfg.hop_length);
    this.window = new Float64Array(n);
    let sum = 0;
    for (let i = 0; i < n; i++) {
      this.window[i] = 0.5 - 0.5 * Math.cos((2 * Math.PI * i) / n); // periodic, as torch
      sum += this.window[i];
    }
    this.reference = sum / 2; // a full-scale sine's magnitude: feature 1 (0 dB)
    const total = n + cfg.hop_length * (this.frames - 1);
    this.ola = new Float64Array(total);
    this.envelope = new Float64Array(total);
    for (let t = 0; t < this.frames; t++) {
      for (let i = 0; i < n; i++) this.envelope[t * cfg.hop_length + i] += this.window[i] ** 2;
    }
    this.padded = new Float64Array(cfg.clip_samples + n);
    this.frame = new Float64Array(n);
    const size = this.frames * this.bins;
    this.mag = new Float64Array(size);
    this.ar = new Float64Array(size); // current phase (unit complex), frame-major
    this.ai = new Float64Array(size);
    this.rr = new Float64Array(size); // rebuilt spectrum
    this.ri = new Float64Array(size);
    this.pr = new Float64Array(size); // previous rebuilt spectrum (momentum)
    this.pi = new Float64Array(size);
    this.wave = new Float64Array(cfg.clip_samples);
    this.warm = false;
  }

  // features (rows x frames, row-major, in [0, 1]) -> this.mag (frames x stft bins). The
  // rows are the features' own (their length over the frames), never worked out here.
  setFeatures(feats) {
    const cfg = this.cfg, frames = this.frames, bins = this.bins;
    const rows = feats.length / frames;
    const expected = cfg.mel_pinv ? cfg.mel_pinv[0].length : bins;
    if (!Number.isInteger(rows) || rows > expected || (cfg.mel_pinv && rows !== expected)) {
      throw new Error(`features of ${feats.length} values are not rows of ${frames} frames ` +
                      `for this export (${cfg.mel_pinv ? "" : "at most "}${expected} rows)`);
    }
    const lin = new Float64Array(rows * frames);
    for (let i = 0; i < rows * frames; i++) {
      const f = Math.min(Math.max(feats[i], 0), 1);
      lin[i] = f > 0 ? this.reference * Math.pow(10, ((f - 1) * cfg.top_db) / 20) : 0;
    }
    this.mag.fill(0);
    if (cfg.mel_pinv) {
      const pinv = cfg.mel_pinv; // (stft bins) x (rows)
      for (let k = 0; k < bins; k++) {
        const row = pinv[k];
        for (let t = 0; t < frames; t++) {
          let s = 0;
          for (let m = 0; m < rows; m++) s += row[m] * lin[m * frames + t];
          this.mag[t * bins + k] = Math.max(s, 0);
        }
      }
    } else {
      for (let k = 0; k < rows; k++) {
        for (let t = 0; t < frames; t++) this.mag[t * bins + k] = lin[k * frames + t];
      }
    }
  }

  // Inverse STFT of mag * phase into this.wave (centred, window-square normalised).
  _istft(phR, phI, useMag) {
    const cfg = this.cfg, n = cfg.n_fft, hop = cfg.hop_length, bins = this.bins;
    const ola = this.ola, frame = this.frame, w = this.window;
    ola.fill(0);
    const re = this.rr, im = this.ri; // scratch: overwritten by the next _stft anyway
    for (let i = 0; i < re.length; i++) {
      const m = useMag ? this.mag[i] : 1;
      re[i] = m * phR[i];
      im[i] = m * phI[i];
    }
    for (let t = 0; t < this.frames; t++) {
      this.fft.inverse(re, im, t * bins, frame);
      const base = t * hop;
      for (let i = 0; i < n; i++) ola[base + i] += (frame[i] / n) * w[i];
    }
    const start = n / 2;
    for (let i = 0; i < cfg.clip_samples; i++) {
      const j = start + i;
      const env = this.envelope[j];
      this.wave[i] = env > 1e-11 ? ola[j] / env : 0;
    }
  }

  // Centred STFT (reflect padding) of this.wave into this.rr / this.ri.
  _stft() {
    const cfg = this.cfg, n = cfg.n_fft, hop = cfg.hop_length, half = n / 2;
    const L = cfg.clip_samples, p = this.padded, x = this.wave, w = this.window;
    for (let i = 0; i < L; i++) p[half + i] = x[i];
    for (let i = 1; i <= half; i++) {
      p[half - i] = x[i];
      p[half + L - 1 + i] = x[L - 1 - i];
    }
    const frame = this.frame;
    for (let t = 0; t < this.frames; t++) {
      const base = t * hop;
      for (let i = 0; i < n; i++) frame[i] = p[base + i] * w[i];
      this.fft.forward(frame, 0, this.rr, this.ri, t * this.bins);
    }
  }

  // Phase recovery. warm: start from the last call's phase (a drag moves the spectrogram a
  // little at a time, so a few iterations from there sound as good as many from zero).
  run(feats, nIter, momentum, warm) {
    this.begin(feats, momentum, warm);
    this.iterate(nIter);
    return this.finish();
  }

  // run() in steps, so a caller can stop between iterations when the hand moves again.
  begin(feats, momentum, warm) {
    this.setFeatures(feats);
    if (!(warm && this.warm)) {
      this.ar.fill(1);
      this.ai.fill(0);
    }
    this.pr.fill(0);
    this.pi.fill(0);
    this.momentum = momentum;
  }

  iterate(nIter) {
    const size = this.ar.length, k = this.momentum / (1 + this.momentum);
    const ar = this.ar, ai = this.ai, rr = this.rr, ri = this.ri, pr = this.pr, pi = this.pi;
    for (let it = 0; it < nIter; it++) {
      this._istft(ar, ai, true);
      this._stft();
      for (let i = 0; i < size; i++) {
        const a = rr[i] - k * pr[i], b = ri[i] - k * pi[i];
        const norm = Math.sqrt(a * a + b * b) + 1e-16;
        ar[i] = a / norm;
        ai[i] = b / norm;
        pr[i] = rr[i];
        pi[i] = ri[i];
      }
    }
    this.warm = true; // whatever was done is a good start for the next sound
  }

  finish() {
    this._istft(this.ar, this.ai, true);
    return this.wave;
  }
}

if (typeof module !== "undefined") module.exports = { RealFFT, GriffinLim };
