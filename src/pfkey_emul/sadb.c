/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * SA messages: GETSPI (larval SAs, kept here until UPDATE makes them
 * mature), ADD, UPDATE, DELETE, GET, FLUSH, DUMP, REGISTER. Mature SAs live
 * in the store, whoever installed them; PF_KEY sees the configuration's SAs
 * too (GET, DUMP) but changes only its own.
 */
#define DP_LOG_TYPE dps_logtype_pfkey /* common/log.h */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "common/log.h"
#include "control/store.h"
#include "control/wipe.h"
#include "dataplane/sa.h"
#include "pfkey_emul/larval.h"
#include "pfkey_emul/server.h"

static struct {
	uint8_t buf[PFK_REPLY_MAX];
} sadb;

static bool spi_taken(uint32_t spi, const struct dps_addr *dst, uint8_t proto)
{
	return dps_store_sa_find(spi, dst, proto) != NULL || pfk_larval_find(spi, dst, proto) >= 0;
}

static uint64_t epoch_of(uint64_t mono_ms)
{
	uint64_t now = dp_now_ms();

	return (uint64_t)time(NULL) - (now > mono_ms ? (now - mono_ms) / 1000 : 0);
}

void pfk_sa_state(const struct dps_store_sa *s, struct pfk_sa_state *st)
{
	struct dp_sa_counters c;

	dp_sa_counters(s->dp, &c);
	st->state = SADB_SASTATE_MATURE;
	if (s->soft_expired)
		st->state = SADB_SASTATE_DYING;
	st->packets = c.v[DP_SA_CNT_packets];
	st->bytes = c.v[DP_SA_CNT_bytes];
	st->add_time = epoch_of(s->dp->add_ms);
	st->use_time = s->dp->first_use_ms ? epoch_of(s->dp->first_use_ms) : 0;
}

static int addrs(const struct pfk_msg *m, struct dps_addr *src, struct dps_addr *dst)
{
	uint8_t plen, proto;
	uint16_t port;

	if (pfk_address(m->ext[SADB_EXT_ADDRESS_SRC], src, &plen, &proto, &port) < 0 ||
	    pfk_address(m->ext[SADB_EXT_ADDRESS_DST], dst, &plen, &proto, &port) < 0)
		return EINVAL;
	return 0;
}

static uint32_t ext_spi(const struct pfk_msg *m)
{
	return ntohl(((const struct sadb_sa *)m->ext[SADB_EXT_SA])->sadb_sa_spi);
}

static void send_sa(struct pfk_client *c, const struct sadb_msg *req, const struct dps_sa *sa,
		    const struct pfk_sa_state *st, bool keys, enum pfk_to to)
{
	struct sadb_msg h = *req;
	long n;

	h.sadb_msg_errno = 0;
	n = pfk_build_sa(sadb.buf, sizeof(sadb.buf), &h, sa, st, keys);
	if (n > 0)
		pfk_send(c, sadb.buf, (size_t)n, to, h.sadb_msg_satype);
	else
		DP_LOG(ERR, "pfkey: cannot build the reply for SA 0x%x: %s", sa->spi,
		       strerror((int)-n));
	if (keys) /* the queued copy is wiped when sent */
		dps_wipe(sadb.buf, sizeof(sadb.buf));
}

int pfk_sadb_getspi(struct pfk_client *c, const struct pfk_msg *m)
{
	const struct sadb_spirange *r = (const void *)m->ext[SADB_EXT_SPIRANGE];
	uint8_t proto = pfk_satype_proto(m->hdr->sadb_msg_satype);
	uint32_t lo = 0x100, hi = 0x0fffffff, spi = 0;
	struct pfk_sa_state st = {.state = SADB_SASTATE_LARVAL};
	struct dps_sa l;
	int err;

	if (proto == 0)
		return EINVAL;
	memset(&l, 0, sizeof(l));
	err = addrs(m, &l.src, &l.dst);
	if (err)
		return err;
	if (r != NULL) {
		lo = r->sadb_spirange_min;
		hi = r->sadb_spirange_max;
	}
	if (lo < 256) /* 0..255 are reserved (RFC 4303 §2.1), well-known CPIs (RFC 3173 §3.3) */
		lo = 256;
	if (proto == DPS_PROTO_IPCOMP && hi > 0xffff) /* CPIs are 16 bits */
		hi = 0xffff;
	if (lo > hi)
		return EINVAL;
	if (lo == hi) {
		if (spi_taken(lo, &l.dst, proto))
			return EEXIST;
		spi = lo;
	} else {
		for (int tries = 0; tries < 64 && spi == 0; tries++) {
			uint32_t v;

			if (getrandom(&v, sizeof(v), 0) != sizeof(v))
				return EIO;
			v = lo + (uint32_t)(v % ((uint64_t)hi - lo + 1));
			if (!spi_taken(v, &l.dst, proto))
				spi = v;
		}
		if (spi == 0)
			return EEXIST;
	}
	l.spi = spi;
	l.proto = proto;
	err = pfk_larval_add(&l, dp_now_ms() + pfk_cfg()->larval_s * 1000ull);
	if (err == -ENOBUFS)
		DP_LOG(ERR,
		       "pfkey: GETSPI refused: %u SPIs are reserved and not yet SAs; a "
		       "reservation lapses after pfkey.larval_s (%u s)",
		       PFK_LARVAL_MAX, pfk_cfg()->larval_s);
	if (err)
		return -err;
	send_sa(c, m->hdr, &l, &st, false, PFK_TO_ONE);
	return 0;
}

/*
 * What PF_KEY does not say: direction, and the defaults a YAML SA that does
 * not set them gets (TTL 64, ipsec.dfbit, ipsec.replay_window), as in force
 * now. The client's replay window wins when it gives one: RFC 2367 reads 0
 * as "no window", but Linux still drops replays then (it accepts only
 * increasing numbers), so 0 takes the configured window rather than turning
 * anti-replay off (docs/config.md).
 */
static void sa_complete(struct dps_sa *sa)
{
	const struct dps_ipsec_defaults *def = dps_store_defaults();

	sa->dir = pfk_is_local(&sa->dst) ? DPS_DIR_IN : DPS_DIR_OUT;
	sa->ttl = 64;
	sa->dfbit = def->dfbit;
	if (sa->dir == DPS_DIR_OUT || sa->proto == DPS_PROTO_IPCOMP)
		sa->replay_window = 0; /* only the receiver keeps a window; IPComp has none */
	else if (sa->replay_window == 0)
		sa->replay_window = def->replay_window;
}

/* UPDATE of a mature SA: only the lifetimes may change (as Linux's xfrm_state_update). */
static int update_mature(const struct dps_store_sa *s, const struct dps_sa *sa)
{
	const struct dps_sa *want = &s->cfg;

	if (!dps_addr_eq(&want->src, &sa->src) || want->enc_alg != sa->enc_alg ||
	    want->auth_alg != sa->auth_alg || want->enc_key_len != sa->enc_key_len ||
	    memcmp(want->enc_key, sa->enc_key, sa->enc_key_len) != 0 ||
	    want->auth_key_len != sa->auth_key_len ||
	    memcmp(want->auth_key, sa->auth_key, sa->auth_key_len) != 0)
		return EINVAL;
	return dps_store_sa_set_lifetimes(s->id, &sa->soft, &sa->hard) < 0 ? ESRCH : 0;
}

/* What is left of limit @limit after @used (0 = unlimited stays so; a spent one keeps 1). */
static uint64_t left(uint64_t limit, uint64_t used)
{
	if (limit == 0)
		return 0;
	return limit > used ? limit - used : 1;
}

/* Sequence numbers an outbound SA may still send before the new snapshot replaces it. */
#define MOVE_SEQ_MARGIN (1u << 20)

/*
 * UPDATE moving a mature SA to new endpoints (SADB_X_EXT_NEW_ADDRESS_SRC/DST,
 * charon's MOBIKE update_sa) or to new UDP encapsulation ports (NAT mapping
 * change): the store keys SAs by destination, so the SA is deleted and
 * added again in one batch (one snapshot: the workers see the old or the
 * new, never neither). What the SA has consumed carries over: its sequence
 * numbers (outbound resumes past what it sent, with a margin for packets
 * still in flight on the old snapshot; inbound starts its window at the
 * count it accepted, at or below the peer's real counter) and its lifetimes.
 */
static int update_move(const struct dps_store_sa *s, const struct dps_sa *sa,
		       const struct dps_addr *src, const struct dps_addr *dst)
{
	struct dps_sa old = s->cfg, n = s->cfg;
	uint64_t age_s = (dp_now_ms() - s->dp->add_ms) / 1000;
	struct dp_sa_counters c;
	char why[256];
	int rc;

	dp_sa_counters(s->dp, &c);
	n.src = *src;
	n.dst = *dst;
	n.dir = pfk_is_local(&n.dst) ? DPS_DIR_IN : DPS_DIR_OUT;
	if (n.dir != old.dir)
		goto einval; /* an SA does not change direction */
	n.udp_encap = sa->udp_encap;
	n.encap_sport = sa->encap_sport;
	n.encap_dport = sa->encap_dport;
	n.soft = sa->soft;
	n.hard = sa->hard;
	n.soft.packets = left(n.soft.packets, c.v[DP_SA_CNT_packets]);
	n.hard.packets = left(n.hard.packets, c.v[DP_SA_CNT_packets]);
	n.soft.bytes = left(n.soft.bytes, c.v[DP_SA_CNT_bytes]);
	n.hard.bytes = left(n.hard.bytes, c.v[DP_SA_CNT_bytes]);
	n.soft.add_s = left(n.soft.add_s, age_s);
	n.hard.add_s = left(n.hard.add_s, age_s);
	n.seq_start = old.seq_start + c.v[DP_SA_CNT_packets];
	if (n.dir == DPS_DIR_OUT)
		n.seq_start += MOVE_SEQ_MARGIN;
	if (n.seq_start > UINT32_MAX && !n.esn) {
		DP_LOG(NOTICE, "pfkey: SA 0x%x not moved: its sequence numbers are spent", n.spi);
		goto einval;
	}
	if (dps_store_sa_delete(old.spi, &old.dst, old.proto) < 0)
		goto einval;
	rc = dps_store_sa_add(&n, DPS_ORIGIN_PFKEY, why, sizeof(why));
	if (rc < 0) {
		DP_LOG(NOTICE, "pfkey: SA 0x%x not moved: %s", n.spi, why);
		if (dps_store_sa_add(&old, DPS_ORIGIN_PFKEY, why, sizeof(why)) < 0)
			DP_LOG(ERR, "pfkey: SA 0x%x lost while moving it: %s", old.spi, why);
	}
	pfk_store_dirty();
	dps_wipe(&old, sizeof(old));
	dps_wipe(&n, sizeof(n));
	return rc < 0 ? (rc == -EEXIST ? EEXIST : EINVAL) : 0;
einval:
	dps_wipe(&old, sizeof(old));
	dps_wipe(&n, sizeof(n));
	return EINVAL;
}

static bool encap_changed(const struct dps_sa *a, const struct dps_sa *b)
{
	return a->udp_encap != b->udp_encap || (a->udp_encap && (a->encap_sport != b->encap_sport ||
								 a->encap_dport != b->encap_dport));
}

/* UPDATE of a mature SA: lifetimes (as Linux's xfrm_state_update), endpoints and NAT-T ports. */
static int update_sa(const struct pfk_msg *m, const struct dps_store_sa *s, const struct dps_sa *sa)
{
	struct dps_addr src = sa->src, dst = sa->dst;
	int err = pfk_new_addresses(m, &src, &dst);

	if (!err)
		err = update_mature(s, sa); /* same keys, same source: the SA it names */
	if (err)
		return err;
	if (dps_addr_eq(&src, &s->cfg.src) && dps_addr_eq(&dst, &s->cfg.dst) &&
	    !encap_changed(&s->cfg, sa))
		return 0;
	return update_move(s, sa, &src, &dst);
}

static int sadb_add(struct pfk_client *c, const struct pfk_msg *m, struct dps_sa *sa);

int pfk_sadb_add(struct pfk_client *c, const struct pfk_msg *m)
{
	struct dps_sa sa;
	int err;

	memset(&sa, 0, sizeof(sa));
	err = sadb_add(c, m, &sa);
	dps_wipe(&sa, sizeof(sa)); /* the store has its own copy of the keys */
	return err;
}

static int sadb_add(struct pfk_client *c, const struct pfk_msg *m, struct dps_sa *sa)
{
	bool update = m->hdr->sadb_msg_type == SADB_UPDATE;
	const struct dps_store_sa *s;
	struct pfk_sa_state st;
	char why[256];
	int li, err, rc;

	err = pfk_sa_from_msg(m, sa);
	if (err)
		return err;
	/* IPComp: a dynamic SA's CPI is 16 bits and not one of the well-known
	 * ones (RFC 3173 §3.3: 0..63 are the algorithms', 64..255 reserved) */
	if (sa->proto == DPS_PROTO_IPCOMP && (sa->spi < 256 || sa->spi > 0xffff))
		return EINVAL;
	sa_complete(sa);
	li = pfk_larval_find(sa->spi, &sa->dst, sa->proto);
	s = dps_store_sa_find(sa->spi, &sa->dst, sa->proto);
	if (update && li < 0) {
		if (s == NULL)
			return ESRCH;
		if (s->origin != DPS_ORIGIN_PFKEY)
			return EPERM;
		err = update_sa(m, s, sa);
		if (err)
			return err;
	} else {
		if (!update && s != NULL)
			return EEXIST;
		rc = dps_store_sa_add(sa, DPS_ORIGIN_PFKEY, why, sizeof(why));
		if (rc < 0) {
			/* a limit reached is an error, not a client's mistake */
			if (rc == -ENOBUFS || rc == -ENOMEM)
				DP_LOG(ERR, "pfkey: SA 0x%x refused: %s", sa->spi, why);
			else
				DP_LOG(NOTICE, "pfkey: SA 0x%x refused: %s", sa->spi, why);
			return rc == -EEXIST || rc == -ENOMEM || rc == -ENOBUFS ? -rc : ENOSYS;
		}
		/* ADD of a reserved SPI (charon's inbound SAs) takes the reservation too */
		if (li >= 0)
			pfk_larval_remove((unsigned int)li);
		pfk_store_dirty();
	}
	s = dps_store_sa_find(sa->spi, &sa->dst, sa->proto);
	if (s == NULL) { /* moved by update_sa */
		struct dps_addr src = sa->src, dst = sa->dst;

		if (pfk_new_addresses(m, &src, &dst) == 0)
			s = dps_store_sa_find(sa->spi, &dst, sa->proto);
		if (s == NULL)
			return ESRCH;
	}
	pfk_sa_state(s, &st);
	send_sa(c, m->hdr, &s->cfg, &st, false, PFK_TO_ALL);
	return 0;
}

int pfk_sadb_delete(struct pfk_client *c, const struct pfk_msg *m)
{
	uint8_t proto = pfk_satype_proto(m->hdr->sadb_msg_satype);
	struct dps_addr src, dst;
	const struct dps_store_sa *s;
	struct sadb_msg h = *m->hdr;
	uint32_t spi = ext_spi(m);
	long n;
	int li, err = addrs(m, &src, &dst);

	if (err)
		return err;
	li = pfk_larval_find(spi, &dst, proto);
	if (li >= 0) {
		pfk_larval_remove((unsigned int)li);
	} else {
		s = dps_store_sa_find(spi, &dst, proto);
		if (s == NULL)
			return ESRCH;
		if (s->origin != DPS_ORIGIN_PFKEY)
			return EPERM; /* the configuration's: change the YAML */
		if (dps_store_sa_delete(spi, &dst, proto) < 0)
			return ENOMEM;
		pfk_store_dirty();
	}
	/* the reply is the request with SA and addresses (RFC 2367 §3.1.4) */
	h.sadb_msg_errno = 0;
	n = pfk_build_sa(sadb.buf, sizeof(sadb.buf), &h,
			 &(struct dps_sa){.spi = spi, .proto = proto, .src = src, .dst = dst},
			 &(struct pfk_sa_state){.state = SADB_SASTATE_DEAD}, false);
	if (n > 0)
		pfk_send(c, sadb.buf, (size_t)n, PFK_TO_ALL, h.sadb_msg_satype);
	return 0;
}

int pfk_sadb_get(struct pfk_client *c, const struct pfk_msg *m)
{
	uint8_t proto = pfk_satype_proto(m->hdr->sadb_msg_satype);
	struct dps_addr src, dst;
	const struct dps_store_sa *s;
	struct pfk_sa_state st;
	uint32_t spi = ext_spi(m);
	int li, err = addrs(m, &src, &dst);

	if (err)
		return err;
	s = dps_store_sa_find(spi, &dst, proto);
	if (s != NULL) {
		pfk_sa_state(s, &st);
		send_sa(c, m->hdr, &s->cfg, &st, true, PFK_TO_ONE);
		return 0;
	}
	li = pfk_larval_find(spi, &dst, proto);
	if (li < 0)
		return ESRCH;
	st = (struct pfk_sa_state){.state = SADB_SASTATE_LARVAL};
	send_sa(c, m->hdr, &pfk_larval_at((unsigned int)li)->sa, &st, false, PFK_TO_ONE);
	return 0;
}

int pfk_sadb_flush(struct pfk_client *c, const struct pfk_msg *m)
{
	uint8_t satype = m->hdr->sadb_msg_satype;
	uint8_t proto = pfk_satype_proto(satype);
	struct sadb_msg h = *m->hdr;

	if (satype != SADB_SATYPE_UNSPEC && proto == 0)
		return EINVAL;
	for (unsigned int i = pfk_larval_count(); i-- > 0;)
		if (proto == 0 || pfk_larval_at(i)->sa.proto == proto)
			pfk_larval_remove(i);
	if (dps_store_sa_flush(proto, DPS_ORIGIN_PFKEY) > 0)
		pfk_store_dirty();
	h.sadb_msg_errno = 0;
	h.sadb_msg_len = sizeof(h) / 8;
	pfk_send(c, &h, sizeof(h), PFK_TO_ALL, satype);
	return 0;
}

struct dump {
	struct pfk_client *c;
	struct sadb_msg h;
	uint8_t proto;
	unsigned int left; /* messages still to send: the last carries seq 0 */
	bool count;
};

static int dump_one(const struct dps_store_sa *s, void *arg)
{
	struct dump *d = arg;
	struct pfk_sa_state st;
	struct sadb_msg h = d->h;

	if (d->proto && s->cfg.proto != d->proto)
		return 0;
	if (d->count) {
		d->left++;
		return 0;
	}
	pfk_sa_state(s, &st);
	h.sadb_msg_satype = pfk_proto_satype(s->cfg.proto);
	h.sadb_msg_seq = --d->left;
	send_sa(d->c, &h, &s->cfg, &st, true, PFK_TO_ONE);
	return 0;
}

int pfk_sadb_dump(struct pfk_client *c, const struct pfk_msg *m)
{
	uint8_t satype = m->hdr->sadb_msg_satype;
	struct dump d = {.c = c, .h = *m->hdr, .proto = pfk_satype_proto(satype), .count = true};
	struct pfk_sa_state st = {.state = SADB_SASTATE_LARVAL};

	if (satype != SADB_SATYPE_UNSPEC && d.proto == 0)
		return EINVAL;
	d.h.sadb_msg_errno = 0;
	dps_store_walk_sas(dump_one, &d);
	for (unsigned int i = 0; i < pfk_larval_count(); i++)
		d.left += d.proto == 0 || pfk_larval_at(i)->sa.proto == d.proto;
	if (d.left == 0)
		return ENOENT;
	d.count = false;
	dps_store_walk_sas(dump_one, &d);
	for (unsigned int i = 0; i < pfk_larval_count(); i++) {
		const struct dps_sa *l = &pfk_larval_at(i)->sa;
		struct sadb_msg h = d.h;

		if (d.proto && l->proto != d.proto)
			continue;
		h.sadb_msg_satype = pfk_proto_satype(l->proto);
		h.sadb_msg_seq = --d.left;
		send_sa(c, &h, l, &st, false, PFK_TO_ONE);
	}
	return 0;
}

int pfk_sadb_register(struct pfk_client *c, const struct pfk_msg *m)
{
	uint8_t satype = m->hdr->sadb_msg_satype;
	static const struct pfk_algs none;
	const struct pfk_algs *a = &none;
	struct sadb_msg h = *m->hdr;
	struct pfk_algs ah;
	struct pfk_out o;
	long n;

	if (satype != SADB_SATYPE_UNSPEC && pfk_satype_proto(satype) == 0)
		return EINVAL;
	if (satype != SADB_SATYPE_UNSPEC)
		pfk_client_register(c, satype);
	h.sadb_msg_errno = 0;
	pfk_out_begin(&o, sadb.buf, sizeof(sadb.buf), &h);
	/* ESP: what the devices run; AH: their integrity algorithms (Linux lists
	 * no cipher for AH); IPComp is not run: no algorithm */
	if (satype == SADB_SATYPE_ESP) {
		a = pfk_algs();
	} else if (satype == SADB_SATYPE_AH) {
		ah = *pfk_algs();
		ah.n_enc = 0;
		a = &ah;
	}
	pfk_out_supported(&o, a);
	n = pfk_out_end(&o);
	if (n < 0)
		return (int)-n;
	if (satype == SADB_SATYPE_UNSPEC)
		pfk_send(c, sadb.buf, (size_t)n, PFK_TO_ONE, 0);
	else
		pfk_send(c, sadb.buf, (size_t)n, PFK_TO_REGISTERED, satype);
	return 0;
}

/* GETSPI reservations that no UPDATE completed in time just disappear. */
void pfk_sadb_timer(uint64_t now_ms)
{
	for (unsigned int i = pfk_larval_count(); i-- > 0;)
		if (pfk_larval_at(i)->expires_ms <= now_ms)
			pfk_larval_remove(i);
}

void pfk_sadb_fini(void)
{
	pfk_larval_clear();
}
