"""SPDUPDATE of a policy in force, under traffic: its packets never leave in clear.

charon installs each policy of a trap connection at its "routed" priority, and when the CHILD_SA
comes up moves it to its installed priority by SADB_X_SPDUPDATE: another rank, so another rule in
the SPD. dpsecd emptied the old rule's slot at once (what workers read) and put the new rule in the
recent-changes classifier that reaches the workers with the next publish: in between the policy's
packets matched nothing and left in clear under def_policy bypass (seen on the internet link of
test_strongswan_e2e.py: the second ping of the trap test, in clear). A priority change now keeps
the old rule matching, with the policy's verdict, until the publish that brings the new one
(spd_live.c: rerank).

Topology and client as in test_pfkey_server.py; a paced UDP flow from host A to 10.9.1.5 runs
while the policy's priority flips back and forth; host B's capture must hold none of it in clear.
"""
import time

import pfkey as K
from scapy.all import ESP, IP, UDP
from test_pfkey_incremental import fill
from test_pfkey_server import GW_WAN, HOST_B, KEY, capture, gw, out_policy, sas_by_spi, send_udp  # noqa: F401

N = 3000


def flip_under_traffic(gw, q, flips):
    dump = capture(gw)
    tx = send_udp(gw, "10.9.1.5", N, 0.001)
    time.sleep(0.5)
    for i in range(flips):
        prio = 1000 if i % 2 == 0 else 2000
        assert q.request(out_policy(level=K.LEVEL_REQUIRE, priority=prio, mtype=K.SPDUPDATE)).errno == 0
        time.sleep(0.05)
    tx.wait(timeout=120)
    time.sleep(0.5)
    return dump.stop()


def clear(wire):
    return [p for p in wire if UDP in p and IP in p and p[IP].dst.startswith("10.9.")]


def test_priority_change_by_spdupdate_never_lets_a_packet_out_in_clear(gw):
    q = gw.client()
    # routed priority first, as charon's trap policy; its SA
    assert q.request(out_policy(level=K.LEVEL_REQUIRE, priority=2000)).errno == 0
    assert q.request(K.gcm_add(0x8101, GW_WAN, HOST_B, 5, KEY, replay=0)).errno == 0
    wire = flip_under_traffic(gw, q, 30)
    assert not clear(wire), f"{len(clear(wire))} of {N} datagrams left in clear"
    # the flow went through the policy's SA meanwhile (a loaded machine loses some of a paced
    # flow at the senders and the af_packet rings, whatever the SPD does: PERFORMANCE.md)
    assert sas_by_spi(gw)[0x8101]["packets"] >= N // 2
    assert any(ESP in p and p[ESP].spi == 0x8101 for p in wire)


def test_priority_change_of_a_policy_in_the_main_classifier(gw):
    q = gw.client()
    fill(q)  # 1500 others: the background compilation takes the policy into the main classifier
    assert q.request(out_policy(level=K.LEVEL_REQUIRE, priority=2000)).errno == 0
    assert q.request(K.gcm_add(0x8102, GW_WAN, HOST_B, 5, KEY, replay=0)).errno == 0
    time.sleep(2)
    wire = flip_under_traffic(gw, q, 10)
    assert not clear(wire), f"{len(clear(wire))} of {N} datagrams left in clear"
    assert sas_by_spi(gw)[0x8102]["packets"] >= N // 2
