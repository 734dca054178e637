"""Two workers on live af_packet ports with two rx queues each (qpairs=2: the
kernel spreads frames over the queues with PACKET_FANOUT by flow hash), three
lcores on two CPUs, idle back-off on. Worker 0 polls queue 0 of both ports,
worker 1 queue 1.

    host A ---- [lan] dpsecd [wan] ---- host B
    10.1.0.2   10.1.0.1    10.2.0.1    10.2.0.2

* ACQUIRE: many UDP flows of one policy without SA are dropped by both
  workers; one ACQUIRE per policy, not one per worker.
* How ESP spreads: ESP of one SA always lands on one queue (the flow hash
  covers addresses and, for ESP, the SPI: never anything that changes per
  packet); the ESP of many SAs between the same two addresses spreads over
  both.
"""
import os
import subprocess
import time

import pytest
from scapy.all import ESP, IP, Ether, Raw, wrpcap

import pfkey as K
from dpsec import Daemon, sh
from test_multiqueue import ethdev_queue_stats

GW_LAN, GW_WAN, HOST_B = "10.1.0.1", "10.2.0.1", "10.2.0.2"

FLOWS = r"""
import socket, sys, time
dst, n = sys.argv[1], int(sys.argv[2])
socks = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(16)]
for i in range(n):
    socks[i % 16].sendto(b"plaintext-%06d" % i, (dst, 9000 + i % 16))
    time.sleep(0.002)
"""


@pytest.fixture
def gw(topo, tmp_path):
    ha, g, hb = topo.ns("ha"), topo.ns("gw"), topo.ns("hb")
    va, ga = topo.link(ha, g)
    vb, gb = topo.link(hb, g)
    topo.host(ha, va, ["10.1.0.2/24"], [GW_LAN])
    topo.host(hb, vb, [HOST_B + "/24"])
    topo.dataplane_owned(g, ga)
    topo.dataplane_owned(g, gb)
    sock = str(tmp_path / "pfkey.sock")
    cfg = {
        "eal": {"lcores": "0@0,1@1,2@0"},
        "dataplane": {"idle_backoff": True},
        "ports": [
            {"name": "lan", "device": f"net_af_packet0,iface={ga},qpairs=2", "role": "protected",
             "rx_queues": 2, "exception_iface": f"tl{topo.tag}", "addresses": [GW_LAN + "/24"]},
            {"name": "wan", "device": f"net_af_packet1,iface={gb},qpairs=2", "role": "unprotected",
             "rx_queues": 2, "exception_iface": f"tw{topo.tag}", "addresses": [GW_WAN + "/24"]},
        ],
        "workers": [{"lcore": 1, "rx": [{"port": "lan", "queue": 0}, {"port": "wan", "queue": 0}]},
                    {"lcore": 2, "rx": [{"port": "lan", "queue": 1}, {"port": "wan", "queue": 1}]}],
        "routes": [{"prefix": "10.9.0.0/16", "via": HOST_B, "port": "wan"}],
        "pfkey": {"socket": sock, "acquire_retry_s": 30},
    }
    d = Daemon(cfg, str(tmp_path), ns=g).start()
    d.sock, d.ha, d.hb, d.vb, d.tmp, d.g, d.gb = sock, ha, hb, vb, tmp_path, g, gb
    yield d
    rc = d.stop()
    try:
        os.rmdir(f"/var/run/dpdk/{d.prefix}")
    except OSError:
        pass
    assert rc == 0, d.read_log()


def worker_stats(d):
    return d.ctl_json("stats")["workers"]


def test_one_acquire_per_policy_when_both_workers_drop_its_packets(gw):
    ev, q = K.Client(gw.sock), K.Client(gw.sock, pid=1)
    try:
        assert ev.request(K.msg(K.REGISTER, K.ESP)).errno == 0
        pids = {q.request(K.spd(K.SPDADD, K.DIR_OUT, "10.1.0.0/24", f"10.9.{i}.0/24", requests=[
            K.ipsecrequest(50, K.MODE_TUNNEL, K.LEVEL_REQUIRE, 10 + i, (GW_WAN, HOST_B))],
            priority=1000)).ext[K.POLICY].id for i in (1, 2)}
        ev.drain()
        senders = [subprocess.Popen(["ip", "netns", "exec", gw.ha, "/usr/bin/python3", "-c", FLOWS,
                                     f"10.9.{i}.5", "600"]) for i in (1, 2)]
        got = []
        t0 = time.time()
        while time.time() - t0 < 4:
            try:
                m = ev.recv(timeout=0.2)
            except OSError:
                continue
            if m.type == K.ACQUIRE:
                got.append(m.ext[K.POLICY].id)
        for p in senders:
            assert p.wait(timeout=30) == 0
        w = worker_stats(gw)
        # both workers dropped packets of both policies' flows for want of an SA
        assert all(w[k]["drop_no_sa"] > 20 for k in w), w
        assert sorted(got) == sorted(pids), got
    finally:
        ev.close()
        q.close()


def esp_frames(gw, spis, n):
    """n ESP frames per SPI from host B to the gateway (the contents do not matter: only
    the queue each lands on is looked at)."""
    mac = sh(["cat", f"/sys/class/net/{gw.vb}/address"], ns=gw.hb).stdout.strip()
    gmac = sh(["cat", f"/sys/class/net/{gw.gb}/address"], ns=gw.g).stdout.strip()
    return [Ether(src=mac, dst=gmac) / IP(src=HOST_B, dst=GW_WAN) / ESP(spi=spi, seq=k + 1)
            / Raw(b"\0" * 32) for k in range(n) for spi in spis]


def send_frames(gw, frames):
    path = gw.tmp / "esp.pcap"
    wrpcap(str(path), frames)
    code = (f"from scapy.all import rdpcap, sendp; sendp(rdpcap('{path}'), iface='{gw.vb}', "
            f"inter=0.001, verbose=False)")
    sh(["/usr/bin/python3", "-c", code], ns=gw.hb, timeout=120)


def wan_queues(gw):
    return ethdev_queue_stats(gw)["net_af_packet1"][1][:2]


def test_one_sa_lands_on_one_queue_many_sas_spread(gw):
    before = wan_queues(gw)
    send_frames(gw, esp_frames(gw, [0x5001], 200))
    mid = wan_queues(gw)
    one = [mid[i] - before[i] for i in (0, 1)]
    # ARP and neighbour discovery (a few frames) may land on either queue
    assert sorted(one)[0] <= 5 and sorted(one)[1] >= 200, one
    send_frames(gw, esp_frames(gw, range(0x6000, 0x6020), 10))
    after = wan_queues(gw)
    many = [after[i] - mid[i] for i in (0, 1)]
    assert sum(many) >= 320 and min(many) >= 40, many
    assert gw.port_stats()["wan"]["rx_packets"] >= 520
