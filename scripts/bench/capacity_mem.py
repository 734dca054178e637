#!/usr/bin/python3
"""Memory per tunnel (run as root; the figures go to docs/PERFORMANCE.md).

Starts dpsecd on its default configuration (two net_pcap ports with empty
captures, hugepages, no crypto, ipsec or memory setting) and installs tunnels
over PF_KEY in steps, every request pipelined: a tunnel is an outbound and an
inbound AES-GCM-128 SA (SADB_ADD) and an outbound and a fwd policy
(SADB_X_SPDADD), as scripts/bench/pfkey_rate.py installs them. After each
step (every reply in, so every change in force, and the classifiers' background
build merged, as the tunnel bench waits for it) it reads from the kernel the
daemon's resident memory (VmRSS, /proc/PID/status) and the hugepage memory
it maps (Private_Hugetlb + Shared_Hugetlb over /proc/PID/smaps), and from
DPDK's telemetry the malloc heap (/eal/heap_info) and dpsecd's counts
(/dpsec/info), and the size of the PF_KEY state file (kept on /run's tmpfs
by default: memory too). Prints one JSON object per step.

    capacity_mem.py --steps 0,5000,50000 [--sas-only]
"""
import argparse
import json
import os
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(HERE)), "tests", "integration"))
import pcaps as P  # noqa: E402
import pfkey as K  # noqa: E402
from dpsec import Daemon  # noqa: E402
from pfkey_rate import KEY, proc_mem, tunnel_msgs  # noqa: E402
from topologies import spd_merged  # noqa: E402


def with_lifetimes(m):
    """An ADD from tunnel_msgs again with soft/hard add-time lifetimes; policies unchanged."""
    p = K.Message(m)
    if p.type != K.ADD:
        return m
    return K.gcm_add(p.ext[K.SA].spi, p.ext[K.SRC].addr, p.ext[K.DST].addr, p.ext[K.SA2].reqid, KEY,
                     replay=p.ext[K.SA].replay, hard=(0, 0, 3600), soft=(0, 0, 3000))


def heap(d):
    r = json.loads(d.ctl("raw", "/eal/heap_info,0").stdout)
    h = next(iter(r.values()))
    return {"heap_size_MB": round(int(h["Heap_size"]) / 2**20, 1),
            "heap_alloc_MB": round(int(h["Alloc_size"]) / 2**20, 1)}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", default="0,5000,50000", help="tunnel counts to measure at")
    ap.add_argument("--sas-only", action="store_true", help="SAs without policies")
    ap.add_argument("--window", type=int, default=1000000, help="messages in flight (default: all)")
    ap.add_argument("--lifetimes", action="store_true",
                    help="give each SA charon's default time lifetimes (soft 3000 s, hard 3600 s)")
    ap.add_argument("--deletes", type=int, default=0,
                    help="then delete this many outbound SAs one at a time (charon's way) and time it")
    args = ap.parse_args()
    work = tempfile.mkdtemp(prefix="dpsec-capacity-")
    P.write_pcap(os.path.join(work, "EMPTY.pcap"), [])
    cfg = {"log_level": "notice", "eal": {"in_memory": False},
           "ports": [{"name": n, "role": r, "exception": False, "addresses": [a],
                      "device": f"net_pcap{i},rx_pcap={work}/EMPTY.pcap,tx_pcap={work}/{n}.pcap"}
                     for i, (n, r, a) in enumerate([("lan", "protected", "10.1.0.1/24"),
                                                    ("wan", "unprotected", "10.2.0.1/24")])]}
    d = Daemon(cfg, work).start()
    c = K.Client(d.cfg["pfkey"]["socket"])
    done = 0
    try:
        for n in [int(s) for s in args.steps.split(",")]:
            msgs = [m for i in range(done, n) for m in tunnel_msgs(i)[:2 if args.sas_only else 4]]
            if args.lifetimes:
                msgs = [with_lifetimes(m) for m in msgs]
            t0 = time.time()
            replies = c.pipeline(msgs, window=args.window, timeout=3600) if msgs else []
            took = time.time() - t0
            done = n
            # the classifiers' background build holds its scratch until it merges
            merge_s = spd_merged(d) if n and not args.sas_only else 0
            time.sleep(2.5)  # the state file is written once a second while it changes
            st = json.loads(d.ctl("raw", "/dpsec/info").stdout)["/dpsec/info"]
            res = {"tunnels": n, "errors": sum(r.errno != 0 for r in replies), "install_s": round(took, 1),
                   "spd_merge_wait_s": round(merge_s, 1),
                   "sas": st["sas"], "policies": st["policies"], "crypto_sessions": st["crypto_sessions"],
                   "session_pools": st["crypto_session_pools"]}
            res.update(proc_mem(d.proc.pid))
            res.update(heap(d))
            st_path = d.cfg["pfkey"]["state"]
            res["state_file_MB"] = round(os.path.getsize(st_path) / 2**20, 1) if os.path.exists(st_path) else 0
            print(json.dumps(res), flush=True)
        if args.deletes:
            t0 = time.time()
            for i in range(args.deletes):
                m = tunnel_msgs(i)[0]  # the outbound SA's ADD: SA and address extensions
                dele = K.msg(K.DELETE, K.ESP, [m[16:16 + 16], K.address(K.SRC, "10.2.0.1"),
                                               K.address(K.DST, K.Message(m).ext[K.DST].addr)])
                assert c.request(dele).errno == 0
            took = time.time() - t0
            print(json.dumps({"tunnels": done, "deletes": args.deletes, "delete_s": round(took, 2),
                              "ms_per_delete": round(1000 * took / args.deletes, 2)}), flush=True)
    finally:
        c.close()
        rc = d.stop()
    return rc


if __name__ == "__main__":
    sys.exit(main())
