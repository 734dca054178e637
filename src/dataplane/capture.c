/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Capture at the IPsec points (capture.h): the workers' copies, and the
 * control thread's pcapng file (rte_pcapng), one comment per packet.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <rte_cycles.h>
#include <rte_ethdev.h>
#include <rte_pcapng.h>
#include <rte_ring.h>

#include "dataplane/capture.h"
#include "dataplane/polog_rec.h"
#include "dataplane/sa.h"
#include "dataplane/spd.h"

#define CAP_MBUFS     1023 /* copies in flight between the workers and the file */
#define CAP_RING_SIZE 1024
#define CAP_BURST     32
#define CAP_COMMENT   128

const char *const dp_cap_point_names[DP_CAP_MAX] = {"out-clear", "in-clear", "out-cipher",
						    "in-cipher", "drop"};

const struct dp_cap_spec *dp_cap_armed;

/* What a worker notes about its copy, in the copy's private area. */
struct cap_meta {
	uint64_t tsc;
	uint32_t sa_id, policy_id;
	uint16_t port; /* dataplane port index, DP_NO_PORT: unknown */
	uint8_t point, reason;
};

static struct {
	pthread_mutex_t lock;	   /* telemetry thread vs control thread */
	struct rte_mempool *pool;  /* the workers' copies */
	struct rte_mempool *wpool; /* the pcapng blocks made of them */
	struct rte_ring *ring;
	struct dp_cap_spec spec[2]; /* alternate: a new capture never rewrites the last one's */
	unsigned int cur;
	uint32_t gen;
	bool armed, open, stop;
	rte_pcapng_t *png;
	uint64_t count, written, skipped_base;
	uint64_t tsc0, ns0, hz; /* the copies' clock: TSC tsc0 was wall-clock ns0 */
} cap = {.lock = PTHREAD_MUTEX_INITIALIZER};

/*
 * rte_pcapng (DPDK 22.11) anchors its TSC-to-time conversion at the first
 * one it makes, at that moment; the first copy of a process was taken by a
 * worker before the control thread converts it, its TSC lies behind the
 * anchor, and it and every later timestamp come out 2^64 cycles (some 220
 * years at 2.6 GHz) ahead. dpsecd anchors its own clock when it starts and
 * writes each block's timestamp itself.
 */
static void clock_anchor(void)
{
	struct timespec ts;
	uint64_t t = rte_rdtsc();

	clock_gettime(CLOCK_REALTIME, &ts);
	cap.tsc0 = t + (rte_rdtsc() - t) / 2;
	cap.ns0 = (uint64_t)ts.tv_sec * NS_PER_S + (uint64_t)ts.tv_nsec;
	cap.hz = rte_get_tsc_hz();
}

static uint64_t tsc_to_ns(uint64_t tsc)
{
	uint64_t d = tsc - cap.tsc0;

	if ((int64_t)d < 0) /* another core's TSC a hair behind the anchor */
		d = 0;
	/* d % hz < 2^33: times 10^9 stays below 2^64 */
	return cap.ns0 + d / cap.hz * NS_PER_S + d % cap.hz * NS_PER_S / cap.hz;
}

int dp_cap_init(void)
{
	unsigned int max_mtu = 0;
	uint32_t room;

	for (unsigned int i = 0; i < dp.n_ports; i++)
		max_mtu = RTE_MAX(max_mtu, (unsigned int)dp.ports[i].mtu);
	room = RTE_PKTMBUF_HEADROOM + RTE_MAX(2048u, max_mtu + RTE_ETHER_HDR_LEN + 128);
	cap.pool = rte_pktmbuf_pool_create("dps_cap", CAP_MBUFS, 32,
					   RTE_ALIGN(sizeof(struct cap_meta), RTE_MBUF_PRIV_ALIGN),
					   (uint16_t)room, SOCKET_ID_ANY);
	cap.wpool = rte_pktmbuf_pool_create(
		"dps_capw", 63, 0, 0,
		(uint16_t)(RTE_PKTMBUF_HEADROOM +
			   rte_pcapng_mbuf_size(max_mtu + RTE_ETHER_HDR_LEN + 128) + CAP_COMMENT +
			   8),
		SOCKET_ID_ANY);
	cap.ring = rte_ring_create("dps_cap", CAP_RING_SIZE, SOCKET_ID_ANY, RING_F_SC_DEQ);
	clock_anchor();
	if (cap.pool == NULL || cap.wpool == NULL || cap.ring == NULL) {
		DP_LOG(ERR, "capture pool or ring: %s", rte_strerror(rte_errno));
		return -1;
	}
	return 0;
}

static void ring_flush(void)
{
	struct rte_mbuf *m[CAP_BURST];
	unsigned int n;

	while ((n = rte_ring_sc_dequeue_burst(cap.ring, (void **)m, CAP_BURST, NULL)) > 0)
		rte_pktmbuf_free_bulk(m, n);
}

void dp_cap_fini(void)
{
	__atomic_store_n(&dp_cap_armed, NULL, __ATOMIC_RELEASE);
	if (cap.png != NULL)
		rte_pcapng_close(cap.png);
	cap.png = NULL;
	if (cap.ring != NULL)
		ring_flush();
	rte_ring_free(cap.ring);
	rte_mempool_free(cap.pool);
	rte_mempool_free(cap.wpool);
	cap.ring = NULL;
	cap.pool = cap.wpool = NULL;
	cap.armed = cap.open = false;
}

static uint64_t skipped_now(void)
{
	uint64_t n = 0;

	for (unsigned int i = 0; i < dp.n_workers; i++)
		n += __atomic_load_n(&dp.workers[i].cap_skipped, __ATOMIC_RELAXED);
	return n;
}

int dp_cap_start(uint8_t point, uint32_t sa_id, uint32_t policy_id, uint64_t count, uint32_t rate,
		 const char *path, char *err, size_t errlen)
{
	char comment[160];
	struct dp_cap_spec *s;
	int fd, ret = -1;

	if (point >= DP_CAP_MAX || rate == 0 || cap.ring == NULL) {
		snprintf(err, errlen, "bad capture parameters");
		return -1;
	}
	pthread_mutex_lock(&cap.lock);
	if (cap.open) {
		snprintf(err, errlen, "a capture is running already");
		goto out;
	}
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		goto out;
	}
	snprintf(comment, sizeof(comment), "dpsec capture point %s sa %u policy %u",
		 dp_cap_point_names[point], sa_id, policy_id);
	cap.png = rte_pcapng_fdopen(fd, NULL, NULL, "dpsecd", comment);
	if (cap.png == NULL) {
		snprintf(err, errlen, "pcapng: %s", rte_strerror(rte_errno));
		close(fd);
		goto out;
	}
	/* The previous capture's spec may still be in a worker's hands for the
	 * rest of its loop: use the other one. */
	cap.cur ^= 1;
	s = &cap.spec[cap.cur];
	*s = (struct dp_cap_spec){.gen = ++cap.gen,
				  .point = point,
				  .sa_id = sa_id,
				  .policy_id = policy_id,
				  .cost = RTE_MAX(rte_get_tsc_hz() / rate, (uint64_t)1),
				  .burst = RTE_MIN(RTE_MAX(rate / 10, 1u), 64u)};
	cap.count = count;
	cap.written = 0;
	cap.skipped_base = skipped_now();
	cap.open = cap.armed = true;
	cap.stop = false;
	__atomic_store_n(&dp_cap_armed, s, __ATOMIC_RELEASE);
	DP_LOG(INFO, "capture armed: %s to %s", comment, path);
	ret = 0;
out:
	pthread_mutex_unlock(&cap.lock);
	return ret;
}

void dp_cap_stop(void)
{
	pthread_mutex_lock(&cap.lock);
	if (cap.open)
		cap.stop = true;
	pthread_mutex_unlock(&cap.lock);
}

void dp_cap_status(struct dp_cap_status *st)
{
	pthread_mutex_lock(&cap.lock);
	st->armed = cap.armed;
	st->done = !cap.open;
	st->written = cap.written;
	st->skipped = skipped_now() - cap.skipped_base;
	st->count = cap.count;
	st->point = cap.spec[cap.cur].point;
	pthread_mutex_unlock(&cap.lock);
}

/* ---- workers -------------------------------------------------------------------------------- */

static inline bool cap_token(struct dp_worker *w, const struct dp_cap_spec *c)
{
	uint64_t now = rte_rdtsc(), cap_ = c->cost * c->burst;

	w->cap_tokens += now - w->cap_last;
	w->cap_last = now;
	if (w->cap_tokens > cap_)
		w->cap_tokens = cap_;
	if (w->cap_tokens < c->cost)
		return false;
	w->cap_tokens -= c->cost;
	return true;
}

void dp_cap_copy(struct dp_worker *w, uint8_t point, struct rte_mbuf *m, uint16_t port,
		 uint32_t policy_id, uint32_t sa_id, uint8_t reason)
{
	struct rte_mbuf *c;
	struct cap_meta *md;

	if (!cap_token(w, w->cap) || (c = rte_pktmbuf_copy(m, cap.pool, 0, UINT32_MAX)) == NULL) {
		w->cap_skipped++;
		return;
	}
	/* A protected packet keeps the Ethernet header of the frame it was
	 * made of until the output stage: its type follows the outer header. */
	if (point == DP_CAP_OUT_CIPHER && rte_pktmbuf_data_len(c) > RTE_ETHER_HDR_LEN) {
		struct rte_ether_hdr *e = rte_pktmbuf_mtod(c, struct rte_ether_hdr *);

		e->ether_type = (*(const uint8_t *)(e + 1) >> 4) == 6
					? RTE_BE16(RTE_ETHER_TYPE_IPV6)
					: RTE_BE16(RTE_ETHER_TYPE_IPV4);
	}
	md = rte_mbuf_to_priv(c);
	md->tsc = rte_rdtsc();
	md->sa_id = sa_id;
	md->policy_id = policy_id;
	if (port == DP_NO_PORT && m->port < RTE_MAX_ETHPORTS && dp.port_of_eth[m->port] >= 0)
		port = (uint16_t)dp.port_of_eth[m->port];
	md->port = port;
	md->point = point;
	md->reason = reason;
	if (rte_ring_mp_enqueue(cap.ring, c) != 0) {
		rte_pktmbuf_free(c);
		w->cap_skipped++;
	}
}

void dp_cap_pkt(struct dp_worker *w, uint8_t point, struct rte_mbuf *m, uint16_t port,
		const struct dp_policy *policy, const struct dp_sa *sa, uint8_t reason)
{
	const struct dp_cap_spec *c = w->cap;

	if (c->point != point || (c->sa_id && (sa == NULL || sa->id != c->sa_id)) ||
	    (c->policy_id && (policy == NULL || policy->id != c->policy_id)))
		return;
	dp_cap_copy(w, point, m, port, policy != NULL ? policy->id : 0, sa != NULL ? sa->id : 0,
		    reason);
}

void dp_cap_burst(struct dp_worker *w, uint8_t point, struct rte_mbuf **m, uint16_t n,
		  const struct dp_sa *sa)
{
	const struct dp_cap_spec *c = w->cap;

	if (c->point != point || (c->sa_id && sa->id != c->sa_id) || c->policy_id)
		return;
	for (uint16_t i = 0; i < n; i++)
		dp_cap_copy(w, point, m[i], DP_NO_PORT, 0, sa->id, DP_DROP_MAX);
}

/* ---- the file ------------------------------------------------------------------------------- */

/*
 * Add an opt_comment (pcapng §3.5, code 1) to the Enhanced Packet Block
 * rte_pcapng_copy() made of @m, before its end-of-options. Scapy's reader
 * keeps a comment up to its first newline, so the text ends with one.
 */
static int epb_comment(struct rte_mbuf *m, const char *text)
{
	uint16_t tlen = (uint16_t)strlen(text), add = 4 + RTE_ALIGN_CEIL(tlen, 4);
	uint8_t *p, *o;
	uint32_t total, caplen, off, len;

	if (rte_pktmbuf_linearize(m) < 0)
		return -1;
	len = rte_pktmbuf_data_len(m);
	p = rte_pktmbuf_mtod(m, uint8_t *);
	if (len < 32)
		return -1;
	memcpy(&total, p + 4, 4);
	memcpy(&caplen, p + 20, 4);
	if (total != len || 28 + RTE_ALIGN_CEIL(caplen, 4) > len - 4)
		return -1;
	off = 28 + RTE_ALIGN_CEIL(caplen, 4);
	while (off + 4 <= len - 4) {
		uint16_t code, olen;

		memcpy(&code, p + off, 2);
		memcpy(&olen, p + off + 2, 2);
		if (code == 0)
			break;
		off += 4 + RTE_ALIGN_CEIL(olen, 4);
	}
	if (off > len - 4 || rte_pktmbuf_append(m, add) == NULL)
		return -1;
	p = rte_pktmbuf_mtod(m, uint8_t *);
	memmove(p + off + add, p + off, len - off);
	o = p + off;
	memset(o, 0, add);
	/* host order, as rte_pcapng's section header says: code 1, length */
	memcpy(o, &(uint16_t){1}, 2);
	memcpy(o + 2, &tlen, 2);
	memcpy(o + 4, text, tlen);
	if (off == len - 4) { /* there was no end-of-options: add one */
		if (rte_pktmbuf_append(m, 4) == NULL)
			return -1;
		p = rte_pktmbuf_mtod(m, uint8_t *);
		memmove(p + off + add + 4, p + off + add, 4);
		memset(p + off + add, 0, 4);
		add += 4;
	}
	total += add;
	memcpy(p + 4, &total, 4);
	memcpy(p + total - 4, &total, 4);
	return 0;
}

static void comment_of(const struct cap_meta *md, char *buf, size_t len)
{
	char sa[16] = "-", pol[16] = "-";

	if (md->sa_id)
		snprintf(sa, sizeof(sa), "%u", md->sa_id);
	if (md->policy_id)
		snprintf(pol, sizeof(pol), "%u", md->policy_id);
	snprintf(buf, len, "point %s sa %s policy %s port %s%s%s\n", dp_cap_point_names[md->point],
		 sa, pol, md->port < dp.n_ports ? dp.ports[md->port].cfg->name : "?",
		 md->point == DP_CAP_DROP ? " reason " : "",
		 md->point == DP_CAP_DROP && md->reason < DP_DROP_MAX
			 ? dp_polog_reason_names[md->reason]
			 : "");
}

static void write_one(struct rte_mbuf *c)
{
	const struct cap_meta *md = rte_mbuf_to_priv(c);
	uint16_t eth = md->port < dp.n_ports ? dp.ports[md->port].eth_id : 0;
	char text[CAP_COMMENT];
	struct rte_mbuf *b;

	comment_of(md, text, sizeof(text));
	b = rte_pcapng_copy(eth, 0, c, cap.wpool, UINT32_MAX, md->tsc,
			    md->point == DP_CAP_OUT_CLEAR || md->point == DP_CAP_OUT_CIPHER
				    ? RTE_PCAPNG_DIRECTION_OUT
				    : RTE_PCAPNG_DIRECTION_IN);
	if (b == NULL)
		return;
	if (epb_comment(b, text) == 0) {
		/* the Enhanced Packet Block's timestamp (pcapng §4.3), in the
		 * interface's nanoseconds, host order as the whole file */
		uint64_t ns = tsc_to_ns(md->tsc);
		uint32_t hi = (uint32_t)(ns >> 32), lo = (uint32_t)ns;
		uint8_t *p = rte_pktmbuf_mtod(b, uint8_t *);

		memcpy(p + 12, &hi, 4);
		memcpy(p + 16, &lo, 4);
		if (rte_pcapng_write_packets(cap.png, &b, 1) > 0)
			cap.written++;
	}
	rte_pktmbuf_free(b);
}

/* Workers stop copying; those in the middle of a loop finish it first. */
static void disarm(void)
{
	__atomic_store_n(&dp_cap_armed, NULL, __ATOMIC_RELEASE);
	cap.armed = false;
	rte_rcu_qsbr_synchronize(dp.rcu, RTE_QSBR_THRID_INVALID);
}

void dp_cap_poll(void)
{
	struct rte_mbuf *m[CAP_BURST];
	unsigned int n;

	if (!__atomic_load_n(&cap.open, __ATOMIC_RELAXED))
		return;
	pthread_mutex_lock(&cap.lock);
	n = rte_ring_sc_dequeue_burst(cap.ring, (void **)m, CAP_BURST, NULL);
	for (unsigned int i = 0; i < n; i++) {
		if (cap.count == 0 || cap.written < cap.count)
			write_one(m[i]);
		rte_pktmbuf_free(m[i]);
	}
	if (cap.stop || (cap.count && cap.written >= cap.count)) {
		disarm();
		ring_flush();
		rte_pcapng_close(cap.png);
		cap.png = NULL;
		cap.open = false;
		DP_LOG(INFO, "capture done: %" PRIu64 " packets, %" PRIu64 " skipped", cap.written,
		       skipped_now() - cap.skipped_base);
	}
	pthread_mutex_unlock(&cap.lock);
}
