/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * dpsec's PF_KEY v2 extensions to Linux's <linux/pfkeyv2.h>: the
 * FreeBSD-style extensions strongSwan's kernel-pfkey plugin already knows
 * (behind #ifdef SADB_X_EXT_SA_REPLAY, SADB_X_SAFLAGS_ESN,
 * SADB_X_EXT_NEW_ADDRESS_SRC and SADB_X_EALG_CHACHA20POLY1305), with ids
 * that collide with nothing Linux defines:
 *
 *  - SADB_X_EXT_SA_REPLAY (27, FreeBSD's id): the replay window in packets,
 *    beyond sadb_sa_replay's 8 bits (charon sends it for inbound SAs).
 *  - SADB_X_EXT_NEW_ADDRESS_SRC/DST (28/29, FreeBSD's ids): new endpoints
 *    of an SA in SADB_UPDATE (MOBIKE, charon's update_sa).
 *  - SADB_X_SAFLAGS_ESN (0x400, FreeBSD's bit) in sadb_sa_flags: 64-bit
 *    extended sequence numbers (RFC 4303 §2.2.1).
 *  - SADB_X_EALG_CHACHA20POLY1305: FreeBSD's 15 is Linux's AES-CCM-ICV12,
 *    so dpsec uses 28, the IKEv2 transform id (RFC 7634), free in Linux.
 *
 * SADB_EXT_MAX is NOT raised: charon's sadb_ext_type_names has exactly
 * SADB_EXT_MAX + 1 names (a BUILD_ASSERT), and a charon built against a
 * plain Linux header rejects replies with types above its SADB_EXT_MAX.
 * dpsecd therefore never sends these extensions; it only accepts them.
 *
 * Usable by clients: strongSwan's plugin is compiled with
 * `-include pfkeyv2_ext.h` (scripts/strongswan-pfkey.sh).
 */
#ifndef PFK_PFKEYV2_EXT_H
#define PFK_PFKEYV2_EXT_H

#include <stdint.h>

#include <linux/pfkeyv2.h>

#ifndef SADB_X_EXT_SA_REPLAY
#define SADB_X_EXT_SA_REPLAY 27
struct sadb_x_sa_replay {
	uint16_t sadb_x_sa_replay_len;
	uint16_t sadb_x_sa_replay_exttype;
	uint32_t sadb_x_sa_replay_replay; /* packets */
} __attribute__((packed));
/* sizeof(struct sadb_x_sa_replay) == 8 */
#endif

#ifndef SADB_X_EXT_NEW_ADDRESS_SRC
#define SADB_X_EXT_NEW_ADDRESS_SRC 28 /* struct sadb_address */
#define SADB_X_EXT_NEW_ADDRESS_DST 29 /* struct sadb_address */
#endif

#ifndef SADB_X_SAFLAGS_ESN
#define SADB_X_SAFLAGS_ESN 0x400
#endif

#ifndef SADB_X_EALG_CHACHA20POLY1305
#define SADB_X_EALG_CHACHA20POLY1305 28
#endif

/* The highest extension type dpsecd parses (Linux's SADB_EXT_MAX is 26). */
#define PFK_EXT_MAX SADB_X_EXT_NEW_ADDRESS_DST

#endif
