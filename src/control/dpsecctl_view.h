/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * dpsecctl's readable views of one SA or one policy (the objects of
 * /dpsec/sa and /dpsec/policy), a few lines each, never wider than
 * DPS_VIEW_WIDTH columns: in the manner of `ip xfrm state` and
 * `swanctl --list-sas`.
 */
#ifndef DPS_DPSECCTL_VIEW_H
#define DPS_DPSECCTL_VIEW_H

#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>

#define DPS_VIEW_WIDTH 100

/**
 * Print SA @sa (telemetry key @key) to @out. @full: also every field the
 * short view leaves out, as "name value" pairs.
 */
void dps_view_sa(FILE *out, const char *key, const json_t *sa, bool full);

/** Print policy @pol (telemetry key @key) to @out; @full as for dps_view_sa(). */
void dps_view_policy(FILE *out, const char *key, const json_t *pol, bool full);

/** The name of IP protocol @proto ("any" for 255), or its number in @buf. */
const char *dps_view_proto_name(long long proto, char *buf, size_t len);

#endif
