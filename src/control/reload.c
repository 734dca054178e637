/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Configuration reload (SIGHUP): the difference between the configuration's
 * objects in the store and those of the new file, applied in one commit.
 * Objects a key daemon installed are not touched.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "control/store.h"
#include "control/store_state.h"
#include "dataplane/sa.h"

static bool lifetime_eq(const struct dps_lifetime *a, const struct dps_lifetime *b)
{
	return a->bytes == b->bytes && a->packets == b->packets && a->add_s == b->add_s &&
	       a->use_s == b->use_s;
}

/* Field by field: padding may differ between two copies of the same SA. */
static bool sa_same(const struct dps_sa *a, const struct dps_sa *b)
{
	return a->spi == b->spi && a->proto == b->proto && a->mode == b->mode && a->dir == b->dir &&
	       dps_addr_eq(&a->src, &b->src) && dps_addr_eq(&a->dst, &b->dst) &&
	       a->reqid == b->reqid && a->enc_alg == b->enc_alg &&
	       a->enc_key_len == b->enc_key_len &&
	       memcmp(a->enc_key, b->enc_key, a->enc_key_len) == 0 && a->auth_alg == b->auth_alg &&
	       a->auth_key_len == b->auth_key_len &&
	       memcmp(a->auth_key, b->auth_key, a->auth_key_len) == 0 &&
	       a->replay_window == b->replay_window && a->esn == b->esn &&
	       a->udp_encap == b->udp_encap && a->encap_sport == b->encap_sport &&
	       a->encap_dport == b->encap_dport && a->ttl == b->ttl && a->dfbit == b->dfbit &&
	       lifetime_eq(&a->soft, &b->soft) && lifetime_eq(&a->hard, &b->hard);
}

static bool req_same(const struct dps_ipsec_req *a, const struct dps_ipsec_req *b)
{
	return a->proto == b->proto && a->mode == b->mode && a->level == b->level &&
	       a->reqid == b->reqid &&
	       (a->mode != DPS_MODE_TUNNEL ||
		(dps_addr_eq(&a->tun_src, &b->tun_src) && dps_addr_eq(&a->tun_dst, &b->tun_dst)));
}

bool dps_policy_same(const struct dps_policy *a, const struct dps_policy *b)
{
	if (a->dir != b->dir || a->priority != b->priority || !dps_selector_eq(&a->sel, &b->sel) ||
	    a->action != b->action || a->n_reqs != b->n_reqs)
		return false;
	for (unsigned int r = 0; r < a->n_reqs; r++)
		if (!req_same(&a->reqs[r], &b->reqs[r]))
			return false;
	return true;
}

struct reload {
	bool *sa_keep, *pol_keep; /* [current] unchanged configuration objects */
	struct dp_sa **made;	  /* [cfg->n_sas] created for new SAs, NULL if kept */
};

static void reload_free(struct reload *r, unsigned int n_new)
{
	for (unsigned int i = 0; r->made != NULL && i < n_new; i++)
		dp_sa_free(r->made[i]);
	free(r->sa_keep);
	free(r->pol_keep);
	free(r->made);
}

/* Everything that can fail, before anything changes. */
static int reload_plan(const struct dps_config *cfg, struct reload *r, char *err, size_t errlen)
{
	r->sa_keep = calloc(dps_store.n_sas + 1, sizeof(bool));
	r->pol_keep = calloc(dps_store.n_pol + 1, sizeof(bool));
	r->made = calloc(cfg->n_sas + 1, sizeof(*r->made));
	if (r->sa_keep == NULL || r->pol_keep == NULL || r->made == NULL)
		return -ENOMEM;
	for (unsigned int i = 0; i < cfg->n_sas; i++) {
		const struct dps_sa *c = &cfg->sas[i];
		int j = dps_store_sa_pos(c->spi, &c->dst, c->proto);

		if (j >= 0 && dps_store.sas[j].origin == DPS_ORIGIN_CONFIG &&
		    sa_same(&dps_store.sas[j].cfg, c)) {
			r->sa_keep[j] = true;
			continue;
		}
		if (j >= 0 && dps_store.sas[j].origin != DPS_ORIGIN_CONFIG) {
			snprintf(err, errlen, "sas[%u]: SPI 0x%x is taken by a key daemon's SA", i,
				 c->spi);
			return -EEXIST;
		}
		r->made[i] =
			dps_store_sa_make(c,
					  dps_sa_inner_family(c, cfg->policies, cfg->n_policies,
							      sizeof(*cfg->policies)),
					  err, errlen);
		if (r->made[i] == NULL)
			return -ENOTSUP;
	}
	for (unsigned int i = 0; i < cfg->n_policies; i++) {
		const struct dps_policy *c = &cfg->policies[i];

		for (unsigned int j = 0; j < dps_store.n_pol; j++) {
			const struct dps_store_policy *e = &dps_store.pol[j];

			if (e->p.dir != c->dir || !dps_selector_eq(&e->p.sel, &c->sel))
				continue;
			if (e->origin != DPS_ORIGIN_CONFIG) {
				snprintf(err, errlen,
					 "policies[%u]: a key daemon installed this one", i);
				return -EEXIST;
			}
			r->pol_keep[j] = dps_policy_same(&e->p, c);
		}
	}
	return 0;
}

int dps_store_reload(const struct dps_config *cfg, char *err, size_t errlen)
{
	struct reload r = {0};
	int rc = reload_plan(cfg, &r, err, errlen);

	if (rc < 0) {
		reload_free(&r, cfg->n_sas);
		return rc;
	}
	for (unsigned int j = dps_store.n_pol; j-- > 0;)
		if (dps_store.pol[j].origin == DPS_ORIGIN_CONFIG && !r.pol_keep[j])
			dps_store_policy_delete(dps_store.pol[j].p.id);
	for (unsigned int j = dps_store.n_sas; j-- > 0;) {
		const struct dps_sa *c = &dps_store.sas[j].cfg;

		if (dps_store.sas[j].origin == DPS_ORIGIN_CONFIG && !r.sa_keep[j])
			dps_store_sa_delete(c->spi, &c->dst, c->proto);
	}
	dps_store.def = cfg->ipsec;
	dps_spd_defaults_changed();
	for (unsigned int i = 0; i < cfg->n_policies; i++) {
		struct dps_policy p = cfg->policies[i];
		char why[128];

		/* an unchanged one is still there: EEXIST is expected */
		dps_store_policy_add(&p, DPS_ORIGIN_CONFIG, why, sizeof(why));
	}
	for (unsigned int i = 0; i < cfg->n_sas; i++) {
		if (r.made[i] != NULL &&
		    dps_store_sa_insert(&cfg->sas[i], r.made[i], DPS_ORIGIN_CONFIG) == 0)
			r.made[i] = NULL;
	}
	reload_free(&r, cfg->n_sas);
	if (dps_store_commit() < 0) {
		snprintf(err, errlen, "cannot compile the SPD/SAD");
		return -1;
	}
	return 0;
}
