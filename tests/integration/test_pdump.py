"""rte_pdump: DPDK's own dpdk-dumpcap captures dpsecd's ports on the wire side.

A secondary process probes every virtual device its primary tells it of, and
compressdev has no multi-process support: dpdk-dumpcap probing compress_isal
reset dpsecd's device and, at its exit, released dpsecd's queue pairs and
private-xform pool (and died with SIGSEGV). dpsecd shows secondaries its ports
only; the daemon here also compresses (an outbound IPComp SA) and must go on
compressing after dpdk-dumpcap has come and gone.

dpsecd runs with a shared configuration (eal.in_memory: false; rte_pdump needs
a secondary process to attach), lan replaying the tunnel's packets forever;
dpdk-dumpcap attached to it records what leaves on wan: ESP of the outbound
SA, decrypted here by the test's own ESP code back to what lan sent.
"""
import shutil
import subprocess
import tempfile

from scapy.all import IP, Ether, rdpcap, raw, wrpcap

from dpsec import Daemon
from test_esp_pcap import Tunnel, base_config, forget_runtime_dir, forwarded, frame_from_host
from test_ipcomp_pcap import COMPRESSIBLE, Sa


def test_dpdk_dumpcap_captures_the_wan_port():
    # a short directory: the secondary process gets the devices' arguments cut short
    w = tempfile.mkdtemp(prefix="ops13pd", dir="/tmp")
    t = Tunnel(1, "aes-gcm-128", n_out=3, n_in=0)
    cfg = base_config(w)
    cfg["eal"] = {"in_memory": False}
    cfg["ports"][0]["device"] = f"net_pcap0,rx_pcap={w}/LAN_IN.pcap,tx_pcap=/dev/null,infinite_rx=1"
    cfg["ports"][1]["device"] = f"net_pcap1,rx_pcap={w}/WAN_IN.pcap,tx_pcap=/dev/null"
    cfg["sas"] += t.sas()
    cfg["policies"] += t.policies()
    comp = Sa(7, 4, "tunnel")
    cfg["sas"].append(comp.cfg())
    cfg["policies"].append(comp.policy())
    lan = [Ether(f) for f in t.lan_frames()]
    lan.append(Ether(frame_from_host(IP(comp.packet(COMPRESSIBLE, 1000)))))
    wrpcap(f"{w}/LAN_IN.pcap", lan)
    wrpcap(f"{w}/WAN_IN.pcap", [])
    d = Daemon(cfg, w)
    d.start()
    try:
        r = subprocess.run(["dpdk-dumpcap", f"--file-prefix={d.prefix}", "-i", "net_pcap1", "-c", "8",
                            "-w", f"{w}/wan.pcapng"], capture_output=True, text=True, timeout=60)
        # after dumpcap's exit the compress device still works: IPComp out keeps growing
        st0 = d.ctl_json("stats", "ipcomp")["ipcomp"]
        d.wait_for(lambda: d.ctl_json("stats", "ipcomp")["ipcomp"]["out_packets"]
                   > st0["out_packets"] + 100, what="IPComp output after dpdk-dumpcap left")
        st1 = d.ctl_json("stats", "ipcomp")["ipcomp"]
        alive = d.proc.poll() is None
    finally:
        d.stop()
        forget_runtime_dir(d)
    log = d.read_log()
    pkts = rdpcap(f"{w}/wan.pcapng") if r.returncode == 0 else []
    shutil.rmtree(w)
    assert r.returncode == 0, r.stderr
    assert alive
    assert "compress" not in r.stderr           # no compress device probed in dumpcap
    assert {k: v for k, v in st1.items() if k.startswith("drop_")} == \
        {k: v for k, v in st0.items() if k.startswith("drop_")}
    assert "rte_pdump_init" not in log          # no warning: pdump is up
    assert len(pkts) >= 8
    esp = [raw(p)[14:] for p in pkts if raw(p)[14 + 9] == 50]
    assert len(esp) >= 5                         # 3 of each 4 frames lan replays
    want = {forwarded(x) for x in t.out_inner}
    for ip in esp:
        assert ip[9] == 50 and int.from_bytes(ip[20:24], "big") == t.spi_out
        assert t.sa_out.decrypt(ip[20:]).payload in want
