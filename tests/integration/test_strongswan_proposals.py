"""strongSwan end to end with the proposals that need more than ESP: two dpsecd
gateways, each keyed by its own charon over PF_KEY (kernel-pfkey through
libdpsec_pfkey.so), in network namespaces. charon's userspace ESP
(kernel-libipsec) does neither AH nor IPComp, so the far side is dpsecd too:

    host A ---- [lan] dpsecd A [wan] ====== internet ====== [wan] dpsecd B [lan] ---- host B
    10.1.0.2   10.1.0.1     192.0.2.1                    192.0.2.2     10.2.0.1   10.2.0.2
                 charon A (kernel-pfkey)                       charon B (kernel-pfkey)

Both wan ends are dpsecd's (net_af_packet, the kernel kept off); IKE reaches
each charon through its dpsecd's wan TAP.

PROPOSALS is the table of scenarios: one row per CHILD_SA configuration
(swanctl.conf keys), the IPsec protocols dpsecd must then hold per direction,
and the layers each protected packet carries on the wire, outermost first.
Rows: ah_proposals (AH alone, tunnel, HMAC-SHA2-256-128); compress (ESP
AES-GCM-128 + IPComp, charon's [ipcomp, esp] bundle); ah_ipcomp (AH +
IPComp, [ipcomp, ah]). With IPComp the pings are compressed (the wire check
requires some packets with both layers) and the random TCP data is sent
uncompressed, as IP-in-IP inside the outer layer (RFC 3173 2.2).
Each row runs the same story (run_row):

* charon A initiates (start_action = start); both charons report the CHILD_SA
  INSTALLED and both dpsecd hold, for each protocol of the row, one SA in and
  one out, with the algorithms negotiated;
* pings both ways at 56, 1000 and 1250 bytes, then 4 MiB by TCP each way at
  once, compared by SHA-256;
* rekey by lifetime: rekey_time is short, so charon rekeys the CHILD_SA
  under a continuous ping (loss under 2 %); both dpsecd end with new SPIs
  and without the old SAs, and the traffic keeps crossing;
* tcpdump on both ends of the internet link the whole time (each sees what
  arrives from the other end). Afterwards every frame is ARP,
  IKE between the gateways, or IPsec between the gateways; each IPsec packet
  is decoded with scapy (layers.ipsec: AH's ICV verified, ESP decrypted) with
  the CHILD_SA keys charon logged (its chd log at level 4, in this test's
  temporary directory only) down to an inner IPv4 packet between the sites;
  SAs from before and after the rekey are among them.
"""
import collections
import os
import re
import secrets
import subprocess
import sys
import zlib

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "peer"))

from dpsec import Daemon, sh  # noqa: E402
from strongswan import Charon, ikev2_psk, pfkey_env  # noqa: E402
from topology import Capture, Netns, TcpTransfer, make_payload, ping  # noqa: E402
from test_strongswan_e2e import A, B, GWA, GWB, LAN_A, LAN_B, NET_A, NET_B  # noqa: E402
from test_strongswan_ext import gateway_config  # noqa: E402
from scapy.all import IP, Ether, IPerror, IPv6, UDPerror, raw  # noqa: E402
from scapy.layers.ipsec import AH, ESP, IPSecIntegrityError, SecurityAssociation  # noqa: E402

pytestmark = pytest.mark.interop

TCP_SIZE = 4 << 20
PING_SIZES = (56, 1000, 1250)
REKEY = {"rekey_time": "25s", "life_time": "50s", "rand_time": "3s"}


class Row:
    """One CHILD_SA configuration. child: swanctl.conf keys of the CHILD_SA
    (esp_proposals None: not offered at all). protos: dpsecd's SA protocols,
    one SA of each per direction. layers: the layouts a protected packet may
    have on the wire, each the IPsec headers after the outer IPv4 header,
    outermost first; the first one must be seen (IPComp leaves a packet that
    does not shrink uncompressed, RFC 3173 2.2: the others). integ / enc: what
    dpsecctl sa shows for the SAs of each protocol. defect: why the row fails
    today (a strict xfail: it must fail until that is fixed)."""

    def __init__(self, name, child, protos, layers, integ=None, enc=None, defect=None):
        self.name, self.child, self.protos, self.layers = name, child, protos, layers
        self.integ, self.enc, self.defect = integ or {}, enc or {}, defect


PROPOSALS = [
    Row("ah_proposals", {"ah_proposals": "sha256", "esp_proposals": None},
        protos=("ah",), layers=[("ah",)], integ={"ah": "hmac-sha2-256-128"}),
    # charon's (Linux's) layout: outer IP / ESP (transport) / IPComp (tunnel) / inner IP; a packet
    # that does not shrink goes as IP-in-IP inside the ESP
    Row("compress", {"esp_proposals": "aes128gcm16", "ipcomp": "yes"},
        protos=("esp", "ipcomp"), layers=[("esp", "ipcomp"), ("esp",)], enc={"esp": "aes-gcm"}),
    # AH + IPComp, which charon negotiates too: outer IP / AH (transport) / IPComp (tunnel) / inner IP
    Row("ah_ipcomp", {"ah_proposals": "sha256", "esp_proposals": None, "ipcomp": "yes"},
        protos=("ah", "ipcomp"), layers=[("ah", "ipcomp"), ("ah",)], integ={"ah": "hmac-sha2-256-128"}),
    # No AH+ESP row: charon 5.9.8 puts ah_proposals and esp_proposals in one list of alternatives
    # (vici_config.c) and negotiates one protocol per CHILD_SA ("plain AH(+IPComp) SAs only, not
    # ESP+AH bundles", its NEWS): with both it installs ESP alone.
]

# scapy's name of what charon negotiates, by key length of the logged key
SCAPY_INTEG = {"hmac-sha2-256-128": ("SHA2-256-128", 32), "hmac-sha1-96": ("HMAC-SHA1-96", 20)}
SCAPY_ENC = {"aes-gcm": ("AES-GCM", 20), "aes-cbc": ("AES-CBC", 16)}


# ----------------------------------------------------------------------------- topology


class Env:
    pass


@pytest.fixture(scope="module")
def topo(tmp_path_factory):
    net = Netns("ahpeer")
    e = Env()
    e.net = net
    try:
        e.ha, e.gwa, e.gwb, e.hb = net.ns("ha"), net.ns("gwa"), net.ns("gwb"), net.ns("hb")
        e.a_if, e.alan_if = net.link(e.ha, e.gwa, kernel_off=(e.gwa,))
        e.awan_if, e.bwan_if = net.link(e.gwa, e.gwb, kernel_off=(e.gwa, e.gwb))
        e.blan_if, e.b_if = net.link(e.gwb, e.hb, kernel_off=(e.gwb,))
        net.addrs(e.ha, e.a_if, [A + "/24"])
        net.addrs(e.hb, e.b_if, [B + "/24"])
        for ns, gw in ((e.ha, LAN_A), (e.hb, LAN_B)):
            sh(["ip", "route", "replace", "default", "via", gw], ns=ns)
        for ns in (e.gwa, e.gwb):
            sh(["sysctl", "-qw", "net.ipv6.conf.default.router_solicitations=0"], ns=ns)
        e.dir = tmp_path_factory.mktemp("strongswan_proposals")
        e.data = str(e.dir / "payload")
        e.data_sha = make_payload(e.data, TCP_SIZE)
        yield e
    finally:
        net.close()


def sas(d):
    return {int(s["spi"], 16): s for s in d.ctl_json("sa")["sas"].values()}


def ping_all(ns, dst, size, count=5):
    """count echo replies of this size, none duplicated. With -w iputils keeps
    sending while replies are late (a machine shared with busy-polling daemons
    makes them seconds late) and exits at the count-th reply: the requests
    still in flight then are not losses, so only the replies are counted."""
    r = sh(["ping", "-n", "-q", "-c", str(count), "-i", "0.2", "-w", "30", "-s", str(size), dst], ns=ns,
           check=False, timeout=60)
    m = re.search(r"(\d+) packets transmitted, (\d+) received", r.stdout)
    assert m and int(m.group(2)) >= count and "duplicates" not in r.stdout and "errors" not in r.stdout, \
        f"ping -s {size} {dst} from {ns}:\n{r.stdout}{r.stderr}"


def child_conf(row, local, remote, local_ts, remote_ts, psk, start_action):
    conn = ikev2_psk(local, remote, local_ts, remote_ts, psk, child="net", start_action=start_action,
                     **REKEY)
    ch = conn["children"]["net"]
    for k, v in row.child.items():
        if v is None:
            ch.pop(k, None)
        else:
            ch[k] = v
    return conn


# ----------------------------------------------------------------------------- keys from charon's log


def logged_keys(log):
    """{'encryption': [bytes], 'integrity': [bytes]}: every CHILD_SA key charon's
    keymat logged (chd level 4: "integrity initiator key => 32 bytes @ ...",
    then the hex dump, 16 bytes a line)."""
    keys = collections.defaultdict(list)
    lines = log.splitlines()
    for i, line in enumerate(lines):
        m = re.search(r"(encryption|integrity) (?:initiator|responder) key => (\d+) bytes", line)
        if not m:
            continue
        n, data = int(m.group(2)), b""
        for nxt in lines[i + 1:]:
            h = re.search(r"\s(\d+): ((?:[0-9A-F]{2} )+[0-9A-F]{2})", nxt)
            if not h or len(data) >= n:
                break
            data += bytes.fromhex(h.group(2).replace(" ", ""))
        assert len(data) == n, (line, data.hex())
        if n and data not in keys[m.group(1)]:
            keys[m.group(1)].append(data)
    return keys


# ----------------------------------------------------------------------------- decoding the wire


class Decoder:
    """Peels the IPsec layers of a captured packet with scapy's layers.ipsec
    (AH's ICV verified, ESP decrypted and, with GCM, authenticated) and
    Python's zlib (IPComp), finding for each SPI the logged key that opens it
    and keeping it. Every layer is opened the transport way (scapy then keeps
    the outer header and puts the layer's next header in it): a tunnel's
    inner packet is then plain IP-in-IP, taken out the same way whichever
    layer carried it."""

    def __init__(self, keys, algs):
        self.keys, self.algs = keys, algs
        self.key_of = {}            # (proto, spi) -> scapy SA
        self.seen = collections.Counter()

    def _candidates(self, proto, spi):
        if proto == "ah":
            name, klen = SCAPY_INTEG[self.algs["ah"]]
            for k in self.keys["integrity"]:
                if len(k) == klen:
                    yield SecurityAssociation(AH, spi=spi, auth_algo=name, auth_key=k)
            return
        name, klen = SCAPY_ENC[self.algs["esp"]]
        integ = [(None, None)]
        if self.algs.get("esp-integ"):
            iname, ilen = SCAPY_INTEG[self.algs["esp-integ"]]
            integ = [(iname, k) for k in self.keys["integrity"] if len(k) == ilen]
        for k in self.keys["encryption"]:
            if len(k) == klen:
                for iname, ik in integ:
                    yield SecurityAssociation(ESP, spi=spi, crypt_algo=name, crypt_key=k, auth_algo=iname,
                                              auth_key=ik)

    def _open(self, proto, pkt):
        spi = pkt[AH].spi if proto == "ah" else pkt[ESP].spi
        sa = self.key_of.get((proto, spi))
        for cand in [sa] if sa else self._candidates(proto, spi):
            try:
                out = cand.decrypt(pkt.copy())
            except (IPSecIntegrityError, ValueError, TypeError, IndexError):
                continue
            self.key_of[(proto, spi)] = cand
            self.seen[(proto, spi)] += 1
            return out
        raise AssertionError(f"{proto} SPI {spi:#x}: no logged key opens {pkt.summary()}")

    @staticmethod
    def _decompress(pkt):
        """IPComp (RFC 3173): next header, flags, CPI, then raw DEFLATE."""
        data = raw(pkt.payload)
        hdr = pkt.copy()
        hdr.remove_payload()
        hdr.proto = data[0]
        del hdr.len, hdr.chksum
        return IP(raw(hdr) + zlib.decompress(data[4:], -15))

    def inner(self, frame):
        """(the inner IPv4 packet of a protected frame, the layers peeled, outermost first)."""
        cur = IP(raw(Ether(frame)[IP]))
        peeled = []
        while {cur.src, cur.dst} == {GWA, GWB} and cur.proto in (4, 50, 51, 108):
            if cur.proto == 4:          # a tunnel's inner packet
                cur = IP(raw(cur.payload))
                continue
            if cur.proto == 108:
                cur = self._decompress(cur)
                peeled.append("ipcomp")
                continue
            layer = "ah" if cur.proto == 51 else "esp"
            cur = IP(raw(self._open(layer, cur)))
            peeled.append(layer)
        return cur, tuple(peeled)


# ----------------------------------------------------------------------------- one row


def wire_check(row, frames, keys, algs):
    """Every frame on the internet link: ARP, IKE between the gateways, or IPsec
    between the gateways that scapy opens with charon's keys to an inner IPv4
    packet between the sites. Returns the Decoder (SPIs it opened)."""
    dec = Decoder(keys, algs)
    bad, kinds = [], collections.Counter()
    for f in frames:
        pkt = Ether(f)
        if pkt.type == 0x0806:
            kinds["arp"] += 1
            continue
        if IPv6 in pkt:
            v6 = pkt[IPv6]
            if v6.src.startswith("fe80:") or v6.src == "::":
                kinds["ipv6-link-local"] += 1   # a TAP kernel's MLD / ND: no site traffic
                continue
            bad.append(pkt.summary())
            continue
        ip = pkt.getlayer(IP)
        if ip is None or {ip.src, ip.dst} != {GWA, GWB}:
            bad.append(pkt.summary())
            continue
        if ip.proto == 17 and {ip.sport, ip.dport} <= {500, 4500}:
            kinds["ike"] += 1
            continue
        if ip.proto == 1 and IPerror in ip and {ip[IPerror].src, ip[IPerror].dst} == {GWA, GWB} and \
                UDPerror in ip and {ip[UDPerror].sport, ip[UDPerror].dport} <= {500, 4500}:
            kinds["icmp-about-ike"] += 1     # a late IKE message to a charon already gone
            continue
        if ip.proto in (50, 51):
            inner, peeled = dec.inner(f)
            assert {inner.src, inner.dst} == {A, B}, inner.summary()
            assert peeled in row.layers, (peeled, row.layers, inner.summary())
            kinds["ipsec"] += 1
            kinds[peeled] += 1
            continue
        bad.append(pkt.summary())
    assert not bad, f"{len(bad)} frames neither ARP, IKE nor IPsec between the gateways: {bad[:5]}"
    assert kinds[row.layers[0]] > 0, dict(kinds)
    # the transfers alone are more than TCP_SIZE / 1500 segments each way
    assert kinds["ike"] > 0 and kinds["ipsec"] > 2 * TCP_SIZE // 1500, dict(kinds)
    return dec


def diag(daemons, charons):
    """What each gateway counted (non-zero drops and IPsec counters), its SAs and
    policies, and the tails of the logs: printed when a row fails."""
    out = []
    for tag, d in daemons.items():
        try:
            ports = {p: {k: v for k, v in c.items() if v and (k.startswith(("drop_", "icmp_", "ipsec_", "frag")))}
                     for p, c in d.port_stats().items()}
            out.append(f"--- dpsecd {tag} ports: {ports}")
            for s in sas(d).values():
                out.append(f"    sa {s['spi']} {s['dir']} {s['proto']} {s['mode']} packets {s['packets']} "
                           f"{ {k: v for k, v in s.items() if k.startswith('drop_') and v} }")
            for p in d.ctl_json("policy")["policies"].values():
                out.append(f"    policy {p}")
            out.append(d.read_log()[-2000:])
        except Exception as err:     # noqa: BLE001 - a diagnostic must not hide the failure
            out.append(f"--- dpsecd {tag}: {err!r}")
    for tag, c in charons.items():
        out.append(c.report(40))
    return "\n".join(out)


def run_row(e, row):
    wd = e.dir / row.name
    wd.mkdir()
    psk = secrets.token_hex(16)
    caps = []
    daemons, charons = {}, {}
    try:
        # both ends: tcpdump does not see what dpsecd's af_packet port sends itself (it
        # bypasses the qdisc, and with it the taps), only what arrives from the other end
        caps = [Capture(e.gwa, e.awan_if, str(wd / "wire-a.pcap")).start(),
                Capture(e.gwb, e.bwan_if, str(wd / "wire-b.pcap")).start()]
        for tag, ns, lan_if, wan_if, lan, wan, rnet, rgw in (
                ("a", e.gwa, e.alan_if, e.awan_if, LAN_A, GWA, NET_B, GWB),
                ("b", e.gwb, e.blan_if, e.bwan_if, LAN_B, GWB, NET_A, GWA)):
            sock = str(wd / f"pfkey-{tag}.sock")
            cfg = gateway_config(lan_if, wan_if, f"p{tag}l{e.net.tag}"[:15], f"p{tag}w{e.net.tag}"[:15], lan,
                                 wan, rnet, rgw, sock, f"dpsecd-{tag}", str(wd))
            d = Daemon(cfg, str(wd), ns=ns, name=f"dpsecd-{tag}").start()
            daemons[tag] = d
            # chd 4: the CHILD_SA keys, which the wire check needs (this test's directory only)
            c = Charon(f"{tag}-{row.name}", ns, str(wd), plugins=Charon.PFKEY, env=pfkey_env(sock),
                       settings="\tinstall_routes = no\n", log_levels={"chd": 4})
            charons[tag] = c
        ca, cb = charons["a"], charons["b"]
        da, db = daemons["a"], daemons["b"]
        cb.add_conn("site", child_conf(row, GWB, GWA, NET_B, NET_A, psk, "none"))
        cb.start()
        ca.add_conn("site", child_conf(row, GWA, GWB, NET_A, NET_B, psk, "start"))
        ca.start()
        ca.wait_child("net", timeout=40)
        cb.wait_child("net", timeout=20)
        n = 2 * len(row.protos)
        for tag, d in daemons.items():
            live = d.wait_for(lambda: len(sas(d)) == n and sas(d), what=f"{n} SAs in dpsecd {tag}")
            got = collections.Counter((s["proto"], s["dir"]) for s in live.values())
            assert got == collections.Counter((p, x) for p in row.protos for x in ("in", "out")), live
            for s in live.values():
                assert s["origin"] == "pfkey" and s["mode"] in ("tunnel", "transport"), s
                if s["proto"] in row.integ:
                    assert s["auth"] == row.integ[s["proto"]], s
                if s["proto"] in row.enc:
                    assert s["enc"] == row.enc[s["proto"]], s
        first = set(sas(da))

        # the first packets wait for both gateways' ARP (hosts, then each other): not counted
        ping(e.ha, B, count=3, wait=10, check=False)
        ping(e.hb, A, count=3, wait=10, check=False)
        for size in PING_SIZES:
            ping_all(e.ha, B, size)
            ping_all(e.hb, A, size)
        ab = TcpTransfer(e.ha, e.hb, B, 5301, e.data, str(wd / "ab.out")).start()
        ba = TcpTransfer(e.hb, e.ha, A, 5302, e.data, str(wd / "ba.out")).start()
        assert ab.wait(timeout=120) == e.data_sha, "A -> B corrupted"
        assert ba.wait(timeout=120) == e.data_sha, "B -> A corrupted"
        for d in (da, db):
            for s in sas(d).values():
                assert s["drop_auth"] == 0 and s["drop_replay"] == 0, s
                assert s["packets"] > 1000, s

        # rekey by lifetime, under traffic
        count = 1500
        p = subprocess.Popen(["ip", "netns", "exec", e.ha, "ping", "-n", "-q", "-i", "0.03", "-c", str(count),
                              "-w", "100", B], stdout=subprocess.PIPE, text=True)
        try:
            da.wait_for(lambda: sas(da) and not (set(sas(da)) & first) and len(sas(da)) == n, timeout=90,
                        what="the rekeyed SAs alone in dpsecd A")
        finally:
            out = p.communicate(timeout=120)[0]
        got = int(re.search(r"(\d+) received", out).group(1))
        assert got >= count * 0.98, out
        db.wait_for(lambda: len(sas(db)) == n and not (set(sas(db)) & first), timeout=30,
                    what="the rekeyed SAs alone in dpsecd B")
        for d in (da, db):
            live = sas(d)
            assert collections.Counter(s["proto"] for s in live.values()) == \
                collections.Counter(p for p in row.protos for _ in "io"), live
        # the first CHILD_SA and at least one rekeyed one, on each side
        established = re.findall(r"CHILD_SA net\{\d+\} established", ca.log() + cb.log())
        assert len(established) >= 4, established
        ping_all(e.ha, B, 56)
        ping_all(e.hb, A, 56)
        after = set(sas(da))
        algs = {}
        for s in sas(da).values():
            if s["proto"] == "ah":
                algs["ah"] = s["auth"]
            elif s["proto"] == "esp":
                algs["esp"] = s["enc"]
                if s["auth"] != "none":
                    algs["esp-integ"] = s["auth"]
    except BaseException:
        print(diag(daemons, charons))
        raise
    finally:
        if "a" in charons and charons["a"].proc is not None and charons["a"].proc.poll() is None:
            charons["a"].swanctl("--terminate", "--ike", "site", "--timeout", "10", check=False)
        for c in charons.values():
            c.stop()
        frames, summaries = [], []
        for cap in caps:
            frames += cap.stop()
            summaries.append(cap.summary)
        errs = [d.read_log() for d in daemons.values() if d.stop() != 0]
        assert not errs, errs
    assert all(sm["dropped"] == 0 and sm["captured"] == sm["received"] for sm in summaries), summaries
    assert sum(sm["captured"] for sm in summaries) == len(frames), summaries
    keys = logged_keys(charons["a"].log() + "\n" + charons["b"].log())
    assert keys["integrity"] or keys["encryption"], "charon logged no CHILD_SA key (chd level 4)"
    dec = wire_check(row, frames, keys, algs)
    opened = {spi for (_, spi) in dec.seen}
    assert opened & first and opened & after, (sorted(opened), sorted(first), sorted(after))
    return dec


@pytest.mark.parametrize("row", [
    pytest.param(r, id=r.name, marks=[pytest.mark.xfail(strict=True, reason=r.defect)] if r.defect else [])
    for r in PROPOSALS])
def test_proposal_end_to_end(topo, row):
    run_row(topo, row)
