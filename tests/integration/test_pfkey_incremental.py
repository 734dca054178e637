"""Changes over PF_KEY are in force when their reply comes, with thousands of
policies installed (the SPD's recent-changes classifier in front of the main
one, compiled in the background; the inbound SAD changed in place):

* a trap policy (IPsec required, no SA yet) acknowledged: the first packets
  that match it are dropped and ACQUIREd, never sent in clear;
* an SA added for it: the very next packets leave as ESP of that SA;
* a policy deleted while in the main classifier stops matching at once, and
  the next policy in rank order takes over at once;
* an inbound SA added: the very next ESP packets for it are decrypted and
  forwarded (ESP built by the test's own implementation, test_esp_pcap.py).

Topology and client as in test_pfkey_server.py. The traffic is held back by a
gated sender until the reply arrived, so that every packet counted was sent
after it.
"""
import json
import struct
import subprocess
import time

from scapy.all import ESP, IP, UDP, raw

import pfkey as K
from dpsec import sh
from test_esp_pcap import EspSA
from test_pfkey_server import GW_WAN, HOST_B, KEY, capture, gw, out_policy, sas_by_spi  # noqa: F401

GATED = r"""
import socket, sys, time
dst, n = sys.argv[1], int(sys.argv[2])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for k, line in enumerate(sys.stdin):
    for i in range(n):
        s.sendto(b"plaintext-%02d-%06d" % (k, i), (dst, 9000))
        time.sleep(0.001)  # paced: the capture keeps up
    print("sent", flush=True)
"""

FILLER = 1500
# enough that compiling the main classifiers takes hundreds of milliseconds:
# a policy added after them stays in the recent level that long
BIG_FILLER = 30000


class Gated:
    def __init__(self, gw, dst, n):
        self.n = n
        self.p = subprocess.Popen(["ip", "netns", "exec", gw.ha, "/usr/bin/python3", "-c", GATED, dst,
                                   str(n)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def fire(self):
        self.p.stdin.write("go\n")
        self.p.stdin.flush()
        assert self.p.stdout.readline().strip() == "sent"

    def close(self):
        self.p.stdin.close()
        self.p.wait(timeout=10)


def fill(c, n=FILLER, window=256):
    """n policies that match none of the test's traffic (172.16/12 by /28), up to window in flight."""
    msgs = []
    for i in range(n):
        net = f"172.{16 + (i >> 12)}.{(i >> 4) & 255}.{(i & 15) << 4}/28"
        m = bytearray(K.spd(K.SPDADD, K.DIR_OUT, "10.1.0.0/24", net, ptype=K.POL_NONE, priority=500))
        struct.pack_into("=II", m, 8, 1000000 + i, c.pid)
        msgs.append(bytes(m))
    sent = done = 0
    while done < n:
        while sent < n and sent - done < window:
            c.send(msgs[sent])
            sent += 1
        m = c.recv()
        if m.pid == c.pid and m.seq >= 1000000:
            assert m.errno == 0
            done += 1


def stop(dump):
    time.sleep(0.5)
    return dump.stop()


def cleartext(wire, prefix="10.9."):
    return [p for p in wire if UDP in p and IP in p and p[IP].dst.startswith(prefix)]


def test_trap_policy_then_sa_are_in_force_when_acknowledged(gw):
    ev = gw.client()
    assert ev.request(K.msg(K.REGISTER, K.ESP)).errno == 0
    q = gw.client()
    fill(q, BIG_FILLER)
    dump = capture(gw)
    tx = Gated(gw, "10.9.1.5", 50)
    lan0 = gw.port_stats()["lan"]["drop_no_sa"]
    ev.drain()
    # the trap policy, and at once the traffic it matches, while the policy is
    # still in the recent level (the main classifiers of 30 000 are compiling)
    pid = q.request(out_policy(level=K.LEVEL_REQUIRE)).ext[K.POLICY].id
    tx.fire()
    # the last of 1 + BIG_FILLER + 1 in the store: one telemetry page from there
    page = json.loads(gw.ctl("raw", "/dpsec/policy", str(BIG_FILLER + 1)).stdout)
    assert page["/dpsec/policy"][f"policy{pid}"]["classifier"] == "recent"
    acq = ev.wait_for(lambda m: m.type == K.ACQUIRE)
    assert acq.ext[K.POLICY].id == pid
    assert gw.port_stats()["lan"]["drop_no_sa"] - lan0 == 50
    # its SA, and at once the traffic: every packet leaves as ESP of it
    assert q.request(K.gcm_add(0x8001, GW_WAN, HOST_B, 5, KEY, replay=0)).errno == 0
    tx.fire()
    tx.close()
    wire = stop(dump)
    assert not cleartext(wire)
    # all 50 protected by it (its counter, and sequence numbers 1..50 on the wire)
    assert sas_by_spi(gw)[0x8001]["packets"] == 50
    esp = [p for p in wire if ESP in p and p[ESP].spi == 0x8001]
    assert esp and set(p[ESP].seq for p in esp) <= set(range(1, 51))
    assert len(esp) >= 45


def test_deleted_policy_stops_matching_at_once(gw):
    q = gw.client()
    fill(q)
    # narrow bypass before broad discard: 10.9.1.0/24 passes, the rest of 10.9/16 does not
    narrow = q.request(K.spd(K.SPDADD, K.DIR_OUT, "10.1.0.0/24", "10.9.1.0/24", ptype=K.POL_NONE,
                             priority=10)).ext[K.POLICY].id
    broad = q.request(K.spd(K.SPDADD, K.DIR_OUT, "10.1.0.0/24", "10.9.0.0/16", ptype=K.POL_DISCARD,
                            priority=20)).ext[K.POLICY].id
    time.sleep(2)  # long enough for the background compilation to take both into the main classifier
    dump = capture(gw)
    tx = Gated(gw, "10.9.1.5", 40)
    tx.fire()  # resolves host B (ARP) on the way: not counted
    time.sleep(0.5)
    tx.fire()
    time.sleep(0.5)
    drops0 = gw.port_stats()["lan"]["drop_policy"]
    # the narrow bypass deleted: the broad discard takes over at once
    assert q.request(K.msg(K.SPDDELETE2, K.UNSPEC, [K.policy(K.DIR_OUT, pid=narrow)])).errno == 0
    tx.fire()
    assert gw.port_stats()["lan"]["drop_policy"] - drops0 == 40
    # the broad discard deleted too: nothing matches, the default lets them pass
    assert q.request(K.msg(K.SPDDELETE2, K.UNSPEC, [K.policy(K.DIR_OUT, pid=broad)])).errno == 0
    tx.fire()
    tx.close()
    wire = stop(dump)
    got = [bytes(p[UDP].payload)[:12] for p in cleartext(wire, "10.9.1.")]
    assert got.count(b"plaintext-01") >= 36  # before the deletions (a capture may miss a few)
    assert got.count(b"plaintext-02") == 0  # after the first
    assert got.count(b"plaintext-03") >= 36  # after the second
    assert gw.port_stats()["lan"]["drop_policy"] - drops0 == 40


ESP_SENDER = r"""
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, 50)
pkts = [bytes.fromhex(l) for l in sys.stdin.readline().split()]
sys.stdin.readline()  # the go
for p in pkts:
    s.sendto(p, ("10.2.0.1", 0))
print("sent", flush=True)
"""


def test_inbound_sa_decrypts_the_next_packets(gw):
    q = gw.client()
    fill(q)
    fwd = K.spd(K.SPDADD, K.DIR_FWD, "10.9.1.0/24", "10.1.0.0/24",
                requests=[K.ipsecrequest(50, K.MODE_TUNNEL, K.LEVEL_REQUIRE, 6, (HOST_B, GW_WAN))])
    assert q.request(fwd).errno == 0
    sa = EspSA(0x9001, "aes-gcm-128", KEY)
    inner = [raw(IP(src="10.9.1.5", dst="10.1.0.2", ttl=64) / UDP(sport=5000, dport=9000) / (b"in-%03d" % i))
             for i in range(30)]
    esp = [sa.encrypt(i + 1, p, 4) for i, p in enumerate(inner)]
    sh(["ping", "-c", "1", "-W", "2", GW_WAN], ns=gw.hb, check=False)  # ARP for the gateway first
    tx = subprocess.Popen(["ip", "netns", "exec", gw.hb, "/usr/bin/python3", "-c", ESP_SENDER],
                          stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    tx.stdin.write(" ".join(e.hex() for e in esp) + "\n")
    tx.stdin.flush()
    assert q.request(K.gcm_add(0x9001, HOST_B, GW_WAN, 6, KEY)).errno == 0
    tx.stdin.write("go\n")
    tx.stdin.flush()
    assert tx.stdout.readline().strip() == "sent"
    tx.wait(timeout=10)
    deadline = time.time() + 5
    while time.time() < deadline and sas_by_spi(gw)[0x9001]["packets"] < 30:
        time.sleep(0.1)
    assert sas_by_spi(gw)[0x9001]["packets"] == 30
    assert gw.port_stats()["wan"]["drop_unknown_spi"] == 0


FLOOD = r"""
import socket, sys, time
dst, secs = sys.argv[1], float(sys.argv[2])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
end, i = time.time() + secs, 0
while time.time() < end:
    s.sendto(b"plaintext-%08d" % i, (dst, 9000))
    i += 1
print(i, flush=True)
"""


def test_policy_priority_update_never_lets_its_traffic_out_in_clear(gw):
    """strongSwan turns its trap policies into the CHILD_SA's with an SPDUPDATE that
    changes only their priority (and back when the CHILD_SA goes). Another priority is
    another rule: the new one is in force when the reply comes, and the old one must
    keep matching until then; a moment with neither would send the policy's traffic
    under def_policy (bypass: in clear). Unpaced traffic through a hundred updates,
    every packet ESP of the SA."""
    q = gw.client()
    assert q.request(out_policy(level=K.LEVEL_REQUIRE, priority=2000)).errno == 0
    assert q.request(K.gcm_add(0x8101, GW_WAN, HOST_B, 5, KEY, replay=0)).errno == 0
    sh(["ping", "-c", "1", "-W", "2", "10.9.1.5"], ns=gw.ha, check=False)  # ARP for host B
    dump = capture(gw)
    lan0, esp0 = gw.port_stats()["lan"], sas_by_spi(gw)[0x8101]["packets"]
    tx = subprocess.Popen(["ip", "netns", "exec", gw.ha, "/usr/bin/python3", "-c", FLOOD, "10.9.1.5",
                           "6"], stdout=subprocess.PIPE, text=True)
    time.sleep(0.5)
    for i in range(100):
        prio = 1000 if i % 2 == 0 else 2000
        assert q.request(out_policy(level=K.LEVEL_REQUIRE, mtype=K.SPDUPDATE, priority=prio)).errno == 0
        time.sleep(0.02)
    sent = int(tx.communicate(timeout=30)[0])
    wire = stop(dump)
    clear = cleartext(wire)
    assert not clear, f"{len(clear)} of {sent} packets left in clear, the first: {clear[0].summary()}"
    # every packet dpsecd took in left as ESP (on a loaded host the kernel may
    # drop part of an unpaced flood before dpsecd sees it: that is not counted)
    lan = gw.port_stats()["lan"]
    d = {k: lan[k] - lan0[k] for k in lan}
    took = d["rx_packets"] - d["punt_kernel"] - d["arp_nd_in"]
    esp = sas_by_spi(gw)[0x8101]["packets"] - esp0
    assert esp == took and esp > 1000, (esp, took, sent)
