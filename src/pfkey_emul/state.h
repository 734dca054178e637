/* SPDX-License-Identifier: BSD-3-Clause */
/* A key daemon's SAs and policies, kept in a state file across dpsecd restarts. */
#ifndef PFK_STATE_H
#define PFK_STATE_H

#include <stdint.h>

/** Restore what @path holds (if anything) into the store and commit. "" disables. */
int pfk_state_init(const char *path);

/** The PF_KEY objects changed: write them at the next poll. */
void pfk_state_dirty(void);

/** Write the file if something changed (objects, or sequence numbers within a second). */
void pfk_state_poll(uint64_t now_ms);

/** Write the file one last time (shutdown). */
void pfk_state_fini(void);

#endif
