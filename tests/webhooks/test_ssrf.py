"""The SSRF guard, on literal addresses and names (no DNS) and on resolved addresses."""

from __future__ import annotations

import pytest

from dlp.errors import ServiceUnavailableError, ValidationError
from dlp.webhooks.ssrf import check_webhook_url, parse_webhook_url, resolve_public_addresses
from tests.webhooks.conftest import fake_dns

PUBLIC_URLS = [
    "https://93.184.216.34/hook",
    "https://example.com/hook",
    "http://example.com:8080/hooks/training?token=abc",
    "https://hooks.example.co.uk./x",
    "https://bücher.example/hook",
    "https://[2606:2800:220:1:248:1893:25c8:1946]/hook",
    "https://[::ffff:93.184.216.34]/hook",
    "https://8.8.8.8:443/",
    "HTTPS://EXAMPLE.COM/hook",
]

BLOCKED_ADDRESS_URLS = {
    "http://127.0.0.1/": "loopback",
    "http://127.255.255.254:8080/": "loopback",
    "http://[::1]/": "loopback",
    "http://10.0.0.1/": "private",
    "http://172.16.5.4/": "private",
    "http://192.168.1.1/": "private",
    "http://[fc00::1]/": "private",
    "http://[fd12:3456::1]/": "private",
    "http://169.254.169.254/latest/meta-data/": "link-local",
    "http://[fe80::1]/": "link-local",
    "http://0.0.0.0/": "unspecified",
    "http://[::]/": "unspecified",
    "http://224.0.0.1/": "multicast",
    "http://[ff02::1]/": "multicast",
    "http://240.0.0.1/": "reserved",
    "http://255.255.255.255/": "reserved",
    "http://100.64.0.1/": "CGNAT",
    "http://100.127.255.254/": "CGNAT",
    "http://[::ffff:127.0.0.1]/": "loopback",
    "http://[::ffff:169.254.169.254]/": "link-local",
    "http://[::ffff:10.1.2.3]/": "private",
    "http://[2002:7f00:1::]/": "loopback",
    "http://[64:ff9b::a9fe:a9fe]/": "link-local",
    "http://127.1/": "loopback",
    "http://0x7f000001/": "loopback",
    "http://2130706433/": "loopback",
    "http://017700000001/": "loopback",
    "http://0/": "unspecified",
    "http://192.0.2.10/": "private",
}

BLOCKED_NAME_URLS = [
    "http://localhost/",
    "http://LOCALHOST:8000/hook",
    "http://localhost./",
    "http://api.localhost/",
    "http://metadata.google.internal/computeMetadata/v1/",
    "http://metadata/",
]

MALFORMED_URLS = {
    "ftp://example.com/hook": "http or https",
    "file:///etc/passwd": "http or https",
    "javascript:alert(1)": "http or https",
    "example.com/hook": "http or https",
    "//example.com/hook": "http or https",
    "https://user:secret@example.com/hook": "credentials",
    "https://token@example.com/hook": "credentials",
    "http://1.2.3.4\\@169.254.169.254/": "credentials",
    "http:///hook": "host",
    "https://exa mple.com/": "spaces",
    "https://example.com/\nX-Injected: 1": "spaces",
    "https://exa_mple%2ecom/": "invalid host",
    "https://-bad-.example.com/": "invalid host",
    "https://" + "a" * 2000 + ".com/": "longer than 2000",
}


@pytest.mark.parametrize("url", PUBLIC_URLS)
def test_public_urls_pass(url: str) -> None:
    check_webhook_url(url, allow_private=False)


@pytest.mark.parametrize(("url", "reason"), BLOCKED_ADDRESS_URLS.items())
def test_non_public_addresses_are_refused(url: str, reason: str) -> None:
    with pytest.raises(ValidationError, match=reason) as caught:
        check_webhook_url(url, allow_private=False)
    assert caught.value.status_code == 422
    assert "public address" in caught.value.message


@pytest.mark.parametrize("url", BLOCKED_NAME_URLS)
def test_local_and_metadata_names_are_refused(url: str) -> None:
    with pytest.raises(ValidationError, match="local or cloud-metadata name"):
        check_webhook_url(url, allow_private=False)


@pytest.mark.parametrize("url", [*BLOCKED_ADDRESS_URLS, *BLOCKED_NAME_URLS])
def test_allow_private_lets_internal_hosts_through(url: str) -> None:
    check_webhook_url(url, allow_private=True)


@pytest.mark.parametrize(("url", "message"), MALFORMED_URLS.items())
@pytest.mark.parametrize("allow_private", [False, True])
def test_malformed_urls_are_refused_even_when_private_is_allowed(
    url: str, message: str, allow_private: bool
) -> None:
    with pytest.raises(ValidationError, match=message):
        check_webhook_url(url, allow_private=allow_private)


def test_url_of_exactly_the_limit_passes() -> None:
    prefix = "https://example.com/"
    check_webhook_url(prefix + "a" * (2000 - len(prefix)), allow_private=False)


def test_parse_splits_host_and_default_port() -> None:
    target = parse_webhook_url("https://bücher.example/hook", allow_private=False)
    assert (target.host, target.port) == ("xn--bcher-kva.example", 443)
    target = parse_webhook_url("http://[2001:db8::1]:8080/", allow_private=True)
    assert (target.host, target.port) == ("2001:db8::1", 8080)


def test_resolution_returns_every_public_address(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_dns(monkeypatch, {"hooks.example": ["93.184.216.34", "2606:2800:220:1::1"]})
    assert resolve_public_addresses("hooks.example", 443, allow_private=False) == [
        "93.184.216.34",
        "2606:2800:220:1::1",
    ]


@pytest.mark.parametrize(
    "answer",
    [["10.0.0.7"], ["93.184.216.34", "169.254.169.254"], ["::1"], ["::ffff:127.0.0.1"]],
)
def test_a_name_resolving_to_any_internal_address_is_refused(
    monkeypatch: pytest.MonkeyPatch, answer: list[str]
) -> None:
    fake_dns(monkeypatch, {"rebind.example": answer})
    with pytest.raises(ValidationError, match=r"resolves to a .* address"):
        resolve_public_addresses("rebind.example", 80, allow_private=False)
    assert resolve_public_addresses("rebind.example", 80, allow_private=True) == answer


def test_an_unresolvable_name_is_worth_retrying(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_dns(monkeypatch, {"gone.example": []})
    with pytest.raises(ServiceUnavailableError, match="could not resolve"):
        resolve_public_addresses("gone.example", 443, allow_private=False)


def test_real_resolution_of_localhost() -> None:
    with pytest.raises(ValidationError, match="local or cloud-metadata"):
        resolve_public_addresses("localhost", 80, allow_private=False)
    assert "127.0.0.1" in resolve_public_addresses("localhost", 80, allow_private=True)
    assert resolve_public_addresses("[::1]", 80, allow_private=True) == ["::1"]
    with pytest.raises(ValidationError, match="loopback"):
        resolve_public_addresses("127.0.0.1", 80, allow_private=False)
