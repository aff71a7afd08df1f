"""The sound pad in a real browser: what the page plays while a slider moves is the
checkpoint's own decode (ONNX Runtime Web against PyTorch) and the library's Griffin-Lim,
every move makes a new sound (``data-rendered-at``), the server hears where the hand let go,
and with the pad switched off the page's own sliders come back.

Drives Debian's chromium through Playwright on the shipped checkpoint; skips, saying why,
without chromium, Playwright or the pad's bundle (``npm ci --prefix ui/sound_pad/frontend``).
Timings are in benchmarks/sound_pad_latency.py, not here.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from urllib.parse import urlsplit

import numpy as np
import pytest
import torch

from tests.browser import (
    PAD_FRAME,
    WATCH_JS,
    chromium_tab,
    go,
    key,
    pad_frame,
    pad_js,
    serve_app,
    settle,
    shot,
    with_shipped_checkpoint,
)
from ui.sound_pad import INSTALL, MODELS, RUNTIME
from vae.export.exporter import MANIFEST
from vae.synthesis.inference import Synthesiser
from vae.synthesis.latent import along_directions, checkpoint_axes

if not RUNTIME.is_file():
    pytest.skip(f"the sound pad is not installed: {INSTALL}", allow_module_level=True)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory):
    ws = tmp_path_factory.mktemp("pad-workspace")
    with_shipped_checkpoint(ws)
    return ws


@pytest.fixture(scope="module")
def page(workspace) -> Iterator:
    with (
        serve_app(workspace, "streamlit-sound-pad.log") as url,
        chromium_tab(url, timeout_ms=90_000) as tab,
    ):
        yield tab


def _sounds(page) -> int:
    return pad_js(page, "() => window.__sounds.length")


def test_synthesise_sliders_sound_while_they_move(page, workspace):
    go(page, "Synthesise")
    frame = pad_frame(page)
    pad_js(page, WATCH_JS)
    slider = frame.locator("#axis-0")
    slider.focus()
    for n in range(1, 5):
        slider.press("ArrowRight")  # step 0.05 along direction 1
        page.wait_for_function(
            "([sel, n]) => document.querySelector(sel).contentWindow.__sounds.length >= n",
            arg=[PAD_FRAME, n],
        )
    assert frame.locator("output[for='axis-0']").inner_text() == "0.20"

    # The code and features the page made are the checkpoint's: PyTorch decodes the same.
    synth = Synthesiser.load(workspace / "checkpoints" / "fsdd-digits")
    centre, directions, spread = checkpoint_axes(synth.checkpoint.path, synth.latent_dim, 8)
    amounts = np.zeros(len(directions), np.float32)
    amounts[0] = 0.2
    code = along_directions(centre, directions, spread, amounts)
    heard = pad_js(page, "() => window.soundPad")
    np.testing.assert_allclose(heard["code"], code, atol=1e-5)
    expected = synth.decode(torch.from_numpy(code)[None], [0])[0].numpy()  # "Say" is 0
    page_feats = np.array(heard["features"], np.float32).reshape(expected.shape)
    assert np.abs(page_feats - expected).max() < 1e-4

    # Once the hand is still: full-quality phase in the page, and the server hears the value.
    page.wait_for_function(
        f"() => document.querySelector({PAD_FRAME!r}).contentWindow.soundPad.quick === false"
    )
    final = pad_js(page, "() => window.soundPad")
    served = synth.to_audio(torch.from_numpy(expected))
    assert np.abs(np.array(final["wave"]) - served).max() < 1e-2 * np.abs(served).max()
    shown = ", ".join(f"{v:+.2f}" for v in code[:16])
    page.wait_for_selector(f"text=code: {shown}")
    settle(page)
    shot(page, "synthesise-sound-pad")


def test_a_random_sample_moves_the_pad_too(page):
    go(page, "Synthesise")
    frame = pad_frame(page)
    before = frame.locator("output[for='axis-0']").inner_text()
    page.locator(f"{key('synth-random')} button").click()
    settle(page)
    page.wait_for_function(
        "([sel, before]) => document.querySelector(sel).contentDocument"
        ".querySelector(\"output[for='axis-0']\").textContent !== before",
        arg=[PAD_FRAME, before],
    )


def test_switched_off_the_page_uses_its_own_sliders(page):
    go(page, "Synthesise")
    pad_frame(page)
    page.locator(f"{key('pad-toggle')} label").click()
    settle(page)
    page.wait_for_selector(f"{key('synth-dir-0')} input[type='range']")
    page.wait_for_function(f"() => !document.querySelector({PAD_FRAME!r})")  # gone
    page.locator(f"{key('pad-toggle')} label").click()  # back on for the next test
    settle(page)
    pad_frame(page)


def test_interpolate_alpha_sounds_while_it_moves(page, workspace):
    go(page, "Interpolate")
    frame = pad_frame(page)
    pad_js(page, WATCH_JS)
    slider = frame.locator("#axis-0")
    slider.focus()
    slider.press("ArrowRight")
    slider.press("ArrowRight")  # α 0.50 -> 0.52
    page.wait_for_function(
        f"() => document.querySelector({PAD_FRAME!r}).contentWindow.__sounds.length >= 2"
    )
    assert frame.locator("output[for='axis-0']").inner_text() == "0.52"
    # The page's code is the library's blend of A's and B's codes at that α.
    heard = pad_js(page, "() => window.soundPad")
    page.wait_for_selector("text=mix, α = 0.52")  # the server heard it once still
    settle(page)
    synth = Synthesiser.load(workspace / "checkpoints" / "fsdd-digits")
    args = pad_js(page, "() => ({a: window.padArgs.code_a, b: window.padArgs.code_b})")
    a, b = np.array(args["a"], np.float32), np.array(args["b"], np.float32)
    np.testing.assert_allclose(heard["code"], a + (b - a) * 0.52, atol=1e-5)
    assert np.abs(a - b).max() > 0.1  # two different clips
    assert synth.latent_dim == len(heard["code"])
    shot(page, "interpolate-sound-pad")


def test_the_map_pad_plays_under_a_dragged_point(page):
    go(page, "Explore")
    page.locator(PAD_FRAME).scroll_into_view_if_needed()
    frame = pad_frame(page)
    pad_js(page, WATCH_JS)
    box = frame.locator("#pad").bounding_box()
    page.mouse.move(box["x"] + 40, box["y"] + 40)
    page.mouse.down()
    for i in range(20):
        page.mouse.move(box["x"] + 40 + 10 * i, box["y"] + 40 + 8 * i)
        page.wait_for_timeout(40)
    page.mouse.up()
    assert _sounds(page) >= 5  # sounds kept coming while the point moved
    caption = frame.locator("#pad-caption").inner_text()  # "PC1 x, PC2 y"
    x, y = (float(part.split()[-1]) for part in caption.split(", "))
    page.wait_for_selector(f"text=At PC1 {x:+.2f}, PC2 {y:+.2f}")  # the server's player
    settle(page)
    command = page.locator("code", has_text="python -m vae decode").inner_text()
    assert f"map-pc1-{x:+.2f}-pc2-{y:+.2f}.wav" in command  # the same point, headless
    assert len(command.split("--z ")[1].split()[0].split(",")) == 16
    shot(page, "explore-sound-pad")


def test_nothing_the_pad_uses_comes_from_elsewhere(page):
    """The pad's page, worker, ONNX Runtime Web and the decoder all come from the app's own
    server, and so does everything else (the favicon is a file of ours): nothing is fetched
    from a CDN when the page runs."""
    go(page, "Synthesise")
    pad_frame(page)
    pad = [url for url in page.requested if "/component/ui.sound_pad" in url]
    assert any(url.endswith(".wasm") for url in pad)
    assert any(urlsplit(url).path.endswith(".onnx") for url in pad)  # "...onnx?v=<export>"
    assert any(url.endswith("sound_worker.js") for url in pad)
    local = ("http://127.0.0.1:", "data:", "blob:")
    assert [url for url in page.requested if not url.startswith(local)] == []


def test_an_export_removed_under_a_running_session_is_fetched_again(page):
    """Finding 6: with the export a page was handed removed before its player loads it (the
    old clean-up did that), the page got a 404 and stayed silent until the server restarted.
    Now the player asks for the current export, gets a new URL and plays."""
    go(page, "Synthesise")
    pad_frame(page)
    first = pad_js(page, "() => window.padArgs.model_url")  # models/<content key>/<file>?v=...
    folder = MODELS / first.split("/")[1]
    assert (folder / MANIFEST).is_file()
    removed = []

    def remove_then_serve(route) -> None:
        if not removed and urlsplit(route.request.url).path.endswith(".onnx"):
            shutil.rmtree(folder)  # between Python handing out the URL and the page's fetch
            removed.append(route.request.url)
        route.continue_()

    page.context.route("**/models/**", remove_then_serve)  # routing also turns the cache off
    try:
        go(page, "Interpolate")  # a new player: it fetches the model Python names
        pad_frame(page)
    finally:
        page.context.unroute("**/models/**")
    assert removed, "the player never fetched its model"
    now = pad_js(page, "() => window.padArgs.model_url")
    assert now != first and now.split("/")[1] == first.split("/")[1]  # same content, new export
    assert (folder / MANIFEST).is_file()
    assert not page.locator("[data-testid='stException']").count()


# ---- the pad in the page's theme (issue 24 item 8) -------------------------------------
# A theme unlike Streamlit's default (whose red the old pad's sliders happened to share).
THEME = {"primaryColor": "#1f8a70", "font": "serif", "textColor": "#1b263b"}
THEME_ENV = {"primary_color": "primaryColor", "font": "font", "text_color": "textColor"}


@pytest.fixture(scope="module")
def themed(workspace, page) -> Iterator:
    """A second server with a theme of its own, in a new tab of the same browser (one
    Playwright per process)."""
    env = {f"STREAMLIT_THEME_{name.upper()}": THEME[k] for name, k in THEME_ENV.items()}
    with serve_app(workspace, "streamlit-sound-pad-theme.log", **env) as url:
        context = page.context.browser.new_context(viewport={"width": 1500, "height": 1300})
        tab = context.new_page()
        tab.set_default_timeout(90_000)
        try:
            tab.goto(url)
            tab.wait_for_selector("h1:has-text('Sound VAE Studio')")
            settle(tab)
            yield tab
        finally:
            context.close()


def _rgb(colour: str) -> np.ndarray:
    return np.array([int(colour[i : i + 2], 16) for i in (1, 3, 5)])


def _family(text: str) -> list[str]:
    return [f.strip().strip("\"'") for f in text.split(",")]


def test_the_pad_takes_the_pages_theme_and_fits_its_frame(themed):
    from io import BytesIO

    from PIL import Image

    go(themed, "Synthesise")
    # narrow, as where the status line was cut ("...Griffin-Lim 85 ms (32 itera")
    themed.set_viewport_size({"width": 760, "height": 1300})  # the sidebar folds away
    frame = pad_frame(themed)
    themed.wait_for_timeout(500)  # the frame's new width laid out, its height sent
    theme = pad_js(themed, "() => window.padTheme")
    assert theme["primaryColor"] == THEME["primaryColor"]  # the server's theme reached it
    looks = pad_js(
        themed,
        """() => {
          const s = document.getElementById('status'), html = document.documentElement;
          const out = document.querySelector("output[for='axis-0']").getBoundingClientRect();
          const input = document.getElementById('axis-0').getBoundingClientRect();
          return {font: getComputedStyle(document.body).fontFamily,
                  text: getComputedStyle(document.body).color,
                  valueColour: getComputedStyle(document.querySelector('output')).color,
                  status: s.textContent, scroll: s.scrollWidth, client: s.clientWidth,
                  right: s.getBoundingClientRect().right, width: html.clientWidth,
                  pageScroll: html.scrollWidth, bodyHeight: document.body.scrollHeight,
                  frameHeight: window.innerHeight, outBottom: out.bottom,
                  outCentre: (out.left + out.right) / 2, inputTop: input.top,
                  inputLeft: input.left, inputWidth: input.width,
                  value: Number(document.getElementById('axis-0').value),
                  lo: Number(document.getElementById('axis-0').min),
                  hi: Number(document.getElementById('axis-0').max)};
        }""",
    )
    assert _family(looks["font"]) == _family(theme["font"])  # the page's font
    loaded = pad_js(
        themed,
        """async (family) => { await document.fonts.ready;
          return [...document.fonts].some((f) => f.family.replace(/["']/g, '') === family
                                                  && f.status === 'loaded'); }""",
        _family(theme["font"])[0],
    )
    assert loaded  # its face borrowed from the page, not a fallback
    assert looks["text"] == "rgb({}, {}, {})".format(*_rgb(THEME["textColor"]))
    assert looks["valueColour"] == "rgb({}, {}, {})".format(*_rgb(THEME["primaryColor"]))
    # The status line wraps inside the frame: nothing of it is cut, and the frame is tall
    # enough for all of it.
    assert "iterations" in looks["status"]
    assert looks["scroll"] <= looks["client"] and looks["right"] <= looks["width"]
    assert looks["pageScroll"] <= looks["width"]
    assert looks["bodyHeight"] <= looks["frameHeight"]
    # The value sits above the thumb, as on Streamlit's sliders.
    share = (looks["value"] - looks["lo"]) / (looks["hi"] - looks["lo"])
    thumb_x = looks["inputLeft"] + 6 + (looks["inputWidth"] - 12) * share
    assert looks["outBottom"] <= looks["inputTop"] and abs(looks["outCentre"] - thumb_x) < 3

    # The thumb, drawn: its centre and the pixels above and below the thin track are the
    # theme's primary colour.
    slider = frame.locator("#axis-0").bounding_box()  # in the page's coordinates
    around = {"x": slider["x"], "y": slider["y"] - 10, "width": slider["width"], "height": 24}
    image = np.asarray(Image.open(BytesIO(themed.screenshot(clip=around))).convert("RGB"))
    image = image.astype(int)
    scale = image.shape[1] / slider["width"]
    x = round((6 + (slider["width"] - 12) * share) * scale)
    mid, left = round((10 + slider["height"] / 2) * scale), round(3 * scale)
    primary = _rgb(THEME["primaryColor"])
    for dy in (0, -4, 4):
        y = mid + round(dy * scale)
        assert np.abs(image[y, x] - primary).max() <= 12, (dy, image[y, x])
    assert np.abs(image[mid, left] - primary).max() <= 12  # the track filled up to the thumb

    # The spectrogram in the server's colour map: each cell the colour of its level.
    cells = pad_js(
        themed,
        """() => {
          const f = window.padArgs.feature_config, feats = window.soundPad.features;
          const rows = f.n_mels || f.n_fft / 2 + (f.drop_last_bin ? 0 : 1);
          const frames = feats.length / rows, c = document.getElementById('spectrogram');
          const px = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
          const out = [];
          for (const [r, t] of [[0, 0], [5, 10], [40, 20], [100, 30], [rows - 1, frames - 1]]) {
            const x = Math.floor((t + 0.5) * c.width / frames);
            const y = Math.floor((rows - 1 - r + 0.5) * c.height / rows);
            const o = (y * c.width + x) * 4;
            out.push([feats[r * frames + t], [px[o], px[o + 1], px[o + 2]]]);
          }
          return out;
        }""",
    )
    from plotly.colors import sample_colorscale, unlabel_rgb

    from ui.figures import LEVELS

    for level, drawn in cells:
        index = round(min(max(level, 0.0), 1.0) * 255)
        want = unlabel_rgb(sample_colorscale(LEVELS, [index / 255])[0])
        np.testing.assert_allclose(drawn, want, atol=1.01, err_msg=f"level {level:.3f}")
    shot(themed, "synthesise-sound-pad-themed")
