/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * ESP through lib/ipsec: outbound (esp_out.c) and inbound (esp_in.c), each
 * a set of prepare/finish pairs of which dp_sa_create() picks one per SA.
 * The native engine's outbound SAs keep esp_out.c's pair around dpsec's own
 * framing (esp_native_out.h).
 */
#ifndef DP_ESP_H
#define DP_ESP_H

#include <rte_mbuf.h>

#include "dataplane/sa.h"

struct dp_worker;
struct dp_snapshot;

/** The transform of outbound ESP SA @sa: its mode, UDP encapsulation, outer
 * family and dfbit decide. */
const struct dp_xform_ops *dp_esp_out_ops(const struct dp_sa *sa);

/** The transform of inbound ESP SA @sa: its mode and ECN knob decide. */
const struct dp_xform_ops *dp_esp_in_ops(const struct dp_sa *sa);

/**
 * The anti-replay verdict on mb[0..k), packets of inbound SA @sa whose
 * integrity lib/ipsec verified: each accepted is recorded in sa->replay, the
 * rejected ones are moved after the accepted (the finish counts them as
 * replays). Returns how many were accepted. The caller serialises it with
 * the SA's rte_ipsec_pkt_process() (crypto.c).
 */
uint16_t dp_esp_in_replay(struct dp_sa *sa, struct rte_mbuf **mb, uint16_t k);

/**
 * The inbound transforms' entry: ESP (or ESP-in-UDP) packets for the
 * gateway's addresses (w->st.esp), received on @port. NAT-T keepalives and
 * IKE are taken out, the SAs found (rte_ipsec_sad), and runs of packets of
 * one SA go through its transform.
 */
void dp_esp_in(struct dp_worker *w, const struct dp_snapshot *s, uint16_t port,
	       struct rte_mbuf **pkts, uint16_t n, int v6);

#endif
