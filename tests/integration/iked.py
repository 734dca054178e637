"""OpenBSD's iked (Debian's `openiked`) as a key daemon in a network namespace, keying dpsecd
through the preload library.

iked keeps its control socket at /var/run/iked.sock unless told otherwise (-s) and reads its
keys from /etc/iked; it runs privilege-separated (a parent that opens the PF_KEY socket and
hands it to its `ikev2` process, which chroots into /var/lib/openiked/empty). Each instance
gets a private /run (a tmpfs mounted in the mount namespace `ip netns exec` already gives it)
and its own configuration file and control socket in its work directory. The preload library
is in the environment of iked only (never of ip, sh or mount); iked's children inherit it
when iked re-executes itself for each process, and the PF_KEY socket they use is the one the
parent connected to dpsecd.

    ik = Iked("a", ns, workdir, pfkey_env(sock))
    ik.start(policy_line(...))    # waits for the control socket
    ik.ikectl("decouple")
    ik.stop()
"""
import os
import shlex
import signal
import subprocess
import time

IKED = "/usr/sbin/iked"
IKECTL = "/usr/sbin/ikectl"


class Iked:
    def __init__(self, name, ns, workdir, env=None):
        self.name, self.ns = name, ns
        self.dir = os.path.join(workdir, f"iked-{name}")
        os.makedirs(self.dir, exist_ok=True)
        self.env = dict(env or {})
        self.conf = os.path.join(self.dir, "iked.conf")
        self.sock = os.path.join(self.dir, "iked.sock")
        self.log_path = os.path.join(self.dir, "iked.log")
        self.proc = None
        self.logf = None

    def start(self, conf, timeout=15):
        """Write conf (iked.conf text; iked refuses a file others can read) and start iked in the
        foreground (-d), verbose enough to log every PF_KEY step and its fallbacks (-vv).

        iked polls only 1 ms for each PF_KEY reply (pfkey.c: PFKEY_REPLY_TIMEOUT / 1000) and exits
        when a SADB_REGISTER's reply misses it at start-up; the preload library stretches such a
        wait on a connection to dpsecd (DPSEC_PFKEY_REPLY_WAIT_MS, docs/iked.md)."""
        return self._start(conf, timeout)

    def _start(self, conf, timeout):
        fd = os.open(self.conf, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(conf)
        os.chmod(self.conf, 0o600)
        if os.path.exists(self.sock):
            os.unlink(self.sock)
        env = " ".join(shlex.quote(f"{k}={v}") for k, v in self.env.items())
        script = "\n".join(["set -e", "mount -t tmpfs -o mode=0755 tmpfs /run",
                            f"exec env {env} {IKED} -dvv -f {shlex.quote(self.conf)} -s {shlex.quote(self.sock)}"])
        self.logf = open(self.log_path, "a")
        self.mark = self.logf.tell()
        self.proc = subprocess.Popen(["ip", "netns", "exec", self.ns, "sh", "-c", script],
                                     stdout=self.logf, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                self.proc.wait()
                raise AssertionError(f"iked {self.name} exited {self.proc.returncode}\n{self.report()}")
            # registered with PF_KEY and reading its rules: an active rule starts its exchange
            if os.path.exists(self.sock) and "ikev2_init_ike_sa: initiating" in self.log():
                return self
            time.sleep(0.1)
        raise AssertionError(f"iked {self.name}: no control socket in {timeout}s\n{self.report()}")

    def ikectl(self, *args, check=True):
        r = subprocess.run(["ip", "netns", "exec", self.ns, IKECTL, "-s", self.sock, *args],
                           capture_output=True, text=True, timeout=30)
        if check and r.returncode != 0:
            raise AssertionError(f"ikectl {' '.join(args)} failed ({r.returncode}): {r.stdout}{r.stderr}")
        return r

    def log(self):
        """What this run of iked logged (the file keeps earlier runs)."""
        try:
            with open(self.log_path, errors="replace") as f:
                f.seek(self.mark)
                return f.read()
        except OSError:
            return ""

    def wait_log(self, text, timeout=30):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if text in self.log():
                return self.log()
            if self.proc.poll() is not None:
                break
            time.sleep(0.2)
        raise AssertionError(f"iked {self.name}: {text!r} not logged in {timeout}s\n{self.report()}")

    def report(self, lines=60):
        tail = "\n".join(self.log().splitlines()[-lines:])
        return f"--- iked {self.name} log ({self.log_path}) ---\n{tail}"

    def stop(self, timeout=10):
        """SIGTERM to the parent (it stops its children), then SIGKILL to the session."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)  # a child left behind by the parent
        except ProcessLookupError:
            pass
        if self.logf:
            self.logf.close()
            self.logf = None
        return self.proc.returncode


def policy(name, local, peer, src_net, dst_net, psk, childsa="enc aes-128 auth hmac-sha1",
           ikesa="enc aes-128 prf hmac-sha2-256 auth hmac-sha2-256 group modp2048", mode="active"):
    """One iked.conf rule: IKEv2, PSK, tunnel mode between two networks, identities = addresses."""
    return (f'ikev2 "{name}" {mode} esp \\\n'
            f'\tfrom {src_net} to {dst_net} \\\n'
            f'\tlocal {local} peer {peer} \\\n'
            f'\tikesa {ikesa} \\\n'
            f'\tchildsa {childsa} \\\n'
            f'\tsrcid {local} dstid {peer} \\\n'
            f'\tpsk "{psk}"\n')
