"""host A -- dpsecd -- host B with two rx queues per port.

The ports are net_af_packet devices with qpairs=2: the PMD opens two packet
sockets on the veth and joins them in a PACKET_FANOUT group, so the kernel
spreads flows over the two rx queues by flow hash (the sending socket's
random tx hash on veth). One worker lists all four (port, queue) pairs
explicitly in `rx:`. Several TCP transfers run in parallel in both directions
at once and are checked with SHA-256; DPDK's own /ethdev/stats telemetry shows
per-queue receive counts (dpsecd's /dpsec/ports has none per queue).

Every scenario runs with the idle back-off on (the default) and off.
"""
import hashlib
import json
import os
import subprocess
import time

import pytest

from dpsec import Daemon, sh, wait_listening

LAN4, LAN6 = "10.1.0.1/24", "fd01::1/64"
WAN4, WAN6 = "10.2.0.1/24", "fd02::1/64"
A4, A6, B4, B6 = "10.1.0.2", "fd01::2", "10.2.0.2", "fd02::2"

FLOWS = 8              # per direction: 16 connections at once, 16 socket hashes per port
SIZE = 2 * 1024 * 1024  # bytes per flow
QUEUES = 2


@pytest.fixture(params=[True, False], ids=["idle_backoff", "no_idle_backoff"])
def gateway(request, topo, tmp_path):
    ha, gw, hb = topo.ns("ha"), topo.ns("gw"), topo.ns("hb")
    va, ga = topo.link(ha, gw)
    vb, gb = topo.link(hb, gw)
    topo.host(ha, va, [A4 + "/24", A6 + "/64"], ["10.1.0.1", "fd01::1"])
    topo.host(hb, vb, [B4 + "/24", B6 + "/64"], ["10.2.0.1", "fd02::1"])
    topo.dataplane_owned(gw, ga)
    topo.dataplane_owned(gw, gb)
    cfg = {
        "log_level": "info",
        "dataplane": {"idle_backoff": request.param},
        "neighbour": {"reachable_ms": 30000, "retrans_ms": 300, "probes": 3},
        "ports": [
            {"name": "lan", "device": f"net_af_packet0,iface={ga},qpairs={QUEUES}",
             "role": "protected", "rx_queues": QUEUES, "exception_iface": f"dl{topo.tag}",
             "addresses": [LAN4, LAN6]},
            {"name": "wan", "device": f"net_af_packet1,iface={gb},qpairs={QUEUES}",
             "role": "unprotected", "rx_queues": QUEUES, "exception_iface": f"dw{topo.tag}",
             "addresses": [WAN4, WAN6]},
        ],
        "workers": [{"lcore": 1, "rx": [{"port": p, "queue": q}
                                        for p in ("lan", "wan") for q in range(QUEUES)]}],
    }
    d = Daemon(cfg, str(tmp_path), ns=gw).start()
    d.idle_backoff = request.param
    yield d, ha, gw, hb
    try:
        assert d.stop() == 0, d.read_log()
    finally:
        try:
            os.rmdir(f"/var/run/dpdk/{d.prefix}")
        except OSError:
            pass


def ping(ns, dst, count=2):
    r = sh(["ping", "-c", str(count), "-i", "0.2", "-W", "2", dst], ns=ns, check=False)
    assert r.returncode == 0 and f"{count} received" in r.stdout, r.stdout + r.stderr


def parallel_transfers(workdir, plan, size=SIZE, timeout=25):
    """Run every (src_ns, dst_ns, dst, port) of plan at the same time: random data
    sent with nc, compared by SHA-256 on the receiving side."""
    servers, clients, sums = [], [], []
    try:
        for i, (src, dst_ns, dst, port) in enumerate(plan):
            data = os.urandom(size)
            sums.append(hashlib.sha256(data).hexdigest())
            with open(workdir / f"in{i}", "wb") as f:
                f.write(data)
            fam = "-6" if ":" in dst else "-4"
            out = open(workdir / f"out{i}", "wb")
            servers.append(subprocess.Popen(
                ["ip", "netns", "exec", dst_ns, "nc", fam, "-d", "-l", "-p", str(port)],
                stdout=out, stderr=subprocess.PIPE))
            out.close()
        for src, dst_ns, dst, port in plan:
            wait_listening(dst_ns, port)
        for i, (src, dst_ns, dst, port) in enumerate(plan):
            with open(workdir / f"in{i}", "rb") as f:
                clients.append(subprocess.Popen(
                    ["ip", "netns", "exec", src, "nc", "-N", "-w", "10", dst, str(port)],
                    stdin=f, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE))
        deadline = time.time() + timeout
        for p in clients + servers:
            rc = p.wait(timeout=max(1, deadline - time.time()))
            assert rc == 0, f"{p.args}: {rc} {p.stderr.read()}"
    finally:
        for p in clients + servers:
            if p.poll() is None:
                p.kill()
                p.wait()
    for i, (src, dst_ns, dst, port) in enumerate(plan):
        with open(workdir / f"out{i}", "rb") as f:
            got = f.read()
        assert hashlib.sha256(got).hexdigest() == sums[i], \
            f"flow {i} {src}->{dst}:{port}: received {len(got)} of {size} bytes"


def ethdev_queue_stats(d):
    """ethdev name -> (ipackets, [packets per rx queue]) from DPDK's /ethdev telemetry."""
    ids = json.loads(d.ctl("raw", "/ethdev/list").stdout)["/ethdev/list"]
    out = {}
    for i in ids:
        name = json.loads(d.ctl("raw", f"/ethdev/info,{i}").stdout)["/ethdev/info"]["name"]
        st = json.loads(d.ctl("raw", f"/ethdev/stats,{i}").stdout)["/ethdev/stats"]
        out[name] = (st["ipackets"], st["q_ipackets"])
    return out


def run_both_ways(d, ha, hb, workdir, dst_a, dst_b, base_port, fwd):
    # Resolve the neighbours first, so the transfers measure forwarding only.
    ping(ha, dst_b)
    ping(hb, dst_a)
    before = d.port_stats()
    plan = [(ha, hb, dst_b, base_port + i) for i in range(FLOWS)] + \
           [(hb, ha, dst_a, base_port + 100 + i) for i in range(FLOWS)]
    parallel_transfers(workdir, plan)
    after = d.port_stats()

    # Every flow's data crossed the gateway: at least SIZE/MSS segments each way per flow.
    min_pkts = FLOWS * SIZE // 1500
    for port in ("lan", "wan"):
        assert after[port][fwd] - before[port][fwd] >= min_pkts, (port, before[port], after[port])
        for c in ("drop_malformed", "drop_bad_cksum", "drop_no_route", "drop_mtu",
                  "drop_unresolved", "drop_ctrl_full"):
            assert after[port][c] == 0, (port, c, after[port])

    # One worker polls everything: its totals are the ports' totals (read a moment
    # later, so a stray ARP/ND packet may have arrived in between).
    st = d.ctl_json("stats")
    w = st["workers"]["worker0"]
    assert w["lcore"] == 1
    ports_rx = sum(p["rx_packets"] for p in st["ports"].values())
    assert ports_rx <= w["rx_packets"] <= ports_rx + 16, (ports_rx, w)
    if d.idle_backoff:
        assert w["idle_sleeps"] > 0, w
    else:
        assert w["idle_sleeps"] == 0, w

    # Both rx queues of both ports received a share of the traffic.
    q = ethdev_queue_stats(d)
    for dev in ("net_af_packet0", "net_af_packet1"):
        ipackets, per_queue = q[dev]
        assert ipackets == sum(per_queue), q[dev]
        assert all(n >= 50 for n in per_queue[:QUEUES]), f"{dev} rx per queue: {per_queue}"
        assert not any(per_queue[QUEUES:]), f"{dev} rx per queue: {per_queue}"
    # The dataplane saw what the devices received (a few packets may still be in flight).
    for port, dev in (("lan", "net_af_packet0"), ("wan", "net_af_packet1")):
        assert st["ports"][port]["rx_packets"] <= q[dev][0]
        assert st["ports"][port]["rx_packets"] >= q[dev][0] - 64


def test_parallel_tcp_both_ways_over_two_queues_ipv4(gateway, tmp_path):
    d, ha, gw, hb = gateway
    run_both_ways(d, ha, hb, tmp_path, A4, B4, 6000, "fwd_ipv4")


def test_parallel_tcp_both_ways_over_two_queues_ipv6(gateway, tmp_path):
    d, ha, gw, hb = gateway
    run_both_ways(d, ha, hb, tmp_path, A6, B6, 6200, "fwd_ipv6")


def test_worker_polls_all_configured_queues(gateway):
    d, ha, gw, hb = gateway
    assert "worker 0 on lcore 1 polls 4 queue(s)" in d.read_log()
    info = json.loads(d.ctl("raw", "/dpsec/info").stdout)["/dpsec/info"]
    assert info["ports"] == 2 and info["workers"] == 1
    # The gateway's own addresses still answer through the exception path.
    ping(ha, "10.1.0.1")
    ping(hb, "fd02::1")
