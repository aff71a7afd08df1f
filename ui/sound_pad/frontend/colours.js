// The sound pad's look, taken from the page around it: the spectrogram's colour map is the
// server's (ui/figures.py LEVELS, sent by Python as plotly's [position, colour] stops and
// interpolated in RGB as plotly does), and Streamlit's theme (the render event's `theme`)
// becomes CSS variables, and its font faces are borrowed from the page, so the pad reads as
// part of the page in any theme.
// Tested under node by tests/js/colours_node.js against plotly's own sampling.

"use strict";

// "rgb(r, g, b)", "rgba(r, g, b, a)", "#rrggbb" or "#rgb" -> [r, g, b] (0-255).
function parseColour(text) {
  const s = String(text).trim();
  const rgb = /^rgba?\(([^)]*)\)$/i.exec(s);
  if (rgb) return rgb[1].split(",").slice(0, 3).map((v) => parseFloat(v));
  let hex = s.replace(/^#/, "");
  if (hex.length === 3) hex = hex.split("").map((c) => c + c).join("");
  if (!/^[0-9a-f]{6}$/i.test(hex)) throw new Error(`not a colour: ${text}`);
  return [0, 2, 4].map((i) => parseInt(hex.slice(i, i + 2), 16));
}

// A lookup table of `size` colours over [0, 1] from plotly colourscale stops: entry i is the
// colour at i / (size - 1), linear in RGB between the two stops around it, rounded.
// Returns a Uint8ClampedArray of size * 3 (r, g, b per entry).
function colourTable(stops, size = 256) {
  const pos = stops.map((s) => Number(s[0]));
  const rgb = stops.map((s) => parseColour(s[1]));
  const table = new Uint8ClampedArray(size * 3);
  let k = 0;
  for (let i = 0; i < size; i++) {
    const v = i / (size - 1);
    while (k < pos.length - 2 && v > pos[k + 1]) k++;
    const span = pos[k + 1] - pos[k];
    const f = span > 0 ? Math.min(Math.max((v - pos[k]) / span, 0), 1) : 0;
    for (let c = 0; c < 3; c++) table[i * 3 + c] = Math.round(rgb[k][c] + (rgb[k + 1][c] - rgb[k][c]) * f);
  }
  return table;
}

// Streamlit's theme (primaryColor, backgroundColor, secondaryBackgroundColor, textColor,
// font) as the CSS variables the pad's stylesheet uses; a field the theme lacks is left to
// the stylesheet's default (Streamlit's light theme).
const THEME_VARIABLES = {
  primaryColor: "--primary",
  backgroundColor: "--background",
  secondaryBackgroundColor: "--secondary-background",
  textColor: "--text",
  font: "--font",
};
function themeVariables(theme) {
  const out = {};
  for (const [field, name] of Object.entries(THEME_VARIABLES)) {
    if (theme && typeof theme[field] === "string" && theme[field]) out[name] = theme[field];
  }
  return out;
}

// The theme names its font; the faces are declared in the page around the frame (same
// origin), so they are declared here too, with their URLs made absolute.
const borrowed = new Set(); // the faces declared so far
function borrowFonts(family) {
  const wanted = family.split(",").map((f) => f.trim().replace(/^["']|["']$/g, "").toLowerCase());
  let sheets;
  try { sheets = Array.from(window.parent.document.styleSheets); } catch (err) { return; }
  const rules = [];
  for (const sheet of sheets) {
    let list;
    try { list = sheet.cssRules; } catch (err) { continue; } // another origin's sheet
    for (const rule of list) {
      if (!(rule instanceof window.parent.CSSFontFaceRule)) continue;
      const name = rule.style.getPropertyValue("font-family").trim()
        .replace(/^["']|["']$/g, "").toLowerCase();
      if (!wanted.includes(name) || borrowed.has(rule.cssText)) continue;
      borrowed.add(rule.cssText);
      const base = sheet.href || window.parent.location.href;
      rules.push(rule.cssText.replace(/url\((["']?)([^"')]+)\1\)/g,
                                      (_, q, url) => `url("${new URL(url, base).href}")`));
    }
  }
  if (!rules.length) return;
  const style = document.createElement("style");
  style.textContent = rules.join("\n");
  document.head.appendChild(style);
}

function cssVariable(name) {
  return getComputedStyle(document.documentElement).getPropertyValue(name).trim();
}

if (typeof module !== "undefined") module.exports = { parseColour, colourTable, themeVariables };
