#!/usr/bin/python3
"""Reply latency per PF_KEY message type, one request at a time, with POLICIES policies installed,
beside the Linux kernel's XFRM answering the same operations over netlink in the same run
(driven by `scripts/bench.sh --pfkey-latency`, or alone as root).

dpsecd runs as in scripts/bench/pfkey_rate.py (one worker, af_packet, namespaces), the kernel's
XFRM in a fresh network namespace (scripts/bench/xfrm_nl.py). Both get POLICIES out policies
first (the same selectors: one /28 each behind 10.1.0.0/24). Then ROUNDS rounds; in each, PER
messages of each type go one at a time to dpsecd, the way charon's CHILD_SA life sends them:

    REGISTER, GETSPI (one-SPI range), UPDATE (keys for that larval SA, AES-GCM-128), ADD (the
    outbound SA), GET (of it), SPDADD (one more out policy), SPDUPDATE of UPDATES of those to
    another priority (as charon moves a trap policy to its installed priority: dpsecd compiles
    its SPD whole for it), SPDDELETE, DELETE (of the outbound SA)

and the kernel's equivalents go to XFRM: ALLOCSPI (GETSPI), GETSA (GET, of the larval state),
NEWPOLICY (SPDADD), UPDPOLICY (SPDUPDATE), DELPOLICY (SPDDELETE), DELSA (DELETE, of the larval
state). This kernel has
no ESP transform, so NEWSA/UPDSA of a real SA (ADD/UPDATE) are refused and not timed; XFRM has
no REGISTER (a netlink client joins a multicast group at bind). The two sides alternate which
goes first from round to round, so that other load on the machine falls on both.

Latency is the client's: from send() to the reply's arrival in recv() (PF_KEY over dpsecd's Unix
socket; netlink). Prints one JSON object: per type and side the median, 90th and 99th percentile
over all rounds, and each round's median.
"""
import argparse
import ctypes
import json
import os
import socket
import struct
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import pfkey_rate as R  # noqa: E402
import xfrm_nl as X  # noqa: E402

K, Daemon, Topology, sh = R.K, R.Daemon, R.Topology, R.sh
CLONE_NEWNET = 0x40000000
GW = "10.2.0.1"


def cpu_model():
    with open("/proc/cpuinfo") as f:
        for ln in f:
            if ln.startswith("model name"):
                return ln.split(":", 1)[1].strip()
    return "unknown"


def setns(path):
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(path, os.O_RDONLY)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), f"setns {path}")
    finally:
        os.close(fd)


def xfrm_client_in(ns):
    """A netlink XFRM socket of namespace ns (this process goes back to its own afterwards)."""
    own = os.open("/proc/self/ns/net", os.O_RDONLY)
    try:
        setns(f"/run/netns/{ns}")
        return X.XfrmClient()
    finally:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.setns(own, CLONE_NEWNET)
        os.close(own)


class PfkeyConn:
    """One PF_KEY connection to dpsecd; each request timed from send to its reply."""

    def __init__(self, path):
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.s.connect(path)
        self.pid = os.getpid()
        self.seq = 0
        self.errors = 0

    def timed(self, m):
        self.seq += 1
        b = bytearray(m)
        struct.pack_into("=II", b, 8, self.seq, self.pid)
        t0 = time.perf_counter()
        self.s.send(b)
        while True:
            d = self.s.recv(1 << 16)
            if struct.unpack_from("=II", d, 8) == (self.seq, self.pid):
                break
        us = (time.perf_counter() - t0) * 1e6
        self.errors += d[2] != 0
        return us, d


def peer(i):
    return f"100.{96 + (i >> 16)}.{(i >> 8) & 255}.{i & 255}"


def policy_prio(i, priority):
    """SPDUPDATE of policy i to another priority (charon: a trap policy to its installed one)."""
    peer_, net, reqid = R.policy_sel(i)
    return K.spd(K.SPDUPDATE, K.DIR_OUT, "10.1.0.0/24", net, priority=priority,
                 requests=[K.ipsecrequest(50, K.MODE_TUNNEL, K.LEVEL_REQUIRE, reqid, (GW, peer_))])


def dpsecd_round(c, n_pol, base, per, upd, out):
    spi_in = lambda i: 0x20000000 + base + i  # noqa: E731
    spi_out = lambda i: 0x30000000 + base + i  # noqa: E731
    for i in range(per):
        out.setdefault("REGISTER", []).append(c.timed(K.msg(K.REGISTER, K.ESP))[0])
    for i in range(per):
        m = K.msg(K.GETSPI, K.ESP, [K.address(K.SRC, peer(base + i)), K.address(K.DST, GW),
                                   K.spirange(spi_in(i), spi_in(i))])
        out.setdefault("GETSPI", []).append(c.timed(m)[0])
    for i in range(per):
        m = K.gcm_add(spi_in(i), peer(base + i), GW, 5000 + base + i, R.KEY, mtype=K.UPDATE)
        out.setdefault("UPDATE", []).append(c.timed(m)[0])
    for i in range(per):
        m = K.gcm_add(spi_out(i), GW, peer(base + i), 5000 + base + i, R.KEY, replay=0)
        out.setdefault("ADD", []).append(c.timed(m)[0])
    for i in range(per):
        m = K.msg(K.GET, K.ESP, [K.sa(spi_out(i)), K.address(K.SRC, GW), K.address(K.DST, peer(base + i))])
        out.setdefault("GET", []).append(c.timed(m)[0])
    for i in range(per):
        out.setdefault("SPDADD", []).append(c.timed(R.policy_msg(n_pol + base + i))[0])
    for i in range(min(per, upd)):
        out.setdefault("SPDUPDATE_PRIORITY", []).append(c.timed(policy_prio(n_pol + base + i, 7))[0])
    for i in range(per):
        _, net, _ = R.policy_sel(n_pol + base + i)
        m = K.spd(K.SPDDELETE, K.DIR_OUT, "10.1.0.0/24", net)
        out.setdefault("SPDDELETE", []).append(c.timed(m)[0])
    for i in range(per):
        m = K.msg(K.DELETE, K.ESP, [K.sa(spi_out(i)), K.address(K.SRC, GW), K.address(K.DST, peer(base + i))])
        out.setdefault("DELETE", []).append(c.timed(m)[0])
    for i in range(per):  # the inbound SAs go too (not timed): every round starts from the same tables
        c.timed(K.msg(K.DELETE, K.ESP, [K.sa(spi_in(i)), K.address(K.SRC, peer(base + i)), K.address(K.DST, GW)]))


def xfrm_round(x, n_pol, base, per, upd, out):
    spis = []
    for i in range(per):
        lo = 0x20000000 + base + i
        us, spi = X.timed(x.alloc_spi, peer(base + i), GW, lo, lo, 5000 + base + i)
        spis.append(spi)
        out.setdefault("GETSPI", []).append(us)
    for i in range(per):
        out.setdefault("GET", []).append(X.timed(x.get_sa, GW, spis[i])[0])
    for i in range(per):
        p, net, reqid = R.policy_sel(n_pol + base + i)
        out.setdefault("SPDADD", []).append(X.timed(x.new_policy, "10.1.0.0/24", net, X.XFRM_POLICY_OUT,
                                                    GW, p, reqid)[0])
    for i in range(min(per, upd)):
        p, net, reqid = R.policy_sel(n_pol + base + i)
        out.setdefault("SPDUPDATE_PRIORITY", []).append(X.timed(x.new_policy, "10.1.0.0/24", net, X.XFRM_POLICY_OUT,
                                                                GW, p, reqid, 7, True)[0])
    for i in range(per):
        _, net, _ = R.policy_sel(n_pol + base + i)
        out.setdefault("SPDDELETE", []).append(X.timed(x.del_policy, "10.1.0.0/24", net, X.XFRM_POLICY_OUT)[0])
    for i in range(per):
        out.setdefault("DELETE", []).append(X.timed(x.del_sa, GW, spis[i])[0])


def summary(samples, rounds):
    s = R.stats(samples)
    s["round_medians_us"] = [round(sorted(r)[len(r) // 2]) for r in rounds]
    return s


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--policies", type=int, default=20000, help="policies installed before measuring")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--per", type=int, default=200, help="messages of each type per round")
    ap.add_argument("--updates", type=int, default=20,
                    help="SPDUPDATEs to another priority per round (a new rule; the old one matches until the publish)")
    args = ap.parse_args()
    res = {"cpu": cpu_model(), "nproc": os.cpu_count(), "policies": args.policies, "rounds": args.rounds,
           "per_round": args.per, "loadavg_before": open("/proc/loadavg").read().split()[:3]}
    topo = Topology()
    work = tempfile.mkdtemp(prefix="dpsec-latency-bench-")
    xns = f"dpsec-xfrm-lat-{os.getpid()}"
    try:
        ha, gw, hb, va, ga, gb = R.topology(topo)
        sock = os.path.join(work, "pfkey.sock")
        d = Daemon(R.config(ga, gb, topo.tag, sock), work, ns=gw).start()
        subprocess.run(["ip", "netns", "add", xns], check=True)
        x = xfrm_client_in(xns)
        try:
            try:
                x.new_sa_esp_cbc("10.255.0.1", "10.255.0.2", 0x1234)
                res["linux_newsa"] = "accepted"
                x.del_sa("10.255.0.2", 0x1234)
            except X.XfrmError as e:
                res["linux_newsa"] = f"refused: {os.strerror(e.errno)}"
            # the policies both sides hold while measuring
            t0 = time.time()
            _, err = R.pipelined(sock, [R.policy_msg(i) for i in range(args.policies)], 1000)
            res["dpsecd_install_s"] = round(time.time() - t0, 3)
            res["dpsecd_install_errors"] = err
            t0 = time.time()
            for i in range(args.policies):
                p, net, reqid = R.policy_sel(i)
                x.new_policy("10.1.0.0/24", net, X.XFRM_POLICY_OUT, GW, p, reqid)
            res["linux_install_s"] = round(time.time() - t0, 3)
            res["linux_policy_count"] = sh(["ip", "-n", xns, "xfrm", "policy", "count"]).stdout.split("OUT")[1].split()[0]
            c = PfkeyConn(sock)
            dp = {}
            lx = {}
            dp_rounds, lx_rounds = [], []
            for r in range(args.rounds):
                base = r * args.per
                one_dp, one_lx = {}, {}
                sides = [lambda: dpsecd_round(c, args.policies, base, args.per, args.updates, one_dp),
                         lambda: xfrm_round(x, args.policies, base, args.per, args.updates, one_lx)]
                for f in (sides if r % 2 == 0 else sides[::-1]):
                    f()
                dp_rounds.append(one_dp)
                lx_rounds.append(one_lx)
                for k, v in one_dp.items():
                    dp.setdefault(k, []).extend(v)
                for k, v in one_lx.items():
                    lx.setdefault(k, []).extend(v)
            res["dpsecd_errors"] = c.errors
            res["dpsecd"] = {k: summary(v, [rd[k] for rd in dp_rounds]) for k, v in dp.items()}
            res["linux_xfrm"] = {k: summary(v, [rd[k] for rd in lx_rounds]) for k, v in lx.items()}
            res["policies_after"] = len(d.ctl_json("policy")["policies"])
        finally:
            x.close()
            subprocess.run(["ip", "netns", "del", xns], check=False)
        assert d.stop() == 0
    finally:
        topo.close()
    res["loadavg_after"] = open("/proc/loadavg").read().split()[:3]
    print(json.dumps(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
