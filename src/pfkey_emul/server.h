/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The PF_KEY v2 server: an AF_UNIX SOCK_SEQPACKET socket on which key
 * daemons talk to dpsecd as they would to a kernel's PF_KEY socket. Run by
 * the control thread only; workers never see it. Messages go to the store
 * (the same API the YAML configuration uses); replies and the "kernel"'s own
 * messages (ACQUIRE, EXPIRE) go back to the clients RFC 2367 says should
 * get them.
 */
#ifndef PFK_SERVER_H
#define PFK_SERVER_H

#include <stddef.h>
#include <stdint.h>

#include "control/config.h"
#include "pfkey_emul/codec.h"

/** Listen on @cfg's socket. 0, or -1 (logged). Nothing to do when PF_KEY is disabled. */
int pfk_server_init(const struct dps_config *cfg);

/**
 * Accept clients, run the messages they sent, publish the changes with one
 * store commit, then send the replies; the events (ACQUIRE, larval SA
 * expiry) and the state file. Never blocks.
 */
void pfk_server_poll(uint64_t now_ms);

/** Sleep up to @timeout_us, or less when a client sends or can take its replies. */
void pfk_server_wait(unsigned int timeout_us);

/** Close every client and the socket, remove the socket file. */
void pfk_server_fini(void);

/* ---- for the message handlers and the events ---- */

struct pfk_client;

/* Who receives a message (RFC 2367 §3.1 and Linux's BROADCAST_*). */
enum pfk_to {
	PFK_TO_ONE,	   /* the client alone */
	PFK_TO_ALL,	   /* every client */
	PFK_TO_REGISTERED, /* clients registered for the satype */
};

/** Queue @len bytes of @msg for @c (ONE) or the clients @to names. */
void pfk_send(struct pfk_client *c, const void *msg, size_t len, enum pfk_to to, uint8_t satype);

/** Mark the store changed: one commit follows the batch of messages. */
void pfk_store_dirty(void);

/** Whether any client registered for @satype (nobody to ACQUIRE for otherwise). */
int pfk_registered(uint8_t satype);

/** The algorithms the crypto devices run, for SUPPORTED and PROPOSAL. */
const struct pfk_algs *pfk_algs(void);

/** The PF_KEY configuration in force. */
const struct dps_pfkey_cfg *pfk_cfg(void);

/** True if @a is one of the gateway's own addresses (an SA to it is inbound). */
int pfk_is_local(const struct dps_addr *a);

/* Message handlers: return 0 after replying, or the errno the server replies with. */
int pfk_sadb_getspi(struct pfk_client *c, const struct pfk_msg *m);
int pfk_sadb_add(struct pfk_client *c, const struct pfk_msg *m); /* ADD and UPDATE */
int pfk_sadb_delete(struct pfk_client *c, const struct pfk_msg *m);
int pfk_sadb_get(struct pfk_client *c, const struct pfk_msg *m);
int pfk_sadb_flush(struct pfk_client *c, const struct pfk_msg *m);
int pfk_sadb_dump(struct pfk_client *c, const struct pfk_msg *m);
int pfk_sadb_register(struct pfk_client *c, const struct pfk_msg *m);
void pfk_sadb_timer(uint64_t now_ms);
void pfk_sadb_fini(void);

int pfk_spdb_add(struct pfk_client *c, const struct pfk_msg *m);    /* SPDADD and SPDUPDATE */
int pfk_spdb_delete(struct pfk_client *c, const struct pfk_msg *m); /* SPDDELETE, SPDDELETE2 */
int pfk_spdb_get(struct pfk_client *c, const struct pfk_msg *m);
int pfk_spdb_dump(struct pfk_client *c, const struct pfk_msg *m);
int pfk_spdb_flush(struct pfk_client *c, const struct pfk_msg *m);

/** Register @c for @satype (REGISTER). */
void pfk_client_register(struct pfk_client *c, uint8_t satype);

/** ACQUIRE for policies that dropped packets for want of an SA; policy use times. */
void pfk_events_poll(uint64_t now_ms);
/** Seconds since the epoch of a policy's last use, 0 if never. */
uint64_t pfk_events_policy_use(uint32_t id);

struct dps_store_sa;
/** What PF_KEY reports of a stored SA: state, current lifetime. */
void pfk_sa_state(const struct dps_store_sa *s, struct pfk_sa_state *st);
/** EXPIRE (soft or hard) for @s to the registered clients. */
void pfk_events_expire(const struct dps_store_sa *s, int hard);
/** Broadcast a configuration reload's change (dps_reload_report_fn). */
void pfk_events_config(const struct dps_sa *sa, const struct dps_policy *pol, bool added);

#endif
