"""IPComp (RFC 3173, DEFLATE RFC 2394) on the dataplane, on net_pcap ports, checked
against Python's zlib (raw DEFLATE, wbits=-15), an implementation independent of
the compression device dpsecd uses (compress_isal or compress_zlib).

Daemon runs on the topology of test_esp_pcap.py. Outbound IPComp SAs:
tunnel 4in4 and 6in6, transport over IPv4 and IPv6 (forwarded packets of the
LAN host to a peer itself). Per SA the LAN host sends a compressible payload,
an incompressible one (RFC 3173 2.2: sent without IPComp header, tunnel mode
as IP-in-IP) and one below compress.min_size (never tried). Inbound tunnel
SAs (IPv4, IPv6): zlib's stored, fixed- and dynamic-Huffman streams, the
peer's uncompressed IP-in-IP, an invalid stream, a bomb, an unknown CPI.
Transport mode with the gateway's own stack (live, wan's exception TAP), both
ways, IPv4 and IPv6.
"""
import hashlib
import struct
import zlib

import pytest
from scapy.all import IP, UDP, Ether, IPv6, Raw
from scapy.compat import raw

from test_esp_pcap import (GW, HOST, LAN_NET, PcapRun, base_config, forwarded, frame_from_host,
                           inet_checksum, peer_addr, remote_host, remote_net)

MIN_SIZE = 120
COMPRESSIBLE = (b"IPComp compresses what repeats. " * 40)[:1200]
INCOMPRESSIBLE = b"".join(hashlib.sha256(b"%d" % i).digest() for i in range(38))[:1200]
SMALL = b"x" * 40   # an IP packet below MIN_SIZE
# compressible, but with enough variety that zlib makes a dynamic-Huffman block of it
VARIED = b"".join(b"%d,%x;" % (i * 7919 % 10007, i) for i in range(200))[:1200]


class Sa:
    def __init__(self, i, fam, mode):
        self.i, self.fam, self.mode = i, fam, mode
        self.cpi = 0x1000 + i
        self.peer = peer_addr(fam, i)
        if mode == "tunnel":
            self.dst_host = remote_host(fam, i)
        else:
            self.dst_host = self.peer

    def cfg(self):
        src = GW[self.fam] if self.mode == "tunnel" else HOST[self.fam]
        return {"spi": self.cpi, "direction": "out", "proto": "ipcomp", "mode": self.mode,
                "src": src, "dst": self.peer, "reqid": self.cpi}

    def policy(self):
        bits = 32 if self.fam == 4 else 128
        req = {"proto": "ipcomp", "mode": self.mode, "level": "require", "reqid": self.cpi}
        if self.mode == "tunnel":
            req["tunnel"] = {"src": GW[self.fam], "dst": self.peer}
            dst = remote_net(self.fam, self.i)
        else:
            dst = f"{self.peer}/{bits}"
        return {"direction": "out", "src": LAN_NET[self.fam], "dst": dst, "action": "protect",
                "ipsec": [req]}

    def packet(self, payload, sport):
        l3 = IP(src=HOST[4], dst=self.dst_host, ttl=64) if self.fam == 4 else \
            IPv6(src=HOST[6], dst=self.dst_host, hlim=64)
        return raw(l3 / UDP(sport=sport, dport=9) / Raw(payload))


SAS = [Sa(1, 4, "tunnel"), Sa(2, 6, "tunnel"), Sa(3, 4, "transport"), Sa(4, 6, "transport")]
KINDS = {"compressible": COMPRESSIBLE, "incompressible": INCOMPRESSIBLE, "small": SMALL}


@pytest.fixture(scope="module", params=["compress_isal", "compress_zlib"])
def run(tmp_path_factory, request):
    """Outbound, on each software compression device."""
    wd = tmp_path_factory.mktemp("ipcomp")
    cfg = base_config(wd)
    cfg["compress"] = {"devices": [request.param], "min_size": MIN_SIZE}
    for sa in SAS:
        cfg["sas"].append(sa.cfg())
        cfg["policies"].append(sa.policy())
    sent = {}
    lan = []
    for sa in SAS:
        for n, (kind, payload) in enumerate(KINDS.items()):
            p = sa.packet(payload, 1000 + n)
            sent[(sa.cpi, kind)] = p
            lan.append(frame_from_host(IP(p) if sa.fam == 4 else IPv6(p)))
    r = PcapRun(wd, cfg, lan, [])
    r.sent, r.device = sent, request.param
    return r


def l3_of(frame):
    return raw(Ether(frame).payload)


def out_frames(run, sa):
    """The wan frames to sa's peer, in order."""
    want = sa.peer
    res = []
    for f in run.wan_out:
        l3 = Ether(f).payload
        if (IP in Ether(f) and l3.dst == want) or (IPv6 in Ether(f) and l3.dst == want):
            res.append(l3_of(f))
    return res


def split(l3):
    """(header bytes, protocol, payload) of an IPv4 or IPv6 packet (no extension headers)."""
    if l3[0] >> 4 == 4:
        hl = (l3[0] & 0xF) * 4
        return l3[:hl], l3[9], l3[hl:struct.unpack("!H", l3[2:4])[0]]
    return l3[:40], l3[6], l3[40:40 + struct.unpack("!H", l3[4:6])[0]]


def test_daemon_ran(run):
    assert run.error is None, run.error
    assert run.rc == 0, run.log
    assert f"compress device {run.device} ready" in run.log, run.log


@pytest.mark.parametrize("sa", SAS, ids=lambda s: f"{s.mode}{s.fam}")
def test_compressible_leaves_as_ipcomp_that_zlib_inflates(run, sa):
    """The compressible packet leaves with protocol 108, an IPComp header (next
    header, flags 0, the CPI) and a raw DEFLATE stream that Python's zlib
    inflates to the forwarded packet (tunnel) or its upper layer (transport),
    byte for byte; the packet got smaller."""
    frames = out_frames(run, sa)
    assert len(frames) == 3, run.log
    hdr, proto, body = split(frames[0])
    assert proto == 108
    nh, flags, cpi = struct.unpack("!BBH", body[:4])
    assert (flags, cpi) == (0, sa.cpi)
    inner = forwarded(run.sent[(sa.cpi, "compressible")])
    plain = zlib.decompress(body[4:], wbits=-15)
    if sa.mode == "tunnel":
        assert nh == (4 if sa.fam == 4 else 41)
        assert plain == inner
        assert len(frames[0]) < len(inner) + len(hdr)
        if sa.fam == 4:
            assert inet_checksum(hdr) == 0
            assert hdr[12:16] == bytes(map(int, GW[4].split(".")))
            assert hdr[8] == 64  # the SA's ttl
    else:
        ihdr, iproto, ibody = split(inner)
        assert nh == iproto == 17
        assert plain == ibody
        assert len(frames[0]) < len(inner)
        if sa.fam == 4:
            assert inet_checksum(hdr) == 0
            want = bytearray(ihdr)
            want[2:4] = struct.pack("!H", len(frames[0]))
            want[9] = 108
            want[10:12] = hdr[10:12]
            assert bytes(want) == hdr
        else:
            want = bytearray(ihdr)
            want[4:6] = struct.pack("!H", len(frames[0]) - 40)
            want[6] = 108
            assert bytes(want) == hdr


@pytest.mark.parametrize("kind", ["incompressible", "small"])
@pytest.mark.parametrize("sa", SAS, ids=lambda s: f"{s.mode}{s.fam}")
def test_not_smaller_or_small_leaves_uncompressed(run, sa, kind):
    """RFC 3173 2.2: no IPComp header. Tunnel mode: IP-in-IP from the gateway to
    the peer around the forwarded packet; transport: the forwarded packet."""
    frames = out_frames(run, sa)
    assert len(frames) == 3, run.log
    f = frames[1 if kind == "incompressible" else 2]
    inner = forwarded(run.sent[(sa.cpi, kind)])
    if sa.mode == "tunnel":
        hdr, proto, body = split(f)
        assert proto == (4 if sa.fam == 4 else 41)
        assert body == inner
        if sa.fam == 4:
            assert inet_checksum(hdr) == 0
    else:
        assert f == inner


@pytest.mark.parametrize("sa", SAS, ids=lambda s: f"{s.mode}{s.fam}")
def test_sa_counters(run, sa):
    s = run.sa(sa.cpi)
    assert (s["packets"], s["uncompressed"], s["drop_other"]) == (3, 2, 0)
    assert s["bytes"] == sum(len(run.sent[(sa.cpi, k)]) - 0 for k in KINDS)


def test_nothing_else_left(run):
    assert len(run.wan_out) == 3 * len(SAS)
    assert run.stats["wan"]["tx_packets"] == 3 * len(SAS)


# ---- inbound ------------------------------------------------------------------------------

def deflate(data, level=6, strategy=zlib.Z_DEFAULT_STRATEGY):
    c = zlib.compressobj(level, zlib.DEFLATED, -15, 9, strategy)
    return c.compress(data) + c.flush()


def btype(stream):
    """The type of the first DEFLATE block (RFC 1951 3.2.3): 0 stored, 1 fixed, 2 dynamic."""
    return (stream[0] >> 1) & 3


class InSa:
    def __init__(self, i, fam):
        self.i, self.fam = i, fam
        self.cpi = 0x2000 + i
        self.peer = peer_addr(fam, i)

    def cfg(self):
        return {"spi": self.cpi, "direction": "in", "proto": "ipcomp", "mode": "tunnel",
                "src": self.peer, "dst": GW[self.fam], "reqid": self.cpi}

    def policy(self):
        return {"direction": "fwd", "src": remote_net(self.fam, self.i), "dst": LAN_NET[self.fam],
                "action": "protect",
                "ipsec": [{"proto": "ipcomp", "mode": "tunnel", "level": "require", "reqid": self.cpi,
                           "tunnel": {"src": self.peer, "dst": GW[self.fam]}}]}

    def inner(self, payload, sport):
        l3 = IP(src=remote_host(4, self.i), dst=HOST[4], ttl=64) if self.fam == 4 else \
            IPv6(src=remote_host(6, self.i), dst=HOST[6], hlim=64)
        return raw(l3 / UDP(sport=sport, dport=9) / Raw(payload))

    def outer(self, proto, body, cpi=None):
        if self.fam == 4:
            o = IP(src=self.peer, dst=GW[4], ttl=64, proto=proto)
        else:
            o = IPv6(src=self.peer, dst=GW[6], hlim=64, nh=proto)
        return raw(Ether(src="02:00:00:00:00:bb", dst="02:70:63:61:70:01") / o / Raw(body))

    def ipcomp(self, stream, cpi=None):
        nh = 4 if self.fam == 4 else 41
        return self.outer(108, struct.pack("!BBH", nh, 0, self.cpi if cpi is None else cpi) + stream)


IN_SAS = [InSa(5, 4), InSa(6, 6)]
# (name, make(sa) -> (frame, forwarded inner or None))
STREAMS = {
    "stored": dict(level=0),
    "fixed": dict(level=6, strategy=zlib.Z_FIXED),
    "dynamic": dict(level=9),
}


@pytest.fixture(scope="module")
def run_in(tmp_path_factory):
    wd = tmp_path_factory.mktemp("ipcomp-in")
    cfg = base_config(wd)
    wan, expect = [], {}
    for sa in IN_SAS:
        cfg["sas"].append(sa.cfg())
        cfg["policies"].append(sa.policy())
        for n, (name, kw) in enumerate(STREAMS.items()):
            inner = sa.inner(VARIED, 2000 + n)
            stream = deflate(inner, **kw)
            assert btype(stream) == {"stored": 0, "fixed": 1, "dynamic": 2}[name]
            wan.append(sa.ipcomp(stream))
            expect[(sa.cpi, name)] = forwarded(inner)
        inner = sa.inner(INCOMPRESSIBLE, 2010)       # sent uncompressed: IP-in-IP
        wan.append(sa.outer(4 if sa.fam == 4 else 41, inner))
        expect[(sa.cpi, "ipip")] = forwarded(inner)
        wan.append(sa.ipcomp(b"\xff" * 64))            # BTYPE 11: invalid
        wan.append(sa.ipcomp(deflate(sa.inner(b"\0" * 60000, 2011), level=9)))   # a bomb
        wan.append(sa.ipcomp(deflate(sa.inner(COMPRESSIBLE, 2012)), cpi=0x7777))  # unknown CPI
    # IP-in-IP from an address that is no IPComp peer: the gateway's own, not an SA's,
    # under the inbound policy (which discards it)
    cfg["policies"].append({"direction": "in", "src": "198.51.100.77/32", "dst": f"{GW[4]}/32",
                            "action": "discard"})
    stranger = IN_SAS[0].inner(VARIED, 2013)
    wan.append(raw(Ether(src="02:00:00:00:00:bb", dst="02:70:63:61:70:01")
                   / IP(src="198.51.100.77", dst=GW[4], ttl=64, proto=4) / Raw(stranger)))
    r = PcapRun(wd, cfg, [], wan)
    r.expect = expect
    return r


def test_inbound_daemon_ran(run_in):
    assert run_in.error is None, run_in.error
    assert run_in.rc == 0, run_in.log


@pytest.mark.parametrize("kind", list(STREAMS) + ["ipip"])
@pytest.mark.parametrize("sa", IN_SAS, ids=lambda s: f"tunnel{s.fam}")
def test_inbound_decompressed_and_forwarded(run_in, sa, kind):
    """zlib's stored, fixed- and dynamic-Huffman streams are inflated by dpsecd and
    the inner packet forwarded to the LAN host byte for byte; so is the
    uncompressed (IP-in-IP) packet from the SA's peer."""
    want = run_in.expect[(sa.cpi, kind)]
    got = [l3_of(f) for f in run_in.lan_out]
    assert want in got, run_in.log


@pytest.mark.parametrize("sa", IN_SAS, ids=lambda s: f"tunnel{s.fam}")
def test_inbound_counters(run_in, sa):
    s = run_in.sa(sa.cpi)
    assert (s["packets"], s["drop_decomp"], s["drop_bomb"], s["drop_other"]) == (4, 1, 1, 0)


def test_inbound_nothing_else(run_in):
    assert len(run_in.lan_out) == 4 * len(IN_SAS)
    assert run_in.stats["wan"]["drop_unknown_cpi"] == len(IN_SAS)
    assert run_in.stats["wan"]["drop_unknown_spi"] == 0
    assert run_in.stats["wan"]["ipsec_in"] == 6 * len(IN_SAS)
    # the stranger's IP-in-IP went the gateway's way, through the inbound policy
    assert run_in.stats["wan"]["drop_policy"] == 1


# ---- transport mode with the gateway's own stack (live: wan's exception TAP) ----------------

TRS_PEER = {4: "198.51.100.9", 6: "2001:db8:2::9"}
TRS_CPI = {4: (0x3004, 0x3104), 6: (0x3006, 0x3106)}   # (out, in)
TRS_TEXT = b"transport IPComp of the gateway's own datagram. " * 20


class TransportSpec:
    """IPComp transport SA pairs between the gateway's wan addresses and a peer,
    IPv4 and IPv6: the kernel's compressible datagrams leave as IPComp, and
    IPComp the peer sends (zlib's stream of a UDP datagram) reaches the kernel
    decompressed."""

    n_from_kernel = 2

    def configure(self, cfg):
        for fam in (4, 6):
            cout, cin = TRS_CPI[fam]
            bits = 32 if fam == 4 else 128
            cfg["sas"] += [
                {"spi": cout, "direction": "out", "proto": "ipcomp", "mode": "transport",
                 "src": GW[fam], "dst": TRS_PEER[fam], "reqid": cout},
                {"spi": cin, "direction": "in", "proto": "ipcomp", "mode": "transport",
                 "src": TRS_PEER[fam], "dst": GW[fam], "reqid": cout}]
            req = [{"proto": "ipcomp", "mode": "transport", "level": "require", "reqid": cout}]
            cfg["policies"] += [
                {"direction": "out", "src": f"{GW[fam]}/{bits}", "dst": f"{TRS_PEER[fam]}/{bits}",
                 "proto": "udp", "action": "protect", "ipsec": req},
                {"direction": "in", "src": f"{TRS_PEER[fam]}/{bits}", "dst": f"{GW[fam]}/{bits}",
                 "proto": "udp", "action": "protect", "ipsec": req}]

    def from_kernel(self, ns):
        from test_esp_pcap import kernel_send
        for fam in (4, 6):
            kernel_send(ns, fam, GW[fam], TRS_PEER[fam], 9, TRS_TEXT)

    def udp_in(self, fam):
        l3 = IP(src=TRS_PEER[4], dst=GW[4]) if fam == 4 else IPv6(src=TRS_PEER[6], dst=GW[6])
        return raw(l3 / UDP(sport=7777, dport=9) / Raw(TRS_TEXT))

    def frames(self):
        from test_esp_pcap import frame_to_gw
        out = []
        for fam in (4, 6):
            whole = self.udp_in(fam)
            hl = 20 if fam == 4 else 40
            body = struct.pack("!BBH", 17, 0, TRS_CPI[fam][1]) + deflate(whole[hl:])
            l3 = IP(src=TRS_PEER[4], dst=GW[4], ttl=64, proto=108) if fam == 4 else \
                IPv6(src=TRS_PEER[6], dst=GW[6], hlim=64, nh=108)
            out.append(frame_to_gw(l3 / Raw(body)))
        return out


@pytest.fixture(scope="module")
def transport_run(tmp_path_factory):
    from test_esp_pcap import LiveRun
    spec = TransportSpec()
    r = LiveRun(tmp_path_factory.mktemp("ipcomp-trs"), spec)
    r.spec_ = spec
    return r


def test_transport_run_exits_0(transport_run):
    assert transport_run.error is None, transport_run.error
    assert transport_run.rc == 0, transport_run.log


@pytest.mark.parametrize("fam", [4, 6])
def test_transport_gateways_datagram_leaves_compressed(transport_run, fam):
    """The kernel's UDP datagram to the peer: its own IP header with protocol 108,
    then IPComp (next header 17, the out CPI) and a stream zlib inflates to the
    UDP header and payload the kernel sent."""
    got = []
    for f in transport_run.wan_out:
        l3 = l3_of(f)
        hdr, proto, body = split(l3)
        if proto == 108 and struct.unpack("!H", body[2:4])[0] == TRS_CPI[fam][0]:
            got.append((hdr, body))
    assert len(got) == 1, transport_run.stats
    hdr, body = got[0]
    assert body[0] == 17 and body[1] == 0
    udp = zlib.decompress(body[4:], wbits=-15)
    assert udp[8:] == TRS_TEXT and struct.unpack("!H", udp[2:4])[0] == 9
    assert len(body) < len(udp) + 4


@pytest.mark.parametrize("fam", [4, 6])
def test_transport_peers_ipcomp_reaches_the_kernel_decompressed(transport_run, fam):
    want = transport_run.spec_.udp_in(fam)
    hl = 20 if fam == 4 else 40
    got = [p for p in transport_run.tap_l3() if p[0] >> 4 == fam and split(p)[1] == 17
           and split(p)[2] == want[hl:]]
    assert len(got) == 1, [len(p) for p in transport_run.tap_l3()]
    if fam == 4:
        assert inet_checksum(got[0][:20]) == 0
    assert transport_run.sa(TRS_CPI[fam][1])["packets"] == 1


# ---- two workers: one queue pair each on the compression device ----------------------------

def test_two_workers_share_the_ipcomp_sas(tmp_path):
    """Two workers (test_two_workers.py's gateway): both compress for one outbound
    SA and decompress for one inbound SA, each on its own queue pair."""
    import test_two_workers as TW
    out_sa, in_sa = Sa(1, 4, "tunnel"), InSa(5, 4)

    def change(cfg):
        cfg["sas"] += [out_sa.cfg(), in_sa.cfg()]
        pol = out_sa.policy()
        pol["src"] = "192.168.0.0/16"
        cfg["policies"] += [pol, in_sa.policy()]

    def lan(src, sport):
        return IP(src=src, dst=out_sa.dst_host, ttl=64) / UDP(sport=sport, dport=9) / Raw(COMPRESSIBLE)

    sent = [raw(lan(HOST[4], 1)), raw(lan(HOST[4], 2)), raw(lan("192.168.11.5", 3)), raw(lan("192.168.11.5", 4))]
    back = [in_sa.inner(VARIED, 10 + k) for k in range(2)]
    inputs = {"lan0": [frame_from_host(IP(p)) for p in sent[:2]],
              "lan1": [TW.to_port(frame_from_host(IP(p)), "lan1") for p in sent[2:]],
              "wan0": [in_sa.ipcomp(deflate(back[0]))],
              "wan1": [TW.to_port(in_sa.ipcomp(deflate(back[1])), "wan1")]}
    r = TW.Run(tmp_path, [], inputs, change=change)
    assert r.rc == 0, r.log
    got = []
    for f in r.out["wan0"]:
        hdr, proto, body = split(l3_of(f))
        assert proto == 108 and struct.unpack("!H", body[2:4])[0] == out_sa.cpi
        got.append(zlib.decompress(body[4:], wbits=-15))
    assert sorted(got) == sorted(forwarded(p) for p in sent)
    assert r.per_queue["wan0"] == [2, 2]   # each worker sent its own two (one tx queue each)
    assert sorted(l3_of(f) for f in r.out["lan0"]) == sorted(forwarded(p) for p in back)
    assert r.sa(out_sa.cpi)["packets"] == 4 and r.sa(in_sa.cpi)["packets"] == 2
