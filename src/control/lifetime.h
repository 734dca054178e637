/* SPDX-License-Identifier: BSD-3-Clause */
/* SA lifetimes: soft and hard limits checked by the control thread. */
#ifndef DPS_LIFETIME_H
#define DPS_LIFETIME_H

#include <stdbool.h>
#include <stdint.h>

struct dps_store_sa;

/**
 * Called for an SA past a limit: @hard, it is removed right after the call;
 * else its soft limit is reported once. The PF_KEY server registers one to
 * send EXPIRE; without one, hard expiries still remove SAs.
 */
typedef void (*dps_lifetime_report_fn)(const struct dps_store_sa *s, bool hard);

/** Register @fn (NULL: none). */
void dps_lifetime_set_report(dps_lifetime_report_fn fn);

/** Report SAs past their soft limit (EXPIRE), remove those past their hard one. */
void dps_lifetime_poll(uint64_t now_ms);

#endif
