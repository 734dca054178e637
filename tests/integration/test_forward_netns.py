"""host A -- dpsecd -- host B in network namespaces, over net_af_packet on veth.

Proves forwarding with dynamically resolved neighbours (ARP and ND answered and
asked by the dataplane), the exception path to the gateway's own kernel, and
a clean shutdown.
"""
import hashlib
import os
import subprocess
import tempfile
import time

import pytest

from dpsec import Daemon, sh, wait_listening

LAN4, LAN6 = "10.1.0.1/24", "fd01::1/64"
WAN4, WAN6 = "10.2.0.1/24", "fd02::1/64"
A4, A6, B4, B6 = "10.1.0.2", "fd01::2", "10.2.0.2", "fd02::2"


@pytest.fixture
def gateway(topo, tmp_path):
    ha, gw, hb = topo.ns("ha"), topo.ns("gw"), topo.ns("hb")
    va, ga = topo.link(ha, gw)
    vb, gb = topo.link(hb, gw)
    topo.host(ha, va, [A4 + "/24", A6 + "/64"], ["10.1.0.1", "fd01::1"])
    topo.host(hb, vb, [B4 + "/24", B6 + "/64"], ["10.2.0.1", "fd02::1"])
    topo.dataplane_owned(gw, ga)
    topo.dataplane_owned(gw, gb)
    cfg = {
        "log_level": "info",
        "neighbour": {"reachable_ms": 3000, "retrans_ms": 300, "probes": 2},
        "ports": [
            {"name": "lan", "device": f"net_af_packet0,iface={ga}", "role": "protected",
             "exception_iface": f"dl{topo.tag}", "addresses": [LAN4, LAN6]},
            {"name": "wan", "device": f"net_af_packet1,iface={gb}", "role": "unprotected",
             "exception_iface": f"dw{topo.tag}", "addresses": [WAN4, WAN6]},
        ],
    }
    d = Daemon(cfg, str(tmp_path), ns=gw).start()
    yield d, ha, gw, hb
    assert d.stop() == 0, d.read_log()


def ping(ns, dst, count=3, size=56):
    r = sh(["ping", "-c", str(count), "-i", "0.2", "-W", "2", "-s", str(size), dst], ns=ns,
           check=False)
    assert r.returncode == 0 and f"{count} received" in r.stdout, r.stdout + r.stderr
    assert "duplicates" not in r.stdout, r.stdout


def transfer(src_ns, dst_ns, dst, port, size=12 * 1024 * 1024):
    """Send `size` random bytes over TCP and compare SHA-256 on both ends."""
    data = os.urandom(size)
    fam = "-6" if ":" in dst else "-4"
    with tempfile.TemporaryFile() as sink:
        srv = subprocess.Popen(["ip", "netns", "exec", dst_ns, "nc", fam, "-l", "-N", "-p",
                                str(port)], stdout=sink)
        wait_listening(dst_ns, port)
        cli = subprocess.run(["ip", "netns", "exec", src_ns, "nc", "-N", "-w", "10", dst,
                              str(port)], input=data, capture_output=True, timeout=60)
        srv.wait(timeout=60)
        sink.seek(0)
        out = sink.read()
    assert cli.returncode == 0, cli.stderr
    assert hashlib.sha256(out).hexdigest() == hashlib.sha256(data).hexdigest(), \
        f"received {len(out)} of {size} bytes"


def test_ping_both_ways_ipv4_ipv6(gateway):
    d, ha, gw, hb = gateway
    for size in (56, 1000, 1472):
        ping(ha, B4, size=size)
        ping(hb, A4, size=size)
        ping(ha, B6, size=size)
        ping(hb, A6, size=size)
    st = d.port_stats()
    assert st["lan"]["fwd_ipv4"] >= 9 and st["wan"]["fwd_ipv4"] >= 9
    assert st["lan"]["fwd_ipv6"] >= 9 and st["wan"]["fwd_ipv6"] >= 9
    assert st["lan"]["drop_no_route"] == 0


def test_neighbours_resolved_dynamically(gateway):
    d, ha, gw, hb = gateway
    ping(ha, B4, count=1)
    ping(ha, B6, count=1)
    got = {(n["port"], n["address"]): n for n in d.neighbours()}
    mac_b = sh(["cat", "/sys/class/net/" + sh("ls /sys/class/net | grep ^v", ns=hb).stdout.split()[0]
                + "/address"], ns=hb).stdout.strip().upper()
    assert got[("wan", B4)]["state"] == "reachable"
    assert got[("wan", B4)]["mac"].upper() == mac_b
    assert got[("wan", B6)]["mac"].upper() == mac_b
    assert ("lan", A4) in got and ("lan", A6) in got
    # The hosts learned the gateway from the dataplane's ARP/ND answers.
    assert "10.1.0.1" in sh(["ip", "neigh", "show"], ns=ha).stdout
    assert "fd01::1" in sh(["ip", "-6", "neigh", "show"], ns=ha).stdout


def test_neighbours_age_out_when_unused(gateway):
    d, ha, gw, hb = gateway
    ping(ha, B4, count=1)
    assert any(n["address"] == B4 for n in d.neighbours())
    # reachable_ms 3000: unused entries are removed after it, used ones re-probed.
    d.wait_for(lambda: not any(n["address"] == B4 for n in d.neighbours()), timeout=15,
               what="neighbour entry to age out")


def test_tcp_transfer_both_ways_ipv4(gateway):
    d, ha, gw, hb = gateway
    transfer(ha, hb, B4, 5001)
    transfer(hb, ha, A4, 5002)
    st = d.port_stats()
    assert st["lan"]["fwd_ipv4"] > 8000 and st["wan"]["fwd_ipv4"] > 8000


def test_tcp_transfer_both_ways_ipv6(gateway):
    d, ha, gw, hb = gateway
    transfer(ha, hb, B6, 5003)
    transfer(hb, ha, A6, 5004)
    st = d.port_stats()
    assert st["lan"]["fwd_ipv6"] > 8000 and st["wan"]["fwd_ipv6"] > 8000


def test_gateway_own_address_answered_by_kernel(gateway):
    d, ha, gw, hb = gateway
    before = d.port_stats()
    ping(ha, "10.1.0.1")
    ping(ha, "fd01::1")
    ping(hb, "10.2.0.1")
    # The far side's address is the gateway's too: delivered, not forwarded.
    ping(hb, "10.1.0.1")
    after = d.port_stats()
    assert after["lan"]["punt_kernel"] - before["lan"]["punt_kernel"] >= 6
    assert after["lan"]["from_kernel"] - before["lan"]["from_kernel"] >= 6
    assert after["wan"]["punt_kernel"] - before["wan"]["punt_kernel"] >= 6


def test_kernel_service_on_gateway_reachable(gateway):
    """A TCP service in the gateway's namespace (as an IKE daemon or sshd would be)."""
    d, ha, gw, hb = gateway
    transfer(ha, gw, "10.1.0.1", 5005, size=1024 * 1024)
    transfer(hb, gw, "fd02::1", 5006, size=1024 * 1024)


def test_no_route_is_counted(gateway):
    d, ha, gw, hb = gateway
    before = d.port_stats()["lan"]["drop_no_route"]
    r = sh(["ping", "-c", "2", "-i", "0.2", "-W", "1", "10.99.0.1"], ns=ha, check=False)
    assert r.returncode != 0
    assert d.port_stats()["lan"]["drop_no_route"] - before == 2


# ---- ESP to a peer whose neighbour entry goes away and comes back
REMOTE_NET, REMOTE_HOST = "10.9.0.0/24", "10.9.0.5"
NEW_MAC = "02:00:5e:10:00:42"


@pytest.fixture
def esp_gateway(topo, tmp_path):
    """The same topology, but what host A sends to REMOTE_NET leaves as ESP
    (tunnel, AES-GCM-128) to host B, whose kernel is the "peer": it answers
    ARP for its address, and tcpdump on its link records the ESP frames."""
    ha, gw, hb = topo.ns("ha"), topo.ns("gw"), topo.ns("hb")
    va, ga = topo.link(ha, gw)
    vb, gb = topo.link(hb, gw)
    topo.host(ha, va, [A4 + "/24"], ["10.1.0.1"])
    topo.host(hb, vb, [B4 + "/24"], ["10.2.0.1"])
    topo.dataplane_owned(gw, ga)
    topo.dataplane_owned(gw, gb)
    req = {"proto": "esp", "mode": "tunnel", "level": "require", "reqid": 7,
           "tunnel": {"src": "10.2.0.1", "dst": B4}}
    cfg = {
        "log_level": "info",
        "neighbour": {"reachable_ms": 1000, "retrans_ms": 300, "probes": 2},
        "ports": [
            {"name": "lan", "device": f"net_af_packet0,iface={ga}", "role": "protected",
             "exception_iface": f"dl{topo.tag}", "addresses": [LAN4]},
            {"name": "wan", "device": f"net_af_packet1,iface={gb}", "role": "unprotected",
             "exception_iface": f"dw{topo.tag}", "addresses": [WAN4]},
        ],
        "routes": [{"prefix": REMOTE_NET, "via": B4, "port": "wan"}],
        "sas": [{"spi": 0x4242, "direction": "out", "mode": "tunnel", "src": "10.2.0.1",
                 "dst": B4, "reqid": 7,
                 "encryption": {"algorithm": "aes-gcm-128", "key": "0x" + os.urandom(20).hex()}}],
        "policies": [{"direction": "out", "src": "10.1.0.0/24", "dst": REMOTE_NET,
                      "action": "protect", "ipsec": [req]}],
    }
    d = Daemon(cfg, str(tmp_path), ns=gw).start()
    yield d, ha, hb, vb, tmp_path
    assert d.stop() == 0, d.read_log()


def esp_frames(pcap):
    from scapy.all import ESP, Ether, rdpcap  # noqa: PLC0415 (scapy is slow to import)
    return [(f[Ether].dst.lower(), f[ESP].seq) for f in rdpcap(pcap) if ESP in f]


def test_esp_follows_the_peer_to_its_new_mac_after_its_entry_aged_out(esp_gateway):
    """Each worker keeps an SA's peer route and neighbour entry from one loop
    to the next (dp_output_peer()). Once the entry ages out (freed after a
    grace period) and the peer comes back with another MAC, the SA's next
    packets must go to the new entry's MAC, not to what the freed one held."""
    d, ha, hb, vb, tmp = esp_gateway
    pcap = str(tmp / "peer.pcap")
    old_mac = sh(["cat", f"/sys/class/net/{vb}/address"], ns=hb).stdout.strip().lower()
    cap = subprocess.Popen(["ip", "netns", "exec", hb, "tcpdump", "-U", "-n", "-i", vb, "-w", pcap,
                            "ip proto 50"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        time.sleep(1.5)     # tcpdump listening
        sh(["ping", "-c", "3", "-i", "0.2", "-W", "1", REMOTE_HOST], ns=ha, check=False)
        assert any(n["address"] == B4 for n in d.neighbours())
        # unused, the entry goes (reachable_ms 1000: re-probed once, then removed)
        d.wait_for(lambda: not any(n["address"] == B4 for n in d.neighbours()), timeout=20,
                   what="the peer's neighbour entry to age out")
        sh(["ip", "link", "set", "dev", vb, "address", NEW_MAC], ns=hb)
        sh(["ping", "-c", "3", "-i", "0.2", "-W", "1", REMOTE_HOST], ns=ha, check=False)
        d.wait_for(lambda: any(n["address"] == B4 and n["mac"].lower() == NEW_MAC
                               for n in d.neighbours()), timeout=10,
                   what="the peer's new MAC learnt")
        time.sleep(1)
    finally:
        cap.terminate()
        cap.wait(timeout=10)
    frames = esp_frames(pcap)
    assert [s for _, s in frames] == [1, 2, 3, 4, 5, 6], frames
    assert [m for m, _ in frames] == [old_mac] * 3 + [NEW_MAC] * 3, frames
