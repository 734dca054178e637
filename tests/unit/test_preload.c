/*
 * libdpsec_pfkey.so (src/pfkey_emul/preload.c) against a fake PF_KEY server.
 *
 * Interposition needs the library preloaded, so main() re-executes this binary with LD_PRELOAD
 * set to the library given as argv[1] (and with the dynamic ASan runtime first, if the binary
 * uses one). The fake server lives in the same process: a SOCK_SEQPACKET listener on a socket
 * in a temporary directory, driven by the test (or by a helper thread for delayed restarts).
 * Its sockets are not PF_KEY sockets, so they also show that other sockets pass through.
 */
#include <errno.h>
#include <fcntl.h>
#include <link.h>
#include <linux/ipsec.h>
#include <linux/pfkeyv2.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

/* Fortified entry point, called directly: Debian's charon is built with _FORTIFY_SOURCE. */
ssize_t __recv_chk(int fd, void *buf, size_t len, size_t buflen, int flags);

#define CONNECT_TIMEOUT_MS 300 /* DPSEC_PFKEY_CONNECT_TIMEOUT_MS for the re-executed test */

static char sock_dir[64];
static char sock_path[108];
static int listen_fd = -1;

/* ---- fake server ---- */

static void server_start(void)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};

	unlink(sock_path);
	strcpy(sa.sun_path, sock_path);
	listen_fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	assert_true(listen_fd >= 0);
	assert_int_equal(bind(listen_fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(listen_fd, 8), 0);
}

/* The daemon dies: nothing listens on the path any more. */
static void server_stop(void)
{
	if (listen_fd >= 0)
		close(listen_fd);
	listen_fd = -1;
	unlink(sock_path);
}

static int server_accept(int timeout_ms)
{
	struct pollfd p = {.fd = listen_fd, .events = POLLIN};

	if (poll(&p, 1, timeout_ms) != 1)
		return -1;
	return accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC);
}

/* One message from a client connection, or -1 if none arrives in time. */
static ssize_t server_recv(int c, void *buf, size_t len, int timeout_ms)
{
	struct pollfd p = {.fd = c, .events = POLLIN};

	if (poll(&p, 1, timeout_ms) != 1)
		return -1;
	return recv(c, buf, len, MSG_DONTWAIT);
}

static void server_send(int c, const struct sadb_msg *m)
{
	assert_int_equal(send(c, m, sizeof(*m), MSG_NOSIGNAL), sizeof(*m));
}

static struct sadb_msg pfkey_msg(uint8_t type, uint8_t satype, uint32_t seq, uint32_t pid)
{
	struct sadb_msg m = {
		.sadb_msg_version = PF_KEY_V2,
		.sadb_msg_type = type,
		.sadb_msg_satype = satype,
		.sadb_msg_len = sizeof(m) / 8,
		.sadb_msg_seq = seq,
		.sadb_msg_pid = pid,
	};
	return m;
}

static int pfkey_socket(void)
{
	return socket(PF_KEY, SOCK_RAW, PF_KEY_V2);
}

static long ms_since(const struct timespec *t0)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (now.tv_sec - t0->tv_sec) * 1000 + (now.tv_nsec - t0->tv_nsec) / 1000000;
}

static void set_rcvtimeo(int fd, int ms)
{
	struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};

	assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)), 0);
}

/* The client registers satype as charon does (pid, own seq); the server answers. */
static void client_register(int fd, int c, uint8_t satype, uint32_t seq)
{
	struct sadb_msg m = pfkey_msg(SADB_REGISTER, satype, seq, getpid()), got;

	assert_int_equal(send(fd, &m, sizeof(m), 0), sizeof(m));
	assert_int_equal(server_recv(c, &got, sizeof(got), 1000), sizeof(got));
	assert_memory_equal(&got, &m, sizeof(m));
	server_send(c, &got);
	assert_int_equal(recv(fd, &got, sizeof(got), 0), sizeof(got));
	assert_memory_equal(&got, &m, sizeof(m));
}

/* A restarted daemon: waits, listens again, answers the replayed REGISTERs, then sends one
 * event (pid 0, as kernel-originated messages are). */
struct restart {
	int delay_ms;
	int registers; /* replayed REGISTERs expected */
	uint8_t event_type;
	int conn;	  /* out */
	int replayed;	  /* out: REGISTERs seen with the client's pid and seq 1 */
	uint32_t satypes; /* out: their satypes */
	uint32_t expected_pid;
};

static void *restart_thread(void *arg)
{
	struct restart *r = arg;
	struct sadb_msg m;

	usleep(r->delay_ms * 1000);
	server_start();
	r->conn = server_accept(3000);
	if (r->conn < 0)
		return NULL;
	for (int i = 0; i < r->registers; i++) {
		if (server_recv(r->conn, &m, sizeof(m), 1000) != sizeof(m))
			break;
		if (m.sadb_msg_type == SADB_REGISTER && m.sadb_msg_pid == r->expected_pid &&
		    m.sadb_msg_seq == 1) {
			r->replayed++;
			r->satypes |= 1u << m.sadb_msg_satype;
		}
		send(r->conn, &m, sizeof(m), MSG_NOSIGNAL);
	}
	m = pfkey_msg(r->event_type, SADB_SATYPE_ESP, 77, 0);
	send(r->conn, &m, sizeof(m), MSG_NOSIGNAL);
	return NULL;
}

/* ---- fixtures ---- */

static int setup(void **state)
{
	(void)state;
	server_start();
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	server_stop();
	return 0;
}

/* ---- tests ---- */

static void test_pfkey_socket_connects_to_server(void **state)
{
	int fd = pfkey_socket(), c, v;
	socklen_t l = sizeof(v);

	(void)state;
	assert_true(fd >= 0);
	c = server_accept(1000);
	assert_true(c >= 0);
	assert_int_equal(getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &v, &l), 0);
	assert_int_equal(v, AF_UNIX);
	assert_int_equal(getsockopt(fd, SOL_SOCKET, SO_TYPE, &v, &l), 0);
	assert_int_equal(v, SOCK_SEQPACKET);
	close(fd);
	close(c);
}

static void test_socket_type_flags_are_honoured(void **state)
{
	int fd = socket(PF_KEY, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, PF_KEY_V2);
	int c = server_accept(1000);

	(void)state;
	assert_true(fd >= 0);
	assert_true(c >= 0);
	assert_true(fcntl(fd, F_GETFL) & O_NONBLOCK);
	assert_true(fcntl(fd, F_GETFD) & FD_CLOEXEC);
	close(fd);
	close(c);
}

static void test_message_round_trips(void **state)
{
	uint8_t req[24], reply[24], got[64];
	struct sadb_msg h = pfkey_msg(SADB_GET, SADB_SATYPE_ESP, 5, getpid());
	struct iovec iov = {.iov_base = got, .iov_len = sizeof(got)};
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
	int fd = pfkey_socket(), c = server_accept(1000);

	(void)state;
	assert_true(c >= 0);
	h.sadb_msg_len = sizeof(req) / 8;
	memcpy(req, &h, sizeof(h));
	memset(req + sizeof(h), 0xa5, sizeof(req) - sizeof(h));
	assert_int_equal(send(fd, req, sizeof(req), 0), sizeof(req));
	assert_int_equal(server_recv(c, got, sizeof(got), 1000), sizeof(req));
	assert_memory_equal(got, req, sizeof(req));

	memcpy(reply, req, sizeof(reply));
	reply[sizeof(h)] = 0x5a;
	assert_int_equal(send(c, reply, sizeof(reply), 0), sizeof(reply));
	assert_int_equal(recvmsg(fd, &mh, 0), sizeof(reply));
	assert_memory_equal(got, reply, sizeof(reply));

	/* write()/read() take the same path. */
	assert_int_equal(write(fd, req, sizeof(req)), sizeof(req));
	assert_int_equal(server_recv(c, got, sizeof(got), 1000), sizeof(req));
	assert_int_equal(send(c, reply, sizeof(reply), 0), sizeof(reply));
	assert_int_equal(read(fd, got, sizeof(got)), sizeof(reply));
	assert_memory_equal(got, reply, sizeof(reply));
	close(fd);
	close(c);
}

static void test_other_sockets_are_untouched(void **state)
{
	int v, sv[2];
	socklen_t l = sizeof(v);
	int udp = socket(AF_INET, SOCK_DGRAM, 0);
	char b;

	(void)state;
	assert_true(udp >= 0);
	assert_int_equal(getsockopt(udp, SOL_SOCKET, SO_DOMAIN, &v, &l), 0);
	assert_int_equal(v, AF_INET);
	close(udp);

	/* PF_KEY version 1 is not ours: the kernel answers (and refuses: only v2 exists). */
	assert_int_equal(socket(PF_KEY, SOCK_RAW, 1), -1);
	assert_int_equal(server_accept(100), -1);

	/* EOF on somebody else's SEQPACKET socket stays EOF. */
	assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv), 0);
	close(sv[1]);
	assert_int_equal(recv(sv[0], &b, 1, MSG_DONTWAIT), 0);
	close(sv[0]);
}

static void test_restart_gives_eagain_replays_register_and_hides_reply(void **state)
{
	int fd = socket(PF_KEY, SOCK_RAW | SOCK_CLOEXEC, PF_KEY_V2), c = server_accept(1000);
	struct sadb_msg m;
	uint32_t satypes = 0;
	int replayed = 0;
	char b;

	(void)state;
	assert_true(c >= 0);
	client_register(fd, c, SADB_SATYPE_ESP, 1);
	client_register(fd, c, SADB_SATYPE_AH, 2);

	close(c);
	server_stop();
	for (int i = 0; i < 5; i++) {
		assert_int_equal(recv(fd, &b, 1, MSG_DONTWAIT), -1);
		assert_int_equal(errno, EAGAIN);
	}

	server_start();
	c = -1;
	for (int i = 0; i < 100 && c < 0; i++) {
		assert_int_equal(recv(fd, &b, 1, MSG_DONTWAIT), -1);
		assert_int_equal(errno, EAGAIN);
		c = server_accept(20);
	}
	assert_true(c >= 0);
	for (int i = 0; i < 2; i++) {
		assert_int_equal(server_recv(c, &m, sizeof(m), 1000), sizeof(m));
		assert_int_equal(m.sadb_msg_type, SADB_REGISTER);
		assert_int_equal(m.sadb_msg_pid, getpid());
		assert_int_equal(m.sadb_msg_seq, 1);
		satypes |= 1u << m.sadb_msg_satype;
		replayed++;
		server_send(c, &m); /* the reply the client must not see */
	}
	assert_int_equal(replayed, 2);
	assert_int_equal(satypes, (1u << SADB_SATYPE_ESP) | (1u << SADB_SATYPE_AH));
	assert_int_equal(server_recv(c, &m, sizeof(m), 100), -1); /* nothing else */

	m = pfkey_msg(SADB_ACQUIRE, SADB_SATYPE_ESP, 77, 0);
	server_send(c, &m);
	set_rcvtimeo(fd, 2000);
	assert_int_equal(recv(fd, &m, sizeof(m), 0), sizeof(m));
	assert_int_equal(m.sadb_msg_type, SADB_ACQUIRE);
	assert_int_equal(m.sadb_msg_seq, 77);
	assert_int_equal(recv(fd, &m, sizeof(m), MSG_DONTWAIT), -1);
	assert_int_equal(errno, EAGAIN);
	/* Same fd number, flags carried over to the new connection. */
	assert_true(fcntl(fd, F_GETFD) & FD_CLOEXEC);
	close(fd);
	close(c);
}

static void test_blocking_recv_waits_for_restarted_server(void **state)
{
	int fd = pfkey_socket(), c = server_accept(1000);
	struct restart r = {.delay_ms = 300,
			    .registers = 1,
			    .event_type = SADB_EXPIRE,
			    .expected_pid = getpid()};
	struct timespec t0;
	struct sadb_msg m;
	pthread_t th;

	(void)state;
	assert_true(c >= 0);
	client_register(fd, c, SADB_SATYPE_ESP, 1);
	close(c);
	server_stop();

	clock_gettime(CLOCK_MONOTONIC, &t0);
	assert_int_equal(pthread_create(&th, NULL, restart_thread, &r), 0);
	assert_int_equal(recv(fd, &m, sizeof(m), 0), sizeof(m));
	assert_int_equal(pthread_join(th, NULL), 0);
	assert_true(ms_since(&t0) >= 250);
	assert_int_equal(m.sadb_msg_type, SADB_EXPIRE);
	assert_int_equal(m.sadb_msg_pid, 0);
	assert_int_equal(r.replayed, 1);
	assert_int_equal(r.satypes, 1u << SADB_SATYPE_ESP);
	close(fd);
	close(r.conn);
}

/* The new daemon will never answer a request the old one took down with it: waiting would wedge
 * charon (it holds its PF_KEY mutex while waiting), so the request fails instead. */
static void test_blocking_recv_fails_request_lost_in_restart(void **state)
{
	int fd = pfkey_socket(), c = server_accept(1000);
	struct sadb_msg m = pfkey_msg(SADB_GET, SADB_SATYPE_ESP, 9, getpid()), got;

	(void)state;
	assert_true(c >= 0);
	assert_int_equal(send(fd, &m, sizeof(m), 0), sizeof(m));
	assert_int_equal(server_recv(c, &got, sizeof(got), 1000), sizeof(got));
	close(c);
	assert_int_equal(recv(fd, &got, sizeof(got), 0), -1);
	assert_int_equal(errno, ECONNRESET);

	/* The next request goes to the new connection. */
	m.sadb_msg_seq = 10;
	assert_int_equal(send(fd, &m, sizeof(m), 0), sizeof(m));
	c = server_accept(1000);
	assert_true(c >= 0);
	assert_int_equal(server_recv(c, &got, sizeof(got), 1000), sizeof(got));
	assert_int_equal(got.sadb_msg_seq, 10);
	close(fd);
	close(c);
}

static void test_poll_never_reports_a_dead_connection(void **state)
{
	int fd = pfkey_socket(), c = server_accept(1000);
	struct pollfd p = {.fd = fd, .events = POLLIN};
	struct sadb_msg m = pfkey_msg(SADB_EXPIRE, SADB_SATYPE_ESP, 3, 0);
	struct restart r = {.delay_ms = 200, .event_type = SADB_ACQUIRE};
	struct timespec t0;
	pthread_t th;

	(void)state;
	assert_true(c >= 0);
	/* A message queued before the daemon died is still delivered, without POLLHUP. */
	server_send(c, &m);
	close(c);
	server_stop();
	assert_int_equal(poll(&p, 1, 1000), 1);
	assert_int_equal(p.revents, POLLIN);
	assert_int_equal(recv(fd, &m, sizeof(m), MSG_DONTWAIT), sizeof(m));
	assert_int_equal(m.sadb_msg_type, SADB_EXPIRE);

	/* Then the dead connection: poll waits its full timeout instead of reporting HUP. */
	clock_gettime(CLOCK_MONOTONIC, &t0);
	assert_int_equal(poll(&p, 1, 300), 0);
	assert_true(ms_since(&t0) >= 250);
	assert_int_equal(p.revents, 0);
	assert_int_equal(recv(fd, &m, sizeof(m), MSG_DONTWAIT), -1);
	assert_int_equal(errno, EAGAIN);

	/* A poll in progress reconnects by itself and wakes for the restarted daemon's event. */
	assert_int_equal(pthread_create(&th, NULL, restart_thread, &r), 0);
	assert_int_equal(poll(&p, 1, 3000), 1);
	assert_int_equal(p.revents, POLLIN);
	assert_int_equal(recv(fd, &m, sizeof(m), MSG_DONTWAIT), sizeof(m));
	assert_int_equal(m.sadb_msg_type, SADB_ACQUIRE);
	assert_int_equal(pthread_join(th, NULL), 0);
	close(fd);
	close(r.conn);
}

static void test_close_releases_slot(void **state)
{
	int fd = pfkey_socket(), c = server_accept(1000), fd2, c2, sv[2];
	struct sadb_msg m;
	char b;

	(void)state;
	assert_true(c >= 0);
	client_register(fd, c, SADB_SATYPE_ESP, 1);
	assert_int_equal(close(fd), 0);
	close(c);

	/* A new PF_KEY socket on the same number starts with no registrations to replay. */
	fd2 = pfkey_socket();
	assert_int_equal(fd2, fd);
	c2 = server_accept(1000);
	assert_true(c2 >= 0);
	close(c2);
	assert_int_equal(recv(fd2, &b, 1, MSG_DONTWAIT), -1);
	assert_int_equal(errno, EAGAIN);
	c2 = server_accept(1000);
	assert_true(c2 >= 0);
	assert_int_equal(server_recv(c2, &m, sizeof(m), 200), -1);
	assert_int_equal(close(fd2), 0);
	close(c2);

	/* Once closed, the number is an ordinary fd again: EOF is not hidden. */
	assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv), 0);
	if (sv[0] != fd) {
		assert_int_equal(dup2(sv[0], fd), fd);
		close(sv[0]);
	}
	close(sv[1]);
	assert_int_equal(recv(fd, &b, 1, MSG_DONTWAIT), 0);
	close(fd);
}

static void test_socket_while_server_down_connects_lazily(void **state)
{
	struct sadb_msg m = pfkey_msg(SADB_REGISTER, SADB_SATYPE_ESP, 1, getpid()), got;
	struct pollfd p;
	int fd, c;
	char b;

	(void)state;
	server_stop();
	fd = pfkey_socket();
	assert_true(fd >= 0);
	assert_int_equal(recv(fd, &b, 1, MSG_DONTWAIT), -1);
	assert_int_equal(errno, EAGAIN);
	p = (struct pollfd){.fd = fd, .events = POLLIN};
	assert_int_equal(poll(&p, 1, 100), 0);

	server_start();
	assert_int_equal(send(fd, &m, sizeof(m), 0), sizeof(m));
	c = server_accept(1000);
	assert_true(c >= 0);
	assert_int_equal(server_recv(c, &got, sizeof(got), 1000), sizeof(got));
	assert_memory_equal(&got, &m, sizeof(m));
	close(fd);
	close(c);
}

static void test_send_while_server_down_fails_after_bounded_wait(void **state)
{
	struct sadb_msg m = pfkey_msg(SADB_REGISTER, SADB_SATYPE_ESP, 1, getpid());
	struct timespec t0;
	int fd;

	(void)state;
	server_stop();
	fd = pfkey_socket();
	assert_true(fd >= 0);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	assert_int_equal(send(fd, &m, sizeof(m), 0), -1);
	assert_int_equal(errno, ECONNREFUSED);
	assert_true(ms_since(&t0) >= CONNECT_TIMEOUT_MS - 20);
	assert_true(ms_since(&t0) < 3000);
	close(fd);
}

static void test_fortified_recv_hides_eof(void **state)
{
	int fd = pfkey_socket(), c = server_accept(1000);
	char buf[64];

	(void)state;
	assert_true(c >= 0);
	close(c);
	assert_int_equal(__recv_chk(fd, buf, sizeof(buf), sizeof(buf), MSG_DONTWAIT), -1);
	assert_int_equal(errno, EAGAIN);
	c = server_accept(1000); /* and it reconnected */
	assert_true(c >= 0);
	close(fd);
	close(c);
}

/* The host kernel is not the IPsec engine: charon's bypass policy and UDP_ENCAP on its IKE
 * sockets must not fail because the kernel lacks XFRM/af_key; other options are unaffected. */
static void test_setsockopt_kernel_ipsec_refusal_reads_as_success(void **state)
{
	struct sadb_x_policy pol = {
		.sadb_x_policy_len = sizeof(pol) / 8,
		.sadb_x_policy_exttype = SADB_X_EXT_POLICY,
		.sadb_x_policy_type = IPSEC_POLICY_BYPASS,
		.sadb_x_policy_dir = IPSEC_DIR_INBOUND,
	};
	int encap = UDP_ENCAP_ESPINUDP, ttl = 1000;
	int udp = socket(AF_INET, SOCK_DGRAM, 0), udp6 = socket(AF_INET6, SOCK_DGRAM, 0);

	(void)state;
	assert_true(udp >= 0);
	assert_int_equal(setsockopt(udp, IPPROTO_IP, IP_IPSEC_POLICY, &pol, sizeof(pol)), 0);
	assert_int_equal(setsockopt(udp, SOL_UDP, UDP_ENCAP, &encap, sizeof(encap)), 0);
	if (udp6 >= 0) {
		assert_int_equal(
			setsockopt(udp6, IPPROTO_IPV6, IPV6_IPSEC_POLICY, &pol, sizeof(pol)), 0);
		close(udp6);
	}
	assert_int_equal(setsockopt(udp, IPPROTO_IP, IP_TTL, &ttl, sizeof(ttl)), -1);
	assert_int_equal(errno, EINVAL);
	close(udp);
}

/* A reply that dpsecd sends 50 ms after the request: a late one for a client polling 1 ms. */
struct late_reply {
	int conn;
	int delay_ms;
};

static void *late_reply_thread(void *arg)
{
	struct late_reply *l = arg;
	struct sadb_msg m = pfkey_msg(SADB_REGISTER, SADB_SATYPE_ESP, 9, getpid());

	usleep(l->delay_ms * 1000);
	send(l->conn, &m, sizeof(m), MSG_NOSIGNAL);
	return NULL;
}

/* poll(fd, 1, 1) for a reply, as OpenBSD's iked waits: 1 if it came, 0 if not; *ms the wait. */
static int iked_style_wait(int fd, int conn, int delay_ms, long *ms)
{
	struct late_reply l = {.conn = conn, .delay_ms = delay_ms};
	struct pollfd p = {.fd = fd, .events = POLLIN};
	struct timespec t0;
	pthread_t th;
	int n;

	assert_int_equal(pthread_create(&th, NULL, late_reply_thread, &l), 0);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	n = poll(&p, 1, 1);
	*ms = ms_since(&t0);
	pthread_join(th, NULL);
	if (n == 1)
		assert_true(p.revents & POLLIN);
	return n;
}

static void test_short_poll_for_a_reply_waits_for_dpsecd(void **state)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct sadb_msg m;
	long ms;
	int fd = pfkey_socket(), c = server_accept(1000), passed, c2, sv[2];

	(void)state;
	assert_true(c >= 0);
	/* the library's own PF_KEY socket: the 1 ms wait lasts until the reply is there */
	assert_int_equal(iked_style_wait(fd, c, 50, &ms), 1);
	assert_true(ms >= 40 && ms < 450);
	assert_int_equal(recv(fd, &m, sizeof(m), 0), sizeof(m));

	/* a connection to dpsecd the process did not create itself (iked's ikev2 process gets its
	 * parent's by SCM_RIGHTS): the same */
	strcpy(sa.sun_path, sock_path);
	passed = socket(AF_UNIX, SOCK_SEQPACKET, 0);
	assert_true(passed >= 0);
	assert_int_equal(connect(passed, (struct sockaddr *)&sa, sizeof(sa)), 0);
	c2 = server_accept(1000);
	assert_true(c2 >= 0);
	assert_int_equal(iked_style_wait(passed, c2, 50, &ms), 1);
	assert_true(ms >= 40 && ms < 450);

	/* any other socket keeps its timeout */
	assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv), 0);
	assert_int_equal(iked_style_wait(sv[0], sv[1], 100, &ms), 0);
	assert_true(ms < 60);
	close(sv[0]);
	close(sv[1]);
	close(passed);
	close(c2);
	close(fd);
	close(c);
}

/* ---- re-exec under LD_PRELOAD ---- */

static int find_object(struct dl_phdr_info *info, size_t size, void *data)
{
	const char **want = data;

	(void)size;
	if (info->dlpi_name && strstr(info->dlpi_name, want[0])) {
		want[1] = info->dlpi_name;
		return 1;
	}
	return 0;
}

/* Path of a loaded object whose name contains needle, or NULL. */
static const char *loaded_object(const char *needle)
{
	const char *want[2] = {needle, NULL};

	dl_iterate_phdr(find_object, want);
	return want[1];
}

static int reexec_preloaded(char **argv)
{
	const char *asan = loaded_object("libasan.so");
	const char *old = getenv("LD_PRELOAD");
	char preload[4096], wait[16];

	if (!mkdtemp(strcpy(sock_dir, "/tmp/dpsec-preload-XXXXXX"))) {
		perror("mkdtemp");
		return 1;
	}
	snprintf(sock_path, sizeof(sock_path), "%s/pfkey.sock", sock_dir);
	/* A dynamic ASan runtime must come first in the preload list. */
	snprintf(preload, sizeof(preload), "%s%s%s%s%s", asan ? asan : "", asan ? ":" : "", argv[1],
		 old ? ":" : "", old ? old : "");
	setenv("LD_PRELOAD", preload, 1);
	setenv("DPSEC_PFKEY_SOCKET", sock_path, 1);
	snprintf(wait, sizeof(wait), "%d", CONNECT_TIMEOUT_MS);
	setenv("DPSEC_PFKEY_CONNECT_TIMEOUT_MS", wait, 1);
	setenv("DPSEC_TEST_PRELOAD_DIR", sock_dir, 1);
	execv("/proc/self/exe", argv);
	perror("execv");
	return 1;
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_pfkey_socket_connects_to_server, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_socket_type_flags_are_honoured, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_message_round_trips, setup, teardown),
		cmocka_unit_test_setup_teardown(test_other_sockets_are_untouched, setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_restart_gives_eagain_replays_register_and_hides_reply, setup,
			teardown),
		cmocka_unit_test_setup_teardown(test_blocking_recv_waits_for_restarted_server,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_blocking_recv_fails_request_lost_in_restart,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_poll_never_reports_a_dead_connection, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_close_releases_slot, setup, teardown),
		cmocka_unit_test_setup_teardown(test_socket_while_server_down_connects_lazily,
						setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_send_while_server_down_fails_after_bounded_wait, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fortified_recv_hides_eof, setup, teardown),
		cmocka_unit_test(test_setsockopt_kernel_ipsec_refusal_reads_as_success),
		cmocka_unit_test_setup_teardown(test_short_poll_for_a_reply_waits_for_dpsecd, setup,
						teardown),
	};
	const char *dir = getenv("DPSEC_TEST_PRELOAD_DIR");
	int ret;

	if (!dir) {
		if (argc < 2) {
			fprintf(stderr, "usage: %s path/to/libdpsec_pfkey.so\n", argv[0]);
			return 1;
		}
		return reexec_preloaded(argv);
	}
	if (!loaded_object("libdpsec_pfkey")) {
		fprintf(stderr, "libdpsec_pfkey.so is not preloaded\n");
		return 1;
	}
	snprintf(sock_dir, sizeof(sock_dir), "%s", dir);
	snprintf(sock_path, sizeof(sock_path), "%s/pfkey.sock", sock_dir);
	ret = cmocka_run_group_tests(tests, NULL, NULL);
	unlink(sock_path);
	rmdir(sock_dir);
	return ret;
}
