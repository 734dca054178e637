"""dpsecctl capture --point drop sees every packet IPsec drops, with its reason.

net_pcap ports replay (infinite_rx) one frame per drop cause, built by scapy:
on wan an ICMP echo in clear where the fwd policy requires ESP, the inbound
SA's first ESP packet (accepted once, then a replay), its seq 2 with a broken
ICV, ESP for an SPI nobody has, ESP too short for its sequence number, AH for
an unknown SPI, AH with a broken ICV (scapy's AH, HMAC-SHA2-256-128), and
IPComp whose payload is no DEFLATE stream; on lan a packet
under a require policy without an SA and one under a discard policy. One
drop capture must hold each of them, byte for byte as sent where the packet
is refused before any transform, each with the comment naming its reason,
SA, policy and port.
"""
import struct
import subprocess
import time
from collections import defaultdict

import pytest
from scapy.all import ICMP, IP, UDP, Ether, Raw, rdpcap, raw, wrpcap

from dpsec import DPSECCTL, Daemon
from test_ah_pcap import AhTunnel
from test_esp_pcap import (GW, HOST, LAN_NET, WAN4, Tunnel, base_config, forget_runtime_dir, forwarded,
                           frame_from_host, frame_to_gw, peer_addr, remote_host, remote_net)

CPI = 0x3005
NOSA_NET, DISCARD_NET = "10.99.0.0/24", "10.98.0.0/24"


def host_udp(dst, tag):
    return raw(IP(src=HOST[4], dst=dst, ttl=64) / UDP(sport=7000, dport=7001) / Raw(tag.encode()))


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    workdir = str(tmp_path_factory.mktemp("ops13-dropcap"))
    t = Tunnel(1, "aes-gcm-128", n_out=1, n_in=1)
    # the policy-failure log too, often enough to sample every cause of the flood
    cfg = base_config(workdir, ipsec={"policy_log_interval_ms": 1})
    for i, name in enumerate(("LAN", "WAN")):
        cfg["ports"][i]["device"] = (f"net_pcap{i},rx_pcap={workdir}/{name}_IN.pcap,tx_pcap=/dev/null,"
                                     "infinite_rx=1")
    cfg["sas"] += t.sas()
    cfg["policies"] += t.policies()
    ah_t = AhTunnel(7, "hmac-sha2-256-128", n_out=0, n_in=1)
    cfg["sas"] += ah_t.sas()
    cfg["policies"] += ah_t.policies()
    comp_peer = peer_addr(4, 5)
    cfg["sas"].append({"spi": CPI, "direction": "in", "proto": "ipcomp", "mode": "tunnel",
                       "src": comp_peer, "dst": GW[4], "reqid": CPI})
    cfg["policies"] += [
        {"direction": "fwd", "src": remote_net(4, 5), "dst": LAN_NET[4], "action": "protect",
         "ipsec": [{"proto": "ipcomp", "mode": "tunnel", "level": "require", "reqid": CPI,
                    "tunnel": {"src": comp_peer, "dst": GW[4]}}]},
        {"direction": "out", "src": LAN_NET[4], "dst": NOSA_NET, "action": "protect",
         "ipsec": [{"proto": "esp", "mode": "tunnel", "level": "require", "reqid": 99,
                    "tunnel": {"src": WAN4, "dst": "198.51.100.99"}}]},
        {"direction": "out", "src": LAN_NET[4], "dst": DISCARD_NET, "action": "discard"},
    ]
    bad_icv = bytearray(t.esp_frame(2, t.in_inner[0]))
    bad_icv[-1] ^= 0xff
    unknown = bytearray(t.esp_frame(3, t.in_inner[0]))
    unknown[34:38] = (0x7777).to_bytes(4, "big")        # Ether 14 + IPv4 20: the SPI
    # RFC 4302 2.2: next header, payload length (ICV of 12 bytes: 4), reserved, SPI, seq, ICV
    ah = struct.pack("!BBHLL", 4, 4, 0, 0x8888, 1) + bytes(12) + t.in_inner[0]
    wan = {
        "plaintext": frame_to_gw(IP(src=remote_host(4, 1), dst=HOST[4], ttl=64) / ICMP(id=7, seq=1)),
        "replay": t.in_frames[0],
        "auth": bytes(bad_icv),
        "unknown_spi": bytes(unknown),
        "malformed": frame_to_gw(IP(src=t.peer, dst=WAN4, proto=50) / Raw(struct.pack("!LH", t.spi_in, 0))),
        "unknown_spi ah": frame_to_gw(IP(src=t.peer, dst=WAN4, proto=51) / Raw(ah)),
        "auth ah": ah_t.ah_frame(2, ah_t.in_inner[0], icv_flip=True),
        # BTYPE 11 (RFC 1951 3.2.3): no DEFLATE stream
        "decomp": frame_to_gw(IP(src=comp_peer, dst=GW[4], proto=108) / Raw(struct.pack("!BBH", 4, 0, CPI)
                                                                            + b"\xff" * 64)),
    }
    lan = {
        "no_sa": frame_from_host(IP(host_udp("10.99.0.7", "nosa"))),
        "discard": frame_from_host(IP(host_udp("10.98.0.7", "discard"))),
    }
    wrpcap(f"{workdir}/WAN_IN.pcap", [Ether(f) for f in wan.values()])
    wrpcap(f"{workdir}/LAN_IN.pcap", [Ether(f) for f in lan.values()])
    d = Daemon(cfg, workdir)
    d.start()
    try:
        pols = d.ctl_json("policy")["policies"]
        sas = d.ctl_json("sa")["sas"]
        out = f"{workdir}/drop.pcapng"
        t0 = time.time()
        p = subprocess.run([DPSECCTL, "-p", d.prefix, "capture", "--point", "drop", "-c", "200",
                            "--rate", "100000", "--timeout", "20", "-w", out], capture_output=True, timeout=60)
        assert p.returncode == 0, p.stderr.decode()
        t1 = time.time()
        time.sleep(3)  # more of the policy-failure log's samples
        stats = d.port_stats()
        sa_stats = {int(str(s["spi"]), 0): s for s in d.ctl_json("sa")["sas"].values()}
    finally:
        d.stop()
        forget_runtime_dir(d)
    pol_id = {(p["dir"], p["src"], p["dst"]): k.removeprefix("policy") for k, p in pols.items()}
    sa_id = {int(str(s["spi"]), 0): k.removeprefix("sa") for k, s in sas.items()}
    by_reason = defaultdict(list)
    pkts = rdpcap(out)
    for k in pkts:
        c = k.comment.decode()
        by_reason[c.rsplit(" reason ", 1)[-1]].append((raw(k), c))
    polog = [line for line in d.read_log().splitlines() if "policy-fail:" in line]
    yield dict(t=t, ah_t=ah_t, wan=wan, polog=polog, times=[float(k.time) for k in pkts], window=(t0, t1), lan=lan, pol=pol_id, sa=sa_id, got=by_reason, stats=stats, sa_stats=sa_stats)


def packets(r, reason, proto=None):
    got = r["got"][reason]
    assert got, f"no packet dropped for {reason} in the capture: {sorted(r['got'])}"
    return [(f, c) for f, c in got if proto is None or f[14 + 9] == proto]


def test_every_packet_of_the_capture_names_a_known_reason(run):
    assert set(run["got"]) <= {"plaintext", "replay", "auth", "unknown_spi", "malformed", "decomp",
                               "no_sa", "discard"}, sorted(run["got"])


@pytest.mark.parametrize("reason", ["replay", "unknown_spi", "malformed", "decomp"])
def test_wan_drop_before_any_transform_is_the_frame_as_sent(run, reason):
    frames = packets(run, reason, proto=None if reason != "unknown_spi" else 50)
    for f, _ in frames:
        assert f[14:] == run["wan"][reason][14:]


def test_plaintext_drop_is_the_packet_as_forwarded(run):
    """The fwd policy check comes after forwarding's TTL decrement."""
    for f, _ in packets(run, "plaintext"):
        assert f[14:] == forwarded(run["wan"]["plaintext"][14:])


def test_unknown_ah_spi_is_captured(run):
    frames = packets(run, "unknown_spi", proto=51)
    assert frames, "AH for an unknown SPI missing from the drop capture"
    assert all(f[14:] == run["wan"]["unknown_spi ah"][14:] for f, _ in frames)


def test_bad_icv_is_captured_with_its_sa(run):
    """After a failed ICV the payload may have been decrypted in place: the outer
    header, SPI and sequence number are those of the frame sent."""
    want = run["wan"]["auth"][14:14 + 28]
    for f, _ in packets(run, "auth", proto=50):
        assert f[14:14 + 28] == want


def test_bad_ah_icv_is_captured_with_its_sa(run):
    frames = packets(run, "auth", proto=51)
    assert frames, "AH with a broken ICV missing from the drop capture"
    sa = run["sa"][run["ah_t"].spi_in]
    for f, c in frames:
        # RFC 4302 2.4: the SPI at offset 4 of the AH header, after the outer IPv4 header
        assert f[14 + 20 + 4:14 + 20 + 8] == run["ah_t"].spi_in.to_bytes(4, "big")
        assert c == f"point drop sa {sa} policy - port wan reason auth", c


@pytest.mark.parametrize("reason", ["no_sa", "discard"])
def test_lan_policy_drops_are_the_packet_as_forwarded(run, reason):
    for f, _ in packets(run, reason):
        assert f[14:] == forwarded(run["lan"][reason][14:])


def test_comments_name_sa_policy_and_port(run):
    t, pol, sa = run["t"], run["pol"], run["sa"]
    want = {
        "plaintext": f"sa - policy {pol[('fwd', remote_net(4, 1), LAN_NET[4])]} port wan",
        "replay": f"sa {sa[t.spi_in]} policy - port wan",
        "auth": f"sa {sa[t.spi_in]} policy - port wan",   # ESP (AH: its own test)
        "unknown_spi": "sa - policy - port wan",
        "malformed": "sa - policy - port wan",
        "decomp": f"sa {sa[CPI]} policy - port wan",
        "no_sa": f"sa - policy {pol[('out', LAN_NET[4], NOSA_NET)]} port lan",
        "discard": f"sa - policy {pol[('out', LAN_NET[4], DISCARD_NET)]} port lan",
    }
    for reason, middle in want.items():
        for _, c in packets(run, reason, proto=50 if reason == "auth" else None):
            assert c == f"point drop {middle} reason {reason}", c


def test_the_drops_were_counted_too(run):
    wan, lan = run["stats"]["wan"], run["stats"]["lan"]
    assert wan["drop_plaintext"] and wan["drop_unknown_spi"] and wan["drop_esp_malformed"]
    assert lan["drop_no_sa"] and lan["drop_policy"]
    s_in, s_comp = run["sa_stats"][run["t"].spi_in], run["sa_stats"][CPI]
    assert s_in["drop_replay"] and s_in["drop_auth"] and s_comp["drop_decomp"]


def test_ah_failures_are_logged_as_policy_failures(run):
    """AH's integrity failure and unknown SPI are policy failures, as ESP's are
    (ipsec.policy_log_interval_ms: 1 samples the flood)."""
    t = run["ah_t"]
    lines = run["polog"]
    assert any("reason auth " in x and f" ah {t.peer} > " in x and f"spi 0x{t.spi_in:08x}" in x
               for x in lines), lines[:20]
    assert any("reason unknown_spi " in x and " ah " in x and "spi 0x00008888" in x for x in lines), lines[:20]


def test_packet_times_are_when_they_were_captured(run):
    """Each block's timestamp lies within the capture's run on the wall clock
    (DPDK 22.11's rte_pcapng alone dates a process's first copies ~220 years
    ahead: capture.c writes the timestamps itself)."""
    t0, t1 = run["window"]
    assert run["times"] and all(t0 - 0.5 <= t <= t1 + 0.5 for t in run["times"]), \
        (t0, t1, run["times"][:3])
    assert run["times"] == sorted(run["times"])
