/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Policy messages (the KAME/Linux X_SPD* family): add, update, delete by
 * selector or by id, get, dump, flush. Policies live in the store; their ids
 * are Linux's (index << 3 | dir), which charon keeps to match ACQUIREs.
 */
#define DP_LOG_TYPE dps_logtype_pfkey /* common/log.h */
#include <errno.h>
#include <string.h>

#include "common/log.h"
#include "control/store.h"
#include "pfkey_emul/server.h"

static uint8_t buf[PFK_REPLY_MAX];

static void send_policy(struct pfk_client *c, const struct sadb_msg *req,
			const struct dps_store_policy *p, enum pfk_to to)
{
	struct sadb_msg h = *req;
	long n;

	h.sadb_msg_errno = 0;
	n = pfk_build_policy(buf, sizeof(buf), &h, &p->p, p->add_time,
			     pfk_events_policy_use(p->p.id));
	if (n > 0)
		pfk_send(c, buf, (size_t)n, to, 0);
	else
		DP_LOG(ERR, "pfkey: cannot build policy %u: %s", p->p.id, strerror((int)-n));
}

static uint32_t ext_id(const struct pfk_msg *m)
{
	return ((const struct sadb_x_policy *)m->ext[SADB_X_EXT_POLICY])->sadb_x_policy_id;
}

/* Linux's gen_reqid (af_key.c): reqids above those setkey's "unique:N" may name. */
#define MANUAL_REQID_MAX 0x3fff

struct reqid_probe {
	uint32_t reqid;
	bool used;
};

static int policy_uses(const struct dps_store_policy *p, void *arg)
{
	struct reqid_probe *q = arg;

	for (unsigned int r = 0; r < p->p.n_reqs; r++)
		q->used |= p->p.reqs[r].reqid == q->reqid;
	return q->used;
}

static int sa_uses(const struct dps_store_sa *s, void *arg)
{
	struct reqid_probe *q = arg;

	q->used |= s->cfg.reqid == q->reqid;
	return q->used;
}

/*
 * A unique request without a reqid gets one of its own, as Linux and KAME
 * give it (the policy is then bound to the SA a key daemon installs with
 * it): one no policy or SA uses. 0 if none is left.
 */
static uint32_t new_reqid(void)
{
	static uint32_t last = MANUAL_REQID_MAX;

	for (unsigned int tries = 0; tries < 1024; tries++) {
		struct reqid_probe q;

		if (++last == 0)
			last = MANUAL_REQID_MAX + 1;
		q = (struct reqid_probe){.reqid = last};
		dps_store_scan_policies(policy_uses, &q);
		if (!q.used)
			dps_store_scan_sas(sa_uses, &q);
		if (!q.used)
			return last;
	}
	return 0;
}

static int unique_reqids(struct dps_policy *p)
{
	for (unsigned int r = 0; r < p->n_reqs; r++)
		if (p->reqs[r].level == DPS_LEVEL_UNIQUE && p->reqs[r].reqid == 0 &&
		    (p->reqs[r].reqid = new_reqid()) == 0)
			return ENOBUFS;
	return 0;
}

int pfk_spdb_add(struct pfk_client *c, const struct pfk_msg *m)
{
	const struct dps_store_policy *e;
	struct dps_policy p;
	char why[256];
	int rc, err;

	memset(&p, 0, sizeof(p));
	err = pfk_policy_from_msg(m, &p);
	if (err == 0)
		err = unique_reqids(&p);
	if (err)
		return err;
	e = dps_store_policy_find(p.dir, &p.sel);
	if (e != NULL) {
		if (m->hdr->sadb_msg_type == SADB_X_SPDADD)
			return EEXIST;
		if (dps_store_policy_update(&p, DPS_ORIGIN_PFKEY) < 0)
			return EPERM; /* the configuration's policy */
	} else {
		rc = dps_store_policy_add(&p, DPS_ORIGIN_PFKEY, why, sizeof(why));
		if (rc < 0) {
			if (rc == -ENOMEM)
				DP_LOG(ERR, "pfkey: policy refused: %s", why);
			else
				DP_LOG(NOTICE, "pfkey: policy refused: %s", why);
			return rc == -EEXIST ? EEXIST : ENOMEM;
		}
	}
	pfk_store_dirty();
	send_policy(c, m->hdr, dps_store_policy_find(p.dir, &p.sel), PFK_TO_ALL);
	return 0;
}

int pfk_spdb_delete(struct pfk_client *c, const struct pfk_msg *m)
{
	const struct dps_store_policy *e;
	struct dps_store_policy gone;
	struct dps_selector sel;
	uint8_t dir;
	int err;

	if (m->hdr->sadb_msg_type == SADB_X_SPDDELETE2) {
		e = dps_store_policy_get(ext_id(m));
	} else {
		memset(&sel, 0, sizeof(sel));
		err = pfk_policy_key(m, &dir, &sel);
		if (err)
			return err;
		e = dps_store_policy_find(dir, &sel);
	}
	if (e == NULL)
		return ENOENT;
	if (e->origin != DPS_ORIGIN_PFKEY)
		return EPERM;
	gone = *e;
	if (dps_store_policy_delete(gone.p.id) < 0)
		return ENOMEM;
	pfk_store_dirty();
	send_policy(c, m->hdr, &gone, PFK_TO_ALL);
	return 0;
}

int pfk_spdb_get(struct pfk_client *c, const struct pfk_msg *m)
{
	const struct dps_store_policy *e = dps_store_policy_get(ext_id(m));

	if (e == NULL)
		return ENOENT;
	send_policy(c, m->hdr, e, PFK_TO_ONE);
	return 0;
}

struct dump {
	struct pfk_client *c;
	struct sadb_msg h;
	unsigned int left;
	bool count;
};

static int dump_one(const struct dps_store_policy *p, void *arg)
{
	struct dump *d = arg;
	struct sadb_msg h = d->h;

	if (d->count) {
		d->left++;
		return 0;
	}
	h.sadb_msg_seq = --d->left; /* the last one carries 0 */
	send_policy(d->c, &h, p, PFK_TO_ONE);
	return 0;
}

int pfk_spdb_dump(struct pfk_client *c, const struct pfk_msg *m)
{
	struct dump d = {.c = c, .h = *m->hdr, .count = true};

	dps_store_walk_policies(dump_one, &d);
	if (d.left == 0)
		return ENOENT;
	d.count = false;
	dps_store_walk_policies(dump_one, &d);
	return 0;
}

int pfk_spdb_flush(struct pfk_client *c, const struct pfk_msg *m)
{
	struct sadb_msg h = *m->hdr;

	if (dps_store_policy_flush(DPS_ORIGIN_PFKEY) > 0)
		pfk_store_dirty();
	h.sadb_msg_errno = 0;
	h.sadb_msg_len = sizeof(h) / 8;
	pfk_send(c, &h, sizeof(h), PFK_TO_ALL, 0);
	return 0;
}
