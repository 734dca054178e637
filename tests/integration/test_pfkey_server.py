"""dpsecd's PF_KEY v2 server, driven over its socket by an independent client
(tests/integration/pfkey.py, written from RFC 2367 with struct), on a live
gateway:

    host A ---- [lan] dpsecd [wan] ---- host B
    10.1.0.2   10.1.0.1    10.2.0.1    10.2.0.2      routes: 10.9.0.0/16 via host B

Every message type a key daemon uses, their replies and errno values, who
receives what (sender, all, registered), DUMP of many SAs without loss, bad
messages answered and harmless, the kernel-originated ACQUIRE (from traffic
that matches a policy with no SA: dropped, never in clear) and EXPIRE (from
packet lifetimes counted by the workers), access control by credentials,
and what PF_KEY installs shown by dpsecctl beside the configuration's own.
"""
import errno
import os
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import time

import pytest
from scapy.all import ESP, ICMP, IP, UDP, Ether
from scapy.layers.ipsec import AH, SecurityAssociation

import pfkey as K
from dpsec import Daemon, sh

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "peer"))
from topology import Capture  # noqa: E402

GW_LAN, GW_WAN, HOST_B = "10.1.0.1", "10.2.0.1", "10.2.0.2"
KEY = bytes(range(20))  # AES-128 key + 4-byte salt

SENDER = r"""
import socket, sys, time
dst, n, gap = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for i in range(n):
    s.sendto(b"plaintext-%06d" % i, (dst, 9000))
    time.sleep(gap)
"""


def config(ga, gb, tag, sock):
    return {
        "ports": [
            {"name": "lan", "device": f"net_af_packet0,iface={ga}", "role": "protected",
             "exception_iface": f"pl{tag}", "addresses": [GW_LAN + "/24"]},
            {"name": "wan", "device": f"net_af_packet1,iface={gb}", "role": "unprotected",
             "exception_iface": f"pw{tag}", "addresses": [GW_WAN + "/24"]},
        ],
        "routes": [{"prefix": "10.9.0.0/16", "via": HOST_B, "port": "wan"}],
        # one configuration SA and policy: PF_KEY sees them, may not change them
        "sas": [{"spi": 0x777, "direction": "out", "src": GW_WAN, "dst": HOST_B, "reqid": 77,
                 "encryption": {"algorithm": "aes-gcm-128", "key": "0x" + "ab" * 20}}],
        "policies": [{"direction": "out", "src": "10.1.0.0/24", "dst": "10.9.7.0/24", "action": "protect",
                      "ipsec": [{"proto": "esp", "mode": "tunnel", "level": "require", "reqid": 77,
                                 "tunnel": {"src": GW_WAN, "dst": HOST_B}}]}],
        "pfkey": {"socket": sock, "acquire_retry_s": 2, "larval_s": 3},
    }


def hosts_and_gateway(topo, names=("ha", "gw", "hb"), b_via_gw=False):
    """host A -- gateway namespace (dpsecd's af_packet ends) -- host B; with
    @b_via_gw host B routes through the gateway's WAN address."""
    ha, g, hb = (topo.ns(n) for n in names)
    va, ga = topo.link(ha, g)
    vb, gb = topo.link(hb, g)
    topo.host(ha, va, ["10.1.0.2/24"], [GW_LAN])
    topo.host(hb, vb, [HOST_B + "/24"], [GW_WAN] if b_via_gw else ())
    topo.dataplane_owned(g, ga)
    topo.dataplane_owned(g, gb)
    return ha, g, hb, ga, gb, vb


@pytest.fixture
def gw(topo, tmp_path, request):
    ha, g, hb, ga, gb, vb = hosts_and_gateway(topo)
    # a directory others may traverse: the access test runs a client as nobody
    sockdir = tempfile.mkdtemp(prefix="dpsec-pfk-")
    os.chmod(sockdir, 0o755)
    sock = os.path.join(sockdir, "pfkey.sock")
    cfg = config(ga, gb, topo.tag, sock)
    # crypto.engine when a test asks for one (indirect parametrisation); else the default
    if getattr(request, "param", None):
        cfg["crypto"] = {"engine": request.param}
    d = Daemon(cfg, str(tmp_path), ns=g).start()
    d.sock, d.ha, d.hb, d.vb, d.tmp = sock, ha, hb, vb, tmp_path
    clients = []

    def client():
        c = K.Client(sock, pid=os.getpid() + (len(clients) << 22))
        clients.append(c)
        return c

    d.client = client
    d.clients = clients
    yield d
    for c in clients:
        c.close()
    rc = d.stop()
    shutil.rmtree(sockdir, ignore_errors=True)
    assert rc == 0, d.read_log()


def sas_by_spi(d):
    return {int(s["spi"], 16): s for s in d.ctl_json("sa")["sas"].values()}


def out_policy(net="10.9.1.0/24", reqid=5, level=K.LEVEL_UNIQUE, mtype=K.SPDADD, priority=1000):
    return K.spd(mtype, K.DIR_OUT, "10.1.0.0/24", net,
                 requests=[K.ipsecrequest(50, K.MODE_TUNNEL, level, reqid, (GW_WAN, HOST_B))],
                 priority=priority)


# ---------------------------------------------------------------- registration


def test_register_lists_what_the_crypto_devices_run(gw):
    c = gw.client()
    rep = c.request(K.msg(K.REGISTER, K.ESP))
    assert rep.errno == 0 and rep.type == K.REGISTER
    enc = {a[0]: a for a in rep.ext[K.SUP_ENC].algs}
    auth = {a[0]: a for a in rep.ext[K.SUP_AUTH].algs}
    # crypto_aesni_mb runs AES-GCM (key+salt 160..288 bits), AES-CBC 128..256, HMAC-SHA2-256
    assert enc[K.EALG_GCM16][2:] == (160, 288)
    assert enc[K.EALG_AESCBC][2:] == (128, 256)
    assert auth[K.AALG_SHA256][2:] == (256, 256)
    assert K.EALG_3DES not in enc
    # AH: the devices' integrity algorithms, no cipher (as Linux)
    rep = c.request(K.msg(K.REGISTER, K.AH))
    assert rep.errno == 0 and K.SUP_ENC not in rep.ext
    ah_auth = {a[0]: a for a in rep.ext[K.SUP_AUTH].algs}
    assert ah_auth == auth
    # IPComp is not run yet: nothing
    rep = c.request(K.msg(K.REGISTER, K.IPCOMP))
    assert rep.errno == 0 and K.SUP_ENC not in rep.ext and K.SUP_AUTH not in rep.ext


# ---------------------------------------------------------------- SAs


def test_getspi_update_get_delete_lifecycle(gw):
    c = gw.client()
    rep = c.request(K.msg(K.GETSPI, K.ESP, [K.address(K.SRC, HOST_B), K.address(K.DST, GW_WAN),
                                            K.spirange(0xc0000000, 0xcfffffff)]))
    assert rep.errno == 0
    spi = rep.ext[K.SA].spi
    assert 0xc0000000 <= spi <= 0xcfffffff and rep.ext[K.SA].state == K.LARVAL
    # the same SPI cannot be reserved twice
    again = c.request(K.msg(K.GETSPI, K.ESP, [K.address(K.SRC, HOST_B), K.address(K.DST, GW_WAN),
                                              K.spirange(spi, spi)]))
    assert again.errno == errno.EEXIST
    # larval -> mature
    rep = c.request(K.gcm_add(spi, HOST_B, GW_WAN, 9, KEY, mtype=K.UPDATE, hard=(0, 0, 3600),
                              soft=(0, 0, 3000), encap=(4500, 4500)))
    assert rep.errno == 0 and K.KEY_ENC not in rep.ext  # no keys in the broadcast
    got = c.request(K.msg(K.GET, K.ESP, [K.sa(spi), K.address(K.SRC, HOST_B), K.address(K.DST, GW_WAN)]))
    assert got.errno == 0
    # everything charon copies from a GET reply into an UPDATE
    assert got.ext[K.SA].spi == spi and got.ext[K.SA].state == K.MATURE
    assert got.ext[K.SA].enc == K.EALG_GCM16 and got.ext[K.SA].replay == 32
    assert got.ext[K.SA2].reqid == 9 and got.ext[K.SA2].mode == K.MODE_TUNNEL
    assert got.ext[K.SRC].addr == HOST_B and got.ext[K.DST].addr == GW_WAN
    assert got.ext[K.KEY_ENC].bits == 160 and got.ext[K.KEY_ENC].key == KEY
    assert got.ext[K.LT_HARD].addtime == 3600 and got.ext[K.LT_SOFT].addtime == 3000
    assert got.ext[K.LT_CURRENT].packets == 0 and got.ext[K.LT_CURRENT].addtime > 1.6e9
    assert got.ext[K.NATT_TYPE].natt == 2 and got.ext[K.NATT_SPORT].port == 4500
    s = sas_by_spi(gw)[spi]
    assert s["dir"] == "in" and s["origin"] == "pfkey" and s["reqid"] == 9 and s["encap"] == "udp:4500:4500"
    rep = c.request(K.msg(K.DELETE, K.ESP, [K.sa(spi), K.address(K.SRC, HOST_B), K.address(K.DST, GW_WAN)]))
    assert rep.errno == 0
    assert spi not in sas_by_spi(gw)
    rep = c.request(K.msg(K.GET, K.ESP, [K.sa(spi), K.address(K.SRC, HOST_B), K.address(K.DST, GW_WAN)]))
    assert rep.errno == errno.ESRCH
    rep = c.request(K.msg(K.DELETE, K.ESP, [K.sa(spi), K.address(K.SRC, HOST_B), K.address(K.DST, GW_WAN)]))
    assert rep.errno == errno.ESRCH


def test_larval_sa_expires_without_update(gw):
    c = gw.client()
    rep = c.request(K.msg(K.GETSPI, K.ESP, [K.address(K.SRC, HOST_B), K.address(K.DST, GW_WAN),
                                            K.spirange(0x4000, 0x4000)]))
    assert rep.errno == 0 and rep.ext[K.SA].spi == 0x4000
    time.sleep(4)  # larval_s: 3
    rep = c.request(K.gcm_add(0x4000, HOST_B, GW_WAN, 1, KEY, mtype=K.UPDATE))
    assert rep.errno == errno.ESRCH


def test_add_errors(gw):
    c = gw.client()
    ok = K.gcm_add(0x5001, GW_WAN, HOST_B, 3, KEY)
    assert c.request(ok).errno == 0
    assert c.request(ok).errno == errno.EEXIST
    # 3DES: not implemented by the dataplane
    des = K.msg(K.ADD, K.ESP, [K.sa(0x5002, enc=K.EALG_3DES, auth=K.AALG_SHA1), K.sa2(K.MODE_TUNNEL, 1),
                               K.address(K.SRC, GW_WAN), K.address(K.DST, HOST_B),
                               K.key(K.KEY_ENC, bytes(24)), K.key(K.KEY_AUTH, bytes(20))])
    assert c.request(des).errno == errno.ENOSYS
    # a GCM key of the wrong size
    bad = K.gcm_add(0x5003, GW_WAN, HOST_B, 3, bytes(17))
    assert c.request(bad).errno in (errno.EINVAL, errno.ENOSYS)
    # SRC and DST of different families
    mixed = K.msg(K.ADD, K.ESP, [K.sa(0x5004), K.sa2(K.MODE_TUNNEL, 1), K.address(K.SRC, GW_WAN),
                                 K.address(K.DST, "2001:db8::2"), K.key(K.KEY_ENC, KEY)])
    assert c.request(mixed).errno == errno.EINVAL
    # UPDATE of an SA nobody reserved
    assert c.request(K.gcm_add(0x5005, GW_WAN, HOST_B, 3, KEY, mtype=K.UPDATE)).errno == errno.ESRCH
    # the configuration's SA cannot be deleted through PF_KEY
    rep = c.request(K.msg(K.DELETE, K.ESP, [K.sa(0x777), K.address(K.SRC, GW_WAN), K.address(K.DST, HOST_B)]))
    assert rep.errno == errno.EPERM
    spis = sas_by_spi(gw)
    assert set(spis) == {0x777, 0x5001}
    assert spis[0x5001]["dir"] == "out" and spis[0x777]["origin"] == "config"


def test_malformed_messages_get_errors_and_change_nothing(gw):
    c = gw.client()
    before = sas_by_spi(gw)
    good = bytearray(K.gcm_add(0x6001, GW_WAN, HOST_B, 3, KEY))
    cases = []
    m = bytearray(good)
    m[0] = 1  # version
    cases.append(bytes(m))
    m = bytearray(good)
    struct.pack_into("=H", m, 4, len(good) // 8 + 1)  # length beyond the datagram
    cases.append(bytes(m))
    m = bytearray(good)
    struct.pack_into("=H", m, 16, 0)  # first extension of length 0
    cases.append(bytes(m))
    m = bytearray(good)
    struct.pack_into("=H", m, 16, 200)  # extension beyond the message
    cases.append(bytes(m))
    cases.append(K.msg(K.ADD, K.ESP, [K.sa(0x6001), K.sa(0x6002), K.address(K.SRC, GW_WAN),
                                      K.address(K.DST, HOST_B), K.key(K.KEY_ENC, KEY)]))  # duplicate
    cases.append(K.msg(K.ADD, K.ESP, [K.sa(0x6001), K.address(K.SRC, GW_WAN)]))  # no DST
    cases.append(K.msg(K.ADD, K.ESP, [K.sa(0x6001), K.address(K.SRC, GW_WAN), K.address(K.DST, HOST_B),
                                      K.key(K.KEY_ENC, KEY, bits=400)]))  # more bits than bytes
    cases.append(K.msg(K.GETSPI, K.ESP, [K.address(K.SRC, GW_WAN), K.address(K.DST, HOST_B),
                                         K.spirange(0x9000, 0x8000)]))  # inverted range
    cases.append(K.msg(K.SPDADD, K.UNSPEC, [K.policy(K.DIR_OUT, K.POL_IPSEC,
                                                     [struct.pack("=HHBBHII", 8, 50, 2, 2, 0, 0, 0)]),
                                            K.address(K.SRC, "10.1.0.0", 24), K.address(K.DST, "10.9.0.0", 16)]))
    cases.append(b"\x02\x03")  # shorter than a header
    cases.append(K.msg(200, K.ESP))  # unknown type
    for i, data in enumerate(cases):
        c.send(data)
        rep = c.recv()
        assert rep.errno != 0, f"case {i} accepted"
        assert rep.type == (data[1] if len(data) > 1 else 0), f"case {i}: reply type {rep.type}"
    assert sas_by_spi(gw).keys() == before.keys()
    assert gw.proc.poll() is None
    # the same connection still works
    assert c.request(K.msg(K.REGISTER, K.ESP)).errno == 0


def test_add_is_broadcast_without_keys_get_is_not(gw):
    a, b = gw.client(), gw.client()
    assert a.request(K.gcm_add(0x7001, GW_WAN, HOST_B, 3, KEY)).errno == 0
    seen = b.wait_for(lambda m: m.type == K.ADD)
    assert seen.ext[K.SA].spi == 0x7001 and K.KEY_ENC not in seen.ext and seen.pid == a.pid
    assert a.request(K.msg(K.GET, K.ESP, [K.sa(0x7001), K.address(K.SRC, GW_WAN),
                                          K.address(K.DST, HOST_B)])).errno == 0
    assert [m for m in b.drain(0.5) if m.type == K.GET] == []


def test_dump_returns_every_sa_last_with_seq_zero(gw):
    c = gw.client()
    n = 300
    for i in range(n):
        assert c.request(K.gcm_add(0x10000 + i, GW_WAN, HOST_B, 1000 + i, KEY)).errno == 0
    c.drain()
    c.send(K.msg(K.DUMP, K.ESP, seq=0))
    got = []
    while True:
        m = c.recv()
        assert m.type == K.DUMP and m.errno == 0
        got.append(m)
        if m.seq == 0:
            break
    spis = {m.ext[K.SA].spi for m in got}
    assert spis == {0x10000 + i for i in range(n)} | {0x777}
    assert all(K.KEY_ENC in m.ext and K.SA2 in m.ext for m in got)
    # FLUSH removes what PF_KEY installed, not the configuration's SA
    assert c.request(K.msg(K.FLUSH, K.ESP)).errno == 0
    assert set(sas_by_spi(gw)) == {0x777}


CALG_DEFLATE = 2


def ipcomp_sa(cpi, src, dst, reqid, mtype=K.ADD, calg=CALG_DEFLATE, hard=(0, 0, 0)):
    """charon's ADD/UPDATE of an IPComp SA: the compression algorithm in sadb_sa_encrypt."""
    return K.msg(mtype, K.IPCOMP, [K.sa(cpi, enc=calg, replay=0), K.sa2(K.MODE_TUNNEL, reqid),
                                   K.address(K.SRC, src), K.address(K.DST, dst),
                                   K.lifetime(K.LT_SOFT), K.lifetime(K.LT_HARD, hard[0], hard[1], hard[2])])


def test_ipcomp_sa_getspi_update_get_dump_delete_expire(gw):
    """IPComp SAs over PF_KEY (the default compress devices run them): GETSPI gives
    16-bit CPIs, never a well-known one (< 256), within charon's 0x100..0xefff;
    UPDATE/ADD with SADB_X_CALG_DEFLATE, GET and DUMP show it; other algorithms,
    well-known and 17-bit CPIs are refused; DELETE; EXPIRE by time."""
    ev = gw.client()
    assert ev.request(K.msg(K.REGISTER, K.IPCOMP)).errno == 0
    c = gw.client()
    cpis = set()
    for _ in range(8):
        rep = c.request(K.msg(K.GETSPI, K.IPCOMP, [K.address(K.SRC, HOST_B), K.address(K.DST, GW_WAN)]))
        assert rep.errno == 0 and 0x100 <= rep.ext[K.SA].spi <= 0xffff
        cpis.add(rep.ext[K.SA].spi)
    rep = c.request(K.msg(K.GETSPI, K.IPCOMP, [K.address(K.SRC, HOST_B), K.address(K.DST, GW_WAN),
                                               K.spirange(0x100, 0xefff)]))
    assert rep.errno == 0 and rep.ext[K.SA].state == K.LARVAL
    cpi = rep.ext[K.SA].spi
    assert 0x100 <= cpi <= 0xefff and cpi not in cpis
    # a range that asks for well-known CPIs only gets none of them
    rep = c.request(K.msg(K.GETSPI, K.IPCOMP, [K.address(K.SRC, HOST_B), K.address(K.DST, GW_WAN),
                                               K.spirange(1, 255)]))
    assert rep.errno == errno.EINVAL
    rep = c.request(K.msg(K.GETSPI, K.IPCOMP, [K.address(K.SRC, HOST_B), K.address(K.DST, GW_WAN),
                                               K.spirange(0x100, 0x10000)]))
    assert rep.errno == errno.EINVAL
    assert c.request(ipcomp_sa(cpi, HOST_B, GW_WAN, 11, mtype=K.UPDATE)).errno == 0
    got = c.request(K.msg(K.GET, K.IPCOMP, [K.sa(cpi), K.address(K.SRC, HOST_B), K.address(K.DST, GW_WAN)]))
    assert got.errno == 0 and got.satype == K.IPCOMP
    assert got.ext[K.SA].spi == cpi and got.ext[K.SA].enc == CALG_DEFLATE and got.ext[K.SA].state == K.MATURE
    assert got.ext[K.SA2].reqid == 11 and got.ext[K.SA2].mode == K.MODE_TUNNEL
    s = sas_by_spi(gw)[cpi]
    assert s["dir"] == "in" and s["proto"] == "ipcomp" and s["origin"] == "pfkey"
    # outbound, by ADD
    assert c.request(ipcomp_sa(0x4242, GW_WAN, HOST_B, 11)).errno == 0
    assert sas_by_spi(gw)[0x4242]["dir"] == "out"
    # refused: another compression algorithm, a well-known CPI, a CPI beyond 16 bits
    assert c.request(ipcomp_sa(0x4243, GW_WAN, HOST_B, 11, calg=3)).errno == errno.ENOSYS
    assert c.request(ipcomp_sa(2, GW_WAN, HOST_B, 11)).errno == errno.EINVAL
    assert c.request(ipcomp_sa(0x14243, GW_WAN, HOST_B, 11)).errno == errno.EINVAL
    c.drain()
    c.send(K.msg(K.DUMP, K.IPCOMP, seq=0))
    dumped = []
    while True:
        m = c.recv()
        assert m.type == K.DUMP and m.errno == 0
        dumped.append(m)
        if m.seq == 0:
            break
    assert {m.ext[K.SA].spi for m in dumped if m.ext[K.SA].state == K.MATURE} == {cpi, 0x4242}
    assert {m.ext[K.SA].spi for m in dumped if m.ext[K.SA].state == K.LARVAL} == cpis  # reserved
    assert all(m.satype == K.IPCOMP and m.ext[K.SA].enc == CALG_DEFLATE for m in dumped)
    rep = c.request(K.msg(K.DELETE, K.IPCOMP, [K.sa(0x4242), K.address(K.SRC, GW_WAN), K.address(K.DST, HOST_B)]))
    assert rep.errno == 0 and 0x4242 not in sas_by_spi(gw)
    # EXPIRE: a hard time limit of 1 s
    ev.drain()
    assert c.request(ipcomp_sa(0x4244, GW_WAN, HOST_B, 12, hard=(0, 0, 1))).errno == 0
    hard = ev.wait_for(lambda m: m.type == K.EXPIRE)
    assert hard.satype == K.IPCOMP and hard.ext[K.SA].spi == 0x4244 and K.LT_HARD in hard.ext
    assert 0x4244 not in sas_by_spi(gw)


# ---------------------------------------------------------------- policies


def test_policy_add_update_get_dump_delete(gw):
    c = gw.client()
    rep = c.request(out_policy())
    assert rep.errno == 0
    pid = rep.ext[K.POLICY].id
    assert pid & 7 == K.DIR_OUT - 1  # Linux numbering: charon keeps this id
    assert rep.ext[K.POLICY].requests[0] == {"proto": 50, "mode": K.MODE_TUNNEL, "level": K.LEVEL_UNIQUE,
                                             "reqid": 5, "tun": (GW_WAN, HOST_B)}
    assert c.request(out_policy()).errno == errno.EEXIST
    rep = c.request(out_policy(reqid=6, mtype=K.SPDUPDATE))
    assert rep.errno == 0 and rep.ext[K.POLICY].id == pid
    got = c.request(K.msg(K.SPDGET, K.UNSPEC, [K.policy(K.DIR_OUT, pid=pid)]))
    assert got.errno == 0 and got.ext[K.POLICY].requests[0]["reqid"] == 6
    assert got.ext[K.SRC].addr == "10.1.0.0" and got.ext[K.SRC].prefixlen == 24
    assert got.ext[K.DST].addr == "10.9.1.0" and got.ext[K.DST].prefixlen == 24
    assert K.LT_CURRENT in got.ext
    fwd = K.spd(K.SPDADD, K.DIR_FWD, "10.9.1.0/24", "10.1.0.0/24",
                requests=[K.ipsecrequest(50, K.MODE_TUNNEL, K.LEVEL_REQUIRE, 6, (HOST_B, GW_WAN))])
    fid = c.request(fwd).ext[K.POLICY].id
    assert fid & 7 == K.DIR_FWD - 1
    pols = {p["id"]: p for p in gw.ctl_json("policy")["policies"].values()}
    assert pols[pid]["origin"] == "pfkey" and pols[pid]["dir"] == "out"
    assert pols[fid]["dir"] == "fwd"
    assert [p for p in pols.values() if p["origin"] == "config"]
    c.send(K.msg(K.SPDDUMP))
    ids = set()
    while True:
        m = c.recv()
        ids.add(m.ext[K.POLICY].id)
        if m.seq == 0:
            break
    assert ids == set(pols)
    rep = c.request(K.spd(K.SPDDELETE, K.DIR_OUT, "10.1.0.0/24", "10.9.1.0/24"))
    assert rep.errno == 0 and rep.ext[K.POLICY].id == pid
    assert c.request(K.msg(K.SPDGET, K.UNSPEC, [K.policy(K.DIR_OUT, pid=pid)])).errno == errno.ENOENT
    assert c.request(K.msg(K.SPDDELETE2, K.UNSPEC, [K.policy(K.DIR_FWD, pid=fid)])).errno == 0
    assert c.request(K.msg(K.SPDDELETE2, K.UNSPEC, [K.policy(K.DIR_FWD, pid=fid)])).errno == errno.ENOENT
    assert c.request(K.msg(K.SPDFLUSH)).errno == 0
    assert {p["origin"] for p in gw.ctl_json("policy")["policies"].values()} == {"config"}


# ---------------------------------------------------------------- ACQUIRE and EXPIRE


def capture(gw):
    """tcpdump on host B's link (tests/peer/topology.py's Capture): stop()
    returns the frames as scapy packets and leaves tcpdump's own counts in
    .summary, so a gap can be told apart from a frame tcpdump lost."""
    return WireCapture(gw.hb, gw.vb, str(gw.tmp / "wire.pcap")).start()


class WireCapture(Capture):
    """Host B answers ESP and AH with ICMP errors that quote them: stop()
    leaves those out."""

    def stop(self):
        return [p for p in map(Ether, super().stop()) if ICMP not in p]


def send_udp(gw, dst, n, gap):
    return subprocess.Popen(["ip", "netns", "exec", gw.ha, "/usr/bin/python3", "-c", SENDER, dst, str(n),
                             str(gap)])


def test_acquire_on_traffic_without_sa_then_esp_once_keyed(gw):
    ev = gw.client()  # charon's event socket: registered, waits for pid 0 messages
    assert ev.request(K.msg(K.REGISTER, K.ESP)).errno == 0
    q = gw.client()
    pid = q.request(out_policy(level=K.LEVEL_REQUIRE)).ext[K.POLICY].id
    ev.drain()
    dump = capture(gw)
    sender = send_udp(gw, "10.9.1.5", 400, 0.01)  # 4 s of traffic
    acq = ev.wait_for(lambda m: m.type == K.ACQUIRE)
    t0 = time.time()
    assert acq.pid == 0 and acq.satype == K.ESP and acq.errno == 0
    assert acq.ext[K.POLICY].id == pid and acq.ext[K.POLICY].dir == K.DIR_OUT
    assert acq.ext[K.SRC].addr == GW_WAN and acq.ext[K.DST].addr == HOST_B
    assert K.PROPOSAL in acq.ext and (0, K.EALG_GCM16) in acq.ext[K.PROPOSAL].combs
    # one ACQUIRE outstanding per policy: the next only after acquire_retry_s (2 s)
    again = ev.wait_for(lambda m: m.type == K.ACQUIRE, timeout=5)
    assert time.time() - t0 >= 1.5 and again.ext[K.POLICY].id == pid and again.seq != acq.seq
    lan = gw.port_stats()["lan"]
    assert lan["drop_no_sa"] > 50
    # keyed: traffic leaves as ESP of the new SA
    assert q.request(K.gcm_add(0x8001, GW_WAN, HOST_B, 5, KEY, replay=0)).errno == 0
    assert sender.wait(timeout=30) == 0
    time.sleep(0.5)
    wire = dump.stop()
    esp = [p for p in wire if ESP in p and p[ESP].spi == 0x8001]
    seqs = [p[ESP].seq for p in esp]
    # every sequence number in order; a gap is a failure unless tcpdump says
    # it lost frames (its own count) and dpsecd sent them all
    wan = gw.port_stats()["wan"]
    why = f"tcpdump {dump.summary}, wan {wan}"
    assert seqs and all(b > a for a, b in zip(seqs, seqs[1:])), why
    if seqs != list(range(1, len(seqs) + 1)):
        assert wan["drop_tx_full"] == 0 and seqs[-1] - len(seqs) <= (dump.summary["dropped"] or 0), \
            f"gaps in {seqs}: {why}"
    assert not [p for p in wire if UDP in p and IP in p and p[IP].dst.startswith("10.9.")]
    assert sas_by_spi(gw)[0x8001]["packets"] == seqs[-1]


def test_expire_soft_then_hard_from_packet_lifetimes(gw):
    ev = gw.client()
    assert ev.request(K.msg(K.REGISTER, K.ESP)).errno == 0
    q = gw.client()
    q.request(out_policy(level=K.LEVEL_REQUIRE))
    assert q.request(K.gcm_add(0x8101, GW_WAN, HOST_B, 5, KEY, replay=0, soft=(20, 0, 0),
                               hard=(40, 0, 0))).errno == 0
    ev.drain()
    sender = send_udp(gw, "10.9.1.5", 100, 0.02)
    soft = ev.wait_for(lambda m: m.type == K.EXPIRE)
    assert soft.pid == 0 and soft.ext[K.SA].spi == 0x8101
    assert K.LT_SOFT in soft.ext and K.LT_HARD not in soft.ext and K.KEY_ENC not in soft.ext
    assert soft.ext[K.LT_CURRENT].packets >= 20 and soft.ext[K.SA2].reqid == 5
    hard = ev.wait_for(lambda m: m.type == K.EXPIRE)
    assert K.LT_HARD in hard.ext and hard.ext[K.SA].spi == 0x8101
    assert hard.ext[K.LT_CURRENT].packets >= 40
    assert sender.wait(timeout=30) == 0
    assert 0x8101 not in sas_by_spi(gw)
    rep = q.request(K.msg(K.GET, K.ESP, [K.sa(0x8101), K.address(K.SRC, GW_WAN), K.address(K.DST, HOST_B)]))
    assert rep.errno == errno.ESRCH


def test_expire_from_add_time_and_bytes(gw):
    """Time lifetimes run without traffic; byte lifetimes count the SA's bytes."""
    ev = gw.client()
    assert ev.request(K.msg(K.REGISTER, K.ESP)).errno == 0
    q = gw.client()
    q.request(out_policy(level=K.LEVEL_REQUIRE))
    t0 = time.time()
    assert q.request(K.gcm_add(0x8301, GW_WAN, HOST_B, 5, KEY, replay=0, soft=(0, 0, 1),
                               hard=(0, 0, 2))).errno == 0
    soft = ev.wait_for(lambda m: m.type == K.EXPIRE)
    assert K.LT_SOFT in soft.ext and soft.ext[K.SA].spi == 0x8301 and 0.9 <= time.time() - t0 < 2.5
    hard = ev.wait_for(lambda m: m.type == K.EXPIRE)
    assert K.LT_HARD in hard.ext and 1.9 <= time.time() - t0 < 4
    assert 0x8301 not in sas_by_spi(gw)
    # bytes: 30 datagrams of 44-byte IP packets = 1320 bytes; soft at 400, hard at 1000. One
    # every 0.1 s: the limits are checked every 0.1 s, and a check that finds both passed at
    # once reports the hard one alone (as Linux does)
    assert q.request(K.gcm_add(0x8302, GW_WAN, HOST_B, 5, KEY, replay=0, soft=(0, 400, 0),
                               hard=(0, 1000, 0))).errno == 0
    assert send_udp(gw, "10.9.1.5", 30, 0.1).wait(timeout=30) == 0
    soft = ev.wait_for(lambda m: m.type == K.EXPIRE)
    assert K.LT_SOFT in soft.ext and soft.ext[K.LT_CURRENT].bytes >= 400, (soft.ext[K.SA].spi, list(soft.ext), soft.ext[K.LT_CURRENT].bytes)
    hard = ev.wait_for(lambda m: m.type == K.EXPIRE)
    assert K.LT_HARD in hard.ext and hard.ext[K.LT_CURRENT].bytes >= 1000
    assert 0x8302 not in sas_by_spi(gw)


def test_acquire_is_rate_limited_across_policies(topo, tmp_path):
    """acquire_rate: 2 per second, 8 policies dropping packets at once: about 2 ACQUIREs a
    second, and each policy gets its turn."""
    ha, g, hb, ga, gb, _ = hosts_and_gateway(topo)
    cfg = config(ga, gb, topo.tag, str(tmp_path / "pfkey.sock"))
    cfg["pfkey"]["acquire_rate"] = 2
    cfg["pfkey"]["acquire_retry_s"] = 60
    d = Daemon(cfg, str(tmp_path), ns=g).start()
    try:
        ev, q = K.Client(d.cfg["pfkey"]["socket"]), K.Client(d.cfg["pfkey"]["socket"], pid=1)
        assert ev.request(K.msg(K.REGISTER, K.ESP)).errno == 0
        ids = {q.request(out_policy(f"10.9.{10 + i}.0/24", reqid=100 + i, level=K.LEVEL_REQUIRE))
               .ext[K.POLICY].id for i in range(8)}
        ev.drain()
        senders = [subprocess.Popen(["ip", "netns", "exec", ha, "/usr/bin/python3", "-c", SENDER,
                                     f"10.9.{10 + i}.5", "300", "0.01"]) for i in range(8)]
        t0 = time.time()
        got = []
        while time.time() - t0 < 2.6:
            try:
                m = ev.recv(timeout=0.2)
            except socket.timeout:
                continue
            if m.type == K.ACQUIRE:
                got.append((time.time() - t0, m.ext[K.POLICY].id))
        for p in senders:
            p.kill()
            p.wait()
        # a bucket of 2, refilled at 2/s: 2 at once, then one every half second
        assert 5 <= len(got) <= 8, got
        assert len({i for _, i in got}) == len(got) and {i for _, i in got} <= ids
        ev.close()
        q.close()
    finally:
        assert d.stop() == 0


# ---------------------------------------------------------------- access


def test_unprivileged_client_is_refused(gw):
    probe = (f"import socket; s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET); "
             f"s.connect({gw.sock!r}); s.send(bytes([2, 7, 0, 3, 2, 0, 0, 0] + [0] * 8)); "
             f"print(repr(s.recv(4096)))")
    cmd = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "/usr/bin/python3", "-c", probe]
    # the socket file is root's, mode 0600: the kernel refuses the connect
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=20)
    assert r.returncode != 0 and "PermissionError" in r.stderr
    # with the file opened up, dpsecd's SO_PEERCRED check still refuses: connection closed, no reply
    os.chmod(gw.sock, 0o666)
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=20)
    assert r.stdout.strip() in ("b''", "") and "refused a client" in gw.read_log()
    # root still gets answers
    assert gw.client().request(K.msg(K.REGISTER, K.ESP)).errno == 0


def test_many_clients_at_once(gw):
    cs = [gw.client() for _ in range(20)]
    for i, c in enumerate(cs):
        assert c.request(K.gcm_add(0x9000 + i, GW_WAN, HOST_B, 1, KEY)).errno == 0
    missing = {0x9000 + i for i in range(20)} - set(sas_by_spi(gw))
    assert not missing, sorted(missing)


# ---------------------------------------------------------------- restart


def test_restart_brings_back_what_pfkey_installed(gw):
    q = gw.client()
    pid = q.request(out_policy(level=K.LEVEL_REQUIRE)).ext[K.POLICY].id
    assert q.request(K.gcm_add(0x8201, GW_WAN, HOST_B, 5, KEY, replay=0, hard=(0, 0, 3600),
                               soft=(0, 0, 3000))).errno == 0
    assert q.request(K.gcm_add(0x8202, HOST_B, GW_WAN, 5, KEY)).errno == 0
    dump = capture(gw)
    assert send_udp(gw, "10.9.1.5", 30, 0.01).wait(timeout=30) == 0
    gw.wait_for(lambda: sas_by_spi(gw)[0x8201]["packets"] == 30, what="30 packets out")
    q.close()
    gw.clients.remove(q)
    assert gw.stop() == 0
    gw.start()
    sas = sas_by_spi(gw)
    assert sas[0x8201]["origin"] == "pfkey" and sas[0x8201]["dir"] == "out"
    assert sas[0x8202]["origin"] == "pfkey" and sas[0x8202]["dir"] == "in"
    assert sas[0x777]["origin"] == "config"
    pols = {p["id"]: p for p in gw.ctl_json("policy")["policies"].values()}
    assert pols[pid]["origin"] == "pfkey"  # the id charon knows it by
    assert send_udp(gw, "10.9.1.5", 20, 0.01).wait(timeout=30) == 0
    gw.wait_for(lambda: sas_by_spi(gw)[0x8201]["packets"] == 20, what="20 packets out")
    time.sleep(0.5)
    seqs = [p[ESP].seq for p in dump.stop() if ESP in p and p[ESP].spi == 0x8201]
    # before: 1..30; after: past a margin, so the peer's replay window never sees one again
    assert seqs[:30] == list(range(1, 31))
    assert len(seqs) == 50 and all(b > a for a, b in zip(seqs, seqs[1:])) and seqs[30] > 30 + (1 << 20)
    c = gw.client()
    got = c.request(K.msg(K.GET, K.ESP, [K.sa(0x8201), K.address(K.SRC, GW_WAN), K.address(K.DST, HOST_B)]))
    assert got.errno == 0 and got.ext[K.KEY_ENC].key == KEY and 3500 <= got.ext[K.LT_HARD].addtime <= 3600


# ---------------------------------------------------------------- AH


AH_KEY = bytes(range(100, 132))  # HMAC-SHA2-256 key


def ah_add(spi, src, dst, reqid, mtype=K.ADD, soft=(0, 0, 0), hard=(0, 0, 0)):
    """charon's ADD of an AH SA with HMAC-SHA2-256-128 (ah_proposals)."""
    return K.msg(mtype, K.AH, [K.sa(spi, auth=K.AALG_SHA256, enc=0, replay=0), K.sa2(K.MODE_TUNNEL, reqid),
                               K.address(K.SRC, src), K.address(K.DST, dst),
                               K.lifetime(K.LT_SOFT, *soft), K.lifetime(K.LT_HARD, *hard),
                               K.key(K.KEY_AUTH, AH_KEY)])


ENGINES = ("native", "cryptodev")   # AH's HMAC: intel-ipsec-mb (the default), or the device


@pytest.mark.parametrize("gw", ENGINES, indirect=True)
def test_ah_sa_add_get_dump_traffic_expire_delete(gw):
    """An AH SA over PF_KEY: ADD, GET (algorithm and key back), DUMP(AH) lists
    it and not the ESP SAs; an AH policy sends the host's traffic as AH whose
    ICV scapy's AH code verifies, sequence numbers 1, 2, ...; the soft packet
    lifetime raises an EXPIRE of satype AH; DELETE removes it."""
    ev = gw.client()
    assert ev.request(K.msg(K.REGISTER, K.AH)).errno == 0
    q = gw.client()
    assert q.request(ah_add(0x8301, GW_WAN, HOST_B, 6, soft=(30, 0, 0))).errno == 0
    got = q.request(K.msg(K.GET, K.AH, [K.sa(0x8301), K.address(K.SRC, GW_WAN), K.address(K.DST, HOST_B)]))
    assert got.errno == 0 and got.satype == K.AH
    assert got.ext[K.SA].auth == K.AALG_SHA256 and got.ext[K.SA].enc == 0
    assert got.ext[K.KEY_AUTH].key == AH_KEY and K.KEY_ENC not in got.ext
    assert got.ext[K.SA2].reqid == 6
    # the same SPI and destination as ESP is another SA
    assert q.request(K.msg(K.GET, K.ESP, [K.sa(0x8301), K.address(K.SRC, GW_WAN),
                                         K.address(K.DST, HOST_B)])).errno == errno.ESRCH
    q.drain()
    q.send(K.msg(K.DUMP, K.AH, seq=0))
    dumped = []
    while True:
        m = q.recv()
        assert m.type == K.DUMP and m.errno == 0
        dumped.append(m.ext[K.SA].spi)
        if m.seq == 0:
            break
    assert dumped == [0x8301]
    s = sas_by_spi(gw)[0x8301]
    assert s["proto"] == "ah" and s["dir"] == "out"
    assert s["crypto"] == ("native" if gw.cfg["crypto"]["engine"] == "native" else "cpu")
    q.request(K.spd(K.SPDADD, K.DIR_OUT, "10.1.0.0/24", "10.9.3.0/24",
                    requests=[K.ipsecrequest(51, K.MODE_TUNNEL, K.LEVEL_REQUIRE, 6, (GW_WAN, HOST_B))],
                    priority=1000))
    ev.drain()
    dump = capture(gw)
    sender = send_udp(gw, "10.9.3.5", 50, 0.01)
    assert sender.wait(timeout=30) == 0
    soft = ev.wait_for(lambda m: m.type == K.EXPIRE)
    assert soft.satype == K.AH and soft.ext[K.SA].spi == 0x8301 and K.LT_SOFT in soft.ext
    time.sleep(0.5)
    wire = [p for p in dump.stop() if AH in p and p[AH].spi == 0x8301]
    assert len(wire) == 50 and [p[AH].seq for p in wire] == list(range(1, 51))
    sa = SecurityAssociation(AH, spi=0x8301, auth_algo="SHA2-256-128", auth_key=AH_KEY,
                             tunnel_header=IP(src=GW_WAN, dst=HOST_B))
    for i, p in enumerate(wire):
        inner = IP(bytes(sa.decrypt(IP(bytes(p[IP])))))
        assert inner[IP].dst == "10.9.3.5" and bytes(inner[UDP].payload) == b"plaintext-%06d" % i
    assert sas_by_spi(gw)[0x8301]["packets"] == 50
    rep = q.request(K.msg(K.DELETE, K.AH, [K.sa(0x8301), K.address(K.SRC, GW_WAN), K.address(K.DST, HOST_B)]))
    assert rep.errno == 0 and 0x8301 not in sas_by_spi(gw)


@pytest.mark.parametrize("gw", ENGINES, indirect=True)
def test_ah_getspi_then_update_inbound(gw):
    """charon's inbound AH SA: GETSPI(AH) reserves an SPI, UPDATE makes it
    mature with its key; the same SPI stays free for ESP."""
    c = gw.client()
    rep = c.request(K.msg(K.GETSPI, K.AH, [K.address(K.SRC, HOST_B), K.address(K.DST, GW_WAN),
                                           K.spirange(0xc1000000, 0xc1000000)]))
    assert rep.errno == 0 and rep.ext[K.SA].spi == 0xc1000000 and rep.ext[K.SA].state == K.LARVAL
    assert c.request(ah_add(0xc1000000, HOST_B, GW_WAN, 8, mtype=K.UPDATE)).errno == 0
    got = c.request(K.msg(K.GET, K.AH, [K.sa(0xc1000000), K.address(K.SRC, HOST_B), K.address(K.DST, GW_WAN)]))
    assert got.errno == 0 and got.ext[K.SA].state == K.MATURE and got.ext[K.KEY_AUTH].key == AH_KEY
    s = sas_by_spi(gw)[0xc1000000]
    assert s["proto"] == "ah" and s["dir"] == "in" and s["origin"] == "pfkey"
    assert s["crypto"] == ("native" if gw.cfg["crypto"]["engine"] == "native" else "cpu")
    # ESP may take the same SPI and destination: another SA
    assert c.request(K.gcm_add(0xc1000000, HOST_B, GW_WAN, 8, KEY)).errno == 0
