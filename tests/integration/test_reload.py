"""SAs and policies change while traffic flows (SIGHUP reloads the configuration).

host A -- dpsecd -- host B. Two UDP flows leave host A at a steady rate: one
to 10.9.1.0/24, covered by a policy and SA that never change, one to
10.9.2.0/24 whose policy and SA are removed and added again by every other
reload. Each reload publishes a new snapshot; the unchanged flow must lose
nothing: every datagram sent crosses the wire as ESP of its SA, in sequence.
"""
import os
import re
import signal
import subprocess
import time

import pytest
from scapy.all import ESP, IP, UDP, rdpcap

from dpsec import FAULTS, Daemon, sh

SPI1, SPI2 = 0x101, 0x102
KEY1 = "0x" + "11" * 20
KEY2 = "0x" + "22" * 20

SENDER = r"""
import socket, sys, time
n, gap = int(sys.argv[1]), float(sys.argv[2])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for i in range(n):
    for dst in ("10.9.1.5", "10.9.2.5"):
        s.sendto(b"seq%06d" % i, (dst, 9000))
    time.sleep(gap)
print(n)
"""


def sa(spi, key):
    return {"spi": spi, "direction": "out", "src": "10.2.0.1", "dst": "10.2.0.2", "reqid": spi,
            "encryption": {"algorithm": "aes-gcm-128", "key": key}}


def policy(net, spi):
    return {"direction": "out", "src": "10.1.0.0/24", "dst": net, "action": "protect",
            "ipsec": [{"proto": "esp", "mode": "tunnel", "level": "require", "reqid": spi,
                       "tunnel": {"src": "10.2.0.1", "dst": "10.2.0.2"}}]}


def config(ga, gb, tag, with_second):
    # def_policy discard applies to the inbound check too (KAME): host A's
    # plaintext is allowed in by a fwd bypass policy.
    sas = [sa(SPI1, KEY1)]
    pols = [{"direction": "fwd", "src": "10.1.0.0/24", "dst": "10.9.0.0/16", "action": "bypass"},
            policy("10.9.1.0/24", SPI1)]
    if with_second:
        sas.append(sa(SPI2, KEY2))
        pols.append(policy("10.9.2.0/24", SPI2))
    return {
        "ports": [
            {"name": "lan", "device": f"net_af_packet0,iface={ga}", "role": "protected",
             "exception_iface": f"rl{tag}", "addresses": ["10.1.0.1/24"]},
            {"name": "wan", "device": f"net_af_packet1,iface={gb}", "role": "unprotected",
             "exception_iface": f"rw{tag}", "addresses": ["10.2.0.1/24"]},
        ],
        "routes": [{"prefix": "10.9.0.0/16", "via": "10.2.0.2", "port": "wan"}],
        # Without its policy the second flow is dropped, never sent in clear.
        "ipsec": {"def_policy": {"ipv4": "discard", "ipv6": "bypass"}},
        "sas": sas,
        "policies": pols,
    }


@pytest.fixture
def net(topo, tmp_path):
    ha, gw, hb = topo.ns("ha"), topo.ns("gw"), topo.ns("hb")
    va, ga = topo.link(ha, gw)
    vb, gb = topo.link(hb, gw)
    topo.host(ha, va, ["10.1.0.2/24"], ["10.1.0.1"])
    topo.host(hb, vb, ["10.2.0.2/24"])
    topo.dataplane_owned(gw, ga)
    topo.dataplane_owned(gw, gb)
    return topo, ha, gw, hb, ga, gb, vb


def write(d, cfg):
    import yaml
    with open(d.path, "w") as f:
        yaml.safe_dump(dict(cfg, eal=d.cfg["eal"]), f, sort_keys=False)


def reload_and_wait(d, n_sas):
    before = d.read_log().count("reload:")
    d.proc.send_signal(signal.SIGHUP)
    d.wait_for(lambda: d.read_log().count("reload:") > before, timeout=10, what="reload")
    assert len(d.ctl_json("sa")["sas"]) == n_sas


def sa_stats(d):
    return {int(s["spi"], 16): s for s in d.ctl_json("sa")["sas"].values()}


def test_unchanged_policy_loses_nothing_while_others_come_and_go(net, tmp_path):
    topo, ha, gw, hb, ga, gb, vb = net
    d = Daemon(config(ga, gb, topo.tag, True), str(tmp_path), ns=gw).start()
    cap = tmp_path / "wire.pcap"
    dump = subprocess.Popen(["ip", "netns", "exec", hb, "tcpdump", "-i", vb, "-w", str(cap),
                             "--immediate-mode", "-U", "-B", "8192", "esp or udp"],
                            stderr=subprocess.DEVNULL)
    time.sleep(1)
    n = 1500
    sender = subprocess.Popen(["ip", "netns", "exec", ha, "/usr/bin/python3", "-c", SENDER,
                               str(n), "0.002"], stdout=subprocess.PIPE, text=True)
    reloads = 0
    while sender.poll() is None:
        time.sleep(0.25)
        write(d, config(ga, gb, topo.tag, reloads % 2 == 1))
        reload_and_wait(d, 2 if reloads % 2 == 1 else 1)
        reloads += 1
    assert sender.wait() == 0
    time.sleep(1)
    dump.send_signal(signal.SIGINT)
    dump.wait(timeout=10)
    st = sa_stats(d)
    lan = d.port_stats()["lan"]
    assert d.stop() == 0, d.read_log()
    assert reloads >= 6

    wire = rdpcap(str(cap))
    esp1 = [p for p in wire if ESP in p and p[ESP].spi == SPI1]
    # Every datagram of the unchanged flow, once each, in sequence.
    assert [p[ESP].seq for p in esp1] == list(range(1, n + 1))
    assert st[SPI1]["packets"] == n
    assert all(v == 0 for k, v in st[SPI1].items() if k.startswith("drop_"))
    # Nothing crossed in clear; the second flow was protected or dropped by policy.
    assert not [p for p in wire if UDP in p and IP in p and
                p[IP].dst.startswith("10.9.")]
    assert lan["drop_policy"] > 0
    assert lan["drop_no_sa"] == 0


def test_bad_reload_changes_nothing(net, tmp_path):
    topo, ha, gw, hb, ga, gb, vb = net
    d = Daemon(config(ga, gb, topo.tag, True), str(tmp_path), ns=gw).start()
    before = sa_stats(d)
    bad = config(ga, gb, topo.tag, False)
    bad["sas"][0]["encryption"]["key"] = "0x1234"  # wrong length: the file is refused
    write(d, bad)
    d.proc.send_signal(signal.SIGHUP)
    d.wait_for(lambda: "reload:" in d.read_log(), timeout=10, what="reload")
    assert "nothing changed" in d.read_log()
    assert sa_stats(d).keys() == before.keys()
    assert len(d.ctl_json("policy")["policies"]) == 3
    assert d.stop() == 0


# ---- a reload that fails half-way changes nothing ---------------------------------
#
# dpsecd runs with tests/integration/faults.c preloaded: while a flag file
# exists, one DPDK call fails as it would when memory runs out. The reload is
# refused only once the store has started to change (a policy deleted, an SA
# deleted), so these tests see whether the change is undone whole.

SPI3 = 0x103


def faulty_daemon(net, tmp_path):
    topo, ha, gw, hb, ga, gb, vb = net
    flags = {k: str(tmp_path / k) for k in ("zmalloc", "acl_build", "count")}
    env = {"LD_PRELOAD": FAULTS, "DPSEC_FAULT_ZMALLOC": flags["zmalloc"],
           "DPSEC_FAULT_ACL_BUILD": flags["acl_build"], "DPSEC_FAULT_COUNT": flags["count"]}
    d = Daemon(config(ga, gb, topo.tag, True), str(tmp_path), ns=gw, env=env).start()
    return d, flags


def reload_with_fault(d, flag, count_file):
    """SIGHUP while @flag exists; returns the reload's log line."""
    before = d.read_log().count("reload:")
    open(flag, "w").close()
    try:
        d.proc.send_signal(signal.SIGHUP)
        d.wait_for(lambda: d.read_log().count("reload:") > before, timeout=10, what="reload")
    finally:
        os.unlink(flag)
    assert os.path.exists(count_file), "the fault was never hit"
    return [l for l in d.read_log().splitlines() if "reload:" in l][-1]


def carried(net, tmp_path, dst, n=20):
    """Send @n datagrams from host A to @dst; the SPIs of the ESP host B receives."""
    topo, ha, gw, hb, ga, gb, vb = net
    cap = tmp_path / f"carried-{dst}-{time.monotonic_ns()}.pcap"
    dump = subprocess.Popen(["ip", "netns", "exec", hb, "tcpdump", "-i", vb, "-w", str(cap),
                             "--immediate-mode", "-U", "esp or udp"],
                            stderr=subprocess.DEVNULL)
    time.sleep(1)
    sender = SENDER.replace('("10.9.1.5", "10.9.2.5")', f'("{dst}",)')
    sh(["/usr/bin/python3", "-c", sender, str(n), "0.01"], ns=ha)
    time.sleep(1)
    dump.send_signal(signal.SIGINT)
    dump.wait(timeout=10)
    wire = rdpcap(str(cap))
    assert not [p for p in wire if UDP in p and IP in p and p[IP].dst == dst], "sent in clear"
    return [p[ESP].spi for p in wire if ESP in p]


def policy_dsts(d):
    return sorted(p["dst"] for p in d.ctl_json("policy")["policies"].values())


def test_reload_failing_at_a_policy_insertion_changes_nothing(net, tmp_path):
    d, flags = faulty_daemon(net, tmp_path)
    topo, ha, gw, hb, ga, gb, vb = net
    pols_before = policy_dsts(d)
    # The new file drops SA 2 and its policy and adds policies, more than one
    # slab of hit counters holds (store.c: 64 KiB, a 64-byte line per policy
    # and worker): the one that needs a new slab cannot have its counters,
    # after SA 2 and its policy were deleted and a thousand policies added.
    new = config(ga, gb, topo.tag, False)
    new["policies"].append(policy("10.9.3.0/24", SPI1))
    new["policies"] += [policy(f"10.200.{i // 256}.{i % 256}/32", SPI1) for i in range(1100)]
    write(d, new)
    line = reload_with_fault(d, flags["zmalloc"], flags["count"])
    m = re.search(r"policies\[(\d+)\]: out of memory \(nothing changed\)", line)
    assert m and int(m.group(1)) > 1000, line
    assert sorted(sa_stats(d)) == [SPI1, SPI2]
    assert policy_dsts(d) == pols_before
    # SA 2 still carries its flow, and the store still works: the same file
    # is applied whole once memory is back.
    assert carried(net, tmp_path, "10.9.2.5") == [SPI2] * 20
    assert sa_stats(d)[SPI2]["packets"] == 20
    reload_and_wait(d, 1)
    assert sorted(sa_stats(d)) == [SPI1]
    assert "10.9.3.0/24" in policy_dsts(d) and "10.9.2.0/24" not in policy_dsts(d)
    assert carried(net, tmp_path, "10.9.3.5") == [SPI1] * 20
    assert d.stop() == 0, d.read_log()


def test_reload_failing_at_the_commit_changes_nothing(net, tmp_path):
    d, flags = faulty_daemon(net, tmp_path)
    topo, ha, gw, hb, ga, gb, vb = net
    pols_before = policy_dsts(d)
    # SA 2 and its policy go, SA 3 and its policy come: all of it is applied
    # to the store, then the SPD cannot be compiled.
    new = config(ga, gb, topo.tag, False)
    new["sas"].append(sa(SPI3, "0x" + "33" * 20))
    new["policies"].append(policy("10.9.3.0/24", SPI3))
    write(d, new)
    line = reload_with_fault(d, flags["acl_build"], flags["count"])
    assert "cannot compile the SPD/SAD (nothing changed)" in line, line
    assert sorted(sa_stats(d)) == [SPI1, SPI2]
    assert policy_dsts(d) == pols_before
    assert carried(net, tmp_path, "10.9.2.5") == [SPI2] * 20
    assert carried(net, tmp_path, "10.9.3.5") == []  # no policy: dropped by default
    reload_and_wait(d, 2)
    assert sorted(sa_stats(d)) == [SPI1, SPI3]
    assert carried(net, tmp_path, "10.9.3.5") == [SPI3] * 20
    assert carried(net, tmp_path, "10.9.2.5") == []
    assert d.stop() == 0, d.read_log()


# ---- ipsec.ecn is captured by each SA when it is made (defect 2 of issue 9) -------------------

SPI_IN_OLD, SPI_IN_NEW = 0x201, 0x202
KEY_IN_OLD = "0x" + "33" * 20
KEY_IN_NEW = "0x" + "44" * 20

SEND_RAW = r"""
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
for h in sys.argv[1:]:
    b = bytes.fromhex(h)
    s.sendto(b, (socket.inet_ntoa(b[16:20]), 0))
"""


def ecn_config(ga, gb, tag, ecn, with_new):
    def sa_in(spi, key):
        return {"spi": spi, "direction": "in", "src": "10.2.0.2", "dst": "10.2.0.1",
                "encryption": {"algorithm": "aes-gcm-128", "key": key}}
    sas = [sa_in(SPI_IN_OLD, KEY_IN_OLD)] + ([sa_in(SPI_IN_NEW, KEY_IN_NEW)] if with_new else [])
    return {
        "ports": [
            {"name": "lan", "device": f"net_af_packet0,iface={ga}", "role": "protected",
             "exception_iface": f"rl{tag}", "addresses": ["10.1.0.1/24"]},
            {"name": "wan", "device": f"net_af_packet1,iface={gb}", "role": "unprotected",
             "exception_iface": f"rw{tag}", "addresses": ["10.2.0.1/24"]},
        ],
        "ipsec": {"ecn": ecn},
        "sas": sas,
        # Decrypted traffic from the far side is forwarded only through the tunnel.
        "policies": [{"direction": "fwd", "src": "10.9.0.0/16", "dst": "10.1.0.0/24",
                      "action": "protect",
                      "ipsec": [{"proto": "esp", "mode": "tunnel", "level": "require",
                                 "tunnel": {"src": "10.2.0.2", "dst": "10.2.0.1"}}]}],
    }


def esp_frame(spi, key, seq, outer_ecn, inner_ecn, dport):
    """ESP in tunnel mode from 10.2.0.2 built by scapy (not dpsecd): outer ECN
    field @outer_ecn, inner packet 10.9.1.5 -> 10.1.0.2 UDP @dport with @inner_ecn
    and DSCP AF41."""
    from scapy.layers.ipsec import SecurityAssociation
    inner = IP(src="10.9.1.5", dst="10.1.0.2", ttl=64, tos=0xa0 | inner_ecn) / \
        UDP(sport=7, dport=dport) / b"ecn"
    sa = SecurityAssociation(ESP, spi=spi, crypt_algo="AES-GCM",
                             crypt_key=bytes.fromhex(key[2:]),
                             tunnel_header=IP(src="10.2.0.2", dst="10.2.0.1", tos=outer_ecn))
    return bytes(sa.encrypt(IP(bytes(inner)), seq_num=seq))


def test_ecn_follows_each_sas_own_setting_across_a_reload(net, tmp_path):
    """Start with ipsec.ecn false and one inbound SA; reload with ecn true and a
    second SA. RFC 6040 (normal mode) is the new SA's: outer CE over inner
    Not-ECT is dropped (drop_ecn), CE over ECT(0) marks the inner packet CE.
    The old SA keeps ecn false: both leave with their inner ECN field as sent.
    The ECN bits are read on host A's wire with scapy."""
    topo, ha, gw, hb, ga, gb, vb = net
    d = Daemon(ecn_config(ga, gb, topo.tag, False, False), str(tmp_path), ns=gw).start()
    write(d, ecn_config(ga, gb, topo.tag, True, True))
    reload_and_wait(d, 2)
    sh(["ip", "netns", "exec", hb, "ping", "-c1", "-W2", "10.2.0.1"], check=False)  # ARP
    cap = tmp_path / "lan.pcap"
    lan_if = next(line.split(":")[1].strip().split("@")[0]
                  for line in sh(["ip", "-o", "link", "show"], ns=ha).stdout.splitlines()
                  if not line.split(":")[1].strip().startswith("lo"))
    dump = subprocess.Popen(["ip", "netns", "exec", ha, "tcpdump", "-i", lan_if, "-w", str(cap),
                             "--immediate-mode", "-U", "udp"], stderr=subprocess.DEVNULL)
    time.sleep(1)
    # (SA, key, dport base): each SA gets outer CE over Not-ECT, then over ECT(0)
    frames = []
    for spi, key, base in ((SPI_IN_OLD, KEY_IN_OLD, 9100), (SPI_IN_NEW, KEY_IN_NEW, 9200)):
        frames.append(esp_frame(spi, key, 1, 3, 0, base))
        frames.append(esp_frame(spi, key, 2, 3, 2, base + 1))
    sh(["ip", "netns", "exec", hb, "/usr/bin/python3", "-c", SEND_RAW] + [f.hex() for f in frames])
    time.sleep(1.5)
    dump.send_signal(signal.SIGINT)
    dump.wait(timeout=10)
    st = sa_stats(d)
    assert d.stop() == 0, d.read_log()

    got = {p[UDP].dport: p[IP].tos for p in rdpcap(str(cap)) if UDP in p and IP in p
           and p[IP].src == "10.9.1.5"}
    # old SA, ecn false: RFC 6040 not applied, the inner field is left alone
    assert got.get(9100) == 0xa0 | 0, got
    assert got.get(9101) == 0xa0 | 2, got
    assert st[SPI_IN_OLD]["drop_ecn"] == 0 and st[SPI_IN_OLD]["packets"] == 2
    # new SA, ecn true: CE over Not-ECT dropped, CE copied onto ECT(0)
    assert 9200 not in got, got
    assert got.get(9201) == 0xa0 | 3, got
    assert st[SPI_IN_NEW]["drop_ecn"] == 1 and st[SPI_IN_NEW]["packets"] == 1
