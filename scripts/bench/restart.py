#!/usr/bin/python3
"""The outage of a dpsecd restart under a running charon (scripts/bench.sh --restart).

Topology, network namespaces (as tests/integration/test_strongswan_e2e.py):

    host A ---- [lan] dpsecd [wan] ===== gateway B ---- host B
    10.1.0.2          charon A (kernel-pfkey,  charon B (kernel-libipsec)
                      libdpsec_pfkey.so)

charon A keys dpsecd over PF_KEY; the tunnel is brought up by the first
packet (trap, ACQUIRE). Then two steady UDP streams with sequence numbers and
send times cross it, A to B (dpsecd encrypts) and B to A (dpsecd decrypts),
RATE datagrams per second each, while dpsecd is restarted ROUNDS times the
way `systemctl restart` does it: SIGTERM, wait for the exit, start again.
dpsecd is started with NOTIFY_SOCKET pointing at the bench, so its
sd_notify(READY=1) is timed as systemd sees it.

Per round and direction:
  lost       datagrams sent and never received around the restart;
  outage_ms  lost x the send interval (the loss of a steady flood);
  gap_ms     send time of the first datagram through the new dpsecd minus that
             of the last one through the old one;
  exec_first_ms  from exec of the new dpsecd to the first datagram it forwarded;
  exec_ready_ms  from exec to READY=1; term_exit_ms from SIGTERM to exit.
  started_in  dpsecd's own account (its "running" line): where start-up went.
After the rounds: the same CHILD_SA SPIs in dpsecd and charon, the same
IKE_SA (no new IKE_SA), charon alive. Prints one JSON object (median and max
over the rounds); docs/PERFORMANCE.md has the figures.

--ab=ARG (repeatable) compares in the same run: each round restarts twice,
once with the configuration as is (A) and once with ARG added to its EAL
arguments (B), the order alternating, and reports B/A per round.
"""
import argparse
import json
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
sys.path.insert(0, os.path.join(ROOT, "tests", "peer"))
from dpsec import DPSECD, Daemon, sh  # noqa: E402
from strongswan import Charon, ikev2_psk, pfkey_env  # noqa: E402
from topology import Netns  # noqa: E402

A, B = "10.1.0.2", "10.2.0.2"
LAN_A, LAN_B = "10.1.0.1", "10.2.0.1"
GWA, GWB = "192.0.2.1", "192.0.2.2"
NET_A, NET_B = "10.1.0.0/24", "10.2.0.0/24"
PORT = 9000

# One stream: `send DST RATE SECS` sends seq (8 bytes) + CLOCK_MONOTONIC send time
# (8 bytes, ns); `recv OUT SECS` writes "seq sent_ns received_ns" per datagram
# when SECS have passed or a file OUT.stop appears.
FLOW = r"""
import os, socket, struct, sys, time
mode = sys.argv[1]
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
if mode == "send":
    dst, rate, secs = sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
    n, t0 = 0, time.monotonic()
    while time.monotonic() - t0 < secs:
        want = int((time.monotonic() - t0) * rate)
        while n < want:
            s.sendto(struct.pack("!QQ", n, time.monotonic_ns()) + bytes(48), (dst, %d))
            n += 1
        time.sleep(0.0005)
else:
    out, secs = sys.argv[2], float(sys.argv[3])
    s.bind(("0.0.0.0", %d))
    s.settimeout(0.5)
    rows, end = [], time.monotonic() + secs
    while time.monotonic() < end and not os.path.exists(out + ".stop"):
        try:
            d = s.recv(2048)
        except socket.timeout:
            continue
        seq, sent = struct.unpack("!QQ", d[:16])
        rows.append("%%d %%d %%d" %% (seq, sent, time.monotonic_ns()))
    with open(out, "w") as f:
        f.write("\n".join(rows))
""" % (PORT, PORT)


class Env:
    pass


def dpsecd_config(e):
    return {
        "log_level": "notice",
        "dataplane": {"idle_backoff": True},
        "ports": [
            {"name": "lan", "device": f"net_af_packet0,iface={e.lan_if}", "role": "protected",
             "exception_iface": f"rl{e.net.tag}"[:15], "addresses": [LAN_A + "/24"]},
            {"name": "wan", "device": f"net_af_packet1,iface={e.wan_if}", "role": "unprotected",
             "exception_iface": f"rw{e.net.tag}"[:15], "addresses": [GWA + "/24"]},
        ],
        "routes": [{"prefix": NET_B, "via": GWB, "port": "wan"}],
        "pfkey": {"socket": e.sock, "state": os.path.join(e.dir, "pfkey.state")},
    }


def topology(e):
    e.net = Netns(e.prefix)
    e.ha, e.gwa, e.gwb, e.hb = (e.net.ns(n) for n in ("ha", "gwa", "gwb", "hb"))
    e.a_if, e.lan_if = e.net.link(e.ha, e.gwa, kernel_off=(e.gwa,))
    e.wan_if, e.out_if = e.net.link(e.gwa, e.gwb, kernel_off=(e.gwa,))
    e.blan_if, e.b_if = e.net.link(e.gwb, e.hb)
    Netns.addrs(e.ha, e.a_if, [A + "/24"])
    Netns.addrs(e.hb, e.b_if, [B + "/24"])
    Netns.addrs(e.gwb, e.out_if, [GWB + "/24"])
    Netns.addrs(e.gwb, e.blan_if, [LAN_B + "/24"])
    Netns.forwarding(e.gwb)
    for ns, gw in ((e.ha, LAN_A), (e.hb, LAN_B)):
        sh(["ip", "route", "replace", "default", "via", gw], ns=ns)


class Gateway:
    """dpsecd started and stopped as systemd does: exec, READY=1 on NOTIFY_SOCKET, SIGTERM."""

    def __init__(self, e, ab_args=()):
        self.d = Daemon(dpsecd_config(e), e.dir, ns=e.gwa, name="dpsecd")
        # variant B: the same configuration with more EAL arguments, same telemetry prefix
        cfg = dict(self.d.cfg, eal=dict(self.d.cfg["eal"]))
        cfg["eal"]["extra_args"] = list(cfg["eal"].get("extra_args", [])) + list(ab_args)
        self.path = {"A": self.d.path, "B": os.path.join(e.dir, "dpsecd-b.yaml")}
        with open(self.path["B"], "w") as f:
            yaml.safe_dump(cfg, f, sort_keys=False)
        self.log_lines = []
        self.notify_path = os.path.join(e.dir, "notify.sock")
        self.notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.notify.bind(self.notify_path)
        self.proc = None
        self.n = 0

    def start(self, variant="A", timeout=30):
        """Returns (monotonic exec time, monotonic READY time)."""
        self.n += 1
        log = open(os.path.join(os.path.dirname(self.d.log), f"dpsecd-{self.n}.log"), "w")
        self.log_path = log.name
        env = dict(os.environ, NOTIFY_SOCKET=self.notify_path)
        t_exec = time.monotonic()
        self.proc = subprocess.Popen(["ip", "netns", "exec", self.d.ns, DPSECD, "-c", self.path[variant]],
                                     stdout=log, stderr=subprocess.STDOUT, env=env)
        log.close()
        self.notify.settimeout(0.2)
        deadline = t_exec + timeout
        while time.monotonic() < deadline:
            try:
                msg = self.notify.recv(4096)
            except socket.timeout:
                if self.proc.poll() is not None:
                    raise SystemExit(f"restart: dpsecd exited {self.proc.returncode} (log {log.name})")
                continue
            if b"READY=1" in msg.split(b"\n"):
                return t_exec, time.monotonic()
        raise SystemExit(f"restart: no READY=1 from dpsecd in {timeout}s (log {log.name})")

    def started_in(self):
        """dpsecd's own account of its start-up (the running line's phases, ms)."""
        with open(self.log_path) as f:
            m = re.search(r"started in (\d+) ms \((.*)\)", f.read())
        if not m:
            return None
        out = {"total": int(m.group(1))}
        for part in m.group(2).split(", "):
            k, v = part.rsplit(" ", 1)
            out[k] = int(v)
        return out

    def stop(self):
        """SIGTERM; returns (monotonic SIGTERM time, monotonic exit time)."""
        t = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        rc = self.proc.wait(timeout=30)
        t_exit = time.monotonic()
        if rc != 0:
            raise SystemExit(f"restart: dpsecd exited {rc} on SIGTERM")
        return t, t_exit


def sas(d):
    return {int(s["spi"], 16) for s in d.ctl_json("sa")["sas"].values()}


def ike_ids(c):
    return {ike.get("uniqueid") for ike in c.list_sas().values()}


def read_flow(path):
    rows = []
    with open(path) as f:
        for line in f:
            if line.strip():
                seq, sent, recv = (int(x) for x in line.split())
                rows.append((seq, sent / 1e9, recv / 1e9))
    rows.sort()
    return rows


def round_figures(rows, rate, t_term, t_exec, t_end):
    """What one direction's stream lost around one restart (t_term .. t_end)."""
    before = [r for r in rows if r[2] < t_exec]
    after = [r for r in rows if r[2] >= t_exec and r[1] < t_end]
    if not before or not after:
        return None
    last, first = before[-1], after[0]
    # datagrams sent between the last one through the old dpsecd and the first one
    # through the new one that never arrived
    got = {r[0] for r in rows if last[0] < r[0] < first[0]}
    lost = first[0] - last[0] - 1 - len(got)
    return {"lost": lost, "outage_ms": round(lost * 1000 / rate, 1),
            "gap_ms": round((first[1] - last[1]) * 1000, 1),
            "exec_first_ms": round((first[2] - t_exec) * 1000, 1),
            "last_before_term_ms": round((t_term - last[2]) * 1000, 1)}


def cpu_model():
    out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    m = re.search(r"Model name:\s*(.*)", out)
    return f"{m.group(1).strip() if m else '?'}, {os.cpu_count()} CPUs"


def summary(values):
    values = [v for v in values if v is not None]
    if not values:
        return None
    return {"median": round(statistics.median(values), 1), "max": round(max(values), 1),
            "rounds": values}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--rate", type=int, default=1000, help="datagrams per second and direction")
    ap.add_argument("--settle", type=float, default=3.0, help="seconds of traffic between restarts")
    ap.add_argument("--esp", default="aes128gcm16")
    ap.add_argument("--prefix", default="rs", help="namespace name prefix")
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    ap.add_argument("--ab", action="append", default=[], metavar="EAL_ARG",
                    help="also restart with this EAL argument added (repeatable): every round "
                         "restarts twice, A (the configuration as is) and B, in alternating order")
    args = ap.parse_args()

    e = Env()
    e.prefix = args.prefix
    e.dir = tempfile.mkdtemp(prefix="dpsec-restart-")
    e.sock = os.path.join(e.dir, "pfkey.sock")
    procs, gw, charons = [], None, []
    try:
        topology(e)
        gw = Gateway(e, args.ab)
        gw.start()
        psk = os.urandom(16).hex()
        cb = Charon("b", e.gwb, e.dir, plugins=Charon.LIBIPSEC)
        cb.add_conn("site", ikev2_psk(GWB, GWA, NET_B, NET_A, psk, child="net", esp_proposals=args.esp))
        charons.append(cb.start())
        ca = Charon("a", e.gwa, e.dir, plugins=Charon.PFKEY, env=pfkey_env(e.sock),
                    settings="\tinstall_routes = no\n")
        ca.add_conn("site", ikev2_psk(GWA, GWB, NET_A, NET_B, psk, child="net", esp_proposals=args.esp,
                                      start_action="trap"))
        charons.append(ca.start())
        sh(["ping", "-c", "3", "-i", "0.2", "-W", "1", B], ns=e.ha, check=False)
        ca.wait_child("net", timeout=30)
        gw.d.wait_for(lambda: len(sas(gw.d)) == 2, timeout=20, what="an SA pair in dpsecd")
        sh(["ping", "-c", "3", "-i", "0.2", B], ns=e.ha)
        spis, ikes = sas(gw.d), ike_ids(ca)

        restarts = args.rounds * (2 if args.ab else 1)
        secs = args.settle * (restarts + 1) + 15 * restarts
        flows = {"a_to_b": (e.ha, e.hb, B), "b_to_a": (e.hb, e.ha, A)}
        out = {k: os.path.join(e.dir, f"{k}.txt") for k in flows}
        for k, (src, dst, addr) in flows.items():
            procs.append(subprocess.Popen(["ip", "netns", "exec", dst, sys.executable, "-c", FLOW, "recv",
                                           out[k], str(secs + 5)]))
        time.sleep(0.5)
        for k, (src, dst, addr) in flows.items():
            procs.append(subprocess.Popen(["ip", "netns", "exec", src, sys.executable, "-c", FLOW, "send",
                                           addr, str(args.rate), str(secs)]))
        load0 = os.getloadavg()
        marks = []
        time.sleep(args.settle)
        for i in range(args.rounds):
            order = ("A",) if not args.ab else (("A", "B") if i % 2 == 0 else ("B", "A"))
            for v in order:
                t_term, t_exit = gw.stop()
                t_exec, t_ready = gw.start(v)
                marks.append((t_term, t_exit, t_exec, t_ready, v, i, gw.started_in()))
                time.sleep(args.settle)
        senders, receivers = procs[len(flows):], procs[:len(flows)]
        for p in senders:
            p.terminate()
            p.wait(timeout=10)
        time.sleep(1)  # the last datagrams in flight
        for k in flows:
            open(out[k] + ".stop", "w").close()
        for p in receivers:
            p.wait(timeout=30)
        procs = []

        rounds = []
        rows = {k: read_flow(out[k]) for k in flows}
        for i, (t_term, t_exit, t_exec, t_ready, v, n, started) in enumerate(marks):
            t_end = marks[i + 1][0] if i + 1 < len(marks) else float("inf")
            r = {"variant": v, "round": n, "term_exit_ms": round((t_exit - t_term) * 1000, 1),
                 "exec_ready_ms": round((t_ready - t_exec) * 1000, 1), "started_in": started}
            for k in flows:
                r[k] = round_figures(rows[k], args.rate, t_term, t_exec, t_end)
            rounds.append(r)
        after_spis, after_ikes = sas(gw.d), ike_ids(ca)
        children = ca.children("net")
        charon_spis = {int(c["spi-in"], 16) for c in children} | {int(c["spi-out"], 16) for c in children}
        res = {"rounds": len(rounds), "rate_pps": args.rate, "esp": args.esp,
               "same_spis": after_spis == spis and charon_spis == spis,
               "same_ike_sa": after_ikes == ikes and len(ikes) == 1,
               "charon_alive": all(c.proc.poll() is None for c in charons),
               "cpu": cpu_model(), "load_before": load0, "load_after": os.getloadavg()}
        if args.ab:
            res["b_eal_args"] = args.ab
        for v in ("A", "B") if args.ab else ("A",):
            rv = [r for r in rounds if r["variant"] == v]
            s = res.setdefault(v, {})
            s["term_exit_ms"] = summary([r["term_exit_ms"] for r in rv])
            s["exec_ready_ms"] = summary([r["exec_ready_ms"] for r in rv])
            s["started_in_ms"] = summary([r["started_in"]["total"] if r["started_in"] else None for r in rv])
            for k in flows:
                for f in ("lost", "outage_ms", "gap_ms", "exec_first_ms"):
                    s[f"{k}_{f}"] = summary([r[k][f] if r[k] else None for r in rv])
        if args.ab:
            # paired round by round: B's exec-to-first-forwarded over A's, A to B
            ratios = []
            for n in range(args.rounds):
                a = [r for r in rounds if r["round"] == n and r["variant"] == "A"][0]["a_to_b"]
                b = [r for r in rounds if r["round"] == n and r["variant"] == "B"][0]["a_to_b"]
                if a and b:
                    ratios.append(round(b["exec_first_ms"] / a["exec_first_ms"], 2))
            res["b_over_a_exec_first"] = {"median": statistics.median(ratios) if ratios else None,
                                          "rounds": ratios}
        res["per_round"] = rounds
        print(json.dumps(res, indent=1))
        ok = res["same_spis"] and res["same_ike_sa"] and res["charon_alive"] and \
            all(r[k] for r in rounds for k in flows)
        return 0 if ok else 1
    finally:
        for p in procs:
            p.kill()
        for c in charons:
            c.stop()
        if gw is not None and gw.proc is not None and gw.proc.poll() is None:
            gw.stop()
        if getattr(e, "net", None):
            e.net.close()
        if not args.keep:
            subprocess.run(["rm", "-rf", e.dir])
        else:
            print(f"work directory: {e.dir}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
