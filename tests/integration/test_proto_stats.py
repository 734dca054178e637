"""Per-protocol totals (dpsecctl stats esp, telemetry /dpsec/stats/esp) after known traffic.

One tunnel on net_pcap ports: 3 packets out through the outbound SA, and on
wan 3 good ESP packets, a replay of the first, one with a broken ICV and one
for an SPI nobody has. The totals must be exactly what the test sent (sizes
from the packets it built), equal the sum over the SAs, and stay the same once
a reload deleted every SA. AH and IPComp, unused, stay at zero.
"""
import signal
import time

import pytest
import yaml
from scapy.all import Ether, wrpcap

from dpsec import Daemon
from test_esp_pcap import Tunnel, base_config, forget_runtime_dir


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    workdir = str(tmp_path_factory.mktemp("operator-protostats"))
    t = Tunnel(1, "aes-gcm-128", n_out=3, n_in=3)
    cfg = base_config(workdir)
    cfg["sas"] += t.sas()
    cfg["policies"] += t.policies()
    bad_icv = bytearray(t.esp_frame(4, t.in_inner[0]))
    bad_icv[-1] ^= 0xff
    unknown = bytearray(t.esp_frame(5, t.in_inner[0]))
    unknown[34:38] = (0x7777).to_bytes(4, "big")       # Ether 14 + IPv4 20: the SPI
    wan = t.in_frames + [t.in_frames[0], bytes(bad_icv), bytes(unknown)]
    wrpcap(f"{workdir}/LAN_IN.pcap", [Ether(f) for f in t.lan_frames()])
    wrpcap(f"{workdir}/WAN_IN.pcap", [Ether(f) for f in wan])
    d = Daemon(cfg, workdir)
    d.start()
    try:
        d.wait_for(lambda: (lambda s: s["lan"]["rx_packets"] >= 3 and s["wan"]["rx_packets"] >= len(wan))(
            d.port_stats()), what="every frame received")
        time.sleep(0.5)
        yield d, t
    finally:
        d.stop()
        forget_runtime_dir(d)


def esp(d):
    return d.ctl_json("stats", "esp")["esp"]


def test_esp_totals_are_exact(run):
    d, t = run
    st = esp(d)
    assert st["sas"] == 2
    assert (st["out_packets"], st["out_bytes"]) == (3, sum(map(len, t.out_inner)))
    assert (st["in_packets"], st["in_bytes"]) == (3, sum(map(len, t.in_inner)))
    assert st["drop_replay"] == 1 and st["drop_auth"] == 1 and st["drop_unknown_spi"] == 1
    assert st["drop_malformed"] == 0
    # every cause an SA counts is there, and together they are the SAs' own
    sas = d.ctl_json("sa")["sas"].values()
    for cause in {k for s in sas for k in s if k.startswith("drop_")}:
        assert st[cause] == sum(s[cause] for s in sas), cause
    # the text view says the same
    text = d.ctl("stats", "esp").stdout.splitlines()
    assert text[0].split() == ["PROTOCOL", "esp"]
    rows = dict(line.split() for line in text[1:])
    assert {k: int(v) for k, v in rows.items()} == st


def test_unused_protocols_are_zero(run):
    d, _ = run
    for proto in ("ah", "ipcomp"):
        st = d.ctl_json("stats", proto)[proto]
        assert st and not any(st.values()), st


def test_totals_survive_sa_deletion(run):
    d, _ = run
    before = esp(d)
    with open(d.path) as f:
        cfg = yaml.safe_load(f)
    cfg["sas"], cfg["policies"] = [], []
    with open(d.path, "w") as f:
        yaml.safe_dump(cfg, f, sort_keys=False)
    d.proc.send_signal(signal.SIGHUP)
    d.wait_for(lambda: d.ctl_json("sa")["sas"] == {}, what="the SAs deleted")
    # the SAs are freed on the publish that removed them: the totals never dip meanwhile
    for _ in range(5):
        after = esp(d)
        assert after == dict(before, sas=0)
        time.sleep(0.1)


def test_bad_protocol_is_a_usage_error(run):
    d, _ = run
    r = d.ctl("stats", "gre", check=False)
    assert r.returncode == 2 and "esp, ah or ipcomp" in r.stderr
