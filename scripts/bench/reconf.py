#!/usr/bin/python3
"""Reconf (as FD.io CSIT runs it for VPP): tunnels added while existing tunnels carry traffic at 90 %
of the gateway's maximum rate, loss counted (driven by scripts/bench.sh --reconf, or alone as root).

Topology of pfkey_rate.py: host A -- dpsecd (one worker, af_packet) -- host B, namespaces. TUNNELS
tunnels (pfkey_rate.tunnel_msgs: an outbound and an inbound SA, an outbound and a fwd policy each) go
in over PF_KEY, all in flight. udpgen (udpgen.c, built here) sends paced 64-byte UDP frames from
host A round robin over every tunnel's remote subnet, so each frame is encrypted by one of the
existing tunnels' SAs and leaves on wan as ESP.

* Maximum rate: the highest rate at which a TRIAL-second run loses nothing (no-drop rate, found by
  doubling then bisecting). A frame is lost when udpgen handed it to the kernel and it did not leave
  dpsecd as ESP: lost = sent - (dpsecd's ESP out_packets after - before). lost_in_dpsecd is the
  part dpsecd took off lan's ring (rx_packets less host A's ARP and ND, punt_kernel) and did not
  send as ESP (a drop, or a packet in clear): it must be 0 in every run; the rest was lost before dpsecd saw it (veth backlog,
  af_packet ring) and the port's drop and error counters show where.
* Then ROUNDS rounds, each a control run (traffic at 90 % of that rate, no change) and a reconf run
  (the same traffic; after 2 s, RECONF more tunnels one message at a time, each waiting for its reply,
  charon's way; the traffic runs on for the rest of DURATION seconds). The install must end before
  the traffic does (reported).

udpgen and dpsecd's worker share this machine's CPUs: on a shared machine the maximum rate is the
machine's at that moment, which is why each reconf run is paired with a control run.
Prints one JSON object; the figures go to docs/PERFORMANCE.md.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
import pfkey_rate as P  # noqa: E402
from dpsec import Daemon, Topology, sh  # noqa: E402


def build_udpgen(work):
    exe = os.path.join(work, "udpgen")
    subprocess.run(["cc", "-O2", "-Wall", "-Wextra", "-Werror", "-o", exe, os.path.join(HERE, "udpgen.c")],
                   check=True)
    return exe


class Traffic:
    def __init__(self, d, gen, ha, va, mac, tunnels):
        self.d, self.gen, self.ha, self.va, self.mac, self.tunnels = d, gen, ha, va, mac, tunnels

    def esp_out(self):
        return self.d.ctl_json("stats", "esp")["esp"]["out_packets"]

    def counters(self):
        """dpsecd's ESP out_packets, lan's rx_packets and every port's drop and error counters."""
        out = {"esp_out": self.esp_out()}
        for p, c in self.d.port_stats().items():
            for k, v in c.items():
                if not isinstance(v, int):
                    continue
                if (p, k) in (("lan", "rx_packets"), ("lan", "punt_kernel")) or \
                        any(w in k for w in ("drop", "miss", "err", "nombuf")):
                    out[f"{p}.{k}"] = v
        return out

    def run(self, rate, secs, during=None):
        """udpgen at RATE for SECS; during(): called 2 s in, in this thread. Returns the figures."""
        c0 = self.counters()
        g = subprocess.Popen(["ip", "netns", "exec", self.ha, self.gen, self.va, self.mac, "10.1.0.2",
                              str(self.tunnels), str(int(rate)), str(secs)],
                             stdout=subprocess.PIPE, text=True)
        extra = {}
        if during:
            time.sleep(2)
            extra = during()
            extra["ended_before_traffic"] = g.poll() is None
        sent = int(g.communicate(timeout=secs + 60)[0])
        time.sleep(0.5)  # what is in the rings leaves
        c1 = self.counters()
        dc = {k: v - c0.get(k, 0) for k, v in c1.items()}
        # host A's own ARP/ND frames go to the gateway's stack
        rx, esp = dc.pop("lan.rx_packets") - dc.pop("lan.punt_kernel"), dc.pop("esp_out")
        # lost: sent by udpgen, never left dpsecd as ESP; of which in_dpsecd: taken off lan's
        # ring by dpsecd and not sent (a drop or a packet in clear: must be 0), the rest before
        # dpsecd (veth backlog, af_packet ring: the worker or the kernel starved of CPU)
        out = {"rate": int(rate), "s": secs, "sent": sent, "lan_rx": rx, "esp_out": esp,
               "lost": sent - esp, "lost_in_dpsecd": rx - esp,
               "drops": {k: v for k, v in dc.items() if v}}
        out["offered_pps"] = round(sent / secs)
        out.update(extra)
        return out


def max_rate(t, trial, start, log):
    """The highest rate of a TRIAL-second run without loss: double, then bisect (5 steps)."""
    ok, bad, rate = 0, None, start
    while bad is None:
        r = t.run(rate, trial)
        log.append(r)
        gen_short = r["sent"] < 0.97 * rate * trial
        if r["lost"] == 0 and not gen_short:
            ok, rate = rate, rate * 2
        else:
            bad = rate
            if gen_short and r["lost"] == 0:
                return ok or rate, "generator"  # udpgen cannot go faster here
    for _ in range(5):
        mid = (ok + bad) / 2
        r = t.run(mid, trial)
        log.append(r)
        if r["lost"] == 0:
            ok = mid
        else:
            bad = mid
    return int(ok), "dpsecd"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tunnels", type=int, default=10000, help="existing tunnels carrying traffic")
    ap.add_argument("--reconf", type=int, default=1000, help="tunnels added one message at a time")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--duration", type=float, default=10.0, help="seconds of traffic per run")
    ap.add_argument("--trial", type=float, default=2.0, help="seconds per maximum-rate trial")
    ap.add_argument("--load", type=float, default=0.9, help="fraction of the maximum rate")
    ap.add_argument("--start-rate", type=int, default=50000)
    args = ap.parse_args()
    topo = Topology()
    work = tempfile.mkdtemp(prefix="dpsec-reconf-bench-")
    res = {"tunnels": args.tunnels, "reconf": args.reconf, "load": args.load}
    try:
        gen = build_udpgen(work)
        ha, gw, hb, va, ga, gb = P.topology(topo)
        sock = os.path.join(work, "pfkey.sock")
        cfg = P.config(ga, gb, topo.tag, sock)
        # the tunnels' peers 100.64.0.0/10 are behind host B
        cfg["routes"].append({"prefix": "100.64.0.0/10", "via": "10.2.0.2", "port": "wan"})
        d = Daemon(cfg, work, ns=gw).start()
        sh(["ping", "-c", "2", "-i", "0.2", "10.2.0.2"], ns=ha, check=False)  # dpsecd resolves host B
        msgs = [m for i in range(args.tunnels) for m in P.tunnel_msgs(i)]
        t, err = P.pipelined(sock, msgs, 40000)
        res["install_s"], res["install_errors"] = round(t, 3), err
        mac = sh(["cat", f"/sys/class/net/{ga}/address"], ns=gw).stdout.strip()
        tr = Traffic(d, gen, ha, va, mac, args.tunnels)
        tr.run(args.start_rate, 1.0)  # warm: neighbour, caches
        trials = []
        ndr, limit = max_rate(tr, args.trial, args.start_rate, trials)
        res["max_rate_pps"], res["max_rate_limited_by"], res["max_rate_trials"] = ndr, limit, trials
        rate = args.load * ndr
        res["rounds"] = []
        nxt = args.tunnels
        for _ in range(args.rounds):
            control = tr.run(rate, args.duration)

            def add(first=nxt):
                m = [x for i in range(first, first + args.reconf) for x in P.tunnel_msgs(i)]
                t, err = P.sequential(sock, m)
                return {"install_s": round(t, 3), "install_errors": err}

            rc = tr.run(rate, args.duration, during=add)
            nxt += args.reconf
            res["rounds"].append({"control": control, "reconf": rc})
        res["policies_after"] = len(d.ctl_json("policy")["policies"])
        assert d.stop() == 0
    finally:
        topo.close()
    print(json.dumps(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
