/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Capture at the IPsec points (OpenBSD's enc(4)): plaintext before an
 * outbound SA (out-clear), plaintext after an inbound one (in-clear), the
 * protected packets (out-cipher, in-cipher) and what IPsec drops with its
 * reason (drop). dpsecctl arms one capture at a time through telemetry;
 * workers see it once per loop (w->cap) and, while it is armed, copy the
 * matching packets (rte_pktmbuf_copy into a pool of its own) onto a ring,
 * at most `rate` a second each, counting what they skip. The control thread
 * writes the copies with rte_pcapng, each with a comment naming the point,
 * the SA, the policy and, for drops, the reason.
 */
#ifndef DP_CAPTURE_H
#define DP_CAPTURE_H

#include <stdbool.h>
#include <stdint.h>

#include <rte_mbuf.h>

#include "dataplane/dp.h"

struct dp_policy;
struct dp_sa;

enum dp_cap_point {
	DP_CAP_OUT_CLEAR,
	DP_CAP_IN_CLEAR,
	DP_CAP_OUT_CIPHER,
	DP_CAP_IN_CIPHER,
	DP_CAP_DROP,
	DP_CAP_MAX
};

extern const char *const dp_cap_point_names[DP_CAP_MAX];

/* What an armed capture takes: read by workers while armed, never changed
 * then (a new capture waits for an RCU grace period after the last one). */
struct dp_cap_spec {
	uint32_t gen;	    /* new for every capture: workers refill their tokens */
	uint8_t point;	    /* enum dp_cap_point */
	uint32_t sa_id;	    /* 0: any */
	uint32_t policy_id; /* 0: any */
	uint64_t cost;	    /* TSC cycles per copy (the rate) */
	uint64_t burst;	    /* copies a worker may make at once */
};

/* The armed capture, NULL when none: workers load it once per loop. */
extern const struct dp_cap_spec *dp_cap_armed;

/** Create the capture pool and ring (dp_init). */
int dp_cap_init(void);

/** Stop a capture and free the pool and ring (dp_stop, workers stopped). */
void dp_cap_fini(void);

/**
 * Arm a capture (telemetry thread): @point, filters @sa_id and @policy_id (0:
 * any), at most @count packets (0: until stopped), @rate copies a second per
 * worker, written as pcapng to @path. Returns 0, or -1 with @err set.
 */
int dp_cap_start(uint8_t point, uint32_t sa_id, uint32_t policy_id, uint64_t count, uint32_t rate,
		 const char *path, char *err, size_t errlen);

/** Stop the capture; the control thread closes the file. */
void dp_cap_stop(void);

struct dp_cap_status {
	bool armed;	  /* workers copy */
	bool done;	  /* the file is complete and closed */
	uint64_t written; /* packets in the file */
	uint64_t skipped; /* over the rate, pool or ring full */
	uint64_t count;	  /* asked for */
	uint8_t point;
};

/** The current (or last) capture's state. */
void dp_cap_status(struct dp_cap_status *st);

/** Control thread: write what the workers copied; close when done (dp_control_poll). */
void dp_cap_poll(void);

/** Worker, in its loop: take the armed capture for this loop. */
static inline void dp_cap_load(struct dp_worker *w)
{
	const struct dp_cap_spec *c = __atomic_load_n(&dp_cap_armed, __ATOMIC_ACQUIRE);

	if (unlikely(c != NULL && (w->cap == NULL || w->cap_gen != c->gen))) {
		w->cap_gen = c->gen;
		w->cap_tokens = c->cost * c->burst;
		w->cap_last = rte_rdtsc();
	}
	w->cap = c;
}

/* The copy itself (capture.c): rate, pool, ring. */
void dp_cap_copy(struct dp_worker *w, uint8_t point, struct rte_mbuf *m, uint16_t port,
		 uint32_t policy_id, uint32_t sa_id, uint8_t reason);

/**
 * Copy @m if the armed capture takes @point, @policy and @sa (either may be
 * NULL). Call only when w->cap is set. @port: the dataplane port it came in
 * by (DP_NO_PORT: from m->port). @reason: drops' enum dp_polog_reason.
 */
void dp_cap_pkt(struct dp_worker *w, uint8_t point, struct rte_mbuf *m, uint16_t port,
		const struct dp_policy *policy, const struct dp_sa *sa, uint8_t reason);

/** dp_cap_pkt() for @n packets of one SA. */
void dp_cap_burst(struct dp_worker *w, uint8_t point, struct rte_mbuf **m, uint16_t n,
		  const struct dp_sa *sa);

#endif
