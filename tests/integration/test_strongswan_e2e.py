"""dpsecd keyed by strongSwan's charon over PF_KEY, against an independent
strongSwan peer, end to end in network namespaces:

    site A host ---- [lan] dpsecd [wan] ====== internet ====== gateway B ---- site B host
    10.1.0.2        10.1.0.1     192.0.2.1                    192.0.2.2  10.2.0.1   10.2.0.2
                    charon A (kernel-pfkey, through libdpsec_pfkey.so)   charon B (kernel-libipsec)

Gateway A is dpsecd (net_af_packet on both veths, exception TAPs) with
Debian's charon in the same namespace: IKE reaches it through the wan TAP,
and its kernel-pfkey plugin (built from Debian's source by
scripts/strongswan-pfkey.sh) keys dpsecd through the preload library.
Gateway B is stock Debian charon whose kernel-libipsec plugin does ESP in
userspace on a TUN device (this kernel has no ESP), always in UDP. IKEv2,
PSK, tunnel mode, AES-GCM-128 or AES-CBC-128 + HMAC-SHA2-256.

The story, in order (one topology for the module): charon A installs trap
policies; the first packet from site A makes dpsecd ACQUIRE; IKE installs
the SAs (GETSPI, UPDATE, ADD); ping and 12 MB of TCP each way cross; CHILD_SA
rekeying every ~10 s for a minute under continuous traffic with under 1 %
loss, old SAs deleted; a packet-count lifetime makes dpsecd EXPIRE and that
drives charon's rekey; dpsecd restarts under charon and the tunnel comes
back; swanctl --terminate and --uninstall remove SAs and policies. A capture
of the internet link shows no plaintext between the sites throughout.
"""
import os
import re
import secrets
import subprocess
import sys
import time

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "peer"))

from dpsec import Daemon, sh  # noqa: E402
from strongswan import Charon, ikev2_psk, pfkey_env  # noqa: E402
from topology import Capture, Netns, TcpTransfer, make_payload, ping  # noqa: E402
from scapy.all import ARP, ICMP, IP, UDP, Ether, IPerror, IPv6, UDPerror  # noqa: E402

pytestmark = pytest.mark.interop

A, B = "10.1.0.2", "10.2.0.2"
LAN_A, LAN_B = "10.1.0.1", "10.2.0.1"
GWA, GWB = "192.0.2.1", "192.0.2.2"
NET_A, NET_B = "10.1.0.0/24", "10.2.0.0/24"
TCP_SIZE = 12 << 20


class Env:
    pass


def dpsecd_config(e, name):
    return {
        "log_level": "info",
        "ports": [
            {"name": "lan", "device": f"net_af_packet0,iface={e.lan_if}", "role": "protected",
             "exception_iface": e.tap_lan, "addresses": [LAN_A + "/24"]},
            {"name": "wan", "device": f"net_af_packet1,iface={e.wan_if}", "role": "unprotected",
             "exception_iface": e.tap_wan, "addresses": [GWA + "/24"]},
        ],
        "routes": [{"prefix": NET_B, "via": GWB, "port": "wan"}],
        "pfkey": {"socket": e.sock, "state": str(e.dir / f"{name}.state"), "acquire_retry_s": 5},
    }


def start_charons(e, esp, **child):
    psk = secrets.token_hex(16)
    e.cb = Charon("b", e.gwb, str(e.dir), plugins=Charon.LIBIPSEC)
    e.cb.add_conn("site", ikev2_psk(GWB, GWA, NET_B, NET_A, psk, child="net", esp_proposals=esp))
    e.cb.start()
    e.ca = Charon("a", e.gwa, str(e.dir), plugins=Charon.PFKEY, env=pfkey_env(e.sock),
                  settings="\tinstall_routes = no\n")
    e.ca.add_conn("site", ikev2_psk(GWA, GWB, NET_A, NET_B, psk, child="net", esp_proposals=esp,
                                    start_action="trap", **child))
    e.ca.start()


def stop_charons(e):
    for c in (getattr(e, "ca", None), getattr(e, "cb", None)):
        if c is not None:
            c.stop()


def two_sites(e, net, names, tap, workdir, payload_size):
    """Site A's host -- gateway A (dpsecd's two veths) -- gateway B (its kernel, a key daemon
    with userspace ESP) -- site B's host, in namespaces @names of @net; @tap: the first letter
    of the exception TAPs' names; a random payload of @payload_size bytes in @workdir."""
    e.ha, e.gwa, e.gwb, e.hb = (net.ns(n) for n in names)
    e.a_if, e.lan_if = net.link(e.ha, e.gwa, kernel_off=(e.gwa,))
    e.wan_if, e.out_if = net.link(e.gwa, e.gwb, kernel_off=(e.gwa,))
    e.blan_if, e.b_if = net.link(e.gwb, e.hb)
    net.addrs(e.ha, e.a_if, [A + "/24"])
    net.addrs(e.hb, e.b_if, [B + "/24"])
    net.addrs(e.gwb, e.out_if, [GWB + "/24"])
    net.addrs(e.gwb, e.blan_if, [LAN_B + "/24"])
    net.forwarding(e.gwb)
    for ns, gw in ((e.ha, LAN_A), (e.hb, LAN_B)):
        sh(["ip", "route", "replace", "default", "via", gw], ns=ns)
    sh(["sysctl", "-qw", "net.ipv6.conf.default.router_solicitations=0"], ns=e.gwa)
    e.tap_lan, e.tap_wan = f"{tap}l{net.tag}", f"{tap}w{net.tag}"
    e.dir = workdir
    e.sock = str(e.dir / "pfkey.sock")
    e.data = str(e.dir / "payload")
    e.data_sha = make_payload(e.data, payload_size)


@pytest.fixture(scope="module")
def topo(tmp_path_factory):
    net = Netns("ss")
    e = Env()
    e.net = net
    try:
        two_sites(e, net, ("ha", "gwa", "gwb", "hb"), "s", tmp_path_factory.mktemp("strongswan_e2e"),
                  TCP_SIZE)
        yield e
    finally:
        net.close()


@pytest.fixture(scope="module", params=["aes128gcm16", "aes128-sha256"])
def vpn(request, topo):
    """Both gateways up, charon A's trap policies in dpsecd, the capture running."""
    e = topo
    e.esp = request.param
    e.cap = Capture(e.gwb, e.out_if, str(e.dir / f"wire-{e.esp}.pcap")).start()
    e.d = Daemon(dpsecd_config(e, e.esp), str(e.dir), ns=e.gwa, name=f"dpsecd-{e.esp}").start()
    done = []

    def down():
        """Stop everything and check the capture (once; pytest keeps a module fixture
        alive until another parameter or the module's end needs it gone)."""
        if done:
            return
        done.append(1)
        stop_charons(e)
        frames = e.cap.stop()
        rc = e.d.stop()
        assert rc == 0, e.d.read_log()
        check_wire(e, frames)

    e.down = down
    try:
        # byte and packet limits are the kernel's to count: charon rekeys on its EXPIRE
        start_charons(e, e.esp, rekey_packets=3000, life_packets=6000, rand_packets=100)
        yield e
    finally:
        down()


def check_wire(e, frames):
    """Between the sites nothing crossed the internet link in clear: only IKE and
    ESP in UDP between the two gateways (plus ARP), and ICMP errors between the
    gateways that quote such a packet (no site traffic: at the end, charon A
    stops first and its SAs and policies leave dpsecd, which then hands gateway
    B's late NAT-T keepalive or ESP to its kernel, whose port 4500 is closed; or
    while dpsecd restarts, when the veth is the kernel's)."""
    bad, esp = [], 0
    for f in frames:
        pkt = Ether(f)
        if ARP in pkt:
            continue
        if ICMP in pkt and IPerror in pkt and UDPerror in pkt and \
                {pkt[IP].src, pkt[IP].dst} == {GWA, GWB} == {pkt[IPerror].src, pkt[IPerror].dst} and \
                not {pkt[UDPerror].sport, pkt[UDPerror].dport} - {500, 4500}:
            continue
        if IPv6 in pkt and pkt[IPv6].src.startswith("fe80:") and not pkt[IPv6].dst.startswith("10."):
            continue  # gateway B's kernel's link-local MLD/ND: no site traffic
        ip = pkt.getlayer(IP)
        if ip is None or {ip.src, ip.dst} != {GWA, GWB} or UDP not in pkt or \
                {pkt[UDP].sport, pkt[UDP].dport} - {500, 4500}:
            bad.append(pkt.summary())
            continue
        esp += pkt[UDP].dport == 4500 and bytes(pkt[UDP].payload)[:4] != b"\0\0\0\0"
    assert not bad, f"{len(bad)} frames other than IKE/ESP-in-UDP between the gateways: {bad[:5]}"
    assert esp > 0, "no ESP at all crossed the internet link"


def sas(d):
    return {int(s["spi"], 16): s for s in d.ctl_json("sa")["sas"].values()}


def pfkey_policies(d):
    return [p for p in d.ctl_json("policy")["policies"].values() if p["origin"] == "pfkey"]


def children(c):
    return c.children("net")


def test_trap_policies_then_acquire_brings_the_tunnel_up(vpn):
    e = vpn
    pols = pfkey_policies(e.d)
    assert {(p["dir"], p["src"], p["dst"]) for p in pols} >= {("out", NET_A, NET_B), ("in", NET_B, NET_A),
                                                                ("fwd", NET_B, NET_A)}
    assert sas(e.d) == {}  # trap only: nothing negotiated yet
    # first packets from site A: dropped (never in clear), ACQUIRE, IKE, SAs
    ping(e.ha, B, count=3, check=False)
    e.ca.wait_child("net", timeout=30)
    assert "ACQUIRE for policy" in e.d.read_log()
    assert e.d.port_stats()["lan"]["drop_no_sa"] >= 1
    live = e.d.wait_for(lambda: len(sas(e.d)) == 2 and sas(e.d), what="an SA pair in dpsecd")
    dirs = sorted(s["dir"] for s in live.values())
    assert dirs == ["in", "out"] and all(s["origin"] == "pfkey" and s["encap"] == "udp:4500:4500"
                                         for s in live.values())
    enc = "aes-gcm" if "gcm" in e.esp else "aes-cbc"
    assert {s["enc"] for s in live.values()} == {enc}
    ping(e.ha, B, count=5)
    ping(e.hb, A, count=5)


def test_ping_sizes_and_tcp_both_ways(vpn):
    e = vpn
    for size in (56, 500, 1000, 1250):
        ping(e.ha, B, size=size, count=3)
        ping(e.hb, A, size=size, count=3)
    # no MSS clamping: path MTU discovery; site A's full-sized segments get dpsecd's ICMP
    # "fragmentation needed" (RFC 4301 8.2.1) with the MTU that fits the tunnel
    # forget the path MTUs a previous run taught the hosts (they live in the routes' next
    # hops): host B's would lower the MSS it announces to A
    for ns, gw in ((e.ha, LAN_A), (e.hb, LAN_B)):
        sh(["ip", "route", "del", "default"], ns=ns)
        sh(["ip", "route", "add", "default", "via", gw], ns=ns)
    ptb = e.d.port_stats()["lan"]["icmp_ptb_sent"]
    ab = TcpTransfer(e.ha, e.hb, B, 5001, e.data, str(e.dir / "ab.out")).start()
    ba = TcpTransfer(e.hb, e.ha, A, 5002, e.data, str(e.dir / "ba.out")).start()
    assert ab.wait(timeout=120) == e.data_sha
    assert ba.wait(timeout=120) == e.data_sha
    s = sas(e.d)
    assert s and all(v["drop_auth"] == 0 and v["drop_replay"] == 0 for v in s.values())
    assert e.d.port_stats()["lan"]["icmp_ptb_sent"] > ptb


def test_lifetime_expire_drives_rekey(vpn):
    """rekey_packets=3000: the soft packet limit is counted by dpsecd's workers; its EXPIRE
    is the only thing that tells charon to rekey (charon counts no packets, and its own
    time-based rekey is an hour away)."""
    e = vpn
    before = set(sas(e.d))
    log0 = e.ca.log()
    sh(["ping", "-q", "-n", "-f", "-c", "4000", "-s", "100", B], ns=e.ha, check=False, timeout=120)
    e.d.wait_for(lambda: not (set(sas(e.d)) & before) and len(sas(e.d)) >= 2, timeout=40,
                 what="rekeyed SAs replacing the expired ones")
    new = e.ca.log()[len(log0):]
    assert "received an SADB_EXPIRE" in new, new[-3000:]
    expired = re.findall(r"creating rekey job for CHILD_SA ESP/0x([0-9a-f]+)/", new)
    assert {int(x, 16) for x in expired} & before, (expired, before)
    assert "generating CREATE_CHILD_SA request" in new and "N(REKEY_SA)" in new
    ping(e.ha, B, count=5)


def test_dpsecd_restart_under_charon_keeps_the_tunnel(vpn):
    e = vpn
    # after the previous rekey charon deletes the old inbound SA a little later: let it settle
    e.d.wait_for(lambda: len(sas(e.d)) == 2, timeout=30, what="one SA pair")
    live = set(sas(e.d))
    ikes = {ike["uniqueid"] for ike in e.ca.list_sas().values()}
    assert e.d.stop() == 0
    time.sleep(1)  # charon's sockets see the daemon gone; the preload library must not hand it EOF
    e.d.start()
    assert set(sas(e.d)) == live  # restored from the state file
    ping(e.ha, B, count=5)
    ping(e.hb, A, count=5)
    assert e.ca.proc.poll() is None
    # the same tunnel, not a new one: charon's IKE_SA and CHILD_SA are the ones from before
    assert {ike["uniqueid"] for ike in e.ca.list_sas().values()} == ikes and len(ikes) == 1
    child = children(e.ca)
    assert {int(c["spi-in"], 16) for c in child} | {int(c["spi-out"], 16) for c in child} == live
    # charon is not wedged: it still answers and still keys dpsecd
    assert e.ca.swanctl("--list-sas").returncode == 0
    e.ca.rekey(child="net")
    e.d.wait_for(lambda: not (set(sas(e.d)) & live) and len(sas(e.d)) >= 2, timeout=30,
                 what="a rekey through the new dpsecd")
    ping(e.ha, B, count=5)


def test_terminate_and_uninstall_remove_sas_and_policies(vpn):
    e = vpn
    assert sas(e.d)
    e.ca.terminate(ike="site")
    e.d.wait_for(lambda: sas(e.d) == {}, timeout=20, what="SAs removed")
    # the trap stays installed (charon's start_action=trap) ...
    assert {p["dir"] for p in pfkey_policies(e.d)} >= {"out"}
    e.ca.swanctl("--uninstall", "--child", "net")
    # ... until it is uninstalled
    e.d.wait_for(lambda: pfkey_policies(e.d) == [], timeout=20, what="policies removed")
    # and site A's traffic is now under def_policy (bypass here): nothing of the VPN is left
    assert e.d.ctl_json("sa")["sas"] == {}


def test_continuous_traffic_through_rekeys_every_10s(topo):
    """A minute of pings every 20 ms while charon rekeys the CHILD_SA every ~10 s."""
    e = topo
    if getattr(e, "down", None):
        e.down()  # the last vpn parameter's gateways
    e.cap = Capture(e.gwb, e.out_if, str(e.dir / "wire-rekey.pcap")).start()
    e.d = Daemon(dpsecd_config(e, "rekey"), str(e.dir), ns=e.gwa, name="dpsecd-rekey").start()
    try:
        # rand_time: charon's default (life_time - rekey_time) exceeds rekey_time, and the
        # jittered soft lifetime then wraps around: no rekey before the hard expiry
        start_charons(e, "aes128gcm16", rekey_time="10s", life_time="30s", rand_time="2s")
        ping(e.ha, B, count=3, check=False)
        e.ca.wait_child("net", timeout=30)
        ping(e.ha, B, count=3)
        spis_seen = set()
        count = 3000
        p = subprocess.Popen(["ip", "netns", "exec", e.ha, "ping", "-n", "-q", "-i", "0.02", "-c", str(count),
                              "-w", "90", B], stdout=subprocess.PIPE, text=True)
        deadline = time.time() + 90
        while p.poll() is None and time.time() < deadline:
            spis_seen |= set(sas(e.d))
            time.sleep(1)
        out = p.communicate(timeout=30)[0]
        got = int(re.search(r"(\d+) received", out).group(1))
        assert got >= count * 0.99, out
        # ~6 rekeys: each one a new pair of SPIs in dpsecd
        assert len(spis_seen) >= 2 * 5, sorted(spis_seen)
        # old SAs were deleted: only the live CHILD_SA's pair (and at most one being replaced)
        assert len(sas(e.d)) <= 4
        live = {int(c["spi-in"], 16) for c in e.ca.children("net")} | \
               {int(c["spi-out"], 16) for c in e.ca.children("net")}
        assert live <= set(sas(e.d))
    finally:
        stop_charons(e)
        frames = e.cap.stop()
        rc = e.d.stop()
        assert rc == 0, e.d.read_log()
    check_wire(e, frames)
