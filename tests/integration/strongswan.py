"""Several strongSwan charon daemons on one machine, each in its own network namespace.

charon keeps its pid file at the compiled-in /run/charon.pid (not configurable) and refuses to start
when another charon's pid is in it, so each instance gets a private /run: it runs under
`ip netns exec` (which already gives it a mount namespace of its own, a slave of the host's) inside a
shell that mounts a tmpfs on /run before exec'ing charon.  Chosen subdirectories of the host's /run
(default: dpsec, where dpsecd's PF_KEY socket lives) are bound back into it.  Everything else an
instance uses is in its own directory: strongswan.conf (selected with STRONGSWAN_CONF), swanctl.conf,
the vici socket, charon's log.

    from strongswan import Charon, ikev2_psk
    gw = Charon("gwb", ns, workdir, plugins=Charon.LIBIPSEC)
    gw.add_conn("tun", ikev2_psk(local="192.0.2.2", remote="192.0.2.1",
                                  local_ts="10.2.0.0/24", remote_ts="10.1.0.0/24", psk=psk))
    gw.start()             # starts charon, waits for vici, loads swanctl.conf
    gw.initiate("tun")
    gw.wait_child("tun")   # -> the CHILD_SA as parsed from --list-sas
    gw.stop()              # SIGTERM, then SIGKILL; always safe to call again

Logs: gw.log() is charon's file log (IKE and kernel at level 2), gw.output() its stdout/stderr.
"""
import os
import re
import shlex
import signal
import subprocess
import time

CHARON = "/usr/lib/ipsec/charon"
SWANCTL = "/usr/sbin/swanctl"
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.environ.get("DPSEC_BUILD", os.path.join(ROOT, "build"))
# the preload library in the build tree; `meson install` (prefix /usr/local) puts it at
# /usr/local/lib/x86_64-linux-gnu/libdpsec_pfkey.so
PRELOAD = os.path.join(BUILD, "src/pfkey_emul/libdpsec_pfkey.so")

# Crypto and infrastructure every instance loads (an explicit list: Debian's default one names plugins
# that are not installed and logs a failure for each).  openssl gives AES-GCM/CBC, SHA-2, ECP and
# x25519; gmp MODP; gcm/aes/sha*/hmac the same algorithms for libipsec's userspace ESP when openssl
# lacks one.
BASE_PLUGINS = ("random nonce openssl aes sha1 sha2 hmac gcm gmp kdf pem pkcs1 pkcs8 x509 pubkey "
                "revocation constraints socket-default vici").split()


class Charon:
    """One charon instance in namespace ns.  plugins: the kernel interface plugins, in load order
    (the first one that provides kernel-ipsec wins, so it must precede kernel-netlink)."""

    LIBIPSEC = ("kernel-libipsec", "kernel-netlink")  # ESP in userspace on a TUN device
    PFKEY = ("kernel-pfkey!", "kernel-netlink")       # SAs/policies through PF_KEY (dpsecd via preload)
    NETLINK = ("kernel-netlink",)                     # the kernel's XFRM (needs ESP in the kernel)

    def __init__(self, name, ns, workdir, plugins=LIBIPSEC, env=None, keep_run=("dpsec",),
                 settings="", log_levels=None, include=(), binds=None):
        """plugins: None loads plugins the way Debian's /etc/strongswan.conf does (load_modular,
        /etc/strongswan.d/charon/*.conf).  env: extra environment for charon only (e.g. LD_PRELOAD,
        DPSEC_PFKEY_SOCKET).  keep_run: subdirectories of the host's /run to bind into the private
        /run.  settings: extra text inside the charon { } section of strongswan.conf.  include:
        strongswan.conf fragments included at its end (as Debian includes strongswan.d/*.conf).
        binds: {path: replacement} files bind-mounted in charon's own mount namespace only (e.g. a
        kernel-pfkey plugin built with dpsec's PF_KEY extensions over the installed one)."""
        self.name, self.ns = name, ns
        self.dir = os.path.join(workdir, f"charon-{name}")
        os.makedirs(self.dir, exist_ok=True)
        self.plugins = None if plugins is None else list(plugins)
        self.include = list(include)
        self.env = dict(env or {})
        self.keep_run = keep_run
        self.binds = dict(binds or {})
        self.settings = settings
        self.log_levels = {"default": 1, "ike": 2, "knl": 2, "net": 1, "esp": 2, "lib": 1}
        self.log_levels.update(log_levels or {})
        self.conf = os.path.join(self.dir, "strongswan.conf")
        self.swanctl_conf = os.path.join(self.dir, "swanctl.conf")
        self.vici = os.path.join(self.dir, "charon.vici")
        self.uri = f"unix://{self.vici}"
        self.log_path = os.path.join(self.dir, "charon.log")
        self.out_path = os.path.join(self.dir, "charon.out")
        self.conns = {}
        self.secrets = {}
        self.pools = {}  # swanctl.conf pools { name { addrs = ... } }, for virtual IPs
        self.proc = None
        self.outf = None

    # ---------------------------------------------------------------- configuration

    def add_conn(self, name, conn):
        """conn: dict as returned by ikev2_psk(); its 'psk' key becomes a secret."""
        conn = dict(conn)
        psk = conn.pop("psk", None)
        if psk is not None:
            ids = [conn.get("local", {}).get("id"), conn.get("remote", {}).get("id")]
            ids = [i for i in ids if i] or (list(conn.get("remote_addrs", "").split(",")))
            self.secrets[f"ike-{name}"] = {"secret": psk,
                                           **{f"id-{k}": v for k, v in enumerate(ids)}}
        self.conns[name] = conn
        return self

    def write_config(self):
        if self.plugins is None:
            load = "load_modular = yes"
            modular = "include /etc/strongswan.d/charon/*.conf"
        else:
            load = "load_modular = no\n\tload = " + " ".join(self.plugins + BASE_PLUGINS)
            modular = ""
        includes = "\n".join(f"include {p}" for p in self.include)
        levels = "\n".join(f"\t\t\t\t{k} = {v}" for k, v in self.log_levels.items())
        with open(self.conf, "w") as f:
            f.write(f"""# generated by tests/integration/strongswan.py for instance {self.name}
charon {{
	{load}
	# no retransmission back-off beyond a few seconds: tests bound their waits
	retransmit_tries = 3
	retransmit_timeout = 2.0
	retransmit_base = 1.4
	plugins {{
		{modular}
		vici {{
			socket = {self.uri}
		}}
	}}
	filelog {{
		instance {{
			path = {self.log_path}
			time_format = %H:%M:%S
			ike_name = yes
			flush_line = yes
			append = yes
{levels}
		}}
	}}
	syslog {{
		daemon {{
			default = -1
		}}
	}}
{self.settings}
}}
swanctl {{
	load = random nonce openssl pem pkcs1 pkcs8 x509 pubkey
}}
{includes}
""")
        body = {"connections": self.conns, "secrets": self.secrets}
        if self.pools:
            body["pools"] = self.pools
        with open(self.swanctl_conf, "w") as f:
            f.write(swanctl_format(body))

    # ---------------------------------------------------------------- process

    def start(self, timeout=20):
        """Start charon, wait for its vici socket, load the configuration."""
        self.launch()
        self.wait_ready(timeout)
        self.load()
        return self

    def launch(self):
        """Start charon without waiting for it (see wait_ready, wait_exit)."""
        self.write_config()
        for p in (self.vici,):
            if os.path.exists(p):
                os.unlink(p)
        hostrun = os.path.join(self.dir, "hostrun")
        os.makedirs(hostrun, exist_ok=True)
        # In the instance's own mount namespace: keep a view of the host's /run, hide it behind a
        # tmpfs, bind back the directories asked for, then become charon.
        script = ['set -e', 'mount --bind /run "$HOSTRUN"', 'mount -t tmpfs -o mode=0755 tmpfs /run']
        script += [f'mount --bind {shlex.quote(new)} {shlex.quote(old)}' for old, new in self.binds.items()]
        for sub in self.keep_run:
            if os.path.isdir(os.path.join("/run", sub)):
                script += [f'mkdir -p "/run/{sub}"', f'mount --bind "$HOSTRUN/{sub}" "/run/{sub}"']
        # self.env only for charon itself (not for ip, sh, mount: a preload library stays off them)
        charon_env = " ".join(shlex.quote(f"{k}={v}") for k, v in self.env.items())
        script += ['umount -l "$HOSTRUN"', f'exec env {charon_env} {CHARON}']
        env = dict(os.environ)
        env["STRONGSWAN_CONF"] = self.conf
        env["HOSTRUN"] = hostrun
        self.outf = open(self.out_path, "a")
        self.proc = subprocess.Popen(["ip", "netns", "exec", self.ns, "sh", "-c", "\n".join(script)],
                                     stdout=self.outf, stderr=subprocess.STDOUT, env=env,
                                     start_new_session=True)
        return self

    def wait_exit(self, timeout=15):
        """charon's exit code once it has exited on its own (AssertionError if still running)."""
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"charon {self.name} still running after {timeout}s\n{self.report()}")

    def wait_ready(self, timeout=20):
        """Wait until charon answers on its vici socket."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"charon {self.name} exited {self.proc.returncode}\n{self.report()}")
            if os.path.exists(self.vici) and self.swanctl("--stats", check=False).returncode == 0:
                return self
            time.sleep(0.1)
        raise AssertionError(f"charon {self.name}: vici not ready in {timeout}s\n{self.report()}")

    def swanctl(self, *args, check=True, timeout=30):
        env = dict(os.environ, STRONGSWAN_CONF=self.conf)
        r = subprocess.run([SWANCTL, *args, "--uri", self.uri], capture_output=True, text=True,
                           timeout=timeout, env=env)
        if check and r.returncode != 0:
            raise AssertionError(f"swanctl {' '.join(args)} on {self.name} failed ({r.returncode}):\n"
                                 f"{r.stdout}{r.stderr}\n{self.report()}")
        return r

    def load(self):
        """(Re)load connections and secrets from the generated swanctl.conf."""
        self.write_config()
        return self.swanctl("--load-all", "--noprompt", "--file", self.swanctl_conf)

    def initiate(self, child, ike=None, timeout=20):
        """Initiate a CHILD_SA (and its IKE_SA); swanctl waits for the result (bounded)."""
        args = ["--initiate", "--child", child, "--timeout", str(timeout)]
        if ike:
            args += ["--ike", ike]
        return self.swanctl(*args, timeout=timeout + 10)

    def terminate(self, child=None, ike=None, timeout=20):
        args = ["--terminate", "--timeout", str(timeout)]
        if child:
            args += ["--child", child]
        if ike:
            args += ["--ike", ike]
        return self.swanctl(*args, timeout=timeout + 10)

    def rekey(self, child=None, ike=None):
        args = ["--rekey"]
        if child:
            args += ["--child", child]
        if ike:
            args += ["--ike", ike]
        return self.swanctl(*args)

    def list_sas(self):
        """IKE_SAs as {ike name: dict}; each dict has the vici keys ('state', 'local-host', ...)
        and 'child-sas': {child unique name: dict ('name', 'state', 'spi-in', 'encr-alg', ...)}."""
        r = self.swanctl("--list-sas", "--pretty")
        out = {}
        for msg in parse_pretty(r.stdout):
            out.update(msg)
        return out

    def children(self, name=None, state="INSTALLED"):
        """CHILD_SAs (optionally only those of config name) in the given state."""
        found = []
        for ike in self.list_sas().values():
            for child in (ike.get("child-sas") or {}).values():
                if (name is None or child.get("name") == name) and (state is None or child.get("state") == state):
                    found.append(child)
        return found

    def wait_child(self, name, timeout=20, state="INSTALLED"):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"charon {self.name} exited {self.proc.returncode}\n{self.report()}")
            found = self.children(name, state)
            if found:
                return found[0]
            time.sleep(0.2)
        raise AssertionError(f"charon {self.name}: no {state} CHILD_SA {name} in {timeout}s\n{self.report()}")

    def log(self):
        return _read(self.log_path)

    def output(self):
        return _read(self.out_path)

    def report(self, lines=80):
        """The tail of charon's log and output, for assertion messages."""
        log = "\n".join(self.log().splitlines()[-lines:])
        return f"--- charon {self.name} log ({self.log_path}) ---\n{log}\n--- output ---\n{self.output()[-3000:]}"

    def stop(self, timeout=10):
        """SIGTERM, then SIGKILL after timeout.  Returns charon's exit code (None if never started)."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            try:
                self.proc.send_signal(signal.SIGTERM)
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        if self.outf:
            self.outf.close()
            self.outf = None
        return self.proc.returncode


def pfkey_env(socket_path, preload=PRELOAD):
    """Environment for an instance whose kernel-pfkey plugin talks to dpsecd (use with
    plugins=Charon.PFKEY): the preload library turns charon's PF_KEY sockets into connections to
    dpsecd's socket.  A socket under /run must be in a directory named in keep_run."""
    return {"LD_PRELOAD": preload, "DPSEC_PFKEY_SOCKET": socket_path}


def _read(path):
    try:
        with open(path, errors="replace") as f:
            return f.read()
    except OSError:
        return ""


# -------------------------------------------------------------------- swanctl.conf


def ikev2_psk(local, remote, local_ts, remote_ts, psk, child="tun", ike_proposals="aes128-sha256-modp2048",
              esp_proposals="aes128gcm16", mode="tunnel", start_action="none", rekey_time=None,
              life_time=None, ike_rekey_time=None, local_id=None, remote_id=None, dpd_delay=None,
              encap=None, replay_window=None, **child_extra):
    """A swanctl connection dict: IKEv2, pre-shared key, one CHILD_SA named child.
    local/remote: IKE addresses; local_ts/remote_ts: traffic selectors (str or list);
    start_action: none, trap or start; rekey_time/life_time: the CHILD_SA's (e.g. '30s', '1h')."""
    def lst(v):
        return ",".join(v) if isinstance(v, (list, tuple)) else v

    ch = {"mode": mode, "local_ts": lst(local_ts), "remote_ts": lst(remote_ts),
          "esp_proposals": lst(esp_proposals), "start_action": start_action}
    for k, v in (("rekey_time", rekey_time), ("life_time", life_time), ("replay_window", replay_window)):
        if v is not None:
            ch[k] = v
    ch.update(child_extra)
    conn = {"version": 2, "local_addrs": local, "remote_addrs": remote,
            "proposals": lst(ike_proposals),
            "local": {"auth": "psk", "id": local_id or local},
            "remote": {"auth": "psk", "id": remote_id or remote},
            "children": {child: ch}, "psk": psk}
    if ike_rekey_time is not None:
        conn["rekey_time"] = ike_rekey_time
    if dpd_delay is not None:
        conn["dpd_delay"] = dpd_delay
    if encap is not None:
        conn["encap"] = "yes" if encap else "no"
    return conn


def swanctl_format(d, indent=0):
    """Nested dicts -> swanctl.conf text (sections for dicts, key = value otherwise)."""
    pad = "\t" * indent
    out = []
    for k, v in d.items():
        if isinstance(v, dict):
            out.append(f"{pad}{k} {{")
            out.append(swanctl_format(v, indent + 1))
            out.append(f"{pad}}}")
        elif isinstance(v, bool):
            out.append(f"{pad}{k} = {'yes' if v else 'no'}")
        else:
            out.append(f"{pad}{k} = {v}")
    return "\n".join(x for x in out if x != "")


# -------------------------------------------------------------------- swanctl --pretty


_LIST = re.compile(r"^(\S+) \[$")
_KV = re.compile(r"^(\S+) = (.*)$")


def parse_pretty(text):
    """swanctl's --pretty output (one vici message per event, e.g. 'list-sa event {') as a list of
    dicts, one per message: sections become dicts, lists lists, values strings."""
    msgs = []
    stack = []
    list_key = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line:
            continue
        if list_key is not None:
            if line == "]":
                list_key = None
            else:
                stack[-1][list_key].append(line)
            continue
        if line.endswith(" {"):
            key = line[:-2]
            if not stack:            # message header such as 'list-sa event {'
                msg = {}
                msgs.append(msg)
                stack.append(msg)
            else:
                new = {}
                stack[-1][key] = new
                stack.append(new)
            continue
        if line == "}":
            if stack:
                stack.pop()
            continue
        m = _LIST.match(line)
        if m and stack:
            stack[-1][m.group(1)] = []
            list_key = m.group(1)
            continue
        m = _KV.match(line)
        if m and stack:
            stack[-1][m.group(1)] = m.group(2)
    return msgs
