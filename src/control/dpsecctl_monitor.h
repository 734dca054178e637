/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * dpsecctl monitor: the messages a promiscuous PF_KEY socket of dpsecd
 * receives, one line each, in the manner of `ip xfrm monitor`.
 */
#ifndef DPS_DPSECCTL_MONITOR_H
#define DPS_DPSECCTL_MONITOR_H

#include <stddef.h>

/**
 * Describe the PF_KEY message @msg of @len bytes in @out (one line, no
 * newline). Returns the length written, 0 for a message a monitor does not
 * show (replies to queries, errors, dumps), -1 for a malformed message.
 */
int dps_monitor_format(const void *msg, size_t len, char *out, size_t cap);

#endif
