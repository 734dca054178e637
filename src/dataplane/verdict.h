/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * What a policy means to a worker, and what the inbound check of RFC 4301
 * §5.2 makes of it: pure functions, resolved by spd.c when the SPD is
 * compiled and applied by policy.c per packet (tests/unit/test_policy.c).
 */
#ifndef DP_VERDICT_H
#define DP_VERDICT_H

#include <stdbool.h>
#include <stdint.h>

#include "control/ipsec.h"

/* What a policy means to a worker, with levels and SAs already resolved. */
enum dp_verdict {
	DP_V_DISCARD,
	DP_V_BYPASS,
	DP_V_PROTECT,	 /* out: sa != NULL */
	DP_V_NO_SA,	 /* out: require/unique without SA: drop (and ACQUIRE) */
	DP_V_REQUIRE_IN, /* in/fwd: only packets decrypted by an acceptable SA */
	DP_V_USE_IN,	 /* in/fwd: decrypted by an acceptable SA, or plaintext */
};

/** A request's level, its protocol and mode's system default (*_deflev) when
 * it says none. */
static inline uint8_t dp_level_of(const struct dps_ipsec_defaults *d, const struct dps_ipsec_req *r)
{
	if (r->level != DPS_LEVEL_DEFAULT)
		return r->level;
	if (r->proto == DPS_PROTO_AH)
		return r->mode == DPS_MODE_TUNNEL ? d->ah_net_deflev : d->ah_trans_deflev;
	return r->mode == DPS_MODE_TUNNEL ? d->esp_net_deflev : d->esp_trans_deflev;
}

/**
 * The verdict of a policy of direction @dir and @action. For protect: @level
 * is its ESP request's resolved level (DPS_LEVEL_DEFAULT: no ESP request),
 * @missing says another request it requires cannot be run, @has_sa that an
 * outbound SA is bound. `use` lets traffic pass in clear when no SA exists
 * (out) or arrives in clear (in/fwd); `require` and `unique` do not.
 */
static inline uint8_t dp_verdict_resolve(uint8_t dir, uint8_t action, uint8_t level, bool missing,
					 bool has_sa)
{
	bool use = level == DPS_LEVEL_USE && !missing;

	if (action != DPS_ACTION_PROTECT)
		return action == DPS_ACTION_DISCARD ? DP_V_DISCARD : DP_V_BYPASS;
	if (dir != DPS_DIR_OUT)
		return use ? DP_V_USE_IN : DP_V_REQUIRE_IN;
	if (has_sa && !missing)
		return DP_V_PROTECT;
	return use ? DP_V_BYPASS : DP_V_NO_SA;
}

/* The inbound check's outcome for one packet. */
enum dp_in_check {
	DP_IN_PASS,
	DP_IN_DROP_POLICY,    /* a discard policy (or def_policy): drop_policy on the port */
	DP_IN_DROP_PLAINTEXT, /* in clear where IPsec is required: drop_plaintext */
	DP_IN_DROP_SA_POLICY, /* decrypted, but not by an SA the policy accepts: the SA's
				 drop_policy */
};

/**
 * RFC 4301 §5.2: a packet that arrived in clear may pass only a policy that
 * does not require IPsec; one that was decrypted only a policy that accepts
 * the SA it came through (@accepts: dp_policy_accepts()).
 */
static inline enum dp_in_check dp_inbound_check(uint8_t verdict, bool decrypted, bool accepts)
{
	if (decrypted)
		return (verdict == DP_V_REQUIRE_IN || verdict == DP_V_USE_IN) && accepts
			       ? DP_IN_PASS
			       : DP_IN_DROP_SA_POLICY;
	if (verdict == DP_V_BYPASS || verdict == DP_V_USE_IN)
		return DP_IN_PASS;
	return verdict == DP_V_DISCARD ? DP_IN_DROP_POLICY : DP_IN_DROP_PLAINTEXT;
}

#endif
