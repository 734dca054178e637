"""dpsecctl metrics: the Prometheus text exposition, parsed and compared with --json.

The daemon of test_dpsecctl_views (tunnels, traffic through one). The text is
read by a strict parser of the text format 0.0.4 written here (and, where
python3-prometheus-client is installed, by its parser too); every counter of
every port, worker, SA and policy that --json shows must be there once, with
its labels, and with a value between the JSON read before and after it
(worker loop counters and ages move while we look).
"""
import math
import re
import urllib.error
import urllib.request

import pytest

from test_dpsecctl_views import gw  # noqa: F401

NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
LABEL = r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\\\|\\"|\\n)*)"'
SAMPLE = re.compile(rf"^({NAME})(?:\{{((?:{LABEL})(?:,{LABEL})*)?\}})? (\S+)$")


def unescape(s):
    return re.sub(r"\\(.)", lambda m: {"n": "\n"}.get(m.group(1), m.group(1)), s)


def parse_strict(text):
    """{(name, frozenset(labels)): value}; asserts the text format's rules on the way."""
    assert text.endswith("\n")
    types, helps, samples, done, current = {}, {}, {}, set(), None
    for line in text.splitlines():
        if line.startswith("# HELP "):
            name, _, doc = line[7:].partition(" ")
            assert re.fullmatch(NAME, name) and name not in helps, line
            helps[name] = doc
            continue
        if line.startswith("# TYPE "):
            name, _, typ = line[7:].partition(" ")
            assert typ in ("counter", "gauge") and name not in types, line
            assert name not in done, f"{name}: TYPE after its samples"
            types[name] = typ
            continue
        assert not line.startswith("#") and line.strip(), f"unexpected line {line!r}"
        m = SAMPLE.match(line)
        assert m, f"not a sample: {line!r}"
        name, value = m.group(1), m.group(len(m.groups()))
        assert name in types, f"{name}: sample without TYPE"
        if name != current:
            assert name not in done, f"{name}: samples not together"
            done.add(current)
            current = name
        if types[name] == "counter":
            assert name.endswith("_total"), name
        labels = dict((k, unescape(v)) for k, v in re.findall(LABEL, m.group(2) or ""))
        key = (name, frozenset(labels.items()))
        assert key not in samples, f"duplicate series {line}"
        v = float(value)
        assert not math.isnan(v) and (types[name] != "counter" or v >= 0), line
        samples[key] = v
    assert set(helps) == set(types)
    return samples, types


def metric(field, counter):
    name = field[:-2] + "_seconds" if field.endswith("_s") else field
    return name + ("_total" if counter else "")


def snapshot(gw):
    stats = gw.ctl_json("stats")
    return {"port": stats["ports"], "worker": stats["workers"], "sa": gw.ctl_json("sa")["sas"],
            "policy": gw.ctl_json("policy")["policies"],
            "proto": {p: gw.ctl_json("stats", p)[p] for p in ("esp", "ah", "ipcomp")}}


def find(samples, name, **labels):
    got = [v for (n, ls), v in samples.items() if n == name and set(labels.items()) <= ls]
    assert len(got) == 1, f"{name}{labels}: {len(got)} samples"
    return got[0]


def check_between(before, after, v, what):
    assert before <= v <= after, f"{what}: {v} not within [{before}, {after}]"


def test_metrics_parse_and_match_json(gw):  # noqa: F811
    before = snapshot(gw)
    text = gw.ctl("metrics").stdout
    after = snapshot(gw)
    samples, types = parse_strict(text)

    for kind in ("port", "worker"):
        assert before[kind], kind
        for key, counters in after[kind].items():
            for field, v in counters.items():
                if field == "lcore":
                    continue
                name = f"dpsec_{kind}_{metric(field, True)}"
                assert types[name] == "counter"
                check_between(before[kind][key][field], v, find(samples, name, **{kind: key}), name)
    for w, counters in after["worker"].items():
        find(samples, "dpsec_worker_rx_packets_total", worker=w, lcore=str(counters["lcore"]))

    assert any(s["packets"] for s in after["sa"].values())
    for key, s in after["sa"].items():
        lab = {"sa": str(s["id"]), "spi": s["spi"], "dir": s["dir"], "src": s["src"], "dst": s["dst"]}
        for field in [f for f in s if f in ("packets", "bytes") or f.startswith("drop_")]:
            name = f"dpsec_sa_{metric(field, True)}"
            assert types[name] == "counter"
            check_between(before["sa"][key][field], s[field], find(samples, name, **lab), name)
        for field in ("age_s", "hard_add_s", "hard_bytes", "soft_add_s"):
            name = f"dpsec_sa_{metric(field, False)}"
            assert types[name] == "gauge"
            check_between(before["sa"][key][field], s[field], find(samples, name, **lab), name)

    for proto in ("esp", "ah", "ipcomp"):
        for field in after["proto"][proto]:
            name = f"dpsec_ipsec_{metric(field, field != 'sas')}"
            assert types[name] == ("gauge" if field == "sas" else "counter")
            check_between(before["proto"][proto][field], after["proto"][proto][field],
                          find(samples, name, proto=proto), name)
    assert find(samples, "dpsec_ipsec_out_packets_total", proto="esp") > 0

    for key, p in after["policy"].items():
        lab = {"policy": str(p["id"]), "dir": p["dir"], "action": p["action"]}
        check_between(before["policy"][key]["hits"], p["hits"],
                      find(samples, "dpsec_policy_hits_total", **lab), key)
        check_between(before["policy"][key]["age_s"], p["age_s"],
                      find(samples, "dpsec_policy_age_seconds", **lab), key)


def test_metrics_by_prometheus_client_parser(gw):  # noqa: F811
    """Only where python3-prometheus-client is installed (the strict parser above always runs)."""
    parser = pytest.importorskip("prometheus_client.parser")
    fams = {f.name: f for f in parser.text_string_to_metric_families(gw.ctl("metrics").stdout)}
    sas = gw.ctl_json("sa")["sas"].values()
    got = {s.labels["spi"]: s.value for f in fams.values() for s in f.samples
           if s.name == "dpsec_sa_packets_total"}
    assert got == {s["spi"]: s["packets"] for s in sas}


def http_get(gw, path):  # noqa: F811
    url = f"http://127.0.0.1:{gw.cfg['metrics']['port']}{path}"
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.status, r.headers["Content-Type"], r.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, None, None


def test_http_metrics_endpoint(gw):  # noqa: F811
    """dpsecd's own GET /metrics (libmicrohttpd, metrics: enabled, localhost by
    default): the same families and series as dpsecctl metrics, values between
    two readings of it, and readable by prometheus_client's parser."""
    parser = pytest.importorskip("prometheus_client.parser")
    before, _ = parse_strict(gw.ctl("metrics").stdout)
    status, ctype, text = http_get(gw, "/metrics")
    after, types = parse_strict(gw.ctl("metrics").stdout)
    assert status == 200 and ctype.startswith("text/plain; version=0.0.4")
    samples, http_types = parse_strict(text)
    assert http_types == types and set(samples) == set(after)
    for key, v in samples.items():
        lo, hi = sorted((before[key], after[key])) if not key[0].endswith("_seconds") else (before[key] - 1,
                                                                                           after[key] + 1)
        assert lo <= v <= hi, (key, before[key], v, after[key])
    fams = {f.name: f for f in parser.text_string_to_metric_families(text)}
    got = {s.labels["spi"]: s.value for f in fams.values() for s in f.samples if s.name == "dpsec_sa_packets_total"}
    assert got == {s["spi"]: s["packets"] for s in gw.ctl_json("sa")["sas"].values()}
    assert http_get(gw, "/other")[0] == 404
    assert f"metrics: http://127.0.0.1:{gw.cfg['metrics']['port']}/metrics" in gw.read_log()


def test_strict_parser_rejects_bad_text():
    """The parser above is the test's judge: it must catch what it claims to."""
    good = "# HELP a_total x\n# TYPE a_total counter\na_total{p=\"l\\\"an\"} 1\n"
    assert parse_strict(good)[0] == {("a_total", frozenset({("p", 'l"an')})): 1.0}
    for bad in ["a_total 1\n",                                              # no TYPE
                "# HELP a x\n# TYPE a counter\na 1\n",                       # counter without _total
                good + "a_total{p=\"l\\\"an\"} 2\n",                         # duplicate series
                good.replace('"l\\"an"', '"l"an"'),                          # bad escaping
                good + "# HELP b x\n# TYPE b gauge\nb 1\na_total{p=\"x\"} 1\n",  # split family
                good + "# TYPE c gauge\nc 1\n"]:                             # TYPE without HELP
        with pytest.raises(AssertionError):
            parse_strict(bad)
