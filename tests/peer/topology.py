"""Helpers for tests that use esp_peer: namespaces, veth links, running peers,
mirrored SA pairs, wire captures.  Independent of dpsecd (nothing here
imports or starts it), so dpsecd tests and the peer's own self-test share it.

    import sys; sys.path.insert(0, "<repo>/tests/peer")
    from topology import Netns, EspPeer, sa_pair, peer_config, Capture

    net = Netns()
    gw, host = net.ns("gw"), net.ns("host")
    wan, far = net.link(gw, other_ns)          # veth pair, offloads off
    out_sas, in_sas = sa_pair(...)
    peer = EspPeer(gw, peer_config(...), workdir).start()
    peer.stats()["sas"]["in:0x00001001"]["packets"]
    peer.stop(); net.close()
"""
import hashlib
import json
import os
import re
import secrets
import signal
import struct
import subprocess
import time
import uuid

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
PEER = os.path.join(HERE, "esp_peer.py")
PYTHON = "/usr/bin/python3"   # the distribution python, which has scapy

# key bytes (without salt) for each algorithm at a given size, salt bytes
SALT = {"aes-gcm": 4, "aes-ctr": 4, "aes-gmac": 4, "chacha20-poly1305": 4}
AUTH_KEY = {"none": 0, "hmac-sha1-96": 20, "hmac-sha256-128": 32,
            "hmac-sha384-192": 48, "hmac-sha512-256": 64}


def sh(cmd, ns=None, check=True, timeout=60, **kw):
    """Run a command (list or shell string), optionally inside namespace ns."""
    if isinstance(cmd, str):
        cmd = ["sh", "-c", cmd]
    if ns:
        cmd = ["ip", "netns", "exec", ns] + cmd
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kw)
    if check and r.returncode != 0:
        raise AssertionError(f"{cmd} failed ({r.returncode}): {r.stdout}{r.stderr}")
    return r


class Netns:
    """Namespaces and veth pairs with unique names; close() removes them."""

    def __init__(self, prefix="ep"):
        self.tag = f"{prefix}{uuid.uuid4().hex[:5]}"
        self.namespaces = []
        self.n_links = 0

    def ns(self, name):
        full = f"{name}-{self.tag}"
        sh(["ip", "netns", "add", full])
        self.namespaces.append(full)
        sh(["ip", "link", "set", "lo", "up"], ns=full)
        # no duplicate address detection: link-local addresses usable at once
        sh(["sysctl", "-qw", "net.ipv6.conf.all.accept_dad=0", "net.ipv6.conf.default.accept_dad=0"],
           ns=full, check=False)
        return full

    def link(self, ns_a, ns_b, mtu=None, kernel_off=()):
        """A veth pair between two namespaces; returns (name in ns_a, name in ns_b).
        Checksum offload is turned off: af_packet readers would see unfilled sums.
        kernel_off: namespaces (ns_a and/or ns_b) whose end is for an af_packet
        user (esp_peer, dpsecd): their kernel gets IPv6 off and ignores ARP there
        before the link comes up, so it never sends a frame (MLD, RS) on it."""
        self.n_links += 1
        a = f"e{self.n_links}{uuid.uuid4().hex[:7]}"
        b = "f" + a[1:]
        sh(["ip", "link", "add", "name", a, "type", "veth", "peer", "name", b])
        sh(["ip", "link", "set", a, "netns", ns_a])
        sh(["ip", "link", "set", b, "netns", ns_b])
        for ns, ifc in ((ns_a, a), (ns_b, b)):
            if ns in kernel_off:
                sh(["sysctl", "-qw", f"net.ipv6.conf.{ifc}.disable_ipv6=1",
                    f"net.ipv4.conf.{ifc}.arp_ignore=8", f"net.ipv4.conf.{ifc}.rp_filter=1"], ns=ns)
            if mtu:
                sh(["ip", "link", "set", ifc, "mtu", str(mtu)], ns=ns)
            sh(["ip", "link", "set", ifc, "up"], ns=ns)
            sh(["ethtool", "-K", ifc, "tx", "off", "rx", "off"], ns=ns, check=False)
        return a, b

    @staticmethod
    def addrs(ns, ifc, addrs):
        for a in addrs:
            sh(["ip", "addr", "add", a, "dev", ifc] + (["nodad"] if ":" in a else []), ns=ns)

    @staticmethod
    def route(ns, prefix, via=None, dev=None):
        cmd = ["ip", "-6" if ":" in prefix else "-4", "route", "replace", prefix]
        if via:
            cmd += ["via", via]
        if dev:
            cmd += ["dev", dev]
        sh(cmd, ns=ns)

    @staticmethod
    def forwarding(ns):
        sh(["sysctl", "-qw", "net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1"], ns=ns)

    def close(self):
        for ns in self.namespaces:
            for p in sh(["ip", "netns", "pids", ns], check=False).stdout.split():
                try:
                    os.kill(int(p), signal.SIGKILL)
                except (ProcessLookupError, ValueError):
                    pass
            sh(["ip", "netns", "del", ns], check=False)
        self.namespaces = []


# --------------------------------------------------------------------------
# SAs and configurations
# --------------------------------------------------------------------------


def random_key(nbytes):
    return "0x" + secrets.token_hex(nbytes) if nbytes else ""


def sa_pair(local, remote, spi_out, spi_in, enc_alg="aes-gcm", enc_bits=128, auth_alg="none",
            mode="tunnel", udp_encap=False, esn=False, replay_window=64,
            local_prefixes=(), remote_prefixes=(), enc_keys=None, auth_keys=None, seq=None, proto="esp"):
    """Mirrored SAs for two gateways.  Returns (sas_for_local, sas_for_remote),
    each [outbound, inbound], in the peer's configuration format.

    local/remote: the gateways' outside addresses.  local_prefixes /
    remote_prefixes: the protected networks behind each (tunnel mode); a
    transport SA pair needs none.  udp_encap: False, True (4500 -> 4500) or
    (sport, dport) as seen from local.  enc_keys/auth_keys: (out, in) hex keys
    to reuse, otherwise random ones are made (with salt where needed).  seq: the
    first sequence number both outbound SAs send (ESN wrap tests).  proto: "esp"
    or "ah" (no encryption: enc_alg is ignored, auth_alg required)."""
    klen = enc_bits // 8 if enc_alg != "null" else 0
    if enc_alg == "chacha20-poly1305":
        klen = 32
    klen += SALT.get(enc_alg, 0)
    ek = enc_keys or (random_key(klen), random_key(klen))
    ak = auth_keys or (random_key(AUTH_KEY[auth_alg]), random_key(AUTH_KEY[auth_alg]))
    if udp_encap is True:
        udp_encap = (4500, 4500)

    def one(spi, src, dst, ekey, akey, sport_dport, lp, rp, direction):
        sa = {"spi": f"0x{spi:08x}", "dir": direction, "mode": mode, "src": src, "dst": dst,
              "enc_alg": enc_alg, "enc_key": ekey, "auth_alg": auth_alg}
        if proto == "ah":
            sa.update(proto="ah", enc_alg="null", enc_key="")
        if akey:
            sa["auth_key"] = akey
        if sport_dport:
            sa["udp_encap"] = {"sport": sport_dport[0], "dport": sport_dport[1]}
        if esn:
            sa["esn"] = True
        if direction == "in":
            sa["replay_window"] = replay_window
        elif seq is not None:
            sa["seq"] = seq
        if mode == "tunnel":
            sa["selectors"] = [{"remote": r, "local": l} for r in rp for l in lp
                               if (":" in r) == (":" in l)]
        return sa

    rev = (udp_encap[1], udp_encap[0]) if udp_encap else None
    # SA 1: local -> remote (spi_out), SA 2: remote -> local (spi_in)
    l_out = one(spi_out, local, remote, ek[0], ak[0], udp_encap, local_prefixes, remote_prefixes, "out")
    l_in = one(spi_in, remote, local, ek[1], ak[1], rev, local_prefixes, remote_prefixes, "in")
    r_out = one(spi_in, remote, local, ek[1], ak[1], rev, remote_prefixes, local_prefixes, "out")
    r_in = one(spi_out, local, remote, ek[0], ak[0], udp_encap, remote_prefixes, local_prefixes, "in")
    return [l_out, l_in], [r_out, r_in]


def peer_config(name, iface, addresses, tun, sas, remote=(), remote_mac=None, **extra):
    cfg = {"name": name,
           "outside": {"iface": iface, "addresses": list(addresses)},
           "inside": {"tun": tun},
           "sas": sas}
    if remote:
        cfg["outside"]["remote"] = list(remote)
    if remote_mac:
        cfg["outside"]["remote_mac"] = remote_mac
    for k, v in extra.items():
        if k in ("outside", "inside"):
            cfg[k].update(v)
        else:
            cfg[k] = v
    return cfg


# --------------------------------------------------------------------------
# Running a peer
# --------------------------------------------------------------------------


class EspPeer:
    """esp_peer.py started in namespace ns from a configuration dict."""

    def __init__(self, ns, cfg, workdir, name=None, log_level="info"):
        self.ns = ns
        self.name = name or cfg.get("name", "peer")
        self.cfg = cfg
        self.workdir = workdir
        self.conf_path = os.path.join(workdir, f"{self.name}.yaml")
        self.log_path = os.path.join(workdir, f"{self.name}.log")
        self.stats_path = os.path.join(workdir, f"{self.name}.stats.json")
        self.ready_path = os.path.join(workdir, f"{self.name}.ready")
        self.log_level = log_level
        self.proc = None
        self.final_stats = None

    def start(self, timeout=15):
        return self.launch().wait_ready(timeout)

    def launch(self):
        """Start the process without waiting (see wait_ready)."""
        with open(self.conf_path, "w") as f:
            yaml.safe_dump(self.cfg, f, sort_keys=False)
        for p in (self.ready_path, self.stats_path):
            if os.path.exists(p):
                os.unlink(p)
        cmd = ["ip", "netns", "exec", self.ns, PYTHON, PEER, "-c", self.conf_path,
               "--stats-file", self.stats_path, "--ready-file", self.ready_path,
               "--log-level", self.log_level]
        self.logf = open(self.log_path, "w")
        self.proc = subprocess.Popen(cmd, stdout=self.logf, stderr=subprocess.STDOUT)
        return self

    def wait_ready(self, timeout=15):
        """Wait for the ready file (written once the TUN, routes and socket are up)."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"esp_peer {self.name} exited {self.proc.returncode}:\n{self.log()}")
            if os.path.exists(self.ready_path):
                return self
            time.sleep(0.05)
        raise AssertionError(f"esp_peer {self.name} not ready in {timeout}s:\n{self.log()}")

    def log(self):
        try:
            with open(self.log_path) as f:
                return f.read()
        except OSError:
            return ""

    def _read(self):
        try:
            with open(self.stats_path) as f:
                return json.load(f)
        except (OSError, ValueError):
            return None

    def stats(self, timeout=5):
        """Fresh statistics: SIGUSR1, then wait for a newer generation."""
        if self.proc is None or self.proc.poll() is not None:
            return self.final_stats or self._read()
        old = (self._read() or {}).get("generation", 0)
        self.proc.send_signal(signal.SIGUSR1)
        deadline = time.time() + timeout
        while time.time() < deadline:
            s = self._read()
            if s and s.get("generation", 0) > old:
                return s
            time.sleep(0.02)
        raise AssertionError(f"esp_peer {self.name}: no statistics after SIGUSR1\n{self.log()}")

    def sa_stats(self, direction, spi):
        spi = int(spi, 0) if isinstance(spi, str) else spi
        return self.stats()["sas"][f"{direction}:0x{spi:08x}"]

    def stop(self, timeout=10):
        """SIGTERM; expects a clean exit.  Returns the final statistics."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError(f"esp_peer {self.name} ignored SIGTERM\n{self.log()}")
        self.logf.close()
        self.final_stats = self._read()
        rc = self.proc.returncode
        if rc != 0:
            raise AssertionError(f"esp_peer {self.name} exited {rc}\n{self.log()}")
        return self.final_stats


# --------------------------------------------------------------------------
# Capture
# --------------------------------------------------------------------------


class Capture:
    """tcpdump on an interface in a namespace, into a pcap file."""

    def __init__(self, ns, iface, path, snaplen=0):
        self.ns, self.iface, self.path, self.snaplen = ns, iface, path, snaplen
        self.proc = None

    def start(self, timeout=10):
        self.errpath = self.path + ".err"
        self.errf = open(self.errpath, "w")
        self.proc = subprocess.Popen(
            # --immediate-mode: without it libpcap hands over TPACKET_V3 blocks late and
            # a short capture stopped by SIGTERM loses its packets
            ["ip", "netns", "exec", self.ns, "tcpdump", "-i", self.iface, "-n", "-U", "--immediate-mode",
             "-B", "65536", "-s", str(self.snaplen),
             "-w", self.path], stdout=subprocess.DEVNULL, stderr=self.errf)
        deadline = time.time() + timeout
        while time.time() < deadline:
            with open(self.errpath) as f:
                if "listening on" in f.read():
                    return self
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        raise AssertionError(f"tcpdump did not start: {open(self.errpath).read()}")

    def stop(self):
        """Stop tcpdump; returns the frames.  self.summary holds tcpdump's own
        counts (captured, received, dropped): a complete capture has
        captured == received and dropped == 0."""
        if self.proc and self.proc.poll() is None:
            time.sleep(0.2)
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=10)
        self.errf.close()
        with open(self.errpath) as f:
            err = f.read()
        self.summary = {}
        for key, rx in (("captured", r"(\d+) packets? captured"), ("received", r"(\d+) packets? received by filter"),
                        ("dropped", r"(\d+) packets? dropped by kernel")):
            m = re.search(rx, err)
            self.summary[key] = int(m.group(1)) if m else None
        return list(read_pcap(self.path))


def read_pcap(path):
    """Frames of a classic pcap file (what tcpdump -w writes)."""
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 24:
        return
    magic = data[:4]
    if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1"):
        end = "<"
    elif magic in (b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"):
        end = ">"
    else:
        raise ValueError(f"{path}: not a pcap file")
    off = 24
    while off + 16 <= len(data):
        _, _, incl, _ = struct.unpack(end + "IIII", data[off:off + 16])
        off += 16
        yield data[off:off + incl]
        off += incl


def classify(frame):
    """A short name for what a frame carries on the outside link:
    'esp4', 'esp6', 'ah4', 'ah6', 'udp4:<sport>-><dport>', 'udp6:...', 'arp', 'nd',
    or something else that names the inner protocol."""
    if len(frame) < 14:
        return "runt"
    et = frame[12:14]
    p = frame[14:]
    if et == b"\x08\x06":
        return "arp"
    if et == b"\x08\x00" and len(p) >= 20:
        ihl = (p[0] & 0xF) * 4
        proto = p[9]
        frag_off = int.from_bytes(p[6:8], "big") & 0x1FFF
        if proto == 50:
            return "esp4"
        if proto == 51:
            return "ah4"
        if proto == 17:
            if frag_off:
                return "udp4:frag"
            sport, dport = struct.unpack("!HH", p[ihl:ihl + 4])
            return f"udp4:{sport}->{dport}"
        return f"ipv4:proto{proto}"
    if et == b"\x86\xdd" and len(p) >= 40:
        nh, off = p[6], 40
        while nh in (0, 43, 60, 44) and off + 8 <= len(p):
            if nh == 44:
                if int.from_bytes(p[off + 2:off + 4], "big") & ~7:
                    return f"ipv6:frag{p[off]}"
                nh, off = p[off], off + 8
            else:
                nh, off = p[off], off + (p[off + 1] + 1) * 8
        if nh == 50:
            return "esp6"
        if nh == 51:
            return "ah6"
        if nh == 17:
            sport, dport = struct.unpack("!HH", p[off:off + 4])
            return f"udp6:{sport}->{dport}"
        if nh == 58 and off < len(p) and p[off] in (133, 134, 135, 136, 137):
            return "nd"
        return f"ipv6:nh{nh}"
    return f"ethertype:{et.hex()}"


# --------------------------------------------------------------------------
# Traffic
# --------------------------------------------------------------------------


def ping(ns, dst, size=56, count=3, interval=0.05, wait=3, pattern=None, check=True):
    """ping from namespace ns; returns the number of replies (asserts all came back).

    Uses -w (deadline), not -W: once one reply is in, iputils ping gives the
    others only two round-trip times, which a busy machine easily exceeds.
    With -w, ping sends until count replies are in: when the round trip
    exceeds the interval it has sent more, and their replies may come too
    ("6 received" of count 5); that is not a failure, a duplicate is."""
    deadline = int(count * interval + wait) + 1
    cmd = ["ping", "-n", "-q", "-c", str(count), "-i", str(interval), "-w", str(deadline), "-s", str(size), dst]
    if pattern:
        cmd[1:1] = ["-p", pattern]
    r = sh(cmd, ns=ns, check=False, timeout=deadline + 10)
    got = 0
    for line in r.stdout.splitlines():
        if "received" in line:
            got = int(line.split(",")[1].split()[0])
    # under load ping may send one more than count before the last reply is in (-w waits for
    # count replies): more replies than count is not a loss
    if check and (got < count or "duplicates" in r.stdout):
        raise AssertionError(f"ping {dst} -s {size} from {ns}: {got}/{count} replies\n{r.stdout}{r.stderr}")
    return got


def inject(ns, iface, *frames):
    """Send raw Ethernet frames out of iface in namespace ns (af_packet)."""
    code = ("import socket,sys\n"
            "s=socket.socket(socket.AF_PACKET,socket.SOCK_RAW)\n"
            "s.bind((sys.argv[1],0))\n"
            "[s.send(bytes.fromhex(h)) for h in sys.argv[2:]]\n")
    sh(["ip", "netns", "exec", ns, PYTHON, "-c", code, iface] + [f.hex() for f in frames])


def make_payload(path, size, seed=None):
    data = os.urandom(size) if seed is None else hashlib.shake_256(seed).digest(size)
    with open(path, "wb") as f:
        f.write(data)
    return hashlib.sha256(data).hexdigest()


class TcpTransfer:
    """One nc transfer of a file from src_ns to dst_addr:port (listener in dst_ns).
    start() returns once the listener is up and the sender runs; wait() returns
    the SHA-256 of what arrived."""

    def __init__(self, src_ns, dst_ns, dst_addr, port, data_path, out_path):
        self.src_ns, self.dst_ns, self.dst_addr, self.port = src_ns, dst_ns, dst_addr, port
        self.data_path, self.out_path = data_path, out_path

    def start(self, timeout=10):
        self.outf = open(self.out_path, "wb")
        fam = "-6" if ":" in self.dst_addr else "-4"
        self.rx = subprocess.Popen(["ip", "netns", "exec", self.dst_ns, "nc", fam, "-l", "-n", str(self.port)],
                                   stdin=subprocess.DEVNULL, stdout=self.outf, stderr=subprocess.PIPE)
        deadline = time.time() + timeout
        while time.time() < deadline:
            r = sh(["ss", "-Hltn", f"sport = :{self.port}"], ns=self.dst_ns, check=False)
            if r.stdout.strip():
                break
            time.sleep(0.05)
        else:
            raise AssertionError(f"nc -l {self.port} did not start in {self.dst_ns}")
        self.inf = open(self.data_path, "rb")
        self.tx = subprocess.Popen(["ip", "netns", "exec", self.src_ns, "nc", "-n", "-N", "-w", "20",
                                    self.dst_addr, str(self.port)],
                                   stdin=self.inf, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        return self

    def wait(self, timeout=60):
        try:
            self.tx.wait(timeout=timeout)
            self.rx.wait(timeout=max(5, timeout / 4))
        except subprocess.TimeoutExpired:
            for p in (self.tx, self.rx):
                p.kill()
                p.wait()
            raise AssertionError(f"nc transfer to {self.dst_addr}:{self.port} timed out "
                                 f"({os.path.getsize(self.out_path)} bytes arrived)")
        finally:
            self.inf.close()
            self.outf.close()
        with open(self.out_path, "rb") as f:
            return hashlib.sha256(f.read()).hexdigest()
