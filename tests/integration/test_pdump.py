"""rte_pdump: DPDK's own dpdk-dumpcap captures dpsecd's ports on the wire side.

dpsecd runs with a shared configuration (eal.in_memory: false; rte_pdump needs
a secondary process to attach), lan replaying the tunnel's packets forever;
dpdk-dumpcap attached to it records what leaves on wan: ESP of the outbound
SA, decrypted here by the test's own ESP code back to what lan sent.
"""
import shutil
import subprocess
import tempfile

from scapy.all import Ether, rdpcap, raw, wrpcap

from dpsec import Daemon
from test_esp_pcap import Tunnel, base_config, forget_runtime_dir, forwarded


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
    wrpcap(f"{w}/LAN_IN.pcap", [Ether(f) for f in t.lan_frames()])
    wrpcap(f"{w}/WAN_IN.pcap", [])
    d = Daemon(cfg, w)
    d.start()
    try:
        r = subprocess.run(["dpdk-dumpcap", f"--file-prefix={d.prefix}", "-i", "net_pcap1", "-c", "3",
                            "-w", f"{w}/wan.pcapng"], capture_output=True, text=True, timeout=60)
    finally:
        d.stop()
        forget_runtime_dir(d)
    log = d.read_log()
    pkts = rdpcap(f"{w}/wan.pcapng") if r.returncode == 0 else []
    shutil.rmtree(w)
    assert r.returncode == 0, r.stderr
    assert "rte_pdump_init" not in log          # no warning: pdump is up
    assert len(pkts) >= 3
    want = {forwarded(x) for x in t.out_inner}
    for p in pkts:
        ip = raw(p)[14:]
        assert ip[9] == 50 and int.from_bytes(ip[20:24], "big") == t.spi_out
        assert t.sa_out.decrypt(ip[20:]).payload in want
