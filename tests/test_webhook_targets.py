"""The SSRF rules of webhook targets (detections/webhooks/targets.py), with
names resolved from a table: nothing here touches the network."""

import pytest

from detections.webhooks import targets

TABLE = {
    "gate.example": ["93.184.215.14"],
    "v6.example": ["2606:2800:220:1:248:1893:25c8:1946"],
    "split.example": ["93.184.215.14", "10.1.2.3"],  # one public address, one private
    "lan.example": ["192.168.1.20"],
}


@pytest.fixture(autouse=True)
def resolver(monkeypatch):
    asked = []

    def resolve(host, port):
        asked.append((host, port))
        if host in TABLE:
            return TABLE[host]
        if host.replace(".", "").isdigit() or ":" in host:
            return [host]
        raise OSError(f"{host}: name does not resolve")

    monkeypatch.setattr(targets, "resolve", resolve)
    return asked


def test_a_public_name_is_checked_and_the_connection_goes_to_the_checked_address(resolver):
    target = targets.check("https://gate.example:8443/hook?key=1")

    assert resolver == [("gate.example", 8443)]
    assert target.address == "93.184.215.14"
    assert target.connect_url == "https://93.184.215.14:8443/hook?key=1"
    assert target.host_header == "gate.example:8443"
    assert target.tls_server_name == "gate.example"


def test_plain_http_on_the_default_port_sends_the_bare_host_and_no_tls_name():
    target = targets.check("http://gate.example/hook")

    assert (target.connect_url, target.host_header, target.tls_server_name) == (
        "http://93.184.215.14/hook",
        "gate.example",
        None,
    )


def test_an_ipv6_target_is_written_in_brackets():
    target = targets.check("https://v6.example/")

    assert target.connect_url == "https://[2606:2800:220:1:248:1893:25c8:1946]/"


@pytest.mark.parametrize(
    "url, kind",
    [
        ("http://127.0.0.1/", "loopback"),
        ("http://[::1]/", "loopback"),
        ("http://[::ffff:127.0.0.1]/", "loopback"),
        ("http://10.0.0.1/", "private"),
        ("http://[::ffff:10.0.0.1]/", "private"),
        ("http://172.16.5.4/", "private"),
        ("http://192.168.1.1/", "private"),
        ("http://[fd00::1]/", "private"),
        ("http://169.254.169.254/", "link-local"),
        ("http://[fe80::1]/", "link-local"),
        ("http://0.0.0.0/", "unspecified"),
        ("http://[::]/", "unspecified"),
        ("http://224.0.0.251/", "multicast"),
        ("http://100.64.0.1/", "non-public"),
        ("http://split.example/", "private"),
        ("http://lan.example/", "private"),
        # IPv6 forms that carry an IPv4 address are checked as that address.
        ("http://[2002:7f00:1::]/", "loopback"),  # 6to4
        ("http://[2002:c0a8:101::1]/", "private"),  # 6to4 of 192.168.1.1
        ("http://[64:ff9b::a9fe:a9fe]/", "link-local"),  # NAT64 of 169.254.169.254
        ("http://[64:ff9b::10.0.0.1]/", "private"),  # NAT64, written with the IPv4 address
        ("http://[::127.0.0.1]/", "loopback"),  # IPv4-compatible
        ("http://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/", "private"),  # Teredo: client 192.0.2.45
        ("http://[2001:0:7f00:1:8000:63bf:3fff:fdd2]/", "loopback"),  # Teredo: server 127.0.0.1
        ("http://[64:ff9b:1::1]/", "reserved"),  # NAT64 for local use
    ],
)
def test_non_public_addresses_are_refused_whichever_way_they_are_written(url, kind):
    with pytest.raises(targets.RefusedTarget, match=rf"not a public address \({kind}\)"):
        targets.check(url)


@pytest.mark.parametrize(
    "url",
    ["file:///etc/passwd", "ftp://gate.example/", "javascript:alert(1)", "//gate.example/", "http:///path"],
)
def test_only_http_and_https_urls_with_a_host_are_targets(url):
    with pytest.raises(targets.RefusedTarget):
        targets.check(url)


@pytest.mark.parametrize(
    "url, carried",
    [
        ("http://[2002:7f00:1::]/", "127.0.0.1"),
        ("http://[64:ff9b::7f00:1]/", "127.0.0.1"),
        ("http://[::7f00:1]/", "127.0.0.1"),
    ],
)
def test_the_refusal_names_the_ipv4_address_an_ipv6_one_carries(url, carried):
    with pytest.raises(targets.RefusedTarget, match=f"which carries {carried}, is not a public address"):
        targets.check(url)


@pytest.mark.parametrize("url", ["http://[2002:5db8:d70e::1]/", "http://[64:ff9b::5db8:d70e]/"])
def test_an_ipv6_form_of_a_public_ipv4_address_is_a_target_connected_to_as_written(url):
    # 6to4 and NAT64 of 93.184.215.14: how an IPv6-only host behind DNS64 reaches a public IPv4 one.
    target = targets.check(url)

    assert target.connect_url == url


def test_webhook_allowed_networks_lets_in_an_ipv6_form_of_a_listed_ipv4_network(settings):
    settings.WEBHOOK_ALLOWED_NETWORKS = ["192.168.1.0/24"]

    assert targets.check("http://[2002:c0a8:114::1]/").address == "2002:c0a8:114::1"
    with pytest.raises(targets.RefusedTarget):
        targets.check("http://[2002:c0a8:214::1]/")  # 192.168.2.20


@pytest.mark.parametrize(
    "url",
    [
        "https://gate.example/hook\r\nX-Injected: 1",
        "https://gate.example/a\nb",
        "https://gate.example/a\tb",
        "https://gate.example/a b",
        "https://gate.example/a\x00b",
        "https://gate.example/a\x1bb",
        "https://gate.example/a\x85b",
        "https://gate.example/a\u00a0b",
        "https://gate example/",
        "https://gate.example:80 80/",
    ],
)
def test_a_url_with_a_space_or_a_control_character_is_refused_not_cleaned(url):
    with pytest.raises(targets.RefusedTarget, match="spaces or control characters"):
        targets.check(url)


def test_a_name_that_does_not_resolve_is_refused():
    with pytest.raises(targets.RefusedTarget, match="does not resolve"):
        targets.check("https://nowhere.invalid/")


def test_credentials_and_bad_ports_are_refused():
    for url in ("https://me:pw@gate.example/", "https://gate.example:0/", "https://gate.example:99999/"):
        with pytest.raises(targets.RefusedTarget):
            targets.check(url)


def test_webhook_allowed_networks_lets_a_listed_network_in_mapped_forms_included(settings):
    settings.WEBHOOK_ALLOWED_NETWORKS = ["192.168.1.0/24", "127.0.0.0/8"]

    assert targets.check("http://lan.example/").address == "192.168.1.20"
    # Connected to as the IPv4 address it maps.
    assert targets.check("http://[::ffff:127.0.0.1]:9000/").connect_url == "http://127.0.0.1:9000/"
    with pytest.raises(targets.RefusedTarget):
        targets.check("http://192.168.2.1/")
    with pytest.raises(targets.RefusedTarget):
        targets.check("http://[::1]/")  # IPv6 loopback is not 127.0.0.0/8
