#!/usr/bin/python3
"""Traffic (pcap) and configuration generator for the dpsecd benchmark.

Topology (every case):

    192.168.10.0/24 --[lan 192.168.10.1] dpsecd [wan 203.0.113.2] --> 203.0.113.1 (next hop)
                                                                 ==== ESP ==== peers

* outbound: plaintext IPv4/UDP frames arrive on lan (net_pcap, replayed
  forever), are routed by the default route, encrypted by the outbound SA
  their policy names and leave on wan (net_null: discarded).
* inbound: ESP from 198.51.100.2 arrives on wan (net_pcap), is decrypted and
  the inner packet leaves on lan (net_null).

Packet size is the length of the *plaintext IP packet*: the packet that
arrives on lan for outbound, the inner packet inside the ESP for inbound.

Usage (for manual runs; scripts/bench/bench.py drives it):
    gen.py pcap-out SIZE FILE [--mode spread|one] [-n FRAMES]
    gen.py pcap-in SIZE FILE
    gen.py config {fwd|out|in|scale} PCAP FILE [--no-cpu-crypto]
"""
import argparse
import hashlib
import ipaddress
import json
import os
import struct
import sys

import yaml

# net_pcap cannot change its MAC (mac_addr_set is not supported): it keeps its
# default 02:70:63:61:70:NN ("pcap" + the index of the pcap port in the process,
# 00 for the only one). The net_null port gets its MAC from the configuration.
PCAP_MAC = "02:70:63:61:70:00"
NULL_MAC = "02:00:00:00:0e:00"
LAN_MAC = PCAP_MAC  # outbound: the frames arrive on lan
WAN_MAC = PCAP_MAC  # inbound: the frames arrive on wan
HOST_MAC = "02:00:00:00:00:aa"  # the LAN host 192.168.10.5
NEXTHOP_MAC = "02:00:00:00:00:bb"  # 203.0.113.1, the WAN next hop

LAN_ADDR, LAN_HOST = "192.168.10.1", "192.168.10.5"
WAN_ADDR, NEXTHOP = "203.0.113.2", "203.0.113.1"
PEER = "198.51.100.2"  # the remote gateway of the 1-SA cases and of inbound
REMOTE_HOST = "192.168.20.7"  # inbound: the remote host behind PEER

# aes-gcm-128 keys (16-byte key + 4-byte salt), one per direction; examples only.
KEY_OUT = bytes.fromhex("0b5b6927f30a175b5a961f0fda4c6019" + "33a334b3")
KEY_IN = bytes.fromhex("5ffb98b4634c39f8524a02f2d5bf535f" + "77ce9956")
SPI_OUT, SPI_IN = 0x1001, 0x2001
# AH HMAC-SHA2-256-128 keys (32 bytes, RFC 4868), one per direction; examples only.
KEY_AH_OUT = bytes.fromhex("7d2f4e1a9c3b5d8f0e6a2c4b7d9f1e3a5c8b0d2f4e6a8c1b3d5f7e9a0c2e4b6d")
KEY_AH_IN = bytes.fromhex("2b4d6f8a0c1e3b5d7f9a2c4e6b8d0f1a3c5e7b9d1f2a4c6e8b0d3f5a7c9e1b2d")

N_SCALE = 10000  # SAs/policies/remote subnets of the scale case
# Distinct frames in a pcap. net_pcap's infinite_rx keeps them all in mbufs and
# memcpy()s each into a fresh mbuf on the worker core: the fewer, the more of
# that copy hits the cache. The main cases use 256 (about 0.6 MB of mbufs at
# 1420 B, L2-resident: on a machine whose L3 is shared with other tenants a
# larger ring makes the harness's copy a DRAM stream that costs more than
# dpsecd itself); the scale cases need one frame per remote subnet.
N_MAIN_PKTS = 256
N_SCALE_PKTS = N_SCALE
MIN_SIZE = 28  # IPv4 + UDP headers


def remote_subnet(i):
    """The i-th remote site: 10.A.B.0/24, i = A*256 + B (0 <= i < 10000)."""
    return f"10.{i >> 8}.{i & 255}.0/24"


def remote_peer(i):
    """The i-th remote gateway: 100.64.0.1 + i."""
    return str(ipaddress.IPv4Address(int(ipaddress.IPv4Address("100.64.0.1")) + i))


def mac_bytes(mac):
    return bytes.fromhex(mac.replace(":", ""))


def ip_cksum(hdr):
    s = sum(struct.unpack("!10H", hdr))
    s = (s & 0xFFFF) + (s >> 16)
    s = (s & 0xFFFF) + (s >> 16)
    return (~s) & 0xFFFF


def fill(kind, n, j):
    """n payload bytes of frame j. pattern: a 256-byte period; text: lines of a
    web server's access log (DEFLATE shrinks them about 3 to 5 times);
    random: SHA-256 output (incompressible)."""
    if kind == "pattern":
        return bytes((i * 7) & 0xFF for i in range(n))
    if kind == "text":
        out, k = b"", 0
        while len(out) < n:
            out += (b"10.%d.%d.%d - - [06/Dec/2026:06:%02d:%02d] \"GET /static/app-%d.js HTTP/1.1\" "
                    b"200 %d \"-\" \"Mozilla/5.0\"\n" % (j & 255, k & 255, (j * 7 + k) % 251, k % 60,
                                                           (j + k) % 60, (j * 31 + k) % 1000,
                                                           (j * 7919 + k * 104729) % 65536))
            k += 1
        return out[:n]
    if kind == "random":
        out, k = b"", 0
        while len(out) < n:
            out += hashlib.sha256(b"%d/%d" % (j, k)).digest()
            k += 1
        return out[:n]
    raise ValueError(kind)


def udp4(src, dst, sport, dport, size, ttl=64, ident=0, payload="pattern"):
    """A size-byte IPv4/UDP packet (UDP checksum 0: allowed in IPv4)."""
    if size < MIN_SIZE:
        raise ValueError(f"size {size} < {MIN_SIZE}")
    payload = fill(payload, size - MIN_SIZE, ident)
    hdr = struct.pack("!BBHHHBBH4s4s", 0x45, 0, size, ident & 0xFFFF, 0, ttl, 17, 0,
                      ipaddress.IPv4Address(src).packed, ipaddress.IPv4Address(dst).packed)
    hdr = hdr[:10] + struct.pack("!H", ip_cksum(hdr)) + hdr[12:]
    return hdr + struct.pack("!HHHH", sport, dport, size - 20, 0) + payload


def eth(dst, src, payload, ethertype=0x0800):
    return mac_bytes(dst) + mac_bytes(src) + struct.pack("!H", ethertype) + payload


def write_pcap(path, frames):
    """Classic pcap, Ethernet link type; written by hand (fast for 10^4 frames)."""
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        for i, fr in enumerate(frames):
            f.write(struct.pack("<IIII", i // 1000000, i % 1000000, len(fr), len(fr)))
            f.write(fr)
    os.replace(tmp, path)


def pcap_out(size, path, mode="spread", n=N_MAIN_PKTS, payload="pattern", raw_path=None):
    """Plaintext frames lan-host -> remote sites.

    spread: frame j goes to 10.A.B.1 of remote subnet j % 10000: consecutive
            frames hit consecutive subnets (so, with 10 000 SAs and n = 10 000,
            32 different SAs per burst: the worst case for per-SA batching).
    one:    every frame goes to remote subnet 0 (10.0.0.1 .. 10.0.0.250).

    payload: what the UDP payloads hold (fill()). raw_path: also write there the
    packets as the gateway forwards them (TTL - 1), back to back: what an IPComp
    tunnel SA compresses, for dpdk-test-compress-perf's --input-file.
    """
    frames, fwd = [], []
    for j in range(n):
        i = j % N_SCALE if mode == "spread" else 0
        net = ipaddress.IPv4Network(remote_subnet(i))
        dst = str(net.network_address + 1 + (j % 250 if mode == "one" else 0))
        frames.append(eth(LAN_MAC, HOST_MAC,
                          udp4(LAN_HOST, dst, 1024 + j % 50000, 5001, size, ident=j, payload=payload)))
        if raw_path:
            fwd.append(udp4(LAN_HOST, dst, 1024 + j % 50000, 5001, size, ttl=63, ident=j,
                            payload=payload))
    write_pcap(path, frames)
    if raw_path:
        with open(raw_path, "wb") as f:
            f.write(b"".join(fwd))
    return len(frames)


def sa_in_scapy():
    from scapy.layers.inet import IP
    from scapy.layers.ipsec import ESP, SecurityAssociation
    return SecurityAssociation(ESP, spi=SPI_IN, crypt_algo="AES-GCM", crypt_key=KEY_IN,
                               tunnel_header=IP(src=PEER, dst=WAN_ADDR))


def sa_out_scapy():
    from scapy.layers.inet import IP
    from scapy.layers.ipsec import ESP, SecurityAssociation
    return SecurityAssociation(ESP, spi=SPI_OUT, crypt_algo="AES-GCM", crypt_key=KEY_OUT,
                               tunnel_header=IP(src=WAN_ADDR, dst=PEER))


def ah_in_scapy():
    """The peer's AH tunnel SA (HMAC-SHA2-256-128), as scapy does AH."""
    from scapy.layers.inet import IP
    from scapy.layers.ipsec import AH, SecurityAssociation
    return SecurityAssociation(AH, spi=SPI_IN, auth_algo="SHA2-256-128", auth_key=KEY_AH_IN,
                               tunnel_header=IP(src=PEER, dst=WAN_ADDR))


def pcap_in(size, path, n=N_MAIN_PKTS, proto="esp"):
    """ESP (or AH) frames from PEER, sequence numbers 1..n, each carrying a
    size-byte inner packet REMOTE_HOST -> LAN_HOST. Made with scapy's ESP (AH)
    (the SA the gateway's inbound SA mirrors)."""
    from scapy.layers.inet import IP
    sa = ah_in_scapy() if proto == "ah" else sa_in_scapy()
    frames = []
    for j in range(n):
        inner = IP(udp4(REMOTE_HOST, LAN_HOST, 5001, 1024 + j % 50000, size, ident=j))
        outer = sa.encrypt(inner, seq_num=j + 1)
        frames.append(eth(WAN_MAC, NEXTHOP_MAC, bytes(outer)))
    write_pcap(path, frames)
    return len(frames)


def _sa(spi, direction, src, dst, reqid, key, replay=None, proto="esp"):
    sa = {"spi": spi, "direction": direction, "proto": proto, "mode": "tunnel", "src": src,
          "dst": dst, "reqid": reqid}
    if proto == "ah":
        sa["integrity"] = {"algorithm": "hmac-sha2-256-128", "key": "0x" + key.hex()}
    else:
        sa["encryption"] = {"algorithm": "aes-gcm-128", "key": "0x" + key.hex()}
    if replay is not None:
        sa["replay_window"] = replay
    return sa


def _policy(direction, src, dst, reqid, tsrc, tdst, proto="esp"):
    return {"direction": direction, "src": src, "dst": dst, "action": "protect",
            "ipsec": [{"proto": proto, "mode": "tunnel", "level": "require", "reqid": reqid,
                       "tunnel": {"src": tsrc, "dst": tdst}}]}


def config(kind, pcap, cpu_crypto=True, prefix="dpsbench", n_sas=N_SCALE, burst=32,
           mbufs=32767, engine="cryptodev", queue_latency_us=0):
    """The dpsecd configuration of a case (a dict, for yaml.safe_dump).

    engine: crypto.engine, "cryptodev" (crypto_aesni_mb, CPU crypto or the queue as
    cpu_crypto says) or "native" (dpsec's AES-GCM over intel-ipsec-mb, src/dataplane/imb.c).
    queue_latency_us: crypto.queue_latency_us, a hardware device's latency simulated on
    the queue path (left out when 0, for builds without the knob).

    kind: fwd (no IPsec: forwarding lan -> wan),
          out (1 outbound SA, policy 192.168.10.0/24 -> 10.0.0.0/8),
          in (1 inbound SA, replay_window 0, fwd policy 192.168.20.0/24 -> 192.168.10.0/24),
          scale (n_sas outbound SAs and policies, one per remote subnet 10.A.B.0/24,
          each SA to its own peer 100.64.x.y).
    """
    src_dev = f"net_pcap0,rx_pcap={pcap},infinite_rx=1"
    null_dev = "net_null0,no-rx=1"
    # ah-out, ah-in: AH HMAC-SHA2-256-128; ipcomp-out: IPComp (DEFLATE) on compress_isal
    proto = kind.split("-")[0] if kind.startswith(("ah-", "ipcomp-")) else "esp"
    kind = kind.split("-", 1)[1] if proto != "esp" else kind
    lan_dev, wan_dev = (null_dev, src_dev) if kind == "in" else (src_dev, null_dev)
    cfg = {
        "eal": {"lcores": "0-1", "main_lcore": 0, "file_prefix": prefix, "in_memory": True},
        "log_level": "notice",
        "dataplane": {"idle_backoff": False, "burst": burst, "mbufs": mbufs},
        "ports": [
            {"name": "lan", "device": lan_dev, "role": "protected", "exception": False,
             "addresses": [LAN_ADDR + "/24"]},
            {"name": "wan", "device": wan_dev, "role": "unprotected", "exception": False,
             "addresses": [WAN_ADDR + "/24"]},
        ],
        "workers": [{"lcore": 1}],
        "routes": [{"prefix": "0.0.0.0/0", "via": NEXTHOP, "port": "wan"}],
        "neighbours": [{"address": NEXTHOP, "mac": NEXTHOP_MAC, "port": "wan"},
                       {"address": LAN_HOST, "mac": HOST_MAC, "port": "lan"}],
        "crypto": {"devices": ["crypto_aesni_mb"], "cpu_crypto": cpu_crypto, "engine": engine,
                   "sessions": 16384 if kind == "scale" else 1024},
    }
    if queue_latency_us:
        cfg["crypto"]["queue_latency_us"] = queue_latency_us
    if kind == "out" and proto == "ipcomp":
        cfg["compress"] = {"devices": ["compress_isal"]}
        cfg["sas"] = [{"spi": SPI_OUT, "direction": "out", "proto": "ipcomp", "mode": "tunnel",
                       "src": WAN_ADDR, "dst": PEER, "reqid": 1}]
        cfg["policies"] = [_policy("out", "192.168.10.0/24", "10.0.0.0/8", 1, WAN_ADDR, PEER,
                                   proto)]
    elif kind == "out":
        cfg["sas"] = [_sa(SPI_OUT, "out", WAN_ADDR, PEER, 1, KEY_AH_OUT if proto == "ah" else KEY_OUT,
                          proto=proto)]
        cfg["policies"] = [_policy("out", "192.168.10.0/24", "10.0.0.0/8", 1, WAN_ADDR, PEER,
                                   proto)]
    elif kind == "in":
        cfg["sas"] = [_sa(SPI_IN, "in", PEER, WAN_ADDR, 1, KEY_AH_IN if proto == "ah" else KEY_IN,
                          replay=0, proto=proto)]
        cfg["policies"] = [_policy("fwd", "192.168.20.0/24", "192.168.10.0/24", 1, PEER,
                                   WAN_ADDR, proto)]
    elif kind == "fwd":
        pass  # no SA, no policy: plain forwarding (IPsec inactive), the harness baseline
    elif kind == "scale":
        cfg["sas"] = [_sa(0x10000 + i, "out", WAN_ADDR, remote_peer(i), i + 1, KEY_OUT)
                      for i in range(n_sas)]
        cfg["policies"] = [_policy("out", "192.168.10.0/24", remote_subnet(i), i + 1, WAN_ADDR,
                                   remote_peer(i)) for i in range(n_sas)]
    else:
        raise ValueError(kind)
    cfg["ports"][0 if kind == "in" else 1]["mac"] = NULL_MAC
    return cfg


def write_config(cfg, path):
    # Long lists of SAs and policies as one JSON flow mapping per line (YAML too):
    # yaml.dump takes minutes for the 400 000 of 100 000 tunnels.
    big = {k: cfg[k] for k in ("sas", "policies") if len(cfg.get(k, [])) > 1000}
    with open(path, "w") as f:
        yaml.dump({k: v for k, v in cfg.items() if k not in big}, f,
                  Dumper=getattr(yaml, "CSafeDumper", yaml.SafeDumper), sort_keys=False, width=200)
        for k, items in big.items():
            f.write(f"{k}:\n")
            f.writelines(f"- {json.dumps(x)}\n" for x in items)
    os.chmod(path, 0o600)


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("pcap-out")
    a.add_argument("size", type=int)
    a.add_argument("file")
    a.add_argument("--mode", choices=["spread", "one"], default="spread")
    a.add_argument("-n", type=int, default=N_MAIN_PKTS, help="frames")
    a = sub.add_parser("pcap-in")
    a.add_argument("size", type=int)
    a.add_argument("file")
    a = sub.add_parser("config")
    a.add_argument("kind", choices=["fwd", "out", "in", "scale"])
    a.add_argument("pcap")
    a.add_argument("file")
    a.add_argument("--no-cpu-crypto", action="store_true")
    a.add_argument("--engine", choices=["cryptodev", "native"], default="cryptodev")
    args = ap.parse_args()
    if args.cmd == "pcap-out":
        print(pcap_out(args.size, args.file, args.mode, args.n), "frames")
    elif args.cmd == "pcap-in":
        print(pcap_in(args.size, args.file), "frames")
    else:
        write_config(config(args.kind, os.path.abspath(args.pcap),
                            cpu_crypto=not args.no_cpu_crypto, engine=args.engine), args.file)


if __name__ == "__main__":
    sys.exit(main())
