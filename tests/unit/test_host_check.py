"""Which Host headers the app answers (issue 23, finding 13: DNS rebinding); the browser
side, a real server loaded under another name, is ``tests/e2e/test_browser_host.py``."""

from __future__ import annotations

import pytest

from ui.host_check import ALLOWED_ENV, allowed_names, host_allowed, split_host

PORT = 8501


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("localhost:8501", ("localhost", 8501)),
        ("LocalHost.:8501", ("localhost", 8501)),
        ("127.0.0.1", ("127.0.0.1", None)),
        ("[::1]:8501", ("::1", 8501)),
        ("[::1]", ("::1", None)),
        ("::1", ("::1", None)),
        ("Studio.Example.ORG.", ("studio.example.org", None)),
    ],
)
def test_a_host_is_split_into_a_lower_case_name_and_its_port(value, expected) -> None:
    assert split_host(value) == expected


@pytest.mark.parametrize("value", ["", ":8501", "[::1", "[::1]x", "host:port", "h:99999", "."])
def test_a_malformed_host_is_refused(value: str) -> None:
    with pytest.raises(ValueError, match="not a host"):
        split_host(value)
    assert not host_allowed(value, "127.0.0.1", PORT)


@pytest.mark.parametrize(
    "host",
    ["localhost:8501", "127.0.0.1:8501", "[::1]:8501", "LOCALHOST:8501", "localhost.:8501"],
)
def test_the_served_address_and_loopback_names_on_the_served_port_are_allowed(host) -> None:
    assert host_allowed(host, "127.0.0.1", PORT)


@pytest.mark.parametrize(
    "host",
    [
        "evil.example:8501",  # the rebinding attack: a name of the attacker's
        "evil.example",
        "localhost:8502",  # another port: another server's page
        "localhost",  # port 80
        "127.0.0.1.evil.example:8501",
        "localhost@evil.example:8501",
        "10.0.0.5:8501",  # bound to loopback: no other address reaches it
        None,
    ],
)
def test_other_names_and_ports_are_refused(host) -> None:
    assert not host_allowed(host, "127.0.0.1", PORT)


def test_listening_everywhere_allows_any_address_but_no_other_name() -> None:
    for address in ("0.0.0.0", "", "::"):
        assert host_allowed("192.168.1.20:8501", address, PORT)
        assert host_allowed("[fe80::1]:8501", address, PORT)
        assert not host_allowed("192.168.1.20:9000", address, PORT)
        assert not host_allowed("mylaptop.local:8501", address, PORT)
    assert host_allowed("studio.lan:8501", "studio.lan", PORT)  # server.address as a name


def test_names_from_the_environment_are_allowed_on_any_or_their_own_port() -> None:
    env = {ALLOWED_ENV: " Studio.Example.org , lab.test:8443,, [::2] "}
    names = allowed_names(env)
    assert names == ["Studio.Example.org", "lab.test:8443", "[::2]"]
    assert host_allowed("studio.example.org", "127.0.0.1", PORT, names)  # a TLS proxy's 443
    assert host_allowed("studio.example.org.:8501", "127.0.0.1", PORT, names)
    assert host_allowed("lab.test:8443", "127.0.0.1", PORT, names)
    assert not host_allowed("lab.test:8501", "127.0.0.1", PORT, names)
    assert host_allowed("[::2]:8501", "127.0.0.1", PORT, names)
    assert not host_allowed("evil.example:8501", "127.0.0.1", PORT, names)
    assert allowed_names({}) == []
