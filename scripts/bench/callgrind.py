#!/usr/bin/python3
"""Instructions per forwarded packet of dpsecd under callgrind, for one or two builds.

Runs a benchmark case of bench.py (its pcaps and configuration: gen.py,
net_pcap infinite_rx input, net_null output, one worker on lcore 1, CPU
crypto) with dpsecd under

    valgrind --tool=callgrind --fair-sched=yes --separate-threads=yes

and counts the instructions (Ir) per forwarded packet over a steady window:
after the warm-up, `callgrind_control --zero` at t0 and `callgrind_control
--dump` at t1, with the egress port's tx_packets (`dpsecctl stats --json`, as
bench.py reads it) read right before and right after each of the two requests.
Instruction counts do not depend on the machine's load, so the two builds can
be compared on a shared host where wall-clock rates move by +-20 %.

The configuration differs from bench.py's in what valgrind needs only: EAL
without hugepages (eal.hugepages false, in_memory false, memory_mb), and the
PF_KEY server off. Everything else (burst, mbufs, idle_backoff off, keys,
policies, the 256-frame pcaps) is gen.config's.

Packets in the window: the delta of tx_packets between the midpoints of the
brackets around zero and dump (the bracket width is reported as the
uncertainty), and, exact, the number of calls of intel-ipsec-mb's job
submission in the window (one per packet in the aesni_mb PMD's CPU-crypto
path), checked against it. Ir per packet is given for the whole process (every
thread) and for the worker thread alone; the worker's is split into
intel-ipsec-mb (the AES-GCM kernel), the bench's ports (net_pcap's copy of
each frame into an mbuf, net_null's free: the harness, which a NIC's PMD
would replace), the rest of DPDK (librte_*: lib/ipsec, ACL, hash, cryptodev
and its PMD, mempool, ring), dpsecd itself, and the rest (libc, ld.so); its
top functions (self Ir per packet, by name: the two builds' functions differ)
and those whose cost differs most between the builds are listed. Debian's
DPDK and intel-ipsec-mb are stripped of their static functions: those show as
LIBRARY:0xADDRESS. The delta dumps, and callgrind_annotate's view
of the worker's, stay in the output directory.

Under valgrind the CPU is the one valgrind emulates: no AVX-512, no VAES, so
intel-ipsec-mb runs its AVX2 code here (submit_job_nocheck_avx2_t1), not the VAES
AVX-512 code it runs natively on this host; the counts are of that code.

--cache-sim adds valgrind's cache simulation (--cache-sim=yes; --LL=SIZE,ASSOC,LINE
sets the last level, e.g. 33554432,16,64 for this host's 32 MiB L3, else valgrind
takes the host's, which a KVM guest may report oddly): per packet of the worker,
data reads (Dr), L1 read misses (D1mr) and last-level read misses (DLmr: the DRAM
round trips a PMU-less guest cannot count), in all, by category and per function
(self). Valgrind models two levels (no L2) and no prefetching: a prefetch
instruction costs nothing and fills nothing, so D1mr and DLmr count the cold lines
a packet touches, not whether a prefetch brought them in time. The simulation
makes the run some 2x slower again.

The tunnel cases tun-SIZE-N and tun-SIZE-1sa-N (bench.py's, topologies.py) take
their N tunnels (two SAs and two policies each, as topologies.tunnel_msgs sends them
over PF_KEY) from the YAML here: 40 000 PF_KEY messages under valgrind take too
long. Starting 10 000 tunnels under valgrind takes 5 to 15 minutes on a loaded
host (--start-timeout); --memory-mb 1536 holds their mbufs and SAs.

    scripts/bench/callgrind.py --case out-1420-cpu-1sa --baseline /work/wt/x/build
    scripts/bench/callgrind.py --cache-sim --LL 33554432,16,64 --memory-mb 1536 \
        --start-timeout 2400 --warmup 10 --window 20 --case tun-64-10000 --case tun-64-1sa-10000
    scripts/bench.sh --callgrind /work/wt/x/build [--case ...]   (same thing)
    scripts/bench/callgrind.py --reanalyse /tmp/dpsec-callgrind-DATE  (tables again)

Four cases, one run of each build: about 15 minutes. See docs/PERFORMANCE.md
(issue 9's section) for what it showed.
"""
import argparse
import collections
import datetime
import glob
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
import gen  # noqa: E402
from bench import log, run  # noqa: E402

CASE_RE = re.compile(r"^(ah-)?(out|in)-(\d+)-(cpu|native)-1sa$")
# bench.py's many-tunnel cases (topologies.py), the tunnels from the YAML here
TUN_RE = re.compile(r"^tun-(\d+)-(1sa-)?(\d+)$")
# the cache simulation's events (--cache-sim): data reads, their L1 and last-level misses
CACHE_EVS = ("Dr", "D1mr", "DLmr")
IMB_OB = re.compile(r"libIPSec_MB")
# intel-ipsec-mb's job submission: one call per packet in the aesni_mb PMD's
# CPU-crypto path (aesni_mb_cpu_crypto_process_bulk: IMB_SUBMIT_JOB per op)
# (submit_job_nocheck_avx2_t1 under valgrind's CPU)
SUBMIT_FN = re.compile(r"^submit_job(_nocheck)?_(sse|avx|avx2|avx512)[a-z0-9_]*$")
# The native engine (imb.c) calls the direct API instead: one GCM call per
# packet from dpsecd itself (IMB_AES128_GCM_DEC; Debian's library is stripped,
# so the callee has no name), counted when no job was submitted.


# ---- callgrind's output format ----------------------------------------------------------

def parse_callgrind(path):
    """Self Ir per (object, function), call counts per (object, callee) and the
    file's total, from one callgrind output file (compressed names and
    positions, as callgrind writes them by default)."""
    names = {"ob": {}, "fl": {}, "fn": {}}
    kind_of = {"ob": "ob", "cob": "ob", "fl": "fl", "fi": "fl", "fe": "fl", "cfi": "fl",
               "cfl": "fl", "fn": "fn", "cfn": "fn"}
    selfc = collections.Counter()
    cache = {e: collections.Counter() for e in CACHE_EVS}  # self data reads and misses
    cache_idx = {}
    calls = collections.Counter()
    xcalls = collections.Counter()  # (caller's object, callee's object): calls
    ob = fn = cob = cfn = None
    in_call = False
    total = summary = None
    thread = None
    ev_index = 0

    def name(key, val):
        ns = names[kind_of[key]]
        m = re.match(r"^\((\d+)\)(?: (.*))?$", val)
        if not m:
            return val
        if m.group(2) is not None:
            ns[m.group(1)] = m.group(2)
        return ns.get(m.group(1), "?")

    with open(path) as f:
        for line in f:
            line = line.rstrip("\n")
            if not line:
                continue
            c = line[0]
            if c.isdigit() or c in "+-*":
                if in_call:
                    in_call = False  # inclusive cost of the call: not self cost
                    continue
                parts = line.split()
                if len(parts) > 1 + ev_index:
                    selfc[(ob, fn)] += int(parts[1 + ev_index])
                for e, k in cache_idx.items():  # (a missing trailing event is 0)
                    if len(parts) > 1 + k:
                        cache[e][(ob, fn)] += int(parts[1 + k])
                continue
            key, _, val = line.partition("=")
            if key in ("ob", "fl", "fi", "fe", "fn", "cob", "cfi", "cfl", "cfn") and _:
                v = name(key, val)
                if key == "ob":
                    ob = v
                elif key == "fn":
                    fn, cob = v, None
                elif key == "cob":
                    cob = v
                elif key == "cfn":
                    cfn = v
                continue
            if key == "calls":
                calls[(cob or ob, cfn)] += int(val.split()[0])
                xcalls[(ob, cob or ob)] += int(val.split()[0])
                cob = None
                in_call = True
                continue
            if line.startswith("events:"):
                evs = line.split()[1:]
                ev_index = evs.index("Ir")
                cache_idx = {e: evs.index(e) for e in CACHE_EVS if e in evs}
            elif line.startswith("totals:"):
                total = int(line.split()[1 + ev_index])
            elif line.startswith("summary:"):
                summary = int(line.split()[1 + ev_index])
            elif line.startswith("thread:"):
                thread = int(line.split()[1])
    got = sum(selfc.values())
    want = total if total is not None else summary
    if want is not None and got != want:
        raise RuntimeError(f"{path}: self costs add up to {got}, the file says {want}")
    return {"self": selfc, "calls": calls, "xcalls": xcalls, "total": got, "thread": thread,
            "path": path, "cache": cache if cache_idx else None}


def category(ob, exe):
    if ob is None:
        return "other"
    if IMB_OB.search(ob):
        return "imb"
    if re.match(r"librte_net_(pcap|null)\.", os.path.basename(ob)):
        return "ports"  # the bench's virtual ports: net_pcap's copy into mbufs, net_null's free
    if os.path.basename(ob).startswith("librte_"):
        return "dpdk"
    if os.path.basename(ob) == os.path.basename(exe):  # (the copy in DIR/work)
        return "dpsec"
    return "other"


def fname(ob, fn):
    """A function's name for the tables: with its library where it has no symbol
    (the Debian libraries are stripped of their static functions) or is not dpsecd's."""
    o = os.path.basename(ob or "?")
    o = re.sub(r"\.so[.0-9]*$", "", o)
    fn = re.sub(r"'\d+$", "", fn or "?")  # callgrind's name of a recursion level: fn'2
    return fn if o.startswith("dpsecd") else f"{o}:{fn}"


# ---- one run ---------------------------------------------------------------------------

def tunnels_config(name, work, prefix):
    """The configuration of bench.py's tun-SIZE-N (tun-SIZE-1sa-N): topologies.py's,
    but the N tunnels (an outbound and an inbound AES-GCM-128 SA, an outbound and a
    fwd policy each, as topologies.tunnel_msgs sends them over PF_KEY) are in the
    YAML: installing 40 000 PF_KEY messages under valgrind takes too long."""
    import topologies
    m = TUN_RE.match(name)
    size, one_sa, n = int(m.group(1)), bool(m.group(2)), int(m.group(3))
    cfg = topologies.tunnels_config(work, size, n, True, prefix)[0][1]
    if not one_sa:
        sas, pols = [], []
        for i in range(n):
            net, peer = str(topologies.tunnel_subnet(i, n)), gen.remote_peer(i)
            sas += [gen._sa(0x10000 + i, "out", gen.WAN_ADDR, peer, i + 1, gen.KEY_OUT, replay=0),
                    gen._sa(0x40000000 + i, "in", peer, gen.WAN_ADDR, i + 1, gen.KEY_IN,
                            replay=64)]
            for d, src, dst, ts, td in (("out", "192.168.10.0/24", net, gen.WAN_ADDR, peer),
                                        ("fwd", net, "192.168.10.0/24", peer, gen.WAN_ADDR)):
                p = gen._policy(d, src, dst, i + 1, ts, td)
                p["ipsec"][0]["level"] = "unique"
                pols.append(p)
        cfg["sas"], cfg["policies"] = sas, pols
    return cfg


def case_setup(name, work):
    """(pcap, gen.config kind, egress port, ingress port) of a bench case name."""
    if TUN_RE.match(name):
        return None, "tun", "wan", "lan", "cpu"
    m = CASE_RE.match(name)
    if not m:
        sys.exit(f"callgrind: case {name!r}: only [ah-]DIR-SIZE-ENGINE-1sa (DIR out or in, "
                 "ENGINE cpu or native), tun-SIZE-N or tun-SIZE-1sa-N")
    ah, d, size = m.group(1) or "", m.group(2), int(m.group(3))
    pcap = os.path.join(work, f"{ah}{d}-{size}.pcap")
    if not os.path.exists(pcap):
        if d == "in":
            gen.pcap_in(size, pcap, gen.N_MAIN_PKTS, proto="ah" if ah else "esp")
        else:
            gen.pcap_out(size, pcap, "spread", gen.N_MAIN_PKTS)
    return (pcap, ah + d, ("wan" if d == "out" else "lan"), ("lan" if d == "out" else "wan"),
            m.group(4))


def ctl(bins, prefix, *args, check=True, timeout=120):
    return run([bins["dpsecctl"], "-p", prefix] + list(args), timeout=timeout, check=check)


def bracket(bins, prefix, port, action=None):
    """tx_packets of port right before and right after action(); returns
    (before, after, seconds)."""
    def tx():
        # dpsecctl waits 5 s for an answer; under valgrind the telemetry thread
        # sometimes takes longer to get its turn: ask again (the bracket widens)
        for i in range(5):
            r = ctl(bins, prefix, "stats", "--json", check=i == 4)
            if r.returncode == 0:
                return json.loads(r.stdout)["ports"][port]["tx_packets"]
            log(f"callgrind:   dpsecctl stats: {r.stderr.strip()}; again")
    t0 = time.monotonic()
    a = tx()
    if action:
        action()
    b = tx()
    return a, b, time.monotonic() - t0


def one_run(bins, tag, case, args, work, seq):
    pcap, kind, out_port, _, eng = case_setup(case, work)
    prefix = f"dpscg{os.getpid()}{tag}{seq}"
    if kind == "tun":
        cfg = tunnels_config(case, work, prefix)
    else:
        cfg = gen.config(kind, pcap, cpu_crypto=True, prefix=prefix,
                         engine="native" if eng == "native" else "cryptodev")
    # what valgrind needs: no hugepages (so no --in-memory), no PF_KEY socket
    cfg["eal"].update(hugepages=False, in_memory=False, memory_mb=args.memory_mb)
    cfg["pfkey"] = {"enabled": False}
    rdir = os.path.join(args.out, f"{case}.{tag}.{seq}")
    os.makedirs(rdir, exist_ok=True)
    cpath = os.path.join(rdir, "dpsecd.yaml")
    gen.write_config(cfg, cpath)
    # A build from before crypto.engine (e.g. the baseline a943604) has only
    # the cryptodev engine, which is what gen.config asks for: without the key
    # its configuration means the same.
    chk = subprocess.run([bins["dpsecd"], "--check", "-c", cpath], capture_output=True, text=True)
    if (chk.returncode != 0 and "crypto.engine: unknown key" in chk.stdout + chk.stderr
            and cfg["crypto"].get("engine") == "cryptodev"):
        del cfg["crypto"]["engine"]
        gen.write_config(cfg, cpath)
        log(f"callgrind: {tag}: this build has no crypto.engine (cryptodev only): key left out")
    outfile = os.path.join(rdir, "callgrind.out")
    vgprefix = os.path.join(rdir, "vgdb")
    cmd = ["valgrind", "--tool=callgrind", "--fair-sched=yes", "--separate-threads=yes",
           f"--callgrind-out-file={outfile}", f"--vgdb-prefix={vgprefix}"]
    if args.cache_sim:
        cmd += ["--cache-sim=yes"] + ([f"--LL={args.LL}"] if args.LL else [])
    cmd += [bins["dpsecd"], "-c", cpath]
    logf = open(os.path.join(rdir, "dpsecd.log"), "w")
    log(f"callgrind: {case} {tag} run {seq}: {' '.join(cmd)}")
    proc = subprocess.Popen(cmd, stdout=logf, stderr=subprocess.STDOUT)
    cgc = ["callgrind_control", f"--vgdb-prefix={vgprefix}"]
    res = {"case": case, "build": tag, "run": seq, "dir": rdir, "cmd": " ".join(cmd)}
    try:
        deadline = time.time() + args.start_timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"dpsecd exited {proc.returncode}, see {rdir}/dpsecd.log")
            if time.time() > deadline:
                raise RuntimeError(f"no packet left {out_port} in {args.start_timeout} s")
            r = ctl(bins, prefix, "stats", "--json", check=False)
            if r.returncode == 0 and json.loads(r.stdout)["ports"][out_port]["tx_packets"] > 0:
                break
            time.sleep(1)
        res["startup_s"] = round(args.start_timeout - (deadline - time.time()), 1)
        time.sleep(args.warmup)
        before = set(glob.glob(outfile + "*"))
        z0, z1, zs = bracket(bins, prefix, out_port,
                             lambda: run(cgc + ["--zero", str(proc.pid)], timeout=300))
        t0 = time.monotonic()
        time.sleep(args.window)
        d0, d1, ds = bracket(bins, prefix, out_port,
                             lambda: run(cgc + [f"--dump=window-{case}-{tag}", str(proc.pid)],
                                         timeout=600))
        wall = time.monotonic() - t0
        files = sorted(set(glob.glob(outfile + "*")) - before)
        if not files:
            raise RuntimeError("callgrind wrote no dump")
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=300)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        logf.close()
    pk_mid = (d0 + d1) / 2 - (z0 + z1) / 2
    res.update(window_s=round(wall, 1), tx_zero=(z0, z1), tx_dump=(d0, d1),
               pkts_tx=pk_mid, pkts_tx_err=((z1 - z0) + (d1 - d0)) / 2,
               bracket_s=(round(zs, 2), round(ds, 2)))
    analyse(res, files, bins["dpsecd"], args.top)
    ann = run(["callgrind_annotate", "--inclusive=yes", os.path.join(rdir, res["worker_file"])],
              timeout=300, check=False)
    with open(os.path.join(rdir, "annotate-worker.txt"), "w") as f:
        f.write(ann.stdout + ann.stderr)
    log(f"callgrind:   {res['pkts']:.0f} packets ({res['pkts_source']}; tx delta {pk_mid:.0f} "
        f"+- {res['pkts_tx_err']:.0f}) in {wall:.0f} s: {res['ir_pkt_worker']:.1f} Ir/packet "
        f"worker, {res['ir_pkt_whole']:.1f} whole process, non-crypto "
        f"{res['ir_pkt_noncrypto']:.1f}")
    return res


def analyse(res, files, exe, top):
    """Ir per packet of one run from its delta dump (one file per thread)."""
    threads = [parse_callgrind(f) for f in files]
    whole = sum(t["total"] for t in threads)
    # the worker: the thread that submitted the crypto jobs
    def submits(t):
        n = sum(n for (o, fn), n in t["calls"].items()
                if fn and SUBMIT_FN.match(fn) and IMB_OB.search(o or ""))
        return n or sum(n for (o, co), n in t["xcalls"].items()
                        if o and os.path.basename(o) == os.path.basename(exe)
                        and IMB_OB.search(co or ""))
    worker = max(threads, key=lambda t: (submits(t), t["total"]))
    n_sub = submits(worker)
    res["pkts_submit"] = n_sub
    res["submit_fns"] = sorted({fn for (o, fn) in worker["calls"]
                                if fn and SUBMIT_FN.match(fn) and IMB_OB.search(o or "")})
    # Exact packet count: the job submissions, if they agree with tx_packets
    # (within the brackets plus a burst or two in flight).
    tol = res["pkts_tx_err"] + 2 * 32 + 0.002 * res["pkts_tx"]
    if n_sub and abs(n_sub - res["pkts_tx"]) <= tol:
        pkts, res["pkts_source"] = n_sub, "imb submit_job calls"
    else:
        pkts, res["pkts_source"] = res["pkts_tx"], "tx_packets delta"
    res["pkts"] = pkts
    byname = collections.Counter()
    for (o, fn), ir in worker["self"].items():
        byname[fname(o, fn)] += ir
    cats = collections.Counter()
    for (o, fn), ir in worker["self"].items():
        cats[category(o, exe)] += ir
    res.update(threads=len(threads), worker_file=os.path.basename(worker["path"]),
               ir_whole=whole, ir_worker=worker["total"],
               ir_pkt_whole=whole / pkts, ir_pkt_worker=worker["total"] / pkts,
               ir_pkt_cat={k: v / pkts for k, v in cats.items()},
               ir_pkt_noncrypto=(worker["total"] - cats["imb"]) / pkts,
               ir_pkt_gateway=(worker["total"] - cats["imb"] - cats["ports"]) / pkts,
               top=[{"fn": k, "ir_pkt": ir / pkts} for k, ir in byname.most_common(top)],
               funcs={k: ir / pkts for k, ir in byname.items() if ir / pkts >= 0.05})
    if worker.get("cache"):  # --cache-sim: data reads and misses per packet
        cc = worker["cache"]
        res["cache_pkt"] = {e: sum(cc[e].values()) / pkts for e in CACHE_EVS}
        res["cache_cat"] = {e: {} for e in CACHE_EVS}
        per_fn = {e: collections.Counter() for e in CACHE_EVS}
        for e in CACHE_EVS:
            for (o, fn), v in cc[e].items():
                c = category(o, exe)
                res["cache_cat"][e][c] = res["cache_cat"][e].get(c, 0) + v / pkts
                per_fn[e][fname(o, fn)] += v
        res["cache_funcs"] = {k: {e: per_fn[e][k] / pkts for e in CACHE_EVS}
                              for k in set(per_fn["D1mr"]) | set(per_fn["DLmr"])
                              if (per_fn["D1mr"][k] + per_fn["DLmr"][k]) / pkts >= 0.05}


# ---- report ----------------------------------------------------------------------------

def report(results, args, builds):
    by = collections.defaultdict(list)
    for r in results:
        if "ir_pkt_worker" in r:
            by[(r["case"], r["build"])].append(r)

    def mean(rs, k):
        return sum(x[k] for x in rs) / len(rs)

    def spread(rs, k):
        v = [x[k] for x in rs]
        return (max(v) - min(v)) / min(v) if len(v) > 1 else None

    lines = [f"dpsecd under callgrind, {datetime.datetime.now():%Y-%m-%d %H:%M}; "
             f"{cpu_model()}; builds: " + ", ".join(f"{t} = {b}" for t, b in builds.items()),
             f"warm-up {args.warmup:g} s after the first packet left, window {args.window:g} s; "
             "Ir per forwarded packet (mean of the runs); worker = the worker thread, "
             "whole = every thread", ""]
    hdr = "| case | build | runs | packets | whole Ir/pkt | worker Ir/pkt | run spread | " \
          "intel-ipsec-mb | ports | DPDK | dpsecd | other | non-crypto | less ports |"
    lines += [hdr, "| --- | --- |" + " ---: |" * 12]
    for case in args.case:
        for tag in builds:
            rs = by.get((case, tag))
            if not rs:
                lines.append(f"| {case} | {tag} | 0 | FAILED |" + " |" * 10)
                continue
            sp = spread(rs, "ir_pkt_worker")
            cat = {k: sum(x["ir_pkt_cat"].get(k, 0) for x in rs) / len(rs)
                   for k in ("imb", "ports", "dpdk", "dpsec", "other")}
            lines.append(f"| {case} | {tag} | {len(rs)} | {sum(x['pkts'] for x in rs):.0f} | "
                         f"{mean(rs, 'ir_pkt_whole'):.1f} | {mean(rs, 'ir_pkt_worker'):.1f} | "
                         f"{'-' if sp is None else f'{sp * 100:.3f} %'} | {cat['imb']:.1f} | "
                         f"{cat['ports']:.1f} | {cat['dpdk']:.1f} | {cat['dpsec']:.1f} | "
                         f"{cat['other']:.1f} | {mean(rs, 'ir_pkt_noncrypto'):.1f} | "
                         f"{mean(rs, 'ir_pkt_gateway'):.1f} |")
    if "base" in builds:
        lines += ["", "| case | baseline worker Ir/pkt | new | new / baseline | "
                  "non-crypto baseline | non-crypto new | new / baseline | "
                  "less ports baseline | less ports new | new / baseline |",
                  "| --- |" + " ---: |" * 9]
        for case in args.case:
            a, b = by.get((case, "base")), by.get((case, "new"))
            if not a or not b:
                continue
            wa, wb = mean(a, "ir_pkt_worker"), mean(b, "ir_pkt_worker")
            na, nb = mean(a, "ir_pkt_noncrypto"), mean(b, "ir_pkt_noncrypto")
            ga, gb = mean(a, "ir_pkt_gateway"), mean(b, "ir_pkt_gateway")
            lines.append(f"| {case} | {wa:.1f} | {wb:.1f} | {wb / wa:.4f} | {na:.1f} | {nb:.1f} | "
                         f"{nb / na:.4f} | {ga:.1f} | {gb:.1f} | {gb / ga:.4f} |")
        lines += ["", "Functions whose self Ir per packet differs most (worker thread, "
                  "mean of runs):"]
        for case in args.case:
            a, b = by.get((case, "base")), by.get((case, "new"))
            if not a or not b:
                continue
            fa, fb = collections.Counter(), collections.Counter()
            for x in a:
                fa.update({k: v / len(a) for k, v in x["funcs"].items()})
            for x in b:
                fb.update({k: v / len(b) for k, v in x["funcs"].items()})
            diff = sorted(set(fa) | set(fb), key=lambda k: -abs(fb[k] - fa[k]))[:args.top]
            lines.append(f"  {case}:")
            for k in diff:
                lines.append(f"    {fb[k] - fa[k]:+8.1f}  {k}  (baseline {fa[k]:.1f}, "
                             f"new {fb[k]:.1f})")
    if any("cache_pkt" in r for r in results):
        lines += cache_report(by, args, builds)
    lines += ["", "Top functions (self Ir per packet, worker thread, first run):"]
    for case in args.case:
        for tag in builds:
            rs = by.get((case, tag))
            if not rs:
                continue
            lines.append(f"  {case} {tag}: " + "; ".join(
                f"{t['fn']} {t['ir_pkt']:.1f}" for t in rs[0]["top"]))
    lines += ["", "Packets: " + "; ".join(
        f"{r['case']} {r['build']} {r['run']}: {r['pkts']:.0f} ({r['pkts_source']}, tx delta "
        f"{r['pkts_tx']:.0f} +- {r['pkts_tx_err']:.0f})" for r in results if "pkts" in r)]
    fails = [r for r in results if "error" in r]
    if fails:
        lines += ["", "FAILED: " + "; ".join(f"{r['case']} {r['build']} {r['run']}: {r['error']}"
                                              for r in fails)]
    return "\n".join(lines)


def cache_report(by, args, builds):
    """--cache-sim: data reads (Dr), L1 read misses (D1mr) and last-level read misses
    (DLmr: the DRAM round trips) per packet of the worker, in all, by category and by
    function (self, mean of the runs)."""
    lines = ["", "Cache simulation (worker thread, per packet, mean of the runs; LL "
             f"{args.LL or 'valgrind default: the host L3'}):", "",
             "| case | build | Dr | D1mr | DLmr | DLmr intel-ipsec-mb | ports | DPDK | dpsecd | "
             "other |", "| --- | --- |" + " ---: |" * 8]
    for case in args.case:
        for tag in builds:
            rs = [r for r in by.get((case, tag), []) if "cache_pkt" in r]
            if not rs:
                continue
            m = {e: sum(r["cache_pkt"][e] for r in rs) / len(rs) for e in CACHE_EVS}
            cat = {c: sum(r["cache_cat"]["DLmr"].get(c, 0) for r in rs) / len(rs)
                   for c in ("imb", "ports", "dpdk", "dpsec", "other")}
            lines.append(f"| {case} | {tag} | {m['Dr']:.1f} | {m['D1mr']:.2f} | "
                         f"{m['DLmr']:.2f} | " + " | ".join(f"{cat[c]:.2f}" for c in cat) + " |")
    lines += ["", "Functions by last-level then L1 read misses per packet (self; "
              "Dr / D1mr / DLmr):"]
    for case in args.case:
        for tag in builds:
            rs = [r for r in by.get((case, tag), []) if "cache_pkt" in r]
            if not rs:
                continue
            acc = collections.defaultdict(lambda: collections.Counter())
            for r in rs:
                for k, v in r["cache_funcs"].items():
                    acc[k].update({e: x / len(rs) for e, x in v.items()})
            top = sorted(acc, key=lambda k: (-acc[k]["DLmr"], -acc[k]["D1mr"]))[:args.top]
            lines.append(f"  {case} {tag}:")
            lines += [f"    {acc[k]['Dr']:8.1f} {acc[k]['D1mr']:7.2f} {acc[k]['DLmr']:7.2f}  {k}"
                      for k in top]
    return lines


def reanalyse(args):
    """The tables again from an earlier run's dumps (after a change of the analysis)."""
    with open(os.path.join(args.reanalyse, "results.json")) as f:
        saved = json.load(f)
    for k in ("case", "warmup", "window", "LL"):
        setattr(args, k, saved["args"].get(k))
    work = os.path.join(args.reanalyse, "work")
    for r in saved["results"]:
        if "error" in r:
            continue
        rdir = os.path.join(args.reanalyse, os.path.basename(r["dir"]))
        files = sorted(glob.glob(os.path.join(rdir, "callgrind.out.1-*")))
        analyse(r, files, os.path.join(work, "dpsecd" + ("" if r["build"] == "new" else "-base")),
                args.top)
    text = report(saved["results"], args, saved["builds"])
    with open(os.path.join(args.reanalyse, "results.json"), "w") as f:
        json.dump(saved, f, indent=1, default=str)
    with open(os.path.join(args.reanalyse, "results.txt"), "w") as f:
        f.write(text + "\n")
    print(text)
    return 0


def cpu_model():
    r = run(["lscpu"], check=False)
    m = re.search(r"^Model name:\s*(.*)$", r.stdout, re.M)
    return (m.group(1).strip() if m else "?") + f", {os.cpu_count()} CPUs"


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--case", action="append",
                    help="a bench case, [ah-]DIR-SIZE-ENGINE-1sa (ENGINE cpu or native), "
                    "tun-SIZE-N or tun-SIZE-1sa-N (repeatable; default "
                    "out-1420-cpu-1sa, out-64-cpu-1sa, in-1420-cpu-1sa, in-64-cpu-1sa)")
    ap.add_argument("--build", default=os.environ.get("DPSEC_BUILD", os.path.join(ROOT, "build")),
                    help="the build directory measured first, \"new\" (default: build/)")
    ap.add_argument("--baseline", help="a second build directory, run right after the first")
    ap.add_argument("--runs", type=int, default=1, help="runs of each case and build")
    ap.add_argument("--warmup", type=float, default=20.0,
                    help="seconds after the first packet left before the window")
    ap.add_argument("--window", type=float, default=60.0, help="seconds between zero and dump")
    ap.add_argument("--start-timeout", type=float, default=600.0,
                    help="seconds for dpsecd to start under valgrind and forward")
    ap.add_argument("--memory-mb", type=int, default=512, help="EAL -m without hugepages")
    ap.add_argument("--top", type=int, default=12, help="functions listed per case")
    ap.add_argument("--cache-sim", action="store_true",
                    help="valgrind --cache-sim=yes: data reads, L1 and last-level read misses "
                    "per packet (Dr, D1mr, DLmr) of the worker, in all and per function")
    ap.add_argument("--LL", help="with --cache-sim: the simulated last-level cache, "
                    "SIZE,ASSOC,LINE (e.g. 33554432,16,64; default: valgrind's, from the host)")
    ap.add_argument("--out", help="output directory (default /tmp/dpsec-callgrind-DATE)")
    ap.add_argument("--reanalyse", metavar="DIR",
                    help="no run: analyse again the dumps of an earlier output directory")
    args = ap.parse_args()
    if args.reanalyse:
        return reanalyse(args)
    args.case = args.case or ["out-1420-cpu-1sa", "out-64-cpu-1sa", "in-1420-cpu-1sa",
                              "in-64-cpu-1sa"]
    args.out = args.out or f"/tmp/dpsec-callgrind-{datetime.datetime.now():%Y%m%d-%H%M%S}"
    work = os.path.join(args.out, "work")
    os.makedirs(work, exist_ok=True)
    if not shutil.which("valgrind"):
        sys.exit("callgrind: valgrind missing (Debian package valgrind)")
    builds = {"new": args.build}
    if args.baseline:
        builds["base"] = args.baseline
    bins = {}
    for tag, build in builds.items():
        bins[tag] = {}
        for b in ("dpsecd", "dpsecctl"):
            src = os.path.join(build, "src/control", b)
            if not os.access(src, os.X_OK):
                sys.exit(f"callgrind: {src} missing: build it first")
            bins[tag][b] = os.path.join(work, b + ("" if tag == "new" else "-base"))
            shutil.copy2(src, bins[tag][b])
    results = []
    for seq in range(1, args.runs + 1):
        for case in args.case:
            for tag in builds:
                try:
                    results.append(one_run(bins[tag], tag, case, args, work, seq))
                except Exception as e:  # one failed run must not hide the others
                    log(f"callgrind: {case} {tag} run {seq} FAILED: {e}")
                    results.append({"case": case, "build": tag, "run": seq, "error": str(e)})
                with open(os.path.join(args.out, "results.json"), "w") as f:
                    json.dump({"builds": builds, "args": vars(args), "results": results}, f,
                              indent=1, default=str)
    text = report(results, args, builds)
    with open(os.path.join(args.out, "results.txt"), "w") as f:
        f.write(text + "\n")
    print(text)
    return 0 if all("error" not in r for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
