/* SPDX-License-Identifier: BSD-3-Clause */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <rte_cryptodev.h>
#include <rte_errno.h>
#include <rte_mempool.h>

#include "common/log.h"
#include "dataplane/session.h"

static struct {
	struct rte_mempool **pools;
	unsigned int n;	    /* pools made */
	unsigned int hint;  /* the pool the last session came from */
	unsigned int room;  /* their elements together */
	unsigned int max;   /* crypto.sessions */
	unsigned int priv;  /* private data of the largest device's session */
	unsigned int fails; /* pools that could not be made: logged the first time only */
} ses;

static struct rte_mempool *pool_add(char *err, size_t errlen)
{
	unsigned int size = RTE_MIN(DP_SESSION_POOL_SIZE, ses.max - ses.room);
	struct rte_mempool *mp;
	char name[RTE_MEMPOOL_NAMESIZE];

	if (size == 0) {
		snprintf(err, errlen,
			 "all %u crypto sessions are in use: raise crypto.sessions (one per SA)",
			 ses.max);
		rte_errno = ENOBUFS;
		return NULL;
	}
	snprintf(name, sizeof(name), "dps_sess%u", ses.n);
	mp = rte_cryptodev_sym_session_pool_create(name, size, ses.priv, 0, 0, SOCKET_ID_ANY);
	if (mp == NULL) {
		snprintf(err, errlen,
			 "no hugepage memory for %u more crypto sessions (%u in use): reserve more "
			 "hugepages (vm.nr_hugepages)",
			 size, ses.room);
		if (ses.fails++ == 0)
			DP_LOG(ERR, "crypto sessions: %s: %s", err, rte_strerror(rte_errno));
		rte_errno = ENOMEM;
		return NULL;
	}
	ses.pools[ses.n] = mp;
	ses.room += size;
	__atomic_store_n(&ses.n, ses.n + 1, __ATOMIC_RELEASE); /* telemetry counts them */
	DP_LOG(INFO,
	       "crypto sessions: room for %u in %u pool(s) of %u bytes each (at most %u: "
	       "crypto.sessions)",
	       ses.room, ses.n, mp->elt_size, ses.max);
	return mp;
}

int dp_session_init(unsigned int max, const uint8_t *dev_ids, unsigned int n_devs)
{
	char err[160];

	ses.max = max;
	ses.priv = 0;
	/* Room for every pool at once: the telemetry thread reads the array. */
	ses.pools =
		calloc((max + DP_SESSION_POOL_SIZE - 1) / DP_SESSION_POOL_SIZE, sizeof(*ses.pools));
	if (ses.pools == NULL)
		return -1;
	for (unsigned int i = 0; i < n_devs; i++)
		ses.priv =
			RTE_MAX(ses.priv, rte_cryptodev_sym_get_private_session_size(dev_ids[i]));
	if (pool_add(err, sizeof(err)) == NULL) {
		DP_LOG(ERR, "cannot create the crypto session pool: %s", err);
		return -1;
	}
	return 0;
}

void dp_session_fini(void)
{
	for (unsigned int i = 0; i < ses.n; i++)
		rte_mempool_free(ses.pools[i]);
	free(ses.pools);
	memset(&ses, 0, sizeof(ses));
}

struct rte_mempool *dp_session_pool0(void)
{
	return ses.n ? ses.pools[0] : NULL;
}

unsigned int dp_session_size(void)
{
	return ses.n ? ses.pools[0]->elt_size : 0;
}

/* A pool with a free element: sessions freed go back to the pool they came
 * from, so any pool may have room again. */
static struct rte_mempool *pool_with_room(void)
{
	for (unsigned int i = 0; i < ses.n; i++) {
		unsigned int k = (ses.hint + i) % ses.n;

		if (rte_mempool_avail_count(ses.pools[k]) > 0) {
			ses.hint = k;
			return ses.pools[k];
		}
	}
	return NULL;
}

void *dp_session_create(uint8_t dev_id, struct rte_crypto_sym_xform *x, char *err, size_t errlen)
{
	struct rte_mempool *mp = pool_with_room();
	void *s;

	if (mp == NULL) {
		mp = pool_add(err, errlen);
		if (mp == NULL)
			return NULL;
		ses.hint = ses.n - 1;
	}
	rte_errno = 0;
	s = rte_cryptodev_sym_session_create(dev_id, x, mp);
	if (s == NULL) {
		int e = rte_errno ? rte_errno : EINVAL;

		snprintf(err, errlen, "the crypto device refused the session: %s", rte_strerror(e));
		rte_errno = e == ENOBUFS ? EINVAL : e; /* ENOBUFS means crypto.sessions */
	}
	return s;
}

void dp_session_free(uint8_t dev_id, void *s)
{
	rte_cryptodev_sym_session_free(dev_id, s);
}

void dp_session_count(unsigned int *used, unsigned int *room, unsigned int *pools)
{
	unsigned int n = __atomic_load_n(&ses.n, __ATOMIC_ACQUIRE);

	*used = 0;
	*room = 0;
	for (unsigned int i = 0; i < n; i++) {
		*used += rte_mempool_in_use_count(ses.pools[i]);
		*room += ses.pools[i]->size;
	}
	*pools = n;
}
