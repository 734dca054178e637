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
	bool *pol_kept;		  /* [cfg->n_policies] the same as one in the store */
	struct dp_sa **made;	  /* [cfg->n_sas] created for new SAs, NULL if kept */
	/* What to report once published: the removed objects (SAs without keys)
	 * and the new policies with the ids the store gave them. */
	bool *sa_new; /* [cfg->n_sas] inserted */
	struct dps_sa *gone_sa;
	struct dps_policy *gone_pol, *new_pol;
	unsigned int n_gone_sa, n_gone_pol, n_new_pol;
};

static dps_reload_report_fn report;

void dps_reload_set_report(dps_reload_report_fn fn)
{
	report = fn;
}

/* An SA's identity for a report: no key leaves the store this way. */
static struct dps_sa sa_without_keys(const struct dps_sa *c)
{
	struct dps_sa s = *c;

	memset(s.enc_key, 0, sizeof(s.enc_key));
	memset(s.auth_key, 0, sizeof(s.auth_key));
	s.enc_key_len = s.auth_key_len = 0;
	return s;
}

static void reload_report(const struct dps_config *cfg, const struct reload *r)
{
	if (report == NULL)
		return;
	for (unsigned int i = 0; i < r->n_gone_pol; i++)
		report(NULL, &r->gone_pol[i], false);
	for (unsigned int i = 0; i < r->n_gone_sa; i++)
		report(&r->gone_sa[i], NULL, false);
	for (unsigned int i = 0; i < cfg->n_sas; i++) {
		if (r->sa_new[i]) {
			struct dps_sa s = sa_without_keys(&cfg->sas[i]);

			report(&s, NULL, true);
		}
	}
	for (unsigned int i = 0; i < r->n_new_pol; i++)
		report(NULL, &r->new_pol[i], true);
}

static void reload_free(struct reload *r, unsigned int n_new)
{
	for (unsigned int i = 0; r->made != NULL && i < n_new; i++) {
		if (r->made[i] != NULL)
			dps_spd_sa_gone(r->made[i]);
		dp_sa_free(r->made[i]);
	}
	free(r->sa_keep);
	free(r->pol_keep);
	free(r->pol_kept);
	free(r->made);
	free(r->sa_new);
	free(r->gone_sa);
	free(r->gone_pol);
	free(r->new_pol);
}

/* What can be known and made before anything changes: the SAs' dataplane objects. */
static int reload_plan(const struct dps_config *cfg, struct reload *r, char *err, size_t errlen)
{
	r->sa_keep = calloc(dps_store.n_sas + 1, sizeof(bool));
	r->pol_keep = calloc(dps_store.n_pol + 1, sizeof(bool));
	r->pol_kept = calloc(cfg->n_policies + 1, sizeof(bool));
	r->made = calloc(cfg->n_sas + 1, sizeof(*r->made));
	r->sa_new = calloc(cfg->n_sas + 1, sizeof(bool));
	r->gone_sa = calloc(dps_store.n_sas + 1, sizeof(*r->gone_sa));
	r->gone_pol = calloc(dps_store.n_pol + 1, sizeof(*r->gone_pol));
	r->new_pol = calloc(cfg->n_policies + 1, sizeof(*r->new_pol));
	if (r->sa_keep == NULL || r->pol_keep == NULL || r->pol_kept == NULL || r->made == NULL ||
	    r->sa_new == NULL || r->gone_sa == NULL || r->gone_pol == NULL || r->new_pol == NULL) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	for (unsigned int i = 0; i < cfg->n_sas; i++) {
		const struct dps_sa *c = &cfg->sas[i];
		int j = dps_store_sa_pos(c->spi, &c->dst, c->proto);
		char why[256];

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
					  &cfg->ipsec, why, sizeof(why));
		if (r->made[i] == NULL) {
			snprintf(err, errlen, "sas[%u] (spi 0x%x): %s", i, c->spi, why);
			return -ENOTSUP;
		}
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
			if (!r->pol_keep[j] && dps_policy_same(&e->p, c))
				r->pol_keep[j] = r->pol_kept[i] = true;
		}
	}
	return 0;
}

/* Remove what went away or changed, add what is new; stop at the first failure. */
static int reload_apply(const struct dps_config *cfg, struct reload *r, char *err, size_t errlen)
{
	char why[256];
	int rc;

	for (unsigned int j = dps_store.n_pol; j-- > 0;) {
		if (dps_store.pol[j].origin != DPS_ORIGIN_CONFIG || r->pol_keep[j])
			continue;
		r->gone_pol[r->n_gone_pol++] = dps_store.pol[j].p;
		rc = dps_store_policy_delete(dps_store.pol[j].p.id);
		if (rc < 0) {
			snprintf(err, errlen, "cannot delete policy %u: %s", dps_store.pol[j].p.id,
				 strerror(-rc));
			return rc;
		}
	}
	for (unsigned int j = dps_store.n_sas; j-- > 0;) {
		const struct dps_sa *c = &dps_store.sas[j].cfg;

		if (dps_store.sas[j].origin != DPS_ORIGIN_CONFIG || r->sa_keep[j])
			continue;
		r->gone_sa[r->n_gone_sa++] = sa_without_keys(c);
		rc = dps_store_sa_delete(c->spi, &c->dst, c->proto);
		if (rc < 0) {
			snprintf(err, errlen, "cannot delete SA 0x%x: %s", c->spi, strerror(-rc));
			return rc;
		}
	}
	dps_store.def = cfg->ipsec;
	dps_spd_defaults_changed();
	for (unsigned int i = 0; i < cfg->n_policies; i++) {
		struct dps_policy p = cfg->policies[i];

		if (r->pol_kept[i])
			continue;
		rc = dps_store_policy_add(&p, DPS_ORIGIN_CONFIG, why, sizeof(why));
		if (rc < 0) {
			snprintf(err, errlen, "policies[%u]: %s", i,
				 rc == -ENOMEM ? "out of memory" : why);
			return rc;
		}
		r->new_pol[r->n_new_pol++] = p;
	}
	for (unsigned int i = 0; i < cfg->n_sas; i++) {
		struct dp_sa *d = r->made[i];

		if (d == NULL)
			continue;
		r->made[i] = NULL; /* the store owns it now, or freed it */
		rc = dps_store_sa_insert(&cfg->sas[i], d, DPS_ORIGIN_CONFIG);
		if (rc < 0) {
			snprintf(err, errlen, "sas[%u] (spi 0x%x): %s", i, cfg->sas[i].spi,
				 rc == -EEXIST ? "SA exists" : "out of memory");
			return rc;
		}
		r->sa_new[i] = true;
	}
	return 0;
}

/*
 * Everything new is made first; then the store is changed and compiled, and
 * if any step fails the tables are put back as they were: the SAs and
 * policies in force stay in force, in the store and in the published
 * snapshot alike.
 */
int dps_store_reload(const struct dps_config *cfg, char *err, size_t errlen)
{
	struct dps_store_undo undo;
	struct reload r = {0};
	int rc = reload_plan(cfg, &r, err, errlen);

	if (rc == 0 && (rc = dps_store_undo_begin(&undo)) < 0)
		snprintf(err, errlen, "out of memory");
	if (rc < 0) {
		reload_free(&r, cfg->n_sas);
		return rc;
	}
	/* nothing reaches the workers before the commit that makes it whole */
	dps_spd_batch_begin();
	rc = reload_apply(cfg, &r, err, errlen);
	if (rc == 0 && dps_store_commit() < 0) {
		snprintf(err, errlen, "cannot compile the SPD/SAD");
		rc = -1;
	}
	if (rc < 0) {
		dps_store_undo(&undo);
	} else {
		dps_spd_batch_end(true);
		dps_store_undo_end(&undo);
		reload_report(cfg, &r);
	}
	reload_free(&r, cfg->n_sas);
	return rc;
}
