/* SPDX-License-Identifier: BSD-3-Clause */
/* SA lifetimes: soft and hard limits checked by the control thread. */
#ifndef DPS_LIFETIME_H
#define DPS_LIFETIME_H

#include <stdint.h>

/** Report SAs past their soft limit (EXPIRE), remove those past their hard one. */
void dps_lifetime_poll(uint64_t now_ms);

#endif
