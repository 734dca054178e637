#!/usr/bin/python3
# SPDX-License-Identifier: BSD-3-Clause
"""Write fuzz_dataplane's configuration and seed corpus from the pcap tests'
packets, deterministically (fixed test keys, fixed IVs: the output only
changes when the tests' packets do).

    tests/fuzz/gen_dataplane.py [DIR]   (default: tests/fuzz)

DIR/dataplane.yaml: the gateway of test_esp_pcap.py (ports lan and wan, its
routes and static neighbours) on net_null ports with the pcap ports' MACs,
without hugepages (so no shared files), reassembly on, and SAs of every mode with the
policies that use them: tunnel 4in4, 6in6, 4in6, 6in4 (AES-GCM, AES-CBC with
HMAC, ChaCha20-Poly1305, AES-GMAC, ESN), ESP in UDP (NAT-T), transport mode on
the forwarding path, plus bypass and discard policies and the levels use and
unique; an IPComp tunnel (4in4) both ways; SA bundles ([ipcomp, esp] and
[esp, ah], test_bundle_pcap.py's) in tunnel mode both ways, transport out.

DIR/corpus_dataplane/*: one or more records per file, each as
    port (1 byte: 0 lan, 1 wan) | length (2 bytes, big endian) | frame
the format fuzz_dataplane.c reads: the LAN host's packets for each outbound
SA, the peers' ESP for each inbound SA (whole, fragmented, tampered,
replayed), test_pcap.py's forwarding cases, ARP and neighbour discovery;
and records the harness seals with an inbound AES-GCM SA (see sealed()).
"""
import os
import struct
import sys
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))

import yaml  # noqa: E402
from scapy.all import IP, UDP, IPv6, Raw, fragment, fragment6, IPv6ExtHdrFragment  # noqa: E402
from scapy.compat import raw  # noqa: E402

import pcaps  # noqa: E402
import test_bundle_pcap as B  # noqa: E402
import test_esp_pcap as T  # noqa: E402

LAN, WAN = 0, 1


def tunnels():
    """SAs of every mode: the families scenario (4in6, 6in4, 6in4 in UDP) and a
    part of the algorithm matrix (4in4, 6in6, CBC+HMAC, ChaCha20, NAT-T, ESN),
    GMAC, and transport mode both families."""
    ts = T.family_tunnels()
    ts += [t for t in T.matrix_tunnels() if t.i in (1, 2, 5, 7, 19, 21, 23, 24)]
    ts += T.gmac_tunnels()[:1]
    ts += [T.Tunnel(61, "aes-gcm-128", mode="transport"),
           T.Tunnel(62, "aes-cbc-128", "hmac-sha2-256-128", inner=6, mode="transport")]
    return ts


def config(ts):
    cfg = T.base_config("/nonexistent", "cpu")
    cfg["log_level"] = "err"
    # --no-huge: DPDK refuses it with --in-memory, and it implies --no-shconf (no files)
    cfg["eal"] = {"lcores": "0-1", "hugepages": False, "memory_mb": 256,
                  "file_prefix": "dpsfuzz"}
    cfg["dataplane"] = {"mbufs": 4095, "burst": 32, "icmp_rate": 100000, "icmp_burst": 1000,
                        "reassembly": {"max_flows": 64, "timeout_ms": 100}}
    # few held packets per unresolved neighbour: fuzz_dataplane bounds the mbufs in use
    cfg["neighbour"] = {"max_entries": 64, "queue_len": 4}
    for p, dev, mac in zip(cfg["ports"], ("net_null0", "net_null1"), (T.LAN_MAC, T.WAN_MAC)):
        p["device"], p["mac"] = dev, mac
    for t in ts:
        cfg["sas"] += t.sas()
        cfg["policies"] += t.policies()
        if t.mode == "transport":  # inbound transport mode: the peer host to the gateway
            cfg["sas"].append(t._sa_cfg(t.spi_in, "in", t.peer, t.gw, *t.keys["in"]))
            bits = 32 if t.inner == 4 else 128
            cfg["policies"].append({"direction": "in", "src": f"{t.peer}/{bits}", "dst": f"{t.gw}/{bits}",
                                    "action": "protect", "ipsec": t._req(None, None)})
    # levels other than require: use on one tunnel's outbound policy, unique on another's
    for pol in cfg["policies"]:
        if pol["direction"] == "out" and pol["ipsec"][0]["reqid"] == 1:
            pol["ipsec"][0]["level"] = "use"
        if pol["direction"] == "out" and pol["ipsec"][0]["reqid"] == 2:
            pol["ipsec"][0]["level"] = "unique"
    # an outbound policy whose SA is missing (require, no SA: ACQUIRE count)
    cfg["policies"].append({"direction": "out", "src": T.LAN_NET[4], "dst": "10.200.0.0/16",
                            "action": "protect", "ipsec": [{"proto": "esp", "mode": "tunnel", "level": "require",
                                                            "reqid": 99, "tunnel": {"src": T.WAN4, "dst": "198.51.100.99"}}]})
    cfg["policies"] += [
        {"direction": "out", "src": T.LAN_NET[4], "dst": "10.201.0.0/16", "action": "discard"},
        {"direction": "out", "src": T.LAN_NET[6], "dst": "fd00:c9::/64", "action": "discard"},
        {"direction": "out", "src": T.LAN_NET[4], "dst": "10.202.0.0/16", "action": "bypass",
         "proto": "udp", "dport": 53},
        {"direction": "in", "src": "0.0.0.0/0", "dst": f"{T.WAN4}/32", "action": "bypass",
         "proto": "udp", "dport": 500},
        {"direction": "fwd", "src": "10.203.0.0/16", "dst": T.LAN_NET[4], "action": "discard"},
    ]
    # IPComp tunnel 4in4 both ways (ISA-L's DEFLATE): decompression of what comes
    cfg["compress"] = {"devices": ["compress_isal"], "min_size": 64}
    cfg["sas"] += [
        {"spi": IPCOMP_CPI[0], "direction": "out", "proto": "ipcomp", "mode": "tunnel",
         "src": T.WAN4, "dst": IPCOMP_PEER, "reqid": 70},
        {"spi": IPCOMP_CPI[1], "direction": "in", "proto": "ipcomp", "mode": "tunnel",
         "src": IPCOMP_PEER, "dst": T.WAN4, "reqid": 70}]
    req = {"proto": "ipcomp", "mode": "tunnel", "level": "require", "reqid": 70}
    cfg["policies"] += [
        {"direction": "out", "src": T.LAN_NET[4], "dst": IPCOMP_NET, "action": "protect",
         "ipsec": [dict(req, tunnel={"src": T.WAN4, "dst": IPCOMP_PEER})]},
        {"direction": "fwd", "src": IPCOMP_NET, "dst": T.LAN_NET[4], "action": "protect",
         "ipsec": [dict(req, tunnel={"src": IPCOMP_PEER, "dst": T.WAN4})]}]
    # SA bundles: [ipcomp, esp] and [esp, ah], tunnel both ways, transport out
    for b in BUNDLES:
        cfg["sas"] += b.sas()
        cfg["policies"] += b.policies()
    cfg["ipsec"] = {"def_policy": {"ipv4": "bypass", "ipv6": "discard"}}
    return cfg


BUNDLES = [B.Bundle(81, "ipcomp-esp", 4, "tunnel"), B.Bundle(82, "ipcomp-esp", 6, "tunnel"),
           B.Bundle(83, "esp-ah", 4, "tunnel"), B.Bundle(84, "esp-ah", 6, "tunnel"),
           B.Bundle(85, "ipcomp-esp", 4, "transport"), B.Bundle(86, "esp-ah", 6, "transport")]


def bundle_seeds():
    """For each bundle the LAN host's packets (compressible, not); for the
    tunnel ones the peer's layers as test_bundle_pcap.py builds them: good, one
    without IPComp header, without the outer layer, a wrong ICV in either
    layer, a replay."""
    out = {}
    for b in BUNDLES:
        lan = [b.lan_packet(p, 1000 + k) for k, p in enumerate((B.COMPRESSIBLE, B.INCOMPRESSIBLE))]
        out[f"bundle-out-{b.name}"] = [rec(LAN, T.frame_from_host(IP(p) if b.fam == 4 else IPv6(p)))
                                       for p in lan]
        if b.mode != "tunnel":
            continue
        good = [b.peer_packet(B.COMPRESSIBLE, 2000 + k) for k in range(2)]
        frames = [b.wire_in(good[0], 1), b.wire_in(good[1], 2, layers=("inner",)),
                  b.wire_in(good[1], 3, flip="outer"), b.wire_in(good[1], 4), b.wire_in(good[1], 4)]
        if b.kind == "ipcomp-esp":
            frames.append(b.wire_in(good[1], 5, compress=False))
        else:
            frames.append(b.wire_in(good[1], 5, flip="inner"))
        out[f"bundle-in-{b.name}"] = [rec(WAN, f) for f in frames]
    return out


IPCOMP_CPI = (0x7001, 0x7002)
IPCOMP_PEER = "198.51.100.70"
IPCOMP_NET = "10.70.0.0/24"


def ipcomp_seeds():
    """The LAN host's packets for the IPComp SA (compressible, not, small), the
    peer's IPComp (zlib's stored, fixed and dynamic blocks, a corrupt stream, a
    bomb) and its uncompressed IP-in-IP."""
    def inner(payload, src=T.HOST4, dst="10.70.0.7"):
        return raw(IP(src=src, dst=dst, ttl=64) / UDP(sport=7, dport=9) / Raw(payload))

    def ipcomp(stream):
        return T.frame_to_gw(IP(src=IPCOMP_PEER, dst=T.WAN4, ttl=64, proto=108) /
                             Raw(struct.pack("!BBH", 4, 0, IPCOMP_CPI[1]) + stream))

    def deflate(data, level=6, strategy=zlib.Z_DEFAULT_STRATEGY):
        c = zlib.compressobj(level, zlib.DEFLATED, -15, 9, strategy)
        return c.compress(data) + c.flush()

    text = b"".join(b"%d,%x;" % (i * 7919 % 10007, i) for i in range(120))
    back = inner(text, src="10.70.0.7", dst=T.HOST4)
    out = {"ipcomp-out": [rec(LAN, T.frame_from_host(IP(inner(p))))
                          for p in (text, bytes(range(256)) * 3, b"s" * 20)]}
    out["ipcomp-in"] = [rec(WAN, ipcomp(deflate(back, **kw))) for kw in
                        (dict(level=0), dict(strategy=zlib.Z_FIXED), dict(level=9))]
    out["ipcomp-bad"] = [rec(WAN, ipcomp(b"\xff" * 40)),
                         rec(WAN, ipcomp(deflate(inner(b"\0" * 30000, src="10.70.0.7", dst=T.HOST4)))),
                         rec(WAN, ipcomp(deflate(back)[:30]))]
    out["ipcomp-ipip"] = [rec(WAN, T.frame_to_gw(IP(src=IPCOMP_PEER, dst=T.WAN4, ttl=64, proto=4) / Raw(back)))]
    return out


def rec(port, frame):
    frame = bytes(frame)
    return struct.pack("!BH", port, len(frame)) + frame


def frag_frames(t, seq):
    """The peer's ESP for seq, fragmented by scapy (outer family), in order."""
    inner = T.ip(t.inner, src=T.remote_host(t.inner, t.i), dst=T.HOST[t.inner], ttl=64) / \
        UDP(sport=7, dport=9) / Raw(bytes(range(256)) * 6)
    f = T.Ether(t.esp_frame(seq, raw(inner)))
    l3 = f.payload
    parts = fragment(l3, fragsize=400) if t.outer == 4 else \
        fragment6(IPv6(src=l3.src, dst=l3.dst, hlim=l3.hlim) /
                  IPv6ExtHdrFragment(nh=l3.nh, id=0x6464) / l3.payload, 1280)
    return [T.frame_to_gw(p) for p in parts]


def sealed(cfg, ts):
    """Records that fuzz_dataplane seals (port 0x80 + k): for the k-th inbound
    AES-GCM SA without ESN of the configuration, a sequence number and the ESP
    plaintext: the inner packet (tunnel) or UDP datagram (transport), padding
    1, 2, 3... to 4 bytes, pad length, next header (RFC 4303)."""
    by_spi = {t.spi_in: t for t in ts}
    sas = [sa for sa in cfg["sas"] if sa["direction"] == "in" and "encryption" in sa and
           sa["encryption"]["algorithm"].startswith("aes-gcm") and not sa.get("esn")]
    out = {}
    for k, sa in enumerate(sas):
        t = by_spi[sa["spi"]]
        fam = t.inner
        if t.mode == "tunnel":
            body = raw(T.ip(fam, src=T.remote_host(fam, t.i), dst=T.HOST[fam], ttl=64) /
                       UDP(sport=3000 + t.i, dport=4000) / Raw(f"sealed/{t.name}".encode()))
            nh = 4 if fam == 4 else 41
        else:
            body = raw(UDP(sport=500, dport=500, chksum=0) / Raw(f"sealed/{t.name}".encode()))
            nh = 17
        pad = -(len(body) + 2) % 4
        plain = body + bytes(range(1, pad + 1)) + bytes([pad, nh])
        rec_ = struct.pack("!BH", 0x80 + k, 4 + len(plain)) + struct.pack("!I", 1000 + k) + plain
        out[f"sealed-{t.name}"] = [rec_]
        if k == 0:  # a replay that lib/ipsec 22.11 misses (seq mod 64 >= 32): the oracle's seed
            again = rec_[:3] + struct.pack("!I", 40) + rec_[7:]
            out["sealed-replay"] = [again, again, again]
    return out


def seeds(ts, cfg):
    out = sealed(cfg, ts)
    for t in ts:
        out[f"out-{t.name}"] = [rec(LAN, f) for f in t.lan_frames()]
        if t.in_frames:
            out[f"in-{t.name}"] = [rec(WAN, f) for f in t.in_frames]
            # a replay, a wrong ICV, a truncated ESP, between good ones
            good = t.in_frames[0]
            bad_icv = good[:-1] + bytes([good[-1] ^ 1])
            out[f"bad-{t.name}"] = [rec(WAN, good), rec(WAN, good), rec(WAN, bad_icv), rec(WAN, good[:60])]
    for t in ts:
        if t.mode == "tunnel" and t.i in (1, 2, 21, 41, 42):
            out[f"frag-{t.name}"] = [rec(WAN, f) for f in frag_frames(t, 100)]
            out[f"fragrev-{t.name}"] = [rec(WAN, f) for f in reversed(frag_frames(t, 101))]
    # big plaintext that needs fragmentation or an ICMP error once encrypted
    t = ts[0]
    for df in (0, 2):
        p = IP(src=T.HOST4, dst=T.remote_host(4, 41), flags=df, ttl=64) / UDP(sport=1, dport=2) / Raw(b"b" * 1460)
        out[f"big-df{df}"] = [rec(LAN, T.frame_from_host(p))]
    p = IPv6(src=T.HOST6, dst=T.remote_host(6, 2), hlim=64) / UDP(sport=1, dport=2) / Raw(b"b" * 1440)
    out["big6"] = [rec(LAN, T.frame_from_host(p))]
    out["nat-t-keepalive"] = [rec(WAN, T.frame_to_gw(IP(src=T.peer_addr(4, 21), dst=T.WAN4) /
                                                     UDP(sport=4500, dport=4500) / Raw(b"\xff")))]
    out["policy-misc"] = [rec(LAN, T.frame_from_host(IP(src=T.HOST4, dst=d, ttl=64) / UDP(sport=5, dport=53) / Raw(b"q")))
                          for d in ("10.200.0.1", "10.201.0.1", "10.202.0.1", "172.16.0.1")]
    # test_pcap.py's forwarding cases, on lan, in slices of 8 frames
    cases = [c.raw for c in pcaps.forwarding_cases()]
    for k in range(0, len(cases), 8):
        out[f"pcap-fwd-{k // 8:02d}"] = [rec(LAN, f) for f in cases[k:k + 8]]
    out["arp-nd"] = [rec(LAN, pcaps.arp_request_for_lan()), rec(LAN, pcaps.ns_for_lan())]
    out.update(ipcomp_seeds())
    out.update(bundle_seeds())
    return out


def main():
    d = sys.argv[1] if len(sys.argv) > 1 else HERE
    ts = tunnels()
    cfg = config(ts)
    with open(os.path.join(d, "dataplane.yaml"), "w") as f:
        f.write("# Written by tests/fuzz/gen_dataplane.py: fuzz_dataplane's gateway. Test keys only.\n")
        yaml.safe_dump(cfg, f, sort_keys=False, default_flow_style=None, width=120)
    cdir = os.path.join(d, "corpus_dataplane")
    os.makedirs(cdir, exist_ok=True)
    for name in os.listdir(cdir):
        os.unlink(os.path.join(cdir, name))
    for name, recs in seeds(ts, cfg).items():
        with open(os.path.join(cdir, name), "wb") as f:
            f.write(b"".join(recs))


if __name__ == "__main__":
    main()
