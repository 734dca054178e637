import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from dpsec import DPSECD, Topology  # noqa: E402


def pytest_configure(config):
    config.addinivalue_line("markers", "interop: slow tests against independent peers (run alone with -m interop)")
    config.addinivalue_line("markers", "package: builds, installs and purges the Debian package (run alone with -m package)")
    if os.geteuid() != 0:
        pytest.exit("integration tests need root (namespaces, hugepages)", returncode=2)
    if not os.access(DPSECD, os.X_OK):
        pytest.exit(f"{DPSECD} is not built: run scripts/build.sh", returncode=2)


@pytest.fixture
def topo():
    t = Topology()
    yield t
    t.close()
