/* SPDX-License-Identifier: BSD-3-Clause */
#include <stdlib.h>

#include <rte_rcu_qsbr.h>

#include "dataplane/crypto.h"
#include "dataplane/dp.h"
#include "dataplane/route.h"
#include "dataplane/snapshot.h"
#include "dataplane/spd.h"

static uint64_t snapshot_gen;

struct dp_snapshot *dp_snapshot_build(const struct dps_config *cfg)
{
	struct dp_snapshot *s = calloc(1, sizeof(*s));

	if (s == NULL)
		return NULL;
	s->gen = ++snapshot_gen;
	s->routes = dp_routes_build(cfg, s->gen);
	s->ipsec = calloc(1, sizeof(*s->ipsec));
	if (s->routes == NULL || s->ipsec == NULL) {
		dp_snapshot_free(s);
		return NULL;
	}
	s->routes->refs = 1;
	s->ipsec->refs = 1;
	return s;
}

struct dp_snapshot *dp_snapshot_with_ipsec(struct dp_ipsec *ipsec)
{
	struct dp_snapshot *s = calloc(1, sizeof(*s));

	if (s == NULL)
		return NULL;
	s->gen = ++snapshot_gen;
	s->routes = dp.snap->routes;
	s->routes->refs++;
	s->ipsec = ipsec;
	ipsec->refs = 1;
	return s;
}

void dp_ipsec_free(struct dp_ipsec *ipsec)
{
	if (ipsec == NULL)
		return;
	dp_spd_free(ipsec->spd);
	free(ipsec);
}

void dp_snapshot_free(struct dp_snapshot *s)
{
	if (s == NULL)
		return;
	if (s->routes != NULL && --s->routes->refs == 0)
		dp_routes_free(s->routes);
	if (s->ipsec != NULL && --s->ipsec->refs == 0)
		dp_ipsec_free(s->ipsec);
	free(s);
}

void dp_snapshot_publish(struct dp_snapshot *s)
{
	struct dp_snapshot *old = __atomic_exchange_n(&dp.snap, s, __ATOMIC_RELEASE);

	/* Workers report a quiescent state once per loop, between bursts: after
	 * this no worker holds a pointer into the old snapshot. Crypto
	 * operations may stay in flight across loops: after the settle none
	 * points to what was retired with it either (the SAs the caller frees). */
	if (old != NULL) {
		rte_rcu_qsbr_synchronize(dp.rcu, RTE_QSBR_THRID_INVALID);
		dp_crypto_settle();
		dp_snapshot_free(old);
	}
}
