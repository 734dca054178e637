"""dpsec's PF_KEY extensions (src/pfkey_emul/pfkeyv2_ext.h), as charon's
kernel-pfkey plugin built with that header sends them: SADB_X_EXT_SA_REPLAY
(a window beyond 8 bits), SADB_X_SAFLAGS_ESN, ChaCha20-Poly1305 (dpsec's id
28) and SADB_X_EXT_NEW_ADDRESS_SRC/DST in UPDATE (MOBIKE).

    host A ---- [lan] dpsecd [wan] ---- host B
    10.1.0.2   10.1.0.1    10.2.0.1    10.2.0.2 (and 10.2.0.3 after the move)

The inbound ESP is built by scapy on host B (its own ESN and ChaCha20-Poly1305
code); the outbound ESP is read on host B's wire with tcpdump and scapy.
"""
import signal
import struct
import subprocess
import time

from scapy.all import ESP, IP, rdpcap

import pfkey as K
from test_pfkey_sa_defaults import GW_WAN, HOST_B, SENDER, sa_counters, start  # noqa: F401

# dpsec's extensions (pfkeyv2_ext.h), FreeBSD's ids where they do not collide with Linux's
X_SA_REPLAY, X_NEW_ADDR_SRC, X_NEW_ADDR_DST = 27, 28, 29
SAFLAGS_ESN = 0x400
EALG_CHACHA20POLY1305 = 28
KEY = bytes(range(1, 37))  # ChaCha20 key + 4-byte salt (RFC 7634 §2)
HOST_B2 = "10.2.0.3"

# ESP from host B with the given sequence numbers; ESN (high half 0 in the AAD) unless "noesn"
ESP_SENDER = r"""
import sys, time
from scapy.all import IP, UDP, Raw, send
from scapy.layers.ipsec import SecurityAssociation, ESP
spi, key, esn = int(sys.argv[1], 0), bytes.fromhex(sys.argv[2]), sys.argv[4] == "esn"
sa = SecurityAssociation(ESP, spi=spi, crypt_algo="CHACHA20-POLY1305", crypt_key=key,
                         tunnel_header=IP(src="10.2.0.2", dst="10.2.0.1"), esn_en=esn, esn=0)
for seq in map(int, sys.argv[3].split(",")):
    inner = IP(src="10.9.1.5", dst="10.1.0.2", ttl=64) / UDP(sport=7, dport=9000) / Raw(b"seq%d" % seq)
    send(sa.encrypt(inner, seq_num=seq, esn_en=esn, esn=0), verbose=False)
    time.sleep(0.2)
"""


def chacha_add(spi, src, dst, reqid, window=None, esn=False, mtype=K.ADD):
    """charon's add_sa with pfkeyv2_ext.h: sadb_sa_replay min(window, 32), then SA_REPLAY."""
    exts = [K.sa(spi, enc=EALG_CHACHA20POLY1305, replay=min(window or 0, 32),
                 flags=SAFLAGS_ESN if esn else 0)]
    if window is not None:
        exts.append(K.ext(X_SA_REPLAY, struct.pack("<I", window)))
    exts += [K.sa2(K.MODE_TUNNEL, reqid), K.address(K.SRC, src), K.address(K.DST, dst),
             K.key(K.KEY_ENC, KEY)]
    return K.msg(mtype, K.ESP, exts)


def send_esp(d, spi, seqs, esn=True):
    subprocess.run(["ip", "netns", "exec", d.hb, "/usr/bin/python3", "-c", ESP_SENDER, hex(spi),
                    KEY.hex(), ",".join(map(str, seqs)), "esn" if esn else "noesn"],
                   check=True, timeout=60)


def wait_counted(d, spi, n):
    def counted():
        s = sa_counters(d, spi)
        return s if s["packets"] + s["drop_replay"] + s["drop_auth"] >= n else None
    return d.wait_for(counted, timeout=10, what="every ESP packet counted")


def inbound(d, spi, **kw):
    rep = d.client.request(chacha_add(spi, HOST_B, GW_WAN, 8, **kw))
    assert rep.errno == 0, K.ERRNO.errorcode.get(rep.errno, rep.errno)
    req = K.ipsecrequest(50, K.MODE_TUNNEL, K.LEVEL_REQUIRE, 8, (HOST_B, GW_WAN))
    assert d.client.request(K.spd(K.SPDADD, K.DIR_FWD, "10.9.1.0/24", "10.1.0.0/24",
                                  requests=[req])).errno == 0


def test_window_1024_esn_chacha_in_force(start):
    # 990 is 1010 behind 2000: inside a 1024 window (the 8-bit sadb_sa_replay could
    # say at most 255, the YAML default here is 64), accepted; 990 again: a replay,
    # dropped. 900 is 1100 behind: left of the window, which with ESN means the next
    # 2^32 block (RFC 4303 A2.2): its ICV, computed with high half 0, fails.
    d = start({"replay_window": 64})
    inbound(d, 0x9201, window=1024, esn=True)
    s = sa_counters(d, 0x9201)
    assert s["replay_window"] == 1024 and s["esn"] == 1 and s["enc"] == "chacha20-poly1305"
    send_esp(d, 0x9201, [2000, 990, 900, 990])
    s = wait_counted(d, 0x9201, 4)
    assert (s["packets"], s["drop_replay"], s["drop_auth"]) == (2, 1, 1)
    # ESN in force: the ICV covers the high half of the sequence number (12 bytes
    # of AAD); a packet authenticated without it fails.
    send_esp(d, 0x9201, [2001], esn=False)
    s = wait_counted(d, 0x9201, 5)
    assert (s["packets"], s["drop_auth"]) == (2, 2)


def test_window_1024_without_esn(start):
    # the same window, 32-bit sequence numbers: 900 is a replay-window drop now
    d = start({"replay_window": 64})
    inbound(d, 0x9206, window=1024, esn=False)
    assert sa_counters(d, 0x9206)["esn"] == 0
    send_esp(d, 0x9206, [2000, 990, 900, 990], esn=False)
    s = wait_counted(d, 0x9206, 4)
    assert (s["packets"], s["drop_replay"], s["drop_auth"]) == (2, 2, 0)


def test_replay_of_a_high_bit_sequence_number(start):
    # 1000 & 63 = 40: DPDK 22.11's lib/ipsec keeps the window bit in 32 bits and would
    # accept its replay (990 & 63 = 30 is caught above); dpsec's own window drops it
    d = start({"replay_window": 64})
    inbound(d, 0x9207, window=1024, esn=False)
    send_esp(d, 0x9207, [2000, 1000, 1000], esn=False)
    s = wait_counted(d, 0x9207, 3)
    assert (s["packets"], s["drop_replay"]) == (2, 1)


def test_plain_linux_plugin_keeps_working(start):
    # no SA_REPLAY, no flag: sadb_sa_replay's 32 and 32-bit sequence numbers
    d = start({"replay_window": 64})
    inbound(d, 0x9202, window=None)
    s = sa_counters(d, 0x9202)
    assert s["esn"] == 0 and s["replay_window"] == 64  # sadb_sa_replay 0: the configured one
    rep = d.client.request(K.msg(K.ADD, K.ESP, [
        K.sa(0x9204, enc=EALG_CHACHA20POLY1305, replay=32), K.sa2(K.MODE_TUNNEL, 9),
        K.address(K.SRC, HOST_B), K.address(K.DST, GW_WAN), K.key(K.KEY_ENC, KEY)]))
    assert rep.errno == 0
    assert sa_counters(d, 0x9204)["replay_window"] == 32
    send_esp(d, 0x9202, [5], esn=False)
    assert wait_counted(d, 0x9202, 1)["packets"] == 1


def test_window_beyond_65536_refused(start):
    d = start({})
    rep = d.client.request(chacha_add(0x9205, HOST_B, GW_WAN, 8, window=65537))
    assert rep.errno == K.ERRNO.EINVAL
    assert d.client.request(chacha_add(0x9205, HOST_B, GW_WAN, 8, window=4096)).errno == 0
    assert sa_counters(d, 0x9205)["replay_window"] == 4096


def wire_esp(d, spi, n):
    """Send n UDP datagrams from host A into the tunnel; (outer dst, seq) of SA spi's ESP on B's wire."""
    cap = d.tmp / f"mobike-{spi:x}-{time.monotonic_ns()}.pcap"
    dump = subprocess.Popen(["ip", "netns", "exec", d.hb, "tcpdump", "-i", d.vb, "-w", str(cap),
                             "--immediate-mode", "-U", "esp"], stderr=subprocess.DEVNULL)
    time.sleep(1)
    subprocess.run(["ip", "netns", "exec", d.ha, "/usr/bin/python3", "-c", SENDER, "10.9.1.5",
                    str(n), "nodf"], check=True, timeout=30)
    time.sleep(0.5)
    dump.send_signal(signal.SIGINT)
    dump.wait(timeout=10)
    return [(p[IP].dst, p[ESP].seq) for p in rdpcap(str(cap)) if ESP in p and p[ESP].spi == spi]


def test_update_new_address_moves_the_sa(start):
    # charon's MOBIKE update_sa: GET, then UPDATE with the GET reply's extensions and
    # NEW_ADDRESS_DST; then SPDUPDATE of the policy with the new tunnel endpoints.
    d = start({})
    subprocess.run(["ip", "netns", "exec", d.hb, "ip", "addr", "add", HOST_B2 + "/24", "dev", d.vb],
                   check=True)
    c = d.client
    spi = 0x9301
    assert c.request(chacha_add(spi, GW_WAN, HOST_B, 5, esn=True)).errno == 0
    req = K.ipsecrequest(50, K.MODE_TUNNEL, K.LEVEL_REQUIRE, 5, (GW_WAN, HOST_B))
    assert c.request(K.spd(K.SPDADD, K.DIR_OUT, "10.1.0.0/24", "10.9.1.0/24",
                           requests=[req])).errno == 0
    before = wire_esp(d, spi, 5)
    assert [dst for dst, _ in before] == [HOST_B] * 5
    got = c.request(K.msg(K.GET, K.ESP, [K.sa(spi), K.address(K.SRC, GW_WAN),
                                         K.address(K.DST, HOST_B)]))
    assert got.errno == 0
    assert got.ext[K.SA].flags & SAFLAGS_ESN  # charon copies it back into UPDATE
    upd = K.msg(K.UPDATE, K.ESP, [
        K.sa(spi, enc=EALG_CHACHA20POLY1305, replay=0, flags=got.ext[K.SA].flags),
        K.sa2(K.MODE_TUNNEL, 5), K.address(K.SRC, GW_WAN), K.address(K.DST, HOST_B),
        K.key(K.KEY_ENC, KEY), K.address(X_NEW_ADDR_DST, HOST_B2)])
    rep = c.request(upd)
    assert rep.errno == 0, K.ERRNO.errorcode.get(rep.errno, rep.errno)
    req = K.ipsecrequest(50, K.MODE_TUNNEL, K.LEVEL_REQUIRE, 5, (GW_WAN, HOST_B2))
    assert c.request(K.spd(K.SPDUPDATE, K.DIR_OUT, "10.1.0.0/24", "10.9.1.0/24",
                           requests=[req])).errno == 0
    assert sa_counters(d, spi)["dst"] == HOST_B2
    # the old endpoint answers ESRCH now; the new one is the SA, ESN kept
    assert c.request(K.msg(K.GET, K.ESP, [K.sa(spi), K.address(K.SRC, GW_WAN),
                                          K.address(K.DST, HOST_B)])).errno == K.ERRNO.ESRCH
    assert sa_counters(d, spi)["esn"] == 1 and sa_counters(d, spi)["dir"] == "out"
    after = wire_esp(d, spi, 5)
    assert [dst for dst, _ in after] == [HOST_B2] * 5
    # the sequence numbers go on past the old ones (the peer's window would drop a restart)
    assert min(s for _, s in after) > max(s for _, s in before)
    # an address move to the other family, or to a direction change, is refused
    bad = K.msg(K.UPDATE, K.ESP, [
        K.sa(spi, enc=EALG_CHACHA20POLY1305), K.sa2(K.MODE_TUNNEL, 5),
        K.address(K.SRC, GW_WAN), K.address(K.DST, HOST_B2), K.key(K.KEY_ENC, KEY),
        K.address(X_NEW_ADDR_DST, GW_WAN)])
    assert c.request(bad).errno == K.ERRNO.EINVAL


def test_iked_style_spd_messages_with_sa2_accepted(start):
    # openiked puts SADB_X_EXT_SA2 in SPDUPDATE and SPDDELETE (and sets satype ESP):
    # Linux ignores it; dpsecd refused these flows with EINVAL before issue 14
    d = start({})
    c = d.client
    req = K.ipsecrequest(50, K.MODE_TUNNEL, K.LEVEL_REQUIRE, 0, (GW_WAN, HOST_B))
    sel = [K.address(K.SRC, "10.1.0.0", 24), K.address(K.DST, "10.9.1.0", 24)]
    for mtype in (K.SPDUPDATE, K.SPDADD):
        rep = c.request(K.msg(mtype, K.ESP, sel + [K.sa2(K.MODE_TUNNEL, 0),
                                                   K.policy(K.DIR_OUT, requests=[req])]))
        assert rep.errno == (0 if mtype == K.SPDUPDATE else K.ERRNO.EEXIST)
    pols = [p for p in d.ctl_json("policy")["policies"].values() if p["origin"] == "pfkey"]
    assert [(p["dir"], p["src"], p["dst"]) for p in pols] == [("out", "10.1.0.0/24", "10.9.1.0/24")]
    rep = c.request(K.msg(K.SPDDELETE, K.ESP, sel + [K.sa2(K.MODE_TUNNEL, 0), K.policy(K.DIR_OUT)]))
    assert rep.errno == 0
    assert not [p for p in d.ctl_json("policy")["policies"].values() if p["origin"] == "pfkey"]
