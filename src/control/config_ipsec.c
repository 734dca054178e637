// SPDX-License-Identifier: BSD-3-Clause
/*
 * dpsec.yaml loader: the IPsec sections, crypto, ipsec (the system defaults),
 * sas and policies. Their tables hang off the top-level table in config.c,
 * after the gateway sections; the walk and the generic handlers they use are
 * there too (see config.c and config_schema.h).
 */
#include "control/config_schema.h"

#include <inttypes.h>
#include <string.h>

/* ---- IPsec: rules between keys --------------------------------------------- */

/* A key that the value of another key of the same mapping requires or rules out. */
struct dps_rule {
	int value; /* of the deciding key */
	const char *key;
	bool required; /* else not allowed */
	const char *why;
};

static int dps_check_rules(struct dps_ctx *ctx, yaml_node_t *map, const struct dps_rule *rules,
			   int value)
{
	const struct dps_rule *r;

	for (r = rules; r->key; r++) {
		if (r->value != value || (dps_map_pair(ctx, map, r->key) != NULL) == r->required)
			continue;
		if (r->required)
			return dps_err_key(ctx, map, r->key, "missing required key (%s)", r->why);
		return dps_err_at_key(ctx, map, r->key, "not allowed: %s", r->why);
	}
	return 0;
}

static const char *dps_enum_name(const struct dps_enum *names, int value)
{
	for (; names->name; names++)
		if (names->value == value)
			return names->name;
	return "?";
}

/* Tunnel endpoints: one family, two hosts. Reported on "dst", parsed after "src". */
static int dps_check_endpoints(struct dps_ctx *ctx, yaml_node_t *map, const struct dps_addr *src,
			       const struct dps_addr *dst)
{
	char buf[INET6_ADDRSTRLEN];

	if (dst->family != src->family)
		return dps_err_key(ctx, map, "dst", "%s is not of src's family",
				   dps_addr_str(dst, buf, sizeof(buf)));
	if (dps_addr_eq(src, dst))
		return dps_err_key(ctx, map, "dst", "%s is src too",
				   dps_addr_str(dst, buf, sizeof(buf)));
	return 0;
}

static const struct dps_enum dps_ipsec_protos[] = {
	{"esp", DPS_PROTO_ESP},
	{"ah", DPS_PROTO_AH},
	{"ipcomp", DPS_PROTO_IPCOMP},
	{NULL, 0},
};

static const struct dps_enum dps_modes[] = {
	{"tunnel", DPS_MODE_TUNNEL},
	{"transport", DPS_MODE_TRANSPORT},
	{NULL, 0},
};

static const struct dps_enum dps_dfbits[] = {
	{"clear", DPS_DF_CLEAR},
	{"set", DPS_DF_SET},
	{"copy", DPS_DF_COPY},
	{NULL, 0},
};

/* ---- IPsec: crypto devices and system defaults ----------------------------- */

static int dps_cryptodevs_check(struct dps_ctx *ctx, yaml_node_t *seq, void *obj)
{
	const struct dps_config *cfg = ctx->cfg;
	const struct dps_crypto_cfg *c = obj;
	unsigned int i, j;

	for (i = 0; i < c->n_devices; i++) {
		for (j = 0; j < i; j++)
			if (!strcmp(c->devices[i], c->devices[j]))
				return dps_err_index(ctx, seq, i, "\"%s\" is already devices[%u]",
						     c->devices[i], j);
		for (j = 0; j < cfg->n_ports; j++)
			if (!strcmp(c->devices[i], cfg->ports[j].device))
				return dps_err_index(ctx, seq, i, "\"%s\" is the device of port %s",
						     c->devices[i], cfg->ports[j].name);
	}
	return 0;
}

static const struct dps_seq dps_cryptodevs_seq = {
	.count_off = offsetof(struct dps_crypto_cfg, n_devices),
	.array_off = offsetof(struct dps_crypto_cfg, devices),
	.min = 1,
	.max = DPS_MAX_CRYPTODEVS,
	.elem = {.parse = dps_parse_str,
		 .size = DPS_SIZEOF(struct dps_crypto_cfg, devices[0]),
		 .min = 1,
		 .valid = dps_valid_device},
	.check = dps_cryptodevs_check,
};

static const struct dps_enum dps_engines[] = {
	{"native", DPS_ENGINE_NATIVE},
	{"cryptodev", DPS_ENGINE_CRYPTODEV},
	{NULL, 0},
};

static const struct dps_field dps_crypto_fields[] = {
	{.key = "devices", .parse = dps_parse_seq, .seq = &dps_cryptodevs_seq},
	{.key = "cpu_crypto", .parse = dps_parse_bool, DPS_AT(struct dps_crypto_cfg, cpu_crypto)},
	{.key = "engine",
	 .parse = dps_parse_enum,
	 DPS_AT(struct dps_crypto_cfg, engine),
	 .names = dps_engines},
	{.key = "sessions",
	 .parse = dps_parse_uint,
	 DPS_AT(struct dps_crypto_cfg, sessions),
	 .min = 64,
	 .max = 16777216},
	{.key = "queue_latency_us",
	 .parse = dps_parse_uint,
	 DPS_AT(struct dps_crypto_cfg, queue_latency_us),
	 .min = 0,
	 .max = 10000},
	{0},
};

DPS_SCHEMA_SHARED(dps_crypto_schema, dps_crypto_fields, NULL);

static int dps_compressdevs_check(struct dps_ctx *ctx, yaml_node_t *seq, void *obj)
{
	const struct dps_config *cfg = ctx->cfg;
	const struct dps_compress_cfg *c = obj;
	unsigned int i, j;

	for (i = 0; i < c->n_devices; i++) {
		for (j = 0; j < i; j++)
			if (!strcmp(c->devices[i], c->devices[j]))
				return dps_err_index(ctx, seq, i, "\"%s\" is already devices[%u]",
						     c->devices[i], j);
		for (j = 0; j < cfg->n_ports; j++)
			if (!strcmp(c->devices[i], cfg->ports[j].device))
				return dps_err_index(ctx, seq, i, "\"%s\" is the device of port %s",
						     c->devices[i], cfg->ports[j].name);
		for (j = 0; j < cfg->crypto.n_devices; j++)
			if (!strcmp(c->devices[i], cfg->crypto.devices[j]))
				return dps_err_index(ctx, seq, i, "\"%s\" is crypto device %u",
						     c->devices[i], j);
	}
	return 0;
}

static const struct dps_seq dps_compressdevs_seq = {
	.count_off = offsetof(struct dps_compress_cfg, n_devices),
	.array_off = offsetof(struct dps_compress_cfg, devices),
	.min = 0,
	.max = DPS_MAX_COMPRESSDEVS,
	.elem = {.parse = dps_parse_str,
		 .size = DPS_SIZEOF(struct dps_compress_cfg, devices[0]),
		 .min = 1,
		 .valid = dps_valid_device},
	.check = dps_compressdevs_check,
};

static const struct dps_field dps_compress_fields[] = {
	{.key = "devices", .parse = dps_parse_seq, .seq = &dps_compressdevs_seq},
	{.key = "min_size",
	 .parse = dps_parse_uint,
	 DPS_AT(struct dps_compress_cfg, min_size),
	 .min = 0,
	 .max = 65535},
	{0},
};

DPS_SCHEMA_SHARED(dps_compress_schema, dps_compress_fields, NULL);

static const struct dps_enum dps_def_policies[] = {
	{"discard", DPS_ACTION_DISCARD},
	{"bypass", DPS_ACTION_BYPASS},
	{NULL, 0},
};

static const struct dps_enum dps_deflevs[] = {
	{"use", DPS_LEVEL_USE},
	{"require", DPS_LEVEL_REQUIRE},
	{NULL, 0},
};

static const struct dps_field dps_def_policy_fields[] = {
	{.key = "ipv4",
	 .parse = dps_parse_enum,
	 DPS_AT(struct dps_ipsec_defaults, def_policy4),
	 .names = dps_def_policies},
	{.key = "ipv6",
	 .parse = dps_parse_enum,
	 DPS_AT(struct dps_ipsec_defaults, def_policy6),
	 .names = dps_def_policies},
	{0},
};

DPS_SCHEMA(dps_def_policy_schema, dps_def_policy_fields, NULL);

/* def_policy: one action for both families, or a mapping of family to action. */
static int dps_parse_def_policy(struct dps_ctx *ctx, const struct dps_field *f, yaml_node_t *node,
				void *obj)
{
	struct dps_ipsec_defaults *d = obj;

	if (node->type == YAML_MAPPING_NODE)
		return dps_walk_map(ctx, f->map, node, obj);
	if (node->type == YAML_SEQUENCE_NODE)
		return dps_err(ctx, node,
			       "expected discard, bypass or a mapping, found a sequence");
	if (dps_parse_enum(ctx, f, node, obj))
		return -1;
	d->def_policy6 = d->def_policy4;
	return 0;
}

static const struct dps_field dps_ipsec_fields[] = {
	{.key = "def_policy",
	 .parse = dps_parse_def_policy,
	 DPS_AT(struct dps_ipsec_defaults, def_policy4),
	 .names = dps_def_policies,
	 .map = &dps_def_policy_schema},
	{.key = "esp_trans_deflev",
	 .parse = dps_parse_enum,
	 DPS_AT(struct dps_ipsec_defaults, esp_trans_deflev),
	 .names = dps_deflevs},
	{.key = "esp_net_deflev",
	 .parse = dps_parse_enum,
	 DPS_AT(struct dps_ipsec_defaults, esp_net_deflev),
	 .names = dps_deflevs},
	{.key = "ah_trans_deflev",
	 .parse = dps_parse_enum,
	 DPS_AT(struct dps_ipsec_defaults, ah_trans_deflev),
	 .names = dps_deflevs},
	{.key = "ah_net_deflev",
	 .parse = dps_parse_enum,
	 DPS_AT(struct dps_ipsec_defaults, ah_net_deflev),
	 .names = dps_deflevs},
	{.key = "dfbit",
	 .parse = dps_parse_enum,
	 DPS_AT(struct dps_ipsec_defaults, dfbit),
	 .names = dps_dfbits},
	{.key = "ecn", .parse = dps_parse_bool, DPS_AT(struct dps_ipsec_defaults, ecn)},
	{.key = "ah_cleartos",
	 .parse = dps_parse_bool,
	 DPS_AT(struct dps_ipsec_defaults, ah_cleartos)},
	{.key = "ah_offsetmask",
	 .parse = dps_parse_uint,
	 DPS_AT(struct dps_ipsec_defaults, ah_offsetmask),
	 .min = 0,
	 .max = 0xffff},
	{.key = "replay_window",
	 .parse = dps_parse_window,
	 DPS_AT(struct dps_ipsec_defaults, replay_window),
	 .min = 64,
	 .max = 65536},
	{.key = "esp_enable",
	 .parse = dps_parse_bool,
	 DPS_AT(struct dps_ipsec_defaults, esp_enable)},
	{.key = "ah_enable", .parse = dps_parse_bool, DPS_AT(struct dps_ipsec_defaults, ah_enable)},
	{.key = "ipcomp_enable",
	 .parse = dps_parse_bool,
	 DPS_AT(struct dps_ipsec_defaults, ipcomp_enable)},
	{.key = "icmp_accept_clear",
	 .parse = dps_parse_bool,
	 DPS_AT(struct dps_ipsec_defaults, icmp_accept_clear)},
	{.key = "igmp_accept_clear",
	 .parse = dps_parse_bool,
	 DPS_AT(struct dps_ipsec_defaults, igmp_accept_clear)},
	{.key = "pim_accept_clear",
	 .parse = dps_parse_bool,
	 DPS_AT(struct dps_ipsec_defaults, pim_accept_clear)},
	{.key = "policy_log_interval_ms",
	 .parse = dps_parse_uint,
	 DPS_AT(struct dps_ipsec_defaults, policy_log_interval_ms),
	 .max = 3600000},
	{0},
};

DPS_SCHEMA_SHARED(dps_ipsec_schema, dps_ipsec_fields, NULL);

/* ---- IPsec: algorithms and keys -------------------------------------------- */

/* An algorithm's table value: its id, the bytes of key it takes (salt included), the salt's. */
#define DPS_ALG(id, key, salt) ((id) | ((key) + (salt)) << 8 | (salt) << 16)

static const struct dps_enum dps_enc_algs[] = {
	{"null", DPS_ALG(DPS_ENC_NULL, 0, 0)},
	{"aes-cbc-128", DPS_ALG(DPS_ENC_AES_CBC, 16, 0)},
	{"aes-cbc-192", DPS_ALG(DPS_ENC_AES_CBC, 24, 0)},
	{"aes-cbc-256", DPS_ALG(DPS_ENC_AES_CBC, 32, 0)},
	{"aes-ctr-128", DPS_ALG(DPS_ENC_AES_CTR, 16, 4)},
	{"aes-ctr-192", DPS_ALG(DPS_ENC_AES_CTR, 24, 4)},
	{"aes-ctr-256", DPS_ALG(DPS_ENC_AES_CTR, 32, 4)},
	{"aes-gcm-128", DPS_ALG(DPS_ENC_AES_GCM, 16, 4)},
	{"aes-gcm-192", DPS_ALG(DPS_ENC_AES_GCM, 24, 4)},
	{"aes-gcm-256", DPS_ALG(DPS_ENC_AES_GCM, 32, 4)},
	{"aes-gmac-128", DPS_ALG(DPS_ENC_AES_GMAC, 16, 4)},
	{"aes-gmac-192", DPS_ALG(DPS_ENC_AES_GMAC, 24, 4)},
	{"aes-gmac-256", DPS_ALG(DPS_ENC_AES_GMAC, 32, 4)},
	{"chacha20-poly1305", DPS_ALG(DPS_ENC_CHACHA20_POLY1305, 32, 4)},
	{NULL, 0},
};

/* HMAC keys as long as the hash's output (RFC 2404, RFC 4868). */
static const struct dps_enum dps_auth_algs[] = {
	{"none", DPS_ALG(DPS_AUTH_NONE, 0, 0)},
	{"hmac-sha1-96", DPS_ALG(DPS_AUTH_HMAC_SHA1_96, 20, 0)},
	{"hmac-sha2-256-128", DPS_ALG(DPS_AUTH_HMAC_SHA256_128, 32, 0)},
	{"hmac-sha2-384-192", DPS_ALG(DPS_AUTH_HMAC_SHA384_192, 48, 0)},
	{"hmac-sha2-512-256", DPS_ALG(DPS_AUTH_HMAC_SHA512_256, 64, 0)},
	{"aes-gmac-128", DPS_ALG(DPS_AUTH_AES_GMAC, 16, 4)}, /* AH only (RFC 4543 §3) */
	{"aes-gmac-192", DPS_ALG(DPS_AUTH_AES_GMAC, 24, 4)},
	{"aes-gmac-256", DPS_ALG(DPS_AUTH_AES_GMAC, 32, 4)},
	{NULL, 0},
};

/*
 * "encryption" and "integrity" are mappings over an SA's {enc,auth}_alg byte
 * and the key length byte after it: the algorithm row stores both, then the
 * key row checks the key it decodes against that length.
 */
_Static_assert(offsetof(struct dps_sa, enc_key_len) == offsetof(struct dps_sa, enc_alg) + 1,
	       "enc_key_len must follow enc_alg");
_Static_assert(offsetof(struct dps_sa, auth_key_len) == offsetof(struct dps_sa, auth_alg) + 1,
	       "auth_key_len must follow auth_alg");

#define DPS_KEY_AT(alg, key)                                                                       \
	.off = offsetof(struct dps_sa, key) - offsetof(struct dps_sa, alg),                        \
	.size = DPS_SIZEOF(struct dps_sa, key)

/* The name of algorithm @id taking @len bytes of key, and its salt length. */
static const char *dps_alg_name(const struct dps_enum *names, unsigned int id, unsigned int len,
				unsigned int *salt)
{
	const struct dps_enum *e;

	for (e = names; e->name; e++)
		if ((unsigned int)(e->value & 0xffff) == (id | len << 8))
			break;
	if (salt)
		*salt = e->name ? (unsigned int)e->value >> 16 : 0;
	return e->name ? e->name : "?";
}

static int dps_parse_alg(struct dps_ctx *ctx, const struct dps_field *f, yaml_node_t *node,
			 void *obj)
{
	uint8_t *alg = (uint8_t *)obj + f->off;
	int v;

	if (dps_get_enum(ctx, f->names, node, &v))
		return -1;
	alg[0] = (uint8_t)v;	    /* the id */
	alg[1] = (uint8_t)(v >> 8); /* the key length it takes */
	return 0;
}

/*
 * Decode a hex key of at most @size bytes: an optional 0x, then pairs of hex
 * digits, with ':' allowed between two bytes. Messages never quote the key.
 */
static int dps_get_key(struct dps_ctx *ctx, yaml_node_t *node, uint8_t *key, size_t size,
		       size_t *len)
{
	const char *s, *p, *start;
	size_t nib = 0;
	int d;

	if (!(s = dps_want_str(ctx, node)))
		return -1;
	start = s + (s[0] == '0' && (s[1] == 'x' || s[1] == 'X') ? 2 : 0);
	for (p = start; *p; p++) {
		if (*p == ':') {
			if (p == start || p[-1] == ':' || !p[1] || nib % 2)
				return dps_err(ctx, node,
					       "':' at character %zu does not separate two bytes",
					       (size_t)(p - s) + 1);
			continue;
		}
		if ((d = dps_hexval(*p)) < 0)
			return dps_err(ctx, node, "character %zu is not a hex digit",
				       (size_t)(p - s) + 1);
		if (nib / 2 == size)
			return dps_err(ctx, node, "longer than %zu bytes", size);
		key[nib / 2] = (uint8_t)(nib % 2 ? key[nib / 2] | d : d << 4);
		nib++;
	}
	if (nib % 2)
		return dps_err(ctx, node, "odd number of hex digits (%zu)", nib);
	*len = nib / 2;
	return 0;
}

/* A key: decoded at f->off, it must have the length its algorithm (at obj) takes. */
static int dps_parse_key(struct dps_ctx *ctx, const struct dps_field *f, yaml_node_t *node,
			 void *obj)
{
	const uint8_t *alg = obj;
	unsigned int salt;
	const char *name;
	size_t len = 0;

	if (dps_get_key(ctx, node, (uint8_t *)obj + f->off, f->size, &len))
		return -1;
	if (len == alg[1])
		return 0;
	name = dps_alg_name(f->names, alg[0], alg[1], &salt);
	if (!alg[1])
		return dps_err(ctx, node, "%s takes no key, found %zu byte%s", name, len,
			       len == 1 ? "" : "s");
	if (salt)
		return dps_err(ctx, node,
			       "%s takes %u bytes (a %u-byte key, then a %u-byte salt), found %zu",
			       name, alg[1], alg[1] - salt, salt, len);
	return dps_err(ctx, node, "%s takes a %u-byte key, found %zu bytes", name, alg[1], len);
}

/* A key is required unless the algorithm takes none. */
static int dps_keyed_check(struct dps_ctx *ctx, yaml_node_t *map, void *obj)
{
	const uint8_t *alg = obj;

	if (!alg[1] || dps_map_pair(ctx, map, "key"))
		return 0;
	return dps_err_key(ctx, map, "key", "missing required key (%s takes %u bytes)",
			   dps_str(dps_map_get(ctx, map, "algorithm")), alg[1]);
}

static const struct dps_field dps_enc_fields[] = {
	{.key = "algorithm", .parse = dps_parse_alg, .names = dps_enc_algs, .required = true},
	{.key = "key", .parse = dps_parse_key, DPS_KEY_AT(enc_alg, enc_key), .names = dps_enc_algs},
	{0},
};

DPS_SCHEMA(dps_enc_schema, dps_enc_fields, dps_keyed_check);

static const struct dps_field dps_auth_fields[] = {
	{.key = "algorithm", .parse = dps_parse_alg, .names = dps_auth_algs, .required = true},
	{.key = "key",
	 .parse = dps_parse_key,
	 DPS_KEY_AT(auth_alg, auth_key),
	 .names = dps_auth_algs},
	{0},
};

DPS_SCHEMA(dps_auth_schema, dps_auth_fields, dps_keyed_check);

/* ---- IPsec: security associations ------------------------------------------ */

static const struct dps_enum dps_sa_dirs[] = {
	{"in", DPS_DIR_IN},
	{"out", DPS_DIR_OUT},
	{NULL, 0},
};

static const struct dps_enum dps_encap_types[] = {{"udp", true}, {NULL, 0}};

static const struct dps_field dps_encap_fields[] = {
	{.key = "type",
	 .parse = dps_parse_enum,
	 DPS_AT(struct dps_sa, udp_encap),
	 .names = dps_encap_types,
	 .required = true},
	{.key = "sport",
	 .parse = dps_parse_uint,
	 DPS_AT(struct dps_sa, encap_sport),
	 .min = 1,
	 .max = 65535},
	{.key = "dport",
	 .parse = dps_parse_uint,
	 DPS_AT(struct dps_sa, encap_dport),
	 .min = 1,
	 .max = 65535},
	{0},
};

DPS_SCHEMA(dps_encap_schema, dps_encap_fields, NULL);

static const struct dps_field dps_lifetime_fields[] = {
	{.key = "bytes",
	 .parse = dps_parse_uint,
	 DPS_AT(struct dps_lifetime, bytes),
	 .max = UINT64_MAX},
	{.key = "packets",
	 .parse = dps_parse_uint,
	 DPS_AT(struct dps_lifetime, packets),
	 .max = UINT64_MAX},
	{.key = "add_s",
	 .parse = dps_parse_uint,
	 DPS_AT(struct dps_lifetime, add_s),
	 .max = UINT64_MAX},
	{.key = "use_s",
	 .parse = dps_parse_uint,
	 DPS_AT(struct dps_lifetime, use_s),
	 .max = UINT64_MAX},
	{0},
};

DPS_SCHEMA(dps_lifetime_schema, dps_lifetime_fields, NULL);

/* A soft limit is reached first: each must be at most its hard one (0 is no limit). */
static int dps_lifetimes_check(struct dps_ctx *ctx, yaml_node_t *map, void *obj)
{
	const struct dps_sa *sa = obj;
	const struct dps_field *f;
	size_t old;

	for (f = dps_lifetime_fields; f->key; f++) {
		uint64_t soft = *(const uint64_t *)((const char *)&sa->soft + f->off);
		uint64_t hard = *(const uint64_t *)((const char *)&sa->hard + f->off);

		if (soft && hard && soft > hard) {
			old = dps_push_key(ctx, "soft", 4);
			dps_err_key(ctx, dps_map_get(ctx, map, "soft"), f->key,
				    "%" PRIu64 " is above the hard limit %" PRIu64, soft, hard);
			dps_pop(ctx, old);
			return -1;
		}
	}
	return 0;
}

static const struct dps_field dps_lifetimes_fields[] = {
	{.key = "soft",
	 .parse = dps_parse_map,
	 .off = offsetof(struct dps_sa, soft),
	 .map = &dps_lifetime_schema},
	{.key = "hard",
	 .parse = dps_parse_map,
	 .off = offsetof(struct dps_sa, hard),
	 .map = &dps_lifetime_schema},
	{0},
};

DPS_SCHEMA(dps_lifetimes_schema, dps_lifetimes_fields, dps_lifetimes_check);

static const struct dps_rule dps_sa_proto_rules[] = {
	{DPS_PROTO_ESP, "encryption", true, "ESP needs an encryption algorithm, null for none"},
	{DPS_PROTO_AH, "encryption", false, "AH does not encrypt"},
	{DPS_PROTO_AH, "integrity", true, "AH needs an integrity algorithm"},
	{DPS_PROTO_AH, "encap", false, "UDP encapsulation (RFC 3948) is for ESP only"},
	{DPS_PROTO_IPCOMP, "encryption", false, "IPComp SAs have no keys"},
	{DPS_PROTO_IPCOMP, "integrity", false, "IPComp SAs have no keys"},
	{DPS_PROTO_IPCOMP, "encap", false, "UDP encapsulation (RFC 3948) is for ESP only"},
	{DPS_PROTO_IPCOMP, "replay_window", false, "IPComp has no sequence numbers"},
	{DPS_PROTO_IPCOMP, "esn", false, "IPComp has no sequence numbers"},
	{0, NULL, false, NULL},
};

static const struct dps_rule dps_sa_mode_rules[] = {
	{DPS_MODE_TRANSPORT, "ttl", false, "transport mode adds no outer header"},
	{DPS_MODE_TRANSPORT, "dfbit", false, "transport mode adds no outer header"},
	{0, NULL, false, NULL},
};

/* Combined-mode ciphers authenticate by themselves: the others need integrity in ESP. */
static bool dps_enc_is_aead(unsigned int alg)
{
	return alg == DPS_ENC_AES_GCM || alg == DPS_ENC_AES_GMAC ||
	       alg == DPS_ENC_CHACHA20_POLY1305;
}

static int dps_sa_check_algs(struct dps_ctx *ctx, yaml_node_t *map, const struct dps_sa *sa)
{
	const char *enc = dps_alg_name(dps_enc_algs, sa->enc_alg, sa->enc_key_len, NULL);

	if (sa->proto == DPS_PROTO_AH && sa->auth_alg == DPS_AUTH_NONE)
		return dps_err_sub(ctx, map, "integrity", "algorithm", "AH needs one, not none");
	if (sa->proto == DPS_PROTO_ESP && sa->auth_alg == DPS_AUTH_AES_GMAC)
		return dps_err_sub(ctx, map, "integrity", "algorithm",
				   "AES-GMAC integrity is for AH; ESP takes encryption aes-gmac-*");
	if (sa->proto != DPS_PROTO_ESP)
		return 0;
	if (dps_enc_is_aead(sa->enc_alg))
		return sa->auth_alg == DPS_AUTH_NONE
			       ? 0
			       : dps_err_at_key(ctx, map, "integrity",
						"not allowed: %s authenticates by itself", enc);
	if (sa->auth_alg != DPS_AUTH_NONE)
		return 0;
	if (dps_map_pair(ctx, map, "integrity"))
		return dps_err_sub(ctx, map, "integrity", "algorithm",
				   "ESP with %s needs one, not none", enc);
	return dps_err_key(ctx, map, "integrity", "missing required key (ESP with %s needs one)",
			   enc);
}

static int dps_sa_check_unique(struct dps_ctx *ctx, yaml_node_t *map, const struct dps_sa *sa)
{
	const struct dps_config *cfg = ctx->cfg;
	char buf[INET6_ADDRSTRLEN];
	unsigned int i;

	/* An inbound packet finds its SA by (SPI, destination, protocol). */
	for (i = 0; i < cfg->n_sas; i++) {
		const struct dps_sa *o = &cfg->sas[i];

		if (o->spi == sa->spi && o->proto == sa->proto && dps_addr_eq(&o->dst, &sa->dst))
			return dps_err_key(ctx, map, "spi",
					   "0x%" PRIx32 " is already the SPI of sas[%u] (%s to %s)",
					   sa->spi, i, dps_enum_name(dps_ipsec_protos, sa->proto),
					   dps_addr_str(&sa->dst, buf, sizeof(buf)));
	}
	return 0;
}

static int dps_sa_check(struct dps_ctx *ctx, yaml_node_t *map, void *obj)
{
	struct dps_sa *sa = obj;

	if (dps_check_endpoints(ctx, map, &sa->src, &sa->dst) ||
	    dps_check_rules(ctx, map, dps_sa_proto_rules, sa->proto) ||
	    dps_check_rules(ctx, map, dps_sa_mode_rules, sa->mode) ||
	    dps_sa_check_algs(ctx, map, sa))
		return -1;
	if (sa->proto == DPS_PROTO_IPCOMP && sa->spi > 0xffff)
		return dps_err_key(ctx, map, "spi",
				   "0x%" PRIx32 " is not an IPComp CPI (16 bits, RFC 3173): "
				   "0x100..0xffff",
				   sa->spi);
	/* Defaults from the ipsec section, which precedes sas. */
	if (!dps_map_pair(ctx, map, "replay_window"))
		sa->replay_window =
			sa->proto == DPS_PROTO_IPCOMP ? 0 : ctx->cfg->ipsec.replay_window;
	if (!dps_map_pair(ctx, map, "dfbit"))
		sa->dfbit = ctx->cfg->ipsec.dfbit;
	if (!sa->udp_encap)
		sa->encap_sport = sa->encap_dport = 0;
	if (dps_sa_check_unique(ctx, map, sa))
		return -1;
	if (!dps_proto_enabled(&ctx->cfg->ipsec, sa->proto))
		return dps_err_key(ctx, map, "proto", "%s is disabled (ipsec.%s_enable: false)",
				   dps_enum_name(dps_ipsec_protos, sa->proto),
				   dps_enum_name(dps_ipsec_protos, sa->proto));
	return 0;
}

static void dps_sa_init(void *elem)
{
	struct dps_sa *sa = elem;

	sa->proto = DPS_PROTO_ESP;
	sa->mode = DPS_MODE_TUNNEL;
	sa->ttl = 64;
	sa->encap_sport = 4500;
	sa->encap_dport = 4500;
}

static const struct dps_field dps_sa_fields[] = {
	{.key = "spi",
	 .parse = dps_parse_xuint,
	 DPS_AT(struct dps_sa, spi),
	 .min = 256, /* RFC 4303: 1..255 are reserved */
	 .max = UINT32_MAX,
	 .required = true},
	{.key = "direction",
	 .parse = dps_parse_enum,
	 DPS_AT(struct dps_sa, dir),
	 .names = dps_sa_dirs,
	 .required = true},
	{.key = "proto",
	 .parse = dps_parse_enum,
	 DPS_AT(struct dps_sa, proto),
	 .names = dps_ipsec_protos},
	{.key = "mode", .parse = dps_parse_enum, DPS_AT(struct dps_sa, mode), .names = dps_modes},
	{.key = "src", .parse = dps_parse_addr, DPS_AT(struct dps_sa, src), .required = true},
	{.key = "dst", .parse = dps_parse_addr, DPS_AT(struct dps_sa, dst), .required = true},
	{.key = "reqid", .parse = dps_parse_xuint, DPS_AT(struct dps_sa, reqid), .max = UINT32_MAX},
	{.key = "encryption",
	 .parse = dps_parse_map,
	 .off = offsetof(struct dps_sa, enc_alg),
	 .map = &dps_enc_schema},
	{.key = "integrity",
	 .parse = dps_parse_map,
	 .off = offsetof(struct dps_sa, auth_alg),
	 .map = &dps_auth_schema},
	{.key = "replay_window",
	 .parse = dps_parse_window,
	 DPS_AT(struct dps_sa, replay_window),
	 .min = 32,
	 .max = 65536},
	{.key = "esn", .parse = dps_parse_bool, DPS_AT(struct dps_sa, esn)},
	{.key = "encap", .parse = dps_parse_map, .map = &dps_encap_schema},
	{.key = "ttl", .parse = dps_parse_uint, DPS_AT(struct dps_sa, ttl), .min = 1, .max = 255},
	{.key = "dfbit",
	 .parse = dps_parse_enum,
	 DPS_AT(struct dps_sa, dfbit),
	 .names = dps_dfbits},
	{.key = "lifetime", .parse = dps_parse_map, .map = &dps_lifetimes_schema},
	{0},
};

DPS_SCHEMA(dps_sa_schema, dps_sa_fields, dps_sa_check);

/* One SA. On failure its keys are wiped before the array is freed. */
static int dps_parse_sa(struct dps_ctx *ctx, const struct dps_field *f, yaml_node_t *node,
			void *obj)
{
	if (!dps_parse_map(ctx, f, node, obj))
		return 0;
	explicit_bzero(obj, sizeof(struct dps_sa));
	return -1;
}

const struct dps_seq dps_sas_seq = {
	.count_off = offsetof(struct dps_config, n_sas),
	.array_off = offsetof(struct dps_config, sas),
	.alloc = true,
	.init = dps_sa_init,
	.elem = {.parse = dps_parse_sa, .size = sizeof(struct dps_sa), .map = &dps_sa_schema},
};

/* ---- IPsec: security policies ---------------------------------------------- */

#define DPS_SEL_ANY 255 /* dps_selector.proto matching every protocol */

_Static_assert(offsetof(struct dps_selector, sport_hi) ==
			       offsetof(struct dps_selector, sport_lo) + sizeof(uint16_t) &&
		       offsetof(struct dps_selector, dport_hi) ==
			       offsetof(struct dps_selector, dport_lo) + sizeof(uint16_t),
	       "dps_parse_range() stores ranges as two consecutive uint16_t");

static const struct dps_enum dps_policy_dirs[] = {
	{"in", DPS_DIR_IN},
	{"out", DPS_DIR_OUT},
	{"fwd", DPS_DIR_FWD},
	{NULL, 0},
};

static const struct dps_enum dps_families[] = {
	{"ipv4", AF_INET},
	{"ipv6", AF_INET6},
	{NULL, 0},
};

static const struct dps_enum dps_ip_protos[] = {
	{"any", DPS_SEL_ANY},
	{"tcp", IPPROTO_TCP},
	{"udp", IPPROTO_UDP},
	{"icmp", IPPROTO_ICMP},
	{"icmpv6", IPPROTO_ICMPV6},
	{"sctp", IPPROTO_SCTP},
	{NULL, 0},
};

static const struct dps_enum dps_actions[] = {
	{"discard", DPS_ACTION_DISCARD},
	{"bypass", DPS_ACTION_BYPASS},
	{"protect", DPS_ACTION_PROTECT},
	{NULL, 0},
};

static const struct dps_enum dps_levels[] = {
	{"default", DPS_LEVEL_DEFAULT},
	{"use", DPS_LEVEL_USE},
	{"require", DPS_LEVEL_REQUIRE},
	{"unique", DPS_LEVEL_UNIQUE},
	{NULL, 0},
};

/* A selector's upper-layer protocol: a name or a number. */
static int dps_parse_ipproto(struct dps_ctx *ctx, const struct dps_field *f, yaml_node_t *node,
			     void *obj)
{
	const struct dps_enum *e;
	unsigned long long v;
	const char *s;
	char list[128];

	if (!(s = dps_want_str(ctx, node)))
		return -1;
	if (*s >= '0' && *s <= '9') {
		if (dps_get_uint(ctx, node, 0, f->max, &v))
			return -1;
	} else if ((e = dps_enum_find(f->names, node))) {
		v = (unsigned int)e->value;
	} else {
		return dps_err(ctx, node, "%s is neither a protocol number 0..%llu nor one of: %s",
			       DPS_Q(node), f->max, dps_enum_list(f->names, list, sizeof(list)));
	}
	dps_store_uint((char *)obj + f->off, f->size, v);
	return 0;
}

/* dst: parsed after src, whose family it must have. */
static int dps_parse_sel_dst(struct dps_ctx *ctx, const struct dps_field *f, yaml_node_t *node,
			     void *obj)
{
	const struct dps_selector *sel = &((const struct dps_policy *)obj)->sel;

	if (dps_parse_net(ctx, f, node, obj))
		return -1;
	if (sel->src.addr.family && sel->src.addr.family != sel->dst.addr.family)
		return dps_err(ctx, node, "%s is not of src's family", DPS_Q(node));
	return 0;
}

/* family: parsed after src and dst, which it must match; "any" for those not given. */
static int dps_parse_family(struct dps_ctx *ctx, const struct dps_field *f, yaml_node_t *node,
			    void *obj)
{
	struct dps_selector *sel = &((struct dps_policy *)obj)->sel;
	struct dps_prefix *p[2] = {&sel->src, &sel->dst};
	static const char *const which[2] = {"src", "dst"};
	int fam;
	size_t i;

	if (dps_get_enum(ctx, f->names, node, &fam))
		return -1;
	for (i = 0; i < 2; i++) {
		if (p[i]->addr.family && p[i]->addr.family != fam)
			return dps_err(ctx, node, "%s does not match %s, an %s prefix", DPS_Q(node),
				       which[i], fam == AF_INET ? "IPv6" : "IPv4");
		p[i]->addr.family = (uint8_t)fam;
	}
	return 0;
}

static bool dps_proto_has_ports(unsigned int proto)
{
	return proto == IPPROTO_TCP || proto == IPPROTO_UDP || proto == IPPROTO_SCTP;
}

static bool dps_proto_is_icmp(unsigned int proto)
{
	return proto == IPPROTO_ICMP || proto == IPPROTO_ICMPV6;
}

/* Selector keys that only some protocols have. */
static const struct {
	const char *key;
	bool (*ok)(unsigned int proto);
	const char *why;
} dps_sel_proto_keys[] = {
	{"sport", dps_proto_has_ports, "ports need proto tcp, udp or sctp"},
	{"dport", dps_proto_has_ports, "ports need proto tcp, udp or sctp"},
	{"icmp_type", dps_proto_is_icmp, "needs proto icmp or icmpv6"},
	{"icmp_code", dps_proto_is_icmp, "needs proto icmp or icmpv6"},
};

static int dps_sel_check(struct dps_ctx *ctx, yaml_node_t *map, struct dps_selector *sel)
{
	uint8_t *fsrc = &sel->src.addr.family, *fdst = &sel->dst.addr.family;
	size_t i;

	if (!*fsrc && !*fdst)
		return dps_err_key(ctx, map, "family",
				   "missing required key (no src or dst to take it from)");
	*fsrc = *fsrc ? *fsrc : *fdst;
	*fdst = *fdst ? *fdst : *fsrc;
	if (sel->proto == (*fsrc == AF_INET ? IPPROTO_ICMPV6 : IPPROTO_ICMP))
		return dps_err_key(ctx, map, "proto", "%s is not the ICMP of %s: use %s",
				   *fsrc == AF_INET ? "ICMPv6" : "ICMP (IPv4)",
				   *fsrc == AF_INET ? "IPv4" : "IPv6",
				   *fsrc == AF_INET ? "icmp" : "icmpv6");
	for (i = 0; i < sizeof(dps_sel_proto_keys) / sizeof(dps_sel_proto_keys[0]); i++)
		if (!dps_sel_proto_keys[i].ok(sel->proto) &&
		    dps_map_pair(ctx, map, dps_sel_proto_keys[i].key))
			return dps_err_at_key(ctx, map, dps_sel_proto_keys[i].key,
					      "not allowed: %s", dps_sel_proto_keys[i].why);
	/* ICMP types and codes fit a byte. */
	if (dps_proto_is_icmp(sel->proto) && !dps_map_pair(ctx, map, "icmp_type"))
		sel->sport_hi = 255;
	if (dps_proto_is_icmp(sel->proto) && !dps_map_pair(ctx, map, "icmp_code"))
		sel->dport_hi = 255;
	return 0;
}

static bool dps_prefix_eq(const struct dps_prefix *a, const struct dps_prefix *b)
{
	return a->len == b->len && dps_addr_eq(&a->addr, &b->addr);
}

static bool dps_sel_eq(const struct dps_selector *a, const struct dps_selector *b)
{
	return dps_prefix_eq(&a->src, &b->src) && dps_prefix_eq(&a->dst, &b->dst) &&
	       a->proto == b->proto && a->sport_lo == b->sport_lo && a->sport_hi == b->sport_hi &&
	       a->dport_lo == b->dport_lo && a->dport_hi == b->dport_hi;
}

static const struct dps_rule dps_policy_action_rules[] = {
	{DPS_ACTION_PROTECT, "ipsec", true, "protect needs the transforms to apply"},
	{DPS_ACTION_DISCARD, "ipsec", false, "only protect applies IPsec"},
	{DPS_ACTION_BYPASS, "ipsec", false, "only protect applies IPsec"},
	{0, NULL, false, NULL},
};

static int dps_policy_check(struct dps_ctx *ctx, yaml_node_t *map, void *obj)
{
	const struct dps_config *cfg = ctx->cfg;
	struct dps_policy *pol = obj;
	unsigned int i;

	if (dps_sel_check(ctx, map, &pol->sel) ||
	    dps_check_rules(ctx, map, dps_policy_action_rules, pol->action))
		return -1;
	for (i = 0; i < cfg->n_policies; i++) {
		const struct dps_policy *o = &cfg->policies[i];

		/* The SPD holds one policy per direction and selector, as Linux's does
		 * (PF_KEY finds policies by them), whatever their priorities. */
		if (o->dir == pol->dir && dps_sel_eq(&o->sel, &pol->sel))
			return dps_err(ctx, map, "same direction and selector as policies[%u]", i);
	}
	return 0;
}

static int dps_tunnel_check(struct dps_ctx *ctx, yaml_node_t *map, void *obj)
{
	const struct dps_ipsec_req *r = obj;

	return dps_check_endpoints(ctx, map, &r->tun_src, &r->tun_dst);
}

static const struct dps_field dps_tunnel_fields[] = {
	{.key = "src",
	 .parse = dps_parse_addr,
	 DPS_AT(struct dps_ipsec_req, tun_src),
	 .required = true},
	{.key = "dst",
	 .parse = dps_parse_addr,
	 DPS_AT(struct dps_ipsec_req, tun_dst),
	 .required = true},
	{0},
};

DPS_SCHEMA(dps_tunnel_schema, dps_tunnel_fields, dps_tunnel_check);

static const struct dps_rule dps_req_mode_rules[] = {
	{DPS_MODE_TUNNEL, "tunnel", true, "tunnel mode needs the outer src and dst"},
	{DPS_MODE_TRANSPORT, "tunnel", false, "transport mode has no outer header"},
	{0, NULL, false, NULL},
};

static int dps_req_check(struct dps_ctx *ctx, yaml_node_t *map, void *obj)
{
	const struct dps_ipsec_req *r = obj;

	/* unique binds the policy to the SA with its reqid (setkey "unique:N") */
	if (r->level == DPS_LEVEL_UNIQUE && r->reqid == 0)
		return dps_err_key(ctx, map, "level",
				   "unique needs a reqid: the SA it binds this policy to");
	return dps_check_rules(ctx, map, dps_req_mode_rules, r->mode);
}

static const struct dps_field dps_req_fields[] = {
	{.key = "proto",
	 .parse = dps_parse_enum,
	 DPS_AT(struct dps_ipsec_req, proto),
	 .names = dps_ipsec_protos,
	 .required = true},
	{.key = "mode",
	 .parse = dps_parse_enum,
	 DPS_AT(struct dps_ipsec_req, mode),
	 .names = dps_modes},
	{.key = "level",
	 .parse = dps_parse_enum,
	 DPS_AT(struct dps_ipsec_req, level),
	 .names = dps_levels},
	{.key = "reqid",
	 .parse = dps_parse_xuint,
	 DPS_AT(struct dps_ipsec_req, reqid),
	 .max = UINT32_MAX},
	{.key = "tunnel", .parse = dps_parse_map, .map = &dps_tunnel_schema},
	{0},
};

DPS_SCHEMA(dps_req_schema, dps_req_fields, dps_req_check);

static void dps_req_init(void *elem)
{
	((struct dps_ipsec_req *)elem)->mode = DPS_MODE_TUNNEL;
}

/* One transform per protocol: they nest, IPComp innermost, as listed. */
static int dps_reqs_check(struct dps_ctx *ctx, yaml_node_t *seq, void *obj)
{
	const struct dps_policy *pol = obj;
	unsigned int i, j;
	size_t old;

	for (i = 0; i < pol->n_reqs; i++) {
		for (j = 0; j < i; j++) {
			if (pol->reqs[i].proto != pol->reqs[j].proto)
				continue;
			old = dps_push_index(ctx, i);
			dps_err_key(ctx, dps_seq_item(ctx, seq, i), "proto",
				    "%s is already requested by ipsec[%u]",
				    dps_enum_name(dps_ipsec_protos, pol->reqs[i].proto), j);
			dps_pop(ctx, old);
			return -1;
		}
	}
	return 0;
}

static const struct dps_seq dps_reqs_seq = {
	.count_off = offsetof(struct dps_policy, n_reqs),
	.array_off = offsetof(struct dps_policy, reqs),
	.min = 1,
	.max = DPS_MAX_IPSEC_REQS,
	.init = dps_req_init,
	.elem = {.parse = dps_parse_map,
		 .size = sizeof(struct dps_ipsec_req),
		 .map = &dps_req_schema},
	.check = dps_reqs_check,
};

/* Order matters: dst checks src's family, family checks both. */
static const struct dps_field dps_policy_fields[] = {
	{.key = "direction",
	 .parse = dps_parse_enum,
	 DPS_AT(struct dps_policy, dir),
	 .names = dps_policy_dirs,
	 .required = true},
	{.key = "priority",
	 .parse = dps_parse_uint,
	 DPS_AT(struct dps_policy, priority),
	 .max = UINT32_MAX},
	{.key = "src", .parse = dps_parse_net, DPS_AT(struct dps_policy, sel.src)},
	{.key = "dst", .parse = dps_parse_sel_dst, DPS_AT(struct dps_policy, sel.dst)},
	{.key = "family", .parse = dps_parse_family, .names = dps_families},
	{.key = "proto",
	 .parse = dps_parse_ipproto,
	 DPS_AT(struct dps_policy, sel.proto),
	 .max = 254,
	 .names = dps_ip_protos},
	{.key = "sport",
	 .parse = dps_parse_range,
	 DPS_AT(struct dps_policy, sel.sport_lo),
	 .min = 1,
	 .max = 65535},
	{.key = "dport",
	 .parse = dps_parse_range,
	 DPS_AT(struct dps_policy, sel.dport_lo),
	 .min = 1,
	 .max = 65535},
	{.key = "icmp_type",
	 .parse = dps_parse_range,
	 DPS_AT(struct dps_policy, sel.sport_lo),
	 .max = 255},
	{.key = "icmp_code",
	 .parse = dps_parse_range,
	 DPS_AT(struct dps_policy, sel.dport_lo),
	 .max = 255},
	{.key = "action",
	 .parse = dps_parse_enum,
	 DPS_AT(struct dps_policy, action),
	 .names = dps_actions,
	 .required = true},
	{.key = "ipsec", .parse = dps_parse_seq, .seq = &dps_reqs_seq},
	{0},
};

DPS_SCHEMA(dps_policy_schema, dps_policy_fields, dps_policy_check);

static void dps_policy_init(void *elem)
{
	struct dps_policy *pol = elem;

	pol->sel.proto = DPS_SEL_ANY;
	pol->sel.sport_hi = 65535;
	pol->sel.dport_hi = 65535;
}

const struct dps_seq dps_policies_seq = {
	.count_off = offsetof(struct dps_config, n_policies),
	.array_off = offsetof(struct dps_config, policies),
	.alloc = true,
	.init = dps_policy_init,
	.elem = {.parse = dps_parse_map,
		 .size = sizeof(struct dps_policy),
		 .map = &dps_policy_schema},
};
