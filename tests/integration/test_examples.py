"""Every config/examples/*.yaml run with traffic through its tunnel.

Each example is used as shipped except its `ports` section: the same port
names, roles and addresses on net_pcap devices instead of the PCI addresses
of the example (without exception TAPs, except where the example's traffic is
the gateway's own). The SAs, policies, routes and ipsec defaults are the
example's. What crosses is built from the example itself: the outbound
protect policy's networks and its SA pair (found by reqid) and their keys.

* tunnel examples (net_pcap files): the LAN host's packet leaves on wan as
  ESP (or ESP in UDP) of the outbound SA with sequence number 1 that our ESP
  (test_esp_pcap's, independent of dpsecd) decrypts to the forwarded
  packet; an ESP packet we make with the inbound SA's keys is decrypted and
  forwarded to the LAN host. Neighbours are learnt as on a real link: an
  ARP reply / neighbour advertisement from the next hop and the LAN host
  leads each input file.
* the AH transport example (ah-transport.yaml) does the same with transport
  AH, checked and built by scapy's own AH code.
* the ESP transport example protects the gateway's own GRE (protocol 47) to its
  peer: the wan port reads a veth live and has its exception TAP, the
  gateway's kernel sends a GRE packet that leaves as transport ESP, and a
  transport ESP packet carrying GRE reaches the kernel decrypted.
"""
import glob
import ipaddress
import os
import struct
import zlib

import pytest
import yaml
from scapy.all import (ARP, IP, UDP, Ether, ICMPv6ND_NA, ICMPv6NDOptDstLLAddr, IPv6, Raw)
from scapy.compat import raw
from scapy.layers.ipsec import AH, SecurityAssociation

import test_esp_pcap as P

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EXAMPLES = sorted(glob.glob(os.path.join(ROOT, "config", "examples", "*.yaml")))


def load(path):
    with open(path) as f:
        return yaml.safe_load(f)


def keymat(s):
    s = str(s)
    return bytes.fromhex((s[2:] if s.startswith("0x") else s).replace(":", ""))


def esp_sa(sa):
    integ = sa.get("integrity")
    return P.EspSA(sa["spi"], sa["encryption"]["algorithm"], keymat(sa["encryption"]["key"]),
                   integ["algorithm"] if integ else None, keymat(integ["key"]) if integ else b"",
                   sa.get("esn", False))


def sa_pair(ex):
    """(out policy, out SA, in SA) of the example's protected traffic."""
    pol = next(p for p in ex["policies"] if p["direction"] == "out" and p["action"] == "protect")
    reqid = pol["ipsec"][0]["reqid"]
    out = next(s for s in ex["sas"] if s["direction"] == "out" and s["reqid"] == reqid)
    inb = next(s for s in ex["sas"] if s["direction"] == "in" and s["reqid"] == reqid)
    return pol, out, inb


def host(net, n):
    return str(ipaddress.ip_network(net, strict=False).network_address + n)


def port(ex, name):
    return next(p for p in ex["ports"] if p["name"] == name)


def port_addr(ex, name, fam):
    for a in port(ex, name)["addresses"]:
        if (":" in a) == (fam == 6):
            return a.split("/")[0]
    return None


def l3(fam, **kw):
    return IP(**kw) if fam == 4 else IPv6(**{{"ttl": "hlim", "proto": "nh"}.get(k, k): v for k, v in kw.items()})


def i_am_here(fam, addr, mac, to_addr, to_mac):
    """What a neighbour sends that makes dpsecd learn it: an ARP reply or an NA."""
    if fam == 4:
        return raw(Ether(src=mac, dst=to_mac) / ARP(op=2, hwsrc=mac, psrc=addr, hwdst=to_mac, pdst=to_addr))
    return raw(Ether(src=mac, dst=to_mac) / IPv6(src=addr, dst=to_addr, hlim=255)
               / ICMPv6ND_NA(tgt=addr, R=0, S=1, O=1) / ICMPv6NDOptDstLLAddr(lladdr=mac))


def pcap_config(ex, workdir):
    """Example @ex on net_pcap ports: lan and wan read WORKDIR/{LAN,WAN}_IN.pcap and write
    WORKDIR/{LAN,WAN}_OUT.pcap, no exception TAPs."""
    cfg = dict(ex)
    cfg["ports"] = [dict(port(ex, "lan"), exception=False,
                         device=f"net_pcap0,rx_pcap={workdir}/LAN_IN.pcap,tx_pcap={workdir}/LAN_OUT.pcap"),
                    dict(port(ex, "wan"), exception=False,
                         device=f"net_pcap1,rx_pcap={workdir}/WAN_IN.pcap,tx_pcap={workdir}/WAN_OUT.pcap")]
    return cfg


def compressible_pair(lan_host, remote, tag):
    """The LAN host's IPv4/UDP packet to @remote and @remote's answer, both with a
    payload that DEFLATE shrinks."""
    text = tag + b"the same words again and again " * 30
    return (raw(IP(src=lan_host, dst=remote, ttl=64) / UDP(sport=1234, dport=5678) / Raw(text)),
            raw(IP(src=remote, dst=lan_host, ttl=64) / UDP(sport=5678, dport=1234) / Raw(text)))


def esp_l4(sa, esp):
    """The ESP packet as sent to the gateway: in UDP when the SA says so."""
    enc = sa.get("encap")
    if enc:
        return UDP(sport=enc.get("sport", 4500), dport=enc.get("dport", 4500), chksum=0) / Raw(esp)
    return Raw(esp)


class TunnelExample(P.PcapRun):
    def __init__(self, workdir, path):
        ex = load(path)
        self.ex = ex
        pol, self.out, self.inb = sa_pair(ex)
        self.sa_out, self.sa_in = esp_sa(self.out), esp_sa(self.inb)
        fam = 6 if ":" in pol["src"] else 4
        self.fam = fam
        outer = 6 if ":" in self.out["dst"] else 4
        lan_addr, wan_addr = port_addr(ex, "lan", fam), port_addr(ex, "wan", outer)
        self.host, self.remote = host(pol["src"], 5), host(pol["dst"], 7)
        nh = next(r["via"] for r in ex["routes"] if "via" in r and (":" in r["via"]) == (outer == 6))
        cfg = pcap_config(ex, workdir)
        self.out_inner = raw(l3(fam, src=self.host, dst=self.remote, ttl=64) / UDP(sport=1234, dport=5678)
                             / Raw(b"example/out/" + os.path.basename(path).encode()))
        self.in_inner = raw(l3(fam, src=self.remote, dst=self.host, ttl=64) / UDP(sport=5678, dport=1234)
                            / Raw(b"example/in/" + os.path.basename(path).encode()))
        esp = self.sa_in.encrypt(1, self.in_inner, 4 if fam == 4 else 41)
        l4 = esp_l4(self.inb, esp)
        proto = 17 if self.inb.get("encap") else 50
        wan_in = [i_am_here(outer, nh, P.PEER_MAC, wan_addr, P.WAN_MAC),
                  P.frame_to_gw(l3(outer, src=self.inb["src"], dst=self.inb["dst"], ttl=64, proto=proto) / l4)]
        lan_in = [i_am_here(fam, self.host, P.HOST_MAC, lan_addr, P.LAN_MAC),
                  P.frame_from_host(IP(self.out_inner) if fam == 4 else IPv6(self.out_inner))]
        super().__init__(workdir, cfg, lan_in, wan_in)


@pytest.fixture(scope="module")
def tunnel_runs(tmp_path_factory):
    cache = {}

    def get(path):
        if path not in cache:
            cache[path] = TunnelExample(tmp_path_factory.mktemp(os.path.basename(path)[:-5]), path)
        return cache[path]
    return get


def is_transport(path):
    return load(path)["sas"][0].get("mode") == "transport"


def is_bundle(path):
    return any(len(p.get("ipsec", [])) > 1 for p in load(path)["policies"])


def is_ipcomp(path):
    return load(path)["sas"][0].get("proto") == "ipcomp" and not is_bundle(path)


TUNNEL_EXAMPLES = [pytest.param(p, id=os.path.basename(p)) for p in EXAMPLES
                   if not is_transport(p) and not is_ipcomp(p) and not is_bundle(p)]
IPCOMP_EXAMPLES = [pytest.param(p, id=os.path.basename(p)) for p in EXAMPLES if is_ipcomp(p)]
BUNDLE_EXAMPLES = [pytest.param(p, id=os.path.basename(p)) for p in EXAMPLES if is_bundle(p)]
TRANSPORT_EXAMPLES = [pytest.param(p, id=os.path.basename(p)) for p in EXAMPLES
                      if is_transport(p) and not is_bundle(p)]


def test_there_are_examples_of_both_kinds():
    assert len(TUNNEL_EXAMPLES) >= 3 and len(TRANSPORT_EXAMPLES) >= 1 and len(IPCOMP_EXAMPLES) >= 1
    assert len(BUNDLE_EXAMPLES) >= 1


@pytest.mark.parametrize("path", TUNNEL_EXAMPLES)
def test_tunnel_example_protects_the_lan_hosts_packet(tunnel_runs, path):
    r = tunnel_runs(path)
    assert r.error is None and r.rc == 0, r.error or r.log
    esp = r.esp_out(r.out["spi"])
    assert len(esp) == 1, f"{len(esp)} ESP packets of SA {r.out['spi']:#x}; wan: {len(r.wan_out)} frames"
    _, outer, body, encap = esp[0]
    assert outer.src == r.out["src"] and outer.dst == r.out["dst"]
    assert encap == bool(r.out.get("encap"))
    plain = r.sa_out.decrypt(body)
    assert plain.seq == 1 and plain.payload == P.forwarded(r.out_inner)


@pytest.mark.parametrize("path", TUNNEL_EXAMPLES)
def test_tunnel_example_decrypts_the_peers_packet_for_the_lan_host(tunnel_runs, path):
    r = tunnel_runs(path)
    want = raw(Ether(src=P.LAN_MAC, dst=P.HOST_MAC, type=0x800 if r.fam == 4 else 0x86dd)) + \
        P.forwarded(r.in_inner)
    assert r.lan_out.count(want) == 1, [Ether(f).summary() for f in r.lan_out]
    sa = r.sa(r.inb["spi"])
    assert sa["packets"] == 1 and sa["drop_auth"] == 0


# ---- IPComp: compressed both ways, checked with Python's zlib --------------------------------


class IpcompExample(P.PcapRun):
    """The LAN host's compressible packet leaves on wan as IPComp of the outbound SA
    that zlib inflates to the forwarded packet; a raw DEFLATE stream zlib made of
    a packet from site B, in IPComp of the inbound SA, reaches the LAN host."""

    def __init__(self, workdir, path):
        ex = load(path)
        pol, self.out, self.inb = sa_pair(ex)
        lan_addr, wan_addr = port_addr(ex, "lan", 4), port_addr(ex, "wan", 4)
        self.host, self.remote = host(pol["src"], 5), host(pol["dst"], 7)
        nh = next(r["via"] for r in ex["routes"] if "via" in r)
        cfg = pcap_config(ex, workdir)
        self.out_inner, self.in_inner = compressible_pair(self.host, self.remote, b"example/ipcomp/")
        c = zlib.compressobj(6, zlib.DEFLATED, -15)
        body = struct.pack("!BBH", 4, 0, self.inb["spi"]) + c.compress(self.in_inner) + c.flush()
        wan_in = [i_am_here(4, nh, P.PEER_MAC, wan_addr, P.WAN_MAC),
                  P.frame_to_gw(IP(src=self.inb["src"], dst=self.inb["dst"], ttl=64, proto=108) / Raw(body))]
        lan_in = [i_am_here(4, self.host, P.HOST_MAC, lan_addr, P.LAN_MAC),
                  P.frame_from_host(IP(self.out_inner))]
        super().__init__(workdir, cfg, lan_in, wan_in)


@pytest.mark.parametrize("path", IPCOMP_EXAMPLES)
def test_ipcomp_example_compresses_and_decompresses(tmp_path, path):
    r = IpcompExample(tmp_path, path)
    assert r.error is None and r.rc == 0, r.error or r.log
    out = [Ether(f)[IP] for f in r.wan_out if IP in Ether(f) and Ether(f)[IP].proto == 108]
    assert len(out) == 1, [Ether(f).summary() for f in r.wan_out]
    assert out[0].src == r.out["src"] and out[0].dst == r.out["dst"]
    body = raw(out[0].payload)
    assert struct.unpack("!BBH", body[:4]) == (4, 0, r.out["spi"])
    assert zlib.decompress(body[4:], wbits=-15) == P.forwarded(r.out_inner)
    want = raw(Ether(src=P.LAN_MAC, dst=P.HOST_MAC, type=0x800)) + P.forwarded(r.in_inner)
    assert r.lan_out.count(want) == 1, [Ether(f).summary() for f in r.lan_out]
    assert r.sa(r.inb["spi"])["packets"] == 1 and r.sa(r.out["spi"])["packets"] == 1


# ---- an SA bundle: IPComp then ESP, undone by our ESP and zlib --------------------------------


class BundleExample(P.PcapRun):
    """[ipcomp, esp] in tunnel mode: the LAN host's compressible packet leaves as
    ESP (transport over the IPComp tunnel's outer header) that our ESP
    decrypts to IPComp, which zlib inflates to the forwarded packet; the peer's
    packet, compressed by zlib and encrypted by our ESP, reaches the LAN host."""

    def __init__(self, workdir, path):
        ex = load(path)
        pol = next(p for p in ex["policies"] if p["direction"] == "out" and p["action"] == "protect")
        reqid = pol["ipsec"][0]["reqid"]

        def sa(d, proto):
            return next(s for s in ex["sas"] if s["direction"] == d and s["reqid"] == reqid
                        and s.get("proto", "esp") == proto)
        self.comp_out, self.comp_in = sa("out", "ipcomp"), sa("in", "ipcomp")
        self.esp_o, self.esp_i = sa("out", "esp"), sa("in", "esp")
        self.sa_out, self.sa_in = esp_sa(self.esp_o), esp_sa(self.esp_i)
        lan_addr, wan_addr = port_addr(ex, "lan", 4), port_addr(ex, "wan", 4)
        self.host, self.remote = host(pol["src"], 5), host(pol["dst"], 7)
        nh = next(r["via"] for r in ex["routes"] if "via" in r)
        cfg = pcap_config(ex, workdir)
        self.out_inner, self.in_inner = compressible_pair(self.host, self.remote, b"example/bundle/")
        c = zlib.compressobj(6, zlib.DEFLATED, -15)
        comp = struct.pack("!BBH", 4, 0, self.comp_in["spi"]) + c.compress(self.in_inner) + c.flush()
        esp = self.sa_in.encrypt(1, comp, 108)
        wan_in = [i_am_here(4, nh, P.PEER_MAC, wan_addr, P.WAN_MAC),
                  P.frame_to_gw(IP(src=self.esp_i["src"], dst=self.esp_i["dst"], ttl=64, proto=50) / Raw(esp))]
        lan_in = [i_am_here(4, self.host, P.HOST_MAC, lan_addr, P.LAN_MAC),
                  P.frame_from_host(IP(self.out_inner))]
        super().__init__(workdir, cfg, lan_in, wan_in)


@pytest.mark.parametrize("path", BUNDLE_EXAMPLES)
def test_bundle_example_compresses_encrypts_and_back(tmp_path, path):
    r = BundleExample(tmp_path, path)
    assert r.error is None and r.rc == 0, r.error or r.log
    esp = r.esp_out(r.esp_o["spi"])
    ip_out = [f for f in r.wan_out if IP in Ether(f)]   # besides the ARP request for the next hop
    assert len(esp) == 1 and len(ip_out) == 1, [Ether(f).summary() for f in r.wan_out]
    _, outer, body, encap = esp[0]
    assert (outer.src, outer.dst) == (r.comp_out["src"], r.comp_out["dst"]) and not encap
    plain = r.sa_out.decrypt(body)
    assert plain.seq == 1 and plain.nh == 108
    assert struct.unpack("!BBH", plain.payload[:4]) == (4, 0, r.comp_out["spi"])
    inflated = zlib.decompress(plain.payload[4:], wbits=-15)
    assert inflated == P.forwarded(r.out_inner) and len(plain.payload) < len(inflated)
    want = raw(Ether(src=P.LAN_MAC, dst=P.HOST_MAC, type=0x800)) + P.forwarded(r.in_inner)
    assert r.lan_out.count(want) == 1, [Ether(f).summary() for f in r.lan_out]
    for s in (r.esp_i, r.comp_in, r.esp_o, r.comp_out):
        assert r.sa(s["spi"])["packets"] == 1


# ---- transport: the gateway's own GRE ----------------------------------------------------------


class TransportSpec:
    """For P.LiveRun: the example's SAs and policies; the kernel sends one GRE packet."""

    n_from_kernel = 1

    def __init__(self, path):
        self.ex = load(path)
        self.pol, self.out, self.inb = sa_pair(self.ex)
        if not is_ah(path):
            self.sa_out, self.sa_in = esp_sa(self.out), esp_sa(self.inb)
        self.gre_out = b"\x00\x00\x08\x00" + b"gre-from-the-gateway"
        self.gre_in = b"\x00\x00\x08\x00" + b"gre-from-the-peer"

    def configure(self, cfg):
        # LiveRun's ports (devices, TAP) with the example's names, roles and addresses;
        # the rest is the example's
        for p, q in zip(cfg["ports"], self.ex["ports"]):
            p.update(name=q["name"], role=q["role"], addresses=q["addresses"])
        for k in ("ipsec", "sas", "policies", "routes", "crypto"):
            if k in self.ex:
                cfg[k] = self.ex[k]
            else:
                cfg.pop(k, None)

    def from_kernel(self, ns):
        P.sh(["/usr/bin/python3", "-c",
              "import socket; s = socket.socket(socket.AF_INET, socket.SOCK_RAW, 47); "
              f"s.bind(({self.out['src']!r}, 0)); s.sendto({self.gre_out!r}, ({self.out['dst']!r}, 0))"], ns=ns)

    def frames(self):
        esp = self.sa_in.encrypt(1, self.gre_in, 47)
        return [P.frame_to_gw(IP(src=self.inb["src"], dst=self.inb["dst"], ttl=64, proto=50) / Raw(esp))]


class AhTransportSpec(TransportSpec):
    """An AH transport example: scapy's own AH code (SecurityAssociation) on both sides."""

    def __init__(self, path):
        super().__init__(path)
        self.sa_out, self.sa_in = (SecurityAssociation(AH, spi=sa["spi"], auth_algo=AH_ALGS[sa["integrity"]["algorithm"]],
                                                       auth_key=keymat(sa["integrity"]["key"]))
                                   for sa in (self.out, self.inb))

    def frames(self):
        pkt = self.sa_in.encrypt(IP(src=self.inb["src"], dst=self.inb["dst"], ttl=64, proto=47)
                                 / Raw(self.gre_in), seq_num=1)
        return [P.frame_to_gw(pkt)]


AH_ALGS = {"hmac-sha1-96": "HMAC-SHA1-96", "hmac-sha2-256-128": "SHA2-256-128",
           "hmac-sha2-384-192": "SHA2-384-192", "hmac-sha2-512-256": "SHA2-512-256"}


def is_ah(path):
    return load(path)["sas"][0].get("proto") == "ah"


@pytest.mark.parametrize("path", [p for p in TRANSPORT_EXAMPLES if is_ah(p.values[0])])
def test_ah_transport_example_protects_the_gateways_own_gre_both_ways(tmp_path, path):
    """The gateway's own GRE leaves as transport AH whose ICV scapy's AH code
    verifies (sequence number 1); scapy's AH packet carrying the peer's GRE
    reaches the kernel without AH."""
    spec = AhTransportSpec(path)
    r = P.LiveRun(tmp_path, spec)
    assert r.error is None and r.rc == 0, r.error or r.log
    ah = [Ether(f)[IP] for f in r.wan_out if AH in Ether(f) and Ether(f)[AH].spi == spec.out["spi"]]
    assert len(ah) == 1, r.stats
    outer = ah[0]
    assert outer.src == spec.out["src"] and outer.dst == spec.out["dst"] and outer.proto == 51
    assert outer[AH].seq == 1 and outer[AH].nh == 47
    plain = spec.sa_out.decrypt(IP(raw(outer)))   # raises on a wrong ICV
    assert raw(plain.payload) == spec.gre_out and plain.proto == 47
    got = [IP(p) for p in r.tap_l3() if p[0] >> 4 == 4 and IP(p).proto == 47]
    assert [(g.src, g.dst, raw(g.payload)) for g in got] == [(spec.inb["src"], spec.inb["dst"], spec.gre_in)]
    assert r.sa(spec.inb["spi"])["packets"] == 1


@pytest.mark.parametrize("path", [p for p in TRANSPORT_EXAMPLES if not is_ah(p.values[0])])
def test_transport_example_protects_the_gateways_own_gre_both_ways(tmp_path, path):
    spec = TransportSpec(path)
    r = P.LiveRun(tmp_path, spec)
    assert r.error is None and r.rc == 0, r.error or r.log
    esp = r.esp_out(spec.out["spi"])
    assert len(esp) == 1, r.stats
    outer, body, _ = esp[0]
    assert outer.src == spec.out["src"] and outer.dst == spec.out["dst"] and outer.proto == 50
    plain = spec.sa_out.decrypt(body)
    assert plain.seq == 1 and plain.nh == 47 and plain.payload == spec.gre_out
    # the peer's GRE reached the kernel through the TAP, decrypted
    got = [IP(p) for p in r.tap_l3() if p[0] >> 4 == 4 and IP(p).proto == 47]
    assert [(g.src, g.dst, raw(g.payload)) for g in got] == [(spec.inb["src"], spec.inb["dst"], spec.gre_in)]
    assert r.sa(spec.inb["spi"])["packets"] == 1
