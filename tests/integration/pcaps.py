"""Packet building and checking helpers for the net_pcap tests (test_pcap.py).

Frames are built with scapy. Every frame carries a unique marker "<name>" in its
payload, so an output frame can be traced back to the input frame it came from.
"""
import socket
import struct
from dataclasses import dataclass, field

from scapy.all import (ARP, ICMP, IP, TCP, UDP, Dot1Q, Ether, ICMPv6EchoRequest, ICMPv6ND_NS,
                       ICMPv6NDOptSrcLLAddr, IPOption, IPv6, IPv6ExtHdrDestOpt,
                       IPv6ExtHdrFragment, in6_getnsma,
                       in6_getnsmac, rdpcap)

# net_pcap cannot change a port's MAC (rte_eth_dev_default_mac_addr_set returns
# -ENOTSUP, and dpsecd refuses to start when `mac:` is set), so the ports keep the
# driver's default: 02:'p':'c':'a':'p':<n> where n counts the pcap ports the
# process probed. dpsecd probes its ports in configuration order: lan first.
LAN_MAC = "02:70:63:61:70:00"
WAN_MAC = "02:70:63:61:70:01"

OTHER_MAC = "02:00:00:00:00:77"  # some other station on the lan segment
HOST_MAC = "02:00:00:00:10:0a"   # the lan host that sends everything
BCAST_MAC = "ff:ff:ff:ff:ff:ff"

LAN4, LAN6 = "192.0.2.1", "2001:db8:1::1"
WAN4, WAN6 = "198.51.100.1", "2001:db8:2::1"
HOST4, HOST6 = "192.0.2.10", "2001:db8:1::10"

# Next hops on wan with static neighbour entries.
NH4A, NH4A_MAC = "198.51.100.2", "02:00:5e:00:04:02"
NH4B, NH4B_MAC = "198.51.100.3", "02:00:5e:00:04:03"
NH4C, NH4C_MAC = "203.0.113.5", "02:00:5e:00:04:05"  # on an on-link route (no via)
NH6A, NH6A_MAC = "2001:db8:2::2", "02:00:5e:00:06:02"
NH6B, NH6B_MAC = "2001:db8:2::3", "02:00:5e:00:06:03"
# Next hops on wan without a neighbour entry: nothing ever answers for them.
NH4X, NH6X = "198.51.100.9", "2001:db8:2::9"

ROUTES = [
    {"prefix": "10.1.0.0/16", "via": NH4A, "port": "wan"},
    {"prefix": "10.2.0.0/16", "via": NH4B, "port": "wan"},
    {"prefix": "203.0.113.0/24", "port": "wan"},
    {"prefix": "10.9.0.0/16", "via": NH4X, "port": "wan"},
    {"prefix": "2001:db8:a::/48", "via": NH6A, "port": "wan"},
    {"prefix": "2001:db8:b::/48", "via": NH6B, "port": "wan"},
    {"prefix": "2001:db8:f::/48", "via": NH6X, "port": "wan"},
]
NEIGHBOURS = [
    {"address": NH4A, "mac": NH4A_MAC, "port": "wan"},
    {"address": NH4B, "mac": NH4B_MAC, "port": "wan"},
    {"address": NH4C, "mac": NH4C_MAC, "port": "wan"},
    {"address": NH6A, "mac": NH6A_MAC, "port": "wan"},
    {"address": NH6B, "mac": NH6B_MAC, "port": "wan"},
]

ETH_LEN = 14
ETH_ARP, ETH_IPV4, ETH_IPV6 = 0x0806, 0x0800, 0x86DD


def marker(name):
    return f"<{name}>".encode()


def payload(name, size=24):
    """A recognisable payload of at least `size` bytes."""
    m = marker(name)
    return m + bytes((i * 7 + 3) & 0xFF for i in range(max(0, size - len(m))))


def to_lan(l3, dst=LAN_MAC):
    return Ether(src=HOST_MAC, dst=dst) / l3


def ip4(dst, ttl=64, **kw):
    return IP(src=HOST4, dst=dst, ttl=ttl, **kw)


def ip6(dst, hlim=64, **kw):
    return IPv6(src=HOST6, dst=dst, hlim=hlim, **kw)


def sized_ip4(name, dst, total_len):
    """A UDP datagram whose IPv4 total length is exactly total_len."""
    return to_lan(ip4(dst) / UDP(sport=7000, dport=7001) / payload(name, total_len - 28))


def sized_ip6(name, dst, total_len):
    """A UDP datagram whose IPv6 packet (header included) is exactly total_len bytes."""
    return to_lan(ip6(dst) / UDP(sport=7000, dport=7001) / payload(name, total_len - 48))


def with_ipv4_checksum(frame, value):
    """The frame with its IPv4 header checksum forced to value."""
    raw = bytearray(bytes(frame))
    raw[ETH_LEN + 10:ETH_LEN + 12] = struct.pack("!H", value)
    return Ether(bytes(raw))


def ipv4_checksum(hdr):
    """Internet checksum of an IPv4 header as computed from scratch (RFC 791)."""
    hdr = bytearray(hdr)
    hdr[10:12] = b"\0\0"
    s = sum(struct.unpack(f"!{len(hdr) // 2}H", bytes(hdr)))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def ip4_with_checksum_after_decrement(name, dst, want):
    """A UDP frame to dst whose header checksum, once its TTL is decremented,
    recomputes to `want`: the IP id is chosen to make it so."""
    frame = to_lan(ip4(dst, id=0) / UDP(sport=7000, dport=7001) / payload(name))
    hdr = bytearray(ip_bytes(frame)[:20])
    hdr[8] -= 1
    for ident in range(0x10000):
        hdr[4:6] = struct.pack("!H", ident)
        if ipv4_checksum(hdr) == want:
            return to_lan(ip4(dst, id=ident) / UDP(sport=7000, dport=7001) / payload(name))
    raise AssertionError(f"no IP id gives checksum {want:#06x}")


@dataclass
class Case:
    """One input frame and what dpsecd must do with it.

    fate: "fwd" (leaves wan with nh_mac as destination), "to_us" (ARP/ND for the
    gateway: answered on lan), "unresolved" (held for ARP/ND, then dropped) or the
    name of the drop counter it must increment on lan.
    """
    name: str
    frame: object  # a scapy packet or raw bytes
    fate: str
    nh_mac: str = None
    raw: bytes = field(init=False)
    family: int = field(init=False)  # 4, 6, or 0 for anything but IP

    def __post_init__(self):
        self.raw = bytes(self.frame)
        ethertype = self.raw[12:14]
        self.family = {b"\x08\x00": 4, b"\x86\xdd": 6}.get(ethertype, 0)


def ip_bytes(frame):
    """The IP packet in an Ethernet frame, without Ethernet padding."""
    raw = bytes(frame)
    ethertype = struct.unpack("!H", raw[12:14])[0]
    if ethertype == ETH_IPV4:
        total = struct.unpack("!H", raw[ETH_LEN + 2:ETH_LEN + 4])[0]
    elif ethertype == ETH_IPV6:
        total = 40 + struct.unpack("!H", raw[ETH_LEN + 4:ETH_LEN + 6])[0]
    else:
        raise ValueError(f"ethertype {ethertype:#06x} is not IP")
    return raw[ETH_LEN:ETH_LEN + total]


def expected_forwarded_ip(frame):
    """What a router must emit for this input: TTL (hop limit) minus one, the IPv4
    checksum recomputed from scratch, every other byte unchanged."""
    ip = bytearray(ip_bytes(frame))
    if ip[0] >> 4 == 4:
        ip[8] -= 1
        ihl = (ip[0] & 0xF) * 4
        ip[10:12] = struct.pack("!H", ipv4_checksum(ip[:ihl]))
    else:
        ip[7] -= 1
    return bytes(ip)


def scapy_recomputed_ipv4_checksum(ip_raw):
    """Scapy's own answer: parse, delete chksum, rebuild."""
    p = IP(ip_raw)
    del p.chksum
    return IP(bytes(p)).chksum


def solicited_node(addr):
    """(IPv6 solicited-node multicast address, its Ethernet MAC) for addr."""
    nsma = in6_getnsma(socket.inet_pton(socket.AF_INET6, addr))
    return socket.inet_ntop(socket.AF_INET6, nsma), in6_getnsmac(nsma)


def arp_request_for_lan():
    return Ether(src=HOST_MAC, dst=BCAST_MAC) / ARP(
        op="who-has", hwsrc=HOST_MAC, psrc=HOST4, hwdst="00:00:00:00:00:00", pdst=LAN4)


def ns_for_lan():
    snma, snmac = solicited_node(LAN6)
    return Ether(src=HOST_MAC, dst=snmac) / IPv6(src=HOST6, dst=snma, hlim=255) / \
        ICMPv6ND_NS(tgt=LAN6) / ICMPv6NDOptSrcLLAddr(lladdr=HOST_MAC)


def forwarding_cases():
    """The main scenario: routable IPv4/IPv6 TCP/UDP/ICMP interleaved with every kind
    of packet the gateway must not forward."""
    c = []

    def fwd(name, frame, nh_mac):
        c.append(Case(name, frame, "fwd", nh_mac))

    def drop(name, frame, counter):
        c.append(Case(name, frame, counter))

    fwd("udp4", to_lan(ip4("10.1.0.5") / UDP(sport=1234, dport=5678) / payload("udp4")),
        NH4A_MAC)
    fwd("udp6", to_lan(ip6("2001:db8:a::5") / UDP(sport=1234, dport=5678) / payload("udp6")),
        NH6A_MAC)
    drop("no_route4", to_lan(ip4("172.16.0.1") / UDP() / payload("no_route4")),
         "drop_no_route")
    fwd("tcp4_ttl2", to_lan(ip4("10.2.3.4", ttl=2) /
                            TCP(sport=40000, dport=443, flags="PA", seq=1000, ack=2000) /
                            payload("tcp4_ttl2", 100)), NH4B_MAC)
    drop("ttl1_4", to_lan(ip4("10.1.0.5", ttl=1) / UDP() / payload("ttl1_4")),
         "drop_ttl_expired")
    fwd("tcp6_hlim2", to_lan(ip6("2001:db8:b::7", hlim=2) /
                             TCP(sport=40001, dport=443, flags="S", seq=7) /
                             payload("tcp6_hlim2", 100)), NH6B_MAC)
    drop("hlim1_6", to_lan(ip6("2001:db8:a::5", hlim=1) / UDP() / payload("hlim1_6")),
         "drop_ttl_expired")
    fwd("icmp4", to_lan(ip4("10.1.200.1", ttl=255) / ICMP(type=8, id=77, seq=1) /
                        payload("icmp4", 56)), NH4A_MAC)
    drop("bad_cksum4", with_ipv4_checksum(
        to_lan(ip4("10.1.0.5") / UDP() / payload("bad_cksum4")), 0x1234), "drop_bad_cksum")
    fwd("icmp6", to_lan(ip6("2001:db8:a:1::1", hlim=255) / ICMPv6EchoRequest(id=77, seq=1) /
                        payload("icmp6", 56)), NH6A_MAC)
    drop("ttl0_4", to_lan(ip4("10.1.0.5", ttl=0) / UDP() / payload("ttl0_4")),
         "drop_ttl_expired")
    drop("hlim0_6", to_lan(ip6("2001:db8:a::5", hlim=0) / UDP() / payload("hlim0_6")),
         "drop_ttl_expired")
    # Only 14 + 12 bytes: the IPv4 header is cut short.
    drop("trunc4", bytes(to_lan(ip4("10.1.0.5") / UDP() / payload("trunc4")))[:26],
         "drop_malformed")
    # total_length claims 200 bytes, the frame holds far fewer.
    drop("biglen4", to_lan(ip4("10.1.0.5", len=200) / UDP() / payload("biglen4")),
         "drop_malformed")
    drop("ihl4", to_lan(ip4("10.1.0.5", ihl=4) / UDP() / payload("ihl4")), "drop_malformed")
    drop("trunc6", bytes(to_lan(ip6("2001:db8:a::5") / UDP() / payload("trunc6")))[:44],
         "drop_malformed")
    drop("biglen6", to_lan(ip6("2001:db8:a::5", plen=500) / UDP() / payload("biglen6")),
         "drop_malformed")
    drop("runt", bytes(Ether(src=HOST_MAC, dst=LAN_MAC))[:10], "drop_malformed")
    # IPv4 options make the header 24 bytes: checksum and TTL still handled right.
    fwd("opts4", to_lan(ip4("10.1.0.6", options=[IPOption(b"\x01\x01\x01\x00")]) /
                        UDP(sport=1, dport=2) / payload("opts4")), NH4A_MAC)
    drop("other_mac", to_lan(ip4("10.1.0.5") / UDP() / payload("other_mac"), dst=OTHER_MAC),
         "drop_l2_other")
    drop("wan_mac", to_lan(ip4("10.1.0.5") / UDP() / payload("wan_mac"), dst=WAN_MAC),
         "drop_l2_other")
    drop("ethertype", Ether(src=HOST_MAC, dst=LAN_MAC, type=0x88B5) / payload("ethertype", 46),
         "drop_l2_other")  # IEEE local experimental ethertype
    drop("vlan", Ether(src=HOST_MAC, dst=LAN_MAC) / Dot1Q(vlan=10) / ip4("10.1.0.5") / UDP() /
         payload("vlan"), "drop_l2_other")
    fwd("ext6", to_lan(ip6("2001:db8:b::8") / IPv6ExtHdrDestOpt() / UDP(sport=3, dport=4) /
                       payload("ext6")), NH6B_MAC)
    # Smaller than the Ethernet minimum: padded on the wire, the padding is not IP.
    fwd("padded4", bytes(to_lan(ip4("10.2.0.9") / UDP(sport=5, dport=6) /
                                payload("padded4", 8))).ljust(60, b"\0"), NH4B_MAC)
    drop("no_route6", to_lan(ip6("2001:db8:dead::1") / UDP() / payload("no_route6")),
         "drop_no_route")
    # Next hop = the destination: the wan's connected prefix and an on-link route.
    fwd("onlink4", to_lan(ip4(NH4A) / UDP(sport=8, dport=9) / payload("onlink4")), NH4A_MAC)
    fwd("onlink_route4", to_lan(ip4(NH4C) / UDP(sport=8, dport=9) / payload("onlink_route4")),
        NH4C_MAC)
    fwd("onlink6", to_lan(ip6(NH6B) / UDP(sport=8, dport=9) / payload("onlink6")), NH6B_MAC)
    # For the gateway itself, but the ports have no exception TAP.
    drop("local4", to_lan(ip4(LAN4) / UDP() / payload("local4")), "drop_no_exception")
    drop("local6", to_lan(ip6(LAN6) / UDP() / payload("local6")), "drop_no_exception")
    drop("local4_wan", to_lan(ip4(WAN4) / UDP() / payload("local4_wan")), "drop_no_exception")
    # Next hops nobody answers for.
    c.append(Case("unres4", to_lan(ip4("10.9.0.1") / UDP(sport=11, dport=12) /
                                   payload("unres4")), "unresolved"))
    c.append(Case("unres6", to_lan(ip6("2001:db8:f::1") / UDP(sport=11, dport=12) /
                                   payload("unres6")), "unresolved"))
    # ARP and ND for the gateway's own lan addresses.
    c.append(Case("arp_to_us", arp_request_for_lan(), "to_us"))
    c.append(Case("ns_to_us", ns_for_lan(), "to_us"))
    fwd("udp4_last", to_lan(ip4("10.1.255.254", ttl=3) / UDP(sport=65535, dport=1) /
                            payload("udp4_last", 200)), NH4A_MAC)
    fwd("udp6_last", to_lan(ip6("2001:db8:a:ffff::1", hlim=3) / UDP(sport=65535, dport=1) /
                            payload("udp6_last", 200)), NH6A_MAC)
    names = [x.name for x in c]
    assert len(names) == len(set(names)), "case names must be unique"
    return c


def write_pcap(path, frames):
    """A classic little-endian pcap of Ethernet frames (an empty list is a valid,
    empty capture), one frame per microsecond."""
    with open(path, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        for i, frame in enumerate(frames):
            raw = bytes(frame)
            f.write(struct.pack("<IIII", 1700000000, i, len(raw), len(raw)) + raw)


def read_pcap(path):
    """Ethernet frames, each with the capture's timestamp in .time."""
    frames = []
    for p in rdpcap(str(path)):
        f = Ether(bytes(p))
        f.time = p.time
        frames.append(f)
    return frames


def find_case(frame, cases):
    """The case whose marker the frame carries, or None."""
    raw = bytes(frame)
    hits = [c for c in cases if marker(c.name) in raw]
    assert len(hits) <= 1, f"frame carries several markers: {[c.name for c in hits]}"
    return hits[0] if hits else None


def is_arp(frame):
    return frame[Ether].type == ETH_ARP


def is_ns(frame):
    return ICMPv6ND_NS in frame


def is_fragment(frame):
    """An IPv4 fragment (MF or an offset) or an IPv6 packet with a Fragment header."""
    if IP in frame:
        return bool(frame[IP].flags.MF) or frame[IP].frag != 0
    return IPv6ExtHdrFragment in frame



