"""AH (RFC 4302) on the dataplane against scapy's own AH code, on net_pcap ports.

The topology, the daemon runs and the helpers are test_esp_pcap.py's. What
dpsecd sends is verified and decapsulated by scapy's
SecurityAssociation(AH, ...).decrypt (its zero_mutable_fields, its HMAC) and
compared byte for byte with the packet as forwarded; what dpsecd accepts is
built by scapy's SecurityAssociation.encrypt.

Scenarios (each run once per crypto path: CPU crypto or the cryptodev queue on
crypto_aesni_mb, or the native engine, crypto.engine: native, whose
intel-ipsec-mb jobs compute the HMACs without cryptodev; AES-GMAC stays on
the device there):

* ah: every AH algorithm (HMAC-SHA1-96, HMAC-SHA2-256-128, -384-192,
  -512-256) in tunnel mode 4in4, 6in6, 4in6, 6in4, with ESN; transport mode on
  the forwarding path over IPv4 (with IPv4 options, one mutable, one not) and
  IPv6 (with a Destination Options header holding a mutable option); inbound
  tunnels whose outer header carries IPv4 options or an IPv6 Destination
  Options header with a mutable option, or a Routing header with no segment
  left then AH then a Destination Options header (scapy's sender puts it
  after AH, as Linux does); TOS / traffic class set on every
  packet. Bad packets between good ones: a wrong ICV, a replay, a sequence
  number left of the window, a truncated AH, an unknown SPI, an ESP SA's SPI.
  AH fragments (IPv4, IPv6), reassembled first.
* keeptos: ipsec.ah_cleartos false: the IPv4 TOS is in the ICV (verified
  by scapy's code with the TOS left in), on a tunnel and a transport SA.
* offsetmask: ipsec.ah_offsetmask 0xffff (FreeBSD's knob): the IPv4 flags and
  fragment offset are in the ICV; the default (0, RFC 4302) leaves them out,
  which every other scenario checks with DF set on one IPv4 packet.
* deflev: ah_net_deflev require and ah_trans_deflev use on AH requests of
  level default that have no SA.
"""
import contextlib
import struct

import test_esp_pcap
import pytest
from scapy.all import (IP, UDP, Ether, IPv6, IPv6ExtHdrDestOpt, IPv6ExtHdrFragment, IPv6ExtHdrRouting,
                       Raw, fragment,
                       fragment6, raw)
from scapy.layers.inet import IPOption_Router_Alert, IPOption_RR
from scapy.layers.inet6 import HBHOptUnknown
from scapy.layers import ipsec as scapy_ipsec
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from scapy.layers.ipsec import AH, SecurityAssociation

from test_esp_pcap import (GW, HOST, EspSA, HOST_MAC, LAN_MAC, LAN_NET, PcapRun, base_config,
                           forwarded, frame_from_host, frame_to_gw, ip, keygen, peer_addr,
                           remote_host, remote_net)

PATHS = ("cpu", "async", "native")
# dpsecd name -> (scapy name, key bytes)
ALGS = {
    "hmac-sha1-96": ("HMAC-SHA1-96", 20),
    "hmac-sha2-256-128": ("SHA2-256-128", 32),
    "hmac-sha2-384-192": ("SHA2-384-192", 48),
    "hmac-sha2-512-256": ("SHA2-512-256", 64),
    # RFC 4543 in AH, which scapy lacks: gmac_* below (key, then a 4-byte salt)
    "aes-gmac-128": (None, 20),
    "aes-gmac-256": (None, 36),
}


def gmac_tag(pkt, key, esn=None):
    """AES-GMAC (RFC 4543 §5) of an IP/IPv6 packet with AH whose ICV field holds
    IV (8) || tag (16) [|| padding]: the GCM tag of an empty plaintext, nonce
    salt || IV, AAD the packet with scapy's mutable fields zeroed (the IV kept,
    the tag zeroed) [and the ESN high half]; `cryptography`'s AES-GCM."""
    iv = bytes(pkt[AH].icv[:8])
    clone = scapy_ipsec.zero_mutable_fields(pkt.copy())
    clone[AH].icv = iv + bytes(len(pkt[AH].icv) - 8)
    aad = raw(clone) + (struct.pack("!L", esn) if esn is not None else b"")
    return AESGCM(key[:-4]).encrypt(key[-4:] + iv, b"", aad)


def gmac_ah(outer, inner, spi, seq, key, v6):
    """scapy layers outer / AH / inner with an AES-GMAC ICV (IV: the sequence number)."""
    icvlen = 24 + (4 if v6 else 0)     # IV, tag, and IPv6's 8-byte alignment
    ah = AH(nh=4 if inner[0] >> 4 == 4 else 41, spi=spi, seq=seq, payloadlen=(12 + icvlen) // 4 - 2,
            icv=struct.pack("!Q", seq) + bytes(icvlen - 8))
    pkt = outer.__class__(raw(outer / ah / Raw(inner)))
    tag = gmac_tag(pkt, key)
    pkt[AH].icv = struct.pack("!Q", seq) + tag + bytes(icvlen - 24)
    return pkt.__class__(raw(pkt))
RH_HOP = "2001:db8:9::1"   # the hop a Routing header sent the peer's packet through
MUTABLE_OPT6 = 0x3E    # an experimental option (RFC 4727) with the "change en route" bit


@contextlib.contextmanager
def flags_in_icv():
    """scapy's AH zeroes the IPv4 flags; ah_offsetmask 0xffff keeps flags and
    fragment offset in the ICV (FreeBSD's knob)."""
    orig = scapy_ipsec.zero_mutable_fields

    def keep_flags(pkt, sending=False):
        flags = pkt.flags if pkt.version == 4 else None
        out = orig(pkt, sending)
        if flags is not None:
            out.flags = flags
        return out
    scapy_ipsec.zero_mutable_fields = keep_flags
    try:
        yield
    finally:
        scapy_ipsec.zero_mutable_fields = orig


@contextlib.contextmanager
def tos_in_icv():
    """scapy's AH always zeroes the IPv4 TOS; ah_cleartos=false keeps it in the ICV."""
    orig = scapy_ipsec.zero_mutable_fields

    def keep_tos(pkt, sending=False):
        tos = pkt.tos if pkt.version == 4 else None
        out = orig(pkt, sending)
        if tos is not None:
            out.tos = tos
        return out
    scapy_ipsec.zero_mutable_fields = keep_tos
    try:
        yield
    finally:
        scapy_ipsec.zero_mutable_fields = orig


class AhTunnel:
    """An AH SA pair of the gateway with peer i (tunnel), or an outbound AH SA
    from the LAN host to peer host i (transport, forwarding path)."""

    def __init__(self, i, alg, inner=4, outer=None, mode="tunnel", esn=False, n_out=3, n_in=3,
                 opts=False):
        self.i, self.alg, self.inner, self.mode, self.esn, self.opts = i, alg, inner, mode, esn, opts
        self.outer = inner if outer is None else outer
        self.n_out, self.n_in = n_out, (n_in if mode == "tunnel" else 0)
        self.spi_out, self.spi_in = 0x3000 + i, 0x4000 + i
        self.ttl = 30 + i
        klen = ALGS[alg][1]
        self.key = {d: keygen(f"ah/{i}/{d}", klen) for d in ("out", "in")}
        self.name = f"{i}-{alg}-" + (f"{self.inner}in{self.outer}" if mode == "tunnel"
                                     else f"transport{inner}") + ("-esn" if esn else "") \
            + ("-opts" if opts else "")
        self._build()

    @property
    def peer(self):
        return peer_addr(self.outer, self.i)

    @property
    def gw(self):
        return GW[self.outer]

    def scapy_sa(self, d):
        """scapy's SA for direction d ("out": what dpsecd sends)."""
        kw = {}
        if self.mode == "tunnel":
            src, dst = (self.gw, self.peer) if d == "out" else (self.peer, self.gw)
            kw["tunnel_header"] = ip(self.outer, src=src, dst=dst)
        return SecurityAssociation(AH, spi=self.spi_out if d == "out" else self.spi_in,
                                   auth_algo=ALGS[self.alg][0], auth_key=self.key[d],
                                   esn_en=self.esn, esn=0, **kw)

    def _sa_cfg(self, spi, direction, src, dst, key):
        c = {"spi": spi, "proto": "ah", "direction": direction, "mode": self.mode,
             "src": src, "dst": dst, "reqid": 100 + self.i,
             "integrity": {"algorithm": self.alg, "key": "0x" + key.hex()}}
        if self.mode == "tunnel":
            c["ttl"] = self.ttl
        if self.esn:
            c["esn"] = True
        return c

    def sas(self):
        if self.mode == "transport":
            return [self._sa_cfg(self.spi_out, "out", HOST[self.inner], self.peer, self.key["out"])]
        return [self._sa_cfg(self.spi_out, "out", self.gw, self.peer, self.key["out"]),
                self._sa_cfg(self.spi_in, "in", self.peer, self.gw, self.key["in"])]

    def _req(self, src, dst):
        r = {"proto": "ah", "mode": self.mode, "level": "require", "reqid": 100 + self.i}
        if self.mode == "tunnel":
            r["tunnel"] = {"src": src, "dst": dst}
        return [r]

    def policies(self):
        if self.mode == "transport":
            bits = 32 if self.inner == 4 else 128
            return [{"direction": "out", "src": f"{HOST[self.inner]}/{bits}",
                     "dst": f"{self.peer}/{bits}", "action": "protect",
                     "ipsec": self._req(None, None)}]
        return [{"direction": "out", "src": LAN_NET[self.inner], "dst": remote_net(self.inner, self.i),
                 "action": "protect", "ipsec": self._req(self.gw, self.peer)},
                {"direction": "fwd", "src": remote_net(self.inner, self.i), "dst": LAN_NET[self.inner],
                 "action": "protect", "ipsec": self._req(self.peer, self.gw)}]

    def _build(self):
        fam = self.inner
        dst = self.peer if self.mode == "transport" else remote_host(fam, self.i)
        self.out_inner = []
        for k in range(self.n_out):
            kw = {"tos": [0, 0x02, 0xb8][k % 3], "flags": "DF" if k == 1 else 0} if fam == 4 \
                else {"tc": [0, 0x02, 0xb8][k % 3]}
            if fam == 4 and self.opts:
                kw["options"] = [IPOption_RR(routers=["1.2.3.4"]), IPOption_Router_Alert()]
            l3 = ip(fam, src=HOST[fam], dst=dst, ttl=64, **kw)
            if fam == 6 and self.opts:
                l3 = l3 / IPv6ExtHdrDestOpt(options=[HBHOptUnknown(otype=MUTABLE_OPT6, optdata=b"abcd")])
            pkt = l3 / UDP(sport=1000 + self.i, dport=2000 + k) \
                / Raw(f"{self.name}/out/{k}/".encode() + bytes(range([1, 30, 200][k % 3])))
            self.out_inner.append(raw(pkt))
        self.in_inner, self.in_frames = [], []
        for k in range(self.n_in):
            pkt = ip(fam, src=remote_host(fam, self.i), dst=HOST[fam], ttl=64,
                     **({"tos": 0x28} if fam == 4 else {"tc": 0x28})) / \
                UDP(sport=3000 + self.i, dport=4000 + k) / Raw(f"{self.name}/in/{k}/".encode() + b"x" * (5 * k))
            self.in_inner.append(raw(pkt))
            self.in_frames.append(self.ah_frame(k + 1, raw(pkt)))

    def outer_header(self, tos=0x48):
        """The peer's outer header: with options (IPv4) or a Destination Options
        header holding a mutable option (IPv6) when opts."""
        if self.outer == 4:
            kw = {"options": [IPOption_RR(routers=["5.6.7.8"]), IPOption_Router_Alert()]} if self.opts else {}
            return IP(src=self.peer, dst=self.gw, ttl=64, tos=tos, **kw)
        h = IPv6(src=self.peer, dst=self.gw, hlim=64, tc=tos, fl=0x12345)
        if self.opts == "rh":   # as sent: to RH_HOP first, the gateway last (ah_frame)
            h.dst = RH_HOP
            return h / IPv6ExtHdrRouting(addresses=[self.gw], segleft=1) \
                / IPv6ExtHdrDestOpt(options=[HBHOptUnknown(otype=MUTABLE_OPT6, optdata=b"rh")])
        if self.opts:
            h = h / IPv6ExtHdrDestOpt(options=[HBHOptUnknown(otype=MUTABLE_OPT6, optdata=b"wxyz")])
        return h

    def ah_frame(self, seq, inner, icv_flip=False, cut=None, tos=0x48):
        if self.alg.startswith("aes-gmac"):
            pkt = raw(gmac_ah(self.outer_header(tos), inner, self.spi_in, seq, self.key["in"], self.outer == 6))
        else:
            sa = self.scapy_sa("in")
            sa.tunnel_header = self.outer_header(tos)
            pkt = raw(sa.encrypt(IP(inner) if inner[0] >> 4 == 4 else IPv6(inner), seq_num=seq))
        if self.opts == "rh":
            # as received (RFC 4302 3.3.3.1.2): the hop took its turn, no segment left;
            # scapy's sender computed the ICV over this form
            p = IPv6(pkt)
            p.dst, p[IPv6ExtHdrRouting].addresses, p[IPv6ExtHdrRouting].segleft = self.gw, [RH_HOP], 0
            pkt = raw(p)
        if icv_flip:
            pkt = pkt[:-1] + bytes([pkt[-1] ^ 1])
        if cut is not None:
            pkt = pkt[:cut]
            b = bytearray(pkt)
            if self.outer == 4:
                b[2:4] = struct.pack("!H", len(b))
                h = IP(bytes(b))
                del h.chksum
                b = bytearray(raw(h))
            else:
                b[4:6] = struct.pack("!H", len(b) - 40)
            pkt = bytes(b)
        return frame_to_gw(IP(pkt) if self.outer == 4 else IPv6(pkt))

    def lan_frames(self):
        return [frame_from_host(IP(p) if self.inner == 4 else IPv6(p)) for p in self.out_inner]

    def expected_lan(self, pkts=None):
        return [raw(Ether(src=LAN_MAC, dst=HOST_MAC, type=0x800 if self.inner == 4 else 0x86dd))
                + forwarded(p) for p in (self.in_inner if pkts is None else pkts)]


def ah_tunnels(variant):
    if variant == "keeptos":
        return [AhTunnel(90, "hmac-sha2-256-128"), AhTunnel(91, "hmac-sha1-96", mode="transport")]
    if variant == "offsetmask":
        return [AhTunnel(92, "hmac-sha2-256-128"), AhTunnel(93, "hmac-sha2-256-128", mode="transport")]
    if variant == "deflev":
        return []
    ts = []
    i = 1
    for alg in [a for a in ALGS if not a.startswith("aes-gmac")]:
        for inner, outer in ((4, 4), (6, 6), (4, 6), (6, 4)):
            ts.append(AhTunnel(i, alg, inner, outer))
            i += 1
    ts += [AhTunnel(34, "aes-gmac-128"), AhTunnel(35, "aes-gmac-256", 6),
           AhTunnel(36, "hmac-sha2-256-128", 6, n_out=0, opts="rh")]
    ts += [AhTunnel(30, "hmac-sha2-256-128", esn=True), AhTunnel(31, "hmac-sha1-96", 6, esn=True),
           AhTunnel(32, "hmac-sha2-256-128", opts=True), AhTunnel(33, "hmac-sha2-512-256", 6, opts=True),
           AhTunnel(40, "hmac-sha2-256-128", mode="transport"),
           AhTunnel(41, "hmac-sha2-384-192", 6, mode="transport"),
           AhTunnel(42, "hmac-sha1-96", mode="transport", opts=True),
           AhTunnel(43, "hmac-sha2-256-128", 6, mode="transport", opts=True)]
    return ts


BAD = 1   # the tunnel that gets the bad packets


class AhRun(PcapRun):
    def __init__(self, workdir, variant, path):
        keeptos = variant != "ah"
        self.tunnels = ah_tunnels(variant)
        ipsec = {"ah_cleartos": variant != "keeptos"}
        if variant == "offsetmask":
            ipsec["ah_offsetmask"] = 0xffff
        if variant == "deflev":
            ipsec.update(ah_net_deflev="require", ah_trans_deflev="use")
        cfg = base_config(workdir, path, ipsec=ipsec)
        for t in self.tunnels:
            cfg["sas"] += t.sas()
            cfg["policies"] += t.policies()
        lan = [f for t in self.tunnels for f in t.lan_frames()]
        if variant == "deflev":
            # AH requests at level default, no SA: tunnel (ah_net_deflev require)
            # drops, transport (ah_trans_deflev use) lets the packet go in clear
            cfg["policies"] += [
                {"direction": "out", "src": LAN_NET[4], "dst": "10.90.0.0/24", "action": "protect",
                 "ipsec": [{"proto": "ah", "mode": "tunnel", "level": "default", "reqid": 901,
                            "tunnel": {"src": GW[4], "dst": peer_addr(4, 90)}}]},
                {"direction": "out", "src": f"{HOST[4]}/32", "dst": f"{peer_addr(4, 91)}/32",
                 "action": "protect", "ipsec": [{"proto": "ah", "mode": "transport", "level": "default",
                                                 "reqid": 902}]}]
            self.deflev_pkts = [raw(IP(src=HOST[4], dst=d, ttl=64) / UDP(sport=5, dport=6) / Raw(b"deflev"))
                                for d in ("10.90.0.7", peer_addr(4, 91))]
            lan += [frame_from_host(IP(p)) for p in self.deflev_pkts]
        wan = [f for t in self.tunnels for f in t.in_frames]
        self.bad = {}
        self.frags = {}   # tunnel i -> inner packets that arrive in fragmented AH
        self.ecn = {}     # (tunnel i, inner ECN) -> inner packet under an outer CE
        if not keeptos:
            for i in (7, 8):   # sha2-256 4in6, 6in4
                t = self.tunnel_by_i(i)
                fam = t.inner
                for ecn in (0, 2):   # Not-ECT: dropped (RFC 6040 4.2); ECT(0): becomes CE
                    p = raw(ip(fam, src=remote_host(fam, i), dst=HOST[fam], ttl=64,
                               **({"tos": 0x20 | ecn} if fam == 4 else {"tc": 0x20 | ecn}))
                            / UDP(sport=13, dport=14) / Raw(b"ecn%d" % ecn))
                    self.ecn[(i, ecn)] = p
                    wan.append(t.ah_frame(t.n_in + 1 + ecn // 2, p, tos=0x03))
            for i in (5, 6):
                t = self.tunnel_by_i(i)
                fam = t.inner
                p = raw(ip(fam, src=remote_host(fam, i), dst=HOST[fam], ttl=64) / UDP(sport=11, dport=12)
                        / Raw(bytes(range(256)) * 5 + b"fragmented-ah"))
                outer = Ether(t.ah_frame(t.n_in + 1, p)).payload
                if fam == 4:
                    fr = fragment(outer, fragsize=512)
                else:
                    fr = fragment6(IPv6(src=outer.src, dst=outer.dst, hlim=outer.hlim)
                                   / IPv6ExtHdrFragment(nh=outer.nh, id=0x4242) / outer.payload, 512)
                assert len(fr) >= 3
                self.frags[i] = [p]
                wan += [frame_to_gw(f) for f in fr[::-1]]   # reversed, as a router may
            t = self.tunnel_by_i(BAD)
            inner = t.in_inner[0]
            good = [raw(IP(bytes(p))) for p in
                    (raw(IP(src=remote_host(4, BAD), dst=HOST[4], ttl=64) / UDP(sport=7, dport=9 + k)
                         / Raw(b"good%d" % k)) for k in range(4))]
            self.bad = {"good": good}
            wan += [
                t.ah_frame(10, good[0]),
                t.ah_frame(11, inner, icv_flip=True),            # wrong ICV
                t.ah_frame(10, good[1]),                         # replay of 10
                t.ah_frame(200, good[2]),                        # moves the window to 200
                t.ah_frame(100, good[3]),                        # 200 - 100 >= 64: too old
                t.ah_frame(201, inner, cut=20 + 12 + 4),         # AH cut in its ICV
                frame_to_gw(IP(src=t.peer, dst=t.gw, proto=51) / Raw(struct.pack("!BBHLL", 4, 4, 0, 0x7777, 1)
                                                                   + b"\0" * 16)),  # unknown SPI
            ]
            # an ESP-only SPI: an AH packet with the SPI of the ESP SA below
            cfg["sas"].append({"spi": 0x5555, "direction": "in", "mode": "tunnel", "src": t.peer,
                               "dst": t.gw, "encryption": {"algorithm": "aes-gcm-128",
                                                           "key": "0x" + keygen("esp5555", 20).hex()}})
            wan.append(frame_to_gw(IP(src=t.peer, dst=t.gw, proto=51)
                                   / Raw(struct.pack("!BBHLL", 4, 4, 0, 0x5555, 1) + b"\0" * 16)))
            # an ESP SA with the SPI and destination of BAD's inbound AH SA: another
            # SA (Linux keys SAs by protocol too); its ESP and the AH both accepted
            self.twin = EspSA(t.spi_in, "aes-gcm-128", keygen("twin", 20))
            cfg["sas"].append({"spi": t.spi_in, "direction": "in", "mode": "tunnel", "src": t.peer,
                               "dst": t.gw, "reqid": 555,
                               "encryption": {"algorithm": "aes-gcm-128", "key": "0x" + keygen("twin", 20).hex()}})
            cfg["policies"].append({"direction": "fwd", "src": "10.201.0.0/24", "dst": LAN_NET[4],
                                    "action": "protect",
                                    "ipsec": [{"proto": "esp", "mode": "tunnel", "level": "require", "reqid": 555,
                                               "tunnel": {"src": t.peer, "dst": t.gw}}]})
            self.twin_inner = raw(IP(src="10.201.0.7", dst=HOST[4], ttl=64) / UDP(sport=21, dport=22)
                                  / Raw(b"esp-with-the-ah-spi"))
            wan.append(frame_to_gw(IP(src=t.peer, dst=t.gw, proto=50)
                                   / Raw(self.twin.encrypt(1, self.twin_inner, 4))))
        # PcapRun keys its SA listing by (SPI, destination): keep the whole of it
        self.all_sas = []
        orig = test_esp_pcap.paged

        def keep(d, cmd):
            out = orig(d, cmd)
            if cmd == "/dpsec/sa":
                self.all_sas = list(out.values())
            return out
        test_esp_pcap.paged = keep
        try:
            super().__init__(workdir, cfg, lan, wan)
        finally:
            test_esp_pcap.paged = orig

    def sa(self, spi, dst=None, proto="ah"):
        found = [v for v in self.all_sas if v["spi"] == f"0x{spi:08x}" and v["proto"] == proto
                 and dst in (None, v["dst"])]
        assert len(found) == 1, f"SA {spi:#x} {proto}: {len(found)} found"
        return found[0]

    def tunnel_by_i(self, i):
        return next(t for t in self.tunnels if t.i == i)

    def tunnel(self, name):
        return next(t for t in self.tunnels if t.name == name)

    def ah_out(self, spi):
        res = []
        for f in self.wan_out:
            e = Ether(f)
            if AH in e and e[AH].spi == spi:
                res.append(f)
        return res


_cache = {}


def get_run(tmp_path_factory, variant, path):
    key = (variant, path)
    if key not in _cache:
        try:
            _cache[key] = AhRun(tmp_path_factory.mktemp(f"ah-{variant}-{path}"), variant, path)
        except Exception as err:
            _cache[key] = err
    if isinstance(_cache[key], Exception):
        raise _cache[key]
    r = _cache[key]
    assert r.error is None and r.rc == 0, r.log
    return r


def params(variant, where=lambda t: True):
    return [pytest.param(variant, p, t.name, id=f"{variant}-{p}-{t.name}")
            for p in PATHS for t in ah_tunnels(variant) if where(t)]


def sends(t):
    return t.n_out > 0


def decap(t, frame):
    """scapy verifies the ICV and takes AH off (raises on a bad ICV)."""
    e = Ether(frame)
    l3 = e[IP] if t.outer == 4 and IP in e else e[IPv6]
    if t.alg.startswith("aes-gmac"):   # tunnel mode only
        pkt = l3.__class__(raw(l3))
        assert pkt[AH].icv[:8] == struct.pack("!Q", pkt[AH].seq)
        if bytes(pkt[AH].icv[8:24]) != gmac_tag(pkt, t.key["out"]):
            raise scapy_ipsec.IPSecIntegrityError("GMAC")
        return raw(pkt[AH].payload)
    return raw(t.scapy_sa("out").decrypt(l3.__class__(raw(l3))))


@pytest.mark.parametrize("variant,path,name", params("ah", sends) + params("keeptos") + params("offsetmask"))
def test_outbound_ah_verified_by_scapy_byte_for_byte(tmp_path_factory, variant, path, name):
    """Every packet the LAN host sends leaves wan once, in order, with AH whose
    ICV scapy's own AH code verifies (TOS in the ICV with ah_cleartos false),
    sequence numbers 1, 2, 3, and scapy's decapsulation gives the packet as
    forwarded (TTL - 1) byte for byte; tunnel mode: the outer header is the SA's
    (addresses, TTL, protocol 51) and carries the inner DSCP."""
    r = get_run(tmp_path_factory, variant, path)
    t = r.tunnel(name)
    outs = r.ah_out(t.spi_out)
    assert len(outs) == t.n_out
    for k, f in enumerate(outs):
        e = Ether(f)
        assert e[AH].seq == k + 1
        with {"keeptos": tos_in_icv, "offsetmask": flags_in_icv}.get(variant, contextlib.nullcontext)():
            got = decap(t, f)
        want = forwarded(t.out_inner[k])
        if t.mode == "tunnel":
            l3 = e.payload
            assert (l3.src, l3.dst) == (t.gw, t.peer)
            assert (l3.ttl if t.outer == 4 else l3.hlim) == t.ttl
            tos = l3.tos if t.outer == 4 else l3.tc
            inner_tos = [0, 0x02, 0xb8][k % 3]
            assert tos == inner_tos   # DSCP and (ipsec.ecn, RFC 6040 normal mode) ECN copied
            assert got == want
        else:
            # scapy's transport decapsulation recomputes the IPv4 checksum: so does forwarded()
            assert got == want


def test_keeptos_icv_differs_from_cleartos(tmp_path_factory):
    """With ah_cleartos false the TOS is really in the ICV: scapy's standard
    verification (TOS zeroed) refuses the packets that carry a TOS."""
    r = get_run(tmp_path_factory, "keeptos", "cpu")
    t = r.tunnel_by_i(90)
    f = r.ah_out(t.spi_out)[2]     # TOS 0xb8
    with pytest.raises(scapy_ipsec.IPSecIntegrityError):
        decap(t, f)


def test_offsetmask_keeps_the_flags_in_the_icv(tmp_path_factory):
    """With ah_offsetmask 0xffff the IPv4 flags are in the ICV: scapy's standard
    verification (flags zeroed) refuses the DF packets, tunnel (DF copied
    outward) and transport, and accepts the others."""
    r = get_run(tmp_path_factory, "offsetmask", "cpu")
    for i in (92, 93):
        t = r.tunnel_by_i(i)
        outs = r.ah_out(t.spi_out)
        assert Ether(outs[1])[IP].flags == "DF"
        with pytest.raises(scapy_ipsec.IPSecIntegrityError):
            decap(t, outs[1])
        assert decap(t, outs[0]) == forwarded(t.out_inner[0])


def test_ah_deflev_decides_level_default(tmp_path_factory):
    """level: default on an AH request without SA: ah_net_deflev require drops
    the tunnel policy's packet (drop_no_sa), ah_trans_deflev use lets the
    transport policy's packet leave in clear."""
    r = get_run(tmp_path_factory, "deflev", "cpu")
    clear = [f for f in r.wan_out if IP in Ether(f) and UDP in Ether(f)]
    assert [raw(Ether(f)[IP]) for f in clear] == [forwarded(r.deflev_pkts[1])]
    assert r.stats["lan"]["drop_no_sa"] == 1


@pytest.mark.parametrize("variant,path,name", [p for p in params("ah") if "transport" not in p.id])
def test_inbound_ah_built_by_scapy_is_forwarded(tmp_path_factory, variant, path, name):
    """The peer's AH packets (scapy's, sequence numbers 1, 2, 3; outer TOS,
    flow label, options) come out of lan as the inner packets, TTL - 1."""
    r = get_run(tmp_path_factory, variant, path)
    t = r.tunnel(name)
    want = t.expected_lan()
    got = [f for f in r.lan_out if f in want]
    assert got == want
    si = r.sa(t.spi_in)
    frags = r.frags.get(t.i, []) + ([r.ecn[(t.i, 2)]] if (t.i, 2) in r.ecn else [])
    assert si["packets"] == t.n_in + (2 if t.i == BAD else 0) + len(frags)
    assert si["bytes"] == sum(len(p) for p in t.in_inner + frags) + \
        (sum(len(p) for p in (r.bad["good"][0], r.bad["good"][2])) if t.i == BAD else 0)


@pytest.mark.parametrize("path", PATHS)
def test_inbound_ah_ecn_decapsulation(tmp_path_factory, path):
    """RFC 6040 §4.2 through AH (ipsec.ecn, the default): an outer CE on a
    Not-ECT inner packet is dropped (drop_ecn), on an ECT(0) one it is copied
    inward."""
    r = get_run(tmp_path_factory, "ah", path)
    for i in (7, 8):
        t = r.tunnel_by_i(i)
        ce = bytearray(r.ecn[(i, 2)])   # forwarded() recomputes the IPv4 checksum
        ce[1] |= 3 if t.inner == 4 else 0x30
        want = t.expected_lan([bytes(ce)])
        assert [f for f in r.lan_out if f in want] == want, i
        assert t.expected_lan([r.ecn[(i, 0)]])[0] not in r.lan_out
        assert r.sa(t.spi_in)["drop_ecn"] == 1


@pytest.mark.parametrize("path", PATHS)
def test_inbound_fragmented_ah_is_reassembled_verified_and_forwarded(tmp_path_factory, path):
    """AH tunnel packets (IPv4 and IPv6) that scapy fragmented, arriving in
    reverse order: reassembled, verified (a chained mbuf: the CPU path hashes
    a copy) and their inner packet forwarded to the LAN host."""
    r = get_run(tmp_path_factory, "ah", path)
    for i, pkts in r.frags.items():
        t = r.tunnel_by_i(i)
        want = t.expected_lan(pkts)
        assert [f for f in r.lan_out if f in want] == want, i
        assert r.sa(t.spi_in)["drop_auth"] == 0


@pytest.mark.parametrize("path", PATHS)
def test_inbound_bad_ah_counted_good_flows(tmp_path_factory, path):
    """Wrong ICV, replay, too old, truncated: each counted once on the SA; an
    unknown SPI and an ESP SA's SPI on the port; the good packets between
    them are forwarded."""
    r = get_run(tmp_path_factory, "ah", path)
    t = r.tunnel_by_i(BAD)
    si = r.sa(t.spi_in)
    assert (si["drop_auth"], si["drop_replay"], si["drop_len"]) == (1, 2, 1)
    assert si["drop_other"] == 0 and si["drop_crypto"] == 0
    want = t.expected_lan([r.bad["good"][0], r.bad["good"][2]])
    assert [f for f in r.lan_out if f in want] == want
    for bad in (r.bad["good"][1], r.bad["good"][3]):
        assert t.expected_lan([bad])[0] not in r.lan_out
    assert r.stats["wan"]["drop_unknown_spi"] == 2


@pytest.mark.parametrize("path", PATHS)
def test_ah_and_esp_sa_with_one_spi_and_destination(tmp_path_factory, path):
    """An ESP SA and an AH SA share SPI and destination: each packet finds the
    SA of its own protocol (the AH traffic of that SPI is checked above)."""
    r = get_run(tmp_path_factory, "ah", path)
    t = r.tunnel_by_i(BAD)
    want = t.expected_lan([r.twin_inner])
    assert [f for f in r.lan_out if f in want] == want
    assert r.sa(t.spi_in, proto="esp")["packets"] == 1
    assert r.sa(t.spi_in, proto="ah")["packets"] == t.n_in + 2


@pytest.mark.parametrize("path", PATHS)
def test_ah_sa_counters(tmp_path_factory, path):
    """Outbound: packets and bytes (before AH) of what left; no drops anywhere."""
    r = get_run(tmp_path_factory, "ah", path)
    for t in r.tunnels:
        so = r.sa(t.spi_out)
        assert so["packets"] == t.n_out, t.name
        assert so["bytes"] == sum(len(p) for p in t.out_inner), t.name
        for c in ("drop_auth", "drop_replay", "drop_len", "drop_other", "drop_crypto"):
            assert so[c] == 0, (t.name, c)


@pytest.mark.parametrize("path", PATHS)
def test_ah_sa_runs_on_the_engine_of_its_path(tmp_path_factory, path):
    """crypto.engine native: every HMAC SA on intel-ipsec-mb without a device, AES-GMAC
    on the device; engine cryptodev: every SA on the device (CPU crypto or the queue;
    AES-GMAC, whose nonce is in the crypto op, always the queue)."""
    r = get_run(tmp_path_factory, "ah", path)
    for t in r.tunnels:
        for spi in (t.spi_out, t.spi_in) if t.mode == "tunnel" else (t.spi_out,):
            s = r.sa(spi)
            if path == "native" and not t.alg.startswith("aes-gmac"):
                assert (s["device"], s["crypto"]) == ("intel-ipsec-mb", "native"), t.name
            else:
                queue = path == "async" or t.alg.startswith("aes-gmac")
                assert (s["device"], s["crypto"]) == (
                    "crypto_aesni_mb", "async" if queue else "cpu"), t.name
