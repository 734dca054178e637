"""The Debian package: built with dpkg-buildpackage from debian/, installed, checked, purged.

Run it alone:  python3 -m pytest -m package tests/integration/test_package.py
It builds the whole tree (minutes on a small machine) and installs the package
system-wide, so it refuses to run where a package named dpsec is installed.
"""
import os
import shutil
import stat
import subprocess

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PKG = "dpsec"
FILES = ["/usr/sbin/dpsecd", "/usr/bin/dpsecctl", "/usr/lib/x86_64-linux-gnu/libdpsec_pfkey.so",
         "/etc/dpsec/dpsec.yaml", "/lib/systemd/system/dpsecd.service",
         "/usr/share/man/man8/dpsecd.8.gz", "/usr/share/man/man8/dpsecctl.8.gz",
         "/usr/share/man/man5/dpsec.yaml.5.gz", "/usr/share/man/man8/libdpsec_pfkey.8.gz",
         "/usr/share/bash-completion/completions/dpsecctl",
         "/usr/share/doc/dpsec/examples/esp-tunnel-gcm.yaml"]

pytestmark = pytest.mark.package


def run(cmd, **kw):
    return subprocess.run(cmd, capture_output=True, text=True, **kw)


@pytest.fixture(scope="module")
def deb(tmp_path_factory):
    if not shutil.which("dh"):
        pytest.skip("debhelper is not installed (apt-get install debhelper)")
    deps = run(["dpkg-checkbuilddeps"], cwd=ROOT)
    if deps.returncode:
        pytest.skip(f"build dependencies missing: {deps.stderr.strip()}")
    if run(["dpkg-query", "-W", "-f=${Status}", PKG]).stdout.startswith("install"):
        pytest.skip(f"a package {PKG} is installed here: not replacing it")
    # the tracked files as they are in the work tree (uncommitted changes included)
    top = tmp_path_factory.mktemp("operator-deb")
    src = top / "dpsec-0.1.0"
    files = run(["git", "-C", ROOT, "ls-files", "-z"], check=True).stdout.split("\0")
    for f in filter(None, files):
        if os.path.lexists(os.path.join(ROOT, f)):
            os.makedirs(src / os.path.dirname(f), exist_ok=True)
            shutil.copy2(os.path.join(ROOT, f), src / f, follow_symlinks=False)
    r = run(["dpkg-buildpackage", "-b", "-uc", "-us"], cwd=src, timeout=3600,
            env=dict(os.environ, DEB_BUILD_OPTIONS="parallel=2"))
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-4000:]
    debs = [p for p in top.iterdir() if p.name.startswith(f"{PKG}_") and p.suffix == ".deb"]
    assert len(debs) == 1, list(top.iterdir())
    return debs[0]


def test_package_installs_checks_and_purges(deb):
    listed = run(["dpkg-deb", "-c", str(deb)], check=True).stdout
    for f in FILES:
        assert f".{f}" in listed, f"{f} not in the package"
    r = run(["dpkg", "-i", str(deb)])
    assert r.returncode == 0, r.stdout + r.stderr
    try:
        for f in FILES:
            assert os.path.exists(f), f
        # keys live in the configuration: root only
        assert stat.S_IMODE(os.stat("/etc/dpsec/dpsec.yaml").st_mode) == 0o600
        r = run(["/usr/sbin/dpsecd", "--check", "-c", "/etc/dpsec/dpsec.yaml"])
        assert r.returncode == 0 and r.stdout.strip() == "/etc/dpsec/dpsec.yaml: ok", r.stdout + r.stderr
        r = run(["systemd-analyze", "verify", "/lib/systemd/system/dpsecd.service"])
        assert r.returncode == 0 and not r.stderr.strip(), r.stderr
        unit = open("/lib/systemd/system/dpsecd.service").read()
        assert "ExecStart=/usr/sbin/dpsecd -c /etc/dpsec/dpsec.yaml" in unit
        # installed, not enabled: the gateway would take the NICs over
        assert not os.path.exists("/etc/systemd/system/multi-user.target.wants/dpsecd.service")
        assert run(["man", "-w", "dpsecctl"]).returncode == 0
    finally:
        r = run(["dpkg", "--purge", PKG])
    assert r.returncode == 0, r.stdout + r.stderr
    for f in FILES:
        assert not os.path.exists(f), f"{f} left after purge"
    assert not os.path.exists("/etc/dpsec")
