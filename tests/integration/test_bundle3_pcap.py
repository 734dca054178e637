"""Three-transform SA bundles (RFC 4301 4.5): `[ipcomp, esp, ah]` compresses,
encrypts, then authenticates. Tunnel mode in the layout Linux gives strongSwan
(the first request carries the tunnel, the next two are transport over its
outer header): outer IP / AH / ESP / IPComp / inner IP. Transport mode:
IP / AH / ESP / IPComp / upper layer, outbound on the forwarding path and
both ways with the gateway's own stack (test_esp_pcap's LiveRun).

As in test_bundle_pcap.py, what dpsecd sends is undone layer by layer by
scapy's AH and ESP (ICVs verified) and Python's zlib and compared byte for
byte; what dpsecd accepts is built by them. Inbound, a packet missing AH, ESP
or both is dropped by the check of RFC 4301 5.2 and counted as drop_policy of
the last SA that processed it (the IPComp SA); one without IPComp header (RFC
3173 2.2: not smaller, sent as is) is accepted; a wrong ICV in either layer
and a replay are dropped by the layer concerned.
"""
import struct
import zlib

import pytest
from scapy.all import ICMP, IP, UDP, Ether, ICMPv6PacketTooBig, IPv6, Raw, raw
from scapy.layers.ipsec import AH, SecurityAssociation

from test_bundle_pcap import AUTH_KEY, PATHS, Bundle, flip_last, hdr_fix, paced_live_run
from test_esp_pcap import (HOST, HOST_MAC, LAN_MAC, PcapRun, base_config, forwarded, frame_from_host,
                           frame_to_gw, ip, remote_host)
from test_ipcomp_pcap import COMPRESSIBLE, INCOMPRESSIBLE, deflate, split

ALL = ("ah", "esp")   # the layers over IPComp, innermost last


class Bundle3(Bundle):
    """[ipcomp, esp, ah] i with peer i: IPComp carries the mode (and the tunnel),
    ESP and AH are transport over its outer header, one reqid."""

    def __init__(self, i, fam, mode, own=False):
        super().__init__(i, "ipcomp-esp-ah", fam, mode, own)
        self.spi3 = {"out": 0x7200 + i, "in": 0x7300 + i}        # AH
        self.keys_ah = {d: keygen_ah(i, d) for d in ("out", "in")}

    def sas(self):
        out = []
        for d in ("out",) + (("in",) if self.mode == "tunnel" or self.own else ()):
            src, dst = self._ends(d)
            ek, ak, _ = self.keys[d]
            common = {"direction": d, "src": src, "dst": dst, "reqid": self.reqid}
            out += [dict(common, spi=self.spi2[d], proto="ipcomp", mode=self.mode),
                    dict(common, spi=self.spi[d], proto="esp", mode="transport",
                         encryption={"algorithm": "aes-cbc-128", "key": "0x" + ek.hex()},
                         integrity={"algorithm": "hmac-sha2-256-128", "key": "0x" + ak.hex()}),
                    dict(common, spi=self.spi3[d], proto="ah", mode="transport",
                         integrity={"algorithm": "hmac-sha2-256-128",
                                    "key": "0x" + self.keys_ah[d].hex()})]
        return out

    def requests(self, d):
        src, dst = self._ends(d)
        r1 = {"proto": "ipcomp", "mode": self.mode, "level": "require", "reqid": self.reqid}
        if self.mode == "tunnel":
            r1["tunnel"] = {"src": src, "dst": dst}
        return [r1] + [{"proto": p, "mode": "transport", "level": "require", "reqid": self.reqid}
                       for p in ("esp", "ah")]

    def ah_sa(self, d):
        return SecurityAssociation(AH, spi=self.spi3[d], auth_algo="SHA2-256-128",
                                   auth_key=self.keys_ah[d])

    def ah_over(self, body, seq, nh):
        """outer IP / AH / body, signed by scapy's AH (as Bundle.ah_over)."""
        o = IP(src=self.peer, dst=self.gw, ttl=64) if self.fam == 4 else \
            IPv6(src=self.peer, dst=self.gw, hlim=64)
        pad = 4 if self.fam == 6 else 0

        def build(icv):
            return hdr_fix(o / AH(nh=nh, payloadlen=(12 + 16 + pad) // 4 - 2, spi=self.spi3["in"],
                                  seq=seq, icv=icv, padding=bytes(pad)) / Raw(body))
        signed = self.ah_sa("in").auth_algo.sign(build(bytes(16)), self.keys_ah["in"])
        return build(bytes(signed[AH].icv)[:16])

    def wire_in(self, inner, seq, compress=True, layers=ALL, flip=None):
        """The frame the peer sends: zlib's IPComp (or none: RFC 3173 2.2), then
        scapy's ESP and AH over it, those of `layers` only; `flip` ("esp" or
        "ah") the layer whose ICV is wrong."""
        nh = 4 if self.fam == 4 else 41
        if self.mode == "transport":
            if compress:
                _, proto, body = split(inner)
                pkt = self.outer(108, struct.pack("!BBH", proto, 0, self.spi2["in"]) + deflate(body))
            else:
                pkt = hdr_fix((IP if self.fam == 4 else IPv6)(inner))
        elif compress:
            pkt = self.outer(108, struct.pack("!BBH", nh, 0, self.spi2["in"]) + deflate(inner))
        else:
            pkt = self.outer(nh, inner)
        if "esp" in layers:
            pkt = hdr_fix(self.esp_sa("in").encrypt(pkt, seq_num=seq, iv=self.iv(seq)))
            if flip == "esp":
                pkt = flip_last(pkt)
        if "ah" in layers:
            _, proto, body = split(raw(pkt))
            pkt = self.ah_over(body, seq, proto)
            if flip == "ah":
                pkt = flip_last(pkt)
        return frame_to_gw(hdr_fix(pkt))

    def undo_out(self, l3):
        """AH verified and removed by scapy, then ESP, then zlib inflates the
        IPComp payload: (what it carried, whether compressed, upper protocol
        (transport) or None)."""
        assert (l3.proto if self.fam == 4 else l3.nh) == 51
        p = hdr_fix(self.ah_sa("out").decrypt(l3))        # verifies the ICV
        assert (p.src, p.dst) == self._ends("out")
        assert (p.proto if self.fam == 4 else p.nh) == 50
        p = self.esp_sa("out").decrypt(p)                 # verifies the ICV
        _, proto, body = split(raw(p))
        if proto == 108:
            nh, flags, cpi = struct.unpack("!BBH", body[:4])
            assert (flags, cpi) == (0, self.spi2["out"])
            body = zlib.decompress(body[4:], wbits=-15)
            proto, compressed = nh, True
        else:
            compressed = False
        if self.mode == "transport":
            return body, compressed, proto
        assert proto == (4 if self.fam == 4 else 41)
        return body, compressed, None


def keygen_ah(i, d):
    from test_esp_pcap import keygen
    return keygen(f"b3/ah/{i}/{d}", AUTH_KEY)


BUNDLES = [Bundle3(40 + i, fam, mode) for i, (fam, mode) in
           enumerate([(f, m) for f in (4, 6) for m in ("tunnel", "transport")])]
TUNNELS = [b for b in BUNDLES if b.mode == "tunnel"]


def inbound_frames(b, good):
    """Per tunnel: (frame, what it proves). Sequence numbers are fresh for each
    frame but the replay, so that no layer's window refuses a good one."""
    return [b.wire_in(good[0], 1),
            b.wire_in(good[1], 2, layers=("esp",)),            # no AH
            b.wire_in(good[1], 3, layers=("ah",)),             # no ESP
            b.wire_in(good[1], 4, layers=()),                  # IPComp alone
            b.wire_in(good[1], 5, compress=False),             # no IPComp header: accepted
            b.wire_in(good[2], 6, flip="ah"),                  # AH ICV wrong
            b.wire_in(good[2], 7, flip="esp"),                 # ESP ICV wrong under a good AH
            b.wire_in(good[2], 8),
            b.wire_in(good[2], 8),                             # replay
            b.wire_in(good[3], 9)]


class Bundle3Run(PcapRun):
    def __init__(self, workdir, path):
        cfg = base_config(workdir, path)
        cfg["compress"] = {"min_size": 64}
        lan, wan = [], []
        self.sent, self.good = {}, {}
        for b in BUNDLES:
            cfg["sas"] += b.sas()
            cfg["policies"] += b.policies()
            for k, payload in enumerate((COMPRESSIBLE, INCOMPRESSIBLE)):
                p = b.lan_packet(payload, 1000 + k)
                self.sent.setdefault(b.name, []).append(p)
                lan.append(frame_from_host(IP(p) if b.fam == 4 else IPv6(p)))
        for b in TUNNELS:
            self.good[b.name] = [b.peer_packet(COMPRESSIBLE, 2000 + k) for k in range(4)]
            wan += inbound_frames(b, self.good[b.name])
        super().__init__(workdir, cfg, lan, wan)

    def out_of(self, b):
        return [hdr_fix(Ether(f).payload) for f in self.wan_out if Ether(f).payload.dst == b.peer]


_runs = {}


def get_run(tmp_path_factory, path):
    if path not in _runs:
        _runs[path] = Bundle3Run(tmp_path_factory.mktemp(f"bundle3-{path}"), path)
    return _runs[path]


@pytest.mark.parametrize("path", PATHS)
def test_daemon_ran(tmp_path_factory, path):
    r = get_run(tmp_path_factory, path)
    assert r.error is None, r.error
    assert r.rc == 0, r.log
    ah = [v for v in r.sas.values() if v["proto"] == "ah"]
    assert ah and all((v["device"], v["crypto"]) == (("intel-ipsec-mb", "native")
                                                    if path == "native" else
                                                    ("crypto_aesni_mb", path)) for v in ah)


@pytest.mark.parametrize("b", BUNDLES, ids=lambda b: b.name)
@pytest.mark.parametrize("path", PATHS)
def test_outbound_three_layers_undone_layer_by_layer(tmp_path_factory, path, b):
    """Both LAN packets leave once as AH over ESP, sequence numbers 1 and 2 in
    both; scapy verifies and removes AH then ESP; the compressible packet
    then carries an IPComp header and a stream zlib inflates, the
    incompressible one none (RFC 3173 2.2); what is left is the packet as
    forwarded (tunnel) or its upper layer (transport), byte for byte."""
    r = get_run(tmp_path_factory, path)
    outs = r.out_of(b)
    assert len(outs) == 2, r.log
    for k, l3 in enumerate(outs):
        assert l3[AH].seq == k + 1 and l3[AH].spi == b.spi3["out"]
        assert l3[AH].nh == 50
        ah = raw(l3[AH])
        esp = ah[(ah[1] + 2) * 4:]       # RFC 4302 2.2: AH's length in words, minus 2
        assert struct.unpack("!LL", esp[:8]) == (b.spi["out"], k + 1)
        if b.mode == "tunnel":
            assert (l3.src, l3.dst) == (b.gw, b.peer)
        got, compressed, upper = b.undo_out(l3)
        want = forwarded(r.sent[b.name][k])
        if b.mode == "transport":
            assert upper == 17
            want = split(want)[2]
        assert got == want
        assert compressed == (k == 0)


@pytest.mark.parametrize("b", BUNDLES, ids=lambda b: b.name)
@pytest.mark.parametrize("path", PATHS)
def test_outbound_sa_counters(tmp_path_factory, path, b):
    """Each of the three layers counted both packets; IPComp the incompressible
    one as uncompressed; no drop_bundle."""
    r = get_run(tmp_path_factory, path)
    comp, esp, ah = r.sa(b.spi2["out"]), r.sa(b.spi["out"]), r.sa(b.spi3["out"])
    assert (comp["packets"], esp["packets"], ah["packets"]) == (2, 2, 2)
    assert comp["uncompressed"] == 1
    assert comp["drop_bundle"] == esp["drop_bundle"] == ah["drop_bundle"] == 0


@pytest.mark.parametrize("b", TUNNELS, ids=lambda b: b.name)
@pytest.mark.parametrize("path", PATHS)
def test_inbound_three_layers_accepted_and_missing_layers_counted(tmp_path_factory, path, b):
    """The four good packets (one without IPComp header inside ESP) reach the
    LAN host byte for byte. Without AH, without ESP, or with neither, the
    packet is refused by the inbound check: drop_policy of the IPComp SA, the
    last that processed it. A wrong AH ICV and the replay are AH's drops, a
    wrong ESP ICV under a good AH is ESP's."""
    r = get_run(tmp_path_factory, path)
    eth = raw(Ether(src=LAN_MAC, dst=HOST_MAC, type=0x800 if b.fam == 4 else 0x86dd))
    fwd = [forwarded(p) for p in r.good[b.name]]
    got = [f for f in r.lan_out if f[len(eth):] in fwd]
    assert sorted(got) == sorted(eth + p for p in fwd), r.log
    comp, esp, ah = r.sa(b.spi2["in"]), r.sa(b.spi["in"]), r.sa(b.spi3["in"])
    # AH: frames 1, 3 (no ESP), 5, 7, 8, 10 pass; 6 wrong ICV; 9 replay
    assert (ah["packets"], ah["drop_auth"], ah["drop_replay"]) == (6, 1, 1)
    # ESP: frames 1, 2 (no AH), 5, 8, 10 pass; 7 wrong ICV
    assert (esp["packets"], esp["drop_auth"], esp["drop_policy"]) == (5, 1, 0)
    # IPComp: every frame that got to it; the three without AH or ESP refused
    assert (comp["packets"], comp["drop_policy"]) == (7, 3)


@pytest.mark.parametrize("path", PATHS)
def test_nothing_else_left(tmp_path_factory, path):
    r = get_run(tmp_path_factory, path)
    assert len(r.wan_out) == 2 * len(BUNDLES)
    assert len(r.lan_out) == 4 * len(TUNNELS)


@pytest.mark.parametrize("path", PATHS[:1])
def test_policy_telemetry_shows_three_transforms(tmp_path_factory, path):
    r = get_run(tmp_path_factory, path)
    for b in BUNDLES:
        mine = [p for p in r.policies.values() if p["reqid"] == b.reqid]
        assert len(mine) == (2 if b.mode == "tunnel" else 1)
        for p in mine:
            assert p["transforms"] == 3
            assert (p["ipsec"], p["mode"], p["ipsec2"], p["mode2"]) == ("ipcomp", b.mode, "esp", "transport")
            assert (p["ipsec3"], p["mode3"]) == ("ah", "transport")


# ---- transport mode with the gateway's own stack (live: wan's exception TAP) ----------------

OWN = [Bundle3(60 + i, fam, "transport", own=True) for i, fam in enumerate((4, 6))]


class OwnSpec:
    """For test_esp_pcap.LiveRun: the kernel sends one compressible datagram to
    each peer; each peer sends good datagrams (one without IPComp header), one
    without AH, one without ESP, and one with a wrong AH ICV."""

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
            out += [b.wire_in(d[0], 1), b.wire_in(d[1], 2, compress=False),
                    b.wire_in(d[2], 3, layers=("esp",)), b.wire_in(d[2], 4, layers=("ah",)),
                    b.wire_in(d[2], 5, flip="ah"), b.wire_in(d[2], 6)]
        return out


@pytest.fixture(scope="module")
def own_run(tmp_path_factory):
    return paced_live_run(tmp_path_factory, "bundle3-own", OwnSpec())


def test_own_run_exits_0(own_run):
    assert own_run.error is None, own_run.error
    assert own_run.rc == 0, own_run.log


@pytest.mark.parametrize("b", OWN, ids=lambda b: b.name)
def test_own_datagram_leaves_with_three_layers(own_run, b):
    """The kernel's datagram leaves once with AH, ESP and IPComp, undone by scapy
    and zlib into the UDP datagram it sent; its ICMP errors for the peer's
    datagrams leave with every layer too."""
    outs = [hdr_fix(Ether(f).payload) for f in own_run.wan_out if IP in Ether(f) or IPv6 in Ether(f)]
    outs = [o for o in outs if o.dst == b.peer]
    assert outs and all((o.proto if b.fam == 4 else o.nh) == 51 for o in outs)
    undone = [b.undo_out(o) for o in outs]
    assert {upper for _, _, upper in undone} <= {17, 1, 58}
    udp = [(got, compressed) for got, compressed, upper in undone if upper == 17]
    assert len(udp) == 1, own_run.stats
    got, compressed = udp[0]
    assert compressed
    assert UDP(got).dport == 9 and raw(UDP(got).payload) == COMPRESSIBLE


@pytest.mark.parametrize("b", OWN, ids=lambda b: b.name)
def test_own_peers_datagrams_reach_the_kernel_and_bad_ones_are_counted(own_run, b):
    """The three good datagrams (the second without IPComp header, RFC 3173
    2.2: the upper layer follows ESP) reach the kernel byte for byte; those
    without AH or without ESP are refused by the inbound check (drop_policy of
    the IPComp SA), the wrong ICV by AH."""
    spec = OwnSpec()
    want = sorted(split(spec.datagram(b, k))[2] for k in range(3))
    got = sorted(split(p)[2] for p in own_run.tap_l3()
                 if p[0] >> 4 == b.fam and split(p)[1] == 17 and (
                     (IP(p).src if b.fam == 4 else IPv6(p).src) == b.peer))
    assert got == want, own_run.stats
    comp, esp, ah = own_run.sa(b.spi2["in"]), own_run.sa(b.spi["in"]), own_run.sa(b.spi3["in"])
    # AH: 1, 2, 4 (no ESP), 6 pass; 5 wrong ICV
    assert (ah["packets"], ah["drop_auth"]) == (4, 1)
    # ESP: 1, 2, 3 (no AH), 6
    assert (esp["packets"], esp["drop_auth"]) == (4, 0)
    # IPComp: the compressed ones (1, 3, 4, 6), two of them refused; the
    # uncompressed transport datagram (2) never reaches it
    assert (comp["packets"], comp["drop_policy"]) == (4, 2)


# ---- path MTU: the three layers counted (RFC 4301 8.2.1) ------------------------------------


def max_ip(b, mtu=1500):
    """The largest incompressible inner packet (IPComp sends it as IP-in-IP)
    whose bundle fits mtu, from the wire layout: outer header, ESP (SPI,
    sequence number, 16-byte IV, 16-byte ICV, payload and 2-byte trailer
    padded to 16 for AES-CBC), AH (12 + 16-byte ICV, padded to 8 over IPv6)."""
    budget = mtu - (20 if b.fam == 4 else 40) - (8 + 16 + 16) - (28 if b.fam == 4 else 32)
    return budget // 16 * 16 - 2


class PmtuRun(PcapRun):
    def __init__(self, workdir):
        from test_bundle_pcap import incompressible
        cfg = base_config(workdir, "cpu")
        cfg["compress"] = {"min_size": 64}
        lan, self.sent = [], {}
        for b in TUNNELS:
            cfg["sas"] += b.sas()
            cfg["policies"] += b.policies()
            for kind, size in (("fits", max_ip(b)), ("big", max_ip(b) + 1)):
                hdr = ip(b.fam, src=HOST[b.fam], dst=remote_host(b.fam, b.i), ttl=64,
                         **({"flags": "DF"} if b.fam == 4 else {})) / UDP(sport=9000 + b.i, dport=9)
                p = raw(hdr / Raw(incompressible(size - len(raw(hdr)))))
                self.sent[(b.name, kind)] = p
                lan.append(frame_from_host(IP(p) if b.fam == 4 else IPv6(p)))
        super().__init__(workdir, cfg, lan, [])

    out_of = Bundle3Run.out_of


@pytest.mark.parametrize("b", TUNNELS, ids=lambda b: b.name)
def test_pmtu_counts_the_three_layers(tmp_path_factory, b):
    """The largest packet that fits once AH, ESP and IPComp are on leaves
    (undone to the forwarded packet, within 1500 bytes); one byte more gets an
    ICMP "fragmentation needed" (ICMPv6 "packet too big") naming that size."""
    r = PmtuRun(tmp_path_factory.mktemp(f"bundle3-pmtu-{b.name}"))
    assert r.error is None and r.rc == 0, r.error or r.log
    outs = r.out_of(b)
    assert len(outs) == 1 and len(raw(outs[0])) <= 1500, r.log
    got, compressed, _ = b.undo_out(outs[0])
    assert got == forwarded(r.sent[(b.name, "fits")]) and not compressed
    big = r.sent[(b.name, "big")]
    errors = []
    for f in r.lan_out:
        e = Ether(f)
        if b.fam == 4 and ICMP in e and e[ICMP].type == 3 and e[ICMP].code == 4:
            if raw(e[ICMP].payload)[:28] == big[:28]:
                errors.append(e[ICMP].nexthopmtu)
        elif b.fam == 6 and ICMPv6PacketTooBig in e:
            if raw(e[ICMPv6PacketTooBig].payload)[:48] == big[:48]:
                errors.append(e[ICMPv6PacketTooBig].mtu)
    assert errors == [max_ip(b)], [Ether(f).summary() for f in r.lan_out]
