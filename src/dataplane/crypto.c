/* SPDX-License-Identifier: BSD-3-Clause */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <rte_crypto.h>
#include <rte_cryptodev.h>
#include <rte_cycles.h>
#include <rte_ipsec.h>
#include <rte_ipsec_group.h>
#include <rte_malloc.h>
#include <rte_pause.h>

#include "dataplane/crypto.h"
#include "dataplane/dp.h"
#include "dataplane/esp.h"
#include "dataplane/polog.h"
#include "dataplane/port.h"
#include "dataplane/sa.h"
#include "dataplane/session.h"

#define CRYPTO_QP_DESC 2048
#define CRYPTO_OPS     16384
#define CRYPTO_OP_PRIV 64 /* IV (16) and AAD (12), written by lib/ipsec */

/* The last 8 bytes of an op's private area: when it was enqueued, for the
 * simulated device latency (lib/ipsec and ah.c write 16 bytes of IV at most
 * at its start). */
#define OP_STAMP_OFFSET (DP_CRYPTO_IV_OFFSET + CRYPTO_OP_PRIV - sizeof(uint64_t))

/* What one worker's FIFO holds for one device: its queue pair's depth. */
#define HOLD_OPS CRYPTO_QP_DESC

/* Ops the device finished, waiting for their simulated latency to pass
 * (crypto.queue_latency_us), in the order the device returned them. */
struct dp_crypto_hold {
	uint32_t head, tail;
	struct rte_crypto_op *op[HOLD_OPS];
};

struct dp_crypto dp_crypto;

/* The FIFOs of every worker, one per device, made once: no allocation on
 * the packet path. */
static int holds_create(unsigned int us, unsigned int n_workers)
{
	dp_crypto.lat_cycles = (uint64_t)us * rte_get_tsc_hz() / US_PER_S;
	for (unsigned int w = 0; w < n_workers; w++) {
		dp.workers[w].hold = rte_zmalloc("dps_crypto_hold",
						 dp_crypto.n_devs * sizeof(struct dp_crypto_hold),
						 RTE_CACHE_LINE_SIZE);
		if (dp.workers[w].hold == NULL) {
			DP_LOG(ERR, "out of hugepage memory for crypto.queue_latency_us");
			return -1;
		}
	}
	DP_LOG(WARNING, "crypto.queue_latency_us: the queue path waits %u us per operation", us);
	return 0;
}

static int dev_setup(uint8_t id, unsigned int n_qp)
{
	struct rte_cryptodev_config conf = {
		.socket_id = rte_cryptodev_socket_id(id),
		.nb_queue_pairs = n_qp,
	};
	struct rte_cryptodev_qp_conf qp = {
		.nb_descriptors = CRYPTO_QP_DESC,
		.mp_session = dp_session_pool0(),
	};
	int rc = rte_cryptodev_configure(id, &conf);

	for (unsigned int q = 0; rc == 0 && q < n_qp; q++)
		rc = rte_cryptodev_queue_pair_setup(id, q, &qp, conf.socket_id);
	return rc == 0 ? rte_cryptodev_start(id) : rc;
}

static int find_devices(const struct dps_crypto_cfg *c, unsigned int n_qp)
{
	for (unsigned int i = 0; i < c->n_devices; i++) {
		struct dp_crypto_dev *d = &dp_crypto.devs[dp_crypto.n_devs];
		struct rte_cryptodev_info info;
		char name[64];
		int id;

		dp_device_name(c->devices[i], name, sizeof(name));
		id = rte_cryptodev_get_dev_id(name);
		if (id < 0) {
			DP_LOG(ERR, "crypto device '%s' not found (driver missing?)",
			       c->devices[i]);
			return -1;
		}
		rte_cryptodev_info_get(id, &info);
		if (info.max_nb_queue_pairs < n_qp) {
			DP_LOG(ERR,
			       "crypto device %s offers %u queue pairs, %u workers need one each",
			       name, info.max_nb_queue_pairs, n_qp);
			return -1;
		}
		d->id = id;
		d->cpu_crypto = info.feature_flags & RTE_CRYPTODEV_FF_SYM_CPU_CRYPTO;
		snprintf(d->name, sizeof(d->name), "%s", name);
		dp_crypto.n_devs++;
	}
	return 0;
}

int dp_crypto_init(const struct dps_crypto_cfg *c, unsigned int n_workers)
{
	uint8_t ids[DPS_MAX_CRYPTODEVS];

	if (find_devices(c, n_workers) < 0)
		return -1;
	for (unsigned int i = 0; i < dp_crypto.n_devs; i++)
		ids[i] = dp_crypto.devs[i].id;
	if (dp_session_init(c->sessions, ids, dp_crypto.n_devs) < 0)
		return -1;
	dp_crypto.op_pool =
		rte_crypto_op_pool_create("dps_cop", RTE_CRYPTO_OP_TYPE_SYMMETRIC, CRYPTO_OPS, 128,
					  CRYPTO_OP_PRIV, SOCKET_ID_ANY);
	if (dp_crypto.op_pool == NULL) {
		DP_LOG(ERR, "cannot create the crypto op pool: %s", rte_strerror(rte_errno));
		return -1;
	}
	for (unsigned int i = 0; i < dp_crypto.n_devs; i++) {
		int rc = dev_setup(dp_crypto.devs[i].id, n_workers);

		if (rc < 0) {
			DP_LOG(ERR, "crypto device %s: cannot start: %s", dp_crypto.devs[i].name,
			       rte_strerror(-rc));
			return -1;
		}
		DP_LOG(INFO, "crypto device %s ready%s", dp_crypto.devs[i].name,
		       dp_crypto.devs[i].cpu_crypto ? " (CPU crypto)" : "");
	}
	return c->queue_latency_us ? holds_create(c->queue_latency_us, n_workers) : 0;
}

void dp_crypto_fini(void)
{
	for (unsigned int i = 0; i < dp_crypto.n_devs; i++) {
		rte_cryptodev_stop(dp_crypto.devs[i].id);
		rte_cryptodev_close(dp_crypto.devs[i].id);
	}
	for (unsigned int w = 0; w < dp.n_workers; w++) {
		rte_free(dp.workers[w].hold);
		dp.workers[w].hold = NULL;
	}
	rte_mempool_free(dp_crypto.op_pool);
	dp_session_fini();
	memset(&dp_crypto, 0, sizeof(dp_crypto));
}

struct enc_desc {
	uint8_t key_len; /* without salt */
	uint8_t salt;	 /* 4 if the key material ends with a nonce salt */
	uint8_t iv_len;
	uint8_t block;
};

static const struct enc_desc *enc_desc(const struct dps_sa *sa)
{
	static struct enc_desc d;
	uint8_t klen = sa->enc_key_len;

	switch (sa->enc_alg) {
	case DPS_ENC_NULL:
		d = (struct enc_desc){0, 0, 0, 4};
		break;
	case DPS_ENC_AES_CBC:
		d = (struct enc_desc){klen, 0, 16, 16};
		break;
	case DPS_ENC_AES_CTR:
		d = (struct enc_desc){klen - 4, 4, 8, 4};
		break;
	case DPS_ENC_AES_GCM:
	case DPS_ENC_AES_GMAC:
	case DPS_ENC_CHACHA20_POLY1305:
		d = (struct enc_desc){klen - 4, 4, 8, 4};
		break;
	default:
		return NULL;
	}
	return &d;
}

static const struct {
	enum rte_crypto_auth_algorithm algo;
	uint8_t key_len, digest_len;
} auth_desc[] = {
	[DPS_AUTH_HMAC_SHA1_96] = {RTE_CRYPTO_AUTH_SHA1_HMAC, 20, 12},
	[DPS_AUTH_HMAC_SHA256_128] = {RTE_CRYPTO_AUTH_SHA256_HMAC, 32, 16},
	[DPS_AUTH_HMAC_SHA384_192] = {RTE_CRYPTO_AUTH_SHA384_HMAC, 48, 24},
	[DPS_AUTH_HMAC_SHA512_256] = {RTE_CRYPTO_AUTH_SHA512_HMAC, 64, 32},
};

static void aead_xform(struct dp_xforms *x, const struct dps_sa *sa, const struct enc_desc *d)
{
	struct rte_crypto_aead_xform *a = &x->x[0].aead;

	x->x[0].type = RTE_CRYPTO_SYM_XFORM_AEAD;
	a->algo = sa->enc_alg == DPS_ENC_AES_GCM ? RTE_CRYPTO_AEAD_AES_GCM
						 : RTE_CRYPTO_AEAD_CHACHA20_POLY1305;
	a->op = sa->dir == DPS_DIR_IN ? RTE_CRYPTO_AEAD_OP_DECRYPT : RTE_CRYPTO_AEAD_OP_ENCRYPT;
	a->key.data = x->cipher_key;
	a->key.length = d->key_len;
	a->iv.offset = DP_CRYPTO_IV_OFFSET;
	a->iv.length = 12; /* salt + explicit IV (RFC 4106 §4, RFC 7634 §2) */
	a->digest_length = 16;
	/* SPI + sequence number, plus the high half of an extended one (RFC 4106 §5). */
	a->aad_length = sa->esn ? 12 : 8;
	x->icv_len = 16;
	x->first = &x->x[0];
}

/* Encrypt-then-MAC outbound, verify-then-decrypt inbound (RFC 4303 §3.4). */
static int chain_xforms(struct dp_xforms *x, const struct dps_sa *sa, const struct enc_desc *d,
			const char **why)
{
	struct rte_crypto_sym_xform *ciph = &x->x[0], *auth = &x->x[1];
	bool in = sa->dir == DPS_DIR_IN;

	ciph->type = RTE_CRYPTO_SYM_XFORM_CIPHER;
	ciph->cipher.op = in ? RTE_CRYPTO_CIPHER_OP_DECRYPT : RTE_CRYPTO_CIPHER_OP_ENCRYPT;
	ciph->cipher.key.data = x->cipher_key;
	ciph->cipher.key.length = d->key_len;
	ciph->cipher.iv.offset = DP_CRYPTO_IV_OFFSET;
	switch (sa->enc_alg) {
	case DPS_ENC_NULL:
		ciph->cipher.algo = RTE_CRYPTO_CIPHER_NULL;
		break;
	case DPS_ENC_AES_CBC:
		ciph->cipher.algo = RTE_CRYPTO_CIPHER_AES_CBC;
		ciph->cipher.iv.length = 16;
		break;
	default: /* AES-CTR: nonce, IV, counter block (RFC 3686 §4) */
		ciph->cipher.algo = RTE_CRYPTO_CIPHER_AES_CTR;
		ciph->cipher.iv.length = 16;
		break;
	}
	if (sa->auth_alg == DPS_AUTH_NONE || sa->auth_alg >= RTE_DIM(auth_desc)) {
		*why = "ESP without integrity is not supported (RFC 4303 §3.2.2 discourages it)";
		return -ENOTSUP;
	}
	auth->type = RTE_CRYPTO_SYM_XFORM_AUTH;
	auth->auth.algo = auth_desc[sa->auth_alg].algo;
	auth->auth.op = in ? RTE_CRYPTO_AUTH_OP_VERIFY : RTE_CRYPTO_AUTH_OP_GENERATE;
	auth->auth.key.data = x->auth_key;
	auth->auth.key.length = sa->auth_key_len;
	auth->auth.digest_length = auth_desc[sa->auth_alg].digest_len;
	x->icv_len = auth->auth.digest_length;
	if (in) {
		auth->next = ciph;
		ciph->next = NULL;
		x->first = auth;
	} else {
		ciph->next = auth;
		auth->next = NULL;
		x->first = ciph;
	}
	return 0;
}

/* AES-GMAC (RFC 4543): integrity only, with a GCM-style nonce. */
static void gmac_xform(struct dp_xforms *x, const struct dps_sa *sa, const struct enc_desc *d)
{
	struct rte_crypto_auth_xform *a = &x->x[0].auth;

	x->x[0].type = RTE_CRYPTO_SYM_XFORM_AUTH;
	a->algo = RTE_CRYPTO_AUTH_AES_GMAC;
	a->op = sa->dir == DPS_DIR_IN ? RTE_CRYPTO_AUTH_OP_VERIFY : RTE_CRYPTO_AUTH_OP_GENERATE;
	a->key.data = x->cipher_key;
	a->key.length = d->key_len;
	a->iv.offset = DP_CRYPTO_IV_OFFSET;
	a->iv.length = 12;
	a->digest_length = 16;
	x->icv_len = 16;
	x->first = &x->x[0];
}

/* AH (RFC 4302): an auth-only session over the whole packet (ah.c), HMAC
 * truncated as RFC 2404 / RFC 4868 say. */
static int ah_xform(struct dp_xforms *x, const struct dps_sa *sa, const char **why)
{
	struct rte_crypto_auth_xform *a = &x->x[0].auth;

	if (sa->auth_alg == DPS_AUTH_AES_GMAC) { /* RFC 4543 §3: nonce salt || IV */
		if (sa->auth_key_len < 4 + 16) {
			*why = "AES-GMAC needs a key and a 4-byte salt";
			return -ENOTSUP;
		}
		memcpy(x->auth_key, sa->auth_key, sa->auth_key_len - 4);
		memcpy(&x->salt, sa->auth_key + sa->auth_key_len - 4, 4);
		x->x[0].type = RTE_CRYPTO_SYM_XFORM_AUTH;
		a->algo = RTE_CRYPTO_AUTH_AES_GMAC;
		a->op = sa->dir == DPS_DIR_IN ? RTE_CRYPTO_AUTH_OP_VERIFY
					      : RTE_CRYPTO_AUTH_OP_GENERATE;
		a->key.data = x->auth_key;
		a->key.length = sa->auth_key_len - 4;
		a->iv.offset = DP_CRYPTO_IV_OFFSET;
		a->iv.length = 12;
		a->digest_length = 16;
		x->icv_len = 16;
		x->iv_len = 8;
		x->block = 4;
		x->first = &x->x[0];
		return 0;
	}
	if (sa->auth_alg == DPS_AUTH_NONE || sa->auth_alg >= RTE_DIM(auth_desc) ||
	    auth_desc[sa->auth_alg].digest_len == 0) {
		*why = "AH needs an HMAC integrity algorithm";
		return -ENOTSUP;
	}
	memcpy(x->auth_key, sa->auth_key, sa->auth_key_len);
	x->x[0].type = RTE_CRYPTO_SYM_XFORM_AUTH;
	a->algo = auth_desc[sa->auth_alg].algo;
	a->op = sa->dir == DPS_DIR_IN ? RTE_CRYPTO_AUTH_OP_VERIFY : RTE_CRYPTO_AUTH_OP_GENERATE;
	a->key.data = x->auth_key;
	a->key.length = sa->auth_key_len;
	a->digest_length = auth_desc[sa->auth_alg].digest_len;
	x->icv_len = a->digest_length;
	x->block = 4;
	x->first = &x->x[0];
	return 0;
}

int dp_crypto_xforms(const struct dps_sa *sa, struct dp_xforms *x, const char **why)
{
	const struct enc_desc *d = enc_desc(sa);

	memset(x, 0, sizeof(*x));
	*why = NULL;
	if (sa->proto == DPS_PROTO_AH)
		return ah_xform(x, sa, why);
	if (sa->proto != DPS_PROTO_ESP) {
		*why = "only ESP and AH SAs run on the dataplane so far";
		return -ENOTSUP;
	}
	if (d == NULL || sa->enc_key_len < d->salt) {
		*why = "unknown encryption algorithm or short key";
		return -ENOTSUP;
	}
	memcpy(x->cipher_key, sa->enc_key, d->key_len);
	memcpy(x->auth_key, sa->auth_key, sa->auth_key_len);
	if (d->salt)
		memcpy(&x->salt, sa->enc_key + d->key_len, 4);
	x->iv_len = d->iv_len;
	x->block = d->block;
	switch (sa->enc_alg) {
	case DPS_ENC_AES_GCM:
	case DPS_ENC_CHACHA20_POLY1305:
		aead_xform(x, sa, d);
		return 0;
	case DPS_ENC_AES_GMAC:
		gmac_xform(x, sa, d);
		return 0;
	default:
		return chain_xforms(x, sa, d, why);
	}
}

static bool xform_supported(uint8_t dev, const struct rte_crypto_sym_xform *xf)
{
	struct rte_cryptodev_sym_capability_idx idx = {.type = xf->type};
	const struct rte_cryptodev_symmetric_capability *cap;

	switch (xf->type) {
	case RTE_CRYPTO_SYM_XFORM_AEAD:
		idx.algo.aead = xf->aead.algo;
		cap = rte_cryptodev_sym_capability_get(dev, &idx);
		return cap != NULL && rte_cryptodev_sym_capability_check_aead(
					      cap, xf->aead.key.length, xf->aead.digest_length,
					      xf->aead.aad_length, xf->aead.iv.length) == 0;
	case RTE_CRYPTO_SYM_XFORM_CIPHER:
		idx.algo.cipher = xf->cipher.algo;
		cap = rte_cryptodev_sym_capability_get(dev, &idx);
		return cap != NULL &&
		       rte_cryptodev_sym_capability_check_cipher(cap, xf->cipher.key.length,
								 xf->cipher.iv.length) == 0;
	case RTE_CRYPTO_SYM_XFORM_AUTH:
		idx.algo.auth = xf->auth.algo;
		cap = rte_cryptodev_sym_capability_get(dev, &idx);
		return cap != NULL && rte_cryptodev_sym_capability_check_auth(
					      cap, xf->auth.key.length, xf->auth.digest_length,
					      xf->auth.iv.length) == 0;
	default:
		return false;
	}
}

int dp_crypto_pick(const struct dp_xforms *x)
{
	for (unsigned int i = 0; i < dp_crypto.n_devs; i++) {
		bool ok = true;

		for (const struct rte_crypto_sym_xform *xf = x->first; xf != NULL && ok;
		     xf = xf->next)
			ok = xform_supported(dp_crypto.devs[i].id, xf);
		if (ok)
			return (int)i;
	}
	return -1;
}

/* lib/ipsec's process: integrity and replay window for inbound SAs; then,
 * on the authenticated packets only (RFC 4303 §3.4.3), dpsec's window. */
static inline uint16_t sa_process(struct dp_sa *sa, struct rte_mbuf **mb, uint16_t n)
{
	uint16_t k;

	if (likely(!sa->serial)) {
		k = rte_ipsec_pkt_process(&sa->ss, mb, n);
		return sa->replay == NULL ? k : dp_esp_in_replay(sa, mb, k);
	}
	/* One inbound SA on several workers (RSS keeps one SA on one queue, so
	 * this is uncontended unless the peer's packets arrive on two ports):
	 * lib/ipsec allows one updater of the window at a time, and dpsec's
	 * window is checked and updated in the same critical section. */
	rte_spinlock_lock(&sa->lock);
	k = rte_ipsec_pkt_process(&sa->ss, mb, n);
	if (sa->replay != NULL)
		k = dp_esp_in_replay(sa, mb, k);
	rte_spinlock_unlock(&sa->lock);
	return k;
}

/* What lib/ipsec's prepare refused: inbound, a replay before the crypto (the
 * policy-failure log records it). */
static inline void prep_drop(struct dp_worker *w, struct dp_sa *sa, struct rte_mbuf **mb,
			     uint16_t k, uint16_t n, int prep_fail)
{
	dp_sa_fail(w, sa, mb, k, n, (enum dp_sa_counter)prep_fail);
}

uint16_t dp_crypto_process(struct dp_sa *sa, struct rte_mbuf **mb, uint16_t n)
{
	return sa_process(sa, mb, n);
}

void dp_crypto_prep_drop(struct dp_worker *w, struct dp_sa *sa, struct rte_mbuf **mb, uint16_t k,
			 uint16_t n, int prep_fail)
{
	prep_drop(w, sa, mb, k, n, prep_fail);
}

static void stamp(struct rte_crypto_op **cop, uint16_t n)
{
	uint64_t now = rte_rdtsc();

	for (uint16_t i = 0; i < n; i++)
		*rte_crypto_op_ctod_offset(cop[i], uint64_t *, OP_STAMP_OFFSET) = now;
}

void dp_crypto_enqueue(struct dp_worker *w, struct dp_sa *sa, struct rte_mbuf **mb, uint16_t n,
		       int prep_fail)
{
	struct rte_crypto_op *cop[DP_MAX_BURST];
	uint16_t k, sent;

	if (rte_crypto_op_bulk_alloc(dp_crypto.op_pool, RTE_CRYPTO_OP_TYPE_SYMMETRIC, cop, n) ==
	    0) {
		dp_sa_fail(w, sa, mb, 0, n, DP_SA_CNT_drop_crypto);
		return;
	}
	k = rte_ipsec_pkt_crypto_prepare(&sa->ss, mb, cop, n);
	prep_drop(w, sa, mb, k, n, prep_fail);
	if (unlikely(dp_crypto.lat_cycles != 0))
		stamp(cop, k);
	sent = rte_cryptodev_enqueue_burst(sa->ss.crypto.dev_id, w->id, cop, k);
	w->inflight += sent;
	/* read by the control thread (dp_crypto_settle); this worker alone writes */
	__atomic_store_n(&w->cq_enq[sa->dev], w->cq_enq[sa->dev] + sent, __ATOMIC_RELAXED);
	dp_sa_fail(w, sa, mb, sent, k, DP_SA_CNT_drop_crypto);
	rte_mempool_put_bulk(dp_crypto.op_pool, (void **)&cop[sent], n - sent);
}

void dp_crypto_run(struct dp_worker *w, const struct dp_snapshot *s, struct dp_sa *sa,
		   struct rte_mbuf **mb, uint16_t n)
{
	uint16_t k;

	if (!sa->sync) {
		dp_crypto_enqueue(w, sa, mb, n, sa->prep_fail);
		return;
	}
	k = rte_ipsec_pkt_cpu_prepare(&sa->ss, mb, n);
	prep_drop(w, sa, mb, k, n, sa->prep_fail);
	sa->xf->finish(w, s, sa, mb, sa_process(sa, mb, k), k);
}

/* A device with latency (crypto.queue_latency_us): what the device finished
 * joins the worker's FIFO, and leaves it, in order, once its enqueue time
 * plus the latency has passed. */
static uint16_t dequeue_late(struct dp_worker *w, unsigned int d, struct rte_crypto_op **cop,
			     uint16_t max)
{
	struct dp_crypto_hold *h = &w->hold[d];
	struct rte_crypto_op *got[DP_MAX_BURST];
	uint32_t room = HOLD_OPS - (h->tail - h->head);
	uint16_t n = rte_cryptodev_dequeue_burst(dp_crypto.devs[d].id, w->id, got,
						 RTE_MIN(room, (uint32_t)DP_MAX_BURST));
	uint64_t due = rte_rdtsc() - dp_crypto.lat_cycles;
	uint16_t k = 0;

	for (uint16_t i = 0; i < n; i++)
		h->op[h->tail++ % HOLD_OPS] = got[i];
	while (k < max && h->head != h->tail) {
		struct rte_crypto_op *op = h->op[h->head % HOLD_OPS];

		if (*rte_crypto_op_ctod_offset(op, uint64_t *, OP_STAMP_OFFSET) > due)
			break;
		cop[k++] = op;
		h->head++;
	}
	return k;
}

static inline uint16_t dequeue(struct dp_worker *w, unsigned int d, struct rte_crypto_op **cop,
			       uint16_t max)
{
	if (likely(dp_crypto.lat_cycles == 0))
		return rte_cryptodev_dequeue_burst(dp_crypto.devs[d].id, w->id, cop, max);
	return dequeue_late(w, d, cop, max);
}

/* @n finished ops: lib/ipsec groups them per session, and each group goes
 * through its SA's finish. */
static void finish_ops(struct dp_worker *w, const struct dp_snapshot *s, struct rte_crypto_op **cop,
		       uint16_t n)
{
	struct rte_mbuf *mb[DP_MAX_BURST];
	struct rte_ipsec_group grp[DP_MAX_BURST];
	uint32_t ng = rte_ipsec_pkt_crypto_group((const struct rte_crypto_op **)(uintptr_t)cop, mb,
						 grp, n);

	rte_mempool_put_bulk(dp_crypto.op_pool, (void **)cop, n);
	for (uint32_t g = 0; g < ng; g++) {
		struct dp_sa *sa = grp[g].id.ptr; /* the session is the SA's first member */
		uint16_t cnt = grp[g].cnt;

		sa->xf->finish(w, s, sa, grp[g].m, sa_process(sa, grp[g].m, cnt), cnt);
	}
}

uint16_t dp_crypto_poll(struct dp_worker *w, const struct dp_snapshot *s)
{
	struct rte_crypto_op *cop[DP_MAX_BURST];
	uint16_t total = 0;

	/* At most one burst per call: what inbound SAs finish is fed back to
	 * the worker as one sub-burst (w->st.again). */
	for (unsigned int d = 0; d < dp_crypto.n_devs && total < DP_MAX_BURST; d++) {
		uint16_t n;

		if (w->cq_fin[d] == w->cq_enq[d])
			continue;
		n = dequeue(w, d, cop, DP_MAX_BURST - total);
		if (n == 0)
			continue;
		w->inflight -= n;
		w->cq_fin[d] += n;
		total += n;
		finish_ops(w, s, cop, n);
	}
	return total;
}

void dp_crypto_publish(struct dp_worker *w)
{
	for (unsigned int d = 0; d < dp_crypto.n_devs; d++)
		if (w->cq_done[d] != w->cq_fin[d])
			__atomic_store_n(&w->cq_done[d], w->cq_fin[d], __ATOMIC_RELEASE);
}

void dp_crypto_abandon(struct dp_worker *w)
{
	for (unsigned int d = 0; w->hold != NULL && d < dp_crypto.n_devs; d++) {
		struct dp_crypto_hold *h = &w->hold[d];

		for (; h->head != h->tail; h->head++) {
			struct rte_crypto_op *op = h->op[h->head % HOLD_OPS];

			rte_pktmbuf_free(op->sym->m_src);
			rte_crypto_op_free(op);
		}
	}
	w->inflight = 0;
	for (unsigned int d = 0; d < dp_crypto.n_devs; d++) {
		w->cq_fin[d] = w->cq_enq[d];
		__atomic_store_n(&w->cq_done[d], w->cq_fin[d], __ATOMIC_RELEASE);
	}
}

static void wait_done(const struct dp_worker *w, unsigned int d, uint64_t want)
{
	for (unsigned int spin = 0; __atomic_load_n(&w->cq_done[d], __ATOMIC_ACQUIRE) < want;
	     spin++) {
		if (spin < 1000)
			rte_pause();
		else
			rte_delay_us_sleep(10); /* a slow device: leave the CPU to it */
	}
}

/*
 * Wait until worker @w has finished every operation it had enqueued; false
 * if it had none in flight. Every `done` is read before any `enq`: a
 * finished operation's packets may have been enqueued on another device
 * before its `done` was published, and are then seen.
 */
static bool settle_round(const struct dp_worker *w)
{
	uint64_t done[DPS_MAX_CRYPTODEVS], want[DPS_MAX_CRYPTODEVS];
	bool busy = false;

	for (unsigned int d = 0; d < dp_crypto.n_devs; d++)
		done[d] = __atomic_load_n(&w->cq_done[d], __ATOMIC_ACQUIRE);
	for (unsigned int d = 0; d < dp_crypto.n_devs; d++) {
		want[d] = __atomic_load_n(&w->cq_enq[d], __ATOMIC_RELAXED);
		busy |= done[d] != want[d];
	}
	for (unsigned int d = 0; busy && d < dp_crypto.n_devs; d++)
		wait_done(w, d, want[d]);
	return busy;
}

/*
 * After a grace period, every operation that may point to something retired
 * (an SA, its session, a bundle's next SA) was enqueued, and counted in
 * cq_enq, before it: wait until `done` reaches that. A finished inbound
 * packet may be enqueued again on its next SA (a bundle, transport mode)
 * still recording the SAs it came through (dp_meta()->via): those
 * operations are waited for in turn, DP_VIA_MAX deep at most. Queue pairs
 * return their operations in the order they took them (crypto_aesni_mb's
 * job manager, crypto_openssl's ring, a QAT ring), so counts are enough.
 */
void dp_crypto_settle(void)
{
	for (unsigned int i = 0; i < dp.n_workers; i++)
		for (unsigned int depth = 0; depth < DP_VIA_MAX; depth++)
			if (!settle_round(&dp.workers[i]))
				break;
}
