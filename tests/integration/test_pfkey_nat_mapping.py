"""NAT mapping changes: an authenticated, non-replayed ESP-in-UDP packet of an
inbound SA from a new source port makes dpsecd send SADB_X_NAT_T_NEW_MAPPING
to the registered PF_KEY clients, once per change, laid out as Linux's
af_key.c does (SA, old ADDRESS_SRC + NAT_T_SPORT, new ADDRESS_DST +
NAT_T_DPORT), plus X_SA2 for charon. A forged packet (bad ICV) from a new
port is never acted upon.

    host A ---- [lan] dpsecd [wan] ---- host B (the peer behind a NAT, scapy)
    10.1.0.2   10.1.0.1    10.2.0.1    10.2.0.2
"""
import os
import subprocess

import pfkey as K
from test_pfkey_sa_defaults import GW_WAN, HOST_B, KEY, sa_counters, start  # noqa: F401

NEW_MAPPING = 23  # SADB_X_NAT_T_NEW_MAPPING
SPI = 0x9401

# ESP in UDP from host B: source port argv[3], sequence numbers argv[4]; "forge" corrupts the ICV
SENDER = r"""
import sys, time
from scapy.all import IP, UDP, Raw, send
from scapy.layers.ipsec import SecurityAssociation, ESP
spi, key, sport = int(sys.argv[1], 0), bytes.fromhex(sys.argv[2]), int(sys.argv[3])
sa = SecurityAssociation(ESP, spi=spi, crypt_algo="AES-GCM", crypt_key=key,
                         tunnel_header=IP(src="10.2.0.2", dst="10.2.0.1"),
                         nat_t_header=UDP(sport=sport, dport=4500))
for seq in map(int, sys.argv[4].split(",")):
    inner = IP(src="10.9.1.5", dst="10.1.0.2", ttl=64) / UDP(sport=7, dport=9000) / Raw(b"seq%d" % seq)
    pkt = sa.encrypt(inner, seq_num=seq)
    if sys.argv[5] == "forge":
        raw = bytearray(bytes(pkt))
        raw[-1] ^= 0x55
        pkt = IP(bytes(raw))
    send(pkt, verbose=False)
    time.sleep(0.2)
"""


def send(d, sport, seqs, forge=False):
    subprocess.run(["ip", "netns", "exec", d.hb, "/usr/bin/python3", "-c", SENDER, hex(SPI),
                    KEY.hex(), str(sport), ",".join(map(str, seqs)), "forge" if forge else "ok"],
                   check=True, timeout=60)


def counted(d, n):
    def ok():
        s = sa_counters(d, SPI)
        return s if s["packets"] + s["drop_auth"] + s["drop_replay"] >= n else None
    return d.wait_for(ok, timeout=10, what="the ESP packets counted")


def mappings(listener, timeout):
    return [m for m in listener.drain(timeout) if m.type == NEW_MAPPING]


def test_new_mapping_once_after_authentication_never_for_a_forgery(start):
    d = start({"replay_window": 64})
    c = d.client
    rep = c.request(K.gcm_add(SPI, HOST_B, GW_WAN, 8, KEY, replay=32, encap=(4500, 4500)))
    assert rep.errno == 0
    req = K.ipsecrequest(50, K.MODE_TUNNEL, K.LEVEL_REQUIRE, 8, (HOST_B, GW_WAN))
    assert c.request(K.spd(K.SPDADD, K.DIR_FWD, "10.9.1.0/24", "10.1.0.0/24",
                           requests=[req])).errno == 0
    listener = K.Client(os.path.join(d.sockdir, "pfkey.sock"), pid=4711)
    try:
        assert listener.request(K.msg(K.REGISTER, K.ESP)).errno == 0
        listener.drain(0.3)
        # the SA's own mapping: nothing to report
        send(d, 4500, [1, 2])
        assert counted(d, 2)["packets"] == 2
        assert mappings(listener, 1.5) == []
        # a forged packet from a new port: dropped by the ICV check, never reported
        send(d, 6666, [3], forge=True)
        s = counted(d, 3)
        assert (s["drop_auth"], s["natt_remap"]) == (1, 0)
        assert mappings(listener, 1.5) == []
        # authenticated packets from a new port: exactly one NEW_MAPPING
        send(d, 61000, [4, 5, 6])
        s = counted(d, 6)
        assert (s["packets"], s["natt_remap"]) == (5, 1)
        got = mappings(listener, 2.0)
        assert len(got) == 1, got
        m = got[0]
        assert (m.satype, m.pid, m.errno) == (K.ESP, 0, 0)
        assert m.order[:2] == [K.SA, K.SA2]
        assert m.ext[K.SA].spi == SPI and m.ext[K.SA2].reqid == 8
        assert m.ext[K.SRC].addr == HOST_B and m.ext[K.NATT_SPORT].port == 4500  # old
        assert m.ext[K.DST].addr == HOST_B and m.ext[K.NATT_DPORT].port == 61000  # new
        # a replay from yet another port: lib/ipsec's replay check drops it, no report
        send(d, 62000, [5])
        s = counted(d, 7)
        assert (s["drop_replay"], s["natt_remap"]) == (1, 1)
        assert mappings(listener, 1.5) == []
    finally:
        listener.close()
    assert "NAT mapping of SA 0x9401 changed: port 4500 -> 61000" in d.read_log()


def test_new_mapping_drives_an_update_of_the_encapsulation(start):
    # what a key daemon does with it (charon's update_sa with new_encap): UPDATE with
    # the new NAT-T ports; the SA moves and the new port is its own mapping now
    d = start({"replay_window": 64})
    c = d.client
    assert c.request(K.gcm_add(SPI, HOST_B, GW_WAN, 8, KEY, replay=32,
                               encap=(4500, 4500))).errno == 0
    req = K.ipsecrequest(50, K.MODE_TUNNEL, K.LEVEL_REQUIRE, 8, (HOST_B, GW_WAN))
    assert c.request(K.spd(K.SPDADD, K.DIR_FWD, "10.9.1.0/24", "10.1.0.0/24",
                           requests=[req])).errno == 0
    send(d, 61000, [1, 2])
    assert counted(d, 2)["natt_remap"] == 1
    rep = c.request(K.gcm_add(SPI, HOST_B, GW_WAN, 8, KEY, mtype=K.UPDATE, replay=32,
                              encap=(61000, 4500)))
    assert rep.errno == 0, rep.errno
    s = sa_counters(d, SPI)
    assert s["encap"] == "udp:61000:4500" and s["natt_remap"] == 0  # a new SA object
    send(d, 61000, [3, 4])
    s = counted(d, 2)
    assert (s["packets"], s["natt_remap"], s["drop_replay"]) == (2, 0, 0)

