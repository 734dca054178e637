#!/usr/bin/python3
"""Issue 12's cases that need more than one pcap port and one worker (bench.py runs them).

chain (goal 3, inbound with anti-replay on): two dpsecd processes over net_memif.
    The first (outbound, worker on CPU 0) encrypts the main outbound pcap replayed
    forever by net_pcap; its wan port is a memif client whose server is the wan
    port of the second, measured dpsecd (worker on lcore 1, CPU 1 as in every
    case), which decrypts with the inbound SA mirroring the first's outbound SA:
    the sequence numbers increase, so the replay window can be on. Cases
    chain-in-SIZE-wW: W = replay_window (0 = off, the replayed pcap's setting).

tunnels (goal 4): TUNNELS tunnels installed over PF_KEY once the daemon runs (all
    requests pipelined, 2000 in flight), each an outbound and an inbound
    AES-GCM SA and an outbound and a fwd policy; the pcap has one frame per
    tunnel (frame j to tunnel j % TUNNELS), so consecutive frames change tunnel.
    The baseline tun-SIZE-1sa-N is one SA and one policy (YAML) covering every
    remote subnet, on the same pcap. Memory per tunnel: the difference of the
    two cases' DPDK heap (allocated), hugepages mapped and VmRSS, over TUNNELS.

workers (goal 5): lanes of lan (net_pcap) -> dpsecd -> wan (net_null), one per
    worker, each worker polling its own lan; w1 is one lane and one worker,
    w2 two lanes and two workers with an SA each, w2-shared two lanes whose
    traffic both take one SA (lib/ipsec's atomic sequence number, shared by the
    workers). lcores 0@0 (main: the control thread, asleep in poll()), 1@1 and
    2@0: on a 2-CPU machine the second worker shares CPU 0 with the control
    thread.

Rates per worker CPU-second, with several workers: the sum over the workers of
the packets each sent over its own CPU time (what they would do each alone on
its core).
"""
import ipaddress
import json
import os
import struct
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import gen  # noqa: E402

CHAIN_WINDOWS = (0, 64)
TUNNELS = (1000, 10000, 100000)
TUNNEL_SIZES = (64, 1420)
WORKER_SIZES = (64, 1420)
GOAL_TUNNELS = {10000: 0.85, 100000: 0.60}  # of the 1-SA rate on the same pcap
GOAL_TWO_WORKERS = 1.9
GOAL_MEM_PER_TUNNEL_KIB = 8
GOAL_SECGW = {64: 1.3, 512: 1.2, 1420: 1.2}  # bench.GOAL_SECGW: goal 1, inbound too

LAN1_ADDR, LAN1_HOST = "192.168.11.1", "192.168.11.5"
WAN1_ADDR, NEXTHOP1 = "203.0.114.2", "203.0.114.1"
PEER1 = "198.51.101.2"


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def cases(add, sizes):
    """Registers the cases through bench.build_cases's add(name, dir, size, crypto, sas,
    kind, pcap, group, **extra)."""
    for size in sizes:
        for w in CHAIN_WINDOWS:
            add(f"chain-in-{size}-w{w}", "in", size, "native", 1, "topo", None, "anti-replay",
                topo="chain", window=w)
    for size in TUNNEL_SIZES:
        for n in TUNNELS:
            add(f"tun-{size}-1sa-{n}", "out", size, "native", 1, "topo", None, "tunnels",
                topo="tunnels", tunnels=n, one_sa=True)
            add(f"tun-{size}-{n}", "out", size, "native", 2 * n, "topo", None, "tunnels",
                topo="tunnels", tunnels=n, one_sa=False)
    for size in WORKER_SIZES:
        add(f"w1-{size}", "out", size, "native", 1, "topo", None, "workers", topo="workers",
            lanes=1, shared=False)
        add(f"w2-{size}", "out", size, "native", 2, "topo", None, "workers", topo="workers",
            lanes=2, shared=False)
        add(f"w2-{size}-shared", "out", size, "native", 1, "topo", None, "workers",
            topo="workers", lanes=2, shared=True)


# --- traffic ---------------------------------------------------------------------------

def tunnel_subnet(i, n):
    """The i-th remote subnet of n: /24 under 10.0.0.0/8 up to 65 536 (gen.remote_subnet's
    numbering), smaller above."""
    bits = max(16, (n - 1).bit_length())
    plen = 8 + bits
    base = int(ipaddress.IPv4Address("10.0.0.0")) + (i << (32 - plen))
    return ipaddress.IPv4Network((base, plen))


def pcap_lane(size, path, n, lan_mac, host, tunnels=None):
    """n plaintext frames host -> 10.x; with tunnels, frame j goes to tunnel j % tunnels.
    Fast for 10^5 frames: one payload, headers per frame."""
    if os.path.exists(path):
        return
    payload = gen.fill("pattern", size - gen.MIN_SIZE, 0)
    frames = []
    for j in range(n):
        dst = tunnel_subnet(j % tunnels, tunnels).network_address + 1 if tunnels else \
            ipaddress.IPv4Address("10.0.0.1") + (j % 250)
        ip = gen.udp4(host, str(dst), 1024 + j % 50000, 5001, gen.MIN_SIZE, ident=j)
        hdr = bytearray(ip[:20])
        struct.pack_into("!H", hdr, 2, size)
        struct.pack_into("!H", hdr, 10, 0)
        struct.pack_into("!H", hdr, 10, gen.ip_cksum(bytes(hdr)))
        udp = struct.pack("!HHHH", 1024 + j % 50000, 5001, size - 20, 0)
        frames.append(gen.eth(lan_mac, gen.HOST_MAC, bytes(hdr) + udp + payload))
    gen.write_pcap(path, frames)


# --- configurations --------------------------------------------------------------------

def _base(pcap, prefix, size_sessions=None):
    # dpsecd's default engine (crypto.engine: native), as an operator runs it
    cfg = gen.config("out", pcap, prefix=prefix, engine="native")
    cfg["pfkey"] = {"enabled": False}  # never the shared /run/dpsec/pfkey.sock
    if size_sessions is None:
        cfg["crypto"].pop("sessions", None)
    return cfg


def chain_configs(work, size, window, prefix):
    """(encrypting daemon, measured decrypting daemon)."""
    pcap = os.path.join(work, f"out-{size}.pcap")
    if not os.path.exists(pcap):
        gen.pcap_out(size, pcap, "spread", gen.N_MAIN_PKTS)
    sock = os.path.join(work, f"memif-{prefix}.sock")
    a = _base(pcap, prefix + "a")
    a["eal"]["lcores"] = "0@0,1@0"  # the encrypting worker on CPU 0, the measured one on CPU 1
    a["ports"][1]["device"] = f"net_memif0,role=client,socket={sock},id=0,rsize=14,mac={gen.NULL_MAC}"
    a["ports"][1].pop("mac", None)  # net_memif cannot change its MAC: the devarg sets it
    b = _base(pcap, prefix + "b")
    # The encrypting daemon gets less CPU than the measured one on a shared machine: the
    # measured worker sleeps 2 ms after 64 empty polls instead of spinning, while a ring of
    # 16 384 slots fills, so that its CPU time is that of full bursts (rx per loop says).
    b["dataplane"].update(idle_backoff=True, idle_polls=64, idle_sleep_us=2000)
    b["ports"][0]["device"] = "net_null0,no-rx=1"
    b["ports"][0]["mac"] = gen.NULL_MAC
    b["ports"][1] = {"name": "wan", "role": "unprotected", "exception": False,
                     "device": f"net_memif1,role=server,socket={sock},id=0,rsize=14,mac={gen.NEXTHOP_MAC}",
                     "addresses": [gen.PEER + "/24"]}
    b["sas"] = [gen._sa(gen.SPI_OUT, "in", gen.WAN_ADDR, gen.PEER, 1, gen.KEY_OUT, replay=window)]
    b["policies"] = [gen._policy("fwd", "192.168.10.0/24", "10.0.0.0/8", 1, gen.WAN_ADDR, gen.PEER)]
    b["routes"] = [{"prefix": "10.0.0.0/8", "via": gen.LAN_HOST, "port": "lan"}]
    b["neighbours"] = [{"address": gen.LAN_HOST, "mac": gen.HOST_MAC, "port": "lan"}]
    return [("enc", a), ("dec", b)]


def tunnels_config(work, size, n, one_sa, prefix):
    pcap = os.path.join(work, f"tun-{size}-{n}.pcap")
    pcap_lane(size, pcap, n, gen.LAN_MAC, gen.LAN_HOST, tunnels=n)
    cfg = _base(pcap, prefix)
    # net_pcap's infinite_rx holds every frame in an mbuf of the pool
    cfg["dataplane"]["mbufs"] = max(32767, (1 << (n + 32768).bit_length()) - 1)
    if one_sa:
        return [("dut", cfg)]
    # The tunnels come over PF_KEY once the daemon runs (install_tunnels): dpsecd reads
    # at most 16 MB of YAML, and 100 000 tunnels take some 90 MB of it.
    del cfg["sas"], cfg["policies"]
    cfg["pfkey"] = {"socket": os.path.join(work, f"pfkey-{prefix}.sock"), "state": ""}
    return [("dut", cfg)]


def tunnel_msgs(i, n):
    """Tunnel i of n as a key daemon installs it: an outbound and an inbound AES-GCM-128
    SA (SADB_ADD) and an outbound and a fwd policy (SADB_X_SPDADD), the remote site
    tunnel_subnet(i, n) behind the peer gen.remote_peer(i)."""
    import pfkey as K
    net, peer, reqid = str(tunnel_subnet(i, n)), gen.remote_peer(i), i + 1
    req = (lambda a, b: [K.ipsecrequest(50, K.MODE_TUNNEL, K.LEVEL_UNIQUE, reqid, (a, b))])
    return [K.gcm_add(0x10000 + i, gen.WAN_ADDR, peer, reqid, gen.KEY_OUT, replay=0),
            K.gcm_add(0x40000000 + i, peer, gen.WAN_ADDR, reqid, gen.KEY_IN, replay=64),
            K.spd(K.SPDADD, K.DIR_OUT, "192.168.10.0/24", net, requests=req(gen.WAN_ADDR, peer)),
            K.spd(K.SPDADD, K.DIR_FWD, net, "192.168.10.0/24", requests=req(peer, gen.WAN_ADDR))]


def spd_merged(d, timeout=900):
    """Waits until the newest policy is in the main classifiers, not among the recent
    policies looked up in front of them until the background build merges them (so
    every policy is): the seconds waited."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        n = json.loads(d.ctl("raw", "/dpsec/info").stdout)["/dpsec/info"]["policies"]
        page = json.loads(d.ctl("raw", f"/dpsec/policy,{max(0, n - 1)}").stdout)
        pols = next(iter(page.values()))
        if pols and all(p.get("classifier") == "main" for p in pols.values()):
            return time.monotonic() - t0
        time.sleep(0.5)
    raise RuntimeError(f"the SPD did not merge its recent policies in {timeout} s")


def install_tunnels(cfg, n):
    """All n tunnels' messages pipelined on one PF_KEY socket: (seconds, errors)."""
    import pfkey as K
    msgs = [m for i in range(n) for m in tunnel_msgs(i, n)]
    # a smaller window than pfkey_rate.py's 40 000: with both socket buffers full a slow
    # control thread (a loaded machine) kept the client's send blocked past its timeout
    c = K.Client(cfg["pfkey"]["socket"], timeout=300)
    try:
        t0 = time.monotonic()
        replies = c.pipeline(msgs, window=2000, timeout=1800)
        return time.monotonic() - t0, sum(r.errno != 0 for r in replies)
    finally:
        c.close()


def workers_config(work, size, lanes, shared, prefix):
    pcaps = [os.path.join(work, f"lane{k}-{size}.pcap") for k in range(lanes)]
    pcap_lane(size, pcaps[0], gen.N_MAIN_PKTS, gen.LAN_MAC, gen.LAN_HOST)
    cfg = _base(pcaps[0], prefix)
    if lanes == 1:
        return [("dut", cfg)]
    # net_pcap's MAC is 02:70:63:61:70:NN, NN the index of the pcap port in the process
    pcap_lane(size, pcaps[1], gen.N_MAIN_PKTS, "02:70:63:61:70:01", LAN1_HOST)
    cfg["eal"]["lcores"] = "0@0,1@1,2@0"
    # each port needs a tx queue per worker: net_pcap has one per tx_pcap (never used here)
    cfg["ports"][0]["device"] += ",tx_pcap=/dev/null,tx_pcap=/dev/null"
    cfg["ports"] += [
        {"name": "lan1", "device": f"net_pcap1,rx_pcap={pcaps[1]},infinite_rx=1,"
                   "tx_pcap=/dev/null,tx_pcap=/dev/null",
         "role": "protected", "exception": False, "addresses": [LAN1_ADDR + "/24"]},
        {"name": "wan1", "device": "net_null1,no-rx=1", "role": "unprotected",
         "exception": False, "addresses": [WAN1_ADDR + "/24"], "mac": "02:00:00:00:0e:01"}]
    # every queue needs a poller: each worker also polls its wan (net_null, no rx)
    cfg["workers"] = [{"lcore": 1, "rx": [{"port": "lan", "queue": 0}, {"port": "wan", "queue": 0}]},
                      {"lcore": 2, "rx": [{"port": "lan1", "queue": 0},
                                          {"port": "wan1", "queue": 0}]}]
    cfg["neighbours"] += [{"address": NEXTHOP1, "mac": gen.NEXTHOP_MAC, "port": "wan1"},
                          {"address": LAN1_HOST, "mac": gen.HOST_MAC, "port": "lan1"}]
    if shared:
        # one SA, one policy for both lanes' traffic; each worker leaves by wan
        cfg["policies"][0]["src"] = "192.168.8.0/22"
        # the unused wan1 still needs a route to be a valid port: none is required
    else:
        # the plaintext takes the default route; lane 1's ESP leaves by wan1
        cfg["routes"].append({"prefix": PEER1 + "/32", "via": NEXTHOP1, "port": "wan1"})
        cfg["sas"].append(gen._sa(gen.SPI_OUT + 1, "out", WAN1_ADDR, PEER1, 2, gen.KEY_OUT))
        cfg["policies"].append(gen._policy("out", LAN1_ADDR.rsplit(".", 1)[0] + ".0/24",
                                           "10.0.0.0/8", 2, WAN1_ADDR, PEER1))
    return [("dut", cfg)]


def configs(work, case, prefix):
    if case["topo"] == "chain":
        return chain_configs(work, case["size"], case["window"], prefix)
    if case["topo"] == "tunnels":
        return tunnels_config(work, case["size"], case["tunnels"], case["one_sa"], prefix)
    return workers_config(work, case["size"], case["lanes"], case["shared"], prefix)


# --- measurement -----------------------------------------------------------------------

def worker_tids(pid, cfg):
    """{worker index: tid}: DPDK names the thread of lcore N rte-worker-N."""
    lcores = [w["lcore"] for w in cfg.get("workers", [{"lcore": 1}])]
    out = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{tid}/comm") as f:
            name = f.read().strip()
        for i, lc in enumerate(lcores):
            if name == f"rte-worker-{lc}":
                out[i] = int(tid)
    return out


def heap(d):
    r = json.loads(d.ctl("raw", "/eal/heap_info,0").stdout)
    h = next(iter(r.values()))
    return {"heap_alloc_MB": round(int(h["Alloc_size"]) / 2**20, 2)}


def measure(B, bins, work, case, args):
    """B: the bench module (Daemon, schedstat, perf helpers). Returns a result dict as
    bench.measure does."""
    from pfkey_rate import proc_mem
    name = case["name"]
    prefix = f"b12{os.getpid()}{case['topo'][:2]}"
    t_gen = time.monotonic()
    cfgs = configs(work, case, prefix)
    gen_s = time.monotonic() - t_gen
    daemons = [B.Daemon(bins, cfg, work, f"{name}-{role}") for role, cfg in cfgs]
    dut_cfg = cfgs[-1][1]
    out_ports = [p["name"] for p in dut_cfg["ports"]
                 if p["role"] == ("protected" if case["dir"] == "in" else "unprotected")]
    in_ports = [p["name"] for p in dut_cfg["ports"] if p["name"] not in out_ports]
    res = {"name": name, "dir": case["dir"], "size": case["size"], "crypto": case["crypto"],
           "sas": case["sas"], "traffic": "", "config_s": round(gen_s, 1)}
    started = []
    try:
        t0 = time.monotonic()
        for d in reversed(daemons):  # the measured one (memif server) first
            d.start(timeout=900)
            started.append(d)
        res["startup_s"] = round(time.monotonic() - t0, 1)
        dut = daemons[-1]
        if case["topo"] == "tunnels" and not case["one_sa"]:
            took, errors = install_tunnels(dut_cfg, case["tunnels"])
            res.update(install_s=round(took, 1), install_errors=errors)
            log(f"bench:   {case['tunnels']} tunnels over PF_KEY in {took:.1f} s, {errors} errors")
            if errors:
                raise RuntimeError(f"{name}: {errors} PF_KEY requests refused")
            res["spd_merge_wait_s"] = round(spd_merged(dut), 1)
            log(f"bench:   every policy in the main classifiers {res['spd_merge_wait_s']} s later")
        deadline = time.time() + 30
        while sum(dut.stats()[1]["ports"][p]["tx_packets"] for p in out_ports) == 0:
            if time.time() > deadline:
                raise RuntimeError(f"{name}: nothing left {out_ports} in 30 s:\n"
                                   f"{json.dumps(dut.stats()[1]['ports'], indent=1)}")
            time.sleep(0.1)
        time.sleep(args.warmup)
        tids = worker_tids(dut.proc.pid, dut_cfg)

        def sample():
            a = {i: B.schedstat(dut.proc.pid, t) for i, t in tids.items()}
            t, c = dut.stats()
            b = {i: B.schedstat(dut.proc.pid, t) for i, t in tids.items()}
            return t, c, {i: tuple((x + y) / 2 for x, y in zip(a[i], b[i])) for i in tids}

        t0, s0, sch0 = sample()
        perf = B.start_perf(args, work, name, dut.proc.pid, tids.get(0))
        time.sleep(args.duration)
        t1, s1, sch1 = sample()
        B.finish_perf(perf, res)
        dt = t1 - t0
        delta = B.counters_delta(s0, s1)
        pkts = sum(delta["ports"][p]["tx_packets"] for p in out_ports)
        rx = sum(delta["ports"][p]["rx_packets"] for p in in_ports)
        per_worker, on_cpu, waiting = [], 0, 0
        for i in sorted(tids):
            cpu = (sch1[i][0] - sch0[i][0]) / 1e9
            wait = (sch1[i][1] - sch0[i][1]) / 1e9
            wk = delta["workers"][f"worker{i}"]
            per_worker.append({"worker": i, "tx_packets": wk["tx_packets"], "on_cpu_s": cpu,
                               "mpps_per_cpu": wk["tx_packets"] / cpu / 1e6 if cpu > 0 else None,
                               "rx_per_loop": wk["rx_packets"] / max(1, wk["loops"]),
                               "idle_sleeps": wk.get("idle_sleeps", 0)})
            on_cpu, waiting = on_cpu + cpu, waiting + wait
        esp = sum(delta["ports"][p]["ipsec_out" if case["dir"] == "out" else "ipsec_in"]
                  for p in in_ports)
        if esp < 0.99 * rx:  # e.g. tunnels not in force yet: traffic forwarded in clear
            raise RuntimeError(f"{name}: only {esp} of {rx} packets received took IPsec")
        res.update({
            "elapsed_s": round(dt, 4), "tx_packets": pkts, "rx_packets": rx,
            "mpps": pkts / dt / 1e6, "gbps": pkts * case["size"] * 8 / dt / 1e9,
            "mpps_per_cpu": sum(w["mpps_per_cpu"] or 0 for w in per_worker) or None,
            "workers": per_worker,
            "worker_cpu_share": on_cpu / max(1e-9, on_cpu + waiting),
            "drops": {f"{p}.{k}": v for p, c in delta["ports"].items() for k, v in c.items()
                      if (k.startswith("drop_") or k.startswith("dev_")) and v},
            "rx_minus_tx": rx - pkts,
            "loadavg": open("/proc/loadavg").read().split()[0],
        })
        res.update(proc_mem(dut.proc.pid))
        res.update(heap(dut))
        if case["topo"] == "chain":
            esp = json.loads(dut.ctl("stats", "esp", "--json").stdout)["esp"]
            res["esp_in"] = {k: v for k, v in esp.items() if k.startswith("in_") or v}
            res["replay_drops"] = esp.get("drop_replay", 0)
            res["replay_window"] = case["window"]
        if case["topo"] == "workers":
            res["sa_counters"] = dut.sa_counters()
    finally:
        for d in started:
            rc = d.stop()
            if rc:
                res["exit_code"] = rc
                res["log_tail"] = d.read_log()[-2000:]
    return res


# --- report ----------------------------------------------------------------------------

def paired(by, a, b):
    """Round-by-round ratios of a over b (per worker CPU-second) and their median."""
    import statistics
    x, y = by.get(a, {}), by.get(b, {})
    rs = [p["mpps_per_cpu"] / q["mpps_per_cpu"] for p, q in zip(x.get("rounds", []),
                                                                 y.get("rounds", []))
          if p.get("mpps_per_cpu") and q.get("mpps_per_cpu")]
    return rs, (statistics.median(rs) if rs else None)


def fmt_rounds(rs):
    return " / ".join(f"{r:.2f}" for r in rs)


def mem_per_tunnel(by, size, n):
    a, b = by.get(f"tun-{size}-{n}", {}), by.get(f"tun-{size}-1sa-{n}", {})
    if "heap_alloc_MB" not in a or "heap_alloc_MB" not in b:
        return None
    return {k: (a[k] - b[k]) * 2**20 / n / 1024 for k in ("heap_alloc_MB", "hugetlb_MB", "VmRSS_MB")
            if k in a and k in b}


def lines(results):
    """Paired figures of the cases above, for results.txt; and goal rows (goal, measured,
    verdict) for bench.py's goals table."""
    by = {r["name"]: r for r in results if "mpps" in r}
    out, goals = [], []
    for size in gen_sizes(by, "chain-in-{}-w0"):
        rs, med = paired(by, f"chain-in-{size}-w64", f"chain-in-{size}-w0")
        r = by.get(f"chain-in-{size}-w64", {})
        plain = by.get(f"in-{size}-native-1sa", {}).get("mpps_per_cpu")
        if med is None:
            continue
        bursts = ", ".join(f"{w['rx_per_loop']:.1f}" for w in r.get("workers", []))
        out.append(f"anti-replay {size} B: inbound over memif, window 64 / window 0 per worker "
                   f"CPU-second, round by round {fmt_rounds(rs)}, median {med:.2f} x; window 64 "
                   f"{r['mpps_per_cpu']:.3f} Mpps/CPU-s, replay drops {r.get('replay_drops')}, "
                   f"packets per rx burst {bursts}"
                   + (f"; plain inbound (replayed pcap, window 0) {plain:.3f}" if plain else ""))
        # Goal 3: goal 1's inbound ratio to ipsec-secgw (which replays the pcap, window 0)
        # with dpsecd's window on: that ratio times the chain's paired on / off ratio.
        for eng in ("native", "cpu"):
            _, sec = paired(by, f"in-{size}-{eng}-1sa", f"secgw-in-{size}")
            if sec is not None:
                goal = GOAL_SECGW[size]
                goals.append((f"3. in {size} B {eng}, window 64, >= {goal} x ipsec-secgw",
                              f"{sec:.2f} x {med:.2f} (on / off) = {sec * med:.2f} x, "
                              f"{r.get('replay_drops')} replay drops",
                              "met" if sec * med >= goal and r.get("replay_drops") == 0
                              else "NOT met"))
                break
        else:
            goals.append((f"3. in {size} B, window 64 (on / off)",
                          f"{med:.2f} x, {r.get('replay_drops')} replay drops",
                          "no ipsec-secgw inbound in this run"))
    for size in TUNNEL_SIZES:
        for n in TUNNELS:
            rs, med = paired(by, f"tun-{size}-{n}", f"tun-{size}-1sa-{n}")
            if med is None:
                continue
            m = mem_per_tunnel(by, size, n)
            mem = (f"; per tunnel heap {m['heap_alloc_MB']:.1f} KiB, hugepages "
                   f"{m['hugetlb_MB']:.1f} KiB, VmRSS {m['VmRSS_MB']:.1f} KiB" if m else "")
            out.append(f"tunnels {size} B, {n}: / 1 SA on the same pcap, round by round "
                       f"{fmt_rounds(rs)}, median {med * 100:.0f}% ("
                       f"{by[f'tun-{size}-{n}']['mpps_per_cpu']:.3f} / "
                       f"{by[f'tun-{size}-1sa-{n}']['mpps_per_cpu']:.3f} Mpps/CPU-s){mem}")
            if n in GOAL_TUNNELS:
                g = GOAL_TUNNELS[n]
                goals.append((f"4. {n} tunnels {size} B >= {g:.0%} of 1 SA", f"{med:.0%}",
                              "met" if med >= g else "NOT met"))
            if m and size == TUNNEL_SIZES[0] and n == max(x for x in TUNNELS if
                                                          f"tun-{size}-{x}" in by):
                goals.append((f"4. memory per tunnel ({n}) <= {GOAL_MEM_PER_TUNNEL_KIB} KiB",
                              f"heap {m['heap_alloc_MB']:.1f} + RSS {m['VmRSS_MB']:.1f} KiB",
                              "met" if m["heap_alloc_MB"] + max(0, m["VmRSS_MB"])
                              <= GOAL_MEM_PER_TUNNEL_KIB else "NOT met"))
    for size in WORKER_SIZES:
        rs, med = paired(by, f"w2-{size}", f"w1-{size}")
        if med is None:
            continue
        rs2, med2 = paired(by, f"w2-{size}-shared", f"w1-{size}")
        per = lambda n: " + ".join(f"{w['mpps_per_cpu']:.3f}" for w in by.get(n, {}).get(
            "workers", []) if w.get("mpps_per_cpu"))
        out.append(f"two workers {size} B: own SAs / one worker, round by round {fmt_rounds(rs)},"
                   f" median {med:.2f} x ({per(f'w2-{size}')} vs {per(f'w1-{size}')} Mpps/CPU-s)"
                   + (f"; one shared SA: {fmt_rounds(rs2)}, median {med2:.2f} x "
                      f"({per(f'w2-{size}-shared')})" if med2 else ""))
        goals.append((f"5. two workers {size} B >= {GOAL_TWO_WORKERS} x one",
                       f"{med:.2f} x" + (f" (one shared SA {med2:.2f} x)" if med2 else ""),
                       "met" if med >= GOAL_TWO_WORKERS else "NOT met"))
    return out, goals


def gen_sizes(by, pattern):
    return [s for s in (64, 512, 1420) if pattern.format(s) in by]
