"""EAL's IOVA mode: with software devices alone (no configured device is PCI)
dpsecd asks for virtual addresses (`--iova-mode=va`: no page-map walk at
start-up, a shorter restart); an IOVA mode in eal.extra_args wins."""
import pytest
from scapy.all import wrpcap

from dpsec import Daemon
from test_esp_pcap import base_config


@pytest.mark.parametrize("extra,mode", [(None, "VA"), (["--iova-mode=pa"], "PA")],
                         ids=["default", "extra-args-pa"])
def test_iova_mode(tmp_path, extra, mode):
    w = str(tmp_path)
    wrpcap(f"{w}/LAN_IN.pcap", [])
    wrpcap(f"{w}/WAN_IN.pcap", [])
    cfg = base_config(w)
    cfg["log_level"] = "info"
    if extra:
        cfg["eal"] = {"extra_args": extra}
    d = Daemon(cfg, w).start()
    assert d.stop() == 0
    lines = [ln for ln in d.read_log().splitlines() if "Selected IOVA mode" in ln]
    assert lines == [f"EAL: Selected IOVA mode '{mode}'"], d.read_log()
