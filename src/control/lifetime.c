/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * SA lifetimes (RFC 2367 §2.3.4, RFC 4301 §4.4.2.1): workers count packets
 * and bytes per SA and stamp its first use; this control-thread check
 * compares them with the soft and hard limits. A soft limit is reported once
 * (EXPIRE soft: the key daemon rekeys); a hard limit is reported and the SA
 * removed, whoever installed it. The check runs every tenth of a second, so
 * a byte or packet limit may be overrun by what one worker sends in that
 * time: the kernels' behaviour too (they check per packet but rekey late).
 */
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "control/lifetime.h"
#include "control/store.h"
#include "dataplane/sa.h"

#define CHECK_EVERY_MS 100

static dps_lifetime_report_fn report;

void dps_lifetime_set_report(dps_lifetime_report_fn fn)
{
	report = fn;
}

struct expiry {
	uint64_t now;
	unsigned int n, cap;
	struct {
		uint32_t id, spi;
		struct dps_addr dst;
		uint8_t proto;
		bool hard;
	} * v;
};

static bool past(const struct dps_lifetime *l, uint64_t packets, uint64_t bytes, uint64_t age_s,
		 uint64_t used_s, bool used)
{
	return (l->packets && packets >= l->packets) || (l->bytes && bytes >= l->bytes) ||
	       (l->add_s && age_s >= l->add_s) || (l->use_s && used && used_s >= l->use_s);
}

static bool limited(const struct dps_lifetime *l)
{
	return l->packets || l->bytes || l->add_s || l->use_s;
}

/* Packet and byte limits only: the counters are per worker, a cache miss each. */
static bool counted(const struct dps_lifetime *l)
{
	return l->packets || l->bytes;
}

static int check(const struct dps_store_sa *s, void *arg)
{
	struct expiry *x = arg;
	uint64_t now = x->now;
	struct dp_sa_counters c;
	bool used, hard, soft;
	uint64_t age, use;

	/* Every SA, ten times a second: with 200 000 SAs, what is skipped here counts. */
	if (!limited(&s->cfg.hard) && (s->soft_expired || !limited(&s->cfg.soft)))
		return 0;
	used = s->dp->first_use_ms != 0;
	age = (now - s->dp->add_ms) / 1000;
	use = used ? (now - s->dp->first_use_ms) / 1000 : 0;
	if (counted(&s->cfg.hard) || (!s->soft_expired && counted(&s->cfg.soft)))
		dp_sa_counters(s->dp, &c);
	else
		memset(&c, 0, sizeof(c));
	hard = past(&s->cfg.hard, c.v[DP_SA_CNT_packets], c.v[DP_SA_CNT_bytes], age, use, used);
	soft = !s->soft_expired &&
	       past(&s->cfg.soft, c.v[DP_SA_CNT_packets], c.v[DP_SA_CNT_bytes], age, use, used);
	if (!hard && !soft)
		return 0;
	if (x->n == x->cap) {
		unsigned int cap = x->cap ? x->cap * 2 : 64;
		void *v = realloc(x->v, cap * sizeof(*x->v));

		if (v == NULL)
			return 1;
		x->v = v;
		x->cap = cap;
	}
	x->v[x->n].id = s->id;
	x->v[x->n].spi = s->cfg.spi;
	x->v[x->n].dst = s->cfg.dst;
	x->v[x->n].proto = s->cfg.proto;
	x->v[x->n].hard = hard;
	x->n++;
	return 0;
}

void dps_lifetime_poll(uint64_t now_ms)
{
	static uint64_t next;
	struct expiry x = {.now = dp_now_ms()};
	bool changed = false;

	if (now_ms < next)
		return;
	next = now_ms + CHECK_EVERY_MS;
	dps_store_scan_sas(check, &x); /* collect first: the walk holds the store's lock */
	for (unsigned int i = 0; i < x.n; i++) {
		const struct dps_store_sa *s =
			dps_store_sa_find(x.v[i].spi, &x.v[i].dst, x.v[i].proto);

		if (s == NULL || s->id != x.v[i].id)
			continue;
		if (report != NULL)
			report(s, x.v[i].hard);
		if (!x.v[i].hard) {
			dps_store_sa_set_soft_expired(s->id);
			continue;
		}
		DP_LOG(INFO, "SA 0x%x: hard lifetime reached, removed", x.v[i].spi);
		if (dps_store_sa_delete(x.v[i].spi, &x.v[i].dst, x.v[i].proto) == 0)
			changed = true;
	}
	free(x.v);
	if (changed && dps_store_commit() < 0)
		DP_LOG(ERR, "lifetimes: cannot publish the SAD after a hard expiry");
}
