"""The app answers only under its own address: a page loaded under another name is stopped.

DNS rebinding: a page at ``http://evil.example:8501`` whose name is then made to resolve to
127.0.0.1 talks to this server as a same-origin page (Streamlit checks the websocket's Origin
against its Host, and both say evil.example). The one thing such a request cannot fake is
the Host header the browser sends: the name in the address bar. So every script run first
checks that Host is the address the server serves (``server.address`` and the loopback
names, on ``server.port``) or a name listed in ``VAE_ALLOWED_HOSTS`` (comma-separated, e.g.
the name a reverse proxy serves the app under); otherwise one line, and nothing else runs.

The matching is pure (``host_allowed``) and tested on its own; ``refuse_other_hosts`` is the
Streamlit side, called first thing in ``app.py``.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Iterable, Mapping

import streamlit as st

ALLOWED_ENV = "VAE_ALLOWED_HOSTS"
LOOPBACK = ("localhost", "127.0.0.1", "::1")
ANY_INTERFACE = ("", "0.0.0.0", "::")  # server.address values that listen everywhere
DEFAULT_PORTS = (80, 443)  # a Host without a port means the scheme's own
REFUSED = (
    "This app answers only at its own address; open it there, or ask whoever runs it to "
    f"list this name in {ALLOWED_ENV}."
)


def split_host(value: str) -> tuple[str, int | None]:
    """A Host header, or an allow-list entry, as (name, port): lower case, the trailing dot
    of a fully qualified name and the brackets of an IPv6 address dropped; port None when
    the value names none.

    Raises:
        ValueError: an empty name, an unclosed bracket, or a port that is not 0-65535.
    """
    text = value.strip().lower()
    if text.startswith("["):  # [::1]:8501
        name, bracket, rest = text[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            raise ValueError(f"{value!r}: not a host[:port]")
        port = rest[1:] if rest else None
    elif text.count(":") == 1:  # name:port
        name, port = text.split(":")
    else:  # a name, or an IPv6 address written without brackets (an allow-list entry)
        name, port = text, None
    name = name.rstrip(".")
    if not name or (port is not None and not (port.isdigit() and int(port) <= 65535)):
        raise ValueError(f"{value!r}: not a host[:port]")
    return name, None if port is None else int(port)


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def _same_port(asked: int | None, served: int | None) -> bool:
    """Whether a Host's port (None: the scheme's default) is ``served`` (None: any)."""
    if served is None:
        return True
    return asked == served if asked is not None else served in DEFAULT_PORTS


def _name(value: str) -> str | None:
    try:
        return split_host(value)[0]
    except ValueError:
        return None


def host_allowed(host: str | None, address: str, port: int, allowed: Iterable[str] = ()) -> bool:
    """Whether a request whose Host header is ``host`` is for this server, which serves
    ``address`` (``server.address``) on ``port``.

    Allowed: the loopback names and ``address`` on ``port``; any IP address on ``port`` when
    the server listens on every interface (an address cannot be rebound: only a name can);
    and the names in ``allowed``, on any port, or on the one an entry gives (``name:port``).
    A missing or malformed Host is refused.
    """
    if not host:
        return False
    try:
        name, asked = split_host(host)
    except ValueError:
        return False
    served = {_name(n) for n in (*LOOPBACK, address)} - {None}
    if address.strip() in ANY_INTERFACE and _is_ip(name):
        served.add(name)
    if name in served and _same_port(asked, port):
        return True
    for entry in allowed:
        try:
            other, other_port = split_host(entry)
        except ValueError:
            continue
        if other == name and _same_port(asked, other_port):
            return True
    return False


def allowed_names(environ: Mapping[str, str] = os.environ) -> list[str]:
    """The extra names of ``VAE_ALLOWED_HOSTS`` (comma-separated; blanks ignored)."""
    return [n.strip() for n in environ.get(ALLOWED_ENV, "").split(",") if n.strip()]


def refuse_other_hosts() -> None:
    """Stop this run with one line unless the request's Host is one this app serves.

    A run with no request headers at all (AppTest, ``streamlit`` in bare mode) has no
    browser and no Host: nothing to rebind, so it goes on.
    """
    headers = st.context.headers
    if not len(headers):
        return
    address = str(st.get_option("server.address") or "")
    port = int(st.get_option("server.port"))
    if not host_allowed(headers.get("Host"), address, port, allowed_names()):
        st.error(REFUSED)
        st.stop()
