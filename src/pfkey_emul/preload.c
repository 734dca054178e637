/*
 * libdpsec_pfkey.so: LD_PRELOAD shim that turns socket(PF_KEY, SOCK_RAW, PF_KEY_V2) into an
 * AF_UNIX SOCK_SEQPACKET connection to dpsecd's PF_KEY emulation, for unmodified clients
 * (strongSwan's kernel-pfkey plugin, setkey-like tools).
 *
 * Design (see also docs and the report of the change that added this file):
 *
 * - socket() never fails because dpsecd is down. It returns an unconnected AF_UNIX socket that
 *   connects lazily on first use, so charon starts even if it wins the race against dpsecd. The
 *   first send() waits up to DPSEC_PFKEY_CONNECT_TIMEOUT_MS (default 5000) for the daemon, then
 *   fails with ECONNREFUSED; charon logs that and fails the request.
 * - A dpsecd restart never surfaces as EOF: charon's drain loop `while (recv(MSG_DONTWAIT) >= 0)`
 *   would spin forever on 0. On EOF/ECONNRESET/ENOTCONN/EPIPE the library connects a new socket and
 *   dup3()s it over the same fd number (O_NONBLOCK, FD_CLOEXEC and buffer/timeout options are
 *   carried over). Non-blocking receives return EAGAIN meanwhile; blocking ones sleep with back-off
 *   (20 ms doubling to 1 s, never spinning) until the daemon is back, honouring SO_RCVTIMEO.
 *   Exception: a blocking receive whose fd has a request in flight on the lost connection fails
 *   with ECONNRESET, since the new daemon will never answer it (charon would otherwise wait forever
 *   holding its PF_KEY mutex); charon fails that one request and the next one works.
 * - SADB_REGISTERs are remembered per fd and replayed after every reconnect (dpsecd sends ACQUIRE
 *   and EXPIRE only to registered sockets). Replays carry pid = getpid() and seq = 1; their replies
 *   are swallowed. Should one leak anyway, charon ignores it: its event socket drops pid != 0, its
 *   query socket skips sequence numbers lower than the one it waits for.
 * - poll()/ppoll() are wrapped because a dead or unconnected SEQPACKET socket always polls
 *   POLLHUP, which would make charon's watcher spin. While an owned fd is down it is left out of
 *   the poll set (and retried on the back-off schedule); POLLHUP after the last queued message
 *   triggers the reconnect instead of being reported. select()/epoll are not wrapped (charon and
 *   setkey do not use them on PF_KEY sockets).
 * - The _FORTIFY_SOURCE entry points (__recv_chk, __recvfrom_chk, __read_chk, __poll_chk,
 *   __ppoll_chk) are wrapped too: Debian builds charon with fortification, so its recv() on a
 *   fixed-size buffer is really __recv_chk().
 * - setsockopt: IP_IPSEC_POLICY/IPV6_IPSEC_POLICY (charon's per-socket bypass on its IKE sockets)
 *   and SOL_UDP/UDP_ENCAP go to the real kernel. The kernel has no IPsec state besides that (dpsecd
 *   owns the SAD/SPD), so a bypass there is harmless, and IKE reaches the kernel through dpsecd's
 *   exception path (UDP 500, non-ESP 4500) while ESP-in-UDP never does, so UDP_ENCAP is harmless
 *   too. A kernel without XFRM/af_key refuses them (ENOPROTOOPT, EINVAL, EOPNOTSUPP): that refusal
 *   is reported as success so charon does not abort its IKE socket setup.
 *
 * - A short wait for a reply is made long enough for dpsecd: Linux queues a PF_KEY reply before
 *   send() returns, so a client may poll for it only briefly (OpenBSD's iked: poll(fd, 1, 1), then
 *   "no reply from PF_KEY", which at start-up makes it exit). dpsecd answers from its control
 *   thread, which a loaded machine may not run within a millisecond. A poll() of exactly one fd
 *   for input with 0 < timeout < DPSEC_PFKEY_REPLY_WAIT_MS (default 5000, 0 disables) on a socket
 *   connected to dpsecd's path waits up to DPSEC_PFKEY_REPLY_WAIT_MS instead; it still returns as
 *   soon as the reply is there. The fd need not be one this process created: iked's parent opens
 *   the socket and passes it to its ikev2 process (getpeername() tells). Polls of several fds,
 *   without a timeout or for output only are left as they are (charon's watcher).
 *
 * Limits: fds >= PFK_MAX_FD are returned connected but not tracked (no reconnect); dup()s of an
 * owned fd are not tracked. DPSEC_PFKEY_DEBUG=1 logs to stderr.
 */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/pfkeyv2.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define PFK_MAX_FD	    4096
#define PFK_DEFAULT_PATH    "/run/dpsec/pfkey.sock"
#define PFK_REPLAY_SEQ	    1
#define PFK_BACKOFF_MIN_MS  20
#define PFK_BACKOFF_MAX_MS  1000
#define PFK_CONNECT_WAIT_MS 5000
#define PFK_REPLY_WAIT_MS   5000

/* The fortified entry points, declared here because glibc only declares them under
 * _FORTIFY_SOURCE. */
ssize_t __recv_chk(int fd, void *buf, size_t len, size_t buflen, int flags);
ssize_t __recvfrom_chk(int fd, void *restrict buf, size_t len, size_t buflen, int flags,
		       __SOCKADDR_ARG addr, socklen_t *restrict alen);
ssize_t __read_chk(int fd, void *buf, size_t len, size_t buflen);
int __poll_chk(struct pollfd *fds, nfds_t nfds, int timeout, size_t fdslen);
int __ppoll_chk(struct pollfd *fds, nfds_t nfds, const struct timespec *timeout, const sigset_t *ss,
		size_t fdslen);

/* Per-fd state. `owned`, `down`, `gen` and `replay_pending` are read without the lock on the fast
 * path; everything changes under pfk_lock. */
struct pfk_slot {
	int owned;
	int down;	    /* no live connection behind the fd */
	unsigned gen;	    /* bumped each time a new connection is installed */
	int replay_pending; /* REGISTER replies still to swallow */
	uint32_t satypes;   /* bit n: SADB_REGISTER for satype n was sent */
	int req_pending;    /* a request was sent and its reply not seen yet */
	unsigned req_gen;   /* connection the request went out on */
	uint32_t req_pid, req_seq;
	unsigned backoff_ms;
	struct timespec next_try; /* CLOCK_MONOTONIC: earliest next connect attempt */
	dev_t dev;
	ino_t ino; /* identity of the socket we installed, to notice foreign closes */
};

static struct pfk_slot pfk_slots[PFK_MAX_FD];
static pthread_mutex_t pfk_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t pfk_once = PTHREAD_ONCE_INIT;
static struct sockaddr_un pfk_addr;
static socklen_t pfk_addrlen;
static bool pfk_debug;
static long pfk_connect_wait_ms = PFK_CONNECT_WAIT_MS;
static long pfk_reply_wait_ms = PFK_REPLY_WAIT_MS;

/* Real libc functions, resolved lazily: wrappers may run before any constructor of ours. */
static void *pfk_resolve(void **slot, const char *name)
{
	void *p = __atomic_load_n(slot, __ATOMIC_ACQUIRE);

	if (!p) {
		p = dlsym(RTLD_NEXT, name);
		if (!p)
			abort();
		__atomic_store_n(slot, p, __ATOMIC_RELEASE);
	}
	return p;
}

#define REAL_DECL(fn) static void *real_##fn
#define REAL(fn)      ((__typeof__(&fn))pfk_resolve(&real_##fn, #fn))

REAL_DECL(socket);
REAL_DECL(close);
REAL_DECL(recv);
REAL_DECL(recvfrom);
REAL_DECL(recvmsg);
REAL_DECL(read);
REAL_DECL(send);
REAL_DECL(sendto);
REAL_DECL(sendmsg);
REAL_DECL(write);
REAL_DECL(poll);
REAL_DECL(ppoll);
REAL_DECL(setsockopt);
REAL_DECL(__recv_chk);
REAL_DECL(__recvfrom_chk);
REAL_DECL(__read_chk);
REAL_DECL(__poll_chk);
REAL_DECL(__ppoll_chk);

static void pfk_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void pfk_log(const char *fmt, ...)
{
	char buf[256];
	va_list ap;
	int n;

	if (!pfk_debug)
		return;
	n = snprintf(buf, sizeof(buf), "dpsec_pfkey[%d]: ", (int)getpid());
	va_start(ap, fmt);
	n += vsnprintf(buf + n, sizeof(buf) - n - 1, fmt, ap);
	va_end(ap);
	if (n > (int)sizeof(buf) - 2)
		n = sizeof(buf) - 2;
	buf[n++] = '\n';
	if (REAL(write)(STDERR_FILENO, buf, n) < 0)
		return;
}

static void pfk_atfork_prepare(void)
{
	pthread_mutex_lock(&pfk_lock);
}

static void pfk_atfork_release(void)
{
	pthread_mutex_unlock(&pfk_lock);
}

static void pfk_init(void)
{
	const char *path = getenv("DPSEC_PFKEY_SOCKET");
	const char *dbg = getenv("DPSEC_PFKEY_DEBUG");
	const char *wait = getenv("DPSEC_PFKEY_CONNECT_TIMEOUT_MS");
	const char *reply_wait = getenv("DPSEC_PFKEY_REPLY_WAIT_MS");

	pfk_debug = dbg && strcmp(dbg, "0") != 0 && *dbg;
	if (!path || !*path)
		path = PFK_DEFAULT_PATH;
	if (wait && *wait)
		pfk_connect_wait_ms = strtol(wait, NULL, 10);
	if (reply_wait && *reply_wait)
		pfk_reply_wait_ms = strtol(reply_wait, NULL, 10);
	pfk_addr.sun_family = AF_UNIX;
	if (strlen(path) < sizeof(pfk_addr.sun_path)) {
		strcpy(pfk_addr.sun_path, path);
		pfk_addrlen = offsetof(struct sockaddr_un, sun_path) + strlen(path) + 1;
	}
	/* The lock is never held across a sleep, so holding it over fork() is cheap and keeps a
	 * child from inheriting it locked. */
	pthread_atfork(pfk_atfork_prepare, pfk_atfork_release, pfk_atfork_release);
	pfk_log("PF_KEY sockets go to %s", path);
}

__attribute__((constructor)) static void pfk_constructor(void)
{
	pthread_once(&pfk_once, pfk_init);
}

static struct pfk_slot *pfk_slot(int fd)
{
	if (fd < 0 || fd >= PFK_MAX_FD || !__atomic_load_n(&pfk_slots[fd].owned, __ATOMIC_ACQUIRE))
		return NULL;
	return &pfk_slots[fd];
}

/* ---- time ---- */

static struct timespec pfk_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts;
}

static struct timespec pfk_after_ms(struct timespec t, long ms)
{
	t.tv_sec += ms / 1000;
	t.tv_nsec += (ms % 1000) * 1000000L;
	if (t.tv_nsec >= 1000000000L) {
		t.tv_sec++;
		t.tv_nsec -= 1000000000L;
	}
	return t;
}

/* Milliseconds from now until t, rounded up, 0 if t has passed. */
static long pfk_ms_until(struct timespec t)
{
	struct timespec now = pfk_now();
	long long ns = (t.tv_sec - now.tv_sec) * 1000000000LL + (t.tv_nsec - now.tv_nsec);

	return ns <= 0 ? 0 : (long)((ns + 999999) / 1000000);
}

static int pfk_sleep_ms(long ms)
{
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};

	return nanosleep(&ts, NULL);
}

/* ---- message inspection ---- */

/* Copies the first sizeof(struct sadb_msg) bytes of an iovec; false if shorter. */
static bool pfk_header(const struct iovec *iov, size_t iovlen, size_t len, struct sadb_msg *h)
{
	size_t got = 0;

	if (len < sizeof(*h))
		return false;
	for (size_t i = 0; i < iovlen && got < sizeof(*h); i++) {
		size_t n = iov[i].iov_len < sizeof(*h) - got ? iov[i].iov_len : sizeof(*h) - got;

		memcpy((char *)h + got, iov[i].iov_base, n);
		got += n;
	}
	return got == sizeof(*h) && h->sadb_msg_version == PF_KEY_V2;
}

static size_t pfk_iov_total(const struct iovec *iov, size_t iovlen)
{
	size_t total = 0;

	for (size_t i = 0; i < iovlen; i++)
		total += iov[i].iov_len;
	return total;
}

static bool pfk_conn_error(int err)
{
	return err == ECONNRESET || err == ENOTCONN || err == EPIPE || err == ECONNREFUSED ||
	       err == ENOENT;
}

static bool pfk_nonblocking(int fd, int flags)
{
	return (flags & MSG_DONTWAIT) || (fcntl(fd, F_GETFL) & O_NONBLOCK);
}

/* ---- connection management (all under pfk_lock) ---- */

static void pfk_clear(struct pfk_slot *s)
{
	__atomic_store_n(&s->owned, 0, __ATOMIC_RELEASE);
	s->down = 0;
	s->replay_pending = 0;
	s->satypes = 0;
	s->req_pending = 0;
}

/* The fd may have been closed behind our back (close_range, a raw syscall) and its number reused:
 * then it is not ours any more and must never be dup3()ed over. */
static bool pfk_still_ours(int fd, struct pfk_slot *s)
{
	struct stat st;

	if (fstat(fd, &st) == 0 && st.st_dev == s->dev && st.st_ino == s->ino)
		return true;
	pfk_log("fd %d was replaced behind our back, no longer tracked", fd);
	pfk_clear(s);
	return false;
}

static void pfk_remember_identity(int fd, struct pfk_slot *s)
{
	struct stat st;

	if (fstat(fd, &st) == 0) {
		s->dev = st.st_dev;
		s->ino = st.st_ino;
	}
}

static int pfk_connect_new(int *out)
{
	int sfd;

	if (!pfk_addrlen) {
		errno = ENAMETOOLONG;
		return -1;
	}
	sfd = REAL(socket)(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (sfd < 0)
		return -1;
	if (connect(sfd, (struct sockaddr *)&pfk_addr, pfk_addrlen) < 0) {
		int err = errno;

		REAL(close)(sfd);
		errno = err;
		return -1;
	}
	*out = sfd;
	return 0;
}

/* Options a client may have set on the old socket that must survive the swap. SO_RCVBUF and
 * SO_SNDBUF read back doubled (socket(7)), so they are halved on the way in. */
static void pfk_copy_options(int from, int to)
{
	static const int bufs[] = {SO_RCVBUF, SO_SNDBUF};
	static const int timeouts[] = {SO_RCVTIMEO, SO_SNDTIMEO};

	for (size_t i = 0; i < sizeof(bufs) / sizeof(bufs[0]); i++) {
		int v;
		socklen_t l = sizeof(v);

		if (getsockopt(from, SOL_SOCKET, bufs[i], &v, &l) == 0)
			REAL(setsockopt)(to, SOL_SOCKET, bufs[i], &(int){v / 2}, sizeof(int));
	}
	for (size_t i = 0; i < sizeof(timeouts) / sizeof(timeouts[0]); i++) {
		struct timeval tv;
		socklen_t l = sizeof(tv);

		if (getsockopt(from, SOL_SOCKET, timeouts[i], &tv, &l) == 0)
			REAL(setsockopt)(to, SOL_SOCKET, timeouts[i], &tv, sizeof(tv));
	}
}

/* Re-registers the satypes the client registered, before the fd is handed back to it. */
static void pfk_replay_registers(int sfd, struct pfk_slot *s)
{
	for (unsigned satype = 0; satype < 32; satype++) {
		struct sadb_msg m = {
			.sadb_msg_version = PF_KEY_V2,
			.sadb_msg_type = SADB_REGISTER,
			.sadb_msg_satype = satype,
			.sadb_msg_len = sizeof(m) / 8,
			.sadb_msg_seq = PFK_REPLAY_SEQ,
			.sadb_msg_pid = (uint32_t)getpid(),
		};

		if (!(s->satypes & (1u << satype)))
			continue;
		if (REAL(send)(sfd, &m, sizeof(m), MSG_NOSIGNAL | MSG_DONTWAIT) == sizeof(m)) {
			__atomic_add_fetch(&s->replay_pending, 1, __ATOMIC_RELEASE);
			pfk_log("replayed SADB_REGISTER satype %u", satype);
		}
	}
}

/* Installs a fresh connection at fd. Returns 1 if the fd (now or meanwhile) has a connection,
 * 0 if the daemon is still unreachable or the attempt is not due yet, -1 if fd is no longer ours.
 */
static int pfk_reconnect_locked(int fd, struct pfk_slot *s, unsigned gen, bool force)
{
	int sfd, fl, fdfl;

	if (!s->owned || !pfk_still_ours(fd, s))
		return -1;
	if (s->gen != gen || !s->down)
		return 1;
	if (!force && pfk_ms_until(s->next_try) > 0)
		return 0;
	if (pfk_connect_new(&sfd) < 0) {
		s->next_try = pfk_after_ms(pfk_now(), s->backoff_ms);
		s->backoff_ms = s->backoff_ms * 2 > PFK_BACKOFF_MAX_MS ? PFK_BACKOFF_MAX_MS
								       : s->backoff_ms * 2;
		return 0;
	}
	fl = fcntl(fd, F_GETFL);
	fdfl = fcntl(fd, F_GETFD);
	pfk_copy_options(fd, sfd);
	pfk_replay_registers(sfd, s);
	if (dup3(sfd, fd, (fdfl > 0 && (fdfl & FD_CLOEXEC)) ? O_CLOEXEC : 0) < 0) {
		REAL(close)(sfd);
		__atomic_store_n(&s->replay_pending, 0, __ATOMIC_RELEASE);
		return 0;
	}
	REAL(close)(sfd);
	if (fl >= 0 && (fl & O_NONBLOCK))
		fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
	pfk_remember_identity(fd, s);
	s->backoff_ms = PFK_BACKOFF_MIN_MS;
	__atomic_store_n(&s->gen, gen + 1, __ATOMIC_RELEASE);
	__atomic_store_n(&s->down, 0, __ATOMIC_RELEASE);
	pfk_log("fd %d connected", fd);
	return 1;
}

static int pfk_reconnect(int fd, struct pfk_slot *s, unsigned gen, bool force, long *retry_ms)
{
	int ret, cancel;

	/* Connect is a cancellation point; charon cancels threads on shutdown. */
	pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &cancel);
	pthread_mutex_lock(&pfk_lock);
	ret = pfk_reconnect_locked(fd, s, gen, force);
	if (retry_ms)
		*retry_ms = pfk_ms_until(s->next_try);
	pthread_mutex_unlock(&pfk_lock);
	pthread_setcancelstate(cancel, NULL);
	return ret;
}

/* Records that connection `gen` of fd died. Returns whether a request sent on it is now lost
 * (and forgets it), or -1 if fd is no longer ours. */
static int pfk_mark_down(int fd, struct pfk_slot *s, unsigned gen)
{
	int lost = 0, cancel;

	pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &cancel);
	pthread_mutex_lock(&pfk_lock);
	if (!s->owned || !pfk_still_ours(fd, s)) {
		lost = -1;
	} else if (s->gen == gen) {
		if (!s->down)
			pfk_log("fd %d lost its connection", fd);
		__atomic_store_n(&s->down, 1, __ATOMIC_RELEASE);
		__atomic_store_n(&s->replay_pending, 0, __ATOMIC_RELEASE);
		s->next_try = pfk_now();
		if (s->req_pending && s->req_gen == gen) {
			s->req_pending = 0;
			lost = 1;
		}
	}
	pthread_mutex_unlock(&pfk_lock);
	pthread_setcancelstate(cancel, NULL);
	return lost;
}

/* ---- bookkeeping of what flows through ---- */

static void pfk_note_sent(struct pfk_slot *s, unsigned gen, const struct sadb_msg *h)
{
	pthread_mutex_lock(&pfk_lock);
	if (h->sadb_msg_type == SADB_REGISTER && h->sadb_msg_satype < 32)
		s->satypes |= 1u << h->sadb_msg_satype;
	s->req_pending = 1;
	s->req_gen = gen;
	s->req_pid = h->sadb_msg_pid;
	s->req_seq = h->sadb_msg_seq;
	pthread_mutex_unlock(&pfk_lock);
}

static void pfk_forget_sent(struct pfk_slot *s, const struct sadb_msg *h)
{
	pthread_mutex_lock(&pfk_lock);
	if (s->req_pending && s->req_pid == h->sadb_msg_pid && s->req_seq == h->sadb_msg_seq)
		s->req_pending = 0;
	pthread_mutex_unlock(&pfk_lock);
}

/* A reply to the request in flight (DUMP replies end with seq 0, RFC 2367 section 3.1.10). */
static void pfk_note_received(struct pfk_slot *s, const struct sadb_msg *h)
{
	if (!__atomic_load_n(&s->req_pending, __ATOMIC_ACQUIRE))
		return;
	pthread_mutex_lock(&pfk_lock);
	if (s->req_pending && h->sadb_msg_pid == s->req_pid &&
	    (h->sadb_msg_seq == s->req_seq || h->sadb_msg_seq == 0))
		s->req_pending = 0;
	pthread_mutex_unlock(&pfk_lock);
}

/* Consumes one pending replay reply if h is one. */
static bool pfk_swallow(struct pfk_slot *s, const struct sadb_msg *h)
{
	int pending = __atomic_load_n(&s->replay_pending, __ATOMIC_ACQUIRE);

	if (pending <= 0 || h->sadb_msg_type != SADB_REGISTER ||
	    h->sadb_msg_seq != PFK_REPLAY_SEQ || h->sadb_msg_pid != (uint32_t)getpid())
		return false;
	while (pending > 0 &&
	       !__atomic_compare_exchange_n(&s->replay_pending, &pending, pending - 1, false,
					    __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
		;
	return pending > 0;
}

/* ---- receive ---- */

/* Blocks (with back-off) until the fd has a connection again. Returns 0 when it should retry the
 * receive, -1 with errno set otherwise. */
static int pfk_wait_connected(int fd, struct pfk_slot *s, unsigned gen, int flags,
			      const struct timespec *deadline)
{
	long wait = 0;
	int r = pfk_reconnect(fd, s, gen, false, &wait);

	if (r != 0)
		return 0; /* connected, or not ours: the caller re-checks */
	if (pfk_nonblocking(fd, flags)) {
		errno = EAGAIN;
		return -1;
	}
	if (deadline) {
		long left = pfk_ms_until(*deadline);

		if (left == 0) {
			errno = EAGAIN;
			return -1;
		}
		if (left < wait)
			wait = left;
	}
	if (pfk_sleep_ms(wait ? wait : 1) < 0)
		return -1; /* EINTR, as a blocking recv would */
	return 0;
}

static bool pfk_rcvtimeo(int fd, struct timespec *deadline)
{
	struct timeval tv;
	socklen_t l = sizeof(tv);

	if (getsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, &l) < 0 || (!tv.tv_sec && !tv.tv_usec))
		return false;
	*deadline = pfk_after_ms(pfk_now(), tv.tv_sec * 1000 + (tv.tv_usec + 999) / 1000);
	return true;
}

static ssize_t pfk_recvmsg(int fd, struct pfk_slot *s, struct msghdr *msg, int flags)
{
	struct timespec deadline;
	bool checked_timeout = false, have_deadline = false;
	size_t want = pfk_iov_total(msg->msg_iov, msg->msg_iovlen);

	for (;;) {
		unsigned gen = __atomic_load_n(&s->gen, __ATOMIC_ACQUIRE);
		struct sadb_msg h;
		ssize_t n;
		int lost;

		if (__atomic_load_n(&s->down, __ATOMIC_ACQUIRE)) {
			if (!checked_timeout && !pfk_nonblocking(fd, flags)) {
				have_deadline = pfk_rcvtimeo(fd, &deadline);
				checked_timeout = true;
			}
			if (pfk_wait_connected(fd, s, gen, flags, have_deadline ? &deadline : NULL))
				return -1;
			if (!__atomic_load_n(&s->owned, __ATOMIC_ACQUIRE))
				return REAL(recvmsg)(fd, msg, flags);
			continue;
		}
		n = REAL(recvmsg)(fd, msg, flags);
		if (n > 0 && pfk_header(msg->msg_iov, msg->msg_iovlen, n, &h)) {
			if (pfk_swallow(s, &h)) {
				if (flags & MSG_PEEK)
					REAL(recv)(fd, &h, sizeof(h), MSG_DONTWAIT);
				continue;
			}
			pfk_note_received(s, &h);
		}
		if (n > 0 || (n == 0 && want == 0))
			return n;
		if (n < 0 && !pfk_conn_error(errno))
			return n;
		lost = pfk_mark_down(fd, s, gen);
		if (lost < 0)
			return REAL(recvmsg)(fd, msg, flags);
		if (lost && !pfk_nonblocking(fd, flags)) {
			pfk_log("fd %d: request in flight lost with the connection", fd);
			errno = ECONNRESET;
			return -1;
		}
	}
}

static ssize_t pfk_recv_buf(int fd, struct pfk_slot *s, void *buf, size_t len, int flags,
			    struct sockaddr *addr, socklen_t *alen)
{
	struct iovec iov = {.iov_base = buf, .iov_len = len};
	struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1};
	ssize_t n;

	if (addr && alen) {
		msg.msg_name = addr;
		msg.msg_namelen = *alen;
	}
	n = pfk_recvmsg(fd, s, &msg, flags);
	if (n >= 0 && addr && alen)
		*alen = msg.msg_namelen;
	return n;
}

ssize_t recvmsg(int fd, struct msghdr *msg, int flags)
{
	struct pfk_slot *s = pfk_slot(fd);

	return s ? pfk_recvmsg(fd, s, msg, flags) : REAL(recvmsg)(fd, msg, flags);
}

ssize_t recv(int fd, void *buf, size_t len, int flags)
{
	struct pfk_slot *s = pfk_slot(fd);

	return s ? pfk_recv_buf(fd, s, buf, len, flags, NULL, NULL)
		 : REAL(recv)(fd, buf, len, flags);
}

ssize_t recvfrom(int fd, void *restrict buf, size_t len, int flags, __SOCKADDR_ARG addr,
		 socklen_t *restrict alen)
{
	struct pfk_slot *s = pfk_slot(fd);

	return s ? pfk_recv_buf(fd, s, buf, len, flags, addr.__sockaddr__, alen)
		 : REAL(recvfrom)(fd, buf, len, flags, addr, alen);
}

ssize_t read(int fd, void *buf, size_t len)
{
	struct pfk_slot *s = pfk_slot(fd);

	return s ? pfk_recv_buf(fd, s, buf, len, 0, NULL, NULL) : REAL(read)(fd, buf, len);
}

/* Fortified variants: same overflow check as glibc (which aborts), then the same path. */
ssize_t __recv_chk(int fd, void *buf, size_t len, size_t buflen, int flags)
{
	struct pfk_slot *s = pfk_slot(fd);

	if (!s || len > buflen)
		return REAL(__recv_chk)(fd, buf, len, buflen, flags);
	return pfk_recv_buf(fd, s, buf, len, flags, NULL, NULL);
}

ssize_t __recvfrom_chk(int fd, void *restrict buf, size_t len, size_t buflen, int flags,
		       __SOCKADDR_ARG addr, socklen_t *restrict alen)
{
	struct pfk_slot *s = pfk_slot(fd);

	if (!s || len > buflen)
		return REAL(__recvfrom_chk)(fd, buf, len, buflen, flags, addr, alen);
	return pfk_recv_buf(fd, s, buf, len, flags, addr.__sockaddr__, alen);
}

ssize_t __read_chk(int fd, void *buf, size_t len, size_t buflen)
{
	struct pfk_slot *s = pfk_slot(fd);

	if (!s || len > buflen)
		return REAL(__read_chk)(fd, buf, len, buflen);
	return pfk_recv_buf(fd, s, buf, len, 0, NULL, NULL);
}

/* ---- send ---- */

static ssize_t pfk_sendmsg(int fd, struct pfk_slot *s, const struct msghdr *msg, int flags)
{
	struct timespec deadline = pfk_after_ms(pfk_now(), pfk_connect_wait_ms);
	bool force = true;
	struct sadb_msg h;
	bool have_header = pfk_header(msg->msg_iov, msg->msg_iovlen,
				      pfk_iov_total(msg->msg_iov, msg->msg_iovlen), &h);

	for (;;) {
		unsigned gen = __atomic_load_n(&s->gen, __ATOMIC_ACQUIRE);
		ssize_t n;
		long wait = 0;
		int r;

		if (__atomic_load_n(&s->down, __ATOMIC_ACQUIRE)) {
			r = pfk_reconnect(fd, s, gen, force, &wait);
			force = false;
			if (r < 0)
				return REAL(sendmsg)(fd, msg, flags);
			if (r > 0)
				continue;
			if (pfk_nonblocking(fd, flags) || pfk_ms_until(deadline) == 0) {
				pfk_log("fd %d: daemon unreachable, send fails", fd);
				errno = ECONNREFUSED;
				return -1;
			}
			if (pfk_sleep_ms(wait ? wait : 1) < 0)
				return -1;
			continue;
		}
		/* Noted before sending: the reply may be read by another thread at once. */
		if (have_header)
			pfk_note_sent(s, gen, &h);
		/* A dead peer must not SIGPIPE the client: write() is a send() here too. */
		n = REAL(sendmsg)(fd, msg, flags | MSG_NOSIGNAL);
		if (n >= 0)
			return n;
		if (have_header)
			pfk_forget_sent(s, &h);
		if (!pfk_conn_error(errno))
			return n;
		if (pfk_mark_down(fd, s, gen) < 0)
			return REAL(sendmsg)(fd, msg, flags);
	}
}

static ssize_t pfk_send_buf(int fd, struct pfk_slot *s, const void *buf, size_t len, int flags)
{
	struct iovec iov = {.iov_base = (void *)buf, .iov_len = len};
	struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1};

	return pfk_sendmsg(fd, s, &msg, flags);
}

ssize_t sendmsg(int fd, const struct msghdr *msg, int flags)
{
	struct pfk_slot *s = pfk_slot(fd);

	return s ? pfk_sendmsg(fd, s, msg, flags) : REAL(sendmsg)(fd, msg, flags);
}

ssize_t send(int fd, const void *buf, size_t len, int flags)
{
	struct pfk_slot *s = pfk_slot(fd);

	return s ? pfk_send_buf(fd, s, buf, len, flags) : REAL(send)(fd, buf, len, flags);
}

/* A destination address is meaningless on a connected SEQPACKET socket (PF_KEY has none). */
ssize_t sendto(int fd, const void *buf, size_t len, int flags, __CONST_SOCKADDR_ARG addr,
	       socklen_t alen)
{
	struct pfk_slot *s = pfk_slot(fd);

	return s ? pfk_send_buf(fd, s, buf, len, flags)
		 : REAL(sendto)(fd, buf, len, flags, addr, alen);
}

ssize_t write(int fd, const void *buf, size_t len)
{
	struct pfk_slot *s = pfk_slot(fd);

	return s ? pfk_send_buf(fd, s, buf, len, 0) : REAL(write)(fd, buf, len);
}

/* ---- poll ---- */

static bool pfk_any_owned(const struct pollfd *fds, nfds_t nfds)
{
	for (nfds_t i = 0; i < nfds; i++)
		if (pfk_slot(fds[i].fd))
			return true;
	return false;
}

/* Leaves fds that are down out of the set (poll ignores negative fds). Returns the milliseconds
 * until the earliest reconnect attempt among them, or -1 if none is down. */
struct pfk_saved {
	int fd;
	unsigned gen;
};

static long pfk_poll_prepare(struct pollfd *fds, nfds_t nfds, struct pfk_saved *saved)
{
	long soonest = -1;

	for (nfds_t i = 0; i < nfds; i++) {
		struct pfk_slot *s = pfk_slot(fds[i].fd);
		long ms = 0;

		saved[i].fd = fds[i].fd;
		saved[i].gen = 0;
		if (!s)
			continue;
		if (__atomic_load_n(&s->down, __ATOMIC_ACQUIRE) &&
		    pfk_reconnect(fds[i].fd, s, __atomic_load_n(&s->gen, __ATOMIC_ACQUIRE), false,
				  &ms) == 0) {
			fds[i].fd = -1;
		}
		/* After the reconnect attempt: fixup must mark exactly this connection down. */
		saved[i].gen = __atomic_load_n(&s->gen, __ATOMIC_ACQUIRE);
		if (fds[i].fd >= 0)
			continue;
		if (soonest < 0 || ms < soonest)
			soonest = ms;
	}
	return soonest;
}

/* Rewrites the result for an owned fd. Returns whether it still reports an event. */
static bool pfk_poll_fixup(struct pollfd *p, struct pfk_slot *s, unsigned gen)
{
	struct sadb_msg h;
	ssize_t n;

	if (!p->revents)
		return false;
	if (p->revents & (POLLIN | POLLHUP | POLLERR | POLLRDHUP)) {
		n = REAL(recv)(p->fd, &h, sizeof(h), MSG_PEEK | MSG_DONTWAIT);
		if (n == (ssize_t)sizeof(h) && h.sadb_msg_version == PF_KEY_V2 &&
		    pfk_swallow(s, &h)) {
			REAL(recv)(p->fd, &h, sizeof(h), MSG_DONTWAIT);
			p->revents &= ~(POLLIN | POLLRDNORM);
		} else if (n > 0) {
			p->revents &= ~(POLLHUP | POLLERR | POLLRDHUP);
			return p->revents != 0;
		} else if (n == 0 || pfk_conn_error(errno)) {
			pfk_mark_down(p->fd, s, gen);
			p->revents = 0;
			return false;
		}
		p->revents &= ~(POLLHUP | POLLERR | POLLRDHUP);
	}
	return p->revents != 0;
}

static int pfk_poll(struct pollfd *fds, nfds_t nfds, const struct timespec *timeout,
		    const sigset_t *sigmask)
{
	bool forever = !timeout;
	struct timespec deadline = pfk_now();
	struct pfk_saved saved_small[16];
	struct pfk_saved *saved = nfds <= 16 ? saved_small : malloc(nfds * sizeof(*saved));
	int ret;

	if (!saved) {
		errno = ENOMEM;
		return -1;
	}
	if (!forever) {
		deadline.tv_sec += timeout->tv_sec;
		deadline.tv_nsec += timeout->tv_nsec % 1000000000L;
		deadline = pfk_after_ms(deadline, 0); /* normalises tv_nsec */
	}
	for (;;) {
		long retry = pfk_poll_prepare(fds, nfds, saved);
		long left = forever ? -1 : pfk_ms_until(deadline);
		long slice = left;
		struct timespec ts;
		int events = 0;

		if (retry >= 0 && (slice < 0 || retry < slice))
			slice = retry ? retry : 1;
		ts.tv_sec = slice / 1000;
		ts.tv_nsec = (slice % 1000) * 1000000L;
		ret = REAL(ppoll)(fds, nfds, slice < 0 ? NULL : &ts, sigmask);
		for (nfds_t i = 0; i < nfds; i++)
			fds[i].fd = saved[i].fd;
		if (ret < 0)
			break;
		for (nfds_t i = 0; i < nfds; i++) {
			struct pfk_slot *s = pfk_slot(fds[i].fd);

			if (s ? pfk_poll_fixup(&fds[i], s, saved[i].gen) : fds[i].revents != 0)
				events++;
		}
		ret = events;
		if (events > 0 || (!forever && pfk_ms_until(deadline) == 0))
			break;
	}
	if (saved != saved_small)
		free(saved);
	return ret;
}

/* Whether fd is a connection to dpsecd's PF_KEY socket, whoever made it. */
static bool pfk_is_ours(int fd)
{
	struct sockaddr_un a;
	socklen_t len = sizeof(a);
	int type;
	socklen_t tlen = sizeof(type);

	if (pfk_slot(fd))
		return true;
	memset(&a, 0, sizeof(a));
	if (!pfk_addrlen || getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tlen) < 0 ||
	    type != SOCK_SEQPACKET || getpeername(fd, (struct sockaddr *)&a, &len) < 0 ||
	    a.sun_family != AF_UNIX || len > sizeof(a))
		return false;
	return strncmp(a.sun_path, pfk_addr.sun_path, sizeof(a.sun_path)) == 0;
}

/* The timeout of a poll() that waits for a PF_KEY reply, made long enough for dpsecd (see the
 * comment at the top). */
static int pfk_reply_timeout(struct pollfd *fds, nfds_t nfds, int timeout)
{
	struct pollfd one;

	if (nfds != 1 || timeout <= 0)
		return timeout;
	pthread_once(&pfk_once, pfk_init);
	memcpy(&one, fds, sizeof(one)); /* glibc declares poll()'s array write-only */
	if (timeout >= pfk_reply_wait_ms || one.fd < 0 || !(one.events & POLLIN) ||
	    !pfk_is_ours(one.fd))
		return timeout;
	pfk_log("fd %d: waiting up to %ld ms for a reply instead of %d", one.fd, pfk_reply_wait_ms,
		timeout);
	return (int)pfk_reply_wait_ms;
}

int poll(struct pollfd *fds, nfds_t nfds, int timeout)
{
	struct timespec ts;

	timeout = pfk_reply_timeout(fds, nfds, timeout);
	ts = (struct timespec){.tv_sec = timeout / 1000, .tv_nsec = (timeout % 1000) * 1000000L};
	if (!pfk_any_owned(fds, nfds))
		return REAL(poll)(fds, nfds, timeout);
	return pfk_poll(fds, nfds, timeout < 0 ? NULL : &ts, NULL);
}

int ppoll(struct pollfd *fds, nfds_t nfds, const struct timespec *timeout, const sigset_t *ss)
{
	if (!pfk_any_owned(fds, nfds))
		return REAL(ppoll)(fds, nfds, timeout, ss);
	return pfk_poll(fds, nfds, timeout, ss);
}

int __poll_chk(struct pollfd *fds, nfds_t nfds, int timeout, size_t fdslen)
{
	if (fdslen / sizeof(*fds) >= nfds)
		timeout = pfk_reply_timeout(fds, nfds, timeout);
	if (fdslen / sizeof(*fds) < nfds || !pfk_any_owned(fds, nfds))
		return REAL(__poll_chk)(fds, nfds, timeout, fdslen);
	return poll(fds, nfds, timeout);
}

int __ppoll_chk(struct pollfd *fds, nfds_t nfds, const struct timespec *timeout, const sigset_t *ss,
		size_t fdslen)
{
	if (fdslen / sizeof(*fds) < nfds || !pfk_any_owned(fds, nfds))
		return REAL(__ppoll_chk)(fds, nfds, timeout, ss, fdslen);
	return pfk_poll(fds, nfds, timeout, ss);
}

/* ---- socket, close, setsockopt ---- */

int socket(int domain, int type, int protocol)
{
	int fd, err, cancel;
	struct pfk_slot *s;

	if (domain != PF_KEY || (type & ~(SOCK_CLOEXEC | SOCK_NONBLOCK)) != SOCK_RAW ||
	    protocol != PF_KEY_V2)
		return REAL(socket)(domain, type, protocol);
	pthread_once(&pfk_once, pfk_init);
	fd = REAL(socket)(AF_UNIX, SOCK_SEQPACKET | (type & (SOCK_CLOEXEC | SOCK_NONBLOCK)), 0);
	if (fd < 0)
		return -1;
	err = pfk_addrlen ? 0 : ENAMETOOLONG;
	if (!err && connect(fd, (struct sockaddr *)&pfk_addr, pfk_addrlen) < 0)
		err = errno;
	if (fd >= PFK_MAX_FD) {
		pfk_log("fd %d beyond the table: no reconnect for it", fd);
		return fd;
	}
	pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &cancel);
	pthread_mutex_lock(&pfk_lock);
	s = &pfk_slots[fd];
	pfk_clear(s);
	pfk_remember_identity(fd, s);
	s->backoff_ms = PFK_BACKOFF_MIN_MS;
	s->next_try = pfk_now();
	s->down = err != 0;
	__atomic_store_n(&s->owned, 1, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&pfk_lock);
	pthread_setcancelstate(cancel, NULL);
	if (err)
		pfk_log("fd %d: %s unreachable (%s), connecting lazily", fd, pfk_addr.sun_path,
			strerror(err));
	else
		pfk_log("fd %d connected", fd);
	return fd;
}

int close(int fd)
{
	int ret, cancel;

	if (!pfk_slot(fd))
		return REAL(close)(fd);
	/* Under the lock so that a concurrent reconnect cannot dup3() onto the number after it
	 * has been closed and reused. */
	pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &cancel);
	pthread_mutex_lock(&pfk_lock);
	pfk_clear(&pfk_slots[fd]);
	ret = REAL(close)(fd);
	pthread_mutex_unlock(&pfk_lock);
	pthread_setcancelstate(cancel, NULL);
	return ret;
}

static bool pfk_kernel_ipsec_option(int level, int name)
{
	return (level == IPPROTO_IP && name == IP_IPSEC_POLICY) ||
	       (level == IPPROTO_IPV6 && name == IPV6_IPSEC_POLICY) ||
	       (level == SOL_UDP && name == UDP_ENCAP);
}

/* See the top of the file: the real kernel is not the IPsec engine, so its refusal of these
 * options does not matter to the client. */
int setsockopt(int fd, int level, int name, const void *val, socklen_t len)
{
	int ret = REAL(setsockopt)(fd, level, name, val, len);

	if (ret < 0 && pfk_kernel_ipsec_option(level, name) &&
	    (errno == ENOPROTOOPT || errno == EINVAL || errno == EOPNOTSUPP)) {
		pthread_once(&pfk_once, pfk_init);
		pfk_log("fd %d: kernel refused IPsec option %d/%d (%s), reporting success", fd,
			level, name, strerror(errno));
		return 0;
	}
	return ret;
}
