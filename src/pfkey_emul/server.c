/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * PF_KEY server: the socket, its clients, and the dispatch of validated
 * messages to the handlers. A client's connection is never closed by the
 * server once accepted (charon spins on EOF); replies that do not fit in the
 * client's socket buffer wait in its queue, so a DUMP is never truncated.
 */
#define DP_LOG_TYPE dps_logtype_pfkey /* common/log.h */
#include <errno.h>
#include <grp.h>
#include <inttypes.h>
#include <poll.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "control/lifetime.h"
#include "control/store.h"
#include "control/wipe.h"
#include "dataplane/crypto.h"
#include "pfkey_emul/server.h"
#include "pfkey_emul/state.h"

#define MAX_CLIENTS  64
#define BATCH	     256	  /* messages run between two commits */
#define QUEUE_LIMIT  (256u << 20) /* bytes waiting for one client */
#define EVENTS_EVERY 100	  /* ms between two event polls */
#define COMMIT_EVERY 5		  /* ms at least between two publishes */

struct out_msg {
	struct out_msg *next;
	bool held; /* the reply to a change not yet in force: waits for the publish */
	size_t len;
	uint8_t data[];
};

struct pfk_client {
	int fd;
	pid_t pid;
	uid_t uid;
	uint32_t registered; /* bit per satype */
	bool promisc;
	struct out_msg *head, *tail;
	struct out_msg *first_held; /* the oldest reply waiting for a publish, or NULL */
	size_t queued;
	uint64_t dropped; /* messages lost to QUEUE_LIMIT */
};

static struct {
	int lfd;
	struct dps_pfkey_cfg cfg;
	gid_t gid;
	bool have_gid;
	unsigned int n_clients;
	struct pfk_client clients[MAX_CLIENTS];
	uint8_t *rx;
	bool dirty;
	bool changed;				  /* the message being run changed the store */
	struct out_msg *tail_before[MAX_CLIENTS]; /* each queue's tail before it ran */
	uint64_t next_events;
	uint64_t next_commit;
	struct pfk_algs algs;
	unsigned int n_local;
	struct dps_addr local[DPS_MAX_PORTS * DPS_MAX_PORT_ADDRS];
} srv = {.lfd = -1};

const struct dps_pfkey_cfg *pfk_cfg(void)
{
	return &srv.cfg;
}

const struct pfk_algs *pfk_algs(void)
{
	return &srv.algs;
}

void pfk_store_dirty(void)
{
	srv.dirty = true;
	srv.changed = true;
	pfk_state_dirty();
}

int pfk_is_local(const struct dps_addr *a)
{
	for (unsigned int i = 0; i < srv.n_local; i++)
		if (dps_addr_eq(&srv.local[i], a))
			return 1;
	return 0;
}

int pfk_registered(uint8_t satype)
{
	for (unsigned int i = 0; i < srv.n_clients; i++)
		if (srv.clients[i].registered & (1u << satype))
			return 1;
	return 0;
}

void pfk_client_register(struct pfk_client *c, uint8_t satype)
{
	c->registered |= 1u << satype;
}

/* ---- output queues ---- */

static void enqueue(struct pfk_client *c, const void *msg, size_t len)
{
	struct out_msg *o;

	if (c->queued + len > QUEUE_LIMIT || (o = malloc(sizeof(*o) + len)) == NULL) {
		c->dropped++; /* as a kernel drops on a full receive buffer (ENOBUFS) */
		return;
	}
	o->next = NULL;
	o->held = false;
	o->len = len;
	memcpy(o->data, msg, len);
	if (c->tail)
		c->tail->next = o;
	else
		c->head = o;
	c->tail = o;
	c->queued += len;
}

/* A reply may carry keys (GET, DUMP): none stays in freed memory. */
static void out_free(struct out_msg *o)
{
	dps_free_wiped(o, sizeof(*o) + o->len);
}

/* Replies in order, up to the first that waits for a publish. */
static void flush_client(struct pfk_client *c)
{
	while (c->head != NULL && !c->head->held) {
		struct out_msg *o = c->head;
		ssize_t n = send(c->fd, o->data, o->len, MSG_DONTWAIT | MSG_NOSIGNAL);

		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
			return;
		/* sent, or the peer is gone (its close is seen on the next poll) */
		c->head = o->next;
		if (c->head == NULL)
			c->tail = NULL;
		c->queued -= o->len;
		out_free(o);
	}
}

void pfk_send(struct pfk_client *c, const void *msg, size_t len, enum pfk_to to, uint8_t satype)
{
	for (unsigned int i = 0; i < srv.n_clients; i++) {
		struct pfk_client *k = &srv.clients[i];
		bool want = false;

		switch (to) {
		case PFK_TO_ONE:
			want = k == c;
			break;
		case PFK_TO_ALL:
			want = true;
			break;
		case PFK_TO_REGISTERED:
			want = k->registered & (1u << satype);
			break;
		}
		/* promiscuous sockets see everything (RFC 2367 X_PROMISC) */
		if (want || k->promisc)
			enqueue(k, msg, len);
	}
}

/* ---- clients ---- */

static void client_free(unsigned int i)
{
	struct pfk_client *c = &srv.clients[i];

	while (c->head != NULL) {
		struct out_msg *o = c->head;

		c->head = o->next;
		out_free(o);
	}
	close(c->fd);
	srv.clients[i] = srv.clients[--srv.n_clients];
}

static bool in_group(uid_t uid, gid_t gid)
{
	struct passwd *pw = getpwuid(uid);
	gid_t groups[64];
	int n = 64;

	if (pw == NULL)
		return false;
	if (pw->pw_gid == gid)
		return true;
	if (getgrouplist(pw->pw_name, pw->pw_gid, groups, &n) < 0)
		return false;
	for (int i = 0; i < n; i++)
		if (groups[i] == gid)
			return true;
	return false;
}

/* Root, or a member of the configured group: what the kernel asks (CAP_NET_ADMIN) in spirit. */
static bool allowed(const struct ucred *cr)
{
	if (cr->uid == 0)
		return true;
	return srv.have_gid && (cr->gid == srv.gid || in_group(cr->uid, srv.gid));
}

static void accept_clients(void)
{
	for (;;) {
		struct ucred cr;
		socklen_t crl = sizeof(cr);
		int fd = accept4(srv.lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (fd < 0)
			return;
		if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &crl) < 0 || !allowed(&cr)) {
			DP_LOG(WARNING,
			       "pfkey: refused a client (pid %d uid %u gid %u): not root%s",
			       (int)cr.pid, (unsigned int)cr.uid, (unsigned int)cr.gid,
			       srv.have_gid ? " nor in the configured group" : "");
			close(fd);
			continue;
		}
		if (srv.n_clients == MAX_CLIENTS) {
			DP_LOG(WARNING, "pfkey: refused pid %d: %d clients already", (int)cr.pid,
			       MAX_CLIENTS);
			close(fd);
			continue;
		}
		srv.clients[srv.n_clients++] =
			(struct pfk_client){.fd = fd, .pid = cr.pid, .uid = cr.uid};
		DP_LOG(INFO, "pfkey: client pid %d uid %u connected", (int)cr.pid,
		       (unsigned int)cr.uid);
	}
}

/* ---- dispatch ---- */

typedef int (*handler_t)(struct pfk_client *c, const struct pfk_msg *m);

static int promisc(struct pfk_client *c, const struct pfk_msg *m)
{
	struct sadb_msg h = *m->hdr;

	c->promisc = m->hdr->sadb_msg_satype != 0;
	h.sadb_msg_len = sizeof(h) / 8;
	h.sadb_msg_errno = 0;
	pfk_send(c, &h, sizeof(h), PFK_TO_ONE, 0);
	return 0;
}

static const handler_t handlers[SADB_MAX + 1] = {
	[SADB_GETSPI] = pfk_sadb_getspi,
	[SADB_UPDATE] = pfk_sadb_add,
	[SADB_ADD] = pfk_sadb_add,
	[SADB_DELETE] = pfk_sadb_delete,
	[SADB_GET] = pfk_sadb_get,
	[SADB_REGISTER] = pfk_sadb_register,
	[SADB_FLUSH] = pfk_sadb_flush,
	[SADB_DUMP] = pfk_sadb_dump,
	[SADB_X_PROMISC] = promisc,
	[SADB_X_SPDADD] = pfk_spdb_add,
	[SADB_X_SPDUPDATE] = pfk_spdb_add,
	[SADB_X_SPDDELETE] = pfk_spdb_delete,
	[SADB_X_SPDDELETE2] = pfk_spdb_delete,
	[SADB_X_SPDGET] = pfk_spdb_get,
	[SADB_X_SPDDUMP] = pfk_spdb_dump,
	[SADB_X_SPDFLUSH] = pfk_spdb_flush,
};

static void reply_error(struct pfk_client *c, const void *req, size_t len, int err)
{
	struct sadb_msg h = {0};
	uint8_t buf[sizeof(struct sadb_msg)];
	long n;

	/* a header too short to copy still gets an answer the client can match */
	memcpy(&h, req, len < sizeof(h) ? len : sizeof(h));
	n = pfk_build_error(buf, sizeof(buf), &h, err);
	if (n > 0)
		pfk_send(c, buf, (size_t)n, PFK_TO_ONE, 0);
}

/*
 * What a message that changed the store sent (its reply, and the copies for
 * the other sockets) is held until the change is in force; what a message
 * that changed nothing sent (REGISTER, GETSPI, GET, DUMP...) goes at once,
 * behind only the held replies of the same socket (a client's replies keep
 * their order).
 */
static void hold_new_replies(void)
{
	for (unsigned int i = 0; i < srv.n_clients; i++) {
		struct pfk_client *c = &srv.clients[i];
		struct out_msg *o = srv.tail_before[i] ? srv.tail_before[i]->next : c->head;

		if (o != NULL && c->first_held == NULL)
			c->first_held = o;
		for (; o != NULL; o = o->next)
			o->held = true;
	}
}

static void release_replies(void)
{
	for (unsigned int i = 0; i < srv.n_clients; i++) {
		struct pfk_client *c = &srv.clients[i];

		/* what came before the first held reply was never held: a long DUMP
		 * queued ahead is not walked */
		for (struct out_msg *o = c->first_held; o != NULL; o = o->next)
			o->held = false;
		c->first_held = NULL;
	}
}

static void run_message(struct pfk_client *c, size_t len)
{
	struct pfk_msg m;
	int err = pfk_parse(srv.rx, len, &m);
	handler_t h;

	for (unsigned int i = 0; i < srv.n_clients; i++)
		srv.tail_before[i] = srv.clients[i].tail;
	srv.changed = false;
	if (err == 0) {
		h = m.hdr->sadb_msg_type <= SADB_MAX ? handlers[m.hdr->sadb_msg_type] : NULL;
		err = h ? h(c, &m) : EOPNOTSUPP;
		dps_stack_wipe(); /* the handler's parsed SA, keys included */
	}
	if (err) {
		DP_LOG(DEBUG, "pfkey: pid %d message type %u: %s", (int)c->pid,
		       len >= 2 ? srv.rx[1] : 0, strerror(err));
		reply_error(c, srv.rx, len, err);
	}
	if (srv.changed)
		hold_new_replies();
}

/* Messages of one client; false once it has gone. */
static bool read_client(struct pfk_client *c, unsigned int *budget)
{
	while (*budget > 0) {
		ssize_t n = recv(c->fd, srv.rx, PFK_MSG_MAX, MSG_DONTWAIT | MSG_TRUNC);

		if (n == 0)
			return false;
		if (n < 0)
			return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR;
		(*budget)--;
		if ((size_t)n > PFK_MSG_MAX)
			reply_error(c, srv.rx, PFK_MSG_MAX, EMSGSIZE);
		else
			run_message(c, (size_t)n);
		/* ADD and UPDATE carry keys: not left for the next message to half cover */
		dps_wipe(srv.rx, (size_t)n > PFK_MSG_MAX ? PFK_MSG_MAX : (size_t)n);
	}
	return true;
}

/*
 * Publish what the messages changed, and only then release their replies:
 * when a key daemon has its reply, the workers apply the change (a trap
 * policy installed is a policy in force: not one packet in clear after it).
 * A publish costs the changes and one RCU grace period, not a compilation
 * (the SPD's is in the background); the messages read in one poll share it,
 * and should one ever take long, the next waits as long (at most half of the
 * control thread's time goes to publishing).
 */
static uint64_t now_us(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000000 + (uint64_t)t.tv_nsec / 1000;
}

static void commit(uint64_t now_ms)
{
	uint64_t t0 = now_us(), took;

	if (!srv.dirty || now_ms < srv.next_commit)
		return;
	srv.dirty = false;
	if (dps_store_commit() < 0)
		DP_LOG(ERR, "pfkey: cannot publish the SPD/SAD; the workers keep the previous one");
	release_replies();
	took = now_us() - t0;
	/* Only a long publish (a reload's full compilation) holds the next one
	 * back; a short one must not: the clock's milliseconds would delay
	 * every reply whose publish crossed one by up to a millisecond. */
	srv.next_commit = took >= 2000 ? dp_now_ms() + took / 1000 : 0;
	DP_LOG(DEBUG, "pfkey: published in %" PRIu64 " us", took);
}

void pfk_server_poll(uint64_t now_ms)
{
	unsigned int budget = BATCH;

	if (srv.lfd < 0)
		return;
	accept_clients();
	for (unsigned int i = 0; i < srv.n_clients;) {
		if (!read_client(&srv.clients[i], &budget)) {
			DP_LOG(INFO, "pfkey: client pid %d left", (int)srv.clients[i].pid);
			client_free(i);
			continue;
		}
		i++;
	}
	if (now_ms >= srv.next_events) {
		srv.next_events = now_ms + EVENTS_EVERY;
		pfk_sadb_timer(now_ms);
		pfk_events_poll(now_ms);
	}
	/* what needs no publish leaves before one */
	for (unsigned int i = 0; i < srv.n_clients; i++)
		flush_client(&srv.clients[i]);
	commit(now_ms);
	for (unsigned int i = 0; i < srv.n_clients; i++)
		flush_client(&srv.clients[i]);
	pfk_state_poll(now_ms);
}

void pfk_server_wait(unsigned int timeout_us)
{
	struct pollfd p[MAX_CLIENTS + 1];
	nfds_t n = 0;
	int ms = (int)((timeout_us + 999) / 1000);

	if (srv.lfd < 0) {
		usleep(timeout_us);
		return;
	}
	if (srv.dirty) { /* a publish is due: come back for it */
		uint64_t now = dp_now_ms();
		int due = srv.next_commit > now ? (int)(srv.next_commit - now) : 0;

		ms = due < ms ? due : ms;
	}
	p[n++] = (struct pollfd){.fd = srv.lfd, .events = POLLIN};
	for (unsigned int i = 0; i < srv.n_clients; i++)
		p[n++] = (struct pollfd){
			.fd = srv.clients[i].fd,
			.events =
				POLLIN |
				(srv.clients[i].head && !srv.clients[i].head->held ? POLLOUT : 0)};
	poll(p, n, ms);
}

/* ---- algorithms the devices offer ---- */

static bool runs(uint8_t enc, uint8_t enc_len, uint8_t auth, uint8_t auth_len)
{
	struct dps_sa sa = {.proto = DPS_PROTO_ESP,
			    .enc_alg = enc,
			    .enc_key_len = enc_len,
			    .auth_alg = auth,
			    .auth_key_len = auth_len};
	struct dp_xforms x;
	const char *why;

	return dp_crypto_xforms(&sa, &x, &why) == 0 && dp_crypto_pick(&x) >= 0;
}

/* SUPPORTED lists what the devices really run: probe each algorithm and key size. */
static void algs_probe(void)
{
	static const struct {
		uint8_t alg;
		uint16_t min_bits, max_bits; /* without salt */
		uint8_t salt;
	} enc[] = {
		{DPS_ENC_NULL, 0, 0, 0},	 {DPS_ENC_AES_CBC, 128, 256, 0},
		{DPS_ENC_AES_CTR, 128, 256, 4},	 {DPS_ENC_AES_GCM, 128, 256, 4},
		{DPS_ENC_AES_GMAC, 128, 256, 4}, {DPS_ENC_CHACHA20_POLY1305, 256, 256, 4},
	};
	static const struct {
		uint8_t alg;
		uint16_t bits;
	} auth[] = {
		{DPS_AUTH_HMAC_SHA1_96, 160},
		{DPS_AUTH_HMAC_SHA256_128, 256},
		{DPS_AUTH_HMAC_SHA384_192, 384},
		{DPS_AUTH_HMAC_SHA512_256, 512},
	};
	struct pfk_algs *a = &srv.algs;

	memset(a, 0, sizeof(*a));
	for (unsigned int i = 0; i < RTE_DIM(auth); i++) {
		if (!runs(DPS_ENC_NULL, 0, auth[i].alg, auth[i].bits / 8))
			continue;
		a->auth[a->n_auth++] = (struct sadb_alg){
			.sadb_alg_id = pfk_sadb_aalg(auth[i].alg),
			.sadb_alg_minbits = auth[i].bits,
			.sadb_alg_maxbits = auth[i].bits,
		};
	}
	for (unsigned int i = 0; i < RTE_DIM(enc); i++) {
		bool aead = enc[i].alg == DPS_ENC_AES_GCM || enc[i].alg == DPS_ENC_AES_GMAC ||
			    enc[i].alg == DPS_ENC_CHACHA20_POLY1305;
		uint8_t au = aead ? DPS_AUTH_NONE : DPS_AUTH_HMAC_SHA256_128;
		uint8_t aul = aead ? 0 : 32;
		uint16_t lo = 0, hi = 0;

		for (uint16_t b = enc[i].min_bits; b <= enc[i].max_bits; b += 64) {
			if (!runs(enc[i].alg, b / 8 + enc[i].salt, au, aul))
				continue;
			lo = lo ? lo : b;
			hi = b;
			if (b == 0)
				break;
		}
		if (hi == 0 && enc[i].alg != DPS_ENC_NULL)
			continue;
		if (enc[i].alg == DPS_ENC_NULL && !runs(DPS_ENC_NULL, 0, au, aul))
			continue;
		a->enc[a->n_enc++] = (struct sadb_alg){
			.sadb_alg_id = pfk_sadb_ealg(enc[i].alg),
			.sadb_alg_ivlen = enc[i].alg == DPS_ENC_NULL ? 0 : 8,
			.sadb_alg_minbits = lo ? lo + enc[i].salt * 8 : 0,
			.sadb_alg_maxbits = hi ? hi + enc[i].salt * 8 : 0,
		};
	}
}

/* ---- lifecycle ---- */

static int listen_on(const char *path)
{
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	char dir[sizeof(sun.sun_path)];
	char *slash;
	int fd;

	if (strlen(path) >= sizeof(sun.sun_path)) {
		DP_LOG(ERR, "pfkey: socket path too long: %s", path);
		return -1;
	}
	strcpy(sun.sun_path, path);
	strcpy(dir, path);
	slash = strrchr(dir, '/');
	if (slash != NULL && slash != dir) {
		*slash = '\0';
		if (mkdir(dir, 0755) < 0 && errno != EEXIST) {
			DP_LOG(ERR, "pfkey: cannot create %s: %s", dir, strerror(errno));
			return -1;
		}
	}
	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		DP_LOG(ERR, "pfkey: socket: %s", strerror(errno));
		return -1;
	}
	unlink(path); /* a previous dpsecd's */
	if (bind(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0 ||
	    chmod(path, srv.have_gid ? 0660 : 0600) < 0 ||
	    (srv.have_gid && chown(path, 0, srv.gid) < 0) || listen(fd, 64) < 0) {
		DP_LOG(ERR, "pfkey: cannot listen on %s: %s", path, strerror(errno));
		close(fd);
		unlink(path);
		return -1;
	}
	return fd;
}

/* A soft expiry asks the key daemons to rekey; a hard one also changes what
 * the state file must hold (the SA is removed after this returns). */
static void lifetime_report(const struct dps_store_sa *s, bool hard)
{
	pfk_events_expire(s, hard);
	if (hard)
		pfk_state_dirty();
}

int pfk_server_init(const struct dps_config *cfg)
{
	srv.cfg = cfg->pfkey;
	if (!srv.cfg.enabled)
		return 0;
	srv.n_local = 0;
	for (unsigned int p = 0; p < cfg->n_ports; p++)
		for (unsigned int i = 0; i < cfg->ports[p].n_addrs; i++)
			srv.local[srv.n_local++] = cfg->ports[p].addrs[i].addr;
	if (srv.cfg.group[0]) {
		struct group *g = getgrnam(srv.cfg.group);

		if (g == NULL) {
			DP_LOG(ERR, "pfkey: group '%s' does not exist", srv.cfg.group);
			return -1;
		}
		srv.gid = g->gr_gid;
		srv.have_gid = true;
	}
	srv.rx = malloc(PFK_MSG_MAX + 1);
	if (srv.rx == NULL)
		return -1;
	algs_probe();
	srv.lfd = listen_on(srv.cfg.socket);
	if (srv.lfd < 0) {
		free(srv.rx);
		srv.rx = NULL;
		return -1;
	}
	dps_lifetime_set_report(lifetime_report);
	dps_reload_set_report(pfk_events_config);
	DP_LOG(NOTICE, "pfkey: listening on %s (%u encryption, %u integrity algorithms)",
	       srv.cfg.socket, srv.algs.n_enc, srv.algs.n_auth);
	return 0;
}

void pfk_server_fini(void)
{
	if (srv.lfd < 0)
		return;
	dps_lifetime_set_report(NULL);
	dps_reload_set_report(NULL);
	while (srv.n_clients)
		client_free(srv.n_clients - 1);
	close(srv.lfd);
	unlink(srv.cfg.socket);
	srv.lfd = -1;
	pfk_state_fini();
	pfk_sadb_fini();
	free(srv.rx);
	srv.rx = NULL;
}
