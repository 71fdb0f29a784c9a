"""Where a webhook may be delivered: only http(s) URLs to public hosts. Loopback,
private, link-local, metadata and other non-public addresses are refused unless
private targets are allowed (SEGMENTQL_WEBHOOK_ALLOW_PRIVATE=1); a name is
resolved at each delivery, refused when any of its addresses is, and the
connection is pinned to the address that was checked.

DNS here is ``localhost`` or a fake ``loop.getaddrinfo`` answering chosen
addresses for a name: the tier makes no network traffic."""

import asyncio
import ipaddress
import socket

import pytest

from segmentql.server.errors import BadArgument
from segmentql.server.webhook_targets import MAX_URL_LENGTH, Target, checked_url, refused_address, resolved_target


def refusal(url, allow_private=False) -> str:
    """The message ``checked_url`` refuses ``url`` with (and its code is BAD_USER_INPUT)."""
    with pytest.raises(BadArgument) as refused:
        checked_url(url, allow_private)
    assert refused.value.extensions == {"code": "BAD_USER_INPUT"}
    message = str(refused.value)
    assert message.startswith("url: ")
    return message


def resolve(url: str, allow_private: bool = False) -> Target:
    return asyncio.run(resolved_target(url, allow_private))


@pytest.fixture
def dns(monkeypatch):
    """A fake resolver: ``dns[name] = [addresses]``; asking for any other name fails
    as getaddrinfo does. ``dns.asked`` lists the names asked for."""

    class Zone(dict):
        asked: list[str]

    zone = Zone()
    zone.asked = []

    async def getaddrinfo(loop, host, port, *, family=0, type=0, proto=0, flags=0):
        zone.asked.append(host)
        if host not in zone:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [
            (socket.AF_INET6, type, 6, "", (address, 0, 0, 0))
            if ":" in address
            else (socket.AF_INET, type, 6, "", (address, 0))
            for address in zone[host]
        ]

    monkeypatch.setattr(asyncio.BaseEventLoop, "getaddrinfo", getaddrinfo)
    return zone


# checked_url: what may be registered


def test_a_public_url_is_returned_with_scheme_and_host_lower_cased_and_the_rest_untouched():
    assert checked_url("HTTPS://Hooks.Example.COM/In/Segment?Key=A%2Fb&x=%C3%A9", False) == (
        "https://hooks.example.com/In/Segment?Key=A%2Fb&x=%C3%A9"
    )
    assert (
        checked_url("http://example.com:8080/caf\u00e9?q=\u00fc", False) == "http://example.com:8080/caf\u00e9?q=\u00fc"
    )
    assert checked_url("http://example.com", False) == "http://example.com"
    assert checked_url("http://example.com?x=1", False) == "http://example.com?x=1"


def test_surrounding_whitespace_is_stripped():
    assert checked_url("  https://example.com/hook\n", False) == "https://example.com/hook"


def test_ports_from_1_to_65535_are_kept():
    assert checked_url("http://example.com:1/", False) == "http://example.com:1/"
    assert checked_url("https://example.com:65535/", False) == "https://example.com:65535/"


def test_an_international_name_is_stored_in_its_ascii_form():
    assert checked_url("https://B\u00fccher.example/hook", False) == "https://xn--bcher-kva.example/hook"


def test_a_public_ipv6_literal_is_accepted_in_brackets():
    assert checked_url("http://[2606:4700:4700::1111]:8443/h", False) == "http://[2606:4700:4700::1111]:8443/h"
    assert checked_url("http://[2606:4700:4700::ABCD]/", False) == "http://[2606:4700:4700::abcd]/"


def test_a_name_of_hex_letters_is_a_name_not_an_address():
    assert checked_url("https://add.cafe/", False) == "https://add.cafe/"


@pytest.mark.parametrize("url", [None, 42, b"https://example.com/", ["https://example.com/"]])
def test_a_url_must_be_a_string(url):
    assert refusal(url) == "url: must be a string"


def test_a_url_is_at_most_max_url_length_characters():
    prefix = "https://example.com/"
    assert checked_url(prefix + "a" * (MAX_URL_LENGTH - len(prefix)), False)
    assert refusal(prefix + "a" * (MAX_URL_LENGTH - len(prefix) + 1)) == "url: must be at most 2048 characters"


@pytest.mark.parametrize("char", [" ", "\t", "\n", "\r", "\x00", "\x1b", "\x7f", "\u00a0", "\u200b", "\u202e"])
def test_spaces_and_control_characters_are_refused(char):
    assert "spaces or control characters" in refusal(f"https://example.com/a{char}b")
    assert "spaces or control characters" in refusal(f"https://exa{char}mple.com/")


@pytest.mark.parametrize(
    "url, scheme",
    [
        ("ftp://example.com/", "'ftp'"),
        ("file:///etc/passwd", "'file'"),
        ("gopher://example.com/", "'gopher'"),
        ("javascript:alert(1)", "'javascript'"),
        ("ws://example.com/", "'ws'"),
    ],
)
def test_only_http_and_https_are_accepted(url, scheme):
    assert refusal(url) == f"url: the scheme must be http or https, not {scheme}"


@pytest.mark.parametrize("url", ["example.com/hook", "//example.com/hook", "/hook"])
def test_a_url_without_a_scheme_is_refused(url):
    assert refusal(url) == "url: the scheme must be http or https"


@pytest.mark.parametrize("url", ["http://", "https:///hook", "http:example.com/hook", "http:/example.com"])
def test_a_url_without_a_host_is_refused(url):
    assert refusal(url) == "url: has no host"


@pytest.mark.parametrize(
    "url",
    ["https://user:secret@example.com/", "https://token@example.com/", "https://:@example.com/", "http://a\\@b.com/"],
)
def test_credentials_in_the_url_are_refused_even_when_private_targets_are_allowed(url):
    for allow_private in (False, True):
        assert "user name or password" in refusal(url, allow_private)


@pytest.mark.parametrize("url", ["https://example.com/hook#part", "https://example.com/#", "https://example.com#x"])
def test_a_fragment_is_refused_even_when_private_targets_are_allowed(url):
    for allow_private in (False, True):
        assert "fragment" in refusal(url, allow_private)


@pytest.mark.parametrize("port", ["0", "65536", "99999"])
def test_a_port_out_of_range_is_refused(port):
    assert refusal(f"http://example.com:{port}/") == f"url: the port must be from 1 to 65535, not {int(port)}"


@pytest.mark.parametrize(
    "netloc", ["example.com:", "example.com:http", "example.com:-1", "example.com:123456", "a:b:c"]
)
def test_a_port_that_is_not_a_number_is_refused(netloc):
    assert refusal(f"http://{netloc}/") == f"url: {netloc!r} is not a host[:port]"


@pytest.mark.parametrize(
    "url",
    [
        "http://[v1.fe]/",  # an IPvFuture literal
        "http://[fe80::1%25eth0]/",  # a zone: meaningless off this machine
        "http://[::1]x/",
        "http://[1.2.3.4]/",
        "http://[::1/",
        "http://[1:2]/",
        "http://[1::2::3]/",
    ],
)
def test_brackets_hold_only_an_ipv6_address(url):
    # Python's urlsplit refuses some of these itself (3.11.4+), this module the rest.
    message = refusal(url, allow_private=True)
    assert "is not a host[:port]" in message or "is not a valid URL" in message or "is not an IPv6 address" in message


@pytest.mark.parametrize(
    "host",
    ["a..example.com", "a" * 64 + ".example.com", "exa%6dple.com", "exa_mple.com\\evil.com", "-.\u00fc" + "x" * 70],
)
def test_a_host_that_is_not_a_domain_name_is_refused(host):
    assert "is not a valid domain name or IP address" in refusal(f"https://{host}/", allow_private=True)


@pytest.mark.parametrize(
    "host, reason",
    [
        ("127.0.0.1", "loopback"),
        ("[::1]", "loopback"),
        ("10.1.2.3", "private"),
        ("192.168.0.1", "private"),
        ("169.254.169.254", "cloud metadata"),
        ("[fd00:ec2::254]", "cloud metadata"),
        ("[fe80::1]", "link-local"),
        ("0.0.0.0", "unspecified"),
        ("[::ffff:127.0.0.1]", "embeds 127.0.0.1: loopback"),
    ],
)
def test_an_ip_literal_in_a_refused_range_is_refused(host, reason):
    assert refusal(f"http://{host}:8080/hook") == (
        f"url: the address {host.strip('[]')} is refused ({reason}); webhooks reach only public hosts"
    )


@pytest.mark.parametrize(
    "host", ["2130706433", "0x7f000001", "0x7f.1", "0X7F.0.0.1", "0177.0.0.1", "017700000001", "127.1", "127.0.0.1."]
)
def test_other_spellings_of_an_ipv4_address_are_judged_as_that_address(host):
    assert refusal(f"http://{host}/") == (
        f"url: the address {host.lower()} (127.0.0.1) is refused (loopback); webhooks reach only public hosts"
    )


def test_other_spellings_of_a_public_ipv4_address_are_accepted():
    assert checked_url("http://0x08080808/", False) == "http://0x08080808/"


@pytest.mark.parametrize(
    "host",
    [
        "localhost",
        "LocalHost",
        "localhost.",
        "app.localhost",
        "metadata.google.internal",
        "db.corp.internal",
        "printer.local",
        "redis",  # a container's or a search domain's name
        "\uff4c\uff4f\uff43\uff41\uff4c\uff48\uff4f\uff53\uff54",  # fullwidth "localhost"
    ],
)
def test_internal_names_are_refused(host):
    assert "is an internal name; webhooks reach only public hosts" in refusal(f"http://{host}:8080/")


@pytest.mark.parametrize("host", ["localhost.example.com", "internal.example.com", "evil-localhost.com", "local.dev"])
def test_a_public_name_merely_containing_an_internal_word_is_accepted(host):
    assert checked_url(f"https://{host}/", False) == f"https://{host}/"


@pytest.mark.parametrize(
    "url",
    ["http://127.0.0.1:8080/hook", "http://localhost:9/", "http://[::1]/", "http://10.0.0.1/", "http://0x7f.1/"],
)
def test_allowing_private_targets_lifts_the_address_and_name_rules(url):
    assert checked_url(url, True) == url


# refused_address: which addresses a webhook may reach


@pytest.mark.parametrize(
    "address, reason",
    [
        ("127.0.0.1", "loopback"),
        ("127.255.255.254", "loopback"),
        ("::1", "loopback"),
        ("10.0.0.1", "private"),
        ("172.16.0.1", "private"),
        ("172.31.255.255", "private"),
        ("192.168.1.1", "private"),
        ("fc00::1", "private"),
        ("fd12:3456::1", "private"),
        ("169.254.169.254", "cloud metadata"),
        ("fd00:ec2::254", "cloud metadata"),
        ("169.254.1.1", "link-local"),
        ("fe80::1", "link-local"),
        ("100.64.0.1", "carrier-grade NAT"),
        ("100.127.255.255", "carrier-grade NAT"),
        ("0.0.0.0", "unspecified"),
        ("0.1.2.3", "unspecified"),
        ("::", "unspecified"),
        ("224.0.0.1", "multicast"),
        ("239.255.255.250", "multicast"),
        ("ff02::1", "multicast"),
        ("198.18.0.1", "benchmarking"),
        ("198.19.255.255", "benchmarking"),
        ("192.0.2.1", "documentation"),
        ("198.51.100.1", "documentation"),
        ("203.0.113.1", "documentation"),
        ("2001:db8::1", "documentation"),
        ("240.0.0.1", "reserved or not globally routable"),
        ("255.255.255.255", "reserved or not globally routable"),  # broadcast
        ("192.0.0.1", "reserved or not globally routable"),  # IETF protocol assignments
        ("2001::1", "reserved or not globally routable"),  # Teredo
    ],
)
def test_non_public_addresses_are_refused_with_their_reason(address, reason):
    assert refused_address(ipaddress.ip_address(address)) == reason


@pytest.mark.parametrize(
    "address, reason",
    [
        ("::ffff:127.0.0.1", "embeds 127.0.0.1: loopback"),  # IPv4-mapped
        ("::ffff:169.254.169.254", "embeds 169.254.169.254: cloud metadata"),
        ("::10.0.0.1", "embeds 10.0.0.1: private"),  # IPv4-compatible
        ("64:ff9b::7f00:1", "embeds 127.0.0.1: loopback"),  # NAT64
        ("64:ff9b::a9fe:a9fe", "embeds 169.254.169.254: cloud metadata"),
        ("2002:7f00:1::1", "embeds 127.0.0.1: loopback"),  # 6to4
        ("2002:c0a8:101::", "embeds 192.168.1.1: private"),
    ],
)
def test_an_ipv6_address_carrying_an_ipv4_one_is_judged_by_it(address, reason):
    assert refused_address(ipaddress.ip_address(address)) == reason


@pytest.mark.parametrize(
    "address",
    [
        "8.8.8.8",
        "1.1.1.1",
        "93.184.216.34",
        "172.15.255.255",  # just outside 172.16.0.0/12
        "172.32.0.1",
        "100.63.255.255",  # just outside 100.64.0.0/10
        "100.128.0.1",
        "198.20.0.1",  # just outside 198.18.0.0/15
        "169.255.0.1",
        "2606:4700:4700::1111",
        "::ffff:8.8.8.8",
        "64:ff9b::808:808",
        "2002:808:808::1",
    ],
)
def test_public_addresses_are_allowed(address):
    assert refused_address(ipaddress.ip_address(address)) is None


# resolved_target: where each delivery attempt connects


def test_a_name_is_resolved_and_the_connection_pinned_to_its_address(dns):
    dns["hooks.example.com"] = ["93.184.216.34", "93.184.216.35"]
    assert resolve("https://Hooks.Example.com:8443/in?a=B") == Target(
        url="https://93.184.216.34:8443/in?a=B",
        host_header="hooks.example.com:8443",
        sni_hostname="hooks.example.com",
        address="93.184.216.34",
    )
    assert dns.asked == ["hooks.example.com"]


def test_plain_http_to_a_name_sends_no_tls_name(dns):
    dns["hooks.example.com"] = ["93.184.216.34"]
    assert resolve("http://hooks.example.com/in") == Target(
        "http://93.184.216.34/in", "hooks.example.com", None, "93.184.216.34"
    )


def test_an_ipv6_address_is_pinned_in_brackets(dns):
    dns["v6.example.com"] = ["2606:4700:4700::1111"]
    target = resolve("https://v6.example.com/in")
    assert target.url == "https://[2606:4700:4700::1111]/in" and target.address == "2606:4700:4700::1111"
    assert target.host_header == "v6.example.com" and target.sni_hostname == "v6.example.com"


def test_an_international_name_is_resolved_and_sent_in_its_ascii_form(dns):
    dns["xn--bcher-kva.example"] = ["93.184.216.34"]
    target = resolve("https://b\u00fccher.example/")
    assert dns.asked == ["xn--bcher-kva.example"]
    assert target.host_header == target.sni_hostname == "xn--bcher-kva.example"


@pytest.mark.parametrize("addresses", [["93.184.216.34", "10.0.0.5"], ["10.0.0.5", "93.184.216.34"], ["10.0.0.5"]])
def test_a_name_with_any_private_address_is_refused(dns, addresses):
    dns["mixed.example.com"] = addresses
    with pytest.raises(BadArgument) as refused:
        resolve("https://mixed.example.com/hook")
    assert str(refused.value) == "url: the host 'mixed.example.com' resolves to 10.0.0.5, which is refused (private)"


@pytest.mark.parametrize(
    "address, reason",
    [
        ("169.254.169.254", "cloud metadata"),
        ("127.0.0.1", "loopback"),
        ("::ffff:127.0.0.1", "embeds 127.0.0.1: loopback"),
        ("fd00:ec2::254", "cloud metadata"),
    ],
)
def test_a_name_resolving_to_a_refused_address_is_refused_with_the_reason(dns, address, reason):
    dns["rebind.example.com"] = [address]
    with pytest.raises(BadArgument) as refused:
        resolve("http://rebind.example.com/")
    shown = ipaddress.ip_address(address)  # as the standard library writes it
    assert str(refused.value) == f"url: the host 'rebind.example.com' resolves to {shown}, which is refused ({reason})"


def test_a_name_that_does_not_resolve_is_refused(dns):
    with pytest.raises(BadArgument) as refused:
        resolve("https://nowhere.example.com/hook")
    assert str(refused.value) == "url: could not resolve host 'nowhere.example.com'"
    assert refused.value.extensions == {"code": "BAD_USER_INPUT"}


def test_a_name_with_no_addresses_is_refused(dns):
    dns["empty.example.com"] = []
    with pytest.raises(BadArgument, match=r"could not resolve host 'empty\.example\.com'"):
        resolve("https://empty.example.com/hook")


def test_the_url_is_checked_before_any_resolution(dns):
    for url, message in [
        ("ftp://files.example.com/", "scheme"),
        ("https://user:pw@hooks.example.com/", "user name or password"),
        ("https://hooks.example.com/#x", "fragment"),
        ("http://localhost/", "internal name"),
    ]:
        with pytest.raises(BadArgument, match=message):
            resolve(url)
    assert dns.asked == []


def test_an_ip_literal_is_connected_to_without_resolution(dns):
    assert resolve("http://8.8.8.8:8080/h?x") == Target("http://8.8.8.8:8080/h?x", "8.8.8.8:8080", None, "8.8.8.8")
    assert resolve("https://[2606:4700:4700::1111]/h") == Target(
        "https://[2606:4700:4700::1111]/h", "[2606:4700:4700::1111]", None, "2606:4700:4700::1111"
    )
    with pytest.raises(BadArgument, match=r"the address 0x7f\.1 \(127\.0\.0\.1\) is refused \(loopback\)"):
        resolve("http://0x7f.1/")
    assert dns.asked == []


def test_allowing_private_targets_lets_loopback_through_and_pins_it(dns):
    assert resolve("http://127.0.0.1:8080/hook", allow_private=True) == Target(
        "http://127.0.0.1:8080/hook", "127.0.0.1:8080", None, "127.0.0.1"
    )
    assert resolve("http://0x7f.1:8080/hook", allow_private=True) == Target(
        "http://127.0.0.1:8080/hook", "0x7f.1:8080", None, "127.0.0.1"
    )
    assert resolve("http://[::1]:8080/", allow_private=True).url == "http://[::1]:8080/"
    dns["mixed.example.com"] = ["10.0.0.5", "93.184.216.34"]
    assert resolve("https://mixed.example.com/", allow_private=True).address == "10.0.0.5"


def test_localhost_resolves_to_loopback_when_private_targets_are_allowed():
    target = resolve("https://localhost:8443/hook?x=1", allow_private=True)
    address = ipaddress.ip_address(target.address)
    shown = f"[{address}]" if address.version == 6 else str(address)
    assert refused_address(address) == "loopback"
    assert target == Target(f"https://{shown}:8443/hook?x=1", "localhost:8443", "localhost", str(address))
    with pytest.raises(BadArgument, match="internal name"):
        resolve("https://localhost:8443/hook")
