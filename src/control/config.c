// SPDX-License-Identifier: BSD-3-Clause
/*
 * dpsec.yaml loader.
 *
 * The document is loaded whole with yaml_parser_load() so that every node
 * keeps its position, then walked against static schema tables: one row per
 * key, naming its parser, where the value goes and its limits. A new section
 * is a new table plus one row pointing at it.
 *
 * The rows of a mapping are handled in table order, not document order, so a
 * row may rely on every row above it: workers, routes and neighbours resolve
 * port names because "ports" precedes them in the top-level table, and SAs
 * take their defaults from "ipsec". Once its rows are done, a mapping's check
 * function applies the rules that involve several keys; the IPsec sections
 * keep theirs as tables of struct dps_rule where they can.
 *
 * SA keys are secrets: messages never quote them, and they are wiped before
 * their memory is freed.
 *
 * The walk stops at the first error, so the caller gets exactly one message,
 * "NAME:LINE:COL: KEY: reason".
 *
 * This file holds the top-level table, the defaults and the entry points;
 * the engine (errors, generic parsers, the walk) is yaml.c, the gateway
 * sections (eal, dataplane, ports, workers, routes, neighbours) are in
 * config_gateway.c, the IPsec sections (crypto, ipsec, sas, policies) in
 * config_ipsec.c, and config_schema.h has the types and handlers they share.
 */
#include "control/config.h"
#include "control/config_schema.h"
#include "control/wipe.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <yaml.h>

#define DPS_MAX_FILE (16 << 20) /* no sane configuration is bigger */

/* ---- top level ------------------------------------------------------------ */

/* Each SA takes a crypto session: a configuration with more SAs than sessions cannot start. */
static int dps_sessions_check(struct dps_ctx *ctx, yaml_node_t *map)
{
	const struct dps_config *cfg = ctx->cfg;
	yaml_node_t *crypto = dps_map_get(ctx, map, "crypto");
	yaml_node_t *at = crypto ? dps_map_get(ctx, crypto, "sessions") : NULL;
	size_t old;

	if (cfg->n_sas <= cfg->crypto.sessions)
		return 0;
	old = dps_push_key(ctx, "crypto.sessions", 15);
	dps_err(ctx, at ? at : dps_map_get(ctx, map, "sas"),
		"%u SAs need as many crypto sessions, more than crypto.sessions (%u): raise "
		"crypto.sessions",
		cfg->n_sas, cfg->crypto.sessions);
	dps_pop(ctx, old);
	return -1;
}

static int dps_top_check(struct dps_ctx *ctx, yaml_node_t *map, void *obj)
{
	struct dps_config *cfg = obj;

	if (dps_sessions_check(ctx, map) < 0)
		return -1;
	return cfg->n_workers ? 0 : dps_default_worker(ctx);
}

static const char *dps_valid_socket(const char *s)
{
	return s[0] == '/' ? NULL : "must be an absolute path";
}

static const struct dps_field dps_pfkey_fields[] = {
	{.key = "enabled", .parse = dps_parse_bool, DPS_AT(struct dps_pfkey_cfg, enabled)},
	{.key = "socket",
	 .parse = dps_parse_str,
	 DPS_AT(struct dps_pfkey_cfg, socket),
	 .min = 2,
	 .valid = dps_valid_socket},
	{.key = "group", .parse = dps_parse_str, DPS_AT(struct dps_pfkey_cfg, group)},
	{.key = "state", .parse = dps_parse_str, DPS_AT(struct dps_pfkey_cfg, state)},
	{.key = "acquire_retry_s",
	 .parse = dps_parse_uint,
	 DPS_AT(struct dps_pfkey_cfg, acquire_retry_s),
	 .min = 1,
	 .max = 3600},
	{.key = "acquire_rate",
	 .parse = dps_parse_uint,
	 DPS_AT(struct dps_pfkey_cfg, acquire_rate),
	 .min = 1,
	 .max = 100000},
	{.key = "larval_s",
	 .parse = dps_parse_uint,
	 DPS_AT(struct dps_pfkey_cfg, larval_s),
	 .min = 1,
	 .max = 3600},
	{0},
};

DPS_SCHEMA(dps_pfkey_schema, dps_pfkey_fields, NULL);

static const struct dps_field dps_debug_fields[] = {
	{.key = "pfkey",
	 .parse = dps_parse_enum,
	 DPS_AT(struct dps_debug_cfg, pfkey),
	 .names = dps_log_levels},
	{.key = "store",
	 .parse = dps_parse_enum,
	 DPS_AT(struct dps_debug_cfg, store),
	 .names = dps_log_levels},
	{.key = "dataplane",
	 .parse = dps_parse_enum,
	 DPS_AT(struct dps_debug_cfg, dataplane),
	 .names = dps_log_levels},
	{0},
};

DPS_SCHEMA(dps_debug_schema, dps_debug_fields, NULL);

static const char *dps_valid_ip(const char *s)
{
	struct in6_addr a;

	if (inet_pton(AF_INET, s, &a) == 1 || inet_pton(AF_INET6, s, &a) == 1)
		return NULL;
	return "must be a numeric IPv4 or IPv6 address";
}

static const struct dps_field dps_metrics_fields[] = {
	{.key = "enabled", .parse = dps_parse_bool, DPS_AT(struct dps_metrics_cfg, enabled)},
	{.key = "address",
	 .parse = dps_parse_str,
	 DPS_AT(struct dps_metrics_cfg, address),
	 .valid = dps_valid_ip},
	{.key = "port",
	 .parse = dps_parse_uint,
	 DPS_AT(struct dps_metrics_cfg, port),
	 .min = 1,
	 .max = 65535},
	{0},
};

DPS_SCHEMA(dps_metrics_schema, dps_metrics_fields, NULL);

/* Order matters: see the top of this file. */
static const struct dps_field dps_top_fields[] = {
	{.key = "eal",
	 .parse = dps_parse_map,
	 .off = offsetof(struct dps_config, eal),
	 .map = &dps_eal_schema},
	{.key = "log_level",
	 .parse = dps_parse_enum,
	 DPS_AT(struct dps_config, log_level),
	 .names = dps_log_levels},
	{.key = "debug",
	 .parse = dps_parse_map,
	 .off = offsetof(struct dps_config, debug),
	 .map = &dps_debug_schema},
	{.key = "dataplane",
	 .parse = dps_parse_map,
	 .off = offsetof(struct dps_config, dataplane),
	 .map = &dps_dataplane_schema},
	{.key = "neighbour",
	 .parse = dps_parse_map,
	 .off = offsetof(struct dps_config, neigh),
	 .map = &dps_neigh_schema},
	{.key = "ports", .parse = dps_parse_seq, .seq = &dps_ports_seq, .required = true},
	{.key = "workers", .parse = dps_parse_seq, .seq = &dps_workers_seq},
	{.key = "routes", .parse = dps_parse_seq, .seq = &dps_routes_seq},
	{.key = "neighbours", .parse = dps_parse_seq, .seq = &dps_neighbours_seq},
	{.key = "crypto",
	 .parse = dps_parse_map,
	 .off = offsetof(struct dps_config, crypto),
	 .map = &dps_crypto_schema},
	{.key = "compress",
	 .parse = dps_parse_map,
	 .off = offsetof(struct dps_config, compress),
	 .map = &dps_compress_schema},
	{.key = "ipsec",
	 .parse = dps_parse_map,
	 .off = offsetof(struct dps_config, ipsec),
	 .map = &dps_ipsec_schema},
	{.key = "sas", .parse = dps_parse_seq, .seq = &dps_sas_seq},
	{.key = "policies", .parse = dps_parse_seq, .seq = &dps_policies_seq},
	{.key = "pfkey",
	 .parse = dps_parse_map,
	 .off = offsetof(struct dps_config, pfkey),
	 .map = &dps_pfkey_schema},
	{.key = "metrics",
	 .parse = dps_parse_map,
	 .off = offsetof(struct dps_config, metrics),
	 .map = &dps_metrics_schema},
	{0},
};

DPS_SCHEMA(dps_top_schema, dps_top_fields, dps_top_check);

/* ---- entry points --------------------------------------------------------- */

void dps_config_defaults(struct dps_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	dps_strlcpy(cfg->eal.lcores, "0-1", sizeof(cfg->eal.lcores));
	cfg->eal.main_lcore = 0;
	cfg->eal.hugepages = true;
	dps_strlcpy(cfg->eal.file_prefix, "dpsec", sizeof(cfg->eal.file_prefix));
	cfg->log_level = DPS_LOG_INFO;
	cfg->dataplane.mbufs = 16383;
	cfg->dataplane.burst = 32;
	cfg->dataplane.idle_backoff = true;
	cfg->dataplane.idle_polls = 64;
	cfg->dataplane.idle_sleep_us = 100;
	cfg->dataplane.icmp_rate = 100;
	cfg->dataplane.icmp_burst = 50;
	cfg->dataplane.reasm.max_flows = 4096;
	cfg->dataplane.reasm.timeout_ms = 2000;
	cfg->neigh.reachable_ms = 30000;
	cfg->neigh.retrans_ms = 1000;
	cfg->neigh.probes = 3;
	cfg->neigh.queue_len = 16;
	cfg->neigh.max_entries = 4096;
	cfg->crypto.n_devices = 2;
	dps_strlcpy(cfg->crypto.devices[0], "crypto_aesni_mb", sizeof(cfg->crypto.devices[0]));
	dps_strlcpy(cfg->crypto.devices[1], "crypto_openssl", sizeof(cfg->crypto.devices[1]));
	cfg->crypto.cpu_crypto = true;
	cfg->crypto.engine = DPS_ENGINE_NATIVE;
	cfg->crypto.sessions = 262144;
	cfg->compress.n_devices = 2;
	dps_strlcpy(cfg->compress.devices[0], "compress_isal", sizeof(cfg->compress.devices[0]));
	dps_strlcpy(cfg->compress.devices[1], "compress_zlib", sizeof(cfg->compress.devices[1]));
	cfg->compress.min_size = 90;
	cfg->ipsec.def_policy4 = DPS_ACTION_BYPASS;
	cfg->ipsec.def_policy6 = DPS_ACTION_BYPASS;
	cfg->ipsec.esp_trans_deflev = DPS_LEVEL_USE;
	cfg->ipsec.esp_net_deflev = DPS_LEVEL_USE;
	cfg->ipsec.ah_trans_deflev = DPS_LEVEL_USE;
	cfg->ipsec.ah_net_deflev = DPS_LEVEL_USE;
	cfg->ipsec.dfbit = DPS_DF_COPY;
	cfg->ipsec.ecn = true;
	cfg->ipsec.esp_enable = cfg->ipsec.ah_enable = cfg->ipsec.ipcomp_enable = true;
	cfg->ipsec.ah_cleartos = true;
	cfg->ipsec.replay_window = 64;
	cfg->ipsec.policy_log_interval_ms = 1000; /* Solaris ipsec_policy_log_interval */
	cfg->pfkey.enabled = true;
	dps_strlcpy(cfg->pfkey.socket, "/run/dpsec/pfkey.sock", sizeof(cfg->pfkey.socket));
	dps_strlcpy(cfg->metrics.address, "127.0.0.1", sizeof(cfg->metrics.address));
	cfg->metrics.port = 9469;
	dps_strlcpy(cfg->pfkey.state, "/run/dpsec/pfkey.state", sizeof(cfg->pfkey.state));
	cfg->pfkey.acquire_retry_s = 30; /* Linux: XFRM_ACQ_EXPIRES */
	cfg->pfkey.acquire_rate = 100;
	cfg->pfkey.larval_s = 30;
}

void dps_config_drop_sas(struct dps_config *cfg)
{
	if (cfg->sas) /* keys */
		explicit_bzero(cfg->sas, cfg->n_sas * sizeof(*cfg->sas));
	free(cfg->sas);
	cfg->sas = NULL;
	cfg->n_sas = 0;
}

void dps_config_free(struct dps_config *cfg)
{
	if (!cfg)
		return;
	free(cfg->routes);
	cfg->routes = NULL;
	cfg->n_routes = 0;
	free(cfg->neighs);
	cfg->neighs = NULL;
	cfg->n_neighs = 0;
	dps_config_drop_sas(cfg);
	free(cfg->policies);
	cfg->policies = NULL;
	cfg->n_policies = 0;
}

/* libyaml counts reader errors in bytes only: turn the offset into a position. */
static yaml_mark_t dps_offset_mark(const char *text, size_t len, size_t off)
{
	yaml_mark_t m = {.index = off};
	size_t i;

	for (i = 0; i < off && i < len; i++) {
		if (text[i] == '\n') {
			m.line++;
			m.column = 0;
		} else {
			m.column++;
		}
	}
	return m;
}

static int dps_yaml_error(struct dps_ctx *ctx, const yaml_parser_t *parser, const char *text,
			  size_t len)
{
	yaml_mark_t mark = parser->problem_mark;
	size_t old = dps_push_key(ctx, "yaml", 4);

	if (parser->error == YAML_READER_ERROR)
		mark = dps_offset_mark(text, len, parser->problem_offset);
	if (parser->error == YAML_MEMORY_ERROR)
		dps_err_mark(ctx, &mark, "out of memory");
	else /* the context names the construct the problem was found in */
		dps_err_mark(ctx, &mark, "%s%s%s",
			     parser->problem ? parser->problem : "syntax error",
			     parser->context ? " " : "", parser->context ? parser->context : "");
	dps_pop(ctx, old);
	return -1;
}

/* Key strings (hex) are scalars of the document: wiped before libyaml frees them. */
static void dps_yaml_doc_wipe(yaml_document_t *doc)
{
	for (yaml_node_t *n = doc->nodes.start; n != NULL && n < doc->nodes.top; n++)
		if (n->type == YAML_SCALAR_NODE)
			dps_wipe(n->data.scalar.value, n->data.scalar.length);
}

/* The parser's copies of the text, likewise. */
static void dps_yaml_parser_wipe(yaml_parser_t *parser)
{
	dps_wipe(parser->raw_buffer.start,
		 (size_t)(parser->raw_buffer.end - parser->raw_buffer.start));
	dps_wipe(parser->buffer.start, (size_t)(parser->buffer.end - parser->buffer.start));
}

/* A stream holds one configuration: a second document is most likely a mistake. */
static int dps_want_end(struct dps_ctx *ctx, yaml_parser_t *parser, const char *text, size_t len)
{
	yaml_document_t next;
	yaml_node_t *root;
	int rc = 0;

	if (!yaml_parser_load(parser, &next))
		return dps_yaml_error(ctx, parser, text, len);
	root = yaml_document_get_root_node(&next);
	if (root) {
		size_t old = dps_push_key(ctx, "yaml", 4);

		rc = dps_err_mark(ctx, &next.start_mark, "only one document is allowed");
		dps_pop(ctx, old);
	}
	dps_yaml_doc_wipe(&next);
	yaml_document_delete(&next);
	return rc;
}

static int dps_parse_doc(struct dps_ctx *ctx, yaml_parser_t *parser, const char *text, size_t len)
{
	yaml_document_t doc;
	int rc;

	if (!yaml_parser_load(parser, &doc))
		return dps_yaml_error(ctx, parser, text, len);
	ctx->doc = &doc;
	ctx->root = yaml_document_get_root_node(&doc);
	if (!ctx->root)
		rc = dps_err_mark(ctx, &doc.start_mark, "empty document");
	else
		rc = dps_walk_map(ctx, &dps_top_schema, ctx->root, ctx->cfg);
	if (!rc)
		rc = dps_want_end(ctx, parser, text, len);
	ctx->doc = NULL;
	ctx->root = NULL;
	dps_yaml_doc_wipe(&doc);
	yaml_document_delete(&doc);
	return rc;
}

static int dps_config_parse_as(const char *text, size_t len, const char *name,
			       struct dps_config *cfg, bool runnable, char *err, size_t errlen)
{
	struct dps_config tmp;
	struct dps_ctx ctx = {
		.cfg = &tmp,
		.name = name ? name : "<config>",
		.err = err,
		.errlen = errlen,
		.runnable = runnable,
	};
	yaml_parser_t parser;
	int rc;

	if (err && errlen)
		err[0] = '\0';
	/* Built aside and copied out whole, so a failure leaves no partial state. */
	dps_config_defaults(&tmp);
	dps_strlcpy(tmp.path, ctx.name, sizeof(tmp.path));
	dps_lcores_set(tmp.eal.lcores, ctx.lcores);
	if (!yaml_parser_initialize(&parser)) {
		yaml_mark_t m = {0};

		rc = dps_err_mark(&ctx, &m, "out of memory");
	} else {
		yaml_parser_set_input_string(&parser, (const unsigned char *)(text ? text : ""),
					     text ? len : 0);
		rc = dps_parse_doc(&ctx, &parser, text ? text : "", text ? len : 0);
		dps_yaml_parser_wipe(&parser);
		yaml_parser_delete(&parser);
	}
	if (rc) {
		dps_config_free(&tmp);
		dps_config_defaults(cfg);
		return -1;
	}
	*cfg = tmp;
	return 0;
}

int dps_config_parse(const char *text, size_t len, const char *name, struct dps_config *cfg,
		     char *err, size_t errlen)
{
	return dps_config_parse_as(text, len, name, cfg, false, err, errlen);
}

static int dps_read_file(const char *path, char **text, size_t *len)
{
	size_t cap = 4096, n = 0;
	char *buf = NULL, *nb;
	ssize_t r;
	int fd, e;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	for (;;) {
		if (!buf || n == cap) {
			if (buf)
				cap *= 2;
			if (cap > DPS_MAX_FILE) {
				errno = EFBIG;
				goto fail;
			}
			/* the text may hold keys: no copy left in freed memory */
			if (!(nb = dps_realloc_wiped(buf, buf ? cap / 2 : 0, cap)))
				goto fail;
			buf = nb;
		}
		r = read(fd, buf + n, cap - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			goto fail;
		if (!r)
			break;
		n += (size_t)r;
	}
	close(fd);
	*text = buf;
	*len = n;
	return 0;
fail:
	e = errno;
	dps_free_wiped(buf, n);
	close(fd);
	errno = e;
	return -1;
}

int dps_config_load(const char *path, struct dps_config *cfg, char *err, size_t errlen)
{
	char *text;
	size_t len;
	int rc;

	if (dps_read_file(path, &text, &len)) {
		int e = errno;

		dps_config_defaults(cfg);
		if (err && errlen)
			snprintf(err, errlen, "%s: cannot read: %s", path, strerror(e));
		return -1;
	}
	rc = dps_config_parse_as(text, len, path, cfg, true, err, errlen);
	explicit_bzero(text, len); /* it may hold SA keys */
	free(text);
	return rc;
}
