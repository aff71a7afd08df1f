"""Text read from disk or a visitor, made safe to show: never Markdown, HTML or a link.

Every string a dataset, checkpoint, judge or upload brings (names, labels, ids, config
values, file names, the library's error messages that quote them) goes through one of these
before it reaches a Markdown-rendering call (``st.markdown``/``write``/``caption``/``info``/
``error``/``success``/``warning``, headers, widget labels and ``help``, ``st.radio`` options)
or a plotly figure's text. ``st.selectbox`` options, ``st.code``, ``st.text`` and dataframe
cells are shown as plain text by Streamlit and need nothing (checked in chromium on 1.67).

Why not just backslashes: Streamlit's Markdown (remark-gfm) links a bare ``http://...``,
``www.`` or ``a@b.c`` after escapes are resolved, so those are broken with an invisible
word joiner as well; ``<`` and ``>`` become entities so that no ``<img`` or ``<a`` reaches
the page, not even as escaped source text.
"""

from __future__ import annotations

import html
import re

# U+2060 WORD JOINER: invisible, breaks no line, and is no URL, e-mail or shortcode character.
JOINER = "\u2060"
_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")
# What makes Markdown anywhere in a line: emphasis, code, strikethrough, math ($), links and
# images ([ ]), Streamlit's directives (:red[...]), a backslash of the value's own, entities.
_INLINE = re.compile(r"[\\`*~$\[\]&]|(?<![A-Za-z0-9])_|_(?![A-Za-z0-9])")
# What makes a link with no brackets (remark-gfm links these after escapes are resolved,
# so they are broken with a joiner instead): a scheme's "://" and any "name:" shortcode
# (:smile:, :material/home:), "www.", and the "@" of an e-mail address.
_AUTOLINK = re.compile(r"(?<=:)(?=\S)|(?<=www)(?=\.)|(?=@)", re.IGNORECASE)
# What makes a block at the start of a line: a heading, quote, list, rule or table.
_LEADING = re.compile(r"^(\s*)([#>+\-=|]|\d+[.)])")


def md(value: object) -> str:
    """``value`` as Markdown source that renders as its plain text, on one line.

    Only what Markdown would act on is escaped, so a plain message (a path, ``n_fft``,
    "file: reason (why)") reads the same in the source as on the page. Line breaks and
    other control characters become one space: a value is never a heading or a list.
    """
    text = _CONTROL.sub(" ", str(value))
    text = _INLINE.sub(lambda m: "\\" + m.group(0), text)
    text = text.replace("<", "&lt;")  # no HTML tag, no <http://...> autolink
    text = _AUTOLINK.sub(JOINER, text)
    return _LEADING.sub(lambda m: m.group(1) + "\\" + m.group(2), text, count=1)


def code(value: object) -> str:
    """``value`` as an inline code span (a path, a command): shown as it is, monospaced.

    Nothing inside a code span is Markdown, HTML or a link; the fence is one backtick longer
    than the longest run of backticks inside, so the value cannot close it early.
    """
    text = _CONTROL.sub(" ", str(value))
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * (longest + 1)
    # a space either side keeps a value that starts or ends with a backtick inside the fence
    # (CommonMark strips exactly one such space from each side)
    padded = f" {text} " if longest or text.startswith(" ") else text
    return f"{fence}{padded}{fence}"


def chart(value: object) -> str:
    """``value`` as plotly text (titles, axis and tick labels, legend names, hover text):
    plotly draws ``<a href>``, ``<b>``, ``<br>`` in them, so ``& < >`` become entities."""
    return html.escape(str(value), quote=False)
