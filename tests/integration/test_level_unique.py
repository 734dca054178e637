"""`level: unique` (the seeds' ipsec(4), KAME setkey "unique:N"): an outbound
policy bound to its own SA, the one with its reqid, which no other policy
takes, even one whose tunnel endpoints match it.

Two SAs from this gateway to one peer (same outer addresses): A, reqid 7,
and B, reqid 0; A is the newer, which is what a policy binding by endpoints
picks (the newest wins a rekey). Policies:

* uniq: 10.1.0.0/24, unique, reqid 7 -> A
* uniq2: 10.3.0.0/24, unique, reqid 7 -> A as well (charon's many selectors
  of one CHILD_SA: unique policies with one reqid share its SA)
* other: 10.2.0.0/24, require, no reqid -> B, never A; without B, no SA:
  its packets are dropped (and would raise an ACQUIRE), never sent under A.

Frames come from pcap files (net_pcap); what leaves wan is decrypted here
with scapy's ciphers (test_esp_pcap.EspSA), not by dpsecd.
"""
import struct

import pytest
from scapy.all import IP, UDP, Raw
from scapy.compat import raw

from test_esp_pcap import (HOST4, WAN4, EspSA, PcapRun, base_config, esp_payload, frame_from_host,
                           keygen)

PEER = "198.51.100.1"
SPI_A, SPI_B = 0x7001, 0x7002
KEY_A, KEY_B = keygen("unique/A", 20), keygen("unique/B", 20)
NETS = {"uniq": "10.1.0", "uniq2": "10.3.0", "other": "10.2.0"}


def sa(spi, reqid, key):
    return {"spi": spi, "direction": "out", "src": WAN4, "dst": PEER, "reqid": reqid,
            "encryption": {"algorithm": "aes-gcm-128", "key": "0x" + key.hex()}}


def policy(net, level, reqid):
    req = {"proto": "esp", "mode": "tunnel", "level": level, "tunnel": {"src": WAN4, "dst": PEER}}
    if reqid:
        req["reqid"] = reqid
    return {"direction": "out", "src": "192.168.10.0/24", "dst": net + ".0/24", "action": "protect",
            "ipsec": [req]}


def frames():
    """Three packets to each policy's network, the name of the policy in the payload."""
    out = []
    for name, net in NETS.items():
        for k in range(3):
            out.append(frame_from_host(IP(src=HOST4, dst=f"{net}.9", ttl=64, id=k) /
                                       UDP(sport=1000, dport=2000 + k) / Raw(f"{name}/{k}".encode())))
    return out


def run(workdir, with_b):
    cfg = base_config(str(workdir))
    # B first: A, added after it, is the newest SA with these endpoints
    cfg["sas"] = ([sa(SPI_B, 0, KEY_B)] if with_b else []) + [sa(SPI_A, 7, KEY_A)]
    cfg["policies"] = [policy(NETS["uniq"], "unique", 7), policy(NETS["uniq2"], "unique", 7),
                       policy(NETS["other"], "require", 0)]
    r = PcapRun(workdir, cfg, frames(), [])
    assert r.error is None and r.rc == 0, r.log
    return r


def carried(r):
    """{spi: [(policy name, inner destination)]} of what left wan, decrypted here."""
    sas = {SPI_A: EspSA(SPI_A, "aes-gcm-128", KEY_A), SPI_B: EspSA(SPI_B, "aes-gcm-128", KEY_B)}
    out = {}
    for f in r.wan_out:
        p = esp_payload(f)
        assert p is not None, "a frame in clear left wan"
        spi = struct.unpack("!L", p[1][:4])[0]
        inner = IP(sas[spi].decrypt(p[1]).payload)
        out.setdefault(spi, []).append((raw(inner[Raw]).decode().split("/")[0], inner.dst))
    return out


def test_unique_sa_carries_only_its_policies_and_the_other_policy_its_own_sa(tmp_path):
    r = run(tmp_path, with_b=True)
    got = carried(r)
    assert sorted(n for n, _ in got[SPI_A]) == ["uniq"] * 3 + ["uniq2"] * 3
    assert [n for n, _ in got[SPI_B]] == ["other"] * 3
    assert r.sa(SPI_A)["packets"] == 6 and r.sa(SPI_B)["packets"] == 3


def test_policy_without_its_own_sa_is_not_given_a_unique_one(tmp_path):
    r = run(tmp_path, with_b=False)
    got = carried(r)
    assert sorted(n for n, _ in got[SPI_A]) == ["uniq"] * 3 + ["uniq2"] * 3
    assert SPI_B not in got
    assert r.sa(SPI_A)["packets"] == 6
    # require without an SA: dropped for want of one (what raises an ACQUIRE)
    assert r.stats["lan"]["drop_no_sa"] == 3


def test_pfkey_unique_without_reqid_gets_one_of_its_own(tmp_path):
    """As Linux (af_key.c gen_reqid) and KAME do: a unique request without a reqid
    is given a fresh one, which no policy or SA uses, so no SA installed before
    it (here one with its endpoints and reqid 0) is taken for it."""
    import pfkey as K
    from dpsec import Daemon
    from scapy.all import Ether, wrpcap
    from test_esp_pcap import forget_runtime_dir
    wrpcap(f"{tmp_path}/LAN_IN.pcap", [Ether(f) for f in frames()[:1]])
    wrpcap(f"{tmp_path}/WAN_IN.pcap", [])
    d = Daemon(base_config(str(tmp_path)), str(tmp_path)).start()
    c = K.Client(d.cfg["pfkey"]["socket"])
    try:
        assert c.request(K.gcm_add(SPI_B, WAN4, PEER, 0, KEY_B)).errno == 0
        got = []
        for net in ("10.1.0.0/24", "10.2.0.0/24"):
            rq = K.ipsecrequest(50, K.MODE_TUNNEL, K.LEVEL_UNIQUE, 0, (WAN4, PEER))
            rep = c.request(K.spd(K.SPDADD, K.DIR_OUT, "192.168.10.0/24", net, requests=[rq]))
            assert rep.errno == 0
            got.append(rep.ext[K.POLICY].requests[0]["reqid"])
        assert all(r > 0x3fff for r in got) and got[0] != got[1]
        pols = d.ctl_json("policy")["policies"].values()
        assert sorted(p["reqid"] for p in pols if p.get("level") == "unique") == sorted(got)
    finally:
        c.close()
        rc = d.stop()
        forget_runtime_dir(d)
        assert rc == 0, d.read_log()
