"""The escaping every page uses for text from disk (issue 23, finding 5): what it leaves of
a hostile string can be no link, image, tag or formatting, and a plain message reads the
same. That Streamlit renders its output as the plain text was checked in chromium on 1.67;
the pages' use of it is ``tests/app/test_hostile_text.py``."""

from __future__ import annotations

import json
import re

import pytest

from ui.evaluate_figures import confusion, label_accuracy
from ui.figures import latent_map, spectrograms
from ui.safe_text import JOINER, chart, code, md
from vae.audio.features import FeatureConfig

HOSTILE = [
    "![b](http://127.0.0.1:9/beacon.png)",
    "[Download the fixed model](http://evil.example/payload)",
    "<img src=x onerror=alert(1)>",
    "<a href='http://evil.example'>x</a>",
    "<script>alert(1)</script>",
    "https://evil.example/bare and www.evil.example and me@evil.example",
    "**bold** _it_ ~~gone~~ `tick` $x^2$ :red[red] :smile: :material/home:",
    "# heading",
    "1. a list",
    "> quote",
    "a\nb\r\n- c",
    "&lt;img src=x&gt; &#60;a&#62;",
    "[ref]: http://evil.example",
    "\\[not escaped\\](http://evil.example)",
]


def _unescaped(source: str) -> str:
    """Markdown source with its backslash escapes and entities set aside."""
    return re.sub(r"\\.|&lt;", "", source)


@pytest.mark.parametrize("text", HOSTILE)
def test_md_leaves_no_link_image_tag_or_formatting(text: str) -> None:
    out = md(text)
    rest = _unescaped(out)
    assert "\n" not in out and "\r" not in out
    assert "<" not in out  # not even escaped: no "<img" reaches the page
    for mark in ("[", "]", "`", "*", "~", "$", "&"):
        assert mark not in rest, (text, out)
    assert "://" not in out and "www." not in out.lower()  # no autolink
    assert not re.match(r"\s*(#|>|-|\+|\d+[.)])", out), out  # no block at its start
    assert out.count("@") == out.count(JOINER + "@")  # no e-mail autolink


def test_md_leaves_a_plain_message_as_it_is() -> None:
    plain = "checkpoints/bad/config.json: damaged (File too large); n_fft=256, epoch 3 of 10"
    assert md(plain) == plain
    assert md("a snake_case_name") == "a snake_case_name"


def test_md_breaks_shortcodes_and_urls_with_an_invisible_joiner_only() -> None:
    assert md("http://x.y").replace(JOINER, "") == "http://x.y"
    assert md(":smile:") == ":" + JOINER + "smile:"


@pytest.mark.parametrize("text", ["plain/path", "a`b", "``x``", "` edge", "x`"])
def test_code_span_cannot_be_closed_by_the_value(text: str) -> None:
    out = code(text)
    fence = re.match(r"`+", out).group(0)
    assert out.endswith(fence) and fence not in out[len(fence) : -len(fence)]
    inner = out[len(fence) : -len(fence)]
    assert inner == text or inner == f" {text} "


def test_chart_text_has_no_tag_plotly_would_draw() -> None:
    assert chart("<a href='x'>y</a> & <b>") == "&lt;a href='x'&gt;y&lt;/a&gt; &amp; &lt;b&gt;"


def test_figures_draw_hostile_labels_and_ids_as_text() -> None:
    import numpy as np

    labels = ["<a href=http://evil.example>1</a>", "<img src=x>"]
    ids = ["<b>id</b>", "<script>x</script>"]
    cfg = FeatureConfig(sample_rate=8000, clip_samples=4096, n_fft=256, hop_length=128)
    figures = [
        latent_map(
            np.zeros((2, 2)), ids, labels, "label", selected=ids[:1], extra=[(ids[1], np.zeros(2))]
        ),
        label_accuracy([("real", dict.fromkeys(labels, 0.5))]),
        confusion([[1, 0], [0, 1]], labels, "real"),
        spectrograms([(ids[0], np.zeros(cfg.shape))], cfg),
    ]
    for fig in figures:
        spec = fig.to_plotly_json()
        for trace in spec["data"]:
            trace.pop("customdata", None)  # not drawn: the click's clip id, as it is
        text = json.dumps(spec, default=str).replace("<extra>", "").replace("</extra>", "")
        assert not any(tag in text for tag in ("<a ", "<img", "<script", "<b>")), text[:500]
    assert list(figures[0].data[0].customdata) == [ids[0]]  # a click still names the clip
