"""The crypto queue path at a device's latency, with SAs deleted under traffic.

    host A ---- [lan] dpsecd [wan] ---- host B
    10.1.0.2   10.1.0.1    10.2.0.1    10.2.0.2      routes: 10.9.0.0/16 via host B

dpsecd runs AES-GCM on crypto_aesni_mb's queue pairs (cpu_crypto: false,
engine: cryptodev) with crypto.queue_latency_us, so every operation stays in
flight for that long, across worker loops and quiescent states, as on a
hardware device. Host A floods UDP through an outbound SA; host B floods ESP
for an inbound SA (sealed here by scapy, no dpsec code). Meanwhile a PF_KEY
client deletes both SAs and adds them again, many times. An SA freed while
one of its operations is in flight would be used after it is freed when the
operation completes (its session, its counters, its finish): the daemon would
crash (dp_sa_free zeroes the SA), and under ASan (scripts/test.sh runs this
file with DPSEC_BUILD=build-asan-dp) say where. With the wait taken out of
dp_snapshot_publish, it does.

Then, from dpsecd's own counters once the traffic is over, every packet a
policy or an inbound SA took is accounted for: protected and sent, decrypted,
or counted as a drop (no SA while the outbound one was deleted, and the
drops of the SAs, those deleted included: the per-protocol totals keep them);
and after the last ADD, traffic flows both ways again: host B receives ESP
that scapy decrypts to what host A sent, host A receives what host B sealed.

The second test deletes the outer SA of an inbound bundle (ESP in transport
mode around ESP in tunnel mode) while the packets it decrypted wait for the
inner SA's operations, still naming it for the inbound check of the chain:
the wait must cover those too (dp_crypto_settle's rounds). With a single
round, 20 of them were dropped against the policy (the freed SA zeroed
under them) in each of two runs.
"""
import os
import shutil
import subprocess
import tempfile
import time

import pytest
from scapy.all import ESP, IP, UDP, Ether, Raw, rdpcap, wrpcap
from scapy.layers.ipsec import SecurityAssociation

import pfkey as K
from dpsec import Daemon, sh
from test_pfkey_server import hosts_and_gateway

GW_LAN, GW_WAN, HOST_A, HOST_B = "10.1.0.1", "10.2.0.1", "10.1.0.2", "10.2.0.2"
KEY_OUT = bytes(range(20))  # AES-128 key + 4-byte salt
KEY_IN = bytes(range(100, 120))
SPI_OUT, SPI_IN, REQID_OUT, REQID_IN = 0x8001, 0x9001, 5, 6
LATENCY_US = 500  # operations in flight at a few thousand packets per second
CYCLES = 12  # deletions of each SA under traffic
N_UDP, N_ESP = 20000, 16000  # 4 and 3 s of traffic: longer than the deletions

# UDP from host A, @n datagrams in bursts of @burst with @gap seconds between.
UDP_SENDER = r"""
import socket, sys, time
dst, n, burst, gap = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for i in range(n):
    s.sendto(b"plaintext-%06d" % i, (dst, 9000))
    if i % burst == burst - 1:
        time.sleep(gap)
"""

# Frames of a pcap file sent as they are on an interface, in bursts.
FRAME_SENDER = r"""
import socket, sys, time
from scapy.all import rdpcap
ifc, path, burst, gap = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
frames = [bytes(p) for p in rdpcap(path)]
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind((ifc, 0))
for i, f in enumerate(frames):
    s.send(f)
    if i % burst == burst - 1:
        time.sleep(gap)
"""

# Counts the UDP datagrams host A receives on port 9001, until SIGTERM.
RECEIVER = r"""
import signal, socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)
s.bind(("0.0.0.0", 9001))
got = []
signal.signal(signal.SIGTERM, lambda *a: (print("\n".join(got), flush=True), sys.exit(0)))
while True:
    got.append(s.recv(2048).decode())
"""


def config(ga, gb, tag, sock):
    return {
        "ports": [
            {"name": "lan", "device": f"net_af_packet0,iface={ga}", "role": "protected",
             "exception_iface": f"ql{tag}", "addresses": [GW_LAN + "/24"]},
            {"name": "wan", "device": f"net_af_packet1,iface={gb}", "role": "unprotected",
             "exception_iface": f"qw{tag}", "addresses": [GW_WAN + "/24"]},
        ],
        "routes": [{"prefix": "10.9.0.0/16", "via": HOST_B, "port": "wan"}],
        "crypto": {"devices": ["crypto_aesni_mb"], "cpu_crypto": False, "engine": "cryptodev",
                   "queue_latency_us": LATENCY_US},
        "pfkey": {"socket": sock},
    }


@pytest.fixture
def gw(topo, tmp_path):
    ha, g, hb, ga, gb, vb = hosts_and_gateway(topo, b_via_gw=True)
    sockdir = tempfile.mkdtemp(prefix="dpsec-qpath-")
    sock = os.path.join(sockdir, "pfkey.sock")
    d = Daemon(config(ga, gb, topo.tag, sock), str(tmp_path), ns=g).start()
    d.ha, d.hb, d.vb, d.tmp = ha, hb, vb, tmp_path
    d.mac_wan = sh(["cat", f"/sys/class/net/{gb}/address"], ns=g).stdout.strip()
    d.mac_b = sh(["cat", f"/sys/class/net/{vb}/address"], ns=hb).stdout.strip()
    d.pfk = K.Client(sock)
    yield d
    d.pfk.close()
    rc = d.stop()
    shutil.rmtree(sockdir, ignore_errors=True)
    assert rc == 0, d.read_log()


def add_out(c):
    assert c.request(K.gcm_add(SPI_OUT, GW_WAN, HOST_B, REQID_OUT, KEY_OUT, replay=0)).errno == 0


def add_in(c):
    assert c.request(K.gcm_add(SPI_IN, HOST_B, GW_WAN, REQID_IN, KEY_IN)).errno == 0


def delete(c, spi, src, dst):
    assert c.request(K.msg(K.DELETE, K.ESP, [K.sa(spi), K.address(K.SRC, src),
                                             K.address(K.DST, dst)])).errno == 0


def policies(c):
    out = K.spd(K.SPDADD, K.DIR_OUT, "10.1.0.0/24", "10.9.1.0/24", priority=1000,
                requests=[K.ipsecrequest(50, K.MODE_TUNNEL, K.LEVEL_REQUIRE, REQID_OUT,
                                         (GW_WAN, HOST_B))])
    fwd = K.spd(K.SPDADD, K.DIR_FWD, "10.9.2.0/24", "10.1.0.0/24", priority=1000,
                requests=[K.ipsecrequest(50, K.MODE_TUNNEL, K.LEVEL_REQUIRE, REQID_IN,
                                         (HOST_B, GW_WAN))])
    return c.request(out).ext[K.POLICY].id, c.request(fwd).ext[K.POLICY].id


def esp_frames(d, first, n):
    """Host B's ESP for the inbound SA, sequence numbers first.., inner UDP to host A."""
    sa = SecurityAssociation(ESP, spi=SPI_IN, crypt_algo="AES-GCM", crypt_key=KEY_IN,
                             tunnel_header=IP(src=HOST_B, dst=GW_WAN))
    frames = []
    for i in range(first, first + n):
        inner = IP(src="10.9.2.5", dst=HOST_A) / UDP(sport=9001, dport=9001) / Raw(b"sealed-%06d" % i)
        frames.append(Ether(src=d.mac_b, dst=d.mac_wan) / sa.encrypt(inner, seq_num=i))
    return frames


def in_ns(ns, *cmd, **kw):
    return subprocess.Popen(["ip", "netns", "exec", ns] + list(cmd), **kw)


def send_udp(d, n, burst, gap):
    return in_ns(d.ha, "/usr/bin/python3", "-c", UDP_SENDER, "10.9.1.5", str(n), str(burst), str(gap))


def send_esp(d, frames, name, burst, gap):
    path = str(d.tmp / name)
    wrpcap(path, frames)
    return in_ns(d.hb, "/usr/bin/python3", "-c", FRAME_SENDER, d.vb, path, str(burst), str(gap))


def receiver(d):
    return in_ns(d.ha, "/usr/bin/python3", "-c", RECEIVER, stdout=subprocess.PIPE, text=True)


def stop_receiver(p):
    p.terminate()
    out, _ = p.communicate(timeout=10)
    return [line for line in out.splitlines() if line]


def hits(d, pid):
    return {p["id"]: p for p in d.ctl_json("policy")["policies"].values()}[pid]["hits"]


def esp_totals(d):
    return d.ctl_json("stats", "esp")["esp"]


def quiet(d):
    """Wait until dpsecd's counters stop moving: nothing left in flight."""
    last = None
    for _ in range(100):
        now = (d.port_stats(), esp_totals(d))
        if now == last:
            return now
        last = now
        time.sleep(0.3)
    raise AssertionError("dpsecd's counters never settled")


def test_sas_deleted_while_their_operations_are_in_flight(gw):
    c = gw.pfk
    pid_out, pid_fwd = policies(c)
    add_out(c)
    add_in(c)
    # Both ways at once, a few thousand packets a second each, while each SA
    # is deleted and added again CYCLES times.
    frames = esp_frames(gw, 1, N_ESP)
    rx = receiver(gw)
    esp = send_esp(gw, frames, "flood.pcap", 20, 0.004)
    udp = send_udp(gw, N_UDP, 20, 0.004)
    gw.wait_for(lambda: (lambda p: p["lan"]["ipsec_out"] > 100 and p["wan"]["ipsec_in"] > 100)(
        gw.port_stats()), timeout=60, what="traffic both ways")
    cycles = 0
    while cycles < CYCLES and udp.poll() is None and esp.poll() is None:
        delete(c, SPI_OUT, GW_WAN, HOST_B)
        delete(c, SPI_IN, HOST_B, GW_WAN)
        time.sleep(0.02)
        add_out(c)
        add_in(c)
        time.sleep(0.05)
        cycles += 1
    assert cycles >= 4, "the traffic ended before the SAs were deleted a few times"
    assert udp.wait(timeout=120) == 0 and esp.wait(timeout=120) == 0
    ports, st = quiet(gw)
    flood_rx = stop_receiver(rx)

    # The daemon is up, and every packet a policy or an inbound SA took is
    # accounted for: sent, decrypted, or a counted drop.
    lan, wan = ports["lan"], ports["wan"]
    sa_drops = {k: v for k, v in st.items()
                if k.startswith("drop_") and k not in ("drop_unknown_spi", "drop_malformed")}
    assert sa_drops["drop_policy"] == 0 and sa_drops["drop_auth"] == 0
    assert lan["drop_no_sa"] > 0, "the outbound SA was never missing under traffic"
    assert wan["drop_unknown_spi"] > 0, "the inbound SA was never missing under traffic"
    assert st["out_packets"] > 0 and st["in_packets"] > 0
    assert hits(gw, pid_out) + wan["ipsec_in"] == \
        st["out_packets"] + st["in_packets"] + lan["drop_no_sa"] + lan["drop_mtu"] + sum(sa_drops.values())
    assert wan["ipsec_in"] + wan["drop_unknown_spi"] <= N_ESP
    assert hits(gw, pid_fwd) == st["in_packets"]
    assert len(flood_rx) <= st["in_packets"]

    # After the last ADD, traffic flows both ways.
    cap = gw.tmp / "after.pcap"
    dump = in_ns(gw.hb, "tcpdump", "-i", gw.vb, "-w", str(cap), "--immediate-mode", "-U", "esp",
                 stderr=subprocess.DEVNULL)
    rx = receiver(gw)
    time.sleep(1)
    assert send_udp(gw, 50, 1, 0.01).wait(timeout=60) == 0
    assert send_esp(gw, esp_frames(gw, 20001, 50), "after.pcap.in", 1, 0.01).wait(timeout=60) == 0
    quiet(gw)
    time.sleep(0.5)
    dump.send_signal(2)
    dump.wait(timeout=10)
    after_rx = stop_receiver(rx)
    sa = SecurityAssociation(ESP, spi=SPI_OUT, crypt_algo="AES-GCM", crypt_key=KEY_OUT,
                             tunnel_header=IP(src=GW_WAN, dst=HOST_B))
    wire = [p for p in rdpcap(str(cap)) if ESP in p and p[ESP].spi == SPI_OUT]
    assert len(wire) == 50
    payloads = [bytes(sa.decrypt(p[IP])[UDP].payload) for p in wire]
    assert payloads == [b"plaintext-%06d" % i for i in range(50)]
    assert after_rx == ["sealed-%06d" % i for i in range(20001, 20051)]


SPI_OUTER, KEY_OUTER, REQID_BUNDLE = 0x9101, bytes(range(200, 220)), 7


def nested_esp_frames(d, first, n):
    """Host B's ESP in ESP: tunnel mode SPI_IN inside transport mode SPI_OUTER, both
    to the gateway (an inbound bundle, RFC 4301 4.5)."""
    inner_sa = SecurityAssociation(ESP, spi=SPI_IN, crypt_algo="AES-GCM", crypt_key=KEY_IN,
                                   tunnel_header=IP(src=HOST_B, dst=GW_WAN))
    outer_sa = SecurityAssociation(ESP, spi=SPI_OUTER, crypt_algo="AES-GCM", crypt_key=KEY_OUTER)
    frames = []
    for i in range(first, first + n):
        inner = IP(src="10.9.2.5", dst=HOST_A) / UDP(sport=9001, dport=9001) / Raw(b"sealed-%06d" % i)
        tunnel = IP(bytes(inner_sa.encrypt(inner, seq_num=i)))
        frames.append(Ether(src=d.mac_b, dst=d.mac_wan) / outer_sa.encrypt(tunnel, seq_num=i))
    return frames


def add_outer(c):
    assert c.request(K.gcm_add(SPI_OUTER, HOST_B, GW_WAN, REQID_BUNDLE, KEY_OUTER,
                               mode=K.MODE_TRANSPORT)).errno == 0


def test_bundle_outer_sa_deleted_while_the_inner_layer_is_in_flight(gw):
    """The outer SA of an inbound bundle deleted while packets it decrypted wait
    for the inner SA's operation: they still name it (the inbound check of the
    whole chain), so the SA may be freed only once those too are back."""
    c = gw.pfk
    fwd = K.spd(K.SPDADD, K.DIR_FWD, "10.9.2.0/24", "10.1.0.0/24", priority=1000,
                requests=[K.ipsecrequest(50, K.MODE_TUNNEL, K.LEVEL_REQUIRE, REQID_BUNDLE, (HOST_B, GW_WAN)),
                          K.ipsecrequest(50, K.MODE_TRANSPORT, K.LEVEL_REQUIRE, REQID_BUNDLE)])
    pid = c.request(fwd).ext[K.POLICY].id
    assert c.request(K.gcm_add(SPI_IN, HOST_B, GW_WAN, REQID_BUNDLE, KEY_IN)).errno == 0
    add_outer(c)
    frames = nested_esp_frames(gw, 1, N_ESP)
    rx = receiver(gw)
    esp = send_esp(gw, frames, "nested.pcap", 20, 0.008)
    gw.wait_for(lambda: gw.port_stats()["wan"]["ipsec_in"] > 200, timeout=60, what="nested ESP")
    cycles = 0
    while cycles < CYCLES and esp.poll() is None:
        delete(c, SPI_OUTER, HOST_B, GW_WAN)
        time.sleep(0.02)
        add_outer(c)
        time.sleep(0.05)
        cycles += 1
    assert cycles >= 4, "the traffic ended before the SA was deleted a few times"
    assert esp.wait(timeout=120) == 0
    ports, st = quiet(gw)
    flood_rx = stop_receiver(rx)
    wan = ports["wan"]
    sa_drops = {k: v for k, v in st.items()
                if k.startswith("drop_") and k not in ("drop_unknown_spi", "drop_malformed")}
    assert wan["drop_unknown_spi"] > 0, "the outer SA was never missing under traffic"
    # Each layer is handed to its SA once: accepted, or a counted drop. A
    # packet the outer SA decrypted just before its deletion still passes the
    # inbound check of the chain when the inner one is done (an SA freed
    # under it, zeroed, would not match the policy: drop_policy).
    assert sa_drops["drop_policy"] == 0
    assert wan["ipsec_in"] == st["in_packets"] + sum(sa_drops.values())
    assert hits(gw, pid) * 2 == st["in_packets"]
    assert 0 < len(flood_rx) <= hits(gw, pid)

    rx = receiver(gw)
    time.sleep(1)
    assert send_esp(gw, nested_esp_frames(gw, 20001, 50), "nested-after.pcap", 1, 0.01).wait(timeout=60) == 0
    quiet(gw)
    assert stop_receiver(rx) == ["sealed-%06d" % i for i in range(20001, 20051)]
