/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * What a key daemon installed, kept across a restart of dpsecd. A kernel
 * never restarts under its IKE daemon; dpsecd can (upgrade, crash), and
 * charon would not notice: its IKE SAs live on, its trap policies and
 * CHILD_SAs would be gone, and the tunnel with them. So the PF_KEY-installed
 * SAs and policies are written to a state file (root only, on /run's tmpfs
 * by default: the keys never touch a disk) when they change and, for the
 * sequence numbers, once a second while traffic flows; a new dpsecd puts them
 * back before it accepts clients.
 *
 * Sequence numbers: an outbound SA resumes SEQ_MARGIN past the count
 * last written, so the peer's anti-replay window never sees a number
 * again (RFC 4303 §3.3.3); an inbound SA's window starts at the count of
 * packets it had accepted. Lifetimes keep running from the SA's first
 * installation.
 */
#define DP_LOG_TYPE dps_logtype_pfkey /* common/log.h */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "control/store.h"
#include "control/wipe.h"
#include "dataplane/sa.h"
#include "pfkey_emul/server.h"
#include "pfkey_emul/state.h"

#define MAGIC	   0x64707366u /* "dpsf" */
#define VERSION	   1
#define SEQ_MARGIN (1u << 24) /* packets one worker may send between two saves, and more */
#define SAVE_EVERY 1000	      /* ms */

struct file_hdr {
	uint32_t magic, version;
	uint32_t n_sas, n_pols;
	uint32_t sa_size, pol_size; /* a dpsecd of another build refuses the file */
};

struct saved_sa {
	struct dps_sa cfg;
	uint64_t packets, bytes; /* out: sent; in: accepted */
	uint64_t age_s, used_s;	 /* used_s: 0 = never used */
};

/* stdio's buffer for the file, ours so that it is wiped: it holds keys */
static char iobuf[BUFSIZ];

static void close_wiped(FILE *f)
{
	fclose(f);
	dps_wipe(iobuf, sizeof(iobuf));
}

static struct {
	char path[sizeof(((struct dps_pfkey_cfg *)0)->state)];
	bool dirty;
	bool failing; /* the last write failed: said once, not every second */
	uint64_t next_save;
	uint64_t last_total; /* packets over all PF_KEY SAs at the last save */
} sv;

struct writer {
	FILE *f;
	uint32_t n;
	uint64_t total;
	bool count_only;
	bool no_total; /* counting records only: the counters are a cache miss per SA */
};

static int write_sa(const struct dps_store_sa *s, void *arg)
{
	struct writer *w = arg;
	struct dp_sa_counters c;
	struct saved_sa r;
	uint64_t now = dp_now_ms();
	int rc;

	if (s->origin != DPS_ORIGIN_PFKEY)
		return 0;
	if (w->no_total) {
		w->n++;
		return 0;
	}
	dp_sa_counters(s->dp, &c);
	w->total += c.v[DP_SA_CNT_packets];
	w->n++;
	if (w->count_only)
		return 0;
	memset(&r, 0, sizeof(r));
	r.cfg = s->cfg;
	r.packets = c.v[DP_SA_CNT_packets] + s->cfg.seq_start;
	r.bytes = c.v[DP_SA_CNT_bytes];
	r.age_s = (now - s->dp->add_ms) / 1000;
	r.used_s = s->dp->first_use_ms ? (now - s->dp->first_use_ms) / 1000 + 1 : 0;
	rc = fwrite(&r, sizeof(r), 1, w->f) != 1;
	dps_wipe(&r, sizeof(r));
	return rc;
}

static int write_pol(const struct dps_store_policy *p, void *arg)
{
	struct writer *w = arg;

	if (p->origin != DPS_ORIGIN_PFKEY)
		return 0;
	w->n++;
	if (w->count_only)
		return 0;
	return fwrite(&p->p, sizeof(p->p), 1, w->f) != 1;
}

static int save(void)
{
	struct writer sas = {.count_only = true, .no_total = true}, pols = {.count_only = true};
	char tmp[sizeof(sv.path) + 8];
	struct file_hdr h;
	int fd;

	dps_store_scan_sas(write_sa, &sas);
	dps_store_scan_policies(write_pol, &pols);
	h = (struct file_hdr){
		MAGIC, VERSION, sas.n, pols.n, sizeof(struct saved_sa), sizeof(struct dps_policy)};
	snprintf(tmp, sizeof(tmp), "%s.new", sv.path);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	sas = (struct writer){.f = fdopen(fd, "w")};
	pols = (struct writer){.f = sas.f};
	if (sas.f == NULL) {
		close(fd);
		unlink(tmp);
		return -ENOMEM;
	}
	setvbuf(sas.f, iobuf, _IOFBF, sizeof(iobuf));
	/* counts first, then the records: the walks may not change in between (one thread) */
	fwrite(&h, sizeof(h), 1, sas.f);
	dps_store_walk_sas(write_sa, &sas);
	dps_store_walk_policies(write_pol, &pols);
	sv.last_total = sas.total;
	if (fflush(sas.f) != 0 || ferror(sas.f) || sas.n != h.n_sas || pols.n != h.n_pols) {
		close_wiped(sas.f);
		unlink(tmp);
		return -EIO;
	}
	close_wiped(sas.f);
	if (rename(tmp, sv.path) < 0) {
		unlink(tmp);
		return -errno;
	}
	return 0;
}

void pfk_state_dirty(void)
{
	sv.dirty = true;
}

static uint64_t pfkey_packets(void)
{
	struct writer w = {.count_only = true};

	dps_store_scan_sas(write_sa, &w);
	return w.total;
}

void pfk_state_poll(uint64_t now_ms)
{
	int rc;

	if (!sv.path[0] || now_ms < sv.next_save)
		return;
	sv.next_save = now_ms + SAVE_EVERY;
	if (!sv.dirty && pfkey_packets() == sv.last_total)
		return;
	rc = save();
	if (rc < 0 && !sv.failing)
		DP_LOG(ERR, "pfkey: cannot write %s: %s (retrying every second)", sv.path,
		       strerror(-rc));
	else if (rc == 0 && sv.failing)
		DP_LOG(NOTICE, "pfkey: %s written again", sv.path);
	sv.failing = rc < 0;
	if (rc == 0)
		sv.dirty = false;
}

static uint64_t left(uint64_t limit, uint64_t spent)
{
	if (limit == 0)
		return 0;
	return limit > spent ? limit - spent : 1;
}

static void restore_sa(struct saved_sa *r, unsigned int *n)
{
	struct dps_sa sa = r->cfg;
	char why[256];

	sa.seq_start = sa.dir == DPS_DIR_OUT ? r->packets + SEQ_MARGIN : r->packets;
	if (sa.seq_start > UINT32_MAX && !sa.esn) {
		DP_LOG(WARNING, "pfkey: SA 0x%x not restored: its sequence numbers are spent",
		       sa.spi);
		dps_wipe(&sa, sizeof(sa));
		return;
	}
	/* the clock of time lifetimes does not restart; byte and packet ones count what was used */
	sa.hard.add_s = left(sa.hard.add_s, r->age_s);
	sa.soft.add_s = left(sa.soft.add_s, r->age_s);
	sa.hard.bytes = left(sa.hard.bytes, r->bytes);
	sa.soft.bytes = left(sa.soft.bytes, r->bytes);
	sa.hard.packets = left(sa.hard.packets, r->packets - r->cfg.seq_start);
	sa.soft.packets = left(sa.soft.packets, r->packets - r->cfg.seq_start);
	if (dps_store_sa_add(&sa, DPS_ORIGIN_RESTORED, why, sizeof(why)) < 0)
		DP_LOG(WARNING, "pfkey: SA 0x%x not restored: %s", sa.spi, why);
	else
		(*n)++;
	dps_wipe(&sa, sizeof(sa));
}

static int restore(FILE *f, unsigned int *n_sas, unsigned int *n_pols)
{
	struct file_hdr h;
	struct saved_sa r;
	struct dps_policy p;
	char why[256];

	if (fread(&h, sizeof(h), 1, f) != 1 || h.magic != MAGIC || h.version != VERSION ||
	    h.sa_size != sizeof(r) || h.pol_size != sizeof(p))
		return -EINVAL;
	/* policies first: they tell tunnel SAs which family they carry */
	if (fseek(f, (long)(sizeof(h) + (uint64_t)h.n_sas * sizeof(r)), SEEK_SET) < 0)
		return -EINVAL;
	for (uint32_t i = 0; i < h.n_pols; i++) {
		if (fread(&p, sizeof(p), 1, f) != 1)
			return -EINVAL;
		if (p.n_reqs > DPS_MAX_IPSEC_REQS)
			continue;
		if (dps_store_policy_add(&p, DPS_ORIGIN_RESTORED, why, sizeof(why)) == 0)
			(*n_pols)++;
		else
			DP_LOG(WARNING, "pfkey: policy %u not restored: %s", p.id, why);
	}
	if (fseek(f, sizeof(h), SEEK_SET) < 0)
		return -EINVAL;
	for (uint32_t i = 0; i < h.n_sas; i++) {
		if (fread(&r, sizeof(r), 1, f) != 1) {
			dps_wipe(&r, sizeof(r));
			return -EINVAL;
		}
		restore_sa(&r, n_sas);
	}
	dps_wipe(&r, sizeof(r));
	return 0;
}

int pfk_state_init(const char *path)
{
	unsigned int n_sas = 0, n_pols = 0;
	FILE *f;
	int rc;

	snprintf(sv.path, sizeof(sv.path), "%s", path);
	if (!sv.path[0])
		return 0;
	char dir[sizeof(sv.path)], *slash;

	snprintf(dir, sizeof(dir), "%s", sv.path);
	slash = strrchr(dir, '/');
	if (slash != NULL && slash != dir) {
		*slash = '\0';
		if (mkdir(dir, 0755) < 0 && errno != EEXIST)
			DP_LOG(WARNING, "pfkey: cannot create %s: %s", dir, strerror(errno));
	}
	f = fopen(sv.path, "re");
	if (f == NULL)
		return errno == ENOENT ? 0 : -errno;
	setvbuf(f, iobuf, _IOFBF, sizeof(iobuf));
	rc = restore(f, &n_sas, &n_pols);
	close_wiped(f);
	if (rc < 0)
		DP_LOG(WARNING, "pfkey: %s is not a state file of this dpsecd: ignored", sv.path);
	if (n_sas || n_pols) {
		if (dps_store_commit() < 0)
			return -EIO;
		DP_LOG(NOTICE, "pfkey: restored %u SA(s) and %u policies from %s", n_sas, n_pols,
		       sv.path);
	}
	sv.dirty = true; /* what was not restored is gone from the file too */
	return 0;
}

void pfk_state_fini(void)
{
	if (sv.path[0] && save() < 0)
		DP_LOG(ERR, "pfkey: cannot write %s", sv.path);
}
