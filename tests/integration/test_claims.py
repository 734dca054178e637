"""What docs/config.md promises and no other test checked, on net_pcap ports
(test_esp_pcap's topology and ESP implementation) and over PF_KEY:

* `*_deflev`: a policy whose level is `default` takes `esp_net_deflev` /
  `esp_trans_deflev`: `use` without an SA forwards in clear, `require` drops
  (drop_no_sa);
* an inbound (fwd) policy with level `use` accepts its SA's ESP and plaintext;
* `ecn: false`: no ECN through encapsulation (outer ECN 0 whatever the inner
  packet's) nor decapsulation (an outer CE changes nothing, not even a
  Not-ECT inner packet, which `ecn: true` drops); the same packets under
  `ecn: true` show the difference;
* `crypto.devices: [crypto_openssl]` carries ESP both ways;
* use-time lifetimes (`use_s`, PF_KEY soft/hard use time): an EXPIRE after
  the first use, and the SA removed at the hard one;
* SADB_X_PROMISC: a promiscuous PF_KEY socket gets a copy of what other
  sockets send.
"""
import errno
import struct
import time

import pytest
from scapy.all import IP, UDP, Ether, Raw
from scapy.compat import raw

import pfkey as K
import test_esp_pcap as P
from test_pfkey_server import GW_WAN, HOST_B, KEY, gw, out_policy, sas_by_spi, send_udp  # noqa: F401

ECT0, ECT1, CE = 2, 1, 3


def tos_of(pkt):
    return pkt[1] if pkt[0] >> 4 == 4 else ((pkt[0] & 0xF) << 4) | (pkt[1] >> 4)


def level(t, lvl, direction=None):
    """t's policies with every ipsec level set to lvl (only direction's, if given)."""
    pols = t.policies()
    for p in pols:
        if direction in (None, p["direction"]):
            for r in p["ipsec"]:
                r["level"] = lvl
    return pols


class ClaimsRun(P.PcapRun):
    """Tunnels 51..55 of test_esp_pcap's Tunnel, under the given ipsec section."""

    def __init__(self, workdir, ipsec):
        # 51: out policy level default, no outbound SA (its deflev decides)
        self.deflev = P.Tunnel(51, "aes-gcm-128", n_out=2, n_in=0)
        # 52: transport policy level default, no SA (esp_trans_deflev)
        self.trans = P.Tunnel(52, "aes-gcm-128", mode="transport", n_out=2, n_in=0)
        # 53: ECN through both directions
        self.ecn = P.Tunnel(53, "aes-gcm-128", n_out=0, n_in=0)
        # 54: inbound (fwd) level use: ESP and plaintext from the remote network
        self.use = P.Tunnel(54, "aes-gcm-128", n_out=0, n_in=2)
        cfg = P.base_config(workdir, ipsec=ipsec)
        cfg["sas"] = [s for s in self.deflev.sas() if s["direction"] == "in"] + self.ecn.sas() + self.use.sas()
        cfg["policies"] = (level(self.deflev, "default") + level(self.trans, "default") + self.ecn.policies()
                           + level(self.use, "use", "fwd"))
        lan = self.deflev.lan_frames() + self.trans.lan_frames()
        # outbound ECN: inner ECT(0) and CE
        self.ecn_out = [raw(IP(src=P.HOST4, dst=P.remote_host(4, 53), tos=0xa0 | e, ttl=64)
                            / UDP(sport=7, dport=200 + e) / Raw(b"ecn-out")) for e in (ECT0, CE)]
        lan += [P.frame_from_host(IP(p)) for p in self.ecn_out]
        # inbound ECN: (outer, inner) = (CE, ECT(0)), (CE, Not-ECT)
        self.ecn_in = []
        wan = []
        for k, (outer, inner) in enumerate(((CE, ECT0), (CE, 0))):
            p = raw(IP(src=P.remote_host(4, 53), dst=P.HOST4, tos=0xa0 | inner, ttl=64)
                    / UDP(sport=7, dport=300 + k) / Raw(b"ecn-in"))
            self.ecn_in.append(p)
            wan.append(P.frame_to_gw(IP(src=self.ecn.peer, dst=self.ecn.gw, tos=outer, proto=50)
                                     / Raw(self.ecn.sa_in.encrypt(k + 1, p, 4))))
        self.plain_in = raw(IP(src=P.remote_host(4, 54), dst=P.HOST4, ttl=64) / UDP(sport=7, dport=400)
                            / Raw(b"use-plain"))
        wan += self.use.in_frames + [P.frame_to_gw(IP(self.plain_in))]
        super().__init__(workdir, cfg, lan, wan)

    def lan_ip(self):
        """The IP packets that left on lan."""
        return [raw(Ether(f).payload) for f in self.lan_out]

    def wan_clear(self, t):
        """The plaintext packets of tunnel t's LAN traffic that left on wan."""
        return [raw(Ether(f).payload) for f in self.wan_out
                if IP in Ether(f) and Ether(f)[IP].dst == (t.peer if t.mode == "transport" else
                                                           P.remote_host(4, t.i))]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    cache = {}

    def get(name):
        if name not in cache:
            ipsec = {"use": {"esp_net_deflev": "use", "esp_trans_deflev": "require", "ecn": False},
                     "require": {"esp_net_deflev": "require", "esp_trans_deflev": "use", "ecn": True}}[name]
            cache[name] = ClaimsRun(tmp_path_factory.mktemp(f"claims-{name}"), ipsec)
        return cache[name]
    return get


def test_runs_exit_0(runs):
    for name in ("use", "require"):
        r = runs(name)
        assert r.error is None and r.rc == 0, r.log


def test_default_level_under_esp_net_deflev_use_forwards_in_clear_without_sa(runs):
    r = runs("use")
    t = r.deflev
    assert sorted(r.wan_clear(t)) == sorted(P.forwarded(p) for p in t.out_inner)
    assert r.stats["lan"]["drop_no_sa"] == len(r.trans.out_inner)   # only the transport ones


def test_default_level_under_esp_net_deflev_require_drops_without_sa(runs):
    r = runs("require")
    assert r.wan_clear(r.deflev) == []
    # esp_trans_deflev use here: the transport packets go in clear instead
    assert sorted(r.wan_clear(r.trans)) == sorted(P.forwarded(p) for p in r.trans.out_inner)
    assert r.stats["lan"]["drop_no_sa"] == len(r.deflev.out_inner)


def test_default_level_under_esp_trans_deflev_require_drops_without_sa(runs):
    assert runs("use").wan_clear(runs("use").trans) == []


def test_inbound_use_accepts_esp_and_plaintext(runs):
    for name in ("use", "require"):
        r = runs(name)
        got = r.lan_ip()
        for p in r.use.in_inner + [r.plain_in]:
            assert got.count(P.forwarded(p)) == 1, name
        assert r.sa(r.use.spi_in)["packets"] == len(r.use.in_inner)


def outer_ecn(r):
    """{inner ECN: outer ECN} of the ECN tunnel's outbound packets."""
    out = {}
    for f, l3, esp, _ in r.esp_out(r.ecn.spi_out):
        inner = r.ecn.sa_out.decrypt(esp).payload
        out[tos_of(inner) & 3] = l3.tos & 3
        assert tos_of(inner) & 0xfc == 0xa0          # DSCP kept inside
    return out


def test_ecn_false_leaves_the_outer_ecn_field_zero(runs):
    assert outer_ecn(runs("use")) == {ECT0: 0, CE: 0}


def test_ecn_true_copies_the_inner_ecn_field_out(runs):
    """The same packets under ecn: true (RFC 6040 normal mode: ECT and CE copied)."""
    assert outer_ecn(runs("require")) == {ECT0: ECT0, CE: CE}


def test_ecn_false_ignores_an_outer_ce(runs):
    r = runs("use")
    got = r.lan_ip()
    for p in r.ecn_in:      # both forwarded unchanged, the Not-ECT one too
        assert got.count(P.forwarded(p)) == 1
    assert r.sa(r.ecn.spi_in)["drop_ecn"] == 0


def test_ecn_true_marks_ect_and_drops_not_ect_under_an_outer_ce(runs):
    r = runs("require")
    got = r.lan_ip()
    marked = bytearray(r.ecn_in[0])
    marked[1] |= CE
    marked[10:12] = b"\0\0"
    marked[10:12] = struct.pack("!H", P.inet_checksum(bytes(marked[:20])))
    assert got.count(P.forwarded(bytes(marked))) == 1
    assert not [g for g in got if g[20:24] == struct.pack("!HH", 7, 301)]
    assert r.sa(r.ecn.spi_in)["drop_ecn"] == 1


# ---- crypto_openssl ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def openssl_run(tmp_path_factory):
    wd = tmp_path_factory.mktemp("claims-openssl")
    tunnels = [P.Tunnel(61, "aes-gcm-128", n_out=3, n_in=3),
               P.Tunnel(62, "aes-cbc-128", "hmac-sha2-256-128", n_out=3, n_in=3)]
    cfg = P.base_config(wd)
    # AES-GCM on the device too, not the native engine (crypto.engine's default)
    cfg["crypto"] = {"devices": ["crypto_openssl"], "engine": "cryptodev"}
    for t in tunnels:
        cfg["sas"] += t.sas()
        cfg["policies"] += t.policies()
    r = P.PcapRun(wd, cfg, [f for t in tunnels for f in t.lan_frames()],
                  [f for t in tunnels for f in t.in_frames])
    r.tunnels = tunnels
    return r


def test_crypto_openssl_carries_esp_both_ways(openssl_run):
    r = openssl_run
    assert r.error is None and r.rc == 0, r.log
    for t in r.tunnels:
        for spi in (t.spi_out, t.spi_in):
            assert r.sa(spi)["device"] == "crypto_openssl"
        esp = r.esp_out(t.spi_out)
        assert [struct.unpack("!L", e[2][4:8])[0] for e in esp] == [1, 2, 3]
        assert [t.sa_out.decrypt(e[2]).payload for e in esp] == [P.forwarded(p) for p in t.out_inner]
        for f in t.expected_lan():
            assert r.lan_out.count(f) == 1, t.name
        assert r.sa(t.spi_in)["packets"] == 3 and r.sa(t.spi_in)["drop_auth"] == 0


# ---- PF_KEY: use-time lifetimes, X_PROMISC -------------------------------------------------------


def test_use_time_lifetimes_expire_after_first_use_and_remove_the_sa(gw):  # noqa: F811
    ev = gw.client()
    assert ev.request(K.msg(K.REGISTER, K.ESP)).errno == 0
    q = gw.client()
    q.request(out_policy(level=K.LEVEL_REQUIRE))
    add = K.msg(K.ADD, K.ESP, [K.sa(0x8401, enc=K.EALG_GCM16, replay=0), K.sa2(K.MODE_TUNNEL, 5),
                               K.address(K.SRC, GW_WAN), K.address(K.DST, HOST_B),
                               K.lifetime(K.LT_SOFT, usetime=1), K.lifetime(K.LT_HARD, usetime=2),
                               K.key(K.KEY_ENC, KEY)])
    assert q.request(add).errno == 0
    ev.drain()
    # unused, a use time never runs out
    with pytest.raises(AssertionError):
        ev.wait_for(lambda m: m.type == K.EXPIRE, timeout=2.5)
    assert 0x8401 in sas_by_spi(gw)
    t0 = time.time()
    sender = send_udp(gw, "10.9.1.5", 40, 0.1)
    soft = ev.wait_for(lambda m: m.type == K.EXPIRE, timeout=10)
    assert K.LT_SOFT in soft.ext and soft.ext[K.SA].spi == 0x8401 and 0.8 <= time.time() - t0 < 2.8
    hard = ev.wait_for(lambda m: m.type == K.EXPIRE, timeout=10)
    assert K.LT_HARD in hard.ext and hard.ext[K.SA].spi == 0x8401 and 1.8 <= time.time() - t0 < 3.8
    assert sender.wait(timeout=30) == 0
    assert 0x8401 not in sas_by_spi(gw)
    rep = q.request(K.msg(K.GET, K.ESP, [K.sa(0x8401), K.address(K.SRC, GW_WAN), K.address(K.DST, HOST_B)]))
    assert rep.errno == errno.ESRCH


def test_promiscuous_socket_gets_a_copy_of_other_sockets_messages(gw):  # noqa: F811
    promisc, other, quiet = gw.client(), gw.client(), gw.client()
    assert promisc.request(K.msg(K.PROMISC, 1)).errno == 0       # satype 1: on
    get = K.msg(K.GET, K.ESP, [K.sa(0x777), K.address(K.SRC, GW_WAN), K.address(K.DST, HOST_B)])
    promisc.drain()
    quiet.drain()
    rep = other.request(get)
    assert rep.errno == 0 and rep.ext[K.SA].spi == 0x777
    # the reply only the asking socket should get reaches the promiscuous one too
    copy = promisc.wait_for(lambda m: m.type == K.GET, timeout=3)
    assert copy.pid == other.pid and copy.seq == rep.seq and copy.ext[K.SA].spi == 0x777
    with pytest.raises(AssertionError):          # a socket that did not ask gets nothing
        quiet.wait_for(lambda m: m.type == K.GET, timeout=1)
    assert promisc.request(K.msg(K.PROMISC, 0)).errno == 0       # satype 0: off
    promisc.drain()
    other.request(get)
    with pytest.raises(AssertionError):
        promisc.wait_for(lambda m: m.type == K.GET, timeout=1)
