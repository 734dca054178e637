"""Self-test of the independent ESP peer (tests/peer/esp_peer.py), without dpsecd.

    host A --- gw1 [esp_peer p1] ===== internet ===== [esp_peer p2] gw2 --- host B
    10.1.0.2   10.1.0.1 | 192.0.2.1              192.0.2.2 | 10.2.0.1   10.2.0.2
    fd01::2    fd01::1  | 2001:db8::1          2001:db8::2 | fd02::1    fd02::2

Two instances of the peer, with mirrored SAs, are the two gateways.  Their
outside interfaces carry no kernel address: everything on the internet link is
the peers' own ARP/ND and ESP.  A tcpdump there must see only ESP (or UDP 4500)
between the gateways, and never the plaintext of the pings and TCP transfers.

The known-answer tests pin scapy's transforms (and the peer's own AES-GMAC and
ESN handling) to published vectors, so that two copies of the peer agreeing with
each other does not hide a shared mistake.
"""
import collections
import contextlib
import os
import struct
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "peer"))

import esp_peer  # noqa: E402
from topology import (Capture, EspPeer, Netns, TcpTransfer, classify, inject,  # noqa: E402
                      make_payload, peer_config, ping, sa_pair, sh)

A4, A6, B4, B6 = "10.1.0.2", "fd01::2", "10.2.0.2", "fd02::2"
NET_A = ["10.1.0.0/24", "fd01::/64"]
NET_B = ["10.2.0.0/24", "fd02::/64"]
GW1 = {4: "192.0.2.1", 6: "2001:db8::1"}
GW2 = {4: "192.0.2.2", 6: "2001:db8::2"}
SPI1, SPI2 = 0x1001, 0x2001            # p1 -> p2, p2 -> p1
TCP_SIZE = 3 << 20
PATTERN = "c0ffee5aa5deadbeef0123456789abcd"   # ping payload marker, 16 bytes


# --------------------------------------------------------------------------
# Known-answer tests (no namespaces)
# --------------------------------------------------------------------------

h = bytes.fromhex


def _crypt_only(name, key, nonce, aad, plaintext, esn):
    """Run a scapy CryptAlgo on a fixed ESP plaintext (payload || padding ||
    pad length || next header) and return SPI || seq || IV || ciphertext || tag."""
    from scapy.compat import raw
    from scapy.layers.ipsec import CRYPT_ALGOS, _ESPPlain

    class SA:
        crypt_salt = nonce[:4]
    if esn:
        spi, hi, lo = struct.unpack("!LLL", aad)
    else:
        (spi, lo), hi = struct.unpack("!LL", aad), 0
    esp = _ESPPlain(spi=spi, seq=lo, iv=nonce[4:], data=plaintext[:-2], padding=b"",
                    padlen=plaintext[-2], nh=plaintext[-1])
    return raw(CRYPT_ALGOS[name].encrypt(SA(), esp, key, esn_en=esn, esn=hi))


def test_kat_aes_cbc_rfc3602_case5():
    from scapy.compat import raw
    from scapy.layers.ipsec import ESP, SecurityAssociation
    sa = SecurityAssociation(ESP, spi=0x4321, seq_num=1, crypt_algo="AES-CBC",
                             crypt_key=h("90d382b410eeba7ad938c46cec1a82bf"))
    icmp = h("08000ebda70a00008e9c083db95b070008090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
             "202122232425262728292a2b2c2d2e2f3031323334353637")
    pkt = esp_peer.IPRaw(raw(esp_peer.IPRaw(src="192.168.123.3", dst="192.168.123.100", proto=1) / icmp))
    out = raw(sa.encrypt(pkt, iv=h("e96e8c08ab465763fd098d45dd3ff893")))
    assert out[20:] == h(
        "0000432100000001e96e8c08ab465763fd098d45dd3ff893f663c25d325c18c6a9453e194e120849a4870b66"
        "cc6b9965330013b4898dc856a4699e523a55db080b59ec3a8e4b7e52775b07d1db34ed9c538ab50c551b874a"
        "a269add047ad2d5913ac19b7cfbad4a6")


def test_kat_chacha20_poly1305_rfc7634_appendix_a():
    from scapy.compat import raw
    from scapy.layers.ipsec import ESP, SecurityAssociation
    inner = h("45000054a6f200004001e778c6336405c000020508005b7a3a080000553bec100007362708090a0b0c0d0e"
              "0f101112131415161718191a1b1c1d1e1f202122232425262728292a2b2c2d2e2f3031323334353637")
    sa = SecurityAssociation(
        ESP, spi=0x01020304, seq_num=5, crypt_algo="CHACHA20-POLY1305",
        crypt_key=h("808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f" "a0a1a2a3"),
        tunnel_header=esp_peer.IPRaw(src="203.0.113.153", dst="192.0.2.153"))
    out = raw(sa.encrypt(esp_peer.IPRaw(inner), iv=h("1011121314151617")))
    assert out[20:] == h("0102030400000005" "1011121314151617"
                         "24039428b97f417e3c13753a4f05087b67c352e6a7fab1b982d466ef407ae5c614ee8099d52844"
                         "eb61aa95dfab4c02f72aa71e7c4c4f64c9befe2facc638e8f3cbec163fac469b502773f6fb94e6"
                         "64da9165b82829f641e0" "76aaa8266b7fb0f7b11b369907e1ad43")


# draft-mcgrew-gcm-test-01 (GCM and GMAC in ESP)
def test_kat_aes_gcm_192():
    pt = h("45000028a4ad4000400678800a01038f0a010612802306b8cb712602dd6bb03e501016d075680001")
    out = _crypt_only("AES-GCM", h("feffe9928665731c6d6a8f9467308308feffe9928665731c"),
                      h("cafebabefacedbaddecaf888"), h("0000a5f80000000a"), pt, esn=False)
    assert out == h("0000a5f80000000a" "facedbaddecaf888"
                    "a5b1f8066029aea40e598b8122de02420938b3ab33f828e687b8858b5bfbdbd0315b27452144cc77"
                    "95457b9652037f5318027b5b4cd7a636")


def test_kat_aes_gcm_128_esn():
    """ESN: AAD = SPI || seq_hi || seq_lo (RFC 4106 5.1); scapy gets this right."""
    pt = h("45000048699a000080114db7c0a80102c0a801010a9bf15638d301000001000000000000045f736970045f"
           "756470037369700963796265726369747902646b000021000101020201")
    out = _crypt_only("AES-GCM", h("4c80cdefbb5d10da906ac73c3613a634"), h("2e443b684956ed7e3b244cfe"),
                      h("000043218765432100000000"), pt, esn=True)
    assert out == h("0000432100000000" "4956ed7e3b244cfe"
                    "fecf537e729d5b07dc30df528dd22b768d1b98736696a6fd348509fa13ceac34cfa2436f14a3f3cf"
                    "65925bf1f4a13c5d15b21e1884f5ff6247aeabb786b93bce61bc17d768fd9732"
                    "459018148f6cbe722fd04796562dfdb4")


def test_kat_aes_gmac_peer_implementation():
    """AES-GMAC is the peer's own (scapy 2.5 has none): AAD covers SPI, seq, IV
    and the clear payload (RFC 4543 3.2)."""
    pt = h("45000030da3a00008001df3bc0a80005c0a800010800c6cd020007006162636465666768696a6b6c6d6e"
           "6f70717273740102" "0201")
    out = _crypt_only("AES-GMAC", h("4c80cdefbb5d10da906ac73c3613a634"), h("22433c640000000000000000"),
                      h("0000432100000007"), pt, esn=False)
    assert out == h("0000432100000007" "0000000000000000") + pt + h("f2a9a836e155106aa8dcd618e4099aaa")


def test_esn_hmac_covers_seq_hi():
    """scapy 2.5 leaves seq_hi out of the ESP ICV; the peer's EsnHmac puts it in
    (RFC 4303 2.2.1): ICV = HMAC(SPI..next header || seq_hi), seq_hi not sent."""
    import hashlib
    import hmac
    cfg = {"spi": 0x300, "dir": "out", "mode": "tunnel", "src": esp_peer.ipaddress.ip_address("192.0.2.1"),
           "dst": esp_peer.ipaddress.ip_address("192.0.2.2"), "enc_alg": "null", "enc_key": b"",
           "auth_alg": "hmac-sha256-128", "auth_key": b"k" * 32, "udp_encap": None, "replay_window": 64,
           "esn": True, "seq": (7 << 32) | 5, "ttl": 64, "df": "copy", "selectors": []}
    sa = esp_peer.PeerSA(cfg)
    inner = bytes(esp_peer.IPRaw(src="10.1.0.2", dst="10.2.0.2", proto=17) / (b"\0" * 16))
    out = sa.encapsulate(inner, 4)
    esp = out[20:]
    assert esp[4:8] == struct.pack("!L", 5)                 # only the low half is sent
    want = hmac.new(b"k" * 32, esp[:-16] + struct.pack("!L", 7), hashlib.sha256).digest()[:16]
    assert esp[-16:] == want
    # and the inbound side accepts it once its window is near 2^32 * 7
    cin = dict(cfg, dir="in", seq=1)
    rx = esp_peer.PeerSA(cin)
    rx.replay.top = (7 << 32) | 1
    assert rx.decapsulate(4, out[:20], esp) == inner


def test_fast_build_same_bytes():
    """esp_peer speeds scapy up by building packets without Packet.__iter__; the
    ESP packets must be byte for byte what plain scapy makes."""
    from scapy.layers.inet import IP, TCP, UDP
    from scapy.layers.inet6 import IPv6
    from scapy.layers.ipsec import ESP, SecurityAssociation
    in4 = bytes(IP(src="10.1.0.2", dst="10.2.0.2") / TCP(sport=1, dport=2) / (b"x" * 300))
    in6 = bytes(IPv6(src="fd01::2", dst="fd02::2") / TCP(sport=1, dport=2) / (b"x" * 300))
    cases = [
        (esp_peer.IPRaw(src="192.0.2.1", dst="192.0.2.2", id=5, tos=3, flags=2), None, in4, esp_peer.IPRaw),
        (esp_peer.IP6Raw(src="2001:db8::1", dst="2001:db8::2", tc=5), UDP(sport=4500, dport=4500), in4,
         esp_peer.IPRaw),
        (esp_peer.IPRaw(src="192.0.2.1", dst="192.0.2.2"), UDP(sport=4500, dport=4501), in6, esp_peer.IP6Raw),
        (None, None, in4, esp_peer.IPRaw),
        (None, UDP(sport=4500, dport=4500), in6, esp_peer.IP6Raw),
    ]
    for crypt, key, auth, akey, iv in (("AES-CBC", b"k" * 16, "SHA2-256-128", b"a" * 32, b"i" * 16),
                                       ("AES-GCM", b"k" * 20, None, None, b"i" * 8)):
        for th, nat, inner, cls in cases:
            out = []
            for fast in (False, True):
                esp_peer.fast_build(fast)
                try:
                    sa = SecurityAssociation(ESP, spi=0x1001, crypt_algo=crypt, crypt_key=key, auth_algo=auth,
                                             auth_key=akey, tunnel_header=th, nat_t_header=nat)
                    out.append(bytes(sa.encrypt(cls(inner), iv=iv, seq_num=9)))
                finally:
                    esp_peer.fast_build(False)
            assert out[0] == out[1], (crypt, th, nat)


def test_replay_window_esn_inference():
    w = esp_peer.ReplayWindow(64, esn=True)
    for s in (1, 2, 3):
        assert w.check(w.full_seq(s)) is None
        w.update(s)
    assert w.check(w.full_seq(2)) == "dup"
    w.top = 0xFFFFFFF0
    assert w.full_seq(0xFFFFFFF1) == 0xFFFFFFF1
    assert w.full_seq(3) == (1 << 32) | 3                    # wrapped: next epoch
    w.update((1 << 32) | 3)
    assert w.full_seq(0xFFFFFFF8) == 0xFFFFFFF8              # late packet of the old epoch
    assert w.check(0xFFFFFFF8) is None
    assert w.check(0xFFFFFFF0 - 100) == "old"


# --------------------------------------------------------------------------
# Two gateways in namespaces
# --------------------------------------------------------------------------


class Env:
    pass


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    net = Netns("st")
    e = Env()
    e.net = net
    try:
        e.ha, e.gw1, e.gw2, e.hb = net.ns("ha"), net.ns("g1"), net.ns("g2"), net.ns("hb")
        e.a, e.g1l = net.link(e.ha, e.gw1)
        e.g1w, e.g2w = net.link(e.gw1, e.gw2, kernel_off=(e.gw1, e.gw2))
        e.g2l, e.b = net.link(e.gw2, e.hb)
        net.addrs(e.ha, e.a, [A4 + "/24", A6 + "/64"])
        net.addrs(e.gw1, e.g1l, ["10.1.0.1/24", "fd01::1/64"])
        net.addrs(e.hb, e.b, [B4 + "/24", B6 + "/64"])
        net.addrs(e.gw2, e.g2l, ["10.2.0.1/24", "fd02::1/64"])
        for ns, gws in ((e.ha, ("10.1.0.1", "fd01::1")), (e.hb, ("10.2.0.1", "fd02::1"))):
            for gw in gws:
                sh(["ip", "-6" if ":" in gw else "-4", "route", "add", "default", "via", gw], ns=ns)
        e.dir = tmp_path_factory.mktemp("esp_peer")
        e.data = str(e.dir / "payload")
        e.data_sha = make_payload(e.data, TCP_SIZE)
        with open(e.data, "rb") as f:
            e.data_marker = f.read()[100000:100032]
        yield e
    finally:
        net.close()


class Gateways:
    def __init__(self, env, name, s1, s2, outer, **extra):
        self.env, self.name = env, name
        self.wd = env.dir / name
        self.wd.mkdir()
        self.cap = Capture(env.gw1, env.g1w, str(self.wd / "wire.pcap"))
        addrs1, addrs2 = [GW1[4], GW1[6]], [GW2[4], GW2[6]]
        self.p1 = EspPeer(env.gw1, peer_config("p1", env.g1w, addrs1, "esp0", s1, remote=[GW2[outer]], **extra),
                          str(self.wd))
        self.p2 = EspPeer(env.gw2, peer_config("p2", env.g2w, addrs2, "esp0", s2, remote=[GW1[outer]], **extra),
                          str(self.wd))
        self.frames = None
        self.final = None

    def tun_mtu(self):
        return self.p1.stats()["tun"]["mtu"]

    def finish(self):
        """Stop capture and peers (clean exit expected); returns (frames, stats1, stats2)."""
        self.frames = self.cap.stop()
        sm = self.cap.summary
        assert sm["dropped"] == 0 and sm["captured"] == sm["received"] == len(self.frames), \
            f"incomplete capture: {sm}, {len(self.frames)} frames read"
        self.final = (self.p1.stop(), self.p2.stop())
        return (self.frames,) + self.final


@contextlib.contextmanager
def gateways(env, name, outer, s1, s2, **extra):
    g = Gateways(env, name, s1, s2, outer, **extra)
    # forget path MTUs learnt behind earlier peers (another TUN MTU)
    for ns in (env.ha, env.gw1, env.gw2, env.hb):
        sh("ip -4 route flush cache; ip -6 route flush cache", ns=ns, check=False)
    g.cap.start()
    try:
        g.p1.launch()
        g.p2.launch()
        g.p1.wait_ready()
        g.p2.wait_ready()
        yield g
    except BaseException:
        for p in (g.p1, g.p2):
            try:
                c = {k: v for k, v in p.stats()["counters"].items() if v}
            except Exception as e:      # already stopped, or stuck
                c = repr(e)
            print(f"--- {p.name} counters: {c}\n--- {p.name} log ---\n{p.log()}")
        raise
    finally:
        for p in (g.p1, g.p2):
            if p.proc is not None and p.proc.poll() is None:
                p.proc.kill()
                p.proc.wait()
        if g.cap.proc is not None and g.cap.proc.poll() is None:
            g.cap.proc.kill()
            g.cap.proc.wait()


def check_wire(frames, allowed, markers=()):
    """Only `allowed` kinds (plus ARP / ND) between the gateways, and none of the
    plaintext markers anywhere in a frame."""
    kinds = collections.Counter(classify(f) for f in frames)
    unexpected = {k: n for k, n in kinds.items() if k not in allowed and k not in ("arp", "nd")}
    assert not unexpected, f"non-ESP traffic on the internet link: {dict(kinds)}"
    for m in markers:
        leaks = sum(1 for f in frames if m in f)
        assert leaks == 0, f"plaintext {m.hex()} seen in {leaks} frames on the internet link"
    return kinds


def ping_sizes(family, tun_mtu):
    hdr = 28 if family == 4 else 48
    sizes = [56, 1000, tun_mtu - hdr]
    if family == 4:
        sizes.append(3000)          # fragmented by host A, refragmented by gw1 to the TUN MTU
    return sizes


def tcp_both_ways(env, src_ns, dst_ns, src_addr, dst_addr, tag):
    wd = env.dir
    x1 = TcpTransfer(src_ns, dst_ns, dst_addr, 5001, env.data, str(wd / f"{tag}.fwd")).start()
    x2 = TcpTransfer(dst_ns, src_ns, src_addr, 5002, env.data, str(wd / f"{tag}.rev")).start()
    assert x1.wait() == env.data_sha, f"{tag}: {src_addr} -> {dst_addr} corrupted"
    assert x2.wait() == env.data_sha, f"{tag}: {dst_addr} -> {src_addr} corrupted"


def assert_clean(st, *zero):
    c = st["counters"]
    bad = {k: c[k] for k in ("auth_failures", "replays", "unknown_spi", "sa_addr_mismatch", "encap_mismatch",
                             "malformed_esp", "decrypt_errors", "bad_padding", "bad_inner", "policy_mismatch",
                             "udp_bad_csum", "internal_errors", "tun_write_errors", "tx_errors") + zero
           if c[k]}
    assert not bad, f"{st['name']}: {bad}"


TUNNEL_CASES = {
    # name: (outer family, inner families pinged, inner family of the TCP transfers, SA options)
    # Together: outer v4 and v6; inner v4-in-v4, v6-in-v6, 4in6 (TCP) and 6in4 (ping);
    # AES-GCM and AES-CBC + HMAC-SHA2-256 each with and without UDP encapsulation.
    "tun4-aes-gcm": (4, (4, 6), 4, dict(enc_alg="aes-gcm")),
    "tun4-cbc-sha256-udp": (4, (4,), 4, dict(enc_alg="aes-cbc", auth_alg="hmac-sha256-128", udp_encap=True)),
    "tun6-cbc-sha256": (6, (6,), 6, dict(enc_alg="aes-cbc", auth_alg="hmac-sha256-128")),
    "tun4in6-gcm256-udp": (6, (4, 6), 4, dict(enc_alg="aes-gcm", enc_bits=256, udp_encap=True)),
    # AH (scapy's): the data crosses in clear inside AH, so no plaintext check
    "ah-tun4-sha1": (4, (4, 6), 4, dict(proto="ah", auth_alg="hmac-sha1-96")),
    "ah-tun6-sha256-esn": (6, (4, 6), 6, dict(proto="ah", auth_alg="hmac-sha256-128", esn=True,
                                              seq=0xFFFFFFF0)),
}


@pytest.mark.interop
@pytest.mark.parametrize("case", list(TUNNEL_CASES))
def test_tunnel(env, case):
    outer, inner, tcp, opts = TUNNEL_CASES[case]
    s1, s2 = sa_pair(GW1[outer], GW2[outer], SPI1, SPI2, local_prefixes=NET_A, remote_prefixes=NET_B, **opts)
    with gateways(env, case, outer, s1, s2) as g:
        mtu = g.tun_mtu()
        for fam in inner:
            for size in ping_sizes(fam, mtu):
                ping(env.ha, B4 if fam == 4 else B6, size=size, pattern=PATTERN)
                ping(env.hb, A4 if fam == 4 else A6, size=size, pattern=PATTERN, count=1)
        tcp_both_ways(env, env.ha, env.hb, A4 if tcp == 4 else A6, B4 if tcp == 4 else B6, case)
        frames, st1, st2 = g.finish()
    kind = (f"udp{outer}:4500->4500",) if opts.get("udp_encap") else (f"{opts.get('proto', 'esp')}{outer}",)
    kinds = check_wire(frames, kind, [] if opts.get("proto") == "ah" else [h(PATTERN) * 2, env.data_marker])
    assert kinds[kind[0]] > 4000, kinds
    for st in (st1, st2):
        assert_clean(st)
        for sa in st["sas"].values():
            assert sa["packets"] > 2000 and sa["bytes"] > TCP_SIZE, sa


def ah_icv_by_hand(frame_ip, icv_len, key, seq_hi=None):
    """RFC 4302 3.3.3.1 without scapy: HMAC-SHA2-256 over an IPv4 packet with AH
    right after a 20-byte header, TOS, flags/fragment offset, TTL, checksum and
    the ICV zeroed (RFC 4868: truncated to 128 bits), ESN's high half appended."""
    import hashlib
    import hmac
    z = bytearray(frame_ip)
    z[1] = 0
    z[6:8] = b"\0\0"
    z[8] = 0
    z[10:12] = b"\0\0"
    z[20 + 12:20 + 12 + icv_len] = bytes(icv_len)
    data = bytes(z) + (struct.pack("!L", seq_hi) if seq_hi is not None else b"")
    return hmac.new(key, data, hashlib.sha256).digest()[:icv_len]


@pytest.mark.parametrize("esn", [False, True])
def test_ah_icv_matches_rfc4302_by_hand(esn):
    """The peer's AH (scapy's) against RFC 4302 computed here with hashlib:
    tunnel 4in4, HMAC-SHA2-256-128, DSCP, DF and TTL set (mutable: zeroed in
    the ICV); with ESN the high half of the sequence number is in the ICV
    (2.5.1) and not on the wire; the peer's inbound SA accepts it once and
    counts a replay and a flipped bit."""
    key = bytes(range(32))
    seq = (7 << 32) + 5 if esn else 5
    sas = [{"spi": "0x1234", "dir": "out", "proto": "ah", "src": GW1[4], "dst": GW2[4],
            "auth_alg": "hmac-sha256-128", "auth_key": "0x" + key.hex(), "esn": esn, "seq": seq,
            "selectors": ["10.2.0.0/24"], "df": "set", "ttl": 17},
           {"spi": "0x1234", "dir": "in", "proto": "ah", "src": GW1[4], "dst": GW2[4],
            "auth_alg": "hmac-sha256-128", "auth_key": "0x" + key.hex(), "esn": esn}]
    cfg = esp_peer.validate_config({"outside": {"iface": "x", "addresses": [GW1[4], GW2[4]]},
                                    "inside": {"tun": "t"}, "sas": sas})
    out, inn = esp_peer.PeerSA(cfg["sas"][0]), esp_peer.PeerSA(cfg["sas"][1])
    inner = bytes.fromhex("45b8001c00004000400100000a0100020a020002") + bytes.fromhex("0800f7ff00000000")
    wire = out.encapsulate(inner, 4)
    assert len(wire) == 20 + 28 + len(inner) and wire[9] == 51 and wire[8] == 17 and wire[6] & 0x40
    assert wire[1] == 0xb8                                  # DSCP copied to the outer header
    nh, plen, spi, lo = wire[20], wire[21], *struct.unpack("!LL", wire[24:32])
    assert (nh, plen, spi, lo) == (4, 28 // 4 - 2, 0x1234, seq & 0xFFFFFFFF)
    assert wire[48:] == inner
    assert wire[32:48] == ah_icv_by_hand(wire, 16, key, seq >> 32 if esn else None)
    if esn:
        inn.replay.top = seq - 1
    bad = bytearray(wire)
    bad[-1] ^= 1
    with pytest.raises(esp_peer.DropPacket, match="auth_failures"):
        inn.decapsulate_ah(4, bytes(bad[:20]), bytes(bad[20:]))
    assert inn.decapsulate_ah(4, wire[:20], wire[20:]) == inner
    with pytest.raises(esp_peer.DropPacket, match="replays"):
        inn.decapsulate_ah(4, wire[:20], wire[20:])


@pytest.mark.interop
@pytest.mark.parametrize("case", ["transport4-cbc-sha256", "transport4-gcm-udp", "transport6-gcm"])
def test_transport(env, case):
    """Transport mode: each peer's namespace is the endpoint.  The peer puts its own
    outside address on its TUN and routes the other's into it, so the kernel's
    packets between the two outside addresses go through ESP transport SAs."""
    fam = 6 if "transport6" in case else 4
    opts = dict(enc_alg="aes-cbc", auth_alg="hmac-sha256-128") if "cbc" in case else dict(enc_alg="aes-gcm")
    s1, s2 = sa_pair(GW1[fam], GW2[fam], SPI1, SPI2, mode="transport", udp_encap="udp" in case, **opts)
    with gateways(env, case, fam, s1, s2) as g:
        mtu = g.tun_mtu()
        for size in ping_sizes(fam, mtu)[:3]:
            ping(env.gw1, GW2[fam], size=size, pattern=PATTERN)
            ping(env.gw2, GW1[fam], size=size, pattern=PATTERN, count=1)
        tcp = case == "transport4-cbc-sha256"
        if tcp:
            tcp_both_ways(env, env.gw1, env.gw2, GW1[4], GW2[4], case)
        frames, st1, st2 = g.finish()
    kind = (f"udp{fam}:4500->4500",) if "udp" in case else (f"esp{fam}",)
    markers = [h(PATTERN) * 2] + ([env.data_marker] if tcp else [])
    kinds = check_wire(frames, kind, markers)
    assert kinds[kind[0]] >= (4000 if tcp else 12), (kinds, st1, st2)
    for st in (st1, st2):
        assert_clean(st)
        assert all(sa["packets"] >= 6 and sa["mode"] == "transport" for sa in st["sas"].values()), st["sas"]


ALGORITHMS = [
    # (enc_alg, key bits, auth_alg, esn, first sequence number)
    ("aes-cbc", 128, "hmac-sha1-96", False, None),
    ("aes-cbc", 192, "hmac-sha384-192", False, None),
    ("aes-cbc", 256, "hmac-sha512-256", False, None),
    ("aes-ctr", 128, "hmac-sha256-128", False, None),
    ("aes-gcm", 192, "none", False, None),
    ("chacha20-poly1305", 256, "none", False, None),
    ("aes-gmac", 128, "none", False, None),
    ("null", 0, "hmac-sha256-128", False, None),
    ("aes-gcm", 128, "none", True, 0xFFFFFFFE),           # ESN across the 2^32 boundary
    ("aes-cbc", 128, "hmac-sha256-128", True, 0xFFFFFFFE),
]


@pytest.mark.interop
def test_algorithms(env):
    """Every algorithm the peer offers, one SA pair each, on one pair of gateways:
    host B gets an address per SA pair and each address has its own selector."""
    s1, s2 = [], []
    targets = []
    for i, (enc, bits, auth, esn, seq) in enumerate(ALGORITHMS):
        addr = f"10.2.0.{101 + i}"
        sh(["ip", "addr", "replace", addr + "/24", "dev", env.b], ns=env.hb)
        a, b = sa_pair(GW1[4], GW2[4], 0x10100 + i, 0x20100 + i, enc_alg=enc, enc_bits=bits or 128,
                       auth_alg=auth, esn=esn, seq=seq, local_prefixes=[NET_A[0]],
                       remote_prefixes=[addr + "/32"])
        s1 += a
        s2 += b
        targets.append((addr, f"{i:02x}" * 2 + "5a17" + f"{i:02x}" * 12, enc))
    try:
        with gateways(env, "algorithms", 4, s1, s2) as g:
            for addr, pattern, _ in targets:
                ping(env.ha, addr, size=200, pattern=pattern)
            frames, st1, st2 = g.finish()
    finally:
        for i in range(len(ALGORITHMS)):
            sh(["ip", "addr", "del", f"10.2.0.{101 + i}/24", "dev", env.b], ns=env.hb, check=False)
    check_wire(frames, ("esp4",))
    for addr, pattern, enc in targets:
        seen = sum(1 for f in frames if h(pattern) * 2 in f)
        if enc in ("null", "aes-gmac"):
            # integrity only: the payload is in clear (and shows the capture would see a leak)
            assert seen >= 6, f"{enc}: the payload should be visible on the wire"
        else:
            assert seen == 0, f"{enc}: plaintext visible on the wire"
    for st in (st1, st2):
        assert_clean(st)
        for i, (enc, bits, auth, esn, seq) in enumerate(ALGORITHMS):
            for d, spi in (("out", 0x10100 + i), ("in", 0x20100 + i)) if st is st1 else \
                    (("out", 0x20100 + i), ("in", 0x10100 + i)):
                sa = st["sas"][f"{d}:0x{spi:08x}"]
                assert sa["packets"] == 3, (enc, auth, sa)
                if esn:
                    assert sa["seq"] == (1 << 32), (enc, "ESN did not cross 2^32", sa)


@pytest.mark.interop
def test_replay_auth_and_udp_markers(env):
    """Replayed, forged and unknown-SPI ESP, a NAT keepalive and an IKE (non-ESP
    marker) packet on port 4500, injected on the internet link: each is dropped
    and counted by the receiving peer, and traffic carries on."""
    from scapy.layers.inet import IP, UDP
    from scapy.layers.l2 import Ether
    s1, s2 = sa_pair(GW1[4], GW2[4], SPI1, SPI2, enc_alg="aes-cbc", auth_alg="hmac-sha1-96",
                     udp_encap=True, replay_window=4, local_prefixes=NET_A, remote_prefixes=NET_B)
    with gateways(env, "negative", 4, s1, s2) as g:
        ping(env.ha, B4, count=8)
        st = g.p2.stats()
        mac1, mac2 = g.p1.stats()["outside"]["mac"], st["outside"]["mac"]
        sent = [f for f in g.cap.stop() if classify(f) == "udp4:4500->4500"
                and f[6:12] == bytes.fromhex(mac1.replace(":", ""))]
        assert len(sent) >= 8, len(sent)
        g.cap.proc = None
        base = st["counters"]
        base_in = st["sas"][f"in:0x{SPI1:08x}"]["packets"]
        oldest, newest = sent[0], sent[-1]
        forged = bytearray(newest)
        forged[-1] ^= 1                                     # ICV
        # a replay-fresh sequence number, so the ICV check is what rejects it
        forged[14 + 20 + 8 + 4:14 + 20 + 8 + 8] = struct.pack("!L", 1000)
        unknown = bytearray(newest)
        unknown[14 + 20 + 8:14 + 20 + 8 + 4] = struct.pack("!L", 0xBAD)
        raw_esp = bytes(Ether(src=mac1, dst=mac2) / IP(src=GW1[4], dst=GW2[4], proto=50)
                        / bytes(newest[14 + 20 + 8:]))
        keepalive = bytes(Ether(src=mac1, dst=mac2) / IP(src=GW1[4], dst=GW2[4])
                          / UDP(sport=4500, dport=4500) / b"\xff")
        ike = bytes(Ether(src=mac1, dst=mac2) / IP(src=GW1[4], dst=GW2[4])
                    / UDP(sport=4500, dport=4500) / (b"\0\0\0\0" + b"\x11" * 28))
        inject(env.gw1, env.g1w, oldest, newest, bytes(forged), bytes(unknown), raw_esp, keepalive, ike)
        want = {"replays": 2, "auth_failures": 1, "unknown_spi": 1, "encap_mismatch": 1,
                "keepalives": 1, "non_esp_udp": 1}
        for _ in range(100):
            c = g.p2.stats()["counters"]
            if all(c[k] - base[k] >= n for k, n in want.items()):
                break
        got = {k: c[k] - base[k] for k in want}
        assert got == want, got
        assert g.p2.stats()["sas"][f"in:0x{SPI1:08x}"]["packets"] == base_in, "an injected packet got through"
        ping(env.ha, B4, count=2)                           # the SA still works
        frames, st1, st2 = g.finish()
    assert st2["sas"][f"in:0x{SPI1:08x}"]["replays"] == 2
    assert st2["sas"][f"in:0x{SPI1:08x}"]["auth_failures"] == 1


@pytest.mark.interop
def test_outer_fragmentation(env):
    """A TUN MTU of 1500 (no room for ESP) and DF cleared on the outer header: the
    sending peer fragments the ESP packets (IPv4 outer and IPv6 outer), the
    receiving one reassembles them before decryption."""
    a4, b4 = sa_pair(GW1[4], GW2[4], SPI1, SPI2, enc_alg="aes-cbc", auth_alg="hmac-sha256-128",
                     local_prefixes=[NET_A[0]], remote_prefixes=[NET_B[0]])
    a6, b6 = sa_pair(GW1[6], GW2[6], SPI1 + 1, SPI2 + 1, enc_alg="aes-gcm", udp_encap=True,
                     local_prefixes=[NET_A[1]], remote_prefixes=[NET_B[1]])
    s1, s2 = a4 + a6, b4 + b6
    for sa in s1 + s2:
        if sa["dir"] == "out":
            sa["df"] = "clear"
    with gateways(env, "fragments", 4, s1, s2, inside={"mtu": 1500}) as g:
        assert g.tun_mtu() == 1500
        ping(env.ha, B4, size=1472, pattern=PATTERN)
        ping(env.ha, B6, size=1452, pattern=PATTERN)
        frames, st1, st2 = g.finish()
    kinds = check_wire(frames, ("esp4", "udp6:4500->4500", "ipv6:frag17"), [h(PATTERN) * 2])
    assert kinds["ipv6:frag17"] >= 6, kinds
    for st in (st1, st2):
        assert_clean(st)
        c = st["counters"]
        assert c["fragments_tx"] >= 12 and c["reassembled"] >= 6 and c["fragments_rx"] >= 12, c
        assert all(sa["packets"] == 3 for sa in st["sas"].values()), st["sas"]
