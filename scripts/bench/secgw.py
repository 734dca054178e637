"""DPDK's ipsec-secgw example as the benchmark's reference gateway.

scripts/ipsec-secgw.sh builds it from Debian's dpdk source package into BIN.
It runs in the set-up of the dpsecd cases: lcores 0-1 (main 0, one worker on
lcore 1), port 0 = the same net_pcap input (protected: plaintext to encrypt),
port 1 = net_null (unprotected: where ESP leaves), crypto_aesni_mb through
cryptodev (lookaside-none, the example's default), one outbound SA with the
key, SPI and tunnel addresses of the dpsecd 'out' cases (gen.py). Inbound
(the 'in' cases' pcap, ESP from the peer): port 0 is net_null (protected: where
the decrypted packets leave), port 1 the net_pcap input (unprotected), and the
inbound SA is the dpsecd 'in' cases' one. The example's replay window is off
by default, as the dpsecd 'in' cases' (the pcap repeats its sequence numbers).

The example configures one Tx queue per lcore, main lcore included, on every
port; net_pcap offers as many Tx queues as Rx queues (a drop queue each), so
the input port names the pcap twice: a second Rx queue that nobody polls.

SecGw has the interface of bench.Daemon (start, stats, stop, read_log, proc)
so that bench.measure() samples both alike; its counters come from DPDK's
telemetry socket (/ethdev/stats), ports named as in dpsecd's output
(lan = port 0, wan = port 1).
"""
import json
import os
import shutil
import signal
import socket
import subprocess
import time

import gen

BIN = os.environ.get("DPSEC_SECGW", "/usr/local/lib/dpsec/dpdk-ipsec-secgw")
RUNTIME = "/var/run/dpdk"
MBUFS = 32767  # as many as the dpsecd cases' pool (gen.config)
ESP_OVERHEAD = 14 + 20 + 8 + 8 + 16  # Ethernet, outer IPv4, ESP header, GCM IV, ICV


def esp_frame_len(size):
    """Length of the Ethernet frame carrying a size-byte IP packet in tunnel-mode
    ESP AES-GCM: payload + 2-byte trailer padded to 4 bytes (RFC 4303 2.4)."""
    return ESP_OVERHEAD + (size + 2 + 3) // 4 * 4


def hexkey(b):
    return ":".join(f"{x:02x}" for x in b)


def config_text():
    """The -f file: outbound policy and SA as in gen.config('out'), a route to
    the peer on port 1 and the next hop's MAC; the inbound policy and SA of the
    'in' cases, a route to the LAN on port 0 and the LAN host's MAC."""
    return "\n".join([
        f"sp ipv4 out esp protect {gen.SPI_OUT} pri 1 src 192.168.10.0/24 dst 10.0.0.0/8 "
        "sport 0:65535 dport 0:65535",
        f"sa out {gen.SPI_OUT} aead_algo aes-128-gcm aead_key {hexkey(gen.KEY_OUT)} "
        f"mode ipv4-tunnel src {gen.WAN_ADDR} dst {gen.PEER}",
        f"sp ipv4 in esp protect {gen.SPI_IN} pri 1 src 192.168.20.0/24 dst 192.168.10.0/24 "
        "sport 0:65535 dport 0:65535",
        f"sa in {gen.SPI_IN} aead_algo aes-128-gcm aead_key {hexkey(gen.KEY_IN)} "
        f"mode ipv4-tunnel src {gen.PEER} dst {gen.WAN_ADDR}",
        f"rt ipv4 dst {gen.PEER}/32 port 1",
        f"rt ipv4 dst {gen.LAN_HOST}/32 port 0",
        f"neigh port 1 {gen.NEXTHOP_MAC}",
        f"neigh port 0 {gen.HOST_MAC}",
        ""])


def command(pcap, cfg, prefix, out_dev="net_null0,no-rx=1", inbound=False):
    """Ports are numbered in --vdev order: port 0 protected, port 1 unprotected (-u)."""
    src_dev = f"net_pcap0,rx_pcap={pcap},rx_pcap={pcap},infinite_rx=1"
    devs = (out_dev, src_dev) if inbound else (src_dev, out_dev)
    return [BIN, "-l", "0,1", "--main-lcore", "0", "--in-memory", "--file-prefix", prefix,
            "--no-pci", "--vdev", devs[0], "--vdev", devs[1], "--vdev", "crypto_aesni_mb", "--",
            "-p", "0x3", "-u", "0x2", "--config", "(0,0,1),(1,0,1)", "-s", str(MBUFS),
            "-f", cfg]


class Telemetry:
    """A client of DPDK's telemetry socket (v2: JSON over SOCK_SEQPACKET)."""

    def __init__(self, prefix):
        self.path = os.path.join(RUNTIME, prefix, "dpdk_telemetry.v2")
        self.sock = None

    def connect(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        s.settimeout(5)
        s.connect(self.path)
        hello = json.loads(s.recv(1 << 16))
        self.max_len = hello.get("max_output_len", 1 << 16)
        self.sock = s
        return self

    def __call__(self, cmd):
        self.sock.send(cmd.encode())
        return json.loads(self.sock.recv(self.max_len))[cmd.split(",")[0]]

    def close(self):
        if self.sock:
            self.sock.close()
            self.sock = None


class SecGw:
    def __init__(self, pcap, workdir, name, out_dev="net_null0,no-rx=1", inbound=False):
        self.prefix = f"dpsbenchsg{os.getpid()}"
        self.cfg = os.path.join(workdir, f"{name}.cfg")
        self.log = os.path.join(workdir, f"{name}.log")
        with open(self.cfg, "w") as f:
            f.write(config_text())
        os.chmod(self.cfg, 0o600)
        self.cmd = command(pcap, self.cfg, self.prefix, out_dev, inbound)
        names = ("net_pcap0", out_dev.split(",")[0])
        self.dev_names = names[::-1] if inbound else names
        with open(os.path.join(workdir, f"{name}.cmdline"), "w") as f:
            f.write(" ".join(self.cmd) + "\n")
        self.tel = Telemetry(self.prefix)
        self.proc = None

    def start(self, timeout=60):
        self.logf = open(self.log, "w")
        self.proc = subprocess.Popen(self.cmd, stdout=self.logf, stderr=subprocess.STDOUT)
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"ipsec-secgw exited {self.proc.returncode}:\n"
                                   f"{self.read_log()[-3000:]}")
            try:
                self.tel.connect()
            except (OSError, ValueError):
                time.sleep(0.2)
                continue
            # Ports are numbered in --vdev order: check, a swap would measure nothing.
            for port, dev in enumerate(self.dev_names):
                name = self.tel(f"/ethdev/info,{port}").get("name")
                if name != dev:
                    raise RuntimeError(f"ipsec-secgw's port {port} is {name}, not {dev}")
            return self
        raise RuntimeError(f"ipsec-secgw's telemetry not up in {timeout}s:\n"
                           f"{self.read_log()[-3000:]}")

    def port_stats(self, port):
        s = self.tel(f"/ethdev/stats,{port}")
        return {"rx_packets": s["ipackets"], "tx_packets": s["opackets"],
                "rx_bytes": s["ibytes"], "tx_bytes": s["obytes"],
                "dev_imissed": s["imissed"], "dev_ierrors": s["ierrors"],
                "dev_oerrors": s["oerrors"], "dev_rx_nombuf": s["rx_nombuf"]}

    def stats(self):
        """Counters in dpsecctl's shape, with the time they were read."""
        # Telemetry answers one port per call, a millisecond or more apart on a busy machine
        # (thousands of packets): port 0 is read before and after port 1 and averaged, so
        # that rx and tx are of the same moment.
        t0 = time.monotonic()
        a, wan, b = self.port_stats(0), self.port_stats(1), self.port_stats(0)
        t1 = time.monotonic()
        lan = {k: (a[k] + b[k]) // 2 for k in a}
        return (t0 + t1) / 2, {"ports": {"lan": lan, "wan": wan}}

    def sa_counters(self):
        return None  # the example keeps none per SA on this code path

    def read_log(self):
        with open(self.log) as f:
            return f.read()

    def stop(self):
        self.tel.close()
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)  # the example's clean exit
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.logf.close()
        # --in-memory still leaves its runtime directory (the telemetry socket's) behind
        shutil.rmtree(os.path.join(RUNTIME, self.prefix), ignore_errors=True)
        return self.proc.returncode


def verify_esp(pcap, size, workdir, name, frames=16):
    """Run the example once with port 1 writing to pcap files until it has sent
    some frames, and check them with scapy: each must be tunnel-mode ESP from
    the gateway to the peer with the configured SPI, the size ESP gives, and
    decrypt with the configured key to one of the input's plaintext packets.
    Raises RuntimeError otherwise: a reference that forwards plaintext or
    drops everything would be worthless."""
    from scapy.layers.inet import IP, UDP
    from scapy.layers.ipsec import ESP
    from scapy.utils import PcapReader

    outs = [os.path.join(workdir, f"{name}-tx{q}.pcap") for q in (0, 1)]
    g = SecGw(pcap, workdir, name,
              out_dev="net_pcap1," + ",".join(f"tx_pcap={o}" for o in outs))
    g.start()
    try:
        deadline = time.time() + 20
        while g.port_stats(1)["tx_packets"] < frames:
            if time.time() > deadline:
                raise RuntimeError(f"{name}: ipsec-secgw sent nothing on port 1 in 20 s: "
                                   f"{g.stats()[1]}\n{g.read_log()[-3000:]}")
            time.sleep(0.05)
    finally:
        rc = g.stop()  # closes the pcap dumpers: the files are complete
    if rc != 0:
        raise RuntimeError(f"{name}: ipsec-secgw exited {rc}:\n{g.read_log()[-3000:]}")
    sa = gen.sa_out_scapy()
    checked = 0
    try:
        for o in outs:
            for fr in PcapReader(o):
                if checked >= frames:
                    break
                what = f"{name}: frame {checked} of {o}"
                if len(fr) != esp_frame_len(size) or not fr.haslayer(ESP):
                    raise RuntimeError(f"{what} is not ESP of a {size}-byte packet: "
                                       f"{len(fr)} bytes, {fr.summary()}")
                ip = fr[IP]
                if (ip.src, ip.dst, fr[ESP].spi) != (gen.WAN_ADDR, gen.PEER, gen.SPI_OUT):
                    raise RuntimeError(f"{what}: {ip.src} > {ip.dst} SPI {fr[ESP].spi:#x}, "
                                       f"expected {gen.WAN_ADDR} > {gen.PEER} SPI "
                                       f"{gen.SPI_OUT:#x}")
                inner = sa.decrypt(ip)  # raises on a wrong key or ICV
                if (not inner.haslayer(UDP) or inner.src != gen.LAN_HOST or inner.len != size
                        or not inner.dst.startswith("10.")):
                    raise RuntimeError(f"{what} decrypts to {inner.summary()}")
                checked += 1
    finally:
        for o in outs:
            if os.path.exists(o):
                os.unlink(o)
    if checked < frames:
        raise RuntimeError(f"{name}: only {checked} frames captured")
    return checked


def verify_clear(pcap, size, workdir, name, frames=16):
    """Inbound: run the example once with port 0 writing to pcap files, and check
    with scapy that what it sent is the plaintext the input's ESP carries (the
    peer's inner packets, REMOTE_HOST to LAN_HOST, decrypted here with the
    inbound SA): a reference that forwarded ESP or dropped everything would be
    worthless. Returns the number of frames checked."""
    from scapy.layers.inet import IP, UDP
    from scapy.layers.l2 import Ether
    from scapy.utils import PcapReader

    sa = gen.sa_in_scapy()
    inner = set()
    for fr in PcapReader(pcap):
        p = sa.decrypt(fr[IP])
        inner.add(bytes(p[UDP]))
    outs = [os.path.join(workdir, f"{name}-tx{q}.pcap") for q in (0, 1)]
    g = SecGw(pcap, workdir, name, out_dev="net_pcap1," + ",".join(f"tx_pcap={o}" for o in outs),
              inbound=True)
    g.start()
    try:
        deadline = time.time() + 20
        while g.port_stats(0)["tx_packets"] < frames:
            if time.time() > deadline:
                raise RuntimeError(f"{name}: ipsec-secgw sent nothing on port 0 in 20 s: "
                                   f"{g.stats()[1]}\n{g.read_log()[-3000:]}")
            time.sleep(0.05)
    finally:
        rc = g.stop()
    if rc != 0:
        raise RuntimeError(f"{name}: ipsec-secgw exited {rc}:\n{g.read_log()[-3000:]}")
    checked = 0
    try:
        for o in outs:
            for fr in PcapReader(o):
                if checked >= frames:
                    break
                what = f"{name}: frame {checked} of {o}"
                if not isinstance(fr, Ether) or IP not in fr or UDP not in fr:
                    raise RuntimeError(f"{what} is not IPv4/UDP: {fr.summary()}")
                ip = fr[IP]
                if (ip.src, ip.dst, ip.len) != (gen.REMOTE_HOST, gen.LAN_HOST, size) or \
                        bytes(fr[UDP]) not in inner:
                    raise RuntimeError(f"{what} is not one of the input's inner packets: "
                                       f"{fr.summary()}")
                checked += 1
    finally:
        for o in outs:
            if os.path.exists(o):
                os.unlink(o)
    if checked < frames:
        raise RuntimeError(f"{name}: only {checked} frames captured")
    return checked
