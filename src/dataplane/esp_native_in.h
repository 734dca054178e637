/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Inbound ESP of the native engine's SAs (AES-GCM) without lib/ipsec:
 * esp_native_in.c.
 */
#ifndef DP_ESP_NATIVE_IN_H
#define DP_ESP_NATIVE_IN_H

#include "dataplane/sa.h"

/**
 * The crypto step of inbound ESP SA @sa on the native engine (sa->crypto),
 * chosen for its mode and key size: screens each packet's sequence number
 * against the SA's window, decrypts it in place with the worker's
 * intel-ipsec-mb manager, compares the ICV in constant time, checks the
 * trailer, strips ESP as lib/ipsec's process would, records the sequence
 * number in the window, and hands the packets to the SA's finish (esp_in.c)
 * with the failures after the good ones.
 */
dp_xform_run_t dp_esp_native_in_run(const struct dp_sa *sa);

#endif
