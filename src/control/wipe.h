/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Key material leaves no copy behind: what held a key is wiped before it is
 * freed, reused or left. explicit_bzero, which the compiler may not drop as
 * a dead store the way it may drop a memset of memory about to be freed.
 * Control thread and PF_KEY server only (tests/integration/test_key_wipe.py
 * searches the daemon's memory for a deleted SA's keys).
 */
#ifndef DPS_WIPE_H
#define DPS_WIPE_H

#include <stdlib.h>
#include <string.h>

/** Wipe @n bytes at @p (NULL: nothing). */
static inline void dps_wipe(void *p, size_t n)
{
	if (p != NULL)
		explicit_bzero(p, n);
}

/** Wipe @n bytes at @p, then free it. */
static inline void dps_free_wiped(void *p, size_t n)
{
	dps_wipe(p, n);
	free(p);
}

/**
 * realloc() that leaves no copy of the old block in freed memory: a new
 * block of @new_n bytes gets the first @old_n bytes of @p, which is wiped
 * and freed. NULL (and @p untouched) when memory is short.
 */
static inline void *dps_realloc_wiped(void *p, size_t old_n, size_t new_n)
{
	void *q = malloc(new_n);

	if (q == NULL)
		return NULL;
	if (p != NULL)
		memcpy(q, p, old_n < new_n ? old_n : new_n);
	dps_free_wiped(p, old_n);
	return q;
}

/**
 * Wipe the stack below the caller's frame: functions it has just returned
 * from (a crypto driver expanding a key, a parser holding an SA) leave copies
 * there that no later call is bound to overwrite.
 */
static void __attribute__((noinline, unused)) dps_stack_wipe(void)
{
	unsigned char buf[64 * 1024];

	explicit_bzero(buf, sizeof(buf));
	__asm__ volatile("" : : "r"(buf) : "memory");
}

#endif
