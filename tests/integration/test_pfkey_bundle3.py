"""A three-transform bundle over PF_KEY on the live gateway of
test_pfkey_server.py: SPDADD with three ipsecrequests (IPComp in tunnel mode
with the endpoints, then ESP and AH in transport mode over its outer header,
one reqid), the three SAs added, traffic: outer IP / AH / ESP / IPComp /
inner IP, undone by scapy's AH and ESP and Python's zlib.

Then an SA of the bundle is deleted (PF_KEY DELETE) while host A's datagrams
flow, and added again under a new SPI: what host B captures is only packets
with every layer; every datagram the policy took is accounted for by the
daemon's counters (through the layers, drop_bundle of the SA whose next
layer went away while the packet was in flight, drop_no_sa on the LAN port
once the policy lost its SA); the daemon stays up; once the SA is back,
traffic leaves with every layer again. drop_bundle's window there is the
microseconds between the delete and the policy's rebinding; the last test
reaches it deterministically, through an SA a second policy shares.
"""
import re
import struct
import subprocess
import time
import zlib

import pytest
from scapy.all import IP, UDP, rdpcap, raw
from scapy.layers.ipsec import AH, ESP, SecurityAssociation

import pfkey as K
from test_pfkey_bundle import PAYLOAD
from test_pfkey_server import AH_KEY, GW_WAN, HOST_B, KEY, gw, ipcomp_sa  # noqa: F401 (fixture)

REQID = 31
NET = "10.9.4.0/24"
DST = "10.9.4.5"
ESP_SPI, AH_SPI = 0x8201, 0x8301

SENDER = r"""
import socket, sys, time
dst, n, gap, payload = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4].encode()
first = int(sys.argv[5])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for i in range(first, first + n):
    s.sendto(b"%06d " % i + payload, (dst, 9000))
    if gap:
        time.sleep(gap)
"""


def send(gw, n, gap, dst=DST, first=0):
    """n datagrams from host A, numbered from first, every gap seconds."""
    return subprocess.Popen(["ip", "netns", "exec", gw.ha, "/usr/bin/python3", "-c", SENDER, dst,
                             str(n), str(gap), PAYLOAD.decode(), str(first)])


def capture_all(gw):
    """Every IP packet on host B's link (test_pfkey_bundle's, with tcpdump's
    report kept for stop_capture)."""
    cap = gw.tmp / "wire.pcap"
    with open(gw.tmp / "tcpdump.err", "w") as err:
        p = subprocess.Popen(["ip", "netns", "exec", gw.hb, "tcpdump", "-i", gw.vb, "-w", str(cap),
                              "--immediate-mode", "-U", "-B", "8192", "ip"], stderr=err)
    time.sleep(1)
    return p, cap


def stop_capture(gw, dump, complete=False):
    """Stop tcpdump; complete: it must have missed nothing (a test that counts
    the packets on the wire)."""
    dump.send_signal(2)
    dump.wait(timeout=10)
    report = (gw.tmp / "tcpdump.err").read_text()
    assert not complete or re.search(r"^0 packets dropped by kernel$", report, re.M), report


def three_policy():
    return K.spd(K.SPDADD, K.DIR_OUT, "10.1.0.0/24", NET, requests=[
        K.ipsecrequest(108, K.MODE_TUNNEL, K.LEVEL_UNIQUE, REQID, (GW_WAN, HOST_B)),
        K.ipsecrequest(50, K.MODE_TRANSPORT, K.LEVEL_UNIQUE, REQID),
        K.ipsecrequest(51, K.MODE_TRANSPORT, K.LEVEL_UNIQUE, REQID)])


def ah_add(spi):
    """charon's ADD of an AH SA (HMAC-SHA2-256-128), transport over the tunnel's header."""
    return K.msg(K.ADD, K.AH, [K.sa(spi, auth=K.AALG_SHA256, enc=0, replay=0),
                               K.sa2(K.MODE_TRANSPORT, REQID), K.address(K.SRC, GW_WAN),
                               K.address(K.DST, HOST_B), K.lifetime(K.LT_SOFT), K.lifetime(K.LT_HARD),
                               K.key(K.KEY_AUTH, AH_KEY)])


def delete(satype, spi):
    return K.msg(K.DELETE, satype, [K.sa(spi), K.address(K.SRC, GW_WAN), K.address(K.DST, HOST_B)])


def install(gw, q, ah=True):
    """The policy, IPComp (CPI from GETSPI), ESP and, if ah, AH: the CPI."""
    rep = q.request(three_policy())
    assert rep.errno == 0
    assert [r["proto"] for r in rep.ext[K.POLICY].requests] == [108, 50, 51]
    assert [r["mode"] for r in rep.ext[K.POLICY].requests] == [K.MODE_TUNNEL, K.MODE_TRANSPORT,
                                                               K.MODE_TRANSPORT]
    rep = q.request(K.msg(K.GETSPI, K.IPCOMP, [K.address(K.SRC, GW_WAN), K.address(K.DST, HOST_B),
                                               K.spirange(0x100, 0xefff)]))
    assert rep.errno == 0
    cpi = rep.ext[K.SA].spi
    assert q.request(ipcomp_sa(cpi, GW_WAN, HOST_B, REQID, mtype=K.UPDATE)).errno == 0
    assert q.request(K.gcm_add(ESP_SPI, GW_WAN, HOST_B, REQID, KEY, replay=0,
                               mode=K.MODE_TRANSPORT)).errno == 0
    if ah:
        assert q.request(ah_add(AH_SPI)).errno == 0
    return cpi


def undo(p, cpi, esp_spi=ESP_SPI, dst=DST):
    """AH (ICV verified) then ESP (GCM tag verified) by scapy, IPComp by zlib:
    the inner datagram's payload."""
    ah_spi = p[AH].spi
    ah = SecurityAssociation(AH, spi=ah_spi, auth_algo="SHA2-256-128", auth_key=AH_KEY)
    esp = SecurityAssociation(ESP, spi=esp_spi, crypt_algo="AES-GCM", crypt_key=KEY)
    outer = IP(raw(p[IP]))
    assert (outer.src, outer.dst, outer.proto) == (GW_WAN, HOST_B, 51)
    mid = IP(raw(ah.decrypt(outer)))
    assert mid.proto == 50 and mid[ESP].spi == esp_spi
    plain = esp.decrypt(mid)
    assert (plain.src, plain.dst, plain.proto) == (GW_WAN, HOST_B, 108)
    body = raw(plain)[20:]
    nh, flags, got_cpi = struct.unpack("!BBH", body[:4])
    assert (nh, flags, got_cpi) == (4, 0, cpi)
    inner = IP(zlib.decompress(body[4:], wbits=-15))
    assert (inner.src, inner.dst) == ("10.1.0.2", dst)
    assert raw(inner[UDP].payload)[7:] == PAYLOAD
    return raw(inner[UDP].payload)[:6]


def esp_after_ah(p):
    """The SPI and sequence number of the ESP header after AH (RFC 4302 2.2:
    AH's length in 32-bit words, minus 2)."""
    ah = raw(p[AH])
    return struct.unpack("!LL", ah[(ah[1] + 2) * 4:][:8])


def esp_spi(p):
    return esp_after_ah(p)[0]


def esp_seq(p):
    return esp_after_ah(p)[1]


def neighbours_known(gw):
    """Host A knows the gateway and the gateway host B before the traffic (a
    ping across, in clear: no policy matches it), so that no datagram waits
    for ARP on either side."""
    subprocess.run(["ip", "netns", "exec", gw.ha, "ping", "-c", "2", "-i", "0.2", "-W", "1", HOST_B],
                   capture_output=True)
    gw.wait_for(lambda: any(n["address"] == HOST_B and n["state"] == "reachable"
                            for n in gw.neighbours()), timeout=30, what="host B's address")


def out_totals(gw, proto):
    """Outbound packets of every SA of proto, deleted ones included."""
    return gw.ctl_json("stats", proto)[proto]["out_packets"]


def policy_hits(gw):
    return next(p for p in gw.ctl_json("policy")["policies"].values()
                if p["reqid"] == REQID and p["dir"] == "out" and p["transforms"] == 3)["hits"]


def sas(gw):
    return {int(s["spi"], 16): s for s in gw.ctl_json("sa")["sas"].values()}


def ours(wire):
    return [p for p in wire if IP in p and p[IP].src == GW_WAN]


def test_three_transforms_over_pfkey(gw):
    """With AH missing nothing leaves (drop_no_sa, ACQUIRE of satype AH, the
    last transform); with the three SAs every datagram leaves as AH / ESP /
    IPComp, the same sequence numbers in AH and ESP from 1, undone byte for
    byte, each layer's SA counting every datagram the policy took."""
    ev = gw.client()
    assert ev.request(K.msg(K.REGISTER, K.AH)).errno == 0
    q = gw.client()
    cpi = install(gw, q, ah=False)
    pol = next(p for p in gw.ctl_json("policy")["policies"].values() if p["reqid"] == REQID)
    assert pol["transforms"] == 3
    assert (pol["ipsec"], pol["ipsec2"], pol["ipsec3"]) == ("ipcomp", "esp", "ah")
    assert (pol["mode"], pol["mode2"], pol["mode3"]) == ("tunnel", "transport", "transport")
    neighbours_known(gw)
    ev.drain()
    dump, cap = capture_all(gw)
    before = gw.port_stats()["lan"]["drop_no_sa"]
    assert send(gw, 30, 0.01).wait(timeout=30) == 0
    acq = ev.wait_for(lambda m: m.type == K.ACQUIRE)
    assert acq.satype == K.AH and acq.ext[K.POLICY].dir == K.DIR_OUT
    gw.wait_for(lambda: policy_hits(gw) == 30, what="the 30 datagrams")
    no_sa = gw.port_stats()["lan"]["drop_no_sa"] - before
    assert no_sa == 30 and sas(gw)[cpi]["packets"] == 0
    assert q.request(ah_add(AH_SPI)).errno == 0
    assert send(gw, 60, 0.01).wait(timeout=30) == 0
    time.sleep(0.5)
    stop_capture(gw, dump)
    out = ours(rdpcap(str(cap)))
    assert len(out) >= 30 and all(AH in p for p in out)   # nothing with fewer layers
    ids = [undo(p, cpi) for p in out]
    seqs = [p[AH].seq for p in out]
    assert [esp_seq(p) for p in out] == seqs
    assert seqs == sorted(set(seqs)) and seqs[0] == 1
    assert ids == sorted(set(ids))                          # in order, none twice
    s = sas(gw)
    took = policy_hits(gw) - 30
    assert s[cpi]["packets"] == s[ESP_SPI]["packets"] == s[AH_SPI]["packets"] == took >= len(out)


@pytest.mark.parametrize("gone", ["ah", "esp"])
def test_sa_of_a_bundle_deleted_under_traffic(gw, gone):
    """The outermost (AH) or the middle (ESP) SA is deleted while host A sends
    (a datagram a millisecond), then added again with a new SPI. On the wire:
    only AH / ESP / IPComp packets, each undone by scapy and zlib, the last
    ones through the new SA. Accounting, exact, from the daemon's counters
    (the wire may miss packets on a loaded host): every datagram the policy
    took went through IPComp or is a drop_no_sa of the LAN port (at least 100:
    the policy had no SA for a while); every packet IPComp finished went on to
    ESP or is IPComp's drop_bundle, every one ESP finished on to AH or is
    ESP's. The daemon stays up (the fixture asserts its exit status 0)."""
    q = gw.client()
    cpi = install(gw, q)
    neighbours_known(gw)
    dump, cap = capture_all(gw)
    no_sa0 = gw.port_stats()["lan"]["drop_no_sa"]
    sender = send(gw, 2000, 0.001)
    # delete once traffic flows through the bundle, re-add once the policy's
    # packets are being dropped for want of an SA
    gw.wait_for(lambda: sas(gw)[cpi]["packets"] >= 200, timeout=60, what="traffic through the bundle")
    satype, spi = (K.AH, AH_SPI) if gone == "ah" else (K.ESP, ESP_SPI)
    assert q.request(delete(satype, spi)).errno == 0
    assert spi not in sas(gw)
    gw.wait_for(lambda: gw.port_stats()["lan"]["drop_no_sa"] - no_sa0 >= 100, timeout=60,
                what="drop_no_sa")
    assert sender.poll() is None            # the sender outlived the gap
    new_spi = spi + 0x10
    if gone == "ah":
        assert q.request(ah_add(new_spi)).errno == 0
    else:
        assert q.request(K.gcm_add(new_spi, GW_WAN, HOST_B, REQID, KEY, replay=0,
                                   mode=K.MODE_TRANSPORT)).errno == 0
    assert sender.wait(timeout=60) == 0
    # the tail, paced, through the new SA
    assert send(gw, 20, 0.01, first=100000).wait(timeout=30) == 0
    time.sleep(0.5)
    stop_capture(gw, dump)
    assert gw.proc.poll() is None
    out = ours(rdpcap(str(cap)))
    assert all(AH in p and p[IP].proto == 51 for p in out)   # nothing with fewer layers
    ids = [undo(p, cpi, esp_spi(p)) for p in out]
    assert len(set(ids)) == len(ids)
    new = [p for p in out if (p[AH].spi if gone == "ah" else esp_spi(p)) == new_spi]
    assert new and out[-1] in new                            # traffic resumed, every layer on
    seqs = [p[AH].seq if gone == "ah" else esp_seq(p) for p in new]
    assert seqs == sorted(set(seqs))
    s = sas(gw)
    comp = s[cpi]
    no_sa = gw.port_stats()["lan"]["drop_no_sa"] - no_sa0
    assert no_sa >= 100
    # every datagram the policy took: through IPComp or dropped for want of an SA
    assert comp["packets"] + no_sa == policy_hits(gw)
    # every packet a layer finished went on to the next or is its drop_bundle
    # (the totals of a protocol include its deleted SAs)
    esp_out, ah_out = out_totals(gw, "esp"), out_totals(gw, "ah")
    esp_bundle = gw.ctl_json("stats", "esp")["esp"]["drop_bundle"]
    assert comp["packets"] - comp["drop_bundle"] == esp_out
    assert esp_out - esp_bundle == ah_out
    assert s[new_spi]["packets"] >= 20
    assert len(out) <= ah_out


def test_drop_bundle_when_the_next_layer_is_gone(gw):
    """drop_bundle, deterministically: a second policy of a single IPComp
    request uses the bundle's IPComp SA (docs/config.md: such an SA hands its
    packets to the bundle's next SA whichever policy gave them). With ESP
    deleted, the bundle's policy has no SA (drop_no_sa), but this one still
    has IPComp, whose next layer is gone: each of its packets is dropped and
    counted as drop_bundle of the IPComp SA, never sent as IPComp alone. ESP
    added again, they leave with the three layers, as before the delete."""
    q = gw.client()
    cpi = install(gw, q)
    assert q.request(K.spd(K.SPDADD, K.DIR_OUT, "10.1.0.0/24", "10.9.6.0/24", requests=[
        K.ipsecrequest(108, K.MODE_TUNNEL, K.LEVEL_UNIQUE, REQID, (GW_WAN, HOST_B))])).errno == 0
    neighbours_known(gw)
    dump, cap = capture_all(gw)
    # with every SA there: the three layers
    assert send(gw, 5, 0.01, "10.9.6.5").wait(timeout=30) == 0
    gw.wait_for(lambda: sas(gw)[AH_SPI]["packets"] == 5, what="the first 5 sent")
    assert q.request(delete(K.ESP, ESP_SPI)).errno == 0
    s0 = sas(gw)[cpi]
    assert send(gw, 40, 0.01, "10.9.6.5").wait(timeout=30) == 0
    gw.wait_for(lambda: sas(gw)[cpi]["packets"] - s0["packets"] == 40, what="the 40 through IPComp")
    s1 = sas(gw)[cpi]
    assert gw.proc.poll() is None
    assert q.request(K.gcm_add(ESP_SPI + 1, GW_WAN, HOST_B, REQID, KEY, replay=0,
                               mode=K.MODE_TRANSPORT)).errno == 0
    assert send(gw, 20, 0.01, "10.9.6.5").wait(timeout=30) == 0
    gw.wait_for(lambda: sas(gw)[AH_SPI]["packets"] == 25, what="the 20 sent")
    time.sleep(0.5)                         # tcpdump's last writes
    stop_capture(gw, dump, complete=True)
    out = ours(rdpcap(str(cap)))
    assert len(out) == 25                   # the 5, none of the 40, all of the 20
    ids = [undo(p, cpi, ESP_SPI if k < 5 else ESP_SPI + 1, dst="10.9.6.5") for k, p in enumerate(out)]
    assert ids == [b"%06d" % i for i in list(range(5)) + list(range(20))]
    assert s1["drop_bundle"] - s0["drop_bundle"] == 40
    assert sas(gw)[cpi]["drop_bundle"] == s1["drop_bundle"]
