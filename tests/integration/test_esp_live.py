"""dpsecd against an independent ESP gateway, live, in network namespaces.

    host A ---- [lan] dpsecd [wan] ===== internet ===== [outside] esp_peer (TUN) ---- host B
    10.1.0.2   10.1.0.1     192.0.2.1                 192.0.2.2       10.2.0.1     10.2.0.2
    fd01::2    fd01::1      2001:db8::1             2001:db8::2       fd02::1      fd02::2

dpsecd is gateway A: its lan and wan ports are net_af_packet on veths whose
kernel side is kept off (no address, IPv6 off, ARP ignored); each port has an
exception TAP, and wan's carries the gateway's own addresses for its kernel.
Gateway B is tests/peer/esp_peer.py (scapy's ESP transforms, no code shared
with dpsecd): its own ARP/ND on the internet link, a TUN inside that its
namespace's kernel routes the protected prefixes into and forwards from.

Scenarios (SCENARIOS), one dpsecd and one peer each, restarted with new
configurations: tunnel 4in4 AES-GCM-128 and AES-CBC-128 + HMAC-SHA2-256-128,
6in6 AES-GCM-128, each with and without ESP in UDP 4500; 6in4 GCM in UDP;
4in6 GCM; transport mode over IPv4 and IPv6 (GCM); AH (the peer runs
scapy's AH) tunnel 4in4 HMAC-SHA2-256-128, 6in6 HMAC-SHA1-96, 4in6
HMAC-SHA2-512-256 and transport over IPv4 and IPv6 (HMAC-SHA2-256-128), each
on the native engine (the default) and on the crypto device (crypto.engine:
cryptodev).  Each has one matching SA
pair (same keys, random per run): dpsecd an out SA + out policy and an in SA
+ fwd policy (tunnel) or in policy (transport), level require, one reqid;
the peer the mirrored SAs with selectors.  While tcpdump records the internet
link, a scenario runs (Run.execute):

* pings both ways, pattern-filled, at 56, 1000, min(1400, largest) and the
  largest size whose ESP still fits the 1500-byte link; dpsecd does not
  fragment, and the peer's TUN MTU is set to exactly that size so the peer
  does not either; three more with DSCP EF;
* 3 MiB of random data by TCP each way at once, compared by SHA-256; the
  hosts' default routes carry an advmss that fits, so that the transfer does
  not depend on path MTU discovery (tested on its own below);
* after the counters are read, two pings with DF (ping -M do) one byte larger
  than fits: dpsecd drops each one that reaches it (drop_mtu) and answers it
  with an ICMP "fragmentation needed" / ICMPv6 "packet too big" (RFC 4301
  8.2.1) from its lan address (tunnel: to host A) or its wan address
  (transport: to its own kernel, through the wan TAP), whose MTU is the
  largest packet that fits once encrypted; the sender learns that path MTU,
  so its second ping fails locally instead of reaching dpsecd.

The tests then check what was recorded: only ESP (or ESP in UDP 4500 -> 4500)
between the two gateway addresses with the SA pair's SPIs, plus ARP, ND and
the MLD reports of the gateway's own kernel (bypass, from its TAP), and none
of the plaintext (AH scenarios: the data crosses in clear, as RFC 4302 has
it, but only inside AH packets of the SA pair); outer headers, UDP checksums and sequence numbers 1, 2, ...;
dpsecctl's SA counters equal to what crossed the wire and to the peer's
(packets and inner bytes), policy hits, no drop on any port or SA; the peer
saw no authentication failure, replay or other error; both exit 0.

Transport mode: the endpoints are the gateways themselves.  dpsecd's kernel
(behind the wan exception TAP, 192.0.2.1 / 2001:db8::1) talks to the peer's
namespace, whose kernel has 192.0.2.2 / 2001:db8::2 on the peer's TUN: dpsecd
applies its out SPD to what its kernel sends on the TAP and hands decrypted
transport packets for itself to the TAP.

The ICMP errors go to the A side, never to the internet link, so the
capture checks are unchanged by them; their bytes are checked exactly in
test_esp_pcap.py (test_esp_pmtu_*).
"""
import collections
import ipaddress
import os
import re
import struct
import sys
import time
import traceback

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "peer"))

from dpsec import Daemon  # noqa: E402
from topology import (Capture, EspPeer, Netns, TcpTransfer, classify, make_payload,  # noqa: E402
                      peer_config, ping, sa_pair, sh)

pytestmark = pytest.mark.interop

A = {4: "10.1.0.2", 6: "fd01::2"}
B = {4: "10.2.0.2", 6: "fd02::2"}
NET_A = {4: "10.1.0.0/24", 6: "fd01::/64"}
NET_B = {4: "10.2.0.0/24", 6: "fd02::/64"}
LAN_A = {4: "10.1.0.1", 6: "fd01::1"}       # dpsecd's lan addresses
LAN_B = {4: "10.2.0.1", 6: "fd02::1"}       # the peer namespace's
GWA = {4: "192.0.2.1", 6: "2001:db8::1"}    # dpsecd's wan (and its kernel's) addresses
GWB = {4: "192.0.2.2", 6: "2001:db8::2"}    # the peer's outside addresses
MTU = 1500
TCP_SIZE = 3 << 20
PATTERN = "c0ffee5aa5deadbeef0123456789abcd"   # ping payload (-p), 16 bytes
DSCP_TOS, DSCP_PING = 0xb8, 333                # EF; a ping size no other packet has
REQID = 7
SA_DROPS = ("drop_auth", "drop_replay", "drop_pad", "drop_len", "drop_policy", "drop_ecn",
            "drop_crypto", "drop_other")
PEER_ERRORS = ("auth_failures", "replays", "unknown_spi", "sa_addr_mismatch", "encap_mismatch",
               "non_esp_udp", "keepalives", "malformed_esp", "decrypt_errors", "bad_padding", "bad_inner",
               "dummy_packets", "policy_mismatch", "seq_overflow", "ip_bad", "udp_bad_csum", "rx_other",
               "fragments_rx", "fragments_tx", "too_big", "neigh_drops", "tx_errors", "tun_write_errors",
               "internal_errors", "malformed_ah")

# esp_peer algorithm -> (dpsecd name, IV bytes, ICV bytes, block the ESP payload is padded to)
ENC = {"aes-gcm": ("aes-gcm-128", 8, 16, 4), "aes-cbc": ("aes-cbc-128", 16, 0, 16), "null": ("null", 0, 0, 4)}
AUTH = {"none": (None, 0), "hmac-sha256-128": ("hmac-sha2-256-128", 16),
        "hmac-sha1-96": ("hmac-sha1-96", 12), "hmac-sha512-256": ("hmac-sha2-512-256", 32)}
WIRE_PROTO = {"esp": 50, "ah": 51}


class Scenario:
    def __init__(self, name, index, mode="tunnel", inner=4, outer=4, enc="aes-gcm", auth="none", udp=False,
                 proto="esp", engine=None):
        self.name, self.mode, self.inner, self.outer = name, mode, inner, outer
        self.engine = engine    # crypto.engine; None: the default (native)
        self.enc, self.auth, self.udp, self.proto = enc, auth, udp, proto
        self.spi_ab = 0x1000 + index        # dpsecd -> peer
        self.spi_ba = 0x2000 + index        # peer -> dpsecd
        _, self.iv, icv, self.block = ENC[enc]
        self.icv = icv or AUTH[auth][1]
        # AH (RFC 4302 2.2, 3.3.3.2.1): 12 bytes + ICV, aligned to 32 bits over IPv4, 64 over IPv6
        align = 4 if (outer if mode == "tunnel" else inner) == 4 else 8
        self.ah_len = -(-(12 + self.icv) // align) * align

    @property
    def tunnel(self):
        return self.mode == "tunnel"

    @property
    def ah(self):
        return self.proto == "ah"

    def max_ip(self):
        """The largest (inner) IP packet whose ESP fits the 1500-byte link:
        RFC 4303 padding makes payload + 2 a multiple of the block.  AH has no
        padding: the packet plus the AH header (and the outer header)."""
        if self.ah:
            return MTU - self.ah_len - ((20 if self.outer == 4 else 40) if self.tunnel else 0)
        fixed = 8 + self.iv + self.icv + (8 if self.udp else 0)
        if self.tunnel:
            fixed += 20 if self.outer == 4 else 40
            return (MTU - fixed) // self.block * self.block - 2
        hdr = 20 if self.inner == 4 else 40
        return hdr + (MTU - hdr - fixed) // self.block * self.block - 2

    def esp_len(self, ip_len):
        """Length of the outer IP packet that carries an (inner) IP packet of ip_len."""
        hdr = 20 if self.inner == 4 else 40
        if self.ah:
            return ip_len + self.ah_len + ((20 if self.outer == 4 else 40) if self.tunnel else 0)
        payload = ip_len if self.tunnel else ip_len - hdr
        outer = (20 if self.outer == 4 else 40) if self.tunnel else hdr
        return (outer + (8 if self.udp else 0) + 8 + self.iv
                + -(-(payload + 2) // self.block) * self.block + self.icv)

    def max_ping(self):
        return self.max_ip() - (28 if self.inner == 4 else 48)

    def ping_sizes(self):
        return sorted({56, 1000, min(1400, self.max_ping()), self.max_ping()})

    def wire_kind(self):
        return f"udp{self.outer}:4500->4500" if self.udp else f"{self.proto}{self.outer}"


SCENARIOS = {s.name: s for s in [
    Scenario("tun4in4-gcm", 1),
    Scenario("tun4in4-gcm-udp", 2, udp=True),
    Scenario("tun4in4-cbc-sha256", 3, enc="aes-cbc", auth="hmac-sha256-128"),
    Scenario("tun4in4-cbc-sha256-udp", 4, enc="aes-cbc", auth="hmac-sha256-128", udp=True),
    Scenario("tun6in6-gcm", 5, inner=6, outer=6),
    Scenario("tun6in6-gcm-udp", 6, inner=6, outer=6, udp=True),
    Scenario("tun6in4-gcm-udp", 7, inner=6, outer=4, udp=True),
    Scenario("tun4in6-gcm", 8, inner=4, outer=6),
    Scenario("transport4-gcm", 9, mode="transport", inner=4, outer=4),
    Scenario("transport6-gcm", 10, mode="transport", inner=6, outer=6),
    # AH (RFC 4302): scapy's AH in the peer
    Scenario("ah-tun4in4-sha256", 21, proto="ah", enc="null", auth="hmac-sha256-128"),
    Scenario("ah-tun6in6-sha1", 22, inner=6, outer=6, proto="ah", enc="null", auth="hmac-sha1-96"),
    Scenario("ah-tun4in6-sha512", 23, inner=4, outer=6, proto="ah", enc="null", auth="hmac-sha512-256"),
    Scenario("ah-transport4-sha256", 24, mode="transport", inner=4, outer=4, proto="ah", enc="null",
             auth="hmac-sha256-128"),
    Scenario("ah-transport6-sha256", 25, mode="transport", inner=6, outer=6, proto="ah", enc="null",
             auth="hmac-sha256-128"),
    # the same on the crypto device (crypto.engine: cryptodev); the ones above run on the
    # native engine, the default
    Scenario("ah-tun4in4-sha256-cryptodev", 26, proto="ah", enc="null", auth="hmac-sha256-128",
             engine="cryptodev"),
    Scenario("ah-tun6in6-sha1-cryptodev", 27, inner=6, outer=6, proto="ah", enc="null",
             auth="hmac-sha1-96", engine="cryptodev"),
    Scenario("ah-tun4in6-sha512-cryptodev", 28, inner=4, outer=6, proto="ah", enc="null",
             auth="hmac-sha512-256", engine="cryptodev"),
    Scenario("ah-transport4-sha256-cryptodev", 29, mode="transport", inner=4, outer=4, proto="ah",
             enc="null", auth="hmac-sha256-128", engine="cryptodev"),
    Scenario("ah-transport6-sha256-cryptodev", 30, mode="transport", inner=6, outer=6, proto="ah",
             enc="null", auth="hmac-sha256-128", engine="cryptodev"),
]}


# --------------------------------------------------------------------------
# The topology, shared by every scenario
# --------------------------------------------------------------------------


class Env:
    pass


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    net = Netns("el")
    e = Env()
    e.net = net
    try:
        e.ha, e.gwa, e.gwb, e.hb = net.ns("ha"), net.ns("gwa"), net.ns("gwb"), net.ns("hb")
        # dpsecd's ends and the peer's outside end: the kernel stays off them
        e.a_if, e.lan_if = net.link(e.ha, e.gwa, kernel_off=(e.gwa,))
        e.wan_if, e.out_if = net.link(e.gwa, e.gwb, kernel_off=(e.gwa, e.gwb))
        e.blan_if, e.b_if = net.link(e.gwb, e.hb)
        net.addrs(e.ha, e.a_if, [A[4] + "/24", A[6] + "/64"])
        net.addrs(e.hb, e.b_if, [B[4] + "/24", B[6] + "/64"])
        net.addrs(e.gwb, e.blan_if, [LAN_B[4] + "/24", LAN_B[6] + "/64"])
        # the TAPs dpsecd creates: no router solicitations from its kernel
        sh(["sysctl", "-qw", "net.ipv6.conf.default.router_solicitations=0"], ns=e.gwa)
        e.tap_lan, e.tap_wan = f"dl{net.tag}", f"dw{net.tag}"
        e.dir = tmp_path_factory.mktemp("esp_live")
        e.data = str(e.dir / "payload")
        e.data_sha = make_payload(e.data, TCP_SIZE)
        with open(e.data, "rb") as f:
            blob = f.read()
        e.markers = [blob[off:off + 24] for off in range(50000, TCP_SIZE, 400009)]
        yield e
    finally:
        net.close()


def dpsecd_sa(sa, reqid=REQID):
    """An SA of topology.sa_pair() (the peer's format) in dpsecd's schema."""
    enc_name = ENC[sa["enc_alg"]][0]
    c = {"spi": int(sa["spi"], 16), "direction": sa["dir"], "mode": sa["mode"], "src": sa["src"],
         "dst": sa["dst"], "reqid": reqid}
    if sa.get("proto") == "ah":
        c["proto"] = "ah"
    else:
        c["encryption"] = {"algorithm": enc_name, "key": sa["enc_key"]}
    if AUTH[sa["auth_alg"]][0]:
        c["integrity"] = {"algorithm": AUTH[sa["auth_alg"]][0], "key": sa["auth_key"]}
    if "udp_encap" in sa:
        c["encap"] = {"type": "udp", "sport": sa["udp_encap"]["sport"], "dport": sa["udp_encap"]["dport"]}
    if "replay_window" in sa:
        c["replay_window"] = sa["replay_window"]
    return c


def host_prefix(addr):
    return f"{addr}/{32 if ':' not in addr else 128}"


def dpsecd_policies(scn):
    if scn.tunnel:
        req = {"proto": scn.proto, "mode": "tunnel", "level": "require", "reqid": REQID}
        return [
            {"direction": "out", "priority": 100, "src": NET_A[scn.inner], "dst": NET_B[scn.inner],
             "action": "protect", "ipsec": [dict(req, tunnel={"src": GWA[scn.outer], "dst": GWB[scn.outer]})]},
            {"direction": "fwd", "priority": 100, "src": NET_B[scn.inner], "dst": NET_A[scn.inner],
             "action": "protect", "ipsec": [dict(req, tunnel={"src": GWB[scn.outer], "dst": GWA[scn.outer]})]},
        ]
    fam = scn.inner
    req = [{"proto": scn.proto, "mode": "transport", "level": "require", "reqid": REQID}]
    pols = [
        {"direction": "out", "priority": 100, "src": host_prefix(GWA[fam]), "dst": host_prefix(GWB[fam]),
         "action": "protect", "ipsec": req},
        {"direction": "in", "priority": 100, "src": host_prefix(GWB[fam]), "dst": host_prefix(GWA[fam]),
         "action": "protect", "ipsec": req},
    ]
    if fam == 6:
        # the kernel's unicast neighbour discovery (NUD probes) to the peer stays in clear
        pols.insert(0, {"direction": "out", "priority": 10, "src": host_prefix(GWA[6]),
                        "dst": host_prefix(GWB[6]), "proto": "icmpv6", "icmp_type": "133-137",
                        "action": "bypass"})
    return pols


def dpsecd_config(env, scn, sas):
    crypto = {"crypto": {"engine": scn.engine}} if scn.engine else {}
    return {**crypto,
        "log_level": "info",
        "ports": [
            {"name": "lan", "device": f"net_af_packet0,iface={env.lan_if}", "role": "protected",
             "exception_iface": env.tap_lan, "addresses": [LAN_A[4] + "/24", LAN_A[6] + "/64"]},
            {"name": "wan", "device": f"net_af_packet1,iface={env.wan_if}", "role": "unprotected",
             "exception_iface": env.tap_wan, "addresses": [GWA[4] + "/24", GWA[6] + "/64"]},
        ],
        # routed before the policy lookup: the remote site is behind the wan port
        "routes": [{"prefix": NET_B[4], "via": GWB[4], "port": "wan"},
                   {"prefix": NET_B[6], "via": GWB[6], "port": "wan"}],
        "sas": [dpsecd_sa(s) for s in sas],
        "policies": dpsecd_policies(scn),
    }


# --------------------------------------------------------------------------
# One scenario: both gateways, traffic, counters, capture
# --------------------------------------------------------------------------


def ping_tos(ns, dst, size, tos, count=3, wait=3):
    """topology.ping() with a TOS / traffic class (-Q): every reply must come back."""
    deadline = int(count * 0.05 + wait) + 1
    r = sh(["ping", "-n", "-q", "-c", str(count), "-i", "0.05", "-w", str(deadline), "-Q", str(tos),
            "-p", PATTERN, "-s", str(size), dst], ns=ns, check=False, timeout=deadline + 10)
    m = re.search(r"(\d+) received", r.stdout)
    assert m and int(m.group(1)) == count and "duplicates" not in r.stdout, \
        f"ping -Q {tos:#x} {dst} -s {size} from {ns}:\n{r.stdout}{r.stderr}"


def esp_of(frame):
    """(outer family, src, dst, udp ports or None, SPI) of an ESP, ESP-in-UDP
    or AH frame, else None."""
    if len(frame) < 14:
        return None
    et, p = frame[12:14], frame[14:]
    if et == b"\x08\x00" and len(p) >= 20:
        ihl, proto = (p[0] & 0xF) * 4, p[9]
        fam, src, dst, l4 = 4, p[12:16], p[16:20], p[ihl:]
    elif et == b"\x86\xdd" and len(p) >= 40:
        fam, proto, src, dst, l4 = 6, p[6], p[8:24], p[24:40], p[40:]
    else:
        return None
    ports = None
    if proto == 17 and len(l4) >= 12:
        ports, l4 = struct.unpack("!HH", l4[:4]), l4[8:]
    elif proto == 51 and len(l4) >= 12:
        l4 = l4[4:]                     # AH: next header, length, reserved, then SPI
    elif proto != 50:
        return None
    if len(l4) < 8:
        return None
    return (fam, str(ipaddress.ip_address(src)), str(ipaddress.ip_address(dst)), ports,
            struct.unpack("!L", l4[:4])[0])


def kind_of(frame):
    """classify(), with multicast listener reports (link-local or unspecified
    source, link-scope multicast destination) told apart from other ICMPv6."""
    k = classify(frame)
    if k == "ipv6:nh58" or k == "ipv6:nh0":
        p = frame[14:]
        nh, off = p[6], 40
        while nh == 0 and off + 8 <= len(p):
            nh, off = p[off], off + (p[off + 1] + 1) * 8
        src, dst = ipaddress.ip_address(p[8:24]), p[24:40]
        if nh == 58 and off < len(p) and p[off] in (130, 131, 132, 143) and \
                (src.is_link_local or src.is_unspecified) and dst[:2] == b"\xff\x02":
            return "mld"
    return k


class Run:
    """Everything one scenario does and sees.  execute() never raises: each phase
    records its failure, and the tests say which phase they need."""

    def __init__(self, env, scn):
        self.env, self.scn = env, scn
        self.wd = env.dir / scn.name
        self.wd.mkdir()
        self.errors = {}
        self.times = {}
        self.d = self.peer = self.cap = None
        self.frames = []
        self.pings = []
        self.rc = self.peer_final = None

    # ---- helpers
    def dp_state(self):
        return {"ports": self.d.port_stats(),
                "sas": {(v["spi"], v["dir"]): v for v in self.d.ctl_json("sa")["sas"].values()},
                "policies": list(self.d.ctl_json("policy")["policies"].values())}

    def dp_sa(self, state, spi, direction):
        return state["sas"][(f"0x{spi:08x}", direction)]

    def peer_sa(self, st, spi, direction):
        return st["sas"][f"{direction}:0x{spi:08x}"]

    def endpoints(self):
        """(ns, address) of the two ends of the protected traffic: A side, B side."""
        s, e = self.scn, self.env
        if s.tunnel:
            return (e.ha, A[s.inner]), (e.hb, B[s.inner])
        return (e.gwa, GWA[s.inner]), (e.gwb, GWB[s.inner])

    def phase(self, name, fn):
        t0 = time.monotonic()
        try:
            fn()
        except BaseException as err:     # noqa: B902 - recorded, reported by the tests
            self.errors[name] = "".join(traceback.format_exception(type(err), err, err.__traceback__))
            if isinstance(err, KeyboardInterrupt):
                raise
        finally:
            self.times[name] = round(time.monotonic() - t0, 2)

    def execute(self):
        t0 = time.monotonic()
        self.phase("start", self.start)
        if "start" not in self.errors:
            self.phase("ping", self.do_ping)
            self.phase("tcp", self.do_tcp)
            self.phase("counters", self.snapshot)
            self.phase("oversize", self.do_oversize)
        self.phase("stop", self.stop)
        self.times["total"] = round(time.monotonic() - t0, 2)
        return self

    # ---- phases
    def start(self):
        s, e = self.scn, self.env
        a_sas, b_sas = sa_pair(GWA[s.outer], GWB[s.outer], s.spi_ab, s.spi_ba, enc_alg=s.enc, enc_bits=128,
                               auth_alg=s.auth, mode=s.mode, udp_encap=s.udp, proto=s.proto,
                               local_prefixes=[NET_A[s.inner]], remote_prefixes=[NET_B[s.inner]])
        for ns in (e.ha, e.gwa, e.gwb, e.hb):      # path MTUs learnt in an earlier scenario
            sh("ip -4 route flush cache; ip -6 route flush cache", ns=ns, check=False)
        # TCP segments that fit from the start: the transfer is not a PMTU discovery test
        mss = s.max_ip() - (40 if s.inner == 4 else 60)
        for ns, gw in ((e.ha, LAN_A), (e.hb, LAN_B)):
            for fam in (4, 6):
                sh(["ip", f"-{fam}", "route", "replace", "default", "via", gw[fam], "advmss", str(mss)], ns=ns)
        self.cap = Capture(e.gwb, e.out_if, str(self.wd / "wire.pcap")).start()
        self.peer = EspPeer(e.gwb, peer_config("peer", e.out_if, [GWB[4], GWB[6]], "esp0", b_sas,
                                               remote=[GWA[s.outer]], inside={"mtu": s.max_ip()}),
                            str(self.wd)).launch()
        self.cfg = dpsecd_config(e, s, a_sas)
        self.d = Daemon(self.cfg, str(self.wd), ns=e.gwa)
        self.d.start()
        self.peer.wait_ready()
        if not s.tunnel:
            # the kernel's own path to the peer, over the wan TAP (hoststack put the address there)
            r = sh(["ip", "-j", "addr", "show", "dev", e.tap_wan], ns=e.gwa)
            assert GWA[s.inner] in r.stdout, r.stdout

    def do_ping(self):
        (a_ns, a_addr), (b_ns, b_addr) = self.endpoints()
        for size in self.scn.ping_sizes():
            ping(a_ns, b_addr, size=size, count=3, pattern=PATTERN)
            ping(b_ns, a_addr, size=size, count=3, pattern=PATTERN)
            self.pings.append(size)
        # DSCP EF from the A side: the tunnel must copy it to the outer header
        ping_tos(a_ns, b_addr, DSCP_PING, DSCP_TOS)

    def do_tcp(self):
        (a_ns, a_addr), (b_ns, b_addr) = self.endpoints()
        e = self.env
        xs = []
        try:
            xs.append(TcpTransfer(a_ns, b_ns, b_addr, 5001, e.data, str(self.wd / "ab.out")).start())
            xs.append(TcpTransfer(b_ns, a_ns, a_addr, 5002, e.data, str(self.wd / "ba.out")).start())
            self.sha_ab, self.sha_ba = xs[0].wait(), xs[1].wait()
        finally:    # a failed transfer must not leave nc holding its port for the next scenario
            for x in xs:
                for p in (getattr(x, "tx", None), getattr(x, "rx", None)):
                    if p is not None and p.poll() is None:
                        p.kill()
                        p.wait()
        self.size_ab = os.path.getsize(self.wd / "ab.out")
        self.size_ba = os.path.getsize(self.wd / "ba.out")

    def snapshot(self):
        self.before = self.dp_state()
        self.peer_before = self.peer.stats()

    def do_oversize(self):
        """One byte more than fits after ESP, with DF, from the A side: dpsecd
        must drop and count it (drop_mtu) and tell the sender the path MTU."""
        (a_ns, _), (_, b_addr) = self.endpoints()
        # -W, not -w: exactly two attempts, whatever comes back; -M do: DF, and
        # no local fragmentation once the sender knows the path MTU
        r = sh(["ping", "-n", "-q", "-c", "2", "-i", "0.2", "-W", "1", "-M", "do", "-p", PATTERN,
                "-s", str(self.scn.max_ping() + 1), b_addr], ns=a_ns, check=False)
        m = re.search(r"(\d+) packets transmitted, (\d+) received", r.stdout)
        assert m, r.stdout + r.stderr
        self.oversize_count, self.oversize_replies = 2, int(m.group(2))
        self.oversize_out = r.stdout + r.stderr
        time.sleep(0.2)
        self.after = self.dp_state()
        self.peer_after = self.peer.stats()
        # what the sender learnt about the path (RFC 4301 8.2.1: it should be told the MTU)
        self.route_after = sh(["ip", "route", "get", b_addr], ns=a_ns, check=False).stdout
        dev = re.search(r"\bdev (\S+)", self.route_after)
        self.dev_mtu = int(sh(["cat", f"/sys/class/net/{dev.group(1)}/mtu"], ns=a_ns).stdout) if dev else None

    def stop(self):
        """dpsecd (SIGTERM, exit code kept), tcpdump, the peer (SIGTERM, final
        statistics): each one whatever happened to the others."""
        errs = []
        if self.d is not None and self.d.proc is not None:
            try:
                self.rc = self.d.stop()
            except Exception as err:    # noqa: BLE001
                errs.append(f"dpsecd: {err}")
            try:
                os.rmdir(f"/var/run/dpdk/{self.d.prefix}")
            except OSError:
                pass
        if self.cap is not None and self.cap.proc is not None:
            try:
                self.frames = self.cap.stop()
                self.cap_summary = self.cap.summary
            except Exception as err:    # noqa: BLE001
                self.cap.proc.kill()
                errs.append(f"tcpdump: {err}")
        if self.peer is not None and self.peer.proc is not None:
            try:
                self.peer_final = self.peer.stop()
            except Exception as err:    # noqa: BLE001
                errs.append(f"esp_peer: {err}")
        assert not errs, "\n".join(errs)

    # ---- reporting
    def diag(self):
        out = [f"scenario {self.scn.name}: phase times {self.times}"]
        for k, v in self.errors.items():
            out.append(f"--- phase {k} failed:\n{v}")
        if self.d is not None:
            try:
                out.append("--- dpsecd log (tail):\n" + self.d.read_log()[-3000:])
            except OSError:
                pass
        if self.peer is not None:
            out.append("--- peer log (tail):\n" + self.peer.log()[-3000:])
        return "\n".join(out)

    def need(self, *phases):
        bad = [p for p in ("start",) + phases if p in self.errors]
        assert not bad, self.diag()


@pytest.fixture(scope="module", params=list(SCENARIOS))
def run(request, env):
    r = Run(env, SCENARIOS[request.param]).execute()
    print(f"\n{r.scn.name}: {r.times}")
    return r


# --------------------------------------------------------------------------
# The tests
# --------------------------------------------------------------------------


def test_ping_both_ways(run):
    """Pings both ways at 56, 1000, 1400 (where it fits) and the largest size
    whose ESP fits the link; every one answered, no duplicates."""
    run.need("ping")
    assert run.pings == run.scn.ping_sizes()
    assert max(run.pings) == run.scn.max_ping()


def test_tcp_3mb_both_ways_sha256(run):
    """3 MiB of random data each way at once (nc), identical by SHA-256."""
    run.need("tcp")
    assert (run.size_ab, run.sha_ab) == (TCP_SIZE, run.env.data_sha), "A -> B corrupted"
    assert (run.size_ba, run.sha_ba) == (TCP_SIZE, run.env.data_sha), "B -> A corrupted"


def test_internet_link_carries_only_esp(run):
    """tcpdump on the internet link: the capture is complete, and holds ESP (or
    ESP in UDP 4500 -> 4500) between the two gateway addresses with the SA
    pair's SPIs, ARP / neighbour discovery, and nothing else; none of the
    ping pattern or of the TCP data in clear."""
    run.need("stop")
    s, frames = run.scn, run.frames
    sm = run.cap_summary
    assert sm["dropped"] == 0 and sm["captured"] == sm["received"] == len(frames), sm
    kinds = collections.Counter(kind_of(f) for f in frames)
    # the gateway's kernel joins multicast groups on the TAP: its MLD reports are bypass
    other = {k: n for k, n in kinds.items() if k not in (s.wire_kind(), "arp", "nd", "mld")}
    assert not other, f"non-ESP traffic on the internet link: {dict(kinds)}"
    assert kinds[s.wire_kind()] > 4000, dict(kinds)
    want = {s.spi_ab: (GWA[s.outer], GWB[s.outer]), s.spi_ba: (GWB[s.outer], GWA[s.outer])}
    seen = collections.Counter()
    for f in frames:
        e = esp_of(f)
        if e is None:
            continue
        fam, src, dst, ports, spi = e
        assert spi in want and (src, dst) == want[spi], e
        assert fam == s.outer and ports == ((4500, 4500) if s.udp else None), e
        seen[spi] += 1
    assert seen[s.spi_ab] > 2000 and seen[s.spi_ba] > 2000, seen
    for m in [bytes.fromhex(PATTERN) * 2] + run.env.markers:
        if s.ah:
            # AH authenticates, it does not encrypt (RFC 4302 1): the data is in
            # clear, but only inside AH packets of the SA pair
            bare = [kind_of(f) for f in frames if m in f and esp_of(f) is None]
            assert not bare, f"{m.hex()} outside AH on the internet link: {bare[:5]}"
            continue
        leaks = sum(1 for f in frames if m in f)
        assert leaks == 0, f"plaintext {m.hex()} in {leaks} frames on the internet link"
    if s.ah:
        assert any(bytes.fromhex(PATTERN) * 2 in f for f in frames if esp_of(f) is not None)


def wire_counts(run):
    seen = collections.Counter()
    for f in run.frames:
        e = esp_of(f)
        if e is not None:
            seen[e[4]] += 1
    return seen


def test_sa_counters_equal_what_crossed(run):
    """dpsecctl sa, after the pings and transfers: the out SA protected exactly
    the ESP packets that crossed to the peer and the peer accepted, the in SA
    accepted exactly those the peer sent; inner bytes agree with the peer's;
    every SA drop counter is 0; both use the mode and algorithms configured."""
    run.need("counters", "stop")
    s = run.scn
    wire = wire_counts(run)
    out = run.dp_sa(run.before, s.spi_ab, "out")
    inn = run.dp_sa(run.before, s.spi_ba, "in")
    p_in = run.peer_sa(run.peer_final, s.spi_ab, "in")
    p_out = run.peer_sa(run.peer_final, s.spi_ba, "out")
    assert out["packets"] > 2000 and inn["packets"] > 2000, (out, inn)
    assert out["packets"] == p_in["packets"] == wire[s.spi_ab], (out, p_in, wire)
    assert inn["packets"] == p_out["packets"] == wire[s.spi_ba], (inn, p_out, wire)
    assert out["bytes"] == p_in["bytes"] and inn["bytes"] == p_out["bytes"], (out, p_in, inn, p_out)
    assert out["bytes"] > TCP_SIZE and inn["bytes"] > TCP_SIZE
    for sa in (out, inn):
        assert {k: sa[k] for k in SA_DROPS} == dict.fromkeys(SA_DROPS, 0), sa
        assert (sa["proto"], sa["mode"], sa["enc"], sa["reqid"]) == (s.proto, s.mode, s.enc, REQID), sa
        assert sa["auth"] == (AUTH[s.auth][0] or "none"), sa
        assert sa["encap"] == ("udp:4500:4500" if s.udp else "none"), sa
        # the native engine (the default) takes AES-GCM and AH's HMACs, the device the rest
        native = s.engine != "cryptodev" and (s.ah or s.enc == "aes-gcm")
        assert sa["crypto"] == ("native" if native else "cpu"), sa


def test_policy_hits_match_the_sa_counters(run):
    """dpsecctl policy: the out policy was hit once per packet the out SA
    protected, the fwd (tunnel) or in (transport) policy once per packet the in
    SA decrypted; they are the only protect policies and request this reqid."""
    run.need("counters")
    s = run.scn
    pols = {p["dir"]: p for p in run.before["policies"] if p["action"] == "protect"}
    assert sorted(pols) == sorted(["out", "fwd" if s.tunnel else "in"]), run.before["policies"]
    out = run.dp_sa(run.before, s.spi_ab, "out")["packets"]
    inn = run.dp_sa(run.before, s.spi_ba, "in")["packets"]
    assert pols["out"]["hits"] == out, (pols["out"], out)
    assert pols["fwd" if s.tunnel else "in"]["hits"] == inn, (pols, inn)
    for p in pols.values():
        assert (p["ipsec"], p["mode"], p["level"], p["reqid"]) == (s.proto, s.mode, "require", REQID), p


def test_port_counters_show_no_drop(run):
    """Before the oversized ping: no port of dpsecd dropped anything, and every
    protected packet went out (ipsec_out) and every ESP one came in (ipsec_in)
    on the port the traffic took."""
    run.need("counters")
    s = run.scn
    ports = run.before["ports"]
    drops = {(p, k): v for p, c in ports.items() for k, v in c.items()
             if (k.startswith("drop_") or k.startswith("dev_")) and v}
    assert not drops, drops
    out = run.dp_sa(run.before, s.spi_ab, "out")["packets"]
    inn = run.dp_sa(run.before, s.spi_ba, "in")["packets"]
    a_port = "lan" if s.tunnel else "wan"          # where the plaintext comes from
    assert ports[a_port]["ipsec_out"] == out, ports
    assert ports["wan"]["ipsec_in"] == inn, ports
    if not s.tunnel:
        assert ports["wan"]["from_kernel"] >= out and ports["wan"]["punt_kernel"] >= inn, ports


def test_peer_saw_no_error(run):
    """The peer: no authentication failure, replay, unknown SPI, padding,
    policy or any other error; it neither fragmented nor reassembled."""
    run.need("stop")
    c = run.peer_final["counters"]
    bad = {k: c[k] for k in PEER_ERRORS if c[k]}
    assert not bad, bad
    for sa in run.peer_final["sas"].values():
        assert (sa["auth_failures"], sa["replays"], sa["errors"]) == (0, 0, 0), sa


def test_oversized_packet_is_counted_drop_mtu(run):
    """A ping with DF one byte larger than fits once encrypted: no answer,
    nothing on the wire, the peer sees nothing; dpsecd counts drop_mtu and
    icmp_ptb_sent once for each one that reached it (the first at least; the
    second only if the sender had not yet learnt the path MTU), on the port
    it came from, and rate-limited none."""
    run.need("counters", "oversize")
    s = run.scn
    assert run.oversize_replies == 0, run.oversize_out
    before, after = run.before["ports"], run.after["ports"]
    delta = {(p, k): after[p][k] - before[p][k] for p in after for k in after[p]
             if (k.startswith("drop_") or k.startswith("icmp_")) and after[p][k] != before[p][k]}
    a_port = "lan" if s.tunnel else "wan"
    n = delta.get((a_port, "drop_mtu"), 0)
    assert 1 <= n <= run.oversize_count, (delta, run.oversize_out)
    assert delta == {(a_port, "drop_mtu"): n, (a_port, "icmp_ptb_sent"): n}, delta
    p_in = run.peer_sa(run.peer_after, s.spi_ab, "in")["packets"]
    assert p_in == run.peer_sa(run.peer_before, s.spi_ab, "in")["packets"]


def test_oversized_packet_is_not_counted_as_protected_and_sent(run):
    """The packet dropped for its size was not sent: neither the out SA's
    packets nor the port's ipsec_out ("protected by an outbound SA and sent")
    may count it."""
    run.need("counters", "oversize")
    s = run.scn
    a_port = "lan" if s.tunnel else "wan"
    sa_before = run.dp_sa(run.before, s.spi_ab, "out")["packets"]
    sa_after = run.dp_sa(run.after, s.spi_ab, "out")["packets"]
    sent = run.after["ports"][a_port]["ipsec_out"] - run.before["ports"][a_port]["ipsec_out"]
    assert (sa_after - sa_before, sent) == (0, 0)


def inet_sum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return s


def udp_sum_ok(fam, ip, udp):
    src, dst = (ip[12:16], ip[16:20]) if fam == 4 else (ip[8:24], ip[24:40])
    pseudo = src + dst + (struct.pack("!BBH", 0, 17, len(udp)) if fam == 4 else struct.pack("!LL", len(udp), 17))
    return inet_sum(pseudo + udp) == 0xFFFF




def test_outer_headers_and_sequence_numbers(run, request):
    """Every ESP (or AH) packet dpsecd sent: outer header consistent (lengths, IPv4
    checksum, TTL / hop limit 64, protocol), UDP length right and its checksum
    valid (IPv4 may use 0, RFC 3948 2.1; IPv6 must not, RFC 8200 8.1); and the
    sequence numbers of both SAs on the wire are 1, 2, 3, ... with no gap or
    repeat (RFC 4303 3.3.3)."""
    run.need("stop")
    s = run.scn
    seqs = collections.defaultdict(list)
    bad = collections.Counter()
    for f in run.frames:
        e = esp_of(f)
        if e is None:
            continue
        fam, _, _, ports, spi = e
        ip = f[14:]
        if fam == 4:
            hl = (ip[0] & 0xF) * 4
            l4 = ip[hl:]
            if spi == s.spi_ab:
                if struct.unpack("!H", ip[2:4])[0] != len(ip) or inet_sum(ip[:hl]) != 0xFFFF:
                    bad["ipv4 length or checksum"] += 1
                if ip[8] != 64 or ip[9] != (17 if s.udp else WIRE_PROTO[s.proto]):
                    bad["ipv4 ttl or protocol"] += 1
        else:
            l4 = ip[40:]
            if spi == s.spi_ab and (struct.unpack("!H", ip[4:6])[0] != len(l4) or ip[7] != 64
                                    or ip[6] != (17 if s.udp else WIRE_PROTO[s.proto])):
                bad["ipv6 length, hop limit or next header"] += 1
        if ports:
            ulen, uck = struct.unpack("!HH", l4[4:8])
            if spi == s.spi_ab:
                if ulen != len(l4):
                    bad["udp length"] += 1
                if uck == 0 and fam == 6:
                    bad["udp checksum 0 over ipv6"] += 1
                elif uck != 0 and not udp_sum_ok(fam, ip, l4):
                    bad["udp checksum wrong"] += 1
            l4 = l4[8:]
        seq_at = 8 if s.ah else 4          # AH: next header, length, reserved, SPI, sequence number
        seqs[spi].append(struct.unpack("!L", l4[seq_at:seq_at + 4])[0])
    assert not bad, dict(bad)
    for spi, got in seqs.items():
        assert got == list(range(1, len(got) + 1)), \
            f"SA {spi:#x}: sequence numbers not 1..{len(got)}: " \
            f"{[(i + 1, q) for i, q in enumerate(got) if q != i + 1][:5]}"


def test_dscp_is_copied_to_the_outer_header(run):
    """The pings sent with DSCP EF (TOS 0xb8) leave dpsecd with EF in the outer
    header too (RFC 4301 5.1.2.1: DSCP copied from the inner header); in
    transport mode the kernel's own header carries it."""
    run.need("ping", "stop")
    s = run.scn
    inner = DSCP_PING + (28 if s.inner == 4 else 48)
    want = s.esp_len(inner)
    tos = collections.Counter()
    for f in run.frames:
        e = esp_of(f)
        if e is None or e[4] != s.spi_ab or len(f) - 14 != want:
            continue
        ip = f[14:]
        tos[ip[1] if e[0] == 4 else ((ip[0] & 0xF) << 4) | (ip[1] >> 4)] += 1
    assert tos[DSCP_TOS] == 3, f"outer TOS / traffic class of the {want}-byte ESP packets: {dict(tos)}"




def test_transport_mode_udp_encapsulation(env):
    """Transport mode with ESP in UDP 4500 (the selftest's transport4-gcm-udp):
    the gateway's kernel and the peer's namespace ping each other, and what
    dpsecd sends is ESP in UDP 4500 -> 4500, as configured."""
    r = Run(env, Scenario("transport4-gcm-udp", 11, mode="transport", inner=4, outer=4, udp=True))
    replies = []
    r.phase("start", r.start)
    if "start" not in r.errors:
        r.phase("ping", lambda: replies.extend(
            [ping(env.gwa, GWB[4], count=2, wait=1, check=False),
             ping(env.gwb, GWA[4], count=2, wait=1, check=False)]))
    r.phase("stop", r.stop)
    r.need("ping", "stop")
    sent = collections.Counter(esp_of(f)[3] for f in r.frames
                               if esp_of(f) is not None and esp_of(f)[4] == r.scn.spi_ab)
    assert sent and set(sent) == {(4500, 4500)}, f"dpsecd's ESP by UDP ports: {dict(sent)}"
    assert replies == [2, 2], replies
    assert r.peer_final["counters"]["encap_mismatch"] == 0


def test_daemon_and_peer_exit_cleanly(run):
    run.need("stop")
    assert run.rc == 0, run.d.read_log()
    assert run.peer_final is not None


def path_mtu(run):
    """The MTU the sender now uses toward the destination: a learnt path MTU
    (`ip route get` shows it), else its interface's."""
    m = re.search(r"\bmtu (\d+)", run.route_after)
    return int(m.group(1)) if m else run.dev_mtu


def test_oversized_packet_tells_the_sender_the_path_mtu(run):
    """RFC 4301 8.2.1 (and RFC 1191 / RFC 8201): a packet with DF set (or IPv6)
    that does not fit once IPsec overhead is added is discarded and the sender
    gets an ICMP PMTU message whose MTU leaves room for the overhead.  The
    sender (host A, or the gateway's own kernel in transport mode) then has
    a path MTU for the destination: exactly the largest packet whose ESP
    fits the link."""
    run.need("oversize")
    mtu = path_mtu(run)
    assert mtu == run.scn.max_ip(), (mtu, run.route_after, run.oversize_out)


def outer_fragments(frames, src):
    """(total length, offset in bytes, more fragments) of each IPv4 or IPv6
    fragment sent by @src on the internet link."""
    out = []
    for f in frames:
        et, ip = f[12:14], f[14:]
        if et == b"\x08\x00" and str(ipaddress.ip_address(ip[12:16])) == src:
            off = struct.unpack("!H", ip[6:8])[0]
            if off & 0x3FFF:
                out.append((struct.unpack("!H", ip[2:4])[0], (off & 0x1FFF) * 8, bool(off & 0x2000)))
        elif et == b"\x86\xdd" and str(ipaddress.ip_address(ip[8:24])) == src and ip[6] == 44:
            off = struct.unpack("!H", ip[42:44])[0]
            out.append((40 + struct.unpack("!H", ip[4:6])[0], off & 0xFFF8, bool(off & 1)))
    return out


@pytest.mark.parametrize("outer,udp,index", [(4, False, 12), (4, True, 13), (6, False, 14)],
                         ids=["esp4", "esp4-udp", "esp6"])
def test_ipv4_without_df_is_fragmented_after_encryption(env, outer, udp, index):
    """A 1500-byte IPv4 ping without DF fits host A's link and the LAN but not
    the tunnel. With dfbit copy (the default) dpsecd encrypts it and sends the
    ESP packet in two fragments no larger than the link (RFC 4301 8.1; an IPv6
    outer header gets a Fragment header, RFC 8200 4.5); the peer reassembles
    and decrypts them, and every ping is answered. dpsecd counts 3 packets
    fragmented into 6 fragments and drops nothing."""
    s = Scenario(f"tun4in{outer}-gcm{'-udp' if udp else ''}-frag", index, inner=4, outer=outer, udp=udp)
    r = Run(env, s)
    got = {}

    def big_ping():
        (a_ns, _), (_, b_addr) = r.endpoints()
        sh("ip -4 route flush cache", ns=a_ns, check=False)
        got["before"] = r.dp_state()
        got["ping"] = sh(["ping", "-n", "-q", "-c", "3", "-i", "0.2", "-w", "10", "-M", "dont",
                          "-p", PATTERN, "-s", str(MTU - 28), b_addr], ns=a_ns, check=False)
        got["after"] = r.dp_state()
        got["peer"] = r.peer.stats()

    r.phase("start", r.start)
    if "start" not in r.errors:
        r.phase("frag", big_ping)
    r.phase("stop", r.stop)
    r.need("frag", "stop")
    p = got["ping"]
    assert "3 packets transmitted, 3 received" in p.stdout, p.stdout + p.stderr
    before, after = got["before"]["ports"], got["after"]["ports"]
    delta = {(port, k): after[port][k] - before[port][k] for port in after for k in after[port]
             if (k.startswith("drop_") or k.startswith("frag_")) and after[port][k] != before[port][k]}
    assert delta == {("lan", "frag_out"): 3, ("lan", "frag_created"): 6}, delta
    frags = outer_fragments(r.frames, GWA[outer])
    assert len(frags) == 6, frags
    assert all(length <= MTU for length, _, _ in frags), frags
    assert sorted((off > 0, more) for _, off, more in frags) == [(False, True)] * 3 + [(True, False)] * 3, frags
    c = got["peer"]["counters"]
    assert (c["fragments_rx"], c["reassembled"]) == (6, 3), c
    assert {k: c[k] for k in PEER_ERRORS if k != "fragments_rx" and c[k]} == {}, c
    assert sum(1 for f in r.frames if bytes.fromhex(PATTERN) * 2 in f) == 0
