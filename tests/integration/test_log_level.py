"""debug: log levels per subsystem (pfkey, store, dataplane), changed at run
time with dpsecctl log-level. The PF_KEY server logs a client's connection at
info and a refused message at debug: with debug.pfkey at warning neither shows; set
to debug by dpsecctl, both do, while the dataplane's level stays as it was.
"""
import time

from scapy.all import wrpcap

from dpsec import Daemon
from pfkey import ESP, GET, Client, msg
from test_esp_pcap import base_config, forget_runtime_dir


def levels(d):
    out = d.ctl("log-level").stdout.split()
    return dict(zip(out[::2], out[1::2]))


def pfkey_dump(d):
    c = Client(d.cfg["pfkey"]["socket"])
    c.send(msg(GET, ESP))   # no SA or address: refused, logged at debug
    c.drain()
    c.close()
    time.sleep(0.3)


def test_log_level_per_subsystem_at_run_time(tmp_path):
    cfg = base_config(str(tmp_path))
    cfg["debug"] = {"pfkey": "warning", "store": "notice"}
    wrpcap(f"{tmp_path}/LAN_IN.pcap", [])
    wrpcap(f"{tmp_path}/WAN_IN.pcap", [])
    d = Daemon(cfg, str(tmp_path))
    d.start()
    try:
        assert levels(d) == {"dataplane": "info", "pfkey": "warning", "store": "notice"}
        assert "metrics: http" not in d.read_log()   # the /metrics endpoint is off by default
        pfkey_dump(d)
        quiet = d.read_log()
        assert "pfkey: client pid" not in quiet and "message type" not in quiet
        r = d.ctl("log-level", "pfkey", "debug")
        assert dict(zip(r.stdout.split()[::2], r.stdout.split()[1::2]))["pfkey"] == "debug"
        pfkey_dump(d)
        loud = d.read_log()[len(quiet):]
        assert "pfkey: client pid" in loud and "message type 5" in loud, loud
        assert levels(d) == {"dataplane": "info", "pfkey": "debug", "store": "notice"}
        bad = d.ctl("log-level", "nosuch", "debug", check=False)
        assert bad.returncode == 1 and "unknown subsystem" in bad.stderr
        bad = d.ctl("log-level", "store", "loud", check=False)
        assert bad.returncode == 1 and "unknown level" in bad.stderr
    finally:
        d.stop()
        forget_runtime_dir(d)
