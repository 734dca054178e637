"""Self-test of the strongSwan harness (tests/integration/strongswan.py), without dpsecd.

    host A ---- gw A [charon] ====== internet ====== [charon] gw B ---- host B
    10.1.0.2    10.1.0.1 | 172.31.0.1          172.31.0.2 | 10.2.0.1    10.2.0.2

Both gateways run Debian's stock charon with kernel-libipsec: ESP in userspace on a TUN device,
always in UDP (this kernel has XFRM but no ESP transform, so the kernel-netlink SA path cannot work
here; the charon that talks to dpsecd later uses kernel-pfkey instead, against this same peer).
The gateways also have plain routes to each other's subnet over the internet link, so a ping that
is not tunnelled goes out in clear: a capture there must see only IKE and ESP-in-UDP between the
gateways and never the hosts' ICMP.
"""
import os
import re
import secrets
import selectors
import socket
import struct
import sys
import tempfile
import threading
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "peer"))

from strongswan import PRELOAD, Charon, ikev2_psk, pfkey_env  # noqa: E402
from topology import Capture, Netns, sh  # noqa: E402

pytestmark = pytest.mark.interop

HOST_A, GW_A_IN, GW_A_OUT = "10.1.0.2", "10.1.0.1", "172.31.0.1"
HOST_B, GW_B_IN, GW_B_OUT = "10.2.0.2", "10.2.0.1", "172.31.0.2"
NET_A, NET_B = "10.1.0.0/24", "10.2.0.0/24"


@pytest.fixture
def workdir():
    with tempfile.TemporaryDirectory(prefix="dpsec-swan-") as d:
        os.chmod(d, 0o755)
        yield d


@pytest.fixture
def net(request):
    n = Netns(prefix="sw")
    request.addfinalizer(n.close)
    ns = {name: n.ns(name) for name in ("hosta", "gwa", "gwb", "hostb")}
    for name in ns.values():
        sh(["sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1"],
           ns=name)
    ha, ga = n.link(ns["hosta"], ns["gwa"])
    wa, wb = n.link(ns["gwa"], ns["gwb"])
    gb, hb = n.link(ns["gwb"], ns["hostb"])
    Netns.addrs(ns["hosta"], ha, [f"{HOST_A}/24"])
    Netns.addrs(ns["gwa"], ga, [f"{GW_A_IN}/24"])
    Netns.addrs(ns["gwa"], wa, [f"{GW_A_OUT}/24"])
    Netns.addrs(ns["gwb"], wb, [f"{GW_B_OUT}/24"])
    Netns.addrs(ns["gwb"], gb, [f"{GW_B_IN}/24"])
    Netns.addrs(ns["hostb"], hb, [f"{HOST_B}/24"])
    Netns.route(ns["hosta"], "default", via=GW_A_IN)
    Netns.route(ns["hostb"], "default", via=GW_B_IN)
    # the clear path the tunnel must take precedence over
    Netns.route(ns["gwa"], NET_B, via=GW_B_OUT)
    Netns.route(ns["gwb"], NET_A, via=GW_A_OUT)
    for g in (ns["gwa"], ns["gwb"]):
        Netns.forwarding(g)
        sh(["sysctl", "-qw", "net.ipv4.conf.all.rp_filter=0", "net.ipv4.conf.default.rp_filter=0"], ns=g)
    ns["wan_a"] = wa
    return ns


def gateways(net, workdir, request, esp_proposals, start_action_a="none"):
    psk = "0x" + secrets.token_hex(32)
    a = Charon("gwa", net["gwa"], workdir, plugins=Charon.LIBIPSEC)
    b = Charon("gwb", net["gwb"], workdir, plugins=Charon.LIBIPSEC)
    request.addfinalizer(a.stop)
    request.addfinalizer(b.stop)
    a.add_conn("gw", ikev2_psk(GW_A_OUT, GW_B_OUT, NET_A, NET_B, psk, esp_proposals=esp_proposals,
                               start_action=start_action_a, rekey_time="1h", life_time="2h"))
    b.add_conn("gw", ikev2_psk(GW_B_OUT, GW_A_OUT, NET_B, NET_A, psk, esp_proposals=esp_proposals,
                               rekey_time="1h", life_time="2h"))
    b.start()
    a.start()
    return a, b


def ping(ns, dst, count=5):
    return sh(["ping", "-c", str(count), "-i", "0.2", "-W", "2", "-w", "15", dst], ns=ns, check=False, timeout=30)


def wire(frames):
    """(IKE frames, ESP-in-UDP frames, anything else as (ip src, ip dst, proto) or a name)."""
    ike, esp, other = 0, 0, []
    for f in frames:
        if f[12:14] == b"\x08\x06":
            continue                        # ARP
        if f[12:14] != b"\x08\x00":
            other.append(f"ethertype {f[12:14].hex()}")
            continue
        ip = f[14:]
        ihl = (ip[0] & 0xF) * 4
        src, dst, proto = ".".join(map(str, ip[12:16])), ".".join(map(str, ip[16:20])), ip[9]
        if proto != 17 or {src, dst} != {GW_A_OUT, GW_B_OUT}:
            other.append((src, dst, proto))
            continue
        sport, dport = struct.unpack("!HH", ip[ihl:ihl + 4])
        payload = ip[ihl + 8:]
        if 500 in (sport, dport) and 4500 not in (sport, dport):
            ike += 1
        elif sport == 4500 and dport == 4500:
            if payload[:4] == b"\0\0\0\0":
                ike += 1                    # non-ESP marker: IKE on the NAT-T port
            elif len(payload) > 1:
                esp += 1
        else:
            other.append((src, dst, f"udp {sport}->{dport}"))
    return ike, esp, other


@pytest.mark.parametrize("esp_proposals,encr", [("aes128gcm16", "AES_GCM_16"), ("aes128-sha256", "AES_CBC")])
def test_libipsec_tunnel_carries_ping_only_as_udp(net, workdir, request, esp_proposals, encr):
    a, b = gateways(net, workdir, request, esp_proposals)
    a.initiate("tun")
    child_a = a.wait_child("tun")
    child_b = b.wait_child("tun")
    assert child_a["encr-alg"] == encr and child_b["encr-alg"] == encr
    assert child_a["mode"] == "TUNNEL"
    # kernel-libipsec cannot receive raw ESP: it forces UDP encapsulation even without a NAT
    assert child_a.get("encap") == "yes", child_a
    assert child_a["spi-in"] == child_b["spi-out"] and child_a["spi-out"] == child_b["spi-in"]

    cap = Capture(net["gwa"], net["wan_a"], os.path.join(workdir, "wan.pcap")).start()
    r = ping(net["hosta"], HOST_B)
    frames = cap.stop()
    assert r.returncode == 0 and " 0% packet loss" in r.stdout, f"{r.stdout}{r.stderr}\n{a.report()}\n{b.report()}"
    ike, esp, other = wire(frames)
    assert other == [], f"clear traffic on the internet link: {other[:10]}"
    assert esp >= 10, f"expected >= 10 ESP-in-UDP frames for 5 pings, saw {esp} (IKE {ike})"

    # the SA counted the traffic in userspace
    child_a = a.wait_child("tun")
    assert int(child_a["packets-out"]) >= 5 and int(child_a["packets-in"]) >= 5, child_a

    a.terminate(child="tun")
    assert a.children("tun") == [] and b.children("tun", state=None) == []
    assert a.stop() == 0 and b.stop() == 0


def test_start_action_start_and_child_rekey(net, workdir, request):
    """start_action=start initiates when the configuration is loaded; a CHILD_SA rekey replaces
    both SPIs and the tunnel keeps carrying traffic.  (start_action=trap is not tested here: the
    libipsec of strongSwan 5.9.8 drops packets matching a trap policy without raising an acquire.)"""
    a, b = gateways(net, workdir, request, "aes128gcm16", start_action_a="start")
    old_a = a.wait_child("tun")
    b.wait_child("tun")
    assert ping(net["hosta"], HOST_B, count=2).returncode == 0

    a.rekey(child="tun")
    deadline = time.time() + 20
    while time.time() < deadline:
        now = a.children("tun")
        if now and all(c["spi-in"] != old_a["spi-in"] for c in now):
            break
        time.sleep(0.2)
    else:
        raise AssertionError(f"CHILD_SA not rekeyed: {a.children('tun', state=None)}\n{a.report()}")
    new_a = now[0]
    assert new_a["spi-out"] != old_a["spi-out"]
    assert any(c["spi-in"] == new_a["spi-out"] for c in b.children("tun")), b.children("tun", state=None)

    cap = Capture(net["gwa"], net["wan_a"], os.path.join(workdir, "wan.pcap")).start()
    r = ping(net["hosta"], HOST_B, count=3)
    frames = cap.stop()
    assert r.returncode == 0, f"{r.stdout}\n{a.report()}\n{b.report()}"
    ike, esp, other = wire(frames)
    assert other == [] and esp >= 6, (esp, other[:10])


# --------------------------------------------------------------------------
# The shipped charon configuration for dpsec (config/strongswan/dpsec-pfkey.conf)
# --------------------------------------------------------------------------

ROOT = os.path.dirname(os.path.dirname(HERE))
SNIPPET = os.path.join(ROOT, "config/strongswan/dpsec-pfkey.conf")
PFKEY_PLUGIN = "/usr/lib/ipsec/plugins/libstrongswan-kernel-pfkey.so"


class RegisterOnlyPfkey:
    """The least PF_KEY server charon starts against: every request is answered with its own
    header and errno 0 (charon checks only the errno of its two SADB_REGISTERs).  Connections
    stay open until close(): charon spins on an EOF."""

    def __init__(self, path):
        self.path, self.requests, self.conns = path, [], []
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.sock.bind(path)
        self.sock.listen(8)
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        try:
            self.serve()
        except (OSError, ValueError, KeyError):
            # sockets closed by close() under select/recv/send; a closed one's fd
            # number taken by a socket charon opens meanwhile is "already registered"
            pass

    def serve(self):
        sel = selectors.DefaultSelector()
        sel.register(self.sock, selectors.EVENT_READ)
        while True:
            for key, _ in sel.select():
                if key.fileobj is self.sock:
                    c, _ = self.sock.accept()
                    self.conns.append(c)
                    sel.register(c, selectors.EVENT_READ)
                    continue
                msg = key.fileobj.recv(4096)
                if not msg:
                    sel.unregister(key.fileobj)
                    continue
                version, mtype, _, satype, _, _, seq, pid = struct.unpack("=BBBBHHII", msg[:16])
                self.requests.append((mtype, satype))
                key.fileobj.send(struct.pack("=BBBBHHII", version, mtype, 0, satype, 2, 0, seq, pid))

    def close(self):
        for c in self.conns + [self.sock]:
            c.close()


def snippet_charon(net, workdir, request, env):
    assert os.path.exists(PFKEY_PLUGIN), f"{PFKEY_PLUGIN} missing: run scripts/strongswan-pfkey.sh"
    c = Charon("pfkey", net["gwa"], workdir, plugins=None, include=[SNIPPET], env=env,
               log_levels={"lib": 2})
    request.addfinalizer(c.stop)
    return c


def test_shipped_pfkey_config_makes_kernel_pfkey_mandatory(net, workdir, request):
    """Without a PF_KEY service (no AF_KEY in this kernel, no preload) charon must refuse to start,
    not fall back to keying the kernel through kernel-netlink."""
    c = snippet_charon(net, workdir, request, env={}).launch()
    rc = c.wait_exit()
    log = c.log()
    assert rc != 0, log
    assert "plugin 'kernel-pfkey': loaded successfully" in log, log
    assert "unable to create PF_KEY socket" in log, log
    assert "critical plugin 'kernel-pfkey' failed to load" in log, log


def test_shipped_pfkey_config_keys_through_preload(net, workdir, request):
    """With the preload library and a PF_KEY server on its socket, charon starts with the shipped
    configuration and kernel-pfkey (not kernel-netlink) is its kernel-ipsec interface."""
    assert os.path.exists(PRELOAD), f"{PRELOAD} not built: run scripts/build.sh"
    server = RegisterOnlyPfkey(os.path.join(workdir, "pfkey.sock"))
    c = snippet_charon(net, workdir, request, env=pfkey_env(server.path))
    request.addfinalizer(server.close)      # finalizers run last-in first-out: charon stops first
    c.start()
    log = c.log()
    loaded = re.search(r"loaded plugins: (.*)", log).group(1).split()
    assert loaded[:3] == ["charon", "kernel-pfkey", "kernel-netlink"], loaded
    # kernel-pfkey took the kernel-ipsec interface, so kernel-netlink could not register its XFRM one
    assert "feature CUSTOM:kernel-ipsec in plugin 'kernel-netlink' failed to load" in log, log
    SADB_REGISTER, SATYPE_AH, SATYPE_ESP = 7, 2, 3
    assert (SADB_REGISTER, SATYPE_ESP) in server.requests and (SADB_REGISTER, SATYPE_AH) in server.requests
