"""SA bundles (RFC 4301 4.5) on the dataplane, on net_pcap ports: `[ipcomp, esp]`
and `[esp, ah]`, in the wire layout Linux uses for strongSwan. Tunnel mode: the
first request carries the tunnel, the next ones are transport over its outer
header (outer IP / ESP / IPComp / inner IP; outer IP / AH / ESP / inner IP).
Transport mode (the forwarding path's, LAN host to the peer host itself): IP /
ESP / IPComp / upper layer; IP / AH / ESP / upper layer.

What dpsecd sends is undone layer by layer by independent code: scapy's own
ESP and AH (SecurityAssociation.decrypt verifies the ICV) and Python's zlib
(raw DEFLATE), and compared byte for byte with the packet as forwarded. What
dpsecd accepts is built the same way (scapy's encrypt, zlib's compress). Bad
packets between good ones, each dropped and counted: a packet without a
required layer, a wrong ICV in either layer, a replay. IPComp's "not smaller:
sent without IPComp header" (RFC 3173 2.2) inside ESP is accepted.

The topology and the daemon run are test_esp_pcap.py's (PcapRun).
"""
import struct
import zlib

import pytest
from scapy.all import IP, UDP, Ether, IPv6, Raw, raw
from scapy.layers.ipsec import AH, ESP, SecurityAssociation

from test_esp_pcap import (GW, HOST, LAN_MAC, HOST_MAC, LAN_NET, PcapRun, base_config, forwarded,
                           frame_from_host, frame_to_gw, ip, keygen, peer_addr, remote_host,
                           remote_net)
from test_ipcomp_pcap import COMPRESSIBLE, INCOMPRESSIBLE, deflate, split

ENC_KEY, AUTH_KEY = 16, 32   # aes-cbc-128, hmac-sha2-256-128
PATHS = ("cpu", "async")


def hdr_fix(l3):
    """The packet parsed again, so that lengths and checksums are scapy's."""
    return l3.__class__(raw(l3))


class Bundle:
    """Bundle i of `kind` ("ipcomp-esp" or "esp-ah") with peer i, family fam,
    tunnel or transport mode: its outbound SAs and policy and, in tunnel mode,
    its inbound SAs and fwd policy."""

    def __init__(self, i, kind, fam, mode):
        self.i, self.kind, self.fam, self.mode = i, kind, fam, mode
        self.name = f"{kind}-{mode}{fam}"
        self.reqid = 500 + i
        self.peer = peer_addr(fam, i)
        self.spi = {"out": 0x5000 + i, "in": 0x6000 + i}          # ESP
        self.spi2 = {"out": 0x7000 + i, "in": 0x7100 + i}         # IPComp CPI or AH SPI
        self.keys = {d: (keygen(f"b/enc/{i}/{d}", ENC_KEY), keygen(f"b/auth/{i}/{d}", AUTH_KEY),
                         keygen(f"b/ah/{i}/{d}", AUTH_KEY)) for d in ("out", "in")}

    @property
    def gw(self):
        return GW[self.fam]

    # ---- what dpsecd is told ----

    def _ends(self, d):
        if self.mode == "transport":
            return HOST[self.fam], self.peer
        return (self.gw, self.peer) if d == "out" else (self.peer, self.gw)

    def sas(self):
        out = []
        for d in ("out",) + (("in",) if self.mode == "tunnel" else ()):
            src, dst = self._ends(d)
            ek, ak, hk = self.keys[d]
            esp_mode = "tunnel" if self.mode == "tunnel" and self.kind == "esp-ah" else "transport"
            esp = {"spi": self.spi[d], "direction": d, "proto": "esp", "mode": esp_mode,
                   "src": src, "dst": dst, "reqid": self.reqid,
                   "encryption": {"algorithm": "aes-cbc-128", "key": "0x" + ek.hex()},
                   "integrity": {"algorithm": "hmac-sha2-256-128", "key": "0x" + ak.hex()}}
            if self.kind == "ipcomp-esp":
                other = {"spi": self.spi2[d], "direction": d, "proto": "ipcomp", "mode": self.mode,
                         "src": src, "dst": dst, "reqid": self.reqid}
            else:
                other = {"spi": self.spi2[d], "direction": d, "proto": "ah", "mode": "transport",
                         "src": src, "dst": dst, "reqid": self.reqid,
                         "integrity": {"algorithm": "hmac-sha2-256-128", "key": "0x" + hk.hex()}}
            out += [esp, other]
        return out

    def requests(self, d):
        """As charon installs them: the first request carries the tunnel."""
        src, dst = self._ends(d)
        first, second = ("ipcomp", "esp") if self.kind == "ipcomp-esp" else ("esp", "ah")
        r1 = {"proto": first, "mode": self.mode, "level": "require", "reqid": self.reqid}
        if self.mode == "tunnel":
            r1["tunnel"] = {"src": src, "dst": dst}
        r2 = {"proto": second, "mode": "transport", "level": "require", "reqid": self.reqid}
        return [r1, r2]

    def policies(self):
        bits = 32 if self.fam == 4 else 128
        if self.mode == "transport":
            return [{"direction": "out", "src": f"{HOST[self.fam]}/{bits}", "dst": f"{self.peer}/{bits}",
                     "action": "protect", "ipsec": self.requests("out")}]
        return [{"direction": "out", "src": LAN_NET[self.fam], "dst": remote_net(self.fam, self.i),
                 "action": "protect", "ipsec": self.requests("out")},
                {"direction": "fwd", "src": remote_net(self.fam, self.i), "dst": LAN_NET[self.fam],
                 "action": "protect", "ipsec": self.requests("in")}]

    # ---- scapy's SAs ----

    def esp_sa(self, d):
        kw = {}
        if self.mode == "tunnel" and self.kind == "esp-ah":
            src, dst = self._ends(d)
            kw["tunnel_header"] = ip(self.fam, src=src, dst=dst)
        ek, ak, _ = self.keys[d]
        return SecurityAssociation(ESP, spi=self.spi[d], crypt_algo="AES-CBC", crypt_key=ek,
                                   auth_algo="SHA2-256-128", auth_key=ak, **kw)

    def ah_sa(self, d):
        return SecurityAssociation(AH, spi=self.spi2[d], auth_algo="SHA2-256-128",
                                   auth_key=self.keys[d][2])

    # ---- packets ----

    def lan_packet(self, payload, sport):
        dst = self.peer if self.mode == "transport" else remote_host(self.fam, self.i)
        return raw(ip(self.fam, src=HOST[self.fam], dst=dst, ttl=64) / UDP(sport=sport, dport=9)
                   / Raw(payload))

    def peer_packet(self, payload, sport):
        return raw(ip(self.fam, src=remote_host(self.fam, self.i), dst=HOST[self.fam], ttl=64)
                   / UDP(sport=sport, dport=9) / Raw(payload))

    def outer(self, proto, body):
        o = IP(src=self.peer, dst=self.gw, ttl=64, proto=proto) if self.fam == 4 else \
            IPv6(src=self.peer, dst=self.gw, hlim=64, nh=proto)
        return hdr_fix(o / Raw(body))

    def wire_in(self, inner, seq, compress=True, layers=("outer", "inner"), flip=None):
        """The frame the peer sends for inner packet `inner`: scapy's encrypt of each
        layer; `layers` the ones present, `flip` the layer whose ICV is wrong."""
        nh = 4 if self.fam == 4 else 41
        if self.kind == "ipcomp-esp":
            if compress:
                pkt = self.outer(108, struct.pack("!BBH", nh, 0, self.spi2["in"]) + deflate(inner))
            else:
                pkt = self.outer(nh, inner)   # RFC 3173 2.2: IP-in-IP, no IPComp header
            if "outer" in layers:
                pkt = self.esp_sa("in").encrypt(pkt, seq_num=seq)
                if flip == "outer":
                    pkt = flip_last(pkt)
            return frame_to_gw(hdr_fix(pkt))
        pkt = self.esp_sa("in").encrypt(IP(inner) if self.fam == 4 else IPv6(inner), seq_num=seq)
        if flip == "inner":
            pkt = flip_last(pkt)
        if "outer" in layers:
            pkt = self.ah_over(split(raw(pkt))[2], seq)
            if flip == "outer":
                pkt = flip_last(pkt)
        return frame_to_gw(hdr_fix(pkt))

    def ah_over(self, esp, seq):
        """outer IP / AH / ESP bytes, the ICV by scapy's own AH signing (its
        zero_mutable_fields and HMAC). SecurityAssociation.encrypt cannot be
        used: its sign() takes any packet holding an ESP layer for ESP."""
        o = IP(src=self.peer, dst=self.gw, ttl=64) if self.fam == 4 else \
            IPv6(src=self.peer, dst=self.gw, hlim=64)
        pad = 4 if self.fam == 6 else 0    # IPv6: 8-byte aligned (RFC 4302 2.2)

        def build(icv):
            return hdr_fix(o / AH(nh=50, payloadlen=(12 + 16 + pad) // 4 - 2, spi=self.spi2["in"],
                                  seq=seq, icv=icv, padding=bytes(pad)) / Raw(esp))
        # AH's payload parses as Raw, not ESP; the signed ICV goes into a fresh
        # build (sign() drops the IPv6 padding that parsing put in the ICV field)
        signed = self.ah_sa("in").auth_algo.sign(build(bytes(16)), self.keys["in"][2])
        return build(bytes(signed[AH].icv)[:16])

    def undo_out(self, l3):
        """The packet dpsecd sent, undone by scapy and zlib: the IP packet (tunnel)
        or upper layer (transport) it carried."""
        if self.kind == "ipcomp-esp":
            p = self.esp_sa("out").decrypt(l3)        # verifies the ICV
            hdr, proto, body = split(raw(p))
            assert (p.src, p.dst) == self._ends("out")
            if proto == 108:
                nh, flags, cpi = struct.unpack("!BBH", body[:4])
                assert (flags, cpi) == (0, self.spi2["out"])
                body = zlib.decompress(body[4:], wbits=-15)
                if self.mode == "transport":
                    assert nh == 17
                    return body, True
                assert nh == (4 if self.fam == 4 else 41)
                return body, True
            assert proto == (17 if self.mode == "transport" else (4 if self.fam == 4 else 41))
            return body, False
        p = self.ah_sa("out").decrypt(l3)             # verifies the ICV
        assert (p.src, p.dst) == self._ends("out")
        p = self.esp_sa("out").decrypt(hdr_fix(p))
        if self.mode == "transport":
            return split(raw(p))[2], False
        return raw(p), False


def flip_last(pkt):
    b = bytearray(raw(pkt))
    b[-1] ^= 1
    return pkt.__class__(bytes(b))


BUNDLES = [Bundle(i, kind, fam, mode) for i, (kind, fam, mode) in enumerate(
    [(k, f, m) for k in ("ipcomp-esp", "esp-ah") for f in (4, 6) for m in ("tunnel", "transport")],
    start=1)]
TUNNELS = [b for b in BUNDLES if b.mode == "tunnel"]


class BundleRun(PcapRun):
    def __init__(self, workdir, path):
        cfg = base_config(workdir, path)
        cfg["compress"] = {"min_size": 64}
        lan, wan = [], []
        self.sent = {}
        for b in BUNDLES:
            cfg["sas"] += b.sas()
            cfg["policies"] += b.policies()
            for k, payload in enumerate((COMPRESSIBLE, INCOMPRESSIBLE)):
                p = b.lan_packet(payload, 1000 + k)
                self.sent.setdefault(b.name, []).append(p)
                lan.append(frame_from_host(IP(p) if b.fam == 4 else IPv6(p)))
        self.good, self.expect_drops = {}, {}
        for b in TUNNELS:
            good = [b.peer_packet(COMPRESSIBLE, 2000 + k) for k in range(4)]
            self.good[b.name] = good
            if b.kind == "ipcomp-esp":
                wan += [b.wire_in(good[0], 1),
                        b.wire_in(good[1], 2, layers=("inner",)),    # IPComp without ESP
                        b.wire_in(good[1], 2, compress=False),        # not smaller: IP-in-IP in ESP
                        b.wire_in(good[2], 3, flip="outer"),          # ESP ICV wrong
                        b.wire_in(good[2], 3),
                        b.wire_in(good[2], 3),                        # replay
                        b.wire_in(good[3], 4)]
            else:
                wan += [b.wire_in(good[0], 1),
                        b.wire_in(good[1], 2, layers=("inner",)),    # ESP without AH
                        b.wire_in(good[1], 2, flip="outer"),          # AH ICV wrong
                        b.wire_in(good[1], 3, flip="inner"),          # ESP ICV wrong under a good AH
                        b.wire_in(good[1], 4),
                        b.wire_in(good[1], 4),                        # replay
                        b.wire_in(good[2], 5),
                        b.wire_in(good[3], 6)]
        super().__init__(workdir, cfg, lan, wan)

    def bundle(self, name):
        return next(b for b in BUNDLES if b.name == name)

    def out_of(self, b):
        res = []
        for f in self.wan_out:
            l3 = Ether(f).payload
            if l3.dst == b.peer:
                res.append(hdr_fix(l3))
        return res


_runs = {}


def get_run(tmp_path_factory, path):
    if path not in _runs:
        _runs[path] = BundleRun(tmp_path_factory.mktemp(f"bundle-{path}"), path)
    return _runs[path]


@pytest.mark.parametrize("path", PATHS)
def test_daemon_ran(tmp_path_factory, path):
    r = get_run(tmp_path_factory, path)
    assert r.error is None, r.error
    assert r.rc == 0, r.log


@pytest.mark.parametrize("b", BUNDLES, ids=lambda b: b.name)
@pytest.mark.parametrize("path", PATHS)
def test_outbound_bundle_undone_layer_by_layer(tmp_path_factory, path, b):
    """Both LAN packets leave once, as the bundle's outermost protocol (50 for
    [ipcomp, esp], 51 for [esp, ah]) with sequence numbers 1 and 2; scapy's ESP
    (and AH) verify and remove their layers; for [ipcomp, esp] the compressible
    packet then carries an IPComp header and a stream zlib inflates, the
    incompressible one none (RFC 3173 2.2); what is left is the packet as
    forwarded (tunnel) or its upper layer (transport), byte for byte."""
    r = get_run(tmp_path_factory, path)
    outs = r.out_of(b)
    assert len(outs) == 2, r.log
    for k, l3 in enumerate(outs):
        proto = l3.proto if b.fam == 4 else l3.nh
        assert proto == (50 if b.kind == "ipcomp-esp" else 51)
        if b.kind == "ipcomp-esp":
            assert l3[ESP].seq == k + 1
        else:
            assert l3[AH].seq == k + 1
        if b.mode == "tunnel":
            assert (l3.src, l3.dst) == (b.gw, b.peer)
        got, compressed = b.undo_out(l3)
        want = forwarded(r.sent[b.name][k])
        if b.mode == "transport":
            want = split(want)[2]
        assert got == want
        assert compressed == (b.kind == "ipcomp-esp" and k == 0)


@pytest.mark.parametrize("b", BUNDLES, ids=lambda b: b.name)
@pytest.mark.parametrize("path", PATHS)
def test_outbound_sa_counters(tmp_path_factory, path, b):
    """Each layer counted its two packets; IPComp the incompressible one as
    uncompressed."""
    r = get_run(tmp_path_factory, path)
    esp, other = r.sa(b.spi["out"]), r.sa(b.spi2["out"])
    assert esp["packets"] == 2 and other["packets"] == 2
    assert esp["drop_bundle"] == 0 and other["drop_bundle"] == 0
    if b.kind == "ipcomp-esp":
        assert other["uncompressed"] == 1


@pytest.mark.parametrize("b", TUNNELS, ids=lambda b: b.name)
@pytest.mark.parametrize("path", PATHS)
def test_inbound_bundle_forwarded_and_bad_packets_counted(tmp_path_factory, path, b):
    """The good packets (one sent without IPComp inside ESP) reach the LAN host
    byte for byte; the packet without a required layer is dropped by the
    inbound check (drop_policy of the SA that did decrypt it), a wrong ICV
    in either layer and a replay by the layer concerned."""
    r = get_run(tmp_path_factory, path)
    eth = raw(Ether(src=LAN_MAC, dst=HOST_MAC, type=0x800 if b.fam == 4 else 0x86dd))
    got = [f for f in r.lan_out if f[len(eth):] in [forwarded(p) for p in r.good[b.name]]]
    want = [eth + forwarded(p) for p in r.good[b.name]]
    assert sorted(got) == sorted(want), r.log
    esp, other = r.sa(b.spi["in"]), r.sa(b.spi2["in"])
    if b.kind == "ipcomp-esp":
        # ESP: 6 authenticated (one of them the replay's original), one wrong ICV, one replay
        assert (esp["packets"], esp["drop_auth"], esp["drop_replay"]) == (4, 1, 1)
        # IPComp: the four good ones, and the one that came without ESP, refused
        assert (other["packets"], other["drop_policy"]) == (5, 1)
    else:
        assert (other["packets"], other["drop_auth"], other["drop_replay"]) == (5, 1, 1)
        assert (esp["packets"], esp["drop_auth"], esp["drop_policy"]) == (5, 1, 1)


@pytest.mark.parametrize("path", PATHS)
def test_nothing_else_left(tmp_path_factory, path):
    r = get_run(tmp_path_factory, path)
    assert len(r.wan_out) == 2 * len(BUNDLES)
    assert len(r.lan_out) == 4 * len(TUNNELS)


@pytest.mark.parametrize("path", PATHS[:1])
def test_policy_telemetry_shows_every_transform(tmp_path_factory, path):
    """/dpsec/policy (what dpsecctl policy prints) lists both transforms of each
    bundle, in order, with their modes."""
    r = get_run(tmp_path_factory, path)
    for b in BUNDLES:
        first, second = ("ipcomp", "esp") if b.kind == "ipcomp-esp" else ("esp", "ah")
        mine = [p for p in r.policies.values() if p["reqid"] == b.reqid]
        assert len(mine) == (2 if b.mode == "tunnel" else 1)
        for p in mine:
            assert p["transforms"] == 2
            assert (p["ipsec"], p["mode"], p["ipsec2"], p["mode2"]) == (first, b.mode, second, "transport")
            assert p["reqid2"] == b.reqid
