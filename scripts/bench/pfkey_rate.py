#!/usr/bin/python3
"""PF_KEY install rate (driven by scripts/bench.sh --pfkey, or alone as root).

Topology: host A -- dpsecd (one worker, af_packet) -- host B, namespaces.
While host A sends two steady UDP flows through the gateway -- one in clear
(bypass: the SPD is consulted and lets it pass), one protected by an SA and
policy from the YAML configuration -- a PF_KEY client installs TUNNELS
tunnels (an outbound and an inbound SA, an outbound and a fwd policy each),
the way a key daemon does, over dpsecd's socket:

* sequential: one message, wait for its reply, the next (charon's way):
  SADB_ADD per second for the first 2000 SAs; reply latency per message type
  (REGISTER, GETSPI, GET, ADD, SPDADD: median and 99th percentile); POLICIES
  out policies one at a time (rate), then 500 more with POLICIES in force
  (their latency: a new policy in force with 20 000 present);
* the Linux reference in the same run: the same POLICIES policies as XFRM
  policies, `ip -batch` into a fresh network namespace, timed;
* pipelined: up to WINDOW messages in flight on one socket, for the whole set;
* reconf (simplified): RECONF more tunnels one message at a time while the
  background flows run again, loss counted (the flows cross one existing
  tunnel and the bypass path, not every existing tunnel).

Host B counts what arrived of each flow (the plaintext one by a UDP socket,
the protected one as ESP by a raw socket, by sequence number): every datagram
sent during the installation must arrive. Prints one JSON object; the figures
go to docs/PERFORMANCE.md.
"""
import argparse
import json
import os
import socket
import struct
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
import pfkey as K  # noqa: E402
from dpsec import Daemon, Topology, sh  # noqa: E402

KEY = bytes(range(20))

SENDER = r"""
import socket, sys, time
rate, secs = int(sys.argv[1]), float(sys.argv[2])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
n, t0 = 0, time.time()
while True:
    now = time.time()
    if now - t0 > secs:
        break
    want = int((now - t0) * rate)
    while n < want:
        s.sendto(b"%08d" % n, ("10.2.0.2", 9000))
        s.sendto(b"%08d" % n, ("10.9.7.5", 9000))
        n += 1
    time.sleep(0.001)
print(n)
"""

RECEIVER = r"""
import socket, struct, sys, select, time
secs = float(sys.argv[1])
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.bind(("0.0.0.0", 9000))
e = socket.socket(socket.AF_INET, socket.SOCK_RAW, 50)
for s in (u, e):
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
plain, esp = set(), set()
end = time.time() + secs
print("ready", flush=True)
while time.time() < end:
    r, _, _ = select.select([u, e], [], [], 0.2)
    if u in r:
        plain.add(int(u.recv(64)))
    if e in r:
        d = e.recv(2048)
        ihl = (d[0] & 15) * 4
        spi, seq = struct.unpack("!II", d[ihl:ihl + 8])
        esp.add(seq)
print(len(plain), len(esp), max(plain or [0]), max(esp or [0]))
"""


def topology(topo):
    """Host A (10.1.0.2) -- gateway namespace (two veths dpsecd takes) -- host B (10.2.0.2):
    (ha, gw, hb) namespaces, host A's veth va, the gateway's lan and wan veths ga, gb."""
    ha, gw, hb = topo.ns("ha"), topo.ns("gw"), topo.ns("hb")
    va, ga = topo.link(ha, gw)
    vb, gb = topo.link(hb, gw)
    topo.host(ha, va, ["10.1.0.2/24"], ["10.1.0.1"])
    topo.host(hb, vb, ["10.2.0.2/24"])
    topo.dataplane_owned(gw, ga)
    topo.dataplane_owned(gw, gb)
    return ha, gw, hb, va, ga, gb


def config(ga, gb, tag, sock):
    return {
        "log_level": "notice",
        "ports": [
            {"name": "lan", "device": f"net_af_packet0,iface={ga}", "role": "protected",
             "exception_iface": f"bl{tag}", "addresses": ["10.1.0.1/24"]},
            {"name": "wan", "device": f"net_af_packet1,iface={gb}", "role": "unprotected",
             "exception_iface": f"bw{tag}", "addresses": ["10.2.0.1/24"]},
        ],
        "routes": [{"prefix": "10.9.0.0/16", "via": "10.2.0.2", "port": "wan"},
                   {"prefix": "172.16.0.0/12", "via": "10.2.0.2", "port": "wan"}],
        "sas": [{"spi": 0x777, "direction": "out", "src": "10.2.0.1", "dst": "10.2.0.2", "reqid": 77,
                 "encryption": {"algorithm": "aes-gcm-128", "key": "0x" + "ab" * 20}}],
        "policies": [{"direction": "out", "src": "10.1.0.0/24", "dst": "10.9.7.0/24", "action": "protect",
                      "ipsec": [{"proto": "esp", "mode": "tunnel", "level": "require", "reqid": 77,
                                 "tunnel": {"src": "10.2.0.1", "dst": "10.2.0.2"}}]}],
        "pfkey": {"socket": sock, "state": ""},
    }


def tunnel_msgs(i):
    """Tunnel i: remote site 172.16.0.0/12 split into /28s, peer 100.64.x.y (not local)."""
    peer = f"100.{64 + (i >> 16)}.{(i >> 8) & 255}.{i & 255}"
    net = f"172.{16 + (i >> 12)}.{(i >> 4) & 255}.{(i & 15) << 4}/28"
    reqid = 1000 + i
    out_sa = K.gcm_add(0x10000000 + 2 * i, "10.2.0.1", peer, reqid, KEY, replay=0)
    in_sa = K.gcm_add(0x10000001 + 2 * i, peer, "10.2.0.1", reqid, KEY)
    out_pol = K.spd(K.SPDADD, K.DIR_OUT, "10.1.0.0/24", net,
                    requests=[K.ipsecrequest(50, K.MODE_TUNNEL, K.LEVEL_UNIQUE, reqid, ("10.2.0.1", peer))])
    fwd_pol = K.spd(K.SPDADD, K.DIR_FWD, net, "10.1.0.0/24",
                    requests=[K.ipsecrequest(50, K.MODE_TUNNEL, K.LEVEL_UNIQUE, reqid, (peer, "10.2.0.1"))])
    return [out_sa, in_sa, out_pol, fwd_pol]


def proc_mem(pid):
    """dpsecd's resident memory (/proc/PID/status) and the hugepage memory it maps (smaps)."""
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for ln in f:
            k, v = ln.split(":", 1)
            if k in ("VmRSS", "VmHWM", "RssAnon", "RssFile", "RssShmem"):
                out[k + "_MB"] = round(int(v.split()[0]) / 1024, 1)
    huge = 0
    with open(f"/proc/{pid}/smaps") as f:
        for ln in f:
            if ln.startswith(("Private_Hugetlb:", "Shared_Hugetlb:")):
                huge += int(ln.split()[1])
    out["hugetlb_MB"] = round(huge / 1024, 1)
    return out


def with_seq(m, seq, pid):
    b = bytearray(m)
    struct.pack_into("=II", b, 8, seq, pid)
    return bytes(b)


def pipelined(path, msgs, window):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    s.connect(path)
    pid = os.getpid()
    sent = done = errors = 0
    t0 = time.time()
    while done < len(msgs):
        while sent < len(msgs) and sent - done < window:
            s.send(with_seq(msgs[sent], sent + 1, pid))
            sent += 1
        d = s.recv(65536)
        if struct.unpack_from("=II", d, 8)[1] != pid:
            continue
        errors += d[2] != 0
        done += 1
    t = time.time() - t0
    s.close()
    return t, errors


def sequential(path, msgs):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    s.connect(path)
    pid = os.getpid()
    errors = 0
    t0 = time.time()
    for i, m in enumerate(msgs):
        s.send(with_seq(m, i + 1, pid))
        while True:
            d = s.recv(65536)
            if struct.unpack_from("=II", d, 8) == (i + 1, pid):
                break
        errors += d[2] != 0
    t = time.time() - t0
    s.close()
    return t, errors


def latencies(path, msgs):
    """Round trip of each message, one at a time, in microseconds."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    s.connect(path)
    pid = os.getpid()
    out, errors = [], 0
    for i, m in enumerate(msgs):
        t0 = time.perf_counter()
        s.send(with_seq(m, i + 1, pid))
        while True:
            d = s.recv(1 << 20)
            if struct.unpack_from("=II", d, 8) == (i + 1, pid):
                break
        out.append((time.perf_counter() - t0) * 1e6)
        errors += d[2] != 0
    s.close()
    return out, errors


def stats(us):
    us = sorted(us)
    return {"n": len(us), "median_us": round(us[len(us) // 2]), "p90_us": round(us[int(len(us) * 0.9)]),
            "p99_us": round(us[int(len(us) * 0.99)])}


def teardown_msgs(i):
    """Tunnel i taken down the way charon deletes a CHILD_SA: its policies, then its SAs."""
    peer = f"100.{64 + (i >> 16)}.{(i >> 8) & 255}.{i & 255}"
    net = f"172.{16 + (i >> 12)}.{(i >> 4) & 255}.{(i & 15) << 4}/28"
    return [("SPDDELETE", K.spd(K.SPDDELETE, K.DIR_OUT, "10.1.0.0/24", net)),
            ("SPDDELETE", K.spd(K.SPDDELETE, K.DIR_FWD, net, "10.1.0.0/24")),
            ("DELETE", K.msg(K.DELETE, K.ESP, [K.sa(0x10000000 + 2 * i), K.address(K.SRC, "10.2.0.1"),
                                              K.address(K.DST, peer)])),
            ("DELETE", K.msg(K.DELETE, K.ESP, [K.sa(0x10000001 + 2 * i), K.address(K.SRC, peer),
                                              K.address(K.DST, "10.2.0.1")]))]


def teardown(sock, args, res):
    """TEARDOWN tunnels spread over the TUNNELS installed, deleted one message at a time (a rekey or
    a disconnect deletes from the middle of the tables): tunnels per second and each type's latency."""
    step = max(1, args.tunnels // args.teardown)
    which = list(range(0, args.tunnels, step))[:args.teardown]
    tagged = [m for i in which for m in teardown_msgs(i)]
    t0 = time.time()
    lat, err = latencies(sock, [m for _, m in tagged])
    t = time.time() - t0
    by = {}
    for (kind, _), us in zip(tagged, lat):
        by.setdefault(kind, []).append(us)
    res["teardown"] = {"tunnels": len(which), "of": args.tunnels, "s": round(t, 3),
                       "tunnels_per_s": round(len(which) / t), "errors": err,
                       "latency": {k: stats(v) for k, v in by.items()}}


def policy_sel(i):
    """Policy i of the sequential run: what tunnel_msgs(i) protects, one /28 each."""
    peer = f"100.{64 + (i >> 16)}.{(i >> 8) & 255}.{i & 255}"
    net = f"172.{16 + (i >> 12)}.{(i >> 4) & 255}.{(i & 15) << 4}/28"
    return peer, net, 1000 + i


def policy_msg(i):
    peer, net, reqid = policy_sel(i)
    return K.spd(K.SPDADD, K.DIR_OUT, "10.1.0.0/24", net,
                 requests=[K.ipsecrequest(50, K.MODE_TUNNEL, K.LEVEL_REQUIRE, reqid, ("10.2.0.1", peer))])


def linux_reference(n):
    """The same n out policies into a fresh namespace's XFRM, one `ip -batch` (one request at a
    time, each acknowledged): seconds."""
    ns = f"dpsec-xfrm-{os.getpid()}"
    with tempfile.NamedTemporaryFile("w", suffix=".batch", delete=False) as f:
        for i in range(n):
            peer, net, reqid = policy_sel(i)
            f.write(f"xfrm policy add src 10.1.0.0/24 dst {net} dir out tmpl src 10.2.0.1 dst {peer} "
                    f"proto esp reqid {reqid} mode tunnel level required\n")
        batch = f.name
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        t0 = time.time()
        subprocess.run(["ip", "-n", ns, "-batch", batch], check=True)
        t = time.time() - t0
        count = subprocess.run(["ip", "-n", ns, "xfrm", "policy", "count"], capture_output=True,
                               text=True).stdout.strip()
    finally:
        subprocess.run(["ip", "netns", "del", ns], check=False)
        os.unlink(batch)
    return t, count


def control_plane(sock, n_pol, res):
    """Reply latencies per message type, then n_pol policies one at a time and 500 more."""
    lat = {}
    n = 300
    lat["REGISTER"], e1 = latencies(sock, [K.msg(K.REGISTER, K.ESP)] * n)
    lat["GETSPI"], e2 = latencies(sock, [K.msg(K.GETSPI, K.ESP, [K.address(K.SRC, "100.127.0.1"),
                                                                 K.address(K.DST, "10.2.0.1"),
                                                                 K.spirange(0x20000000 + 16 * i,
                                                                            0x20000000 + 16 * i + 15)])
                                         for i in range(n)])
    lat["ADD"], e3 = latencies(sock, [K.gcm_add(0x30000000 + i, "10.2.0.1", "100.126.0.1", 9000 + i, KEY,
                                                replay=0) for i in range(n)])
    lat["GET"], e4 = latencies(sock, [K.msg(K.GET, K.ESP, [K.sa(0x30000000 + i), K.address(K.SRC, "10.2.0.1"),
                                                         K.address(K.DST, "100.126.0.1")]) for i in range(n)])
    lat["SPDADD"], e5 = latencies(sock, [policy_msg(60000 + i) for i in range(n)])
    res["latency"] = {k: stats(v) for k, v in lat.items()}
    res["latency_errors"] = e1 + e2 + e3 + e4 + e5
    latencies(sock, [K.msg(K.FLUSH, K.ESP), K.msg(K.SPDFLUSH, K.UNSPEC)])
    t0 = time.time()
    seq, err = latencies(sock, [policy_msg(i) for i in range(n_pol)])
    t = time.time() - t0
    res["sequential_policy_latency"] = stats(seq)
    res["sequential_policy_latency"]["mean_us"] = round(sum(seq) / len(seq))
    res["sequential_policies"] = n_pol
    res["sequential_policy_s"] = round(t, 3)
    res["sequential_policy_per_s"] = round(n_pol / t)
    res["sequential_policy_errors"] = err
    more, err = latencies(sock, [policy_msg(n_pol + i) for i in range(500)])
    res["new_policy_with_n_present"] = stats(more)
    res["new_policy_errors"] = err
    latencies(sock, [K.msg(K.SPDFLUSH, K.UNSPEC)])
    tl, count = linux_reference(n_pol)
    res["linux_ip_batch_s"] = round(tl, 3)
    res["linux_policy_per_s"] = round(n_pol / tl)
    res["linux_count"] = count
    res["policy_rate_vs_linux"] = round(res["sequential_policy_per_s"] / res["linux_policy_per_s"], 3)


def reconf(sock, args, res, ha, hb):
    """Simplified reconf: RECONF more tunnels, one message at a time, while the background flows
    (one configuration tunnel and one bypass flow) run through the gateway that holds TUNNELS."""
    secs = 8.0
    rx = subprocess.Popen(["ip", "netns", "exec", hb, "/usr/bin/python3", "-c", RECEIVER, str(secs + 6)],
                          stdout=subprocess.PIPE, text=True)
    assert rx.stdout.readline().strip() == "ready"
    tx = subprocess.Popen(["ip", "netns", "exec", ha, "/usr/bin/python3", "-c", SENDER, str(args.rate),
                           str(secs)], stdout=subprocess.PIPE, text=True)
    time.sleep(2)
    msgs = [m for i in range(args.tunnels, args.tunnels + args.reconf) for m in tunnel_msgs(i)]
    t, err = sequential(sock, msgs)
    n_sent = int(tx.communicate(timeout=60)[0])
    plain, esp, _, _ = map(int, rx.communicate(timeout=60)[0].split())
    res["reconf"] = {"tunnels_added": args.reconf, "on_top_of": args.tunnels, "s": round(t, 3),
                     "errors": err, "sent_each": n_sent, "lost": 2 * n_sent - plain - esp}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tunnels", type=int, default=10000)
    ap.add_argument("--window", type=int, default=40000, help="messages in flight (default: all)")
    ap.add_argument("--rate", type=int, default=5000, help="datagrams/s of each background flow")
    ap.add_argument("--reconf", type=int, default=1000,
                    help="tunnels added one message at a time after TUNNELS, flows running (0: skip)")
    ap.add_argument("--teardown", type=int, default=1000,
                    help="tunnels then deleted one message at a time, spread over TUNNELS (0: skip)")
    ap.add_argument("--policies", type=int, default=20000,
                    help="policies installed one at a time, and into Linux's XFRM (0: skip)")
    args = ap.parse_args()
    topo = Topology()
    work = tempfile.mkdtemp(prefix="dpsec-pfkey-bench-")
    res = {"tunnels": args.tunnels, "window": args.window}
    try:
        ha, gw, hb, va, ga, gb = topology(topo)
        sock = os.path.join(work, "pfkey.sock")
        d = Daemon(config(ga, gb, topo.tag, sock), work, ns=gw).start()
        # resolve host B before the flows start: their first datagrams would wait on ARP
        sh(["ping", "-c", "2", "-i", "0.2", "10.2.0.2"], ns=ha, check=False)  # no route back: ARP is all
        all_msgs = [tunnel_msgs(i) for i in range(args.tunnels)]
        # sequential SADB_ADD rate on a fresh SADB (2000 SAs, then flushed)
        adds = [m for t in all_msgs[:1000] for m in t[:2]]
        t, err = sequential(sock, adds)
        res["sequential_add_per_s"] = round(len(adds) / t)
        res["sequential_errors"] = err
        sequential(sock, [K.msg(K.FLUSH, K.ESP)])
        if args.policies:
            control_plane(sock, args.policies, res)
        # the background flows, then everything at once
        secs = 12.0
        rx = subprocess.Popen(["ip", "netns", "exec", hb, "/usr/bin/python3", "-c", RECEIVER, str(secs + 6)],
                              stdout=subprocess.PIPE, text=True)
        assert rx.stdout.readline().strip() == "ready"
        tx = subprocess.Popen(["ip", "netns", "exec", ha, "/usr/bin/python3", "-c", SENDER, str(args.rate),
                               str(secs)], stdout=subprocess.PIPE, text=True)
        time.sleep(3)
        msgs = [m for t in all_msgs for m in t]
        t, err = pipelined(sock, msgs, args.window)
        t_pub = time.time()
        # published: the last tunnel's SA is in the workers' snapshot once dpsecctl's count agrees
        res["install_s"] = round(t, 3)
        res["messages"] = len(msgs)
        res["messages_per_s"] = round(len(msgs) / t)
        res["install_errors"] = err
        n_sent = int(tx.communicate(timeout=60)[0])
        plain, esp, _, _ = map(int, rx.communicate(timeout=60)[0].split())
        res["background_sent_each"] = n_sent
        res["plain_received"] = plain
        res["esp_received"] = esp
        res["lost"] = 2 * n_sent - plain - esp
        cfg_sa = [s for s in d.ctl_json("sa")["sas"].values() if s["spi"] == "0x00000777"][0]
        res["esp_sent_by_dpsecd"] = cfg_sa["packets"]
        ports = d.port_stats()
        res["port_drops"] = {p: {k: v for k, v in c.items() if k.startswith("drop") and v}
                             for p, c in ports.items()}
        res.update(proc_mem(d.proc.pid))  # ip netns exec execs dpsecd: the same pid
        info = d.ctl_json("policy")["policies"]
        res["policies_after"] = len(info)
        res["check_s"] = round(time.time() - t_pub, 1)
        if args.reconf:
            reconf(sock, args, res, ha, hb)
        if args.teardown:
            teardown(sock, args, res)
        assert d.stop() == 0
    finally:
        topo.close()
    print(json.dumps(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
