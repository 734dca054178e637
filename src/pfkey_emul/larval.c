/* SPDX-License-Identifier: BSD-3-Clause */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "control/addr.h"
#include "pfkey_emul/larval.h"

static struct {
	struct pfk_larval *v;
	unsigned int n, cap;
	/* open addressing, linear probing: position + 1, 0 = empty; > 2 * n slots */
	uint32_t *slot;
	uint32_t mask;
} lv;

static uint32_t mix(uint32_t h, const void *p, size_t n)
{
	const uint8_t *b = p;

	for (size_t i = 0; i < n; i++)
		h = (h ^ b[i]) * 16777619u; /* FNV-1a */
	return h;
}

static uint32_t key_hash(uint32_t spi, const struct dps_addr *dst, uint8_t proto)
{
	uint32_t h = mix(mix(2166136261u, &spi, 4), &proto, 1);

	return dst->family == AF_INET ? mix(h, &dst->v4, 4) : mix(h, &dst->v6, 16);
}

static uint32_t home(unsigned int pos)
{
	const struct dps_sa *s = &lv.v[pos].sa;

	return key_hash(s->spi, &s->dst, s->proto) & lv.mask;
}

static void slot_put(unsigned int pos)
{
	uint32_t k = home(pos);

	while (lv.slot[k])
		k = (k + 1) & lv.mask;
	lv.slot[k] = pos + 1;
}

static uint32_t slot_of(unsigned int pos)
{
	uint32_t k = home(pos);

	while (lv.slot[k] != pos + 1)
		k = (k + 1) & lv.mask;
	return k;
}

static int reindex(uint32_t slots)
{
	uint32_t *s = calloc(slots, sizeof(*s));

	if (s == NULL)
		return -ENOMEM;
	free(lv.slot);
	lv.slot = s;
	lv.mask = slots - 1;
	for (unsigned int i = 0; i < lv.n; i++)
		slot_put(i);
	return 0;
}

int pfk_larval_add(const struct dps_sa *sa, uint64_t expires_ms)
{
	if (lv.n == PFK_LARVAL_MAX)
		return -ENOBUFS;
	if (lv.n == lv.cap) {
		unsigned int cap = lv.cap ? lv.cap * 2 : 64;
		struct pfk_larval *v = realloc(lv.v, cap * sizeof(*v));

		if (v == NULL)
			return -ENOMEM;
		lv.v = v;
		lv.cap = cap;
	}
	if (lv.slot == NULL || 2 * (lv.n + 1) > lv.mask + 1) {
		if (reindex(lv.slot == NULL ? 128 : 2 * (lv.mask + 1)) < 0)
			return -ENOMEM;
	}
	memset(&lv.v[lv.n], 0, sizeof(lv.v[lv.n]));
	lv.v[lv.n].sa.spi = sa->spi;
	lv.v[lv.n].sa.proto = sa->proto;
	lv.v[lv.n].sa.src = sa->src;
	lv.v[lv.n].sa.dst = sa->dst;
	lv.v[lv.n].expires_ms = expires_ms;
	slot_put(lv.n++);
	return 0;
}

int pfk_larval_find(uint32_t spi, const struct dps_addr *dst, uint8_t proto)
{
	if (lv.n == 0)
		return -1;
	for (uint32_t k = key_hash(spi, dst, proto) & lv.mask; lv.slot[k]; k = (k + 1) & lv.mask) {
		const struct dps_sa *s = &lv.v[lv.slot[k] - 1].sa;

		if (s->spi == spi && s->proto == proto && dps_addr_eq(&s->dst, dst))
			return (int)lv.slot[k] - 1;
	}
	return -1;
}

unsigned int pfk_larval_count(void)
{
	return lv.n;
}

const struct pfk_larval *pfk_larval_at(unsigned int pos)
{
	return &lv.v[pos];
}

/* Empty slot @k without breaking a probe sequence: an entry further on
 * whose home is not cyclically in (k, j] moves back into the hole. */
static void slot_clear(uint32_t k)
{
	for (uint32_t j = (k + 1) & lv.mask; lv.slot[j]; j = (j + 1) & lv.mask) {
		uint32_t h = home(lv.slot[j] - 1);
		bool stays = k < j ? h > k && h <= j : h > k || h <= j;

		if (!stays) {
			lv.slot[k] = lv.slot[j];
			k = j;
		}
	}
	lv.slot[k] = 0;
}

void pfk_larval_remove(unsigned int pos)
{
	unsigned int last = lv.n - 1;

	slot_clear(slot_of(pos));
	if (pos != last) {
		lv.slot[slot_of(last)] = pos + 1;
		lv.v[pos] = lv.v[last];
	}
	lv.n--;
}

void pfk_larval_clear(void)
{
	free(lv.v);
	free(lv.slot);
	memset(&lv, 0, sizeof(lv));
}
