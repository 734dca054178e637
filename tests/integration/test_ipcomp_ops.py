"""IPComp in the operator's views: per-protocol totals, the policy-failure log,
the capture's drop point and dpsecctl's SA views.

net_pcap ports that replay their input forever (infinite_rx): lan sends one
compressible packet for an outbound IPComp tunnel SA over and over; wan
sends, for an inbound IPComp tunnel SA, an invalid DEFLATE stream (BTYPE 11),
a decompression bomb (60000 zero bytes, beyond the MTU-derived bound) and a
valid stream under a CPI nobody has. Each record and each captured packet
must name its cause (decomp, bomb, unknown_spi with the CPI) and be decoded
as the frame scapy built; `dpsecctl stats ipcomp` must be exactly the sum of
the SAs' and ports' own counters.
"""
import re
import struct
import subprocess
import time
import zlib

import pytest
from scapy.all import IP, UDP, Ether, Raw, rdpcap, raw, wrpcap

from dpsec import DPSECCTL, Daemon
from test_esp_pcap import GW, HOST, LAN_NET, base_config, forget_runtime_dir, forwarded, frame_from_host, \
    peer_addr, remote_host, remote_net

INTERVAL_MS = 100
FLOOD_S = 1.5
OUT_CPI, IN_CPI, UNKNOWN_CPI = 0x1101, 0x2102, 0x7777
PEER = peer_addr(4, 1)
LINE = re.compile(r"policy-fail: reason (\S+) port (\S+) policy (\S+) sa (\S+) (\S+) (\S+) > (\S+)(.*) "
                  r"suppressed (\d+)$")


def deflate(data, level=6):
    c = zlib.compressobj(level, zlib.DEFLATED, -15)
    return c.compress(data) + c.flush()


def ipcomp_frame(cpi, stream):
    return raw(Ether(src="02:00:00:00:00:bb", dst="02:70:63:61:70:01")
               / IP(src=PEER, dst=GW[4], ttl=64, proto=108) / Raw(struct.pack("!BBH", 4, 0, cpi) + stream))


def inner(payload, sport):
    return raw(IP(src=remote_host(4, 1), dst=HOST[4], ttl=64) / UDP(sport=sport, dport=9) / Raw(payload))


@pytest.fixture(scope="module")
def flood(tmp_path_factory):
    wd = str(tmp_path_factory.mktemp("ipcomp-ops"))
    cfg = base_config(wd, ipsec={"policy_log_interval_ms": INTERVAL_MS})
    for i, name in enumerate(("LAN", "WAN")):
        cfg["ports"][i]["device"] = f"net_pcap{i},rx_pcap={wd}/{name}_IN.pcap,tx_pcap=/dev/null,infinite_rx=1"
    cfg["compress"] = {"devices": ["compress_isal", "compress_zlib"]}
    tun = {"src": GW[4], "dst": PEER}
    cfg["sas"] += [
        {"spi": OUT_CPI, "direction": "out", "proto": "ipcomp", "mode": "tunnel", "src": GW[4], "dst": PEER,
         "reqid": OUT_CPI},
        {"spi": IN_CPI, "direction": "in", "proto": "ipcomp", "mode": "tunnel", "src": PEER, "dst": GW[4],
         "reqid": IN_CPI}]
    cfg["policies"] += [
        {"direction": "out", "src": LAN_NET[4], "dst": remote_net(4, 1), "action": "protect",
         "ipsec": [{"proto": "ipcomp", "mode": "tunnel", "level": "require", "reqid": OUT_CPI, "tunnel": tun}]},
        {"direction": "fwd", "src": remote_net(4, 1), "dst": LAN_NET[4], "action": "protect",
         "ipsec": [{"proto": "ipcomp", "mode": "tunnel", "level": "require", "reqid": IN_CPI,
                    "tunnel": {"src": PEER, "dst": GW[4]}}]}]
    lan = frame_from_host(IP(src=HOST[4], dst=remote_host(4, 1), ttl=64) / UDP(sport=1000, dport=9)
                          / Raw(b"compress me, compress me. " * 40))
    wan = {"decomp": ipcomp_frame(IN_CPI, b"\xff" * 64),
           "bomb": ipcomp_frame(IN_CPI, deflate(inner(b"\0" * 60000, 2011), level=9)),
           "unknown_spi": ipcomp_frame(UNKNOWN_CPI, deflate(inner(b"abc" * 300, 2012)))}
    d_lan = lan
    wrpcap(f"{wd}/LAN_IN.pcap", [Ether(lan)])
    wrpcap(f"{wd}/WAN_IN.pcap", [Ether(f) for f in wan.values()])
    d = Daemon(cfg, wd)
    d.start()
    try:
        d.workdir, d.lan = wd, d_lan
        time.sleep(FLOOD_S)
        yield d, wan
    finally:
        d.stop()
        forget_runtime_dir(d)


def sa_ids(d):
    return {int(str(s["spi"]), 0): k.removeprefix("sa") for k, s in d.ctl_json("sa")["sas"].items()}


def capture(d, name, *args):
    out = f"{d.workdir}/{name}.pcapng"
    p = subprocess.run([DPSECCTL, "-p", d.prefix, "capture"] + list(args) + ["-w", out],
                       capture_output=True, timeout=30)
    assert p.returncode == 0, p.stderr.decode()
    return rdpcap(out)


def test_out_cipher_is_ipcomp_that_zlib_inflates(flood):
    """The out-cipher point of the IPComp SA: IPComp from the gateway to the peer
    with the SA's CPI, whose stream Python's zlib inflates to the forwarded packet."""
    d, _ = flood
    sa = sa_ids(d)[OUT_CPI]
    pkts = capture(d, "out-cipher", "--point", "out-cipher", "--sa", sa, "-c", "3")
    assert len(pkts) == 3
    for k in pkts:
        ip = raw(k)[14:]
        assert ip[9] == 108 and ip[12:16] == bytes(map(int, GW[4].split("."))), ip[:20].hex()
        assert struct.unpack("!BBH", ip[20:24]) == (4, 0, OUT_CPI)
        assert zlib.decompress(ip[24:], wbits=-15) == forwarded(d.lan[14:])
        assert k.comment.decode() == f"point out-cipher sa {sa} policy - port lan"


def test_in_cipher_is_the_peers_ipcomp(flood):
    d, wan = flood
    sa = sa_ids(d)[IN_CPI]
    pkts = capture(d, "in-cipher", "--point", "in-cipher", "--sa", sa, "-c", "4")
    assert len(pkts) == 4
    assert {raw(k)[14:] for k in pkts} == {wan["decomp"][14:], wan["bomb"][14:]}


def test_drop_point_names_each_ipcomp_cause(flood):
    """The capture's drop point: every packet is one of the frames wan sent, and
    its comment names the SA (none for the unknown CPI) and the cause."""
    d, wan = flood
    ids = sa_ids(d)
    pkts = capture(d, "drop", "--point", "drop", "-c", "30")
    by_frame = {f[14:]: cause for cause, f in wan.items()}
    seen = set()
    for k in pkts:
        cause = by_frame.get(raw(k)[14:])
        assert cause is not None, raw(k)[14:60].hex()
        sa = "-" if cause == "unknown_spi" else ids[IN_CPI]
        assert k.comment.decode() == f"point drop sa {sa} policy - port wan reason {cause}"
        seen.add(cause)
    assert seen == set(wan)


def test_policy_failure_log_decodes_ipcomp_records(flood):
    """Records name the cause; a record of the inbound SA carries its endpoints and
    CPI, an unknown CPI's the frame's addresses and its CPI."""
    d, wan = flood
    ids = sa_ids(d)
    recs = [LINE.search(line) for line in d.read_log().splitlines() if "policy-fail:" in line]
    assert recs and all(recs), "unparsed policy-fail line"
    want = {
        "decomp": ("wan", "-", ids[IN_CPI], "ipcomp", PEER, GW[4], f" cpi 0x{IN_CPI:04x}"),
        "bomb": ("wan", "-", ids[IN_CPI], "ipcomp", PEER, GW[4], f" cpi 0x{IN_CPI:04x}"),
        "unknown_spi": ("wan", "-", "-", "ipcomp", PEER, GW[4], f" cpi 0x{UNKNOWN_CPI:04x}"),
    }
    seen = set()
    for r in recs:
        assert r.group(1) in want, r.group(0)
        assert r.groups()[1:8] == want[r.group(1)], r.group(0)
        seen.add(r.group(1))
    # which frame of wan's loop a record catches depends on where the burst
    # starts when the interval ends (the capture above sees all three): decomp
    # and bomb are the same call, so one of them and the unknown CPI suffice
    assert "unknown_spi" in seen and seen & {"decomp", "bomb"}, seen


def test_ipcomp_totals_are_the_sas_and_ports_counters(flood):
    d, _ = flood
    # read twice around the SAs and ports: the flood goes on, totals only grow
    st0 = d.ctl_json("stats", "ipcomp")["ipcomp"]
    sas = [s for s in d.ctl_json("sa")["sas"].values() if s["proto"] == "ipcomp"]
    ports = d.port_stats()
    st1 = d.ctl_json("stats", "ipcomp")["ipcomp"]
    assert st0["sas"] == st1["sas"] == 2 == len(sas)
    out = next(s for s in sas if s["dir"] == "out")
    inb = next(s for s in sas if s["dir"] == "in")
    assert st0["out_packets"] <= out["packets"] <= st1["out_packets"] and out["packets"] > 0
    assert st0["in_packets"] == inb["packets"] == 0
    for cause in ("drop_decomp", "drop_bomb"):
        assert st0[cause] <= inb[cause] <= st1[cause] and inb[cause] > 0, cause
    unknown = sum(p["drop_unknown_cpi"] for p in ports.values())
    assert st0["drop_unknown_cpi"] <= unknown <= st1["drop_unknown_cpi"] and unknown > 0
    assert st1["drop_malformed"] == 0
    # IPComp's drops are not ESP's
    esp = d.ctl_json("stats", "esp")["esp"]
    assert esp["drop_unknown_spi"] == 0 and esp["sas"] == 0


def test_sa_views_show_the_ipcomp_sas(flood):
    d, _ = flood
    sas = {int(str(s["spi"]), 0): (k, s) for k, s in d.ctl_json("sa")["sas"].items()}
    for cpi in (OUT_CPI, IN_CPI):
        key, s = sas[cpi]
        assert (s["proto"], s["enc"], s["auth"], s["crypto"]) == ("ipcomp", "deflate", "none", "none")
        assert s["device"] == "compress_isal"
        text = d.ctl("sa", "show", str(s["id"])).stdout
        first = text.splitlines()[0]
        assert first.startswith(f"{key}: spi 0x{cpi:08x} {s['dir']} ipcomp tunnel"), text
        assert "enc deflate auth none" in " ".join(text.split())
