"""SA bundles (RFC 4301 4.5) on the dataplane, on net_pcap ports: `[ipcomp, esp]`
and `[esp, ah]`, in the wire layout Linux uses for strongSwan. Tunnel mode: the
first request carries the tunnel, the next ones are transport over its outer
header (outer IP / ESP / IPComp / inner IP; outer IP / AH / ESP / inner IP).
Transport mode: IP / ESP / IPComp / upper layer; IP / AH / ESP / upper layer,
outbound on the forwarding path (LAN host to the peer host itself) and both
ways with the gateway's own stack (live: wan's exception TAP, test_esp_pcap's
LiveRun), where the ICMP errors the kernel answers with are protected too.

What dpsecd sends is undone layer by layer by independent code: scapy's own
ESP and AH (SecurityAssociation.decrypt verifies the ICV) and Python's zlib
(raw DEFLATE), and compared byte for byte with the packet as forwarded. What
dpsecd accepts is built the same way (scapy's encrypt, zlib's compress). Bad
packets between good ones, each dropped and counted: a packet without a
required layer, a wrong ICV in either layer, a replay. IPComp's "not smaller:
sent without IPComp header" (RFC 3173 2.2) inside ESP is accepted.

The topology and the daemon run are test_esp_pcap.py's (PcapRun).
"""
import hashlib
import struct
import zlib

import pytest
from scapy.all import ICMP, IP, UDP, Ether, ICMPv6PacketTooBig, IPv6, Raw, raw
from scapy.layers.ipsec import AH, ESP, SecurityAssociation

from test_esp_pcap import (GW, HOST, LAN_MAC, HOST_MAC, LAN_NET, PcapRun, base_config, forwarded,
                           frame_from_host, frame_to_gw, ip, keygen, peer_addr, remote_host,
                           remote_net)
from test_ipcomp_pcap import COMPRESSIBLE, INCOMPRESSIBLE, deflate, split

ENC_KEY, AUTH_KEY = 16, 32   # aes-cbc-128, hmac-sha2-256-128
# the crypto devices' CPU crypto or queue, or the native engine (AH's HMAC on
# intel-ipsec-mb, ESP's AES-CBC + HMAC still on the device's CPU crypto)
PATHS = ("cpu", "async", "native")


def hdr_fix(l3):
    """The packet parsed again, so that lengths and checksums are scapy's."""
    return l3.__class__(raw(l3))


class Bundle:
    """Bundle i of `kind` ("ipcomp-esp" or "esp-ah") with peer i, family fam,
    tunnel or transport mode: its outbound SAs and policy and, in tunnel mode,
    its inbound SAs and fwd policy."""

    def __init__(self, i, kind, fam, mode, own=False):
        self.i, self.kind, self.fam, self.mode, self.own = i, kind, fam, mode, own
        self.name = f"{kind}-{mode}{fam}" + ("-own" if own else "")
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
        if self.mode == "transport" and not self.own:
            return HOST[self.fam], self.peer
        return (self.gw, self.peer) if d == "out" else (self.peer, self.gw)

    def sas(self):
        out = []
        for d in ("out",) + (("in",) if self.mode == "tunnel" or self.own else ()):
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
        if self.own:   # everything between the gateway and the peer, both ways
            me, peer = f"{self.gw}/{bits}", f"{self.peer}/{bits}"
            return [{"direction": "out", "src": me, "dst": peer, "action": "protect",
                     "ipsec": self.requests("out")},
                    {"direction": "in", "src": peer, "dst": me, "action": "protect",
                     "ipsec": self.requests("in")}]
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
        l3 = IP if self.fam == 4 else IPv6
        if self.kind == "ipcomp-esp":
            if self.mode == "transport":     # inner: the peer's datagram to the gateway
                if compress:
                    hdr, proto, body = split(inner)
                    pkt = self.outer(108, struct.pack("!BBH", proto, 0, self.spi2["in"]) + deflate(body))
                else:
                    pkt = l3(inner)          # RFC 3173 2.2: no IPComp header
            elif compress:
                pkt = self.outer(108, struct.pack("!BBH", nh, 0, self.spi2["in"]) + deflate(inner))
            else:
                pkt = self.outer(nh, inner)   # RFC 3173 2.2: IP-in-IP, no IPComp header
            if "outer" in layers:
                pkt = self.esp_sa("in").encrypt(pkt, seq_num=seq, iv=self.iv(seq))
                if flip == "outer":
                    pkt = flip_last(pkt)
            return frame_to_gw(hdr_fix(pkt))
        pkt = self.esp_sa("in").encrypt(l3(inner), seq_num=seq, iv=self.iv(seq))
        if flip == "inner":
            pkt = flip_last(pkt)
        if "outer" in layers:
            pkt = self.ah_over(split(raw(pkt))[2], seq)
            if flip == "outer":
                pkt = flip_last(pkt)
        return frame_to_gw(hdr_fix(pkt))

    def iv(self, seq):
        """A fixed IV per packet: the frames are the same from run to run (the fuzz
        seeds of tests/fuzz/gen_dataplane.py are made of them)."""
        return keygen(f"b/iv/{self.i}/{seq}", 16)

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
        """The packet dpsecd sent, undone by scapy and zlib: (the IP packet (tunnel)
        or upper layer (transport) it carried, whether it was compressed, the
        upper layer's protocol (transport) or None)."""
        if self.kind == "ipcomp-esp":
            p = self.esp_sa("out").decrypt(l3)        # verifies the ICV
            hdr, proto, body = split(raw(p))
            assert (p.src, p.dst) == self._ends("out")
            if proto == 108:
                nh, flags, cpi = struct.unpack("!BBH", body[:4])
                assert (flags, cpi) == (0, self.spi2["out"])
                body = zlib.decompress(body[4:], wbits=-15)
                if self.mode == "transport":
                    return body, True, nh
                assert nh == (4 if self.fam == 4 else 41)
                return body, True, None
            if self.mode == "transport":
                return body, False, proto
            assert proto == (4 if self.fam == 4 else 41)
            return body, False, None
        assert (l3.proto if self.fam == 4 else l3.nh) == 51
        p = self.ah_sa("out").decrypt(l3)             # verifies the ICV
        assert (p.src, p.dst) == self._ends("out")
        p = self.esp_sa("out").decrypt(hdr_fix(p))
        if self.mode == "transport":
            hdr, proto, body = split(raw(p))
            return body, False, proto
        return raw(p), False, None


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
    # the AH layers' engine: intel-ipsec-mb without a device on the native path
    ah = [v for v in r.sas.values() if v["proto"] == "ah"]
    assert ah and all((v["device"], v["crypto"]) == (("intel-ipsec-mb", "native")
                                                    if path == "native" else
                                                    ("crypto_aesni_mb", path)) for v in ah)
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
        got, compressed, upper = b.undo_out(l3)
        want = forwarded(r.sent[b.name][k])
        if b.mode == "transport":
            assert upper == 17
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


# ---- transport mode with the gateway's own stack (live: wan's exception TAP) ----------------

OWN = [Bundle(20 + i, kind, fam, "transport", own=True)
       for i, (kind, fam) in enumerate([(k, f) for k in ("ipcomp-esp", "esp-ah") for f in (4, 6)])]


class OwnSpec:
    """For test_esp_pcap.LiveRun: transport bundles between the gateway's wan
    addresses and a peer; the kernel sends one compressible datagram to each
    peer; each peer sends good datagrams (one without IPComp header for
    [ipcomp, esp]), one without the outer layer and one with a wrong ICV."""

    n_from_kernel = len(OWN)

    def configure(self, cfg):
        cfg["compress"] = {"min_size": 64}
        for b in OWN:
            cfg["sas"] += b.sas()
            cfg["policies"] += b.policies()

    def from_kernel(self, ns):
        from test_esp_pcap import kernel_send
        for b in OWN:
            kernel_send(ns, b.fam, b.gw, b.peer, 9, COMPRESSIBLE)

    def datagram(self, b, k):
        return raw(ip(b.fam, src=b.peer, dst=b.gw, ttl=64) / UDP(sport=7000 + k, dport=9)
                   / Raw(b"%d/" % k + COMPRESSIBLE))

    def frames(self):
        out = []
        for b in OWN:
            d = [self.datagram(b, k) for k in range(3)]
            if b.kind == "ipcomp-esp":
                out += [b.wire_in(d[0], 1), b.wire_in(d[1], 2, compress=False),
                        b.wire_in(d[2], 3, layers=("inner",)), b.wire_in(d[2], 3, flip="outer"),
                        b.wire_in(d[2], 4)]
            else:
                out += [b.wire_in(d[0], 1), b.wire_in(d[1], 2),
                        b.wire_in(d[2], 3, layers=("inner",)), b.wire_in(d[2], 4, flip="outer"),
                        b.wire_in(d[2], 5)]
        return out


def paced_live_run(tmp_path_factory, name, spec):
    """test_esp_pcap's LiveRun of @spec, its frames (up to 1.3 kB each)
    paced so that the live net_pcap port misses none."""
    import test_esp_pcap as P
    send = P.send_frames
    P.send_frames = lambda iface, frames: send(iface, frames, gap=0.03)
    try:
        return P.LiveRun(tmp_path_factory.mktemp(name), spec)
    finally:
        P.send_frames = send


@pytest.fixture(scope="module")
def own_run(tmp_path_factory):
    return paced_live_run(tmp_path_factory, "bundle-own", OwnSpec())


def test_own_run_exits_0(own_run):
    assert own_run.error is None, own_run.error
    assert own_run.rc == 0, own_run.log


@pytest.mark.parametrize("b", OWN, ids=lambda b: b.name)
def test_own_datagram_leaves_with_every_layer(own_run, b):
    """The kernel's datagram leaves once, its IP header kept (transport mode),
    undone by scapy's ESP (and AH) and zlib into the UDP datagram it sent."""
    outs = [hdr_fix(Ether(f).payload) for f in own_run.wan_out if IP in Ether(f) or IPv6 in Ether(f)]
    outs = [o for o in outs if o.dst == b.peer]
    outer = 50 if b.kind == "ipcomp-esp" else 51
    assert outs and all((o.proto if b.fam == 4 else o.nh) == outer for o in outs)
    # every one undone with its ICVs verified; besides the kernel's datagram, its
    # ICMP errors (port 9 unreachable) for the peer's datagrams, protected too
    undone = [b.undo_out(o) for o in outs]
    udp = [(got, compressed) for got, compressed, upper in undone if upper == 17]
    assert {upper for _, _, upper in undone} <= {17, 1, 58}
    assert len(udp) == 1, own_run.stats
    got, compressed = udp[0]
    assert compressed == (b.kind == "ipcomp-esp")
    assert UDP(got).dport == 9 and raw(UDP(got).payload) == COMPRESSIBLE


@pytest.mark.parametrize("b", OWN, ids=lambda b: b.name)
def test_own_peers_datagrams_reach_the_kernel_and_bad_ones_are_counted(own_run, b):
    """The three good datagrams (the second without IPComp header inside ESP,
    RFC 3173 2.2) reach the kernel byte for byte; the one without the outer
    layer is refused by the inbound check, the wrong ICV by its layer."""
    spec = OwnSpec()
    want = sorted(split(spec.datagram(b, k))[2] for k in range(3))
    got = sorted(split(p)[2] for p in own_run.tap_l3()
                 if p[0] >> 4 == b.fam and split(p)[1] == 17 and (
                     (IP(p).src if b.fam == 4 else IPv6(p).src) == b.peer))
    assert got == want, own_run.stats
    esp, other = own_run.sa(b.spi["in"]), own_run.sa(b.spi2["in"])
    if b.kind == "ipcomp-esp":
        assert (esp["packets"], esp["drop_auth"]) == (3, 1)
        # IPComp: the compressed good ones and the one that came without ESP, refused
        assert (other["packets"], other["drop_policy"]) == (3, 1)
    else:
        assert (other["packets"], other["drop_auth"]) == (3, 1)
        assert (esp["packets"], esp["drop_policy"]) == (4, 1)


# ---- path MTU: every layer of the bundle counted (RFC 4301 8.2.1) ---------------------------


def incompressible(n):
    return b"".join(hashlib.sha256(b"mtu%d" % i).digest() for i in range(n // 32 + 1))[:n]


def bundle_max_ip(b, mtu=1500):
    """The largest inner packet whose bundle fits mtu, from the wire layout alone
    (the payload does not compress: IPComp sends it as IP-in-IP): outer header,
    ESP (SPI, sequence number, 16-byte IV, 16-byte ICV; payload and its 2-byte
    trailer padded to 16 for AES-CBC), and AH (12 + 16-byte ICV, padded to 8
    over IPv6)."""
    outer = 20 if b.fam == 4 else 40
    ah = (28 if b.fam == 4 else 32) if b.kind == "esp-ah" else 0
    budget = mtu - outer - (8 + 16 + 16) - ah
    return budget // 16 * 16 - 2


class PmtuBundleRun(PcapRun):
    """Per tunnel bundle, from the LAN host with DF (IPv6: always): the largest
    incompressible packet that fits once every layer is on, and one byte more."""

    out_of = BundleRun.out_of

    def __init__(self, workdir):
        cfg = base_config(workdir, "cpu")
        cfg["compress"] = {"min_size": 64}
        lan, self.sent = [], {}
        for b in TUNNELS:
            cfg["sas"] += b.sas()
            cfg["policies"] += b.policies()
            for kind, size in (("fits", bundle_max_ip(b)), ("big", bundle_max_ip(b) + 1)):
                hdr = ip(b.fam, src=HOST[b.fam], dst=remote_host(b.fam, b.i), ttl=64,
                         **({"flags": "DF"} if b.fam == 4 else {})) / UDP(sport=9000 + b.i, dport=9)
                p = raw(hdr / Raw(incompressible(size - len(raw(hdr)))))
                assert len(p) == size
                self.sent[(b.name, kind)] = p
                lan.append(frame_from_host(IP(p) if b.fam == 4 else IPv6(p)))
        super().__init__(workdir, cfg, lan, [])


@pytest.fixture(scope="module")
def pmtu_run(tmp_path_factory):
    return PmtuBundleRun(tmp_path_factory.mktemp("bundle-pmtu"))


@pytest.mark.parametrize("b", TUNNELS, ids=lambda b: b.name)
def test_pmtu_counts_every_layer_of_the_bundle(pmtu_run, b):
    """The largest packet that fits once every layer is on leaves (undone by
    scapy and zlib to the forwarded packet, within the wan MTU); one byte more
    gets an ICMP "fragmentation needed" (ICMPv6 "packet too big") whose MTU is
    that largest packet, not what the first SA alone would allow."""
    r = pmtu_run
    assert r.error is None and r.rc == 0, r.error or r.log
    outs = r.out_of(b)
    assert len(outs) == 1, r.log
    assert len(raw(outs[0])) <= 1500
    got, compressed, _ = b.undo_out(outs[0])
    assert got == forwarded(r.sent[(b.name, "fits")]) and not compressed
    big = r.sent[(b.name, "big")]
    errors = []
    for f in r.lan_out:
        e = Ether(f)
        if b.fam == 4 and ICMP in e and e[ICMP].type == 3 and e[ICMP].code == 4:
            if raw(e[ICMP].payload)[:len(big)][:28] == big[:28]:
                errors.append(e[ICMP].nexthopmtu)
        elif b.fam == 6 and ICMPv6PacketTooBig in e:
            if raw(e[ICMPv6PacketTooBig].payload)[:48] == big[:48]:
                errors.append(e[ICMPv6PacketTooBig].mtu)
    assert errors == [max(bundle_max_ip(b), 1280 if b.fam == 6 else 0)], [Ether(f).summary() for f in r.lan_out]


class InnerCksumRun(PcapRun):
    """The [ipcomp, esp] IPv4 tunnel: an inner packet sent without IPComp (RFC
    3173 2.2: IP-in-IP inside ESP) whose header checksum is wrong, between two
    good ones. ESP's finish marks the header it recomputed (the outer one, in
    transport mode) as checked; the inner one IPComp exposes was not."""

    def __init__(self, workdir):
        b = self.b = next(x for x in TUNNELS if x.kind == "ipcomp-esp" and x.fam == 4)
        cfg = base_config(workdir, "cpu")
        cfg["compress"] = {"min_size": 64}
        cfg["sas"] += b.sas()
        cfg["policies"] += b.policies()
        self.good = [b.peer_packet(INCOMPRESSIBLE, 3000 + k) for k in range(2)]
        bad = bytearray(b.peer_packet(INCOMPRESSIBLE, 3002))
        bad[10] ^= 0x5a                                   # the IPv4 header checksum
        wan = [b.wire_in(self.good[0], 1, compress=False),
               b.wire_in(bytes(bad), 2, compress=False),
               b.wire_in(self.good[1], 3, compress=False)]
        super().__init__(workdir, cfg, [], wan)


def test_inner_header_checksum_checked_after_uncompressed_ipip(tmp_path_factory):
    r = InnerCksumRun(tmp_path_factory.mktemp("bundle-inner-cksum"))
    assert r.error is None and r.rc == 0, r.error or r.log
    eth = raw(Ether(src=LAN_MAC, dst=HOST_MAC, type=0x800))
    assert sorted(r.lan_out) == sorted(eth + forwarded(p) for p in r.good), r.log
    assert r.stats["wan"]["drop_bad_cksum"] == 1, r.stats["wan"]
    assert r.sa(r.b.spi["in"])["packets"] == 3
