"""An IPComp + ESP bundle installed over PF_KEY exactly as strongSwan's charon
(kernel-pfkey plugin, `compress = yes`) installs it, on the live gateway of
test_pfkey_server.py: SPDADD with two ipsecrequests (IPComp in tunnel mode
with the endpoints, then ESP in transport mode, one reqid, level unique), an
ESP SA in transport mode and an IPComp SA in tunnel mode (CPI from GETSPI
SADB_X_SATYPE_IPCOMP) of that reqid (kernel_pfkey_ipsec.c add_policy_internal,
add_sa).

With one SA of the two missing the traffic is dropped (never sent with fewer
layers) and ACQUIRE is raised once per policy, as for a single SA, with
satype ESP (charon ignores ACQUIREs of other satypes). With both, what host B
captures is undone by scapy's ESP and Python's zlib into host A's datagrams.
"""
import errno
import socket
import struct
import subprocess
import time
import zlib

from scapy.all import IP, UDP, rdpcap, raw
from scapy.layers.ipsec import ESP, SecurityAssociation

import pfkey as K
from test_pfkey_server import GW_WAN, HOST_B, KEY, gw, ipcomp_sa  # noqa: F401 (fixture)

REQID = 21
NET = "10.9.2.0/24"
PAYLOAD = b"compress me: what repeats shrinks. " * 12

SENDER = r"""
import socket, sys, time
dst, n, gap, payload = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4].encode()
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for i in range(n):
    s.sendto(b"%06d " % i + payload, (dst, 9000))
    time.sleep(gap)
"""


def send(gw, n, gap):
    return subprocess.Popen(["ip", "netns", "exec", gw.ha, "/usr/bin/python3", "-c", SENDER, "10.9.2.5",
                             str(n), str(gap), PAYLOAD.decode()])


def capture_all(gw):
    """Every IP packet on host B's link."""
    cap = gw.tmp / "wire.pcap"
    p = subprocess.Popen(["ip", "netns", "exec", gw.hb, "tcpdump", "-i", gw.vb, "-w", str(cap),
                          "--immediate-mode", "-U", "-B", "8192", "ip"], stderr=subprocess.DEVNULL)
    time.sleep(1)
    return p, cap


def charon_bundle_policy(mtype=K.SPDADD):
    return K.spd(mtype, K.DIR_OUT, "10.1.0.0/24", NET, requests=[
        K.ipsecrequest(108, K.MODE_TUNNEL, K.LEVEL_UNIQUE, REQID, (GW_WAN, HOST_B)),
        K.ipsecrequest(50, K.MODE_TRANSPORT, K.LEVEL_UNIQUE, REQID)])


def test_bundle_over_pfkey_acquires_then_carries_traffic(gw):
    ev = gw.client()
    assert ev.request(K.msg(K.REGISTER, K.ESP)).errno == 0
    q = gw.client()
    rep = q.request(charon_bundle_policy())
    assert rep.errno == 0
    pid = rep.ext[K.POLICY].id
    assert [r["proto"] for r in rep.ext[K.POLICY].requests] == [108, 50]
    assert [r["mode"] for r in rep.ext[K.POLICY].requests] == [K.MODE_TUNNEL, K.MODE_TRANSPORT]
    # SPDUPDATE of the same bundle (charon retries SPDADD answered EEXIST so)
    assert q.request(charon_bundle_policy()).errno == errno.EEXIST
    assert q.request(charon_bundle_policy(K.SPDUPDATE)).errno == 0
    pol = next(p for p in gw.ctl_json("policy")["policies"].values() if p["id"] == pid)
    assert pol["transforms"] == 2
    assert (pol["ipsec"], pol["mode"], pol["ipsec2"], pol["mode2"]) == ("ipcomp", "tunnel", "esp", "transport")
    # only the IPComp SA (its CPI from GETSPI): the bundle is not complete, nothing
    # may leave, not even compressed
    rep = q.request(K.msg(K.GETSPI, K.IPCOMP, [K.address(K.SRC, GW_WAN), K.address(K.DST, HOST_B),
                                               K.spirange(0x100, 0xefff)]))
    assert rep.errno == 0
    cpi = rep.ext[K.SA].spi
    assert q.request(ipcomp_sa(cpi, GW_WAN, HOST_B, REQID, mtype=K.UPDATE)).errno == 0
    ev.drain()
    dump, cap = capture_all(gw)
    sender = send(gw, 120, 0.01)
    acq = ev.wait_for(lambda m: m.type == K.ACQUIRE)
    assert acq.pid == 0 and acq.satype == K.ESP
    assert acq.ext[K.POLICY].id == pid and acq.ext[K.POLICY].dir == K.DIR_OUT
    assert acq.ext[K.SRC].addr == GW_WAN and acq.ext[K.DST].addr == HOST_B
    acqs = [time.time()]
    while sender.poll() is None:
        try:
            m = ev.recv(0.2)
        except socket.timeout:
            continue
        if m.type == K.ACQUIRE:
            assert m.ext[K.POLICY].id == pid
            acqs.append(time.time())
    assert sender.wait() == 0
    # one ACQUIRE per policy at a time (acquire_retry_s: 2 s, less what the first
    # one's delivery was late on a loaded machine), as for a single SA
    assert all(b - a >= 1.0 for a, b in zip(acqs, acqs[1:])), acqs
    assert gw.port_stats()["lan"]["drop_no_sa"] > 20
    # the ESP SA, in transport mode over the IPComp tunnel's outer header
    assert q.request(K.gcm_add(0x8101, GW_WAN, HOST_B, REQID, KEY, replay=0, mode=K.MODE_TRANSPORT)).errno == 0
    sender = send(gw, 100, 0.01)
    assert sender.wait(timeout=30) == 0
    time.sleep(0.5)
    dump.send_signal(2)
    dump.wait(timeout=10)
    wire = rdpcap(str(cap))
    out = [p for p in wire if IP in p and p[IP].src == GW_WAN]
    esp = [p for p in out if ESP in p and p[ESP].spi == 0x8101]
    assert esp and len(esp) == len(out)   # nothing else left: no IPComp alone, nothing in clear
    assert len(esp) >= 50
    seqs = [p[ESP].seq for p in esp]
    assert seqs == sorted(set(seqs)) and seqs[0] == 1
    sa = SecurityAssociation(ESP, spi=0x8101, crypt_algo="AES-GCM", crypt_key=KEY)
    seen = set()
    for p in esp:
        assert (p[IP].src, p[IP].dst) == (GW_WAN, HOST_B)
        plain = sa.decrypt(IP(raw(p[IP])))        # transport ESP: the IPComp tunnel's outer header
        assert (plain.src, plain.dst, plain.proto) == (GW_WAN, HOST_B, 108)
        body = raw(plain)[20:]
        nh, flags, got_cpi = struct.unpack("!BBH", body[:4])
        assert (nh, flags, got_cpi) == (4, 0, cpi)
        inner = IP(zlib.decompress(body[4:], wbits=-15))
        assert (inner.src, inner.dst) == ("10.1.0.2", "10.9.2.5")
        assert raw(inner[UDP].payload)[7:] == PAYLOAD
        seen.add(raw(inner[UDP].payload)[:6])
        assert len(body) < len(raw(inner))           # it did get smaller
    assert len(seen) == len(esp)
    sas = {int(s["spi"], 16): s for s in gw.ctl_json("sa")["sas"].values()}
    # every packet the ESP SA protected went through the IPComp SA first
    assert sas[0x8101]["packets"] == sas[cpi]["packets"] >= len(esp)


RECEIVER = r"""
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", 9000))
s.settimeout(float(sys.argv[1]))
print("ready", flush=True)
try:
    while True:
        print(s.recv(4096).hex(), flush=True)
except socket.timeout:
    pass
"""

RAW_SENDER = r"""
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
for h in sys.argv[2:]:
    s.sendto(bytes.fromhex(h), (sys.argv[1], 0))
    time.sleep(0.05)
"""


def charon_inbound_policy(direction):
    """charon's inbound side of the bundle: the IPComp request at level use."""
    return K.spd(K.SPDADD, direction, NET, "10.1.0.0/24", requests=[
        K.ipsecrequest(108, K.MODE_TUNNEL, K.LEVEL_USE, REQID, (HOST_B, GW_WAN)),
        K.ipsecrequest(50, K.MODE_TRANSPORT, K.LEVEL_UNIQUE, REQID)])


def test_bundle_over_pfkey_accepts_the_peers_layers(gw):
    """Host B sends what a Linux peer of charon sends: outer IP / ESP (transport)
    / IPComp / inner IP, and the uncompressed form (IP-in-IP inside ESP), built
    by scapy and zlib; both reach host A. An IPComp packet without ESP is
    refused by the inbound check and counted on the IPComp SA."""
    q = gw.client()
    for direction in (K.DIR_FWD, K.DIR_IN):
        assert q.request(charon_inbound_policy(direction)).errno == 0
    rep = q.request(K.msg(K.GETSPI, K.ESP, [K.address(K.SRC, HOST_B), K.address(K.DST, GW_WAN)]))
    spi = rep.ext[K.SA].spi
    assert q.request(K.gcm_add(spi, HOST_B, GW_WAN, REQID, KEY, mtype=K.UPDATE,
                               mode=K.MODE_TRANSPORT)).errno == 0
    rep = q.request(K.msg(K.GETSPI, K.IPCOMP, [K.address(K.SRC, HOST_B), K.address(K.DST, GW_WAN),
                                               K.spirange(0x100, 0xefff)]))
    cpi = rep.ext[K.SA].spi
    assert q.request(ipcomp_sa(cpi, HOST_B, GW_WAN, REQID, mtype=K.UPDATE)).errno == 0
    sa = SecurityAssociation(ESP, spi=spi, crypt_algo="AES-GCM", crypt_key=KEY)

    def inner(k):
        return raw(IP(src="10.9.2.5", dst="10.1.0.2", ttl=64) / UDP(sport=5000 + k, dport=9000)
                   / (b"%06d " % k + PAYLOAD))

    def outer(proto, body):
        return IP(raw(IP(src=HOST_B, dst=GW_WAN, ttl=64, proto=proto) / body))

    def deflate(data):
        c = zlib.compressobj(6, zlib.DEFLATED, -15)
        return c.compress(data) + c.flush()

    comp = [outer(108, struct.pack("!BBH", 4, 0, cpi) + deflate(inner(k))) for k in range(3)]
    pkts = [sa.encrypt(comp[0], seq_num=1),
            sa.encrypt(outer(4, inner(1)), seq_num=2),   # not smaller: no IPComp header
            comp[2],                                     # no ESP: refused
            sa.encrypt(comp[2], seq_num=3)]
    rx = subprocess.Popen(["ip", "netns", "exec", gw.ha, "/usr/bin/python3", "-c", RECEIVER, "4"],
                          stdout=subprocess.PIPE, text=True)
    assert rx.stdout.readline().strip() == "ready"
    subprocess.run(["ip", "netns", "exec", gw.hb, "/usr/bin/python3", "-c", RAW_SENDER, GW_WAN]
                   + [raw(p).hex() for p in pkts], check=True)
    got = [bytes.fromhex(line.strip()) for line in rx.stdout]
    assert rx.wait(timeout=10) == 0
    want = [raw(IP(inner(k))[UDP].payload) for k in (0, 1, 2)]
    assert sorted(got) == sorted(want)
    sas = {int(s["spi"], 16): s for s in gw.ctl_json("sa")["sas"].values()}
    assert sas[spi]["packets"] == 3 and sas[spi]["drop_auth"] == 0
    assert sas[cpi]["packets"] == 4 and sas[cpi]["drop_policy"] == 1


def test_bundle_rekey_keeps_the_peers_uncompressed_packets(gw):
    """charon's CHILD_SA rekey of the bundle: new inbound ESP and IPComp SAs (new
    SPI, new CPI, same reqid and peer) are installed, then the old ones deleted.
    The peer's uncompressed packets (IP-in-IP inside ESP) through the new SAs
    still reach host A: the IP-in-IP belongs to the new IPComp SA, which
    deleting the old one does not take away."""
    q = gw.client()
    for direction in (K.DIR_FWD, K.DIR_IN):
        assert q.request(charon_inbound_policy(direction)).errno == 0

    def install():
        spi = q.request(K.msg(K.GETSPI, K.ESP, [K.address(K.SRC, HOST_B), K.address(K.DST, GW_WAN)])
                        ).ext[K.SA].spi
        assert q.request(K.gcm_add(spi, HOST_B, GW_WAN, REQID, KEY, mtype=K.UPDATE,
                                   mode=K.MODE_TRANSPORT)).errno == 0
        cpi = q.request(K.msg(K.GETSPI, K.IPCOMP, [K.address(K.SRC, HOST_B), K.address(K.DST, GW_WAN),
                                                   K.spirange(0x100, 0xefff)])).ext[K.SA].spi
        assert q.request(ipcomp_sa(cpi, HOST_B, GW_WAN, REQID, mtype=K.UPDATE)).errno == 0
        return spi, cpi

    old_spi, old_cpi = install()
    new_spi, new_cpi = install()
    for satype, spi in ((K.ESP, old_spi), (K.IPCOMP, old_cpi)):
        assert q.request(K.msg(K.DELETE, satype, [K.sa(spi), K.address(K.SRC, HOST_B),
                                                  K.address(K.DST, GW_WAN)])).errno == 0
    sa = SecurityAssociation(ESP, spi=new_spi, crypt_algo="AES-GCM", crypt_key=KEY)
    inner = [raw(IP(src="10.9.2.5", dst="10.1.0.2", ttl=64) / UDP(sport=6000 + k, dport=9000)
                 / (b"rekeyed %d " % k + PAYLOAD)) for k in range(2)]
    c = zlib.compressobj(6, zlib.DEFLATED, -15)
    comp = struct.pack("!BBH", 4, 0, new_cpi) + c.compress(inner[1]) + c.flush()
    pkts = [sa.encrypt(IP(raw(IP(src=HOST_B, dst=GW_WAN, ttl=64, proto=4) / inner[0])), seq_num=1),
            sa.encrypt(IP(raw(IP(src=HOST_B, dst=GW_WAN, ttl=64, proto=108) / comp)), seq_num=2)]
    rx = subprocess.Popen(["ip", "netns", "exec", gw.ha, "/usr/bin/python3", "-c", RECEIVER, "3"],
                          stdout=subprocess.PIPE, text=True)
    assert rx.stdout.readline().strip() == "ready"
    subprocess.run(["ip", "netns", "exec", gw.hb, "/usr/bin/python3", "-c", RAW_SENDER, GW_WAN]
                   + [raw(p).hex() for p in pkts], check=True)
    got = [bytes.fromhex(line.strip()) for line in rx.stdout]
    assert rx.wait(timeout=10) == 0
    assert sorted(got) == sorted(raw(IP(p)[UDP].payload) for p in inner)
    sas = {int(s["spi"], 16): s for s in gw.ctl_json("sa")["sas"].values()}
    assert old_spi not in sas and old_cpi not in sas
    assert sas[new_spi]["packets"] == 2 and sas[new_spi]["drop_policy"] == 0
    assert sas[new_cpi]["packets"] == 2
