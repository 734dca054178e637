#!/usr/bin/python3
"""dpsecd single-worker throughput benchmark (driven by scripts/bench.sh).

Every case runs dpsecd with one worker (lcores 0-1, main 0, worker 1),
idle_backoff off, a net_pcap input replaying a pcap forever (infinite_rx) and
a net_null output (discard), ESP tunnel AES-128-GCM (gen.py writes the pcaps
and configurations). After a warm-up the counters are read twice through
`dpsecctl stats --json`, DURATION seconds apart; the rate is the delta of the
egress port's tx_packets over the elapsed time. Gbps are of plaintext IP bytes
(packets x SIZE x 8), SIZE being the plaintext IP packet (outbound) or the
inner packet (inbound).

The machine may be shared: the worker thread's CPU time (schedstat) is read
with the counters, so every case also gets a rate per second of worker CPU
time ("per CPU-second"): what the worker does when it has its core alone.

The ceiling is dpdk-test-crypto-perf's AES-128-GCM encrypt throughput on
crypto_aesni_mb on lcore 1, same buffer sizes, run before, in the middle of
and after the dpsecd cases; the best run counts (raw and per CPU-second).

IPComp (cases ipcomp-out-1420-FILL): one outbound IPComp tunnel SA on
compress_isal, 1420-byte packets whose payload is text (compressible) or
random (incompressible), beside dpdk-test-compress-perf compressing the same
packets (as forwarded, one 1420-byte segment per operation, ISA-L level 1,
dynamic Huffman, 32 KB window: what dpsecd asks for) on lcore 1 (cases
ipcomp-cperf-1420-FILL), in every round right after the dpsecd case.

The reference is DPDK's ipsec-secgw example (secgw.py; built by
scripts/ipsec-secgw.sh) in the same set-up and with the same pcaps, measured
the same way (cases secgw-out-SIZE); without it the 64 B goal falls back to a
constant measured elsewhere, and says so.

Issue 12's goals 3 to 5 need more than one pcap port and one worker: their
cases (chain-in-SIZE-wW: inbound with the replay window on behind a second
dpsecd over net_memif; tun-SIZE-N and tun-SIZE-1sa-N: N tunnels over PF_KEY
against one SA on the same pcap; w1-SIZE, w2-SIZE, w2-SIZE-shared: two
workers) are in topologies.py. After the table: their paired ratios, a goals
table for goals 1 to 5 with verdicts, and results.png (python3-matplotlib).
"""
import argparse
import datetime
import json
import os
import platform
import re
import shutil
import statistics
import signal
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
import gen  # noqa: E402
import secgw  # noqa: E402
import topologies  # noqa: E402

SIZES = (64, 512, 1420)
QLAT_US = 20  # the simulated latency of a crypto device (a QAT's is tens of microseconds)
SCALE_SIZES = (64, 1420)
AH_SIZES = (64, 1420)
GOAL_AH_RATIO = 0.85  # AH at 1420 B >= 85 % of 1 / (t_forward + t_auth), same run
GOAL_64_RATIO = 1.5  # 64 B outbound >= 1.5 x ipsec-secgw in the same set-up
# Issue 12: per worker CPU-second against ipsec-secgw in the same run, each direction
GOAL_SECGW = {64: 1.3, 512: 1.2, 1420: 1.2}
GOAL_IDEAL = 0.9  # of 1 / (t_forward + t_crypto), both from the same run
SECGW_64_MPPS = 2.4  # the old given reference (another machine): used only when not measured
GOAL_1420_RATIO = 0.90
GOAL_SCALE_RATIO = 0.85
IPCOMP_SIZE = 1420
IPCOMP_FILLS = ("text", "random")  # compressible, incompressible (gen.fill)
GOAL_IPCOMP_RATIO = 0.80  # IPComp out >= 80 % of dpdk-test-compress-perf's DEFLATE, same data, same run


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def run(cmd, timeout=120, check=True):
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if check and r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}")
    return r


def cpu_steal(cpu):
    """(steal jiffies of cpuN) from /proc/stat: time the hypervisor took away."""
    with open("/proc/stat") as f:
        for line in f:
            if line.startswith(f"cpu{cpu} "):
                return int(line.split()[8])
    return 0


def thread_of(pid, pattern):
    """The tid of pid's thread whose name matches pattern."""
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/comm") as f:
                if re.search(pattern, f.read()):
                    return int(tid)
    except FileNotFoundError:
        pass
    return None


def schedstat(pid, tid):
    """(ns on CPU, ns runnable but waiting) of a thread."""
    try:
        with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
            a = f.read().split()
        return int(a[0]), int(a[1])
    except (FileNotFoundError, TypeError):
        return 0, 0


class Daemon:
    def __init__(self, bins, cfg, workdir, name):
        self.bins = bins
        self.prefix = cfg["eal"]["file_prefix"]
        self.path = os.path.join(workdir, f"{name}.yaml")
        self.log = os.path.join(workdir, f"{name}.log")
        gen.write_config(cfg, self.path)
        self.proc = None

    def ctl(self, *args, check=True):
        return run([self.bins["dpsecctl"], "-p", self.prefix] + list(args), timeout=30,
                   check=check)

    def stats(self):
        """Counters, with the time they were read (midpoint of the call)."""
        t0 = time.monotonic()
        r = self.ctl("stats", "--json")
        t1 = time.monotonic()
        return (t0 + t1) / 2, json.loads(r.stdout)

    def sa_counters(self):
        return json.loads(self.ctl("sa", "--json").stdout)

    def start(self, timeout=120):
        self.logf = open(self.log, "w")
        self.proc = subprocess.Popen([self.bins["dpsecd"], "-c", self.path], stdout=self.logf,
                                     stderr=subprocess.STDOUT)
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"dpsecd exited {self.proc.returncode}:\n{self.read_log()}")
            if self.ctl("raw", "/dpsec/info", check=False).returncode == 0:
                return self
            time.sleep(0.2)
        raise RuntimeError(f"dpsecd not ready in {timeout}s:\n{self.read_log()}")

    def read_log(self):
        with open(self.log) as f:
            return f.read()

    def stop(self):
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait()
        self.logf.close()
        return rc


def counters_delta(a, b):
    """b - a for every integer counter in nested dicts."""
    out = {}
    for k, v in b.items():
        if isinstance(v, dict):
            out[k] = counters_delta(a.get(k, {}), v)
        elif isinstance(v, int):
            out[k] = v - a.get(k, 0)
    return out


def start_perf(args, workdir, name, pid, tid):
    """With --perf: sample the worker thread (cpu-clock: this VM has no PMU)."""
    if not args.perf or not tid or shutil.which("perf") is None:
        return None
    data = os.path.join(workdir, f"{name}.perf.data")
    p = subprocess.Popen(["perf", "record", "-q", "-e", "cpu-clock", "-F", "999", "-t", str(tid),
                          "-o", data, "--", "sleep", str(args.duration)],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return p, data, os.path.join(workdir, f"{name}.perf.txt")


def finish_perf(perf, res):
    if perf is None:
        return
    p, data, txt = perf
    try:
        p.wait(timeout=60)
        r = run(["perf", "report", "-i", data, "--no-children", "--sort", "dso,symbol",
                 "--stdio", "--percent-limit", "0.5"], timeout=120, check=False)
        with open(txt, "w") as f:
            f.write(r.stdout)
        res["perf_report"] = txt
        top = [ln.strip() for ln in r.stdout.splitlines() if ln.strip() and
               not ln.startswith("#")][:12]
        res["perf_top"] = top
    except Exception as e:  # diagnostic only
        res["perf_error"] = str(e)


def measure(bins, workdir, case, args):
    """Run one case; returns its result dict."""
    name = case["name"]
    if case["kind"] == "topo":  # issue 12: memif chain, many tunnels, two workers
        return topologies.measure(sys.modules[__name__], bins, workdir, case, args)
    if case["kind"] == "cperf":
        return compress_perf(args, workdir, case)
    if case["kind"] == "secgw":
        # Before the measured run: the output must really be ESP of this SA.
        if case["dir"] == "in":
            n = secgw.verify_clear(case["pcap"], case["size"], workdir, name + "-verify")
            log(f"bench:   ipsec-secgw output checked: {n} frames are the plaintext the "
                f"input's ESP (SPI {gen.SPI_IN:#x}) carries")
        else:
            n = secgw.verify_esp(case["pcap"], case["size"], workdir, name + "-verify")
            log(f"bench:   ipsec-secgw output checked: {n} frames are ESP (SPI {gen.SPI_OUT:#x}) "
                f"that decrypt to the input's packets")
        d = secgw.SecGw(case["pcap"], workdir, name, inbound=case["dir"] == "in")
    else:
        cfg = gen.config(case["kind"], case["pcap"], cpu_crypto=case["cpu"],
                         engine="native" if case["crypto"] == "native" else "cryptodev",
                         prefix=f"dpsbench{os.getpid()}", queue_latency_us=case.get("qlat", 0))
        d = Daemon(bins, cfg, workdir, name)
    t_start = time.monotonic()
    d.start()
    ready_s = time.monotonic() - t_start
    res = {"name": name, "dir": case["dir"], "size": case["size"], "crypto": case["crypto"],
           "sas": case["sas"], "traffic": case.get("traffic", ""), "startup_s": round(ready_s, 2)}
    try:
        out_port = "wan" if case["dir"] == "out" else "lan"
        in_port = "lan" if case["dir"] == "out" else "wan"
        # Traffic must flow before the warm-up counts.
        deadline = time.time() + 20
        while d.stats()[1]["ports"][out_port]["tx_packets"] == 0:
            if time.time() > deadline:
                raise RuntimeError(f"{name}: no packet left {out_port} in 20 s:\n"
                                   f"{json.dumps(d.stats()[1], indent=1)}\n{d.read_log()}")
            time.sleep(0.1)
        time.sleep(args.warmup)
        wtid = thread_of(d.proc.pid, r"worker")

        def sample():
            """Counters, and the worker's schedstat at the same moment (averaged
            around the telemetry call, which takes a few ms)."""
            a = schedstat(d.proc.pid, wtid)
            t, c = d.stats()
            b = schedstat(d.proc.pid, wtid)
            return t, c, tuple((x + y) / 2 for x, y in zip(a, b))

        t0, s0, sched0 = sample()
        st0 = cpu_steal(1)
        perf = start_perf(args, workdir, name, d.proc.pid, wtid)
        time.sleep(args.duration)
        t1, s1, sched1 = sample()
        st1 = cpu_steal(1)
        finish_perf(perf, res)
        dt = t1 - t0
        delta = counters_delta(s0, s1)
        op, ip = delta["ports"][out_port], delta["ports"][in_port]
        pkts = op["tx_packets"]
        drops = {f"{p}.{k}": v for p, c in delta["ports"].items() for k, v in c.items()
                 if (k.startswith("drop_") or k.startswith("dev_")) and v}
        if case["sas"] == 1:
            try:
                res["sa_counters"] = d.sa_counters()
            except Exception as e:  # diagnostic only
                res["sa_counters_error"] = str(e)
        if case["kind"] == "secgw":
            # net_null counts no bytes; the verify run checked the frames. Here: traffic
            # went through, it was not lost on the way.
            if pkts <= 0:
                raise RuntimeError(f"{name}: ipsec-secgw sent nothing in {dt:.1f} s: {delta}")
            res["cmdline"] = " ".join(d.cmd)
            res["config"] = secgw.config_text()
        hz = os.sysconf("SC_CLK_TCK")
        res.update({
            "elapsed_s": round(dt, 4),
            "tx_packets": pkts,
            "rx_packets": ip["rx_packets"],
            "tx_bytes_l2": op["tx_bytes"],
            "mpps": pkts / dt / 1e6,
            "gbps": pkts * case["size"] * 8 / dt / 1e9,
            # per second of worker CPU time: what a worker alone on its core would do
            "mpps_per_cpu": (pkts / ((sched1[0] - sched0[0]) / 1e9) / 1e6)
            if wtid and sched1[0] > sched0[0] else None,
            "drops": drops,
            "rx_minus_tx": ip["rx_packets"] - pkts,
            # Of the time the (always runnable) worker wanted the CPU, the share it got.
            "worker_cpu_share": ((sched1[0] - sched0[0]) /
                                 max(1, (sched1[0] - sched0[0]) + (sched1[1] - sched0[1])))
            if wtid else None,
            "worker_on_cpu_s": (sched1[0] - sched0[0]) / 1e9 if wtid else None,
            "cpu1_steal_share": (st1 - st0) / hz / dt,
            "loadavg": open("/proc/loadavg").read().split()[0],
            "counters_t0": s0, "counters_t1": s1,
        })
    finally:
        rc = d.stop()
        res["exit_code"] = rc
        if rc != 0:
            res["log_tail"] = d.read_log()[-2000:]
    return res


CPERF_RE = re.compile(r"^\s*(\d+)\s+(\d+)\s+(\d+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s*$")


def compress_perf(args, workdir, case):
    """dpdk-test-compress-perf, throughput, compression only, on lcore 1 (the dpsecd
    worker's) over case["pcap"] (the forwarded packets back to back, gen.pcap_out):
    one IPCOMP_SIZE segment per operation, as dpsecd compresses one packet per
    operation. Its rate in operations (= packets) per second (of the second of
    its two passes, which it reports), and per second of the lcore-1 thread's
    CPU time: that rate over the share of the time the thread wanted the CPU
    that it got. DPDK 22.11's worker lcores spin while they wait for work, so
    the thread is runnable from start to exit and its on-CPU time includes the
    set-up: operations / on-CPU time would undercount."""
    exe = shutil.which("dpdk-test-compress-perf")
    if exe is None:
        raise RuntimeError("dpdk-test-compress-perf not found (Debian package dpdk-dev)")
    size = case["size"]
    cmd = [exe, "-l", "0,1", "--main-lcore", "0", "--vdev", "compress_isal", "--no-pci",
           "--in-memory", "--file-prefix", f"dpsbenchzp{os.getpid()}", "--log-level", "error",
           "--", "--ptest", "throughput", "--driver-name", "compress_isal",
           "--input-file", case["pcap"], "--seg-sz", str(size), "--max-num-sgl-segs", "1",
           "--burst-sz", "32", "--num-iter", str(args.cperf_iter), "--operation", "comp",
           "--huffman-enc", "dynamic", "--compress-level", "1", "--window-sz", "15"]
    rc, text, sched = run_sampled(cmd, r"worker")
    with open(os.path.join(workdir, f"{case['name']}-{time.time():.0f}.txt"), "w") as f:
        f.write(" ".join(cmd) + f"\n\nexit {rc}, lcore 1 thread (ns on CPU, ns waiting): "
                f"{sched}\n\n" + text)
    m = next((CPERF_RE.match(ln) for ln in text.splitlines() if CPERF_RE.match(ln)), None)
    if rc != 0 or m is None:
        raise RuntimeError(f"dpdk-test-compress-perf gave no result (exit {rc}):\n{text[-2000:]}")
    gbps = float(m.group(5))
    mops = gbps * 1e9 / 8 / size / 1e6
    share = sched[0] / (sched[0] + sched[1]) if sched and sched[0] else None
    return {"name": case["name"], "dir": case["dir"], "size": size, "crypto": case["crypto"],
            "sas": 0, "traffic": "", "mpps": mops, "gbps": gbps,
            "mpps_per_cpu": mops / share if share else None, "worker_cpu_share": share,
            "comp_ratio_pct": float(m.group(4)), "drops": {}, "rx_minus_tx": 0, "startup_s": "-",
            "cmdline": " ".join(cmd)}


CP_RE = re.compile(r"^\s*(\d+),(\d+),(\d+),(\d+),(\d+),(\d+),(\d+),([\d.]+),([\d.]+),([\d.]+)")


def run_sampled(cmd, pattern, timeout=300):
    """Run cmd; while it runs, sample the schedstat of its threads named like
    pattern. Returns (exit code, output, (ns on CPU, ns runnable but waiting)
    of those threads from their start to the last sample, or None)."""
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    last = {}
    deadline = time.time() + timeout
    while p.poll() is None and time.time() < deadline:
        try:
            for tid in os.listdir(f"/proc/{p.pid}/task"):
                with open(f"/proc/{p.pid}/task/{tid}/comm") as f:
                    if not re.search(pattern, f.read()):
                        continue
                st = schedstat(p.pid, tid)
                if st != (0, 0):
                    last[tid] = st
        except (FileNotFoundError, ProcessLookupError):
            pass
        time.sleep(0.01)
    if p.poll() is None:
        p.kill()
    out = p.communicate()[0]
    if not last:
        return p.returncode, out, None
    return p.returncode, out, (sum(v[0] for v in last.values()), sum(v[1] for v in last.values()))


def imb_rate_exe(workdir):
    """imb_rate.c built in @workdir with cc (once), or None."""
    exe = os.path.join(workdir, "imb_rate")
    src = os.path.join(HERE, "imb_rate.c")
    if not os.path.exists(exe):
        r = run(["cc", "-O2", "-o", exe, src, "-lIPSec_MB"], check=False)
        if r.returncode != 0:
            log(f"bench: cannot build {src} (libipsec-mb-dev?): {r.stdout}")
            return None
    return exe


def imb_rate(args, workdir, runs=3):
    """intel-ipsec-mb's AES-128-GCM encrypt alone, through the direct API the
    native engine calls (imb_rate.c, built here with cc), on lcore 1:
    {size: {mops_per_cpu, ns_per_op, runs}}, the best of @runs by CPU time."""
    return imb_rate_runs(args, workdir, SIZES, runs)


def imb_rate_runs(args, workdir, sizes, runs, style=(), batch=1):
    """imb_rate.c on lcore 1 for each of @sizes (@style: its call-style
    arguments; ops a multiple of @batch), @runs times: {size: {mops_per_cpu,
    ns_per_op, runs}}, the best run by CPU time."""
    exe = imb_rate_exe(workdir)
    if exe is None:
        return {}
    out = {}
    for size in sizes:
        per = []
        for _ in range(runs):
            ops = args.cp_ops if size < 1000 else args.cp_ops // 2
            ops -= ops % batch
            r = run(["taskset", "-c", "1", exe, str(size), str(ops), *style], check=False)
            f = r.stdout.split()
            if r.returncode == 0 and len(f) >= 4 and int(f[3]) > 0:
                per.append(ops / (int(f[3]) / 1e9) / 1e6)
        if per:
            out[size] = {"mops_per_cpu": max(per), "ns_per_op": 1e3 / max(per), "runs": per}
    return out


def imb_pair(args, workdir, sizes, rounds=3):
    """Goal 5's ceiling on this machine: imb_rate.c (AES-128-GCM through the
    direct API, a loop that touches nothing but its buffer) on CPU 0 and CPU 1
    at once, against the same on CPU 1 alone, @rounds times interleaved:
    {size: {"rounds": [(both, alone), ...], "median": x}}, both = the sum of
    the two processes' ops per CPU-second. Below 2 x, the two CPUs are not two
    whole cores (SMT siblings or a shared core on the host) or share a clock
    or cache: two workers cannot scale past it."""
    exe = imb_rate_exe(workdir)
    if exe is None:
        return {}
    out = {}
    for size in sizes:
        ops = args.cp_ops if size < 1000 else args.cp_ops // 2
        rs = []
        for _ in range(rounds):
            a = run(["taskset", "-c", "1", exe, str(size), str(ops)], check=False).stdout.split()
            ps = [subprocess.Popen(["taskset", "-c", str(c), exe, str(size), str(ops)],
                                   stdout=subprocess.PIPE, text=True) for c in (0, 1)]
            both = [p.communicate()[0].split() for p in ps]
            if len(a) < 4 or int(a[3]) <= 0 or any(len(b) < 4 or int(b[3]) <= 0 for b in both):
                continue
            alone = ops / (int(a[3]) / 1e9) / 1e6
            rs.append((sum(ops / (int(b[3]) / 1e9) / 1e6 for b in both), alone))
        if rs:
            ratios = sorted(b / a for b, a in rs)
            out[size] = {"rounds": rs, "median": ratios[len(ratios) // 2]}
    return out


def crypto_perf(args, workdir, tag):
    """dpdk-test-crypto-perf, AES-128-GCM encrypt, on lcore 1 (the dpsecd
    worker's): {size: {mops, gbps, cycles_per_buf, cpu_share}}, one process
    per size so that each has its own on-CPU share."""
    exe = shutil.which("dpdk-test-crypto-perf")
    if exe is None:
        log("dpdk-test-crypto-perf not found (Debian package dpdk): no ceiling")
        return {}
    out = {}
    for size in SIZES:
        cmd = [exe, "-l", "0,1", "--main-lcore", "0", "--vdev", "crypto_aesni_mb", "--no-pci",
               "--in-memory", "--file-prefix", f"dpsbenchcp{os.getpid()}", "--log-level",
               "error", "--", "--ptest", "throughput", "--devtype", "crypto_aesni_mb",
               "--optype", "aead", "--aead-algo", "aes-gcm", "--aead-op", "encrypt",
               "--aead-key-sz", "16", "--aead-iv-sz", "12", "--aead-aad-sz", "8",
               "--digest-sz", "16", "--burst-sz", "32", "--buffer-sz", str(size),
               "--total-ops", str(args.cp_ops if size < 1000 else args.cp_ops // 2),
               "--silent", "--csv-friendly"]
        rc, text, sched = run_sampled(cmd, r"worker")
        with open(os.path.join(workdir, f"crypto-perf-{tag}-{size}.txt"), "w") as f:
            f.write(" ".join(cmd) + f"\n\nexit {rc}, lcore 1 thread (ns on CPU, ns waiting): "
                    f"{sched}\n\n" + text)
        for line in text.splitlines():
            m = CP_RE.match(line)
            if m and int(m.group(2)) == size:
                ops, mops = int(m.group(5)), float(m.group(8))
                # The lcore-1 thread does nothing but the test loop: ops per second of
                # its CPU time is the rate it would have alone on the core.
                per_cpu = ops / (sched[0] / 1e9) / 1e6 if sched and sched[0] else None
                out[size] = {"mops": mops, "gbps": float(m.group(9)),
                             "cycles_per_buf": float(m.group(10)), "mops_per_cpu": per_cpu,
                             "cpu_share": min(1.0, mops / per_cpu) if per_cpu else None}
        if size not in out:
            log(f"bench: dpdk-test-crypto-perf {size} B gave no result (exit {rc}):\n{text}")
    return out


def crypto_perf_auth(args, workdir):
    """dpdk-test-crypto-perf, HMAC-SHA2-256 (16-byte digest) generate, auth-only,
    on lcore 1: {size: {mops, mops_per_cpu}}, for AH's ideal rate."""
    exe = shutil.which("dpdk-test-crypto-perf")
    if exe is None:
        return {}
    out = {}
    for size in AH_SIZES:
        cmd = [exe, "-l", "0,1", "--main-lcore", "0", "--vdev", "crypto_aesni_mb", "--no-pci",
               "--in-memory", "--file-prefix", f"dpsbenchcpa{os.getpid()}", "--log-level",
               "error", "--", "--ptest", "throughput", "--devtype", "crypto_aesni_mb",
               "--optype", "auth-only", "--auth-algo", "sha2-256-hmac", "--auth-op", "generate",
               "--auth-key-sz", "32", "--digest-sz", "16", "--burst-sz", "32",
               "--buffer-sz", str(size), "--total-ops", str(args.cp_ops if size < 1000 else args.cp_ops // 2),
               "--silent", "--csv-friendly"]
        rc, text, sched = run_sampled(cmd, r"worker")
        with open(os.path.join(workdir, f"crypto-perf-auth-{size}.txt"), "w") as f:
            f.write(" ".join(cmd) + f"\n\nexit {rc}, lcore 1 thread: {sched}\n\n" + text)
        for line in text.splitlines():
            m = CP_RE.match(line)
            if m and int(m.group(2)) == size:
                ops = int(m.group(5))
                per_cpu = ops / (sched[0] / 1e9) / 1e6 if sched and sched[0] else None
                out[size] = {"mops": float(m.group(8)), "mops_per_cpu": per_cpu}
        if size not in out:
            log(f"bench: dpdk-test-crypto-perf auth-only {size} B gave no result (exit {rc}):\n{text}")
    return out


def imb_hmac_rate(args, workdir, runs=3):
    """intel-ipsec-mb's HMAC-SHA2-256-128 alone, hash-only jobs of 32 through
    IMB_SUBMIT_HASH_BURST as the native engine submits AH's (imb_rate.c hmac),
    on lcore 1: {size: {mops_per_cpu, ns_per_op, runs}}, the best of @runs."""
    return imb_rate_runs(args, workdir, AH_SIZES, runs, ("hmac", "32"), 32)


def ah_lines(results, auth, lib=None):
    """AH against its ideal rate 1 / (t_forward + t_auth) of the same run, both per
    CPU-second: t_forward from the fwd case, t_auth from crypto-perf auth-only; for
    each engine (native: imb.c's HMAC; cpu: crypto_aesni_mb's CPU crypto), and the
    baseline build's where it ran (base:CASE). @lib: the library's HMAC alone."""
    by = {r["name"]: r for r in results}
    lines = []
    for size in AH_SIZES:
        fwd, a = by.get(f"fwd-{size}", {}), auth.get(size, {})
        if not fwd.get("mpps_per_cpu") or not a.get("mops_per_cpu"):
            continue
        ideal = 1 / (1 / fwd["mpps_per_cpu"] + 1 / a["mops_per_cpu"])
        for d in ("out", "in"):
            for name in (f"{pre}ah-{d}-{size}-{e}-1sa" for e in ("native", "cpu")
                         for pre in ("", "base:")):
                r = by.get(name, {})
                if not r.get("mpps_per_cpu"):
                    continue
                ratio = r["mpps_per_cpu"] / ideal
                goal = f" (goal {GOAL_AH_RATIO:.0%}: {'met' if ratio >= GOAL_AH_RATIO else 'NOT met'})" \
                    if size == 1420 else ""
                lines.append(f"AH {name}: {r['mpps_per_cpu']:.3f} Mpps/CPU vs ideal {ideal:.3f} "
                             f"(fwd {fwd['mpps_per_cpu']:.3f}, HMAC-SHA2-256 {a['mops_per_cpu']:.3f} "
                             f"Mops/CPU) = {ratio:.1%}{goal}")
        if lib and size in lib:
            lines.append(f"  intel-ipsec-mb HMAC-SHA2-256-128 alone (IMB_SUBMIT_HASH_BURST of 32, "
                         f"imb_rate.c hmac), {size} B: {lib[size]['mops_per_cpu']:.3f} Mops/CPU "
                         f"({lib[size]['ns_per_op']:.0f} ns; crypto-perf through cryptodev "
                         f"{1e3 / a['mops_per_cpu']:.0f} ns)")
    return lines


def ipcomp_lines(results):
    """IPComp against dpdk-test-compress-perf on the same data: per worker CPU-second,
    round by round (paired, seconds apart) and best against best; and what the
    SA did with the packets (compressed or sent uncompressed)."""
    by = {r["name"]: r for r in results}
    lines = []
    for f in IPCOMP_FILLS:
        a, b = by.get(f"ipcomp-out-{IPCOMP_SIZE}-{f}", {}), by.get(f"ipcomp-cperf-{IPCOMP_SIZE}-{f}", {})
        if not a.get("mpps_per_cpu") or not b.get("mpps_per_cpu"):
            continue
        paired = [x["mpps_per_cpu"] / y["mpps_per_cpu"] for x, y in zip(a["rounds"], b["rounds"])
                  if x.get("mpps_per_cpu") and y.get("mpps_per_cpu")]
        med = statistics.median(paired) if paired else a["mpps_per_cpu"] / b["mpps_per_cpu"]
        sa = next(iter((a.get("sa_counters") or {}).get("sas", {}).values()), {})
        what = (f"; SA: {sa.get('packets', 0) - sa.get('uncompressed', 0)} compressed, "
                f"{sa.get('uncompressed', 0)} sent uncompressed" if sa else "")
        lines.append(f"goal: IPComp out {IPCOMP_SIZE} B {f} >= {GOAL_IPCOMP_RATIO:.0%} of "
                     f"dpdk-test-compress-perf (per CPU-second): paired rounds "
                     f"{' / '.join(f'{x:.0%}' for x in paired)}, median {med:.0%}, "
                     f"{'met' if med >= GOAL_IPCOMP_RATIO else 'NOT met'}; best {a['mpps_per_cpu']:.3f} "
                     f"/ {b['mpps_per_cpu']:.3f} Mpps (compress-perf ratio "
                     f"{b.get('comp_ratio_pct', 0):.1f} %){what}")
    return lines


def machine():
    info = {"kernel": platform.release(), "nproc": os.cpu_count()}
    with open("/proc/cpuinfo") as f:
        txt = f.read()
    m = re.search(r"model name\s*:\s*(.*)", txt)
    info["cpu"] = m.group(1).strip() if m else "?"
    m = re.search(r"cpu MHz\s*:\s*(.*)", txt)
    info["cpu_mhz"] = m.group(1).strip() if m else "?"
    m = re.search(r"^flags\s*:\s*(.*)$", txt, re.M)
    flags = set(m.group(1).split()) if m else set()
    info["flags"] = sorted(f for f in flags
                           if f in ("aes", "avx2", "vaes", "vpclmulqdq", "sha_ni")
                           or f.startswith("avx512"))
    info["hypervisor"] = "hypervisor" in flags
    with open("/proc/loadavg") as f:
        info["loadavg"] = f.read().split()[0]
    try:
        info["dpdk"] = run(["pkg-config", "--modversion", "libdpdk"]).stdout.strip()
    except Exception:
        info["dpdk"] = "?"
    try:
        info["ipsec_mb"] = run(["dpkg-query", "-W", "-f=${Version}", "libipsec-mb1"],
                               check=False).stdout.strip()
    except Exception:
        info["ipsec_mb"] = "?"
    try:
        info["git"] = run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"]).stdout.strip()
        dirty = run(["git", "-C", ROOT, "status", "--porcelain", "--untracked-files=no"]).stdout
        info["git_dirty_files"] = len(dirty.splitlines())
    except Exception:
        info["git"] = "?"
    return info


def build_cases(pcaps, args):
    """The cases, in order. Names: DIR-SIZE-CRYPTO-NSAsa[-variant]."""
    cases = []
    N = gen.N_SCALE

    def add(name, dir_, size, crypto, sas, kind, pcap, group, **extra):
        if args.only and not re.search(args.only, name):
            return
        cases.append({"name": name, "dir": dir_, "size": size, "crypto": crypto, "sas": sas,
                      "kind": kind, "pcap": pcap, "cpu": crypto != "async", "group": group,
                      **extra})

    # Main cases: the small pcaps (cache-resident; see gen.N_MAIN_PKTS).
    for size in SIZES:
        add(f"fwd-{size}", "out", size, "-", 0, "fwd", pcaps[("out", size)], "baseline")
    for crypto in ("native", "cpu", "async"):
        for size in SIZES:
            add(f"out-{size}-{crypto}-1sa", "out", size, crypto, 1, "out", pcaps[("out", size)],
                "main")
        for size in SIZES:
            add(f"in-{size}-{crypto}-1sa", "in", size, crypto, 1, "in", pcaps[("in", size)],
                "main")
    # Issue 12: the queue path on a device with latency (crypto.queue_latency_us
    # simulates one): operations stay in flight across loops; with --baseline,
    # against a build whose worker spins until they are back (main's).
    for dir_ in ("out", "in"):
        for size in SIZES:
            add(f"{dir_}-{size}-async-1sa-lat{QLAT_US}", dir_, size, "async", 1, dir_,
                pcaps[(dir_, size)], "qlat", qlat=QLAT_US)
    # AH tunnel HMAC-SHA2-256-128 (RFC 4302, ah.c), beside crypto-perf's auth-only rate:
    # the native engine's HMAC (imb.c), and crypto_aesni_mb's CPU crypto (engine cryptodev).
    for crypto in ("native", "cpu"):
        for size in AH_SIZES:
            add(f"ah-out-{size}-{crypto}-1sa", "out", size, crypto, 1, "ah-out",
                pcaps[("out", size)], "ah")
            add(f"ah-in-{size}-{crypto}-1sa", "in", size, crypto, 1, "ah-in",
                pcaps[("ah-in", size)], "ah")
    # IPComp tunnel (ipcomp.c, compress_isal), each beside dpdk-test-compress-perf
    # on the same packets, right after it in every round.
    for fill in IPCOMP_FILLS:
        add(f"ipcomp-out-{IPCOMP_SIZE}-{fill}", "out", IPCOMP_SIZE, "isal", 1, "ipcomp-out",
            pcaps[(f"ipcomp-{fill}", IPCOMP_SIZE)], "ipcomp")
        add(f"ipcomp-cperf-{IPCOMP_SIZE}-{fill}", "out", IPCOMP_SIZE, "isal", 0, "cperf",
            pcaps[(f"cperf-{fill}", IPCOMP_SIZE)], "ipcomp")
    # Reference: DPDK's ipsec-secgw on the main outbound and inbound pcaps.
    for size in SIZES:
        add(f"secgw-out-{size}", "out", size, "cryptodev", 1, "secgw", pcaps[("out", size)],
            "reference")
    for size in SIZES:
        add(f"secgw-in-{size}", "in", size, "cryptodev", 1, "secgw", pcaps[("in", size)],
            "reference")
    # Scale: 10 000-frame pcaps (one frame per remote subnet) for 1 and for N SAs.
    for size in SCALE_SIZES:
        add(f"out-{size}-cpu-1sa-spread", "out", size, "cpu", 1, "out",
            pcaps[("spread", size)], "scale")
        add(f"out-{size}-cpu-{N}sa-spread", "out", size, "cpu", N, "scale",
            pcaps[("spread", size)], "scale")
        if not args.no_diag:
            add(f"out-{size}-cpu-{N}sa-one", "out", size, "cpu", N, "scale",
                pcaps[("one", size)], "scale")
    # Issue 12, goals 3 to 5 (topologies.py): anti-replay on over a memif chain,
    # many tunnels, two workers. They make their own pcaps.
    topologies.cases(add, SIZES)
    if args.baseline:
        # Each dpsecd case again with the baseline build, right after it in
        # the same round: the pair is measured seconds apart. Of the
        # topologies, the tunnel cases (one dpsecd each).
        paired = []
        for c in cases:
            paired.append(c)
            if c["kind"] not in ("secgw", "cperf", "topo") or c["group"] == "tunnels":
                paired.append(dict(c, name="base:" + c["name"], bins="base"))
        cases = paired
    return cases


def pct(x):
    return f"{x * 100:.0f}%" if x is not None else "?"


def ceil_ratio(r, ceiling, norm):
    c = ceiling.get(r["size"])
    if not c or r["dir"] == "fwd" or r.get("sas", 0) == 0 or r.get("group") == "ipcomp":
        return None
    if norm:
        return r["mpps_per_cpu"] / c["mops_per_cpu"] if r.get("mpps_per_cpu") and \
            c.get("mops_per_cpu") else None
    return r["mpps"] / c["mops"]


def fmt_table(results, ceiling):
    rows = []
    hdr = ("case", "Mpps", "Gbps", "vs ceil", "on-CPU", "Mpps/CPU", "Gbps/CPU", "vs ceil/CPU",
           "lost")
    group = None
    for r in results:
        if r.get("group") != group:
            group = r.get("group")
            rows.append((f"[{group}]",) + ("",) * (len(hdr) - 1))
        if "mpps" not in r:
            rows.append((r["name"], "not run" if r.get("skipped") else "FAILED")
                        + ("",) * (len(hdr) - 2))
            continue
        rr, rn = ceil_ratio(r, ceiling, False), ceil_ratio(r, ceiling, True)
        inb = r["dir"] == "in"  # decrypts: the ceiling is encrypt, shown in parentheses
        wrap = (lambda x: f"({x})" if x != "-" else x) if inb else (lambda x: x)
        ppc = r.get("mpps_per_cpu")
        lost = sum(r["drops"].values()) + max(0, r.get("rx_minus_tx", 0) - 2048)
        rows.append((r["name"], f"{r['mpps']:.3f}", f"{r['gbps']:.2f}",
                     wrap(pct(rr) if rr else "-"), pct(r.get("worker_cpu_share")),
                     f"{ppc:.3f}" if ppc else "?",
                     f"{ppc * r['size'] * 8 / 1000:.2f}" if ppc else "?",
                     wrap(pct(rn) if rn else "-"), str(lost)))
    w = [max(len(h), *(len(x[i]) for x in rows)) if rows else len(h) for i, h in enumerate(hdr)]

    def line(t):
        return "  ".join(x.ljust(w[i]) if i == 0 else x.rjust(w[i])
                         for i, x in enumerate(t)).rstrip()
    return "\n".join([line(hdr), line(tuple("-" * x for x in w))] + [line(x) for x in rows])


def summary(results, ceiling, lib=None):
    by = {r["name"]: r for r in results if "mpps" in r}
    N = gen.N_SCALE
    lines = []

    def g(n, k="mpps"):
        return by.get(n, {}).get(k)

    def verdict(ok):
        return "met" if ok else "NOT met"

    # Issue 12, goals 1 and 2, for each engine, direction and size (per worker CPU-second).
    for eng in ("native", "cpu"):
        for d in ("out", "in"):
            for size in SIZES:
                a = g(f"{d}-{size}-{eng}-1sa", "mpps_per_cpu")
                b = g(f"secgw-{d}-{size}", "mpps_per_cpu")
                f = g(f"fwd-{size}", "mpps_per_cpu")
                c = ceiling.get(size, {}).get("mops_per_cpu")
                if not a:
                    continue
                parts = [f"{d} {size} B {eng}: {a:.3f} Mpps/CPU-s"]
                if b:
                    goal = GOAL_SECGW[size]
                    parts.append(f"vs ipsec-secgw {b:.3f} = {a / b:.2f} x (goal >= {goal}, "
                                 f"{verdict(a / b >= goal)})")
                if f and c:
                    ideal = 1 / (1 / f + 1 / c)
                    parts.append(f"vs ideal 1/(t_fwd + t_crypto) {ideal:.3f} = "
                                 f"{a / ideal * 100:.0f}% (goal >= {GOAL_IDEAL * 100:.0f}%, "
                                 f"{verdict(a / ideal >= GOAL_IDEAL)})")
                li = (lib or {}).get(size, {}).get("mops_per_cpu")
                if f and li:
                    ideal = 1 / (1 / f + 1 / li)
                    parts.append(f"with the library's own t_crypto {ideal:.3f} = "
                                 f"{a / ideal * 100:.0f}%")
                lines.append("; ".join(parts))
    m, n = g("out-64-cpu-1sa"), g("out-64-cpu-1sa", "mpps_per_cpu")
    sm, sn = g("secgw-out-64"), g("secgw-out-64", "mpps_per_cpu")
    if m and n and sm and sn:
        lines.append(f"goal: 64 B outbound >= {GOAL_64_RATIO} x ipsec-secgw, measured in this "
                     f"run: dpsecd {m:.2f} / ipsec-secgw {sm:.2f} Mpps = {m / sm:.2f} x, "
                     f"{verdict(m / sm >= GOAL_64_RATIO)}; per worker CPU-second {n:.2f} / "
                     f"{sn:.2f} = {n / sn:.2f} x, {verdict(n / sn >= GOAL_64_RATIO)}")
    elif m and n:
        goal = GOAL_64_RATIO * SECGW_64_MPPS
        lines.append(f"goal: 64 B outbound >= {GOAL_64_RATIO} x ipsec-secgw: ipsec-secgw NOT "
                     f"measured in this run, falling back to the old given {SECGW_64_MPPS} Mpps "
                     f"(another machine), so >= {goal:.1f} Mpps: measured {m:.2f} Mpps "
                     f"({m / SECGW_64_MPPS:.2f} x), {verdict(m >= goal)}; per worker CPU-second "
                     f"{n:.2f} Mpps ({n / SECGW_64_MPPS:.2f} x), {verdict(n >= goal)}")
    for size in SIZES[1:]:
        a, b = g(f"out-{size}-cpu-1sa", "mpps_per_cpu"), g(f"secgw-out-{size}", "mpps_per_cpu")
        if a and b:
            lines.append(f"{size} B outbound: dpsecd / ipsec-secgw = {a / b:.2f} x (per worker "
                         f"CPU-second, {a:.3f} / {b:.3f} Mpps)")
    r = by.get("out-1420-cpu-1sa")
    if r and 1420 in ceiling:
        a, b = ceil_ratio(r, ceiling, False), ceil_ratio(r, ceiling, True)
        c = ceiling[1420]
        lines.append(f"goal: 1420 B outbound >= 90% of raw crypto: measured {a * 100:.0f}% "
                     f"({r['mpps']:.3f} / {c['mops']:.3f}), {verdict(a >= GOAL_1420_RATIO)}; "
                     + (f"per CPU-second {b * 100:.0f}% ({r['mpps_per_cpu']:.3f} / "
                        f"{c['mops_per_cpu']:.3f}), {verdict(b >= GOAL_1420_RATIO)}"
                        if b else "per CPU-second ?"))
    for size in SCALE_SIZES:
        for k, label in (("mpps", "measured"), ("mpps_per_cpu", "per CPU-second")):
            a, b = g(f"out-{size}-cpu-1sa-spread", k), g(f"out-{size}-cpu-{N}sa-spread", k)
            if a and b:
                lines.append(f"goal: {size} B, {N} SAs >= 85% of 1 SA: {label} "
                             f"{b:.3f} / {a:.3f} = {b / a * 100:.0f}%, "
                             f"{verdict(b / a >= GOAL_SCALE_RATIO)}")
        a = g(f"out-{size}-cpu-1sa-spread", "mpps_per_cpu")
        c = g(f"out-{size}-cpu-{N}sa-one", "mpps_per_cpu")
        if a and c:
            lines.append(f"  diagnostic: {size} B, {N} SAs configured but all traffic on one: "
                         f"{c / a * 100:.0f}% of 1 SA (per CPU-second)")
    for size in SIZES:
        a = g(f"out-{size}-cpu-1sa", "mpps_per_cpu")
        b = g(f"out-{size}-async-1sa", "mpps_per_cpu")
        f = g(f"fwd-{size}", "mpps_per_cpu")
        if a and b:
            lines.append(f"{size} B outbound: async cryptodev = {b / a * 100:.0f}% of CPU crypto"
                         + (f"; plain forwarding (no IPsec) {f:.2f} Mpps per CPU-second" if f
                            else ""))
    return "\n".join(lines)


def run_case(bins, work, case, args):
    """One measurement of @case; a failed case is recorded, not raised."""
    if case["kind"] == "secgw" and not os.access(secgw.BIN, os.X_OK):
        log(f"bench:   {secgw.BIN} missing (scripts/ipsec-secgw.sh builds it): "
            "ipsec-secgw reference not measured")
        r = {k: case[k] for k in ("name", "dir", "size", "crypto", "sas")}
        r.update(skipped=True, group=case["group"])
        return r
    try:
        r = measure(bins, work, case, args)
    except Exception as e:  # keep going: one failed case must not hide the others
        log(f"bench: {case['name']} FAILED: {e}")
        r = {k: case[k] for k in ("name", "dir", "size", "crypto", "sas")}
        r["error"] = str(e)
    else:
        log(f"bench:   {r['mpps']:.3f} Mpps {r['gbps']:.2f} Gbps; worker on CPU "
            f"{pct(r['worker_cpu_share'])} of the time, {r['mpps_per_cpu'] or 0:.3f} Mpps "
            f"per CPU-second; drops {sum(r['drops'].values())}; startup {r['startup_s']} s")
    r["group"] = case["group"]
    return r


def rounds_lines(results, repeat):
    """With --repeat: every round's rate per worker CPU-second of each case."""
    if repeat < 2:
        return []
    lines = [f"rounds: Mpps per CPU-second of each of the {repeat} rounds (the table shows the best)"]
    for r in results:
        rates = " / ".join(f"{x['mpps_per_cpu']:.3f}" if x.get("mpps_per_cpu") else "-"
                           for x in r.get("rounds", []))
        lines.append(f"  {r['name']:<30} {rates}")
    # Paired within a round (seconds apart when --only selects just the two), the ratio to
    # ipsec-secgw is steadier than best against best on a machine whose speed
    # drifts over minutes.
    by = {r["name"]: r for r in results}
    pairs = [(f"{d}-{size}-{e}-1sa", f"secgw-{d}-{size}", f"{d} {size} B dpsecd {e} / ipsec-secgw",
              "x") for e in ("native", "cpu") for d in ("out", "in") for size in SIZES]
    pairs += [(f"{d}-{size}-native-1sa", f"{d}-{size}-cpu-1sa",
               f"{d} {size} B dpsecd native / cryptodev CPU crypto", "x")
              for d in ("out", "in") for size in SIZES]
    pairs += [(r["name"][5:], r["name"], f"{r['name'][5:]} new / baseline build", "x")
              for r in results if r["name"].startswith("base:")]
    pairs += [(f"ipcomp-out-{IPCOMP_SIZE}-{f}", f"ipcomp-cperf-{IPCOMP_SIZE}-{f}",
               f"IPComp {f} / compress-perf", "x") for f in IPCOMP_FILLS]
    pairs += [(f"out-{size}-cpu-{gen.N_SCALE}sa-spread", f"out-{size}-cpu-1sa-spread",
               f"{size} B {gen.N_SCALE} SAs / 1 SA", "of 1 SA") for size in SIZES]
    for a_name, b_name, label, unit in pairs:
        a, b = by.get(a_name), by.get(b_name)
        if not a or not b:
            continue
        ratios = [x["mpps_per_cpu"] / y["mpps_per_cpu"]
                  for x, y in zip(a.get("rounds", []), b.get("rounds", []))
                  if x.get("mpps_per_cpu") and y.get("mpps_per_cpu")]
        if ratios:
            lines.append(f"  {label}, round by round: {' / '.join(f'{x:.2f}' for x in ratios)}; "
                         f"median {statistics.median(ratios):.2f} {unit}")
    return lines + [""]


def best_round(runs):
    """The run of one case with the best rate per worker CPU-second; every
    round's rates are kept beside it."""
    ok = [r for r in runs if r.get("mpps_per_cpu")]
    best = dict(max(ok, key=lambda r: r["mpps_per_cpu"]) if ok else runs[0])
    best["rounds"] = [{"mpps": r.get("mpps"), "mpps_per_cpu": r.get("mpps_per_cpu")}
                      for r in runs]
    return best


# --- Issue 12: the goals table and the chart --------------------------------------------

def engines(by, d, size):
    """dpsecd's crypto paths measured for one direction and size."""
    return [e for e in ("native", "cpu") if f"{d}-{size}-{e}-1sa" in by]


def goals_table(results, ceiling):
    """Issue 12's goals 1 to 5, one row each: (goal, measured, verdict). Ratios to
    ipsec-secgw are the median of the rounds paired (topologies.paired); the ideal
    1 / (t_forward + t_crypto) is of the best rounds of fwd-SIZE and crypto-perf."""
    by = {r["name"]: r for r in results if "mpps" in r}
    rows = []
    for d in ("out", "in"):
        for size in SIZES:
            for e in engines(by, d, size):
                a = f"{d}-{size}-{e}-1sa"
                rs, med = topologies.paired(by, a, f"secgw-{d}-{size}")
                if med is not None:
                    rows.append((f"1. {d} {size} B {e} >= {GOAL_SECGW[size]} x ipsec-secgw",
                                 f"{med:.2f} x (rounds {topologies.fmt_rounds(rs)})",
                                 "met" if med >= GOAL_SECGW[size] else "NOT met"))
                f = by.get(f"fwd-{size}", {}).get("mpps_per_cpu")
                c = ceiling.get(size, {}).get("mops_per_cpu")
                if f and c:
                    ideal = 1 / (1 / f + 1 / c)
                    x = by[a]["mpps_per_cpu"] / ideal
                    rows.append((f"2. {d} {size} B {e} >= {GOAL_IDEAL:.0%} of ideal",
                                 f"{x:.0%} ({by[a]['mpps_per_cpu']:.2f} / {ideal:.2f})",
                                 "met" if x >= GOAL_IDEAL else "NOT met"))
    N = gen.N_SCALE
    for size in SCALE_SIZES:
        rs, med = topologies.paired(by, f"out-{size}-cpu-{N}sa-spread", f"out-{size}-cpu-1sa-spread")
        if med is not None:
            rows.append((f"4. {N} SAs (outbound only) {size} B >= {GOAL_SCALE_RATIO:.0%} of 1 SA",
                         f"{med:.0%}", "met" if med >= GOAL_SCALE_RATIO else "NOT met"))
    rows += topologies.lines(results)[1]
    if not rows:
        return []
    rows.sort(key=lambda r: r[0][:2])
    w = [max(len(r[i]) for r in rows + [("goal", "measured (per worker CPU-second)", "verdict")])
         for i in range(3)]
    out = ["goals (issue 12):",
           f"  {'goal'.ljust(w[0])}  {'measured (per worker CPU-second)'.ljust(w[1])}  verdict"]
    out += [f"  {g.ljust(w[0])}  {m.ljust(w[1])}  {v}" for g, m, v in rows]
    return out + [""]


def write_chart(results, ceiling, path):
    """results.png: Mpps per worker CPU-second per size (dpsecd, ipsec-secgw, the ideal,
    the crypto ceiling), and the many-tunnel curve (rate / 1-SA rate on the same pcap)."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log("bench: python3-matplotlib missing: no results.png")
        return None
    by = {r["name"]: r for r in results if r.get("mpps_per_cpu")}
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.8))
    for ax, d in zip(axes[:2], ("out", "in")):
        series = {f"dpsecd {e}": f"{d}-{{}}-{e}-1sa" for e in ("native", "cpu")}
        series["ipsec-secgw"] = f"secgw-{d}-{{}}"
        for label, pat in series.items():
            xs = [s for s in SIZES if pat.format(s) in by]
            if xs:
                ax.plot(xs, [by[pat.format(s)]["mpps_per_cpu"] for s in xs], "o-", label=label)
        xs = [s for s in SIZES if f"fwd-{s}" in by and ceiling.get(s, {}).get("mops_per_cpu")]
        if xs:
            ax.plot(xs, [1 / (1 / by[f"fwd-{s}"]["mpps_per_cpu"] + 1 / ceiling[s]["mops_per_cpu"])
                         for s in xs], "k--", label="ideal 1/(t_fwd + t_crypto)")
        xs = [s for s in SIZES if ceiling.get(s, {}).get("mops_per_cpu")]
        if xs:
            ax.plot(xs, [ceiling[s]["mops_per_cpu"] for s in xs], "k:",
                    label="ceiling: crypto-perf AES-GCM")
        xs = [s for s in SIZES if f"chain-in-{s}-w64" in by]
        if d == "in" and xs:
            ax.plot(xs, [by[f"chain-in-{s}-w64"]["mpps_per_cpu"] for s in xs], "s-",
                    label="dpsecd cpu, anti-replay on (memif chain: another input)")
        ax.set(title=f"{'outbound' if d == 'out' else 'inbound'}, 1 SA", xlabel="packet size (B)",
               ylabel="Mpps per worker CPU-second", xscale="log", xticks=list(SIZES),
               xticklabels=[str(s) for s in SIZES])
        ax.set_ylim(bottom=0)
        ax.legend(fontsize=7)
    ax = axes[2]
    for size in topologies.TUNNEL_SIZES:
        pts = [(1, 1.0)] + [(n, topologies.paired(by, f"tun-{size}-{n}", f"tun-{size}-1sa-{n}")[1])
                            for n in topologies.TUNNELS]
        pts = [(n, r) for n, r in pts if r is not None]
        if len(pts) > 1:
            ax.plot([n for n, _ in pts], [r * 100 for _, r in pts], "o-", label=f"{size} B")
    for n, g in topologies.GOAL_TUNNELS.items():
        ax.plot([n], [g * 100], "r_", markersize=20)
    ax.set(title="many tunnels, traffic spread (red: goals)", xscale="log",
           xlabel="tunnels (2 SAs, 2 policies each)", ylabel="% of the 1-SA rate, same pcap")
    ax.set_ylim(0, 110)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", help="results directory (default /tmp/dpsec-bench-DATE)")
    ap.add_argument("--duration", type=float, default=5.0, help="seconds between the samples")
    ap.add_argument("--warmup", type=float, default=2.0, help="seconds of traffic before")
    ap.add_argument("--cp-ops", type=int, default=10_000_000,
                    help="dpdk-test-crypto-perf operations (half of it at 1420 B)")
    ap.add_argument("--only", help="regex: run only the cases whose name matches")
    ap.add_argument("--no-diag", action="store_true",
                    help=f"skip the diagnostic {gen.N_SCALE}-SA runs with traffic on one SA")
    ap.add_argument("--perf", action="store_true",
                    help="profile the worker with perf record (cpu-clock) in every case")
    ap.add_argument("--repeat", type=int, default=1,
                    help="rounds over every case; each case's best round counts")
    ap.add_argument("--cperf-iter", type=int, default=800,
                    help="dpdk-test-compress-perf passes over the IPComp packets (--num-iter)")
    ap.add_argument("--frames", type=int, default=gen.N_MAIN_PKTS,
                    help="distinct frames in the main cases' pcaps (see gen.N_MAIN_PKTS)")
    ap.add_argument("--build", default=os.environ.get("DPSEC_BUILD",
                                                      os.path.join(ROOT, "build")))
    ap.add_argument("--baseline", help="a second build directory (e.g. of the previous "
                    "commit): every dpsecd case also runs with it, paired round by round")
    args = ap.parse_args()
    gen.N_MAIN_PKTS = args.frames

    out = args.out or f"/tmp/dpsec-bench-{datetime.datetime.now():%Y%m%d-%H%M%S}"
    work = os.path.join(out, "work")
    os.makedirs(work, exist_ok=True)
    # A private copy of the binaries: a rebuild during the run cannot change them.
    bins = {"main": {}, "base": {}}
    for tag, build in (("main", args.build), ("base", args.baseline)):
        if not build:
            continue
        for b in ("dpsecd", "dpsecctl"):
            src = os.path.join(build, "src/control", b)
            if not os.access(src, os.X_OK):
                sys.exit(f"bench: {src} missing: run scripts/build.sh first")
            bins[tag][b] = os.path.join(work, b + ("" if tag == "main" else "-base"))
            shutil.copy2(src, bins[tag][b])

    t_all = time.monotonic()
    info = machine()
    log(f"bench: results in {out}; {info['cpu']}, {info['nproc']} CPUs, "
        f"{' '.join(info['flags'])}")

    # pcaps: (kind, size) -> file; generated for the selected cases only.
    pcaps = {(k, size): os.path.join(work, f"{k}-{size}.pcap")
             for k in ("out", "in", "spread", "one", "ah-in") for size in SIZES}
    for f in IPCOMP_FILLS:
        pcaps[(f"ipcomp-{f}", IPCOMP_SIZE)] = os.path.join(work, f"ipcomp-{f}-{IPCOMP_SIZE}.pcap")
        pcaps[(f"cperf-{f}", IPCOMP_SIZE)] = os.path.join(work, f"ipcomp-{f}-{IPCOMP_SIZE}.bin")
    cases = build_cases(pcaps, args)
    log("bench: generating traffic")
    done = set()
    for case in cases:
        if case["pcap"] is None:  # made by the case itself (topologies.py)
            continue
        key = next(k for k, v in pcaps.items() if v == case["pcap"])
        if key in done:
            continue
        done.add(key)
        kind, size = key
        if kind == "in":
            gen.pcap_in(size, case["pcap"], gen.N_MAIN_PKTS)
        elif kind == "ah-in":
            gen.pcap_in(size, case["pcap"], gen.N_MAIN_PKTS, proto="ah")
        elif kind == "out":
            gen.pcap_out(size, case["pcap"], "spread", gen.N_MAIN_PKTS)
        elif kind.startswith(("ipcomp-", "cperf-")):
            fill = kind.split("-", 1)[1]
            done |= {(f"ipcomp-{fill}", size), (f"cperf-{fill}", size)}
            gen.pcap_out(size, pcaps[(f"ipcomp-{fill}", size)], "spread", gen.N_MAIN_PKTS,
                         payload=fill, raw_path=pcaps[(f"cperf-{fill}", size)])
        else:
            gen.pcap_out(size, case["pcap"], kind, gen.N_SCALE_PKTS)
    # the AES-GCM ceiling is of no use to the IPComp or queue latency cases alone
    need_cp = any(c["group"] not in ("ipcomp", "qlat") and c["kind"] != "topo" for c in cases)
    log("bench: dpdk-test-crypto-perf (ceiling), run 1 of 3")
    cp = [crypto_perf(args, work, "1")] if need_cp else []
    # On a shared machine one run of a case may be slowed by a neighbour:
    # --repeat runs every case again, round after round, and keeps each case's
    # best round by rate per worker CPU-second (as the ceiling keeps its best).
    rounds = []
    n_all = len(cases) * args.repeat
    for rnd in range(args.repeat):
        results = []
        for i, case in enumerate(cases):
            log(f"bench: [{rnd * len(cases) + i + 1}/{n_all}] {case['name']}")
            results.append(run_case(bins[case.get("bins", "main")], work, case, args))
            if need_cp and rnd == args.repeat // 2 and i == len(cases) // 2 - 1:
                log("bench: dpdk-test-crypto-perf (ceiling), run 2 of 3")
                cp.append(crypto_perf(args, work, "2"))
        rounds.append(results)
    results = [best_round([r[i] for r in rounds]) for i in range(len(cases))]
    if need_cp:
        log("bench: dpdk-test-crypto-perf (ceiling), run 3 of 3")
        cp.append(crypto_perf(args, work, "3"))
    lib = {}
    if need_cp:
        log("bench: intel-ipsec-mb's direct API alone (imb_rate.c), 3 runs")
        lib = imb_rate(args, work)
    pair = {}
    if any(c["name"].startswith("w2-") for c in cases):
        log("bench: intel-ipsec-mb alone on both CPUs at once against one (goal 5's ceiling)")
        pair = imb_pair(args, work, topologies.WORKER_SIZES)
    auth, ahlib = {}, {}
    if any(c["group"] == "ah" for c in cases):
        log("bench: dpdk-test-crypto-perf auth-only HMAC-SHA2-256 (AH's ideal)")
        auth = crypto_perf_auth(args, work)
        log("bench: intel-ipsec-mb's HMAC-SHA2-256 alone (imb_rate.c hmac), 3 runs")
        ahlib = imb_hmac_rate(args, work)
    ceiling = {}
    for size in SIZES:
        runs = [c[size] for c in cp if size in c]
        if runs:
            per = [x["mops_per_cpu"] for x in runs if x.get("mops_per_cpu")]
            ceiling[size] = {"mops": max(x["mops"] for x in runs),
                             "gbps": max(x["gbps"] for x in runs),
                             "mops_per_cpu": max(per) if per else None, "runs": runs}

    table = fmt_table(results, ceiling)
    cp_lines = ["ceiling: dpdk-test-crypto-perf, AES-128-GCM encrypt (16 B tag, 8 B AAD), "
                "crypto_aesni_mb, lcore 1, best of 3 runs:",
                f"  {'size':>5}  {'Mops':>7}  {'Gbps':>6}  {'Mops/CPU':>8}  {'Gbps/CPU':>8}  "
                f"runs (Mops @ on-CPU share)"]
    for size, c in sorted(ceiling.items()):
        runs = ", ".join(f"{x['mops']:.2f} @{pct(x.get('cpu_share'))}" for x in c["runs"])
        mpc = c["mops_per_cpu"] or 0
        cp_lines.append(f"  {size:5d}  {c['mops']:7.3f}  {c['gbps']:6.2f}  {mpc:8.3f}  "
                        f"{mpc * size * 8 / 1000:8.2f}  {runs}")
    if lib:
        cp_lines += ["intel-ipsec-mb 1.3 direct API alone (IMB_AES128_GCM_ENC, what the native "
                     "engine calls; scripts/bench/imb_rate.c), lcore 1, best of 3 by CPU time:",
                     "  " + ", ".join(f"{s} B {v['mops_per_cpu']:.2f} Mops/CPU-s "
                                      f"({v['ns_per_op']:.0f} ns)" for s, v in sorted(lib.items()))]
    if pair:
        cp_lines += ["intel-ipsec-mb alone (imb_rate.c) on CPUs 0 and 1 at once / on CPU 1 alone, "
                     "ops per CPU-second (goal 5's ceiling on this machine):",
                     "  " + "; ".join(f"{s} B " + " / ".join(f"{b / a:.2f}" for b, a in v["rounds"])
                                      + f", median {v['median']:.2f} x"
                                      for s, v in sorted(pair.items()))]
    text = "\n".join([
        f"dpsecd benchmark {datetime.datetime.now():%Y-%m-%d %H:%M:%S}, git {info.get('git')} "
        f"({info.get('git_dirty_files', '?')} modified tracked files)",
        f"{info['cpu']}, {info['nproc']} CPUs, {' '.join(info['flags'])}; DPDK {info['dpdk']}, "
        f"intel-ipsec-mb {info['ipsec_mb']}; load average at start {info['loadavg']}",
        f"one worker (lcore 1), idle_backoff off, ESP tunnel AES-128-GCM, net_pcap infinite_rx "
        f"-> dpsecd -> net_null; {args.duration:g} s per case after {args.warmup:g} s warm-up",
        "size = plaintext IP packet (outbound) / inner IP packet (inbound); Gbps of plaintext "
        "IP bytes; inbound SA replay_window 0",
        "vs ceil = Mpps / raw crypto Mops at the same size (in parentheses for inbound, which "
        "decrypts; the ceiling encrypts)",
        "on-CPU = share of the time the worker wanted the CPU that it got (the machine's other "
        "load took the rest);",
        "Mpps/CPU = packets per second of worker CPU time: the rate of a worker alone on its "
        "core; vs ceil/CPU = both sides per CPU-second",
        "lost = drop counters + packets received but not sent (beyond those in flight)",
        *([f"base:CASE = the same case with the baseline build {args.baseline}, run right "
           "after it in each round"] if args.baseline else []), "",
        table, "", *rounds_lines(results, args.repeat), *cp_lines, "", summary(results, ceiling, lib),
        "",
        *ah_lines(results, auth, ahlib), "", *ipcomp_lines(results), "",
        *topologies.lines(results)[0], "", *goals_table(results, ceiling),
        f"total time {time.monotonic() - t_all:.0f} s; raw data: {out}/results.json",
    ])
    with open(os.path.join(out, "results.json"), "w") as f:
        json.dump({"machine": info, "args": vars(args), "ceiling": ceiling, "auth_only": auth, "imb_hmac": ahlib,
                   "imb_direct": lib, "imb_two_cpus": pair,
                   "crypto_perf_runs": cp, "results": results}, f, indent=1, default=str)
    with open(os.path.join(out, "results.txt"), "w") as f:
        f.write(text + "\n")
    png = write_chart(results, ceiling, os.path.join(out, "results.png"))
    if png:
        log(f"bench: chart {png}")
    print(text)
    return 0 if all("mpps" in r or r.get("skipped") for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
