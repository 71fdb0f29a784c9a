"""Where a webhook may be delivered: public http(s) hosts only, so a registered
URL cannot make the service reach its own network (loopback, private ranges,
cloud metadata). ``allow_private`` (``SEGMENTQL_WEBHOOK_ALLOW_PRIVATE=1``, set
by the tests) lifts the address rules, never the syntax rules.

:func:`checked_url` runs at create/update time (syntax, IP literals, no DNS);
:func:`resolved_target` at every delivery attempt: it resolves the name, refuses
it when any address is refused, and pins the address it checked, so DNS
rebinding cannot swap it before the connection. The caller requests
``target.url`` with ``Host: target.host_header`` and, for https,
``extensions={"sni_hostname": target.sni_hostname}``: httpx sends the name in
TLS and verifies the certificate against it. Redirects, which would skip these
checks, are never followed (``follow_redirects=False``).
"""

import asyncio
import ipaddress
import re
import socket
from contextlib import suppress
from dataclasses import dataclass
from urllib.parse import urlsplit

from .errors import BadArgument

MAX_URL_LENGTH = 2048

Address = ipaddress.IPv4Address | ipaddress.IPv6Address

_REFUSED = {  # the first match is told: the metadata addresses before link-local
    reason: [ipaddress.ip_network(network) for network in networks.split()]
    for reason, networks in {
        "cloud metadata": "169.254.169.254/32 fd00:ec2::254/128",
        "loopback": "127.0.0.0/8 ::1/128",
        "unspecified": "0.0.0.0/8 ::/128",
        "link-local": "169.254.0.0/16 fe80::/10",
        "private": "10.0.0.0/8 172.16.0.0/12 192.168.0.0/16 fc00::/7",
        "carrier-grade NAT": "100.64.0.0/10",
        "benchmarking": "198.18.0.0/15 2001:2::/48",
        "documentation": "192.0.2.0/24 198.51.100.0/24 203.0.113.0/24 2001:db8::/32",
        "multicast": "224.0.0.0/4 ff00::/8",
    }.items()
}
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_NETLOC = re.compile(r"(?:\[(?P<ipv6>[0-9a-fA-F:.]+)\]|(?P<name>[^:\[\]]+))(?::(?P<port>[0-9]{1,5}))?")
_NAME = re.compile(r"(?:[a-z0-9_-]{1,63}\.)*[a-z0-9_-]{1,63}\.?")  # IDNA-encoded; "_" is in real DNS names
_INTERNAL_SUFFIXES = (".localhost", ".internal", ".local")  # with dotless names (localhost, a container's)


def refused_address(address: Address) -> str | None:
    """Why ``address`` may not be a webhook target, or None when it may. An IPv6 address
    carrying an IPv4 one (mapped, compatible, NAT64, 6to4) reaches it, so is judged by it;
    what the stdlib does not call global (IETF blocks, Teredo...) is no place for a webhook."""
    if isinstance(address, ipaddress.IPv6Address) and not (address.is_loopback or address.is_unspecified):
        inner = address.ipv4_mapped or address.sixtofour
        if inner is None and (address.packed[:12] == bytes(12) or address in _NAT64):
            inner = ipaddress.IPv4Address(address.packed[12:])
        if inner is not None:
            reason = refused_address(inner)
            return f"embeds {inner}: {reason}" if reason else None
    for reason, networks in _REFUSED.items():
        if any(address in network for network in networks):
            return reason
    if address.is_reserved or not address.is_global:
        return "reserved or not globally routable"  # 240.0.0.0/4 and its broadcast address too
    return None


@dataclass(frozen=True)
class _Url:
    """A checked URL: the parts a request is made of."""

    scheme: str
    host: str  # lower-case ASCII; an IPv6 literal without brackets
    port: int | None  # None: the scheme's default
    tail: str  # path and query, exactly as given
    literal: Address | None  # the host when it is an IP address (any IPv4 form)

    def netloc(self, host: str) -> str:
        bracketed = f"[{host}]" if ":" in host else host
        return bracketed if self.port is None else f"{bracketed}:{self.port}"

    def with_host(self, host: str) -> str:
        return f"{self.scheme}://{self.netloc(host)}{self.tail}"


def _parsed(url: object, allow_private: bool) -> _Url:
    if not isinstance(url, str):
        raise BadArgument("url: must be a string")
    url = url.strip()
    if len(url) > MAX_URL_LENGTH:
        raise BadArgument(f"url: must be at most {MAX_URL_LENGTH} characters")
    if any(char.isspace() or not char.isprintable() for char in url):
        raise BadArgument("url: must not contain spaces or control characters")
    try:
        parts = urlsplit(url)
    except ValueError as error:
        raise BadArgument(f"url: is not a valid URL ({error})") from None
    if parts.scheme not in ("http", "https"):  # urlsplit lower-cases it
        raise BadArgument(f"url: the scheme must be http or https{f', not {parts.scheme!r}' if parts.scheme else ''}")
    if "#" in url:
        raise BadArgument("url: must not have a fragment (#...): it is never sent")
    if "@" in parts.netloc:
        raise BadArgument("url: must not hold a user name or password; the webhook signature authenticates requests")
    netloc = _NETLOC.fullmatch(parts.netloc)
    if not netloc:
        raise BadArgument(f"url: {parts.netloc!r} is not a host[:port]" if parts.netloc else "url: has no host")
    port = int(netloc["port"]) if netloc["port"] else None
    if port is not None and not 1 <= port <= 65535:
        raise BadArgument(f"url: the port must be from 1 to 65535, not {port}")
    if netloc["ipv6"] is not None:
        try:
            literal: Address | None = ipaddress.IPv6Address(netloc["ipv6"])
        except ValueError:
            raise BadArgument(f"url: [{netloc['ipv6']}] is not an IPv6 address") from None
        host = netloc["ipv6"].lower()
    else:
        try:
            host = netloc["name"].lower().encode("idna").decode("ascii")
        except UnicodeError:
            host = ""
        if not _NAME.fullmatch(host):
            raise BadArgument(f"url: the host {netloc['name']!r} is not a valid domain name or IP address")
        literal = None
        if re.fullmatch(r"[0-9a-fx.]+", host.rstrip(".")):  # 2130706433, 0x7f.1...: getaddrinfo reads an IPv4
            with suppress(OSError):
                literal = ipaddress.IPv4Address(socket.inet_aton(host.rstrip(".")))
    if not allow_private:
        name = host.rstrip(".")
        if literal is not None and (reason := refused_address(literal)):
            shown = host if netloc["ipv6"] or str(literal) == host else f"{host} ({literal})"
            raise BadArgument(f"url: the address {shown} is refused ({reason}); webhooks reach only public hosts")
        if literal is None and ("." not in name or name.endswith(_INTERNAL_SUFFIXES)):
            raise BadArgument(f"url: the host {name!r} is an internal name; webhooks reach only public hosts")
    return _Url(parts.scheme, host, port, url[len(parts.scheme) + 3 + len(parts.netloc) :], literal)


def checked_url(url: str, allow_private: bool) -> str:
    """The URL normalised (scheme and host lower-case, IDNA names in ASCII, path and query
    untouched) when it may be registered. No DNS: names are resolved and judged at each delivery."""
    parsed = _parsed(url, allow_private)
    return parsed.with_host(parsed.host)


@dataclass(frozen=True)
class Target:
    """Where one delivery attempt connects, and what it tells the server."""

    url: str  # the URL to request: host replaced by the pinned IP (IPv6 in brackets), same port/path/query
    host_header: str  # the original host[:port] for the Host header
    sni_hostname: str | None  # the original host name for TLS (https with a name), else None
    address: str  # the IP address connected to


async def resolved_target(url: str, allow_private: bool) -> Target:
    """Check ``url``, resolve its host off the event loop, refuse it when any address is refused
    (one private address among public ones would be reached on some attempts), pin the first."""
    parsed = _parsed(url, allow_private)
    if parsed.literal is not None:
        addresses: list[Address] = [parsed.literal]
    else:
        infos: list = []
        with suppress(OSError):
            infos = await asyncio.get_running_loop().getaddrinfo(parsed.host, None, type=socket.SOCK_STREAM)
        addresses = list(dict.fromkeys(ipaddress.ip_address(str(info[4][0]).partition("%")[0]) for info in infos))
        if not addresses:
            raise BadArgument(f"url: could not resolve host {parsed.host!r}")
    for address in addresses:
        if not allow_private and (reason := refused_address(address)):
            raise BadArgument(f"url: the host {parsed.host!r} resolves to {address}, which is refused ({reason})")
    pinned, named_tls = str(addresses[0]), parsed.scheme == "https" and parsed.literal is None
    sni_hostname = parsed.host.rstrip(".") if named_tls else None
    return Target(parsed.with_host(pinned), parsed.netloc(parsed.host), sni_hostname, pinned)
