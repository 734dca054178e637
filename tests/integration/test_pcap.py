"""dpsecd forwarding on DPDK net_pcap devices: no kernel, no namespaces.

Port lan reads IN.pcap and writes LAN_OUT.pcap, port wan reads an empty capture
and writes WAN_OUT.pcap; one worker on lcore 1, no exception TAPs. Each scenario
runs the real daemon once (module fixtures), waits with dpsecctl until every
input frame is counted and the unresolved next hops have been given up, stops it
with SIGTERM (which flushes the pcap writers), then checks the captures byte by
byte and the counters exactly.

Packet building lives in pcaps.py.
"""
import json
import os
import time

import pytest
from scapy.all import (ARP, ICMP, IP, UDP, Ether, defragment, ICMPv6DestUnreach, ICMPv6ND_NA, ICMPv6ND_NS,
                       ICMPv6NDOptDstLLAddr, ICMPv6NDOptSrcLLAddr, ICMPv6PacketTooBig, IPv6, Raw)

import pcaps as P
from dpsec import Daemon

RETRANS_MS = 200
PROBES = 2
WAN_MTU_SMALL = 1280


# The lan host's static entries: ICMP errors the gateway sends it need no ARP/ND.
HOST_NEIGHBOURS = [{"address": P.HOST4, "mac": P.HOST_MAC, "port": "lan"},
                   {"address": P.HOST6, "mac": P.HOST_MAC, "port": "lan"}]


def gateway_config(workdir, wan_mtu=1500, neighbours=(), dataplane=None):
    cfg = {
        "log_level": "info",
        "neighbour": {"reachable_ms": 30000, "retrans_ms": RETRANS_MS, "probes": PROBES},
        "ports": [
            {"name": "lan", "role": "protected", "exception": False,
             "device": f"net_pcap0,rx_pcap={workdir}/IN.pcap,tx_pcap={workdir}/LAN_OUT.pcap",
             "addresses": [f"{P.LAN4}/24", f"{P.LAN6}/64"]},
            {"name": "wan", "role": "unprotected", "exception": False, "mtu": wan_mtu,
             "device": f"net_pcap1,rx_pcap={workdir}/EMPTY.pcap,tx_pcap={workdir}/WAN_OUT.pcap",
             "addresses": [f"{P.WAN4}/24", f"{P.WAN6}/64"]},
        ],
        "workers": [{"lcore": 1, "rx": [{"port": "lan", "queue": 0}, {"port": "wan", "queue": 0}]}],
        "routes": P.ROUTES,
        "neighbours": P.NEIGHBOURS + list(neighbours),
    }
    if dataplane:
        cfg["dataplane"] = dataplane
    return cfg


def telemetry_macs(d):
    """ethdev name -> MAC, from DPDK's own /ethdev/info."""
    macs = {}
    for port_id in range(2):
        info = json.loads(d.ctl("raw", f"/ethdev/info,{port_id}").stdout)
        info = next(iter(info.values())) if "mac_addr" not in info else info
        macs[info["name"]] = info["mac_addr"].lower()
    return macs


def forget_runtime_dir(d):
    """DPDK leaves an empty /var/run/dpdk/<prefix> behind even with --in-memory."""
    try:
        os.rmdir(f"/var/run/dpdk/{d.prefix}")
    except OSError:
        pass


def settle(pred, timeout):
    """Wait for pred() like Daemon.wait_for, but let the tests judge a timeout."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if pred():
            return True
        time.sleep(0.05)
    return False


class Run:
    """The outcome of one daemon run over a list of P.Case."""

    def __init__(self, workdir, cases, wan_mtu=1500, expect_unresolved=0, **cfg):
        self.cases = cases
        P.write_pcap(workdir / "IN.pcap", [c.raw for c in cases])
        P.write_pcap(workdir / "EMPTY.pcap", [])
        d = Daemon(gateway_config(workdir, wan_mtu, **cfg), str(workdir))
        d.start()
        try:
            self.macs = telemetry_macs(d)
            d.wait_for(lambda: d.port_stats()["lan"]["rx_packets"] >= len(cases), timeout=15,
                       what=f"lan rx_packets == {len(cases)}")
            # Held packets are given up after PROBES probes RETRANS_MS apart.
            self.unresolved_settled = settle(
                lambda: sum(p["drop_unresolved"] for p in d.port_stats().values())
                >= expect_unresolved, timeout=5 + PROBES * RETRANS_MS / 1000)
            # Room for anything that should not come: a late probe, a late release.
            time.sleep(2 * RETRANS_MS / 1000)
            self.stats = d.port_stats()
        finally:
            self.rc = d.stop()
            forget_runtime_dir(d)
        self.log = d.read_log()
        self.lan_out = P.read_pcap(workdir / "LAN_OUT.pcap")
        self.wan_out = P.read_pcap(workdir / "WAN_OUT.pcap")

    def fwd_cases(self, family=None):
        return [c for c in self.cases if c.fate == "fwd" and family in (None, c.family)]

    def wan_data(self):
        """(frame, case) for every wan frame that is not an ARP/ND probe."""
        return [(f, P.find_case(f, self.cases)) for f in self.wan_out
                if not P.is_arp(f) and not P.is_ns(f)]


@pytest.fixture(scope="module")
def fwd_run(tmp_path_factory):
    return Run(tmp_path_factory.mktemp("fwd"), P.forwarding_cases(), expect_unresolved=2)


# ---- the port MACs ------------------------------------------------------------------


def test_net_pcap_ports_keep_the_driver_default_macs(fwd_run):
    assert fwd_run.macs == {"net_pcap0": P.LAN_MAC, "net_pcap1": P.WAN_MAC}


def test_daemon_refuses_to_start_when_net_pcap_cannot_take_the_configured_mac(tmp_path):
    P.write_pcap(tmp_path / "IN.pcap", [])
    P.write_pcap(tmp_path / "EMPTY.pcap", [])
    cfg = gateway_config(tmp_path)
    cfg["ports"][0]["mac"] = "02:00:00:00:00:01"
    d = Daemon(cfg, str(tmp_path))
    with pytest.raises(AssertionError, match="dpsecd exited 1"):
        d.start()
    forget_runtime_dir(d)
    assert "port lan: cannot set MAC: Operation not supported" in d.read_log()


# ---- forwarding -----------------------------------------------------------------------


def test_daemon_exits_0_on_sigterm_after_the_run(fwd_run):
    assert fwd_run.rc == 0, fwd_run.log


def test_every_routable_packet_leaves_wan_exactly_once_in_order(fwd_run):
    data = fwd_run.wan_data()
    unknown = [f.summary() for f, c in data if c is None]
    assert not unknown, f"frames on wan that match no input: {unknown}"
    # The worker sorts each received burst by ethertype (IPv4 first, then IPv6),
    # so order is kept within each family, not across families.
    for family in (4, 6):
        got = [c.name for f, c in data if c.family == family]
        assert got == [c.name for c in fwd_run.fwd_cases(family)]
    assert len(data) == len(fwd_run.fwd_cases())


def test_forwarded_packets_differ_only_by_ttl_or_hop_limit_minus_one(fwd_run):
    """Payload, addresses, options, extension headers unchanged; Ethernet padding
    does not become part of the packet. The IPv4 checksum has its own test."""
    def no_cksum(ip):
        return ip[:10] + b"\0\0" + ip[12:] if ip[0] >> 4 == 4 else ip

    for frame, case in fwd_run.wan_data():
        out = bytes(frame)
        want = P.expected_forwarded_ip(case.raw)
        assert len(out) == P.ETH_LEN + len(want), case.name
        assert no_cksum(out[P.ETH_LEN:]) == no_cksum(want), case.name
        if case.family == 4:
            assert frame[IP].ttl == IP(P.ip_bytes(case.raw)).ttl - 1, case.name
        else:
            assert frame[IPv6].hlim == IPv6(P.ip_bytes(case.raw)).hlim - 1, case.name


def test_forwarded_ipv4_header_checksum_equals_scapy_recomputation(fwd_run):
    checked = 0
    for frame, case in fwd_run.wan_data():
        if case.family != 4:
            continue
        ip = P.ip_bytes(frame)
        got = frame[IP].chksum
        assert got == P.scapy_recomputed_ipv4_checksum(ip), case.name
        assert got == P.ipv4_checksum(ip[:(ip[0] & 0xF) * 4]), case.name
        checked += 1
    assert checked == len(fwd_run.fwd_cases(4))


def test_forwarded_frames_go_from_the_wan_mac_to_the_next_hops_static_mac(fwd_run):
    for frame, case in fwd_run.wan_data():
        assert (frame[Ether].src, frame[Ether].dst) == (P.WAN_MAC, case.nh_mac), case.name
        assert frame[Ether].type == (P.ETH_IPV4 if case.family == 4 else P.ETH_IPV6)


def test_dropped_and_unresolved_packets_never_leave_any_port(fwd_run):
    not_fwd = [c for c in fwd_run.cases if c.fate != "fwd"]
    for port, frames in (("wan", fwd_run.wan_out), ("lan", fwd_run.lan_out)):
        leaked = [c.name for f in frames for c in [P.find_case(f, not_fwd)] if c]
        assert not leaked, f"{port} sent {leaked}"
    assert not [f for f in fwd_run.lan_out if P.find_case(f, fwd_run.cases)]


# ---- ARP / ND --------------------------------------------------------------------------


def probe_gaps(frames):
    return [round(float(b.time - a.time), 3) for a, b in zip(frames, frames[1:])]


def test_unresolved_ipv4_next_hop_gets_broadcast_arp_requests_from_the_wan_address(fwd_run):
    arps = [f for f in fwd_run.wan_out if P.is_arp(f)]
    assert len(arps) == PROBES, [f.summary() for f in arps]
    for f in arps:
        assert (f[Ether].src, f[Ether].dst) == (P.WAN_MAC, P.BCAST_MAC)
        a = f[ARP]
        assert (a.hwtype, a.ptype, a.hwlen, a.plen, a.op) == (1, 0x0800, 6, 4, 1)
        assert (a.hwsrc, a.psrc) == (P.WAN_MAC, P.WAN4)
        assert (a.hwdst, a.pdst) == ("00:00:00:00:00:00", P.NH4X)
    assert all(g >= 0.9 * RETRANS_MS / 1000 for g in probe_gaps(arps)), probe_gaps(arps)


def test_unresolved_ipv6_next_hop_gets_solicitations_to_its_solicited_node_group(fwd_run):
    snma, snmac = P.solicited_node(P.NH6X)
    nss = [f for f in fwd_run.wan_out if P.is_ns(f)]
    assert len(nss) == PROBES, [f.summary() for f in nss]
    for f in nss:
        assert (f[Ether].src, f[Ether].dst) == (P.WAN_MAC, snmac)
        ip6 = f[IPv6]
        assert (ip6.src, ip6.dst, ip6.hlim) == (P.WAN6, snma, 255)
        ns = f[ICMPv6ND_NS]
        assert (ns.code, ns.tgt) == (0, P.NH6X)
        assert ICMPv6NDOptSrcLLAddr in f and f[ICMPv6NDOptSrcLLAddr].lladdr == P.WAN_MAC
        rebuilt = IPv6(bytes(ip6))
        del rebuilt[ICMPv6ND_NS].cksum
        assert ns.cksum == IPv6(bytes(rebuilt))[ICMPv6ND_NS].cksum
    assert all(g >= 0.9 * RETRANS_MS / 1000 for g in probe_gaps(nss)), probe_gaps(nss)


def test_packets_for_unresolved_next_hops_are_held_then_counted_drop_unresolved(fwd_run):
    assert fwd_run.unresolved_settled, fwd_run.stats
    lan, wan = fwd_run.stats["lan"], fwd_run.stats["wan"]
    assert lan["neigh_wait"] == 2
    # dpsecd counts the give-up on the egress port (the neighbour's), not on lan.
    assert (lan["drop_unresolved"], wan["drop_unresolved"]) == (0, 2)


def test_gateway_answers_arp_and_ns_for_its_lan_addresses_on_lan(fwd_run):
    replies = fwd_run.lan_out
    assert len(replies) == 2, [f.summary() for f in replies]
    arp = next(f for f in replies if P.is_arp(f))
    assert (arp[Ether].src, arp[Ether].dst) == (P.LAN_MAC, P.HOST_MAC)
    assert (arp[ARP].op, arp[ARP].hwsrc, arp[ARP].psrc) == (2, P.LAN_MAC, P.LAN4)
    assert (arp[ARP].hwdst, arp[ARP].pdst) == (P.HOST_MAC, P.HOST4)
    na = next(f for f in replies if ICMPv6ND_NA in f)
    assert (na[Ether].src, na[Ether].dst) == (P.LAN_MAC, P.HOST_MAC)
    assert (na[IPv6].src, na[IPv6].dst, na[IPv6].hlim) == (P.LAN6, P.HOST6, 255)
    assert (na[ICMPv6ND_NA].tgt, na[ICMPv6ND_NA].R, na[ICMPv6ND_NA].S,
            na[ICMPv6ND_NA].O) == (P.LAN6, 1, 1, 1)
    assert na[ICMPv6NDOptDstLLAddr].lladdr == P.LAN_MAC


# ---- counters --------------------------------------------------------------------------


def dp_counters(port_stats):
    return {k: v for k, v in port_stats.items() if not k.startswith("dev_")}


def test_lan_counters_count_each_drop_reason_exactly(fwd_run):
    cases = fwd_run.cases
    lan = dp_counters(fwd_run.stats["lan"])
    n_fwd4, n_fwd6 = len(fwd_run.fwd_cases(4)), len(fwd_run.fwd_cases(6))
    assert (n_fwd4, n_fwd6) == (8, 6)
    # Every counter not named here (the IPsec ones among them) must be zero.
    assert lan == dict({k: 0 for k in lan}, **{
        "rx_packets": len(cases),
        "rx_bytes": sum(len(c.raw) for c in cases),
        "tx_packets": 2,  # the ARP reply and the NA
        "tx_bytes": sum(len(bytes(f)) for f in fwd_run.lan_out),
        # fwd_* counts routed packets, the two later given up as unresolved included.
        "fwd_ipv4": n_fwd4 + 1,
        "fwd_ipv6": n_fwd6 + 1,
        "punt_kernel": 0,
        "from_kernel": 0,
        "arp_nd_in": 2,
        "neigh_wait": 2,
        "drop_no_route": 2,
        "drop_ttl_expired": 4,
        "drop_malformed": 6,
        "drop_bad_cksum": 1,
        "drop_l2_other": 4,
        "drop_mtu": 0,
        "drop_no_exception": 3,
        "drop_unresolved": 0,
        "drop_ctrl_full": 0,
        "drop_tx_full": 0,
    })
    # The scenario itself agrees with the literal above.
    for counter in [k for k in lan if k.startswith("drop_") and k != "drop_unresolved"]:
        assert lan[counter] == sum(c.fate == counter for c in cases), counter


def test_wan_tx_packets_equal_forwarded_packets_plus_arp_and_ns_probes(fwd_run):
    wan = dp_counters(fwd_run.stats["wan"])
    n_out = len(fwd_run.fwd_cases()) + 2 * PROBES
    assert len(fwd_run.wan_out) == n_out
    assert wan == dict({k: 0 for k in wan},
                       tx_packets=n_out,
                       tx_bytes=sum(len(bytes(f)) for f in fwd_run.wan_out),
                       drop_unresolved=2)
    dev = {k: v for k, v in fwd_run.stats["wan"].items() if k.startswith("dev_")}
    assert set(dev.values()) == {0}, dev


# ---- MTU ---------------------------------------------------------------------------------


def mtu_cases():
    return [
        P.Case("v4_1400", P.sized_ip4("v4_1400", "10.1.0.5", 1400), "frag", P.NH4A_MAC),
        P.Case("v4_mtu", P.sized_ip4("v4_mtu", "10.1.0.5", WAN_MTU_SMALL), "fwd", P.NH4A_MAC),
        P.Case("v4_mtu_plus1", P.sized_ip4("v4_mtu_plus1", "10.1.0.5", WAN_MTU_SMALL + 1),
               "frag", P.NH4A_MAC),
        P.Case("v6_1400", P.sized_ip6("v6_1400", "2001:db8:a::5", 1400), "drop_mtu"),
        P.Case("v6_mtu", P.sized_ip6("v6_mtu", "2001:db8:a::5", WAN_MTU_SMALL), "fwd",
               P.NH6A_MAC),
    ]


def small_wan_run(tmp_path_factory, name, cases):
    """The cases through a dpsecd whose wan port has the small MTU."""
    run = Run(tmp_path_factory.mktemp(name), cases, wan_mtu=WAN_MTU_SMALL,
              neighbours=HOST_NEIGHBOURS)
    assert run.rc == 0, run.log
    return run


@pytest.fixture(scope="module")
def mtu_run(tmp_path_factory):
    return small_wan_run(tmp_path_factory, "mtu", mtu_cases())


def test_ipv4_without_df_larger_than_wan_mtu_leaves_as_fragments(mtu_run):
    """RFC 791: 1400 bytes leave as 1276 + 144 (IPv4 header 20 + 1256 = 157 * 8
    bytes of payload), 1281 bytes as 1276 + 25; no ICMP error for either."""
    frags = [f for f in mtu_run.wan_out if P.is_fragment(f)]
    assert [(len(f[IP]), f[IP].frag, bool(f[IP].flags.MF)) for f in frags] == \
        [(1276, 0, True), (144, 157, False), (1276, 0, True), (25, 157, False)]
    lan = mtu_run.stats["lan"]
    assert (lan["frag_out"], lan["frag_created"], lan["drop_frag"]) == (2, 4, 0)
    # IPv6 always gets an error; IPv4 without DF none
    assert [(f.haslayer(IPv6), f.haslayer(ICMPv6PacketTooBig)) for f in mtu_run.lan_out] == \
        [(True, True)]


def test_ipv6_packet_larger_than_wan_mtu_is_dropped_and_counted_drop_mtu(mtu_run):
    assert "v6_1400" not in [c.name for f, c in mtu_run.wan_data() if c]
    assert mtu_run.stats["lan"]["drop_mtu"] == 1
    assert mtu_run.stats["lan"]["fwd_ipv6"] == 1  # only the one exactly at the MTU


def test_packets_exactly_as_long_as_the_wan_mtu_are_forwarded(mtu_run):
    data = [(f, c) for f, c in mtu_run.wan_data() if not P.is_fragment(f)]
    assert [c.name for f, c in data] == ["v4_mtu", "v6_mtu"]
    for frame, case in data:
        assert bytes(frame)[P.ETH_LEN:] == P.expected_forwarded_ip(case.raw), case.name
        assert (frame[Ether].src, frame[Ether].dst) == (P.WAN_MAC, case.nh_mac)
    st = mtu_run.stats
    assert (st["lan"]["fwd_ipv4"], st["lan"]["fwd_ipv6"], st["wan"]["tx_packets"]) == (3, 1, 6)


# ---- path MTU: ICMP errors for packets that do not fit (RFC 1191, RFC 8201) -------------
#
# A plain router's duty, before any IPsec: an IPv4 packet with DF, or any IPv6 packet,
# larger than the egress MTU is dropped and its sender gets an ICMP "fragmentation
# needed" (type 3 code 4) / ICMPv6 "packet too big" (type 2) with the egress MTU, from
# the gateway's address on the port it came in on, quoting as much of it as RFC 1812
# 4.3.2.3 (576 bytes in all) / RFC 4443 2.4(c) (1280) allow. Never about an ICMP error.


def big4(name, size=1400, **kw):
    return P.to_lan(P.ip4("10.1.0.5", **kw) / UDP(sport=7000, dport=7001) / P.payload(name, size - 28))


def ptb_cases():
    return [
        P.Case("v4_df", big4("v4_df", flags="DF"), "drop_mtu"),
        P.Case("v4_nodf", big4("v4_nodf"), "frag", P.NH4A_MAC),
        P.Case("v6_big", P.sized_ip6("v6_big", "2001:db8:a::5", 1400), "drop_mtu"),
        P.Case("v4_df_fits", big4("v4_df_fits", WAN_MTU_SMALL, flags="DF"), "fwd", P.NH4A_MAC),
        # ICMP errors that do not fit: dropped, never answered with another error
        P.Case("v4_icmp_err", P.to_lan(P.ip4("10.1.0.5", flags="DF") / ICMP(type=3, code=1) /
                                        P.payload("v4_icmp_err", 1400 - 28)), "drop_mtu"),
        P.Case("v6_icmp_err", P.to_lan(P.ip6("2001:db8:a::5") / ICMPv6DestUnreach(code=3) /
                                        P.payload("v6_icmp_err", 1400 - 48)), "drop_mtu"),
    ]


def expected_frag_needed(case, mtu, src=P.LAN4):
    """Built by scapy: what the LAN host must receive for case (IPv4, DF)."""
    ip = case.raw[P.ETH_LEN:]
    return bytes(Ether(src=P.LAN_MAC, dst=P.HOST_MAC) /
                 IP(src=src, dst=P.HOST4, tos=0xc0, ttl=64, id=0, flags=0) /
                 ICMP(type=3, code=4, nexthopmtu=mtu) / Raw(ip[:576 - 28]))


def expected_too_big(case, mtu, src=P.LAN6):
    ip = case.raw[P.ETH_LEN:]
    return bytes(Ether(src=P.LAN_MAC, dst=P.HOST_MAC) / IPv6(src=src, dst=P.HOST6, hlim=64) /
                 ICMPv6PacketTooBig(mtu=mtu) / Raw(ip[:1280 - 48]))


@pytest.fixture(scope="module")
def ptb_run(tmp_path_factory):
    return small_wan_run(tmp_path_factory, "ptb", ptb_cases())


def test_ipv4_df_packet_too_big_gets_icmp_fragmentation_needed_with_the_egress_mtu(ptb_run):
    """Byte for byte: Ethernet to the host from the lan MAC, IPv4 from the lan
    address (TOS 0xc0, TTL 64, valid checksum, 576 bytes), ICMP 3/4 with MTU
    1280 and a valid checksum, quoting the first 548 bytes of the packet as sent."""
    case = next(c for c in ptb_run.cases if c.name == "v4_df")
    got = [bytes(f) for f in ptb_run.lan_out if f.haslayer(IP)]
    assert got == [expected_frag_needed(case, WAN_MTU_SMALL)]
    f = Ether(got[0])
    assert len(f[IP]) == 576 and f[ICMP].nexthopmtu == WAN_MTU_SMALL


def test_ipv6_packet_too_big_gets_icmpv6_packet_too_big_with_the_egress_mtu(ptb_run):
    case = next(c for c in ptb_run.cases if c.name == "v6_big")
    got = [bytes(f) for f in ptb_run.lan_out if f.haslayer(IPv6)]
    assert got == [expected_too_big(case, WAN_MTU_SMALL)]
    f = Ether(got[0])
    assert len(f[IPv6]) == 1280 and f[ICMPv6PacketTooBig].mtu == WAN_MTU_SMALL


def test_oversized_packets_themselves_do_not_leave(ptb_run):
    """Only the DF packet that fits goes out on wan whole, the one without DF
    as fragments and without an ICMP error; no error about an ICMP error."""
    assert [c.name for f, c in ptb_run.wan_data() if not P.is_fragment(f)] == ["v4_df_fits"]
    assert [c and c.name for f, c in ptb_run.wan_data() if P.is_fragment(f)] == ["v4_nodf", None]
    lan = ptb_run.stats["lan"]
    assert (lan["drop_mtu"], lan["icmp_ptb_sent"], lan["icmp_ratelimited"]) == (4, 2, 0)
    assert lan["tx_packets"] == len(ptb_run.lan_out) == 2
    assert ptb_run.stats["wan"]["icmp_ptb_sent"] == 0


@pytest.fixture(scope="module")
def ratelimit_run(tmp_path_factory):
    """Eight DF packets too big at once, one token per second and a bucket of 3."""
    cases = [P.Case(f"rl{i}", big4(f"rl{i}", flags="DF"), "drop_mtu") for i in range(8)]
    run = Run(tmp_path_factory.mktemp("ratelimit"), cases, wan_mtu=WAN_MTU_SMALL,
              neighbours=HOST_NEIGHBOURS, dataplane={"icmp_rate": 1, "icmp_burst": 3})
    assert run.rc == 0, run.log
    return run


def test_icmp_errors_are_rate_limited_by_the_token_bucket(ratelimit_run):
    """dataplane.icmp_rate / icmp_burst: the first three get an error (the full
    bucket), the other five only count icmp_ratelimited (the capture is read
    within the second that would refill one token)."""
    lan = ratelimit_run.stats["lan"]
    assert (lan["drop_mtu"], lan["icmp_ptb_sent"], lan["icmp_ratelimited"]) == (8, 3, 5)
    want = [expected_frag_needed(c, WAN_MTU_SMALL) for c in ratelimit_run.cases[:3]]
    assert [bytes(f) for f in ratelimit_run.lan_out] == want
    assert not ratelimit_run.wan_data()


# ---- known daemon bugs: these assert the correct behaviour -------------------------------


def corner_cases():
    return [
        # Once its TTL is decremented this header's checksum, computed from scratch, is
        # 0x0000: the one value an RFC 1141 style update (HC + 0x0100) gets wrong (0xffff).
        P.Case("cksum0", P.ip4_with_checksum_after_decrement("cksum0", "10.1.0.5", 0), "fwd",
               P.NH4A_MAC),
        # Unicast IP in link-layer broadcast / multicast frames (RFC 1812 5.3.4).
        P.Case("l2_bcast4", P.to_lan(P.ip4("10.1.0.5") / UDP() / P.payload("l2_bcast4"),
                                     dst=P.BCAST_MAC), "drop_l2_other"),
        P.Case("l2_mcast4", P.to_lan(P.ip4("10.1.0.5") / UDP() / P.payload("l2_mcast4"),
                                     dst="01:00:5e:00:00:01"), "drop_l2_other"),
        P.Case("l2_mcast6", P.to_lan(P.ip6("2001:db8:a::5") / UDP() / P.payload("l2_mcast6"),
                                     dst="33:33:00:00:00:01"), "drop_l2_other"),
    ]


@pytest.fixture(scope="module")
def corner_run(tmp_path_factory):
    return Run(tmp_path_factory.mktemp("corner"), corner_cases())


def sent(run, name):
    return [f for f, c in run.wan_data() if c is not None and c.name == name]


def test_corner_run_receives_every_frame_and_exits_0(corner_run):
    """The corner-case tests below are only meaningful if this run completed."""
    assert corner_run.rc == 0, corner_run.log
    assert corner_run.stats["lan"]["rx_packets"] == len(corner_run.cases)
    assert all(c is not None for f, c in corner_run.wan_data())
    assert len(sent(corner_run, "cksum0")) == 1


def test_ttl_decrement_yields_checksum_0x0000_not_negative_zero_0xffff(corner_run):
    frame, = sent(corner_run, "cksum0")
    assert frame[IP].chksum == P.scapy_recomputed_ipv4_checksum(P.ip_bytes(frame)) == 0


def test_unicast_ip_in_link_layer_broadcast_or_multicast_is_not_forwarded(corner_run):
    assert [n for n in ("l2_bcast4", "l2_mcast4", "l2_mcast6") if sent(corner_run, n)] == []
    lan = corner_run.stats["lan"]
    assert (lan["fwd_ipv4"], lan["fwd_ipv6"], lan["drop_l2_other"]) == (1, 0, 3)


# ---- fragmentation: IPv4 without DF larger than the egress MTU (RFC 791 2.3) -------------


def frag_cases():
    return [
        P.Case("frag3000", big4("frag3000", 3000), "frag", P.NH4A_MAC),
        P.Case("frag3000_df", big4("frag3000_df", 3000, flags="DF"), "drop_mtu"),
        P.Case("frag_after", big4("frag_after", 100), "fwd", P.NH4A_MAC),
    ]


@pytest.fixture(scope="module")
def frag_run(tmp_path_factory):
    run = Run(tmp_path_factory.mktemp("frag"), frag_cases(), neighbours=HOST_NEIGHBOURS)
    assert run.rc == 0, run.log
    return run


def test_ipv4_without_df_leaves_as_fragments_that_reassemble_to_the_forwarded_packet(frag_run):
    """3000 bytes through the 1500-byte wan: three fragments of 1500, 1500 and 40
    bytes (1480 = 185 * 8 bytes of payload each), same id, from the wan MAC to the
    next hop, each with a valid header checksum; scapy's defragment() gives back
    the packet as a router forwards it (TTL - 1)."""
    case = frag_run.cases[0]
    frags = [f for f in frag_run.wan_out if P.is_fragment(f)]
    assert [(len(f[IP]), f[IP].frag, bool(f[IP].flags.MF), bool(f[IP].flags.DF)) for f in frags] \
        == [(1500, 0, True, False), (1500, 185, True, False), (40, 370, False, False)]
    for f in frags:
        assert (f[Ether].src, f[Ether].dst) == (P.WAN_MAC, P.NH4A_MAC)
        assert len(f) == P.ETH_LEN + len(f[IP])
        ip = P.ip_bytes(f)
        assert f[IP].chksum == P.ipv4_checksum(ip[:20])
        assert f[IP].id == IP(P.ip_bytes(case.raw)).id
    whole, = defragment([IP(P.ip_bytes(f)) for f in frags])
    want = P.expected_forwarded_ip(case.raw)
    got = bytes(whole)
    assert got[:10] + got[12:] == want[:10] + want[12:]


def test_ipv4_with_df_too_big_still_gets_icmp_and_counts_drop_mtu(frag_run):
    case = frag_run.cases[1]
    assert [bytes(f) for f in frag_run.lan_out] == [expected_frag_needed(case, 1500)]
    assert not [c for f, c in frag_run.wan_data() if c is case]


def test_fragmentation_counters_are_exact(frag_run):
    lan, wan = frag_run.stats["lan"], frag_run.stats["wan"]
    assert {k: lan[k] for k in ("fwd_ipv4", "frag_out", "frag_created", "drop_frag", "drop_mtu",
                                "icmp_ptb_sent", "tx_packets")} == \
        {"fwd_ipv4": 2, "frag_out": 1, "frag_created": 3, "drop_frag": 0, "drop_mtu": 1,
         "icmp_ptb_sent": 1, "tx_packets": 1}
    assert wan["tx_packets"] == len(frag_run.wan_out) == 4
    # the packet after the big one is not held up or reordered behind its fragments
    assert [c and c.name for f, c in frag_run.wan_data()] == \
        ["frag3000", None, None, "frag_after"]
