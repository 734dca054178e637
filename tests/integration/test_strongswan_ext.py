"""charon over dpsec's PF_KEY extensions (src/pfkey_emul/pfkeyv2_ext.h) end to end:
replay_window = 1024 (SADB_X_EXT_SA_REPLAY) with AES-GCM and ChaCha20-Poly1305
(dpsec's algorithm id), in force on dpsecd's dataplane, and MOBIKE. Stock
charon with kernel-libipsec (the only other peer this kernel allows) refuses
ESN ("IPsec SA: ESN not supported", libipsec's ipsec_sa.c), so ESN runs
between two dpsecd gateways, each keyed by charon over PF_KEY
(test_esn_and_window_1024_between_two_dpsecd_gateways; ESN's wire format is
checked against scapy in test_pfkey_ext.py). Otherwise the topology of
test_strongswan_e2e.py:

    site A host ---- [lan] dpsecd [wan] ====== internet ====== gateway B ---- site B host
    10.1.0.2        10.1.0.1     192.0.2.1                    192.0.2.2  10.2.0.1   10.2.0.2
                    charon A (kernel-pfkey + extensions)          charon B (kernel-libipsec)

charon A's kernel-pfkey plugin must be built with the extensions
(scripts/strongswan-pfkey.sh does so). If the installed one is not (built
by an older setup), the test builds one from the unpacked source the script
left in its cache and bind-mounts it over the installed file in charon A's
own mount namespace only.
"""
import glob
import os
import secrets
import subprocess
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "peer"))

from dpsec import Daemon, sh  # noqa: E402
from strongswan import Charon, ikev2_psk, pfkey_env  # noqa: E402
from topology import Netns, TcpTransfer, make_payload, ping  # noqa: E402
from test_strongswan_e2e import (A, B, GWA, GWB, LAN_A, LAN_B, NET_A, NET_B, Env,  # noqa: E402
                                 dpsecd_config, two_sites)

pytestmark = pytest.mark.interop

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EXT_HDR = os.path.join(ROOT, "src", "pfkey_emul", "pfkeyv2_ext.h")
PLUGIN = "/usr/lib/ipsec/plugins/libstrongswan-kernel-pfkey.so"
CACHE = os.environ.get("DPSEC_STRONGSWAN_CACHE", "/var/cache/dpsec/strongswan")
NO_ESN = b"extended sequence numbers (ESN) not supported by kernel!"


def ext_plugin(outdir):
    """None if the installed plugin has the extensions compiled in, else the path of one built
    here the way scripts/strongswan-pfkey.sh builds it (its Makefile's compile line, read-only)."""
    with open(PLUGIN, "rb") as f:
        if NO_ESN not in f.read():
            return None
    trees = sorted(glob.glob(os.path.join(CACHE, "strongswan-*", "src/libcharon/plugins/kernel_pfkey")))
    assert trees, f"no configured strongSwan source under {CACHE}: run scripts/strongswan-pfkey.sh"
    plugdir = trees[-1]
    compile_line = subprocess.run(["make", "-s", "--eval=pv: ; @echo $(COMPILE)", "pv"], cwd=plugdir,
                                  check=True, capture_output=True, text=True).stdout.strip()
    objs = []
    for src in ("kernel_pfkey_plugin", "kernel_pfkey_ipsec"):
        obj = os.path.join(outdir, src + ".o")
        subprocess.run(compile_line.split() + ["-fPIC", "-include", EXT_HDR, "-c", src + ".c",
                                               "-o", obj], cwd=plugdir, check=True)
        objs.append(obj)
    so = os.path.join(outdir, "libstrongswan-kernel-pfkey.so")
    subprocess.run(["gcc", "-shared", "-Wl,-z,relro", "-o", so] + objs, check=True)
    with open(so, "rb") as f:
        assert NO_ESN not in f.read(), "the plugin was built without the extensions"
    return so


@pytest.fixture(scope="module")
def topo(tmp_path_factory):
    net = Netns("sx")
    e = Env()
    e.net = net
    try:
        two_sites(e, net, ("ha", "gwa", "gwb", "hb"), "x", tmp_path_factory.mktemp("strongswan_ext"),
                  4 << 20)
        plugin = ext_plugin(str(e.dir))
        e.binds = {PLUGIN: plugin} if plugin else {}
        yield e
    finally:
        net.close()


def sas(d):
    return {int(s["spi"], 16): s for s in d.ctl_json("sa")["sas"].values()}


@pytest.mark.parametrize("esp", ["aes128gcm16", "chacha20poly1305"])
def test_replay_window_1024_through_charon(topo, esp):
    e = topo
    d = Daemon(dpsecd_config(e, esp), str(e.dir), ns=e.gwa, name=f"dpsecd-{esp}").start()
    psk = secrets.token_hex(16)
    cb = Charon(f"b-{esp}", e.gwb, str(e.dir), plugins=Charon.LIBIPSEC)
    ca = Charon(f"a-{esp}", e.gwa, str(e.dir), plugins=Charon.PFKEY, env=pfkey_env(e.sock),
                settings="\tinstall_routes = no\n", binds=e.binds)
    try:
        cb.add_conn("site", ikev2_psk(GWB, GWA, NET_B, NET_A, psk, child="net", esp_proposals=esp))
        cb.start()
        ca.add_conn("site", ikev2_psk(GWA, GWB, NET_A, NET_B, psk, child="net", esp_proposals=esp,
                                      start_action="start", replay_window=1024))
        ca.start()
        ca.wait_child("net", timeout=30)
        live = d.wait_for(lambda: len(sas(d)) == 2 and sas(d), what="an SA pair in dpsecd")
        by_dir = {s["dir"]: s for s in live.values()}
        enc = "aes-gcm" if "gcm" in esp else "chacha20-poly1305"
        assert by_dir["in"]["enc"] == by_dir["out"]["enc"] == enc
        assert by_dir["in"]["replay_window"] == 1024  # beyond sadb_sa_replay's 32 from charon
        ping(e.ha, B, count=5)
        ping(e.hb, A, count=5)
        ab = TcpTransfer(e.ha, e.hb, B, 5001, e.data, str(e.dir / f"ab-{esp}.out")).start()
        ba = TcpTransfer(e.hb, e.ha, A, 5002, e.data, str(e.dir / f"ba-{esp}.out")).start()
        assert ab.wait(timeout=120) == e.data_sha and ba.wait(timeout=120) == e.data_sha
        after = sas(d)
        assert after[[k for k, s in after.items() if s["dir"] == "in"][0]]["packets"] > 1000
        assert all(s["drop_auth"] == 0 for s in after.values())
    finally:
        ca.stop()
        cb.stop()
        rc = d.stop()
        assert rc == 0, d.read_log()


GWB2 = "192.0.2.3"


def test_mobike_gateway_b_moves_mid_transfer(topo):
    """Gateway B (stock charon, MOBIKE) moves from 192.0.2.2 to 192.0.2.3 during a TCP
    transfer each way: charon A follows through PF_KEY (GET + UPDATE with
    SADB_X_EXT_NEW_ADDRESS_SRC/DST, policies updated) and the transfers complete intact."""
    e = topo
    d = Daemon(dpsecd_config(e, "mobike"), str(e.dir), ns=e.gwa, name="dpsecd-mobike").start()
    psk = secrets.token_hex(16)
    cb = Charon("b-mobike", e.gwb, str(e.dir), plugins=Charon.LIBIPSEC)
    ca = Charon("a-mobike", e.gwa, str(e.dir), plugins=Charon.PFKEY, env=pfkey_env(e.sock),
                settings="\tinstall_routes = no\n", binds=e.binds)
    moved = False
    try:
        # B initiates from whichever address routing gives it; A accepts B by its identity
        cb.add_conn("site", ikev2_psk("%any", GWA, NET_B, NET_A, psk, child="net",
                                      local_id=GWB, start_action="start"))
        ca.add_conn("site", ikev2_psk(GWA, "%any", NET_A, NET_B, psk, child="net", remote_id=GWB))
        ca.start()
        cb.start()
        ca.wait_child("net", timeout=30)
        d.wait_for(lambda: len(sas(d)) == 2, what="an SA pair in dpsecd")
        ping(e.ha, B, count=3)
        ab = TcpTransfer(e.ha, e.hb, B, 5101, e.data, str(e.dir / "mobike-ab.out")).start()
        ba = TcpTransfer(e.hb, e.ha, A, 5102, e.data, str(e.dir / "mobike-ba.out")).start()
        # the new address is a secondary one: promoted when the primary goes, not deleted with it
        sh(["sysctl", "-qw", f"net.ipv4.conf.{e.out_if}.promote_secondaries=1"], ns=e.gwb)
        sh(["ip", "addr", "add", GWB2 + "/24", "dev", e.out_if], ns=e.gwb)
        sh(["ip", "addr", "del", GWB + "/24", "dev", e.out_if], ns=e.gwb)
        moved = True

        def followed():
            s = list(sas(d).values())
            by = {x["dir"]: x for x in s}
            return len(s) == 2 and by["out"]["dst"] == GWB2 and by["in"]["src"] == GWB2 and by
        by = d.wait_for(followed, timeout=30, what="dpsecd's SAs moved to gateway B's new address")
        assert ab.wait(timeout=120) == e.data_sha
        assert ba.wait(timeout=120) == e.data_sha
        assert all(x["drop_auth"] == 0 for x in by.values())
        ping(e.ha, B, count=3)
        ping(e.hb, A, count=3)
        assert "updating SAD entry" in ca.log() and "address changes are not supported" not in ca.log()
    finally:
        ca.stop()
        cb.stop()
        if moved:
            sh(["ip", "addr", "del", GWB2 + "/24", "dev", e.out_if], ns=e.gwb, check=False)
            sh(["ip", "addr", "add", GWB + "/24", "dev", e.out_if], ns=e.gwb, check=False)
        rc = d.stop()
        assert rc == 0, d.read_log()


def gateway_config(lan_if, wan_if, tap_lan, tap_wan, lan, wan, remote_net, remote_gw, sock, name, workdir):
    return {
        "log_level": "info",
        "ports": [
            {"name": "lan", "device": f"net_af_packet0,iface={lan_if}", "role": "protected",
             "exception_iface": tap_lan, "addresses": [lan + "/24"]},
            {"name": "wan", "device": f"net_af_packet1,iface={wan_if}", "role": "unprotected",
             "exception_iface": tap_wan, "addresses": [wan + "/24"]},
        ],
        "routes": [{"prefix": remote_net, "via": remote_gw, "port": "wan"}],
        "pfkey": {"socket": sock, "state": os.path.join(workdir, f"{name}.state")},
    }


@pytest.mark.parametrize("esp", ["aes128gcm16-esn", "chacha20poly1305-esn"])
def test_esn_and_window_1024_between_two_dpsecd_gateways(tmp_path, esp):
    """ESN needs a peer that runs it, which charon's libipsec does not: both gateways are
    dpsecd keyed by charon over PF_KEY with the extensions. ESN and a 1024-packet window
    are negotiated and in force on both dataplanes; pings and TCP each way cross."""
    net = Netns("sz")
    made = []
    try:
        ha, gwa, gwb, hb = net.ns("ha"), net.ns("gwa"), net.ns("gwb"), net.ns("hb")
        a_if, alan_if = net.link(ha, gwa, kernel_off=(gwa,))
        awan_if, bwan_if = net.link(gwa, gwb, kernel_off=(gwa, gwb))
        blan_if, b_if = net.link(gwb, hb, kernel_off=(gwb,))
        net.addrs(ha, a_if, [A + "/24"])
        net.addrs(hb, b_if, [B + "/24"])
        for ns, gw in ((ha, LAN_A), (hb, LAN_B)):
            sh(["ip", "route", "replace", "default", "via", gw], ns=ns)
        for ns in (gwa, gwb):
            sh(["sysctl", "-qw", "net.ipv6.conf.default.router_solicitations=0"], ns=ns)
        plugin = ext_plugin(str(tmp_path))
        binds = {PLUGIN: plugin} if plugin else {}
        data = str(tmp_path / "payload")
        data_sha = make_payload(data, 4 << 20)
        psk = secrets.token_hex(16)
        side = {}
        for tag, ns, lan_if, wan_if, lan, wan, rnet, rgw in (
                ("a", gwa, alan_if, awan_if, LAN_A, GWA, NET_B, GWB),
                ("b", gwb, blan_if, bwan_if, LAN_B, GWB, NET_A, GWA)):
            sock = str(tmp_path / f"pfkey-{tag}.sock")
            cfg = gateway_config(lan_if, wan_if, f"z{tag}l{net.tag}"[:15], f"z{tag}w{net.tag}"[:15], lan,
                                 wan, rnet, rgw, sock, f"dpsecd-{tag}", str(tmp_path))
            d = Daemon(cfg, str(tmp_path), ns=ns, name=f"dpsecd-{tag}").start()
            made.append(d)
            c = Charon(f"{tag}-esn", ns, str(tmp_path), plugins=Charon.PFKEY, env=pfkey_env(sock),
                       settings="\tinstall_routes = no\n", binds=binds)
            made.append(c)
            side[tag] = (d, c)
        (da, ca), (db, cb) = side["a"], side["b"]
        cb.add_conn("site", ikev2_psk(GWB, GWA, NET_B, NET_A, psk, child="net", esp_proposals=esp,
                                      replay_window=1024))
        cb.start()
        ca.add_conn("site", ikev2_psk(GWA, GWB, NET_A, NET_B, psk, child="net", esp_proposals=esp,
                                      start_action="start", replay_window=1024))
        ca.start()
        ca.wait_child("net", timeout=40)
        enc = "aes-gcm" if "gcm" in esp else "chacha20-poly1305"
        for d, c in ((da, ca), (db, cb)):
            live = d.wait_for(lambda: len(sas(d)) == 2 and sas(d), what="an SA pair")
            by = {s["dir"]: s for s in live.values()}
            assert by["in"]["esn"] == 1 and by["out"]["esn"] == 1
            assert by["in"]["replay_window"] == 1024 and by["in"]["enc"] == enc
            assert "using extended sequence numbers (ESN)" in c.log()
        ping(ha, B, count=5)
        ping(hb, A, count=5)
        ab = TcpTransfer(ha, hb, B, 5201, data, str(tmp_path / "ab.out")).start()
        ba = TcpTransfer(hb, ha, A, 5202, data, str(tmp_path / "ba.out")).start()
        assert ab.wait(timeout=120) == data_sha and ba.wait(timeout=120) == data_sha
        for d in (da, db):
            assert all(s["drop_auth"] == 0 and s["packets"] > 0 for s in sas(d).values())
    finally:
        errs = []
        for x in reversed(made):
            if isinstance(x, Charon):
                x.stop()
            elif x.stop() != 0:
                errs.append(x.read_log())
        net.close()
        assert not errs, errs
