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
 * This file holds the engine and the gateway sections; the IPsec sections
 * (crypto, ipsec, sas, policies) are in config_ipsec.c, and config_schema.h
 * has the types and handlers the two share.
 */
#include "control/config.h"
#include "control/config_schema.h"

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

/* ---- error reporting ---------------------------------------------------- */

static int __attribute__((format(printf, 3, 0)))
dps_errv_mark(struct dps_ctx *ctx, const yaml_mark_t *mark, const char *fmt, va_list ap)
{
	int n;

	if (!ctx->err || !ctx->errlen)
		return -1;
	n = snprintf(ctx->err, ctx->errlen, "%s:%zu:%zu: %s: ", ctx->name, mark->line + 1,
		     mark->column + 1, ctx->plen ? ctx->path : "document");
	if (n >= 0 && (size_t)n < ctx->errlen)
		vsnprintf(ctx->err + n, ctx->errlen - n, fmt, ap);
	return -1;
}

static int __attribute__((format(printf, 3, 4)))
dps_err_mark(struct dps_ctx *ctx, const yaml_mark_t *mark, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	dps_errv_mark(ctx, mark, fmt, ap);
	va_end(ap);
	return -1;
}

/* Report an error at @node under the current path. Always returns -1. */
int __attribute__((format(printf, 3, 4)))
dps_err(struct dps_ctx *ctx, const yaml_node_t *node, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	dps_errv_mark(ctx, &node->start_mark, fmt, ap);
	va_end(ap);
	return -1;
}

/* Append ".key" (or "key" at the top) to the path; returns what to pop back to. */
size_t dps_push_key(struct dps_ctx *ctx, const char *key, size_t len)
{
	size_t old = ctx->plen, i;

	if (ctx->plen && ctx->plen < sizeof(ctx->path) - 1)
		ctx->path[ctx->plen++] = '.';
	/* Keys come from the file: keep control characters out of messages. */
	for (i = 0; i < len && ctx->plen < sizeof(ctx->path) - 1; i++) {
		unsigned char c = key[i];

		ctx->path[ctx->plen++] = c < 0x20 || c == 0x7f ? '?' : c;
	}
	ctx->path[ctx->plen] = '\0';
	return old;
}

size_t dps_push_index(struct dps_ctx *ctx, size_t i)
{
	size_t old = ctx->plen;
	int n = snprintf(ctx->path + ctx->plen, sizeof(ctx->path) - ctx->plen, "[%zu]", i);

	if (n > 0)
		ctx->plen += (size_t)n < sizeof(ctx->path) - ctx->plen
				     ? (size_t)n
				     : strlen(ctx->path + ctx->plen);
	return old;
}

void dps_pop(struct dps_ctx *ctx, size_t old)
{
	ctx->plen = old;
	ctx->path[old] = '\0';
}

/* Quote a scalar for a message: bounded, control characters replaced. */
const char *dps_quote(const yaml_node_t *node, char *buf, size_t len)
{
	const unsigned char *s = node->data.scalar.value;
	size_t n = node->data.scalar.length, i, o = 0;

	buf[o++] = '"';
	for (i = 0; i < n && o < len - 5; i++)
		buf[o++] = s[i] < 0x20 || s[i] == 0x7f ? '?' : s[i];
	if (i < n) {
		memcpy(buf + o, "...", 3);
		o += 3;
	}
	buf[o++] = '"';
	buf[o] = '\0';
	return buf;
}

/* ---- small helpers ------------------------------------------------------- */

static void dps_strlcpy(char *dst, const char *src, size_t size)
{
	size_t n = strnlen(src, size - 1);

	memcpy(dst, src, n);
	dst[n] = '\0';
}

static yaml_node_t *dps_node(struct dps_ctx *ctx, int id)
{
	return yaml_document_get_node(ctx->doc, id);
}

const char *dps_str(const yaml_node_t *node)
{
	return (const char *)node->data.scalar.value;
}

static bool dps_key_is(const yaml_node_t *key, const char *name)
{
	return key->type == YAML_SCALAR_NODE && key->data.scalar.length == strlen(name) &&
	       !memcmp(key->data.scalar.value, name, key->data.scalar.length);
}

/* The pair of @key in mapping @map, or NULL. Keys are known to be unique. */
yaml_node_pair_t *dps_map_pair(struct dps_ctx *ctx, yaml_node_t *map, const char *key)
{
	yaml_node_pair_t *p;

	for (p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top; p++)
		if (dps_key_is(dps_node(ctx, p->key), key))
			return p;
	return NULL;
}

/* The value of @key in mapping @map, or NULL. */
yaml_node_t *dps_map_get(struct dps_ctx *ctx, yaml_node_t *map, const char *key)
{
	yaml_node_pair_t *p = dps_map_pair(ctx, map, key);

	return p ? dps_node(ctx, p->value) : NULL;
}

static size_t dps_seq_len(const yaml_node_t *seq)
{
	return seq->data.sequence.items.top - seq->data.sequence.items.start;
}

yaml_node_t *dps_seq_item(struct dps_ctx *ctx, yaml_node_t *seq, size_t i)
{
	return dps_node(ctx, seq->data.sequence.items.start[i]);
}

static int __attribute__((format(printf, 5, 0)))
dps_err_keyv(struct dps_ctx *ctx, yaml_node_t *map, const char *key, bool at_key, const char *fmt,
	     va_list ap)
{
	yaml_node_pair_t *p = dps_map_pair(ctx, map, key);
	yaml_node_t *node = p ? dps_node(ctx, at_key ? p->key : p->value) : map;
	size_t old = dps_push_key(ctx, key, strlen(key));

	dps_errv_mark(ctx, &node->start_mark, fmt, ap);
	dps_pop(ctx, old);
	return -1;
}

/*
 * Report an error about @key of mapping @map from a check function: at its
 * value if given, else at the mapping (the value is a default).
 */
int __attribute__((format(printf, 4, 5)))
dps_err_key(struct dps_ctx *ctx, yaml_node_t *map, const char *key, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	dps_err_keyv(ctx, map, key, false, fmt, ap);
	va_end(ap);
	return -1;
}

/* Same, at the key itself: for a key that is not allowed where it is. */
int __attribute__((format(printf, 4, 5)))
dps_err_at_key(struct dps_ctx *ctx, yaml_node_t *map, const char *key, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	dps_err_keyv(ctx, map, key, true, fmt, ap);
	va_end(ap);
	return -1;
}

/* Same as dps_err_key(), about @sub of the mapping under @key (which is given). */
int __attribute__((format(printf, 5, 6)))
dps_err_sub(struct dps_ctx *ctx, yaml_node_t *map, const char *key, const char *sub,
	    const char *fmt, ...)
{
	size_t old = dps_push_key(ctx, key, strlen(key));
	va_list ap;

	va_start(ap, fmt);
	dps_err_keyv(ctx, dps_map_get(ctx, map, key), sub, false, fmt, ap);
	va_end(ap);
	dps_pop(ctx, old);
	return -1;
}

/* Same, about element @i of the sequence under @key. */
static int __attribute__((format(printf, 5, 6)))
dps_err_item(struct dps_ctx *ctx, yaml_node_t *map, const char *key, size_t i, const char *fmt, ...)
{
	yaml_node_t *seq = dps_map_get(ctx, map, key);
	yaml_node_t *node = seq ? dps_seq_item(ctx, seq, i) : map;
	size_t old = dps_push_key(ctx, key, strlen(key));
	va_list ap;

	dps_push_index(ctx, i);
	va_start(ap, fmt);
	dps_errv_mark(ctx, &node->start_mark, fmt, ap);
	va_end(ap);
	dps_pop(ctx, old);
	return -1;
}

/* Report an error at element @i of sequence @seq, the node being parsed. */
int __attribute__((format(printf, 4, 5)))
dps_err_index(struct dps_ctx *ctx, yaml_node_t *seq, size_t i, const char *fmt, ...)
{
	size_t old = dps_push_index(ctx, i);
	va_list ap;

	va_start(ap, fmt);
	dps_errv_mark(ctx, &dps_seq_item(ctx, seq, i)->start_mark, fmt, ap);
	va_end(ap);
	dps_pop(ctx, old);
	return -1;
}

static const char *const dps_node_kind[] = {
	[YAML_NO_NODE] = "nothing",
	[YAML_SCALAR_NODE] = "a scalar",
	[YAML_SEQUENCE_NODE] = "a sequence",
	[YAML_MAPPING_NODE] = "a mapping",
};

static int dps_want(struct dps_ctx *ctx, yaml_node_t *node, yaml_node_type_t type)
{
	if (node->type == type)
		return 0;
	return dps_err(ctx, node, "expected %s, found %s", dps_node_kind[type],
		       dps_node_kind[node->type]);
}

/* A scalar as a C string: embedded NULs would silently truncate it. */
const char *dps_want_str(struct dps_ctx *ctx, yaml_node_t *node)
{
	if (dps_want(ctx, node, YAML_SCALAR_NODE))
		return NULL;
	if (strlen(dps_str(node)) != node->data.scalar.length) {
		dps_err(ctx, node, "contains a NUL character");
		return NULL;
	}
	return dps_str(node);
}

void dps_store_uint(void *p, size_t size, unsigned long long v)
{
	switch (size) {
	case 1:
		*(uint8_t *)p = v;
		break;
	case 2:
		*(uint16_t *)p = v;
		break;
	case 4:
		*(uint32_t *)p = v;
		break;
	default:
		*(uint64_t *)p = v;
		break;
	}
}

/* ---- addresses ----------------------------------------------------------- */

static size_t dps_addr_bytes(const struct dps_addr *a)
{
	return a->family == AF_INET ? 4 : 16;
}

static const uint8_t *dps_addr_raw(const struct dps_addr *a)
{
	return a->family == AF_INET ? (const uint8_t *)&a->v4 : a->v6.s6_addr;
}

bool dps_addr_eq(const struct dps_addr *a, const struct dps_addr *b)
{
	return a->family == b->family &&
	       !memcmp(dps_addr_raw(a), dps_addr_raw(b), dps_addr_bytes(a));
}

/* Why @a cannot be a host's address (interface, next hop, neighbour), or NULL. */
static const char *dps_addr_unusable(const struct dps_addr *a)
{
	const uint8_t *b = dps_addr_raw(a);
	static const uint8_t zero[16];

	if (!memcmp(b, zero, dps_addr_bytes(a)))
		return "is the unspecified address";
	if (a->family == AF_INET && b[0] >= 224 && b[0] <= 239)
		return "is a multicast address";
	if (a->family == AF_INET && a->v4.s_addr == INADDR_BROADCAST)
		return "is the broadcast address";
	if (a->family == AF_INET6 && IN6_IS_ADDR_MULTICAST(&a->v6))
		return "is a multicast address";
	return NULL;
}

/* True if @p has bits set beyond its length, i.e. is not a network prefix. */
static bool dps_prefix_has_host_bits(const struct dps_prefix *p)
{
	const uint8_t *b = dps_addr_raw(&p->addr);
	size_t i, n = dps_addr_bytes(&p->addr);

	for (i = p->len / 8; i < n; i++) {
		uint8_t keep = i == p->len / 8u ? (uint8_t)(0xff00 >> (p->len % 8)) : 0;

		if (b[i] & ~keep)
			return true;
	}
	return false;
}

const char *dps_addr_str(const struct dps_addr *a, char *buf, size_t len)
{
	if (!buf || !len)
		return "";
	if (a && (a->family == AF_INET || a->family == AF_INET6) &&
	    inet_ntop(a->family, dps_addr_raw(a), buf, (socklen_t)len))
		return buf;
	dps_strlcpy(buf, "?", len);
	return buf;
}

int dps_hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static int dps_mac_parse(const char *s, uint8_t mac[6])
{
	int i, hi, lo;

	if (strlen(s) != 17)
		return -1;
	for (i = 0; i < 6; i++) {
		hi = dps_hexval(s[i * 3]);
		lo = dps_hexval(s[i * 3 + 1]);
		if (hi < 0 || lo < 0 || (i < 5 && s[i * 3 + 2] != ':'))
			return -1;
		mac[i] = (uint8_t)(hi << 4 | lo);
	}
	return 0;
}

/* ---- generic parsers ----------------------------------------------------- */

int dps_get_uint(struct dps_ctx *ctx, yaml_node_t *node, unsigned long long min,
		 unsigned long long max, unsigned long long *out)
{
	unsigned long long v = 0;
	const char *s;
	size_t i, len;

	if (dps_want(ctx, node, YAML_SCALAR_NODE))
		return -1;
	s = dps_str(node);
	len = node->data.scalar.length;
	/*
	 * Plain digits only: a quoted "5" is a string in YAML, and YAML 1.1 would
	 * read 010 as octal, so leading zeros are refused rather than guessed.
	 */
	if (node->data.scalar.style != YAML_PLAIN_SCALAR_STYLE || !len ||
	    (len > 1 && s[0] == '0') || strspn(s, "0123456789") != len)
		return dps_err(ctx, node, "expected an unsigned decimal integer, found %s",
			       len ? DPS_Q(node) : "nothing");
	for (i = 0; i < len; i++) {
		unsigned int d = (unsigned int)(s[i] - '0');

		if (v > (max - d) / 10 || d > max)
			return dps_err(ctx, node, "%.24s%s is out of range %llu..%llu", s,
				       len > 24 ? "..." : "", min, max);
		v = v * 10 + d;
	}
	if (v < min)
		return dps_err(ctx, node, "%llu is out of range %llu..%llu", v, min, max);
	*out = v;
	return 0;
}

int dps_parse_uint(struct dps_ctx *ctx, const struct dps_field *f, yaml_node_t *node, void *obj)
{
	unsigned long long v;

	if (dps_get_uint(ctx, node, f->min, f->max, &v))
		return -1;
	dps_store_uint((char *)obj + f->off, f->size, v);
	return 0;
}

/* Like dps_parse_uint(), for sizes the hardware wants as powers of two. */
static int dps_parse_pow2(struct dps_ctx *ctx, const struct dps_field *f, yaml_node_t *node,
			  void *obj)
{
	unsigned long long v;

	if (dps_get_uint(ctx, node, f->min, f->max, &v))
		return -1;
	if (v & (v - 1))
		return dps_err(ctx, node, "%llu is not a power of two", v);
	dps_store_uint((char *)obj + f->off, f->size, v);
	return 0;
}

/* Like dps_get_uint(), also taking 0x-prefixed hexadecimal, as SPIs and reqids are often written.
 */
static int dps_get_xuint(struct dps_ctx *ctx, yaml_node_t *node, unsigned long long min,
			 unsigned long long max, unsigned long long *out)
{
	unsigned long long v = 0;
	const char *s;
	size_t i, len;

	if (dps_want(ctx, node, YAML_SCALAR_NODE))
		return -1;
	s = dps_str(node);
	len = node->data.scalar.length;
	if (len < 2 || s[0] != '0' || (s[1] != 'x' && s[1] != 'X')) {
		if (node->data.scalar.style == YAML_PLAIN_SCALAR_STYLE && len &&
		    strspn(s, "0123456789") == len)
			return dps_get_uint(ctx, node, min, max, out);
	} else if (node->data.scalar.style == YAML_PLAIN_SCALAR_STYLE && len > 2 &&
		   strspn(s + 2, "0123456789abcdefABCDEF") == len - 2) {
		for (i = 2; i < len; i++) {
			unsigned int d = (unsigned int)dps_hexval(s[i]);

			if (v > (max - d) / 16 || d > max)
				return dps_err(ctx, node, "%.24s%s is out of range 0x%llx..0x%llx",
					       s, len > 24 ? "..." : "", min, max);
			v = v * 16 + d;
		}
		if (v < min)
			return dps_err(ctx, node, "%s is out of range 0x%llx..0x%llx", s, min, max);
		*out = v;
		return 0;
	}
	return dps_err(ctx, node,
		       "expected an unsigned decimal or 0x-prefixed hex integer, found %s",
		       len ? DPS_Q(node) : "nothing");
}

int dps_parse_xuint(struct dps_ctx *ctx, const struct dps_field *f, yaml_node_t *node, void *obj)
{
	unsigned long long v;

	if (dps_get_xuint(ctx, node, f->min, f->max, &v))
		return -1;
	dps_store_uint((char *)obj + f->off, f->size, v);
	return 0;
}

/* An anti-replay window in packets: 0 (off) or f->min..f->max. */
int dps_parse_window(struct dps_ctx *ctx, const struct dps_field *f, yaml_node_t *node, void *obj)
{
	unsigned long long v;

	if (dps_get_uint(ctx, node, 0, f->max, &v))
		return -1;
	if (v && v < f->min)
		return dps_err(ctx, node, "%llu is too small: 0 (off) or %llu..%llu", v, f->min,
			       f->max);
	dps_store_uint((char *)obj + f->off, f->size, v);
	return 0;
}

/* The @n characters at @s as a plain decimal: no sign, no leading zero. */
static int dps_dec(const char *s, size_t n, unsigned long long *out)
{
	unsigned long long v = 0;
	size_t i;

	if (!n || n > 10 || (n > 1 && s[0] == '0'))
		return -1;
	for (i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (unsigned int)(s[i] - '0');
	}
	*out = v;
	return 0;
}

/*
 * A value or an inclusive range "LO-HI" within f->min..f->max, stored as two
 * uint16_t: LO at f->off and HI right after it (selector ports, ICMP type/code).
 */
int dps_parse_range(struct dps_ctx *ctx, const struct dps_field *f, yaml_node_t *node, void *obj)
{
	uint16_t *r = (uint16_t *)((char *)obj + f->off);
	unsigned long long lo, hi;
	const char *s, *dash;

	if (!(s = dps_want_str(ctx, node)))
		return -1;
	dash = strchr(s, '-');
	if (!dash && *s && strspn(s, "0123456789") == strlen(s)) {
		/* One number: the integer rules apply (plain, no leading zero). */
		if (dps_get_uint(ctx, node, f->min, f->max, &lo))
			return -1;
		hi = lo;
	} else if (!dash || dps_dec(s, (size_t)(dash - s), &lo) ||
		   dps_dec(dash + 1, strlen(dash + 1), &hi)) {
		return dps_err(ctx, node, "%s is neither a number nor a range LO-HI", DPS_Q(node));
	} else if (lo < f->min || hi > f->max) {
		return dps_err(ctx, node, "%s is out of range %llu..%llu", DPS_Q(node), f->min,
			       f->max);
	} else if (lo > hi) {
		return dps_err(ctx, node, "%s: %llu is above %llu", DPS_Q(node), lo, hi);
	}
	r[0] = (uint16_t)lo;
	r[1] = (uint16_t)hi;
	return 0;
}

int dps_parse_bool(struct dps_ctx *ctx, const struct dps_field *f, yaml_node_t *node, void *obj)
{
	static const char *const yes[] = {"true", "yes", "on"};
	static const char *const no[] = {"false", "no", "off"};
	const char *s;
	size_t i;

	if (!(s = dps_want_str(ctx, node)))
		return -1;
	for (i = 0; node->data.scalar.style == YAML_PLAIN_SCALAR_STYLE && i < 3; i++) {
		if (!strcasecmp(s, yes[i]) || !strcasecmp(s, no[i])) {
			*(bool *)((char *)obj + f->off) = !strcasecmp(s, yes[i]);
			return 0;
		}
	}
	return dps_err(ctx, node, "expected true/false/yes/no/on/off, found %s", DPS_Q(node));
}

int dps_parse_str(struct dps_ctx *ctx, const struct dps_field *f, yaml_node_t *node, void *obj)
{
	size_t len;
	const char *s, *why;

	if (!(s = dps_want_str(ctx, node)))
		return -1;
	len = node->data.scalar.length;
	if (!len && f->min)
		return dps_err(ctx, node, "must not be empty");
	if (len >= f->size)
		return dps_err(ctx, node, "%s is too long (at most %zu characters)", DPS_Q(node),
			       f->size - 1);
	if (f->valid && (why = f->valid(s)))
		return dps_err(ctx, node, "%s %s", DPS_Q(node), why);
	memcpy((char *)obj + f->off, s, len + 1);
	return 0;
}

/* "a, b, c" from @names into @buf. */
const char *dps_enum_list(const struct dps_enum *names, char *buf, size_t len)
{
	const struct dps_enum *e;

	buf[0] = '\0';
	for (e = names; e->name; e++) {
		strncat(buf, e->name, len - strlen(buf) - 1);
		if (e[1].name)
			strncat(buf, ", ", len - strlen(buf) - 1);
	}
	return buf;
}

/* The entry of @names called like scalar @node, or NULL. */
const struct dps_enum *dps_enum_find(const struct dps_enum *names, yaml_node_t *node)
{
	const struct dps_enum *e;

	for (e = names; e->name; e++)
		if (dps_key_is(node, e->name))
			return e;
	return NULL;
}

int dps_get_enum(struct dps_ctx *ctx, const struct dps_enum *names, yaml_node_t *node, int *out)
{
	const struct dps_enum *e;
	char list[256];

	if (!dps_want_str(ctx, node))
		return -1;
	if (!(e = dps_enum_find(names, node)))
		return dps_err(ctx, node, "%s is not one of: %s", DPS_Q(node),
			       dps_enum_list(names, list, sizeof(list)));
	*out = e->value;
	return 0;
}

int dps_parse_enum(struct dps_ctx *ctx, const struct dps_field *f, yaml_node_t *node, void *obj)
{
	int v;

	if (dps_get_enum(ctx, f->names, node, &v))
		return -1;
	dps_store_uint((char *)obj + f->off, f->size, (unsigned int)v);
	return 0;
}

int dps_parse_map(struct dps_ctx *ctx, const struct dps_field *f, yaml_node_t *node, void *obj)
{
	return dps_walk_map(ctx, f->map, node, (char *)obj + f->off);
}

int dps_parse_seq(struct dps_ctx *ctx, const struct dps_field *f, yaml_node_t *node, void *obj)
{
	const struct dps_seq *s = f->seq;
	unsigned int *count = (unsigned int *)((char *)obj + s->count_off);
	size_t i, n, old;
	char *array;

	if (dps_want(ctx, node, YAML_SEQUENCE_NODE))
		return -1;
	n = dps_seq_len(node);
	if (n < s->min)
		return dps_err(ctx, node, "needs at least %u entr%s", s->min,
			       s->min == 1 ? "y" : "ies");
	if (s->max && n > s->max) {
		dps_push_index(ctx, s->max);
		return dps_err(ctx, dps_seq_item(ctx, node, s->max),
			       "too many entries (at most %u)", s->max);
	}
	if (s->alloc) {
		array = n ? calloc(n, s->elem.size) : NULL;
		if (n && !array)
			return dps_err(ctx, node, "out of memory");
		/* Stored before parsing so that an error frees it with the config. */
		*(void **)((char *)obj + s->array_off) = array;
	} else {
		/* No leftovers from the defaults (crypto.devices has some). */
		array = (char *)obj + s->array_off;
		memset(array, 0, s->max * s->elem.size);
	}
	*count = 0;
	for (i = 0; i < n; i++) {
		void *elem = array + i * s->elem.size;

		old = dps_push_index(ctx, i);
		if (s->init)
			s->init(elem);
		if (s->elem.parse(ctx, &s->elem, dps_seq_item(ctx, node, i), elem))
			return -1;
		dps_pop(ctx, old);
		/* Counted once valid: checks see earlier elements as [0, *count). */
		*count = i + 1;
	}
	return s->check ? s->check(ctx, node, obj) : 0;
}

static int dps_err_unknown(struct dps_ctx *ctx, const struct dps_schema *schema, yaml_node_t *key)
{
	char list[256] = "";
	const struct dps_field *f;

	for (f = schema->fields; f->key; f++) {
		strncat(list, f->key, sizeof(list) - strlen(list) - 1);
		if (f[1].key)
			strncat(list, ", ", sizeof(list) - strlen(list) - 1);
	}
	return dps_err(ctx, key, "unknown key (expected one of: %s)", list);
}

/*
 * Walk mapping @node into @obj: refuse non-scalar, unknown and duplicate keys
 * in document order, then parse the rows in table order.
 */
int dps_walk_map(struct dps_ctx *ctx, const struct dps_schema *schema, yaml_node_t *node, void *obj)
{
	yaml_node_pair_t *found[DPS_MAX_KEYS] = {NULL};
	const struct dps_field *f;
	yaml_node_pair_t *p;
	size_t i, old;
	int rc;

	if (dps_want(ctx, node, YAML_MAPPING_NODE))
		return -1;
	for (p = node->data.mapping.pairs.start; p < node->data.mapping.pairs.top; p++) {
		yaml_node_t *key = dps_node(ctx, p->key);

		if (key->type != YAML_SCALAR_NODE)
			return dps_err(ctx, key, "keys must be scalars, found %s",
				       dps_node_kind[key->type]);
		for (i = 0, f = schema->fields; f->key && !dps_key_is(key, f->key); f++)
			i++;
		if (!f->key || found[i]) {
			dps_push_key(ctx, dps_str(key), key->data.scalar.length);
			if (!f->key)
				return dps_err_unknown(ctx, schema, key);
			return dps_err(ctx, key, "duplicate key (first given on line %zu)",
				       dps_node(ctx, found[i]->key)->start_mark.line + 1);
		}
		found[i] = p;
	}
	for (i = 0, f = schema->fields; f->key; f++, i++) {
		yaml_node_t *value = found[i] ? dps_node(ctx, found[i]->value) : NULL;

		old = dps_push_key(ctx, f->key, strlen(f->key));
		if (!value && f->required)
			return dps_err(ctx, node, "missing required key");
		rc = value ? f->parse(ctx, f, value, obj) : 0;
		if (rc)
			return rc;
		dps_pop(ctx, old);
	}
	return schema->check ? schema->check(ctx, node, obj) : 0;
}

/* ---- string validators --------------------------------------------------- */

/* True if @s holds only ASCII letters, digits and characters from @extra. */
static bool dps_charset_ok(const char *s, const char *extra)
{
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		      (*s >= '0' && *s <= '9') || strchr(extra, *s)))
			return false;
	return true;
}

/* A file prefix names a directory: keep it plain. */
static const char *dps_valid_prefix(const char *s)
{
	return dps_charset_ok(s, "_-") ? NULL : "may only contain A-Z a-z 0-9 _ -";
}

/* Port names are telemetry dictionary keys, which DPDK limits to [A-Za-z0-9_/]. */
static const char *dps_valid_name(const char *s)
{
	return dps_charset_ok(s, "_") ? NULL : "may only contain A-Z a-z 0-9 _";
}

static const char *dps_valid_ifname(const char *s)
{
	/* What the kernel's dev_valid_name() accepts, minus the odd characters. */
	if (!strcmp(s, ".") || !strcmp(s, ".."))
		return "is not a valid interface name";
	return dps_charset_ok(s, "_.-") ? NULL : "may only contain A-Z a-z 0-9 _ . -";
}

const char *dps_valid_device(const char *s)
{
	/* Passed to DPDK as -a/--vdev argument: whitespace would split it. */
	for (; *s; s++)
		if (*s <= ' ' || *s == 0x7f)
			return "must not contain spaces or control characters";
	return NULL;
}

/* ---- eal ----------------------------------------------------------------- */

static int dps_lcore_num(const char **s, unsigned int *out)
{
	const char *p = *s;
	unsigned int v = 0;

	if (*p < '0' || *p > '9' || (p[0] == '0' && p[1] >= '0' && p[1] <= '9'))
		return -1;
	for (; *p >= '0' && *p <= '9'; p++) {
		v = v * 10 + (unsigned int)(*p - '0');
		if (v >= DPS_MAX_LCORE)
			return -1;
	}
	*s = p;
	*out = v;
	return 0;
}

/* Parse DPDK's "-l" syntax restricted to "N" and "N-M" items, comma separated,
 * and "N@C" items of DPDK's "--lcores" (lcore N runs on CPU C: more lcores than
 * CPUs). */
static int dps_lcores_set(const char *s, uint64_t *set)
{
	unsigned int a, b, cpu;

	memset(set, 0, DPS_MAX_LCORE / 8);
	for (;;) {
		if (dps_lcore_num(&s, &a))
			return -1;
		b = a;
		if (*s == '-' && (s++, dps_lcore_num(&s, &b) || b < a))
			return -1;
		if (*s == '@' && (b != a || (s++, dps_lcore_num(&s, &cpu))))
			return -1;
		for (; a <= b; a++)
			set[a / 64] |= 1ull << (a % 64);
		if (!*s)
			return 0;
		if (*s++ != ',')
			return -1;
	}
}

static bool dps_lcore_in(const struct dps_ctx *ctx, unsigned int lcore)
{
	return lcore < DPS_MAX_LCORE && (ctx->lcores[lcore / 64] >> (lcore % 64)) & 1;
}

static int dps_parse_lcores(struct dps_ctx *ctx, const struct dps_field *f, yaml_node_t *node,
			    void *obj)
{
	if (dps_parse_str(ctx, f, node, obj))
		return -1;
	if (dps_lcores_set(dps_str(node), ctx->lcores))
		return dps_err(
			ctx, node,
			"%s is not an lcore list (N, N-M or N@CPU items below %u, comma separated)",
			DPS_Q(node), DPS_MAX_LCORE);
	ctx->lcores_node = node;
	return 0;
}

static int dps_eal_check(struct dps_ctx *ctx, yaml_node_t *map, void *obj)
{
	struct dps_eal_cfg *eal = obj;

	if (dps_lcore_in(ctx, eal->main_lcore))
		return 0;
	/* Blame main_lcore if it was given, else the list that leaves out the default. */
	if (dps_map_get(ctx, map, "main_lcore"))
		return dps_err_key(ctx, map, "main_lcore", "lcore %u is not in eal.lcores \"%s\"",
				   eal->main_lcore, eal->lcores);
	return dps_err_key(ctx, map, "lcores", "\"%s\" does not include main_lcore %u", eal->lcores,
			   eal->main_lcore);
}

static const struct dps_seq dps_eal_extra_seq = {
	.count_off = offsetof(struct dps_eal_cfg, n_extra),
	.array_off = offsetof(struct dps_eal_cfg, extra),
	.max = DPS_MAX_EAL_EXTRA,
	.elem = {.parse = dps_parse_str,
		 .size = DPS_SIZEOF(struct dps_eal_cfg, extra[0]),
		 .min = 1},
};

static const struct dps_field dps_eal_fields[] = {
	{.key = "lcores", .parse = dps_parse_lcores, DPS_AT(struct dps_eal_cfg, lcores), .min = 1},
	{.key = "main_lcore",
	 .parse = dps_parse_uint,
	 DPS_AT(struct dps_eal_cfg, main_lcore),
	 .max = DPS_MAX_LCORE - 1},
	{.key = "hugepages", .parse = dps_parse_bool, DPS_AT(struct dps_eal_cfg, hugepages)},
	{.key = "memory_mb",
	 .parse = dps_parse_uint,
	 DPS_AT(struct dps_eal_cfg, memory_mb),
	 .max = 65536},
	{.key = "file_prefix",
	 .parse = dps_parse_str,
	 DPS_AT(struct dps_eal_cfg, file_prefix),
	 .min = 1,
	 .valid = dps_valid_prefix},
	{.key = "in_memory", .parse = dps_parse_bool, DPS_AT(struct dps_eal_cfg, in_memory)},
	{.key = "extra_args", .parse = dps_parse_seq, .seq = &dps_eal_extra_seq},
	{0},
};

DPS_SCHEMA(dps_eal_schema, dps_eal_fields, dps_eal_check);

/* ---- log level, dataplane, neighbour --------------------------------------- */

static const struct dps_enum dps_log_levels[] = {
	{"emerg", DPS_LOG_EMERG}, {"alert", DPS_LOG_ALERT},	{"crit", DPS_LOG_CRIT},
	{"err", DPS_LOG_ERR},	  {"warning", DPS_LOG_WARNING}, {"notice", DPS_LOG_NOTICE},
	{"info", DPS_LOG_INFO},	  {"debug", DPS_LOG_DEBUG},	{NULL, 0},
};

/* RFC 791 §3.2 leaves the reassembly timer to the implementation (Linux:
 * ipfrag_time, 30 s). What rides in ESP retransmits on its own; a short
 * default frees a lost datagram's entry and mbufs sooner. */
static const struct dps_field dps_reasm_fields[] = {
	{.key = "max_flows",
	 .parse = dps_parse_uint,
	 DPS_AT(struct dps_reasm_cfg, max_flows),
	 .min = 1,
	 .max = 1048576},
	{.key = "timeout_ms",
	 .parse = dps_parse_uint,
	 DPS_AT(struct dps_reasm_cfg, timeout_ms),
	 .min = 10,
	 .max = 120000},
	{0},
};

DPS_SCHEMA(dps_reasm_schema, dps_reasm_fields, NULL);

static const struct dps_field dps_dataplane_fields[] = {
	{.key = "mbufs",
	 .parse = dps_parse_uint,
	 DPS_AT(struct dps_dataplane_cfg, mbufs),
	 .min = 1024,
	 .max = 1048575},
	{.key = "burst",
	 .parse = dps_parse_uint,
	 DPS_AT(struct dps_dataplane_cfg, burst),
	 .min = 1,
	 .max = 64},
	{.key = "idle_backoff",
	 .parse = dps_parse_bool,
	 DPS_AT(struct dps_dataplane_cfg, idle_backoff)},
	{.key = "idle_polls",
	 .parse = dps_parse_uint,
	 DPS_AT(struct dps_dataplane_cfg, idle_polls),
	 .min = 1,
	 .max = 1000000},
	{.key = "idle_sleep_us",
	 .parse = dps_parse_uint,
	 DPS_AT(struct dps_dataplane_cfg, idle_sleep_us),
	 .min = 1,
	 .max = 100000},
	{.key = "icmp_rate",
	 .parse = dps_parse_uint,
	 DPS_AT(struct dps_dataplane_cfg, icmp_rate),
	 .min = 0,
	 .max = 1000000},
	{.key = "icmp_burst",
	 .parse = dps_parse_uint,
	 DPS_AT(struct dps_dataplane_cfg, icmp_burst),
	 .min = 1,
	 .max = 1000000},
	{.key = "reassembly",
	 .parse = dps_parse_map,
	 .off = offsetof(struct dps_dataplane_cfg, reasm),
	 .map = &dps_reasm_schema},
	{0},
};

DPS_SCHEMA(dps_dataplane_schema, dps_dataplane_fields, NULL);

static const struct dps_field dps_neigh_fields[] = {
	{.key = "reachable_ms",
	 .parse = dps_parse_uint,
	 DPS_AT(struct dps_neigh_params, reachable_ms),
	 .min = 1000,
	 .max = 3600000},
	{.key = "retrans_ms",
	 .parse = dps_parse_uint,
	 DPS_AT(struct dps_neigh_params, retrans_ms),
	 .min = 100,
	 .max = 60000},
	{.key = "probes",
	 .parse = dps_parse_uint,
	 DPS_AT(struct dps_neigh_params, probes),
	 .min = 1,
	 .max = 10},
	{.key = "queue_len",
	 .parse = dps_parse_uint,
	 DPS_AT(struct dps_neigh_params, queue_len),
	 .max = 1024},
	{.key = "max_entries",
	 .parse = dps_parse_uint,
	 DPS_AT(struct dps_neigh_params, max_entries),
	 .min = 16,
	 .max = 1048576},
	{0},
};

DPS_SCHEMA(dps_neigh_schema, dps_neigh_fields, NULL);

/* ---- values shared by ports, routes and neighbours ------------------------ */

static int dps_parse_mac(struct dps_ctx *ctx, const struct dps_field *f, yaml_node_t *node,
			 void *obj)
{
	static const uint8_t zero[6];
	uint8_t *mac = (uint8_t *)obj + f->off;
	const char *s;

	if (!(s = dps_want_str(ctx, node)))
		return -1;
	if (dps_mac_parse(s, mac))
		return dps_err(ctx, node, "%s is not a MAC address (xx:xx:xx:xx:xx:xx)",
			       DPS_Q(node));
	if (mac[0] & 1)
		return dps_err(ctx, node, "%s is a multicast MAC address", DPS_Q(node));
	if (!memcmp(mac, zero, sizeof(zero)))
		return dps_err(ctx, node, "%s is the all-zero MAC address", DPS_Q(node));
	return 0;
}

/* A host address: next hop or neighbour. */
int dps_parse_addr(struct dps_ctx *ctx, const struct dps_field *f, yaml_node_t *node, void *obj)
{
	struct dps_addr *a = (struct dps_addr *)((char *)obj + f->off);
	const char *s, *why;

	if (!(s = dps_want_str(ctx, node)))
		return -1;
	if (dps_addr_parse(s, a))
		return dps_err(ctx, node, "%s is not an IPv4 or IPv6 address", DPS_Q(node));
	if ((why = dps_addr_unusable(a)))
		return dps_err(ctx, node, "%s %s", DPS_Q(node), why);
	return 0;
}

/* An interface address: "addr/len", host bits expected. */
static int dps_parse_ifaddr(struct dps_ctx *ctx, const struct dps_field *f, yaml_node_t *node,
			    void *obj)
{
	struct dps_prefix *p = (struct dps_prefix *)((char *)obj + f->off);
	const char *s, *why;

	if (!(s = dps_want_str(ctx, node)))
		return -1;
	if (dps_prefix_parse(s, p) || !strchr(s, '/'))
		return dps_err(ctx, node, "%s is not an address/prefix-length (192.0.2.1/24)",
			       DPS_Q(node));
	if ((why = dps_addr_unusable(&p->addr)))
		return dps_err(ctx, node, "%s %s", DPS_Q(node), why);
	if (!p->len)
		return dps_err(ctx, node, "%s: an interface prefix cannot be /0", DPS_Q(node));
	return 0;
}

/* A route destination: a network prefix, host bits clear. */
int dps_parse_net(struct dps_ctx *ctx, const struct dps_field *f, yaml_node_t *node, void *obj)
{
	struct dps_prefix *p = (struct dps_prefix *)((char *)obj + f->off);
	const char *s;

	if (!(s = dps_want_str(ctx, node)))
		return -1;
	if (dps_prefix_parse(s, p))
		return dps_err(ctx, node, "%s is not a prefix (10.0.0.0/8, 2001:db8::/32)",
			       DPS_Q(node));
	if (dps_prefix_has_host_bits(p))
		return dps_err(ctx, node, "%s has host bits set beyond /%u", DPS_Q(node), p->len);
	return 0;
}

/* A port name, stored as its index: ports are parsed before any reference. */
static int dps_parse_port_ref(struct dps_ctx *ctx, const struct dps_field *f, yaml_node_t *node,
			      void *obj)
{
	const struct dps_config *cfg = ctx->cfg;
	const char *s;
	unsigned int i;

	if (!(s = dps_want_str(ctx, node)))
		return -1;
	for (i = 0; i < cfg->n_ports; i++) {
		if (!strcmp(cfg->ports[i].name, s)) {
			dps_store_uint((char *)obj + f->off, f->size, i);
			return 0;
		}
	}
	return dps_err(ctx, node, "no port named %s", DPS_Q(node));
}

/* ---- ports --------------------------------------------------------------- */

static const struct dps_enum dps_roles[] = {
	{"protected", DPS_ROLE_PROTECTED},
	{"unprotected", DPS_ROLE_UNPROTECTED},
	{NULL, 0},
};

static void dps_port_init(void *elem)
{
	struct dps_port_cfg *p = elem;

	p->mtu = 1500;
	p->rx_queues = 1;
	p->rx_desc = 1024;
	p->tx_desc = 1024;
	p->exception = true;
}

static int dps_port_check_addrs(struct dps_ctx *ctx, yaml_node_t *map, struct dps_port_cfg *p)
{
	const struct dps_config *cfg = ctx->cfg;
	unsigned int i, j, k;
	char buf[INET6_ADDRSTRLEN];

	/* An address on two ports would make local delivery ambiguous. */
	for (i = 0; i < p->n_addrs; i++) {
		const struct dps_addr *a = &p->addrs[i].addr;

		for (j = 0; j < i; j++)
			if (dps_addr_eq(a, &p->addrs[j].addr))
				return dps_err_item(ctx, map, "addresses", i,
						    "%s is listed twice on this port",
						    dps_addr_str(a, buf, sizeof(buf)));
		for (k = 0; k < cfg->n_ports; k++)
			for (j = 0; j < cfg->ports[k].n_addrs; j++)
				if (dps_addr_eq(a, &cfg->ports[k].addrs[j].addr))
					return dps_err_item(ctx, map, "addresses", i,
							    "%s is already on port %s",
							    dps_addr_str(a, buf, sizeof(buf)),
							    cfg->ports[k].name);
	}
	return 0;
}

static int dps_port_check(struct dps_ctx *ctx, yaml_node_t *map, void *obj)
{
	const struct dps_config *cfg = ctx->cfg;
	struct dps_port_cfg *p = obj;
	unsigned int k;

	p->has_mac = dps_map_get(ctx, map, "mac") != NULL;
	if (!p->exception_iface[0]) {
		/* "dps-" + name, cut to what the kernel allows. */
		memcpy(p->exception_iface, "dps-", 4);
		dps_strlcpy(p->exception_iface + 4, p->name, sizeof(p->exception_iface) - 4);
	}
	for (k = 0; k < cfg->n_ports; k++) {
		const struct dps_port_cfg *q = &cfg->ports[k];

		if (!strcmp(p->name, q->name))
			return dps_err_key(ctx, map, "name",
					   "port name \"%s\" is already used by ports[%u]", p->name,
					   k);
		if (!strcmp(p->device, q->device))
			return dps_err_key(ctx, map, "device",
					   "device \"%s\" is already used by port %s", p->device,
					   q->name);
		if (p->exception && q->exception && !strcmp(p->exception_iface, q->exception_iface))
			return dps_err_key(ctx, map, "exception_iface",
					   "interface \"%s\" is already used by port %s%s",
					   p->exception_iface, q->name,
					   dps_map_get(ctx, map, "exception_iface")
						   ? ""
						   : " (the default, set exception_iface)");
	}
	return dps_port_check_addrs(ctx, map, p);
}

static const struct dps_seq dps_port_addrs_seq = {
	.count_off = offsetof(struct dps_port_cfg, n_addrs),
	.array_off = offsetof(struct dps_port_cfg, addrs),
	.max = DPS_MAX_PORT_ADDRS,
	.elem = {.parse = dps_parse_ifaddr, .size = sizeof(struct dps_prefix)},
};

static const struct dps_field dps_port_fields[] = {
	{.key = "name",
	 .parse = dps_parse_str,
	 DPS_AT(struct dps_port_cfg, name),
	 .min = 1,
	 .required = true,
	 .valid = dps_valid_name},
	{.key = "device",
	 .parse = dps_parse_str,
	 DPS_AT(struct dps_port_cfg, device),
	 .min = 1,
	 .required = true,
	 .valid = dps_valid_device},
	{.key = "role",
	 .parse = dps_parse_enum,
	 DPS_AT(struct dps_port_cfg, role),
	 .required = true,
	 .names = dps_roles},
	{.key = "mac", .parse = dps_parse_mac, DPS_AT(struct dps_port_cfg, mac)},
	{.key = "mtu",
	 .parse = dps_parse_uint,
	 DPS_AT(struct dps_port_cfg, mtu),
	 .min = 68,
	 .max = 9600},
	{.key = "rx_queues",
	 .parse = dps_parse_uint,
	 DPS_AT(struct dps_port_cfg, rx_queues),
	 .min = 1,
	 .max = DPS_MAX_QUEUES},
	{.key = "rx_desc",
	 .parse = dps_parse_pow2,
	 DPS_AT(struct dps_port_cfg, rx_desc),
	 .min = 64,
	 .max = 4096},
	{.key = "tx_desc",
	 .parse = dps_parse_pow2,
	 DPS_AT(struct dps_port_cfg, tx_desc),
	 .min = 64,
	 .max = 4096},
	{.key = "exception", .parse = dps_parse_bool, DPS_AT(struct dps_port_cfg, exception)},
	{.key = "exception_iface",
	 .parse = dps_parse_str,
	 DPS_AT(struct dps_port_cfg, exception_iface),
	 .min = 1,
	 .valid = dps_valid_ifname},
	{.key = "addresses", .parse = dps_parse_seq, .seq = &dps_port_addrs_seq},
	{0},
};

DPS_SCHEMA(dps_port_schema, dps_port_fields, dps_port_check);

static const struct dps_seq dps_ports_seq = {
	.count_off = offsetof(struct dps_config, n_ports),
	.array_off = offsetof(struct dps_config, ports),
	.min = 1,
	.max = DPS_MAX_PORTS,
	.init = dps_port_init,
	.elem = {.parse = dps_parse_map,
		 .size = sizeof(struct dps_port_cfg),
		 .map = &dps_port_schema},
};

/* ---- workers ------------------------------------------------------------- */

static int dps_rxq_check(struct dps_ctx *ctx, yaml_node_t *map, void *obj)
{
	const struct dps_rxq_cfg *q = obj;
	const struct dps_port_cfg *p = &ctx->cfg->ports[q->port];

	if (q->queue >= p->rx_queues)
		return dps_err_key(ctx, map, "queue", "port %s has %u rx queue%s (0..%u)", p->name,
				   p->rx_queues, p->rx_queues == 1 ? "" : "s", p->rx_queues - 1u);
	return 0;
}

static const struct dps_field dps_rxq_fields[] = {
	{.key = "port",
	 .parse = dps_parse_port_ref,
	 DPS_AT(struct dps_rxq_cfg, port),
	 .required = true},
	{.key = "queue",
	 .parse = dps_parse_uint,
	 DPS_AT(struct dps_rxq_cfg, queue),
	 .max = DPS_MAX_QUEUES - 1,
	 .required = true},
	{0},
};

DPS_SCHEMA(dps_rxq_schema, dps_rxq_fields, dps_rxq_check);

static const struct dps_seq dps_rxq_seq = {
	.count_off = offsetof(struct dps_worker_cfg, n_rxq),
	.array_off = offsetof(struct dps_worker_cfg, rxq),
	.min = 1,
	.max = DPS_MAX_WORKER_RXQ,
	.elem = {.parse = dps_parse_map,
		 .size = sizeof(struct dps_rxq_cfg),
		 .map = &dps_rxq_schema},
};

/* Which worker, if any, already polls @q: [0, n_workers) plus @self's first @n. */
static int dps_rxq_owner(const struct dps_config *cfg, const struct dps_worker_cfg *self,
			 unsigned int n, const struct dps_rxq_cfg *q)
{
	unsigned int w, i;

	for (w = 0; w <= cfg->n_workers; w++) {
		const struct dps_worker_cfg *wk = w < cfg->n_workers ? &cfg->workers[w] : self;
		unsigned int lim = w < cfg->n_workers ? wk->n_rxq : n;

		for (i = 0; i < lim; i++)
			if (wk->rxq[i].port == q->port && wk->rxq[i].queue == q->queue)
				return (int)w;
	}
	return -1;
}

static int dps_worker_check(struct dps_ctx *ctx, yaml_node_t *map, void *obj)
{
	const struct dps_config *cfg = ctx->cfg;
	struct dps_worker_cfg *wk = obj;
	unsigned int i;
	int owner;

	if (!dps_lcore_in(ctx, wk->lcore))
		return dps_err_key(ctx, map, "lcore", "lcore %u is not in eal.lcores \"%s\"",
				   wk->lcore, cfg->eal.lcores);
	if (wk->lcore == cfg->eal.main_lcore)
		return dps_err_key(ctx, map, "lcore", "lcore %u is eal.main_lcore", wk->lcore);
	for (i = 0; i < cfg->n_workers; i++)
		if (cfg->workers[i].lcore == wk->lcore)
			return dps_err_key(ctx, map, "lcore",
					   "lcore %u is already used by workers[%u]", wk->lcore, i);
	for (i = 0; i < wk->n_rxq; i++) {
		owner = dps_rxq_owner(cfg, wk, i, &wk->rxq[i]);
		if (owner >= 0)
			return dps_err_item(ctx, map, "rx", i,
					    "port %s queue %u is already polled by workers[%d]",
					    cfg->ports[wk->rxq[i].port].name, wk->rxq[i].queue,
					    owner);
	}
	return 0;
}

/* Spread every queue of every port over the workers, round-robin. */
static int dps_distribute_rxq(struct dps_ctx *ctx, yaml_node_t *where)
{
	struct dps_config *cfg = ctx->cfg;
	unsigned int p, q, n = 0;

	for (p = 0; p < cfg->n_ports; p++) {
		for (q = 0; q < cfg->ports[p].rx_queues; q++, n++) {
			struct dps_worker_cfg *wk = &cfg->workers[n % cfg->n_workers];

			if (wk->n_rxq == DPS_MAX_WORKER_RXQ)
				return dps_err(
					ctx, where,
					"too many rx queues for %u worker%s (at most %u each)",
					cfg->n_workers, cfg->n_workers == 1 ? "" : "s",
					DPS_MAX_WORKER_RXQ);
			wk->rxq[wk->n_rxq].port = (uint16_t)p;
			wk->rxq[wk->n_rxq].queue = (uint16_t)q;
			wk->n_rxq++;
		}
	}
	return 0;
}

static int dps_workers_check(struct dps_ctx *ctx, yaml_node_t *seq, void *obj)
{
	struct dps_config *cfg = obj;
	struct dps_rxq_cfg rq;
	unsigned int w, with_rx = 0;

	for (w = 0; w < cfg->n_workers; w++)
		with_rx += cfg->workers[w].n_rxq > 0;
	if (!with_rx)
		return dps_distribute_rxq(ctx, seq);
	/* Half-explicit is refused: the implicit rest would be a guess. */
	for (w = 0; w < cfg->n_workers; w++) {
		if (!cfg->workers[w].n_rxq) {
			size_t old = dps_push_index(ctx, w);

			dps_err_key(ctx, dps_seq_item(ctx, seq, w), "rx",
				    "missing: other workers list rx, so every worker must");
			dps_pop(ctx, old);
			return -1;
		}
	}
	for (rq.port = 0; rq.port < cfg->n_ports; rq.port++) {
		for (rq.queue = 0; rq.queue < cfg->ports[rq.port].rx_queues; rq.queue++)
			if (dps_rxq_owner(cfg, NULL, 0, &rq) < 0)
				return dps_err(ctx, seq,
					       "port %s queue %u is not polled by any worker",
					       cfg->ports[rq.port].name, rq.queue);
	}
	return 0;
}

static const struct dps_field dps_worker_fields[] = {
	{.key = "lcore",
	 .parse = dps_parse_uint,
	 DPS_AT(struct dps_worker_cfg, lcore),
	 .max = DPS_MAX_LCORE - 1,
	 .required = true},
	{.key = "rx", .parse = dps_parse_seq, .seq = &dps_rxq_seq},
	{0},
};

DPS_SCHEMA(dps_worker_schema, dps_worker_fields, dps_worker_check);

static const struct dps_seq dps_workers_seq = {
	.count_off = offsetof(struct dps_config, n_workers),
	.array_off = offsetof(struct dps_config, workers),
	.min = 1,
	.max = DPS_MAX_WORKERS,
	.elem = {.parse = dps_parse_map,
		 .size = sizeof(struct dps_worker_cfg),
		 .map = &dps_worker_schema},
	.check = dps_workers_check,
};

/* No workers key: one worker on the first spare lcore, polling everything. */
static int dps_default_worker(struct dps_ctx *ctx)
{
	struct dps_config *cfg = ctx->cfg;
	unsigned int l;
	size_t old;
	int rc;

	for (l = 0; l < DPS_MAX_LCORE; l++)
		if (dps_lcore_in(ctx, l) && l != cfg->eal.main_lcore)
			break;
	if (l == DPS_MAX_LCORE) {
		/* Only reachable with an explicit lcores: the default has two. */
		old = dps_push_key(ctx, "eal.lcores", 10);
		dps_err(ctx, ctx->lcores_node ? ctx->lcores_node : ctx->root,
			"\"%s\" has no lcore besides main_lcore %u for the default worker; add one "
			"or list workers",
			cfg->eal.lcores, cfg->eal.main_lcore);
		dps_pop(ctx, old);
		return -1;
	}
	cfg->n_workers = 1;
	cfg->workers[0].lcore = l;
	old = dps_push_key(ctx, "workers", 7);
	rc = dps_distribute_rxq(ctx, ctx->root);
	dps_pop(ctx, old);
	return rc;
}

/* ---- routes and neighbours ------------------------------------------------ */

static int dps_route_check(struct dps_ctx *ctx, yaml_node_t *map, void *obj)
{
	const struct dps_config *cfg = ctx->cfg;
	struct dps_route_cfg *r = obj;
	char buf[INET6_ADDRSTRLEN];
	unsigned int i;

	r->has_via = dps_map_get(ctx, map, "via") != NULL;
	if (r->has_via && r->via.family != r->dst.addr.family)
		return dps_err_key(ctx, map, "via", "next hop %s is not of the prefix's family",
				   dps_addr_str(&r->via, buf, sizeof(buf)));
	for (i = 0; i < cfg->n_routes; i++)
		if (cfg->routes[i].dst.len == r->dst.len &&
		    dps_addr_eq(&cfg->routes[i].dst.addr, &r->dst.addr))
			return dps_err_key(
				ctx, map, "prefix", "%s/%u is already routed by routes[%u]",
				dps_addr_str(&r->dst.addr, buf, sizeof(buf)), r->dst.len, i);
	return 0;
}

static const struct dps_field dps_route_fields[] = {
	{.key = "prefix",
	 .parse = dps_parse_net,
	 DPS_AT(struct dps_route_cfg, dst),
	 .required = true},
	{.key = "via", .parse = dps_parse_addr, DPS_AT(struct dps_route_cfg, via)},
	{.key = "port",
	 .parse = dps_parse_port_ref,
	 DPS_AT(struct dps_route_cfg, port),
	 .required = true},
	{0},
};

DPS_SCHEMA(dps_route_schema, dps_route_fields, dps_route_check);

static const struct dps_seq dps_routes_seq = {
	.count_off = offsetof(struct dps_config, n_routes),
	.array_off = offsetof(struct dps_config, routes),
	.alloc = true,
	.elem = {.parse = dps_parse_map,
		 .size = sizeof(struct dps_route_cfg),
		 .map = &dps_route_schema},
};

static int dps_neigh_check(struct dps_ctx *ctx, yaml_node_t *map, void *obj)
{
	const struct dps_config *cfg = ctx->cfg;
	struct dps_neigh_cfg *n = obj;
	char buf[INET6_ADDRSTRLEN];
	unsigned int i;

	for (i = 0; i < cfg->n_neighs; i++)
		if (cfg->neighs[i].port == n->port && dps_addr_eq(&cfg->neighs[i].addr, &n->addr))
			return dps_err_key(ctx, map, "address",
					   "%s on port %s is already given by neighbours[%u]",
					   dps_addr_str(&n->addr, buf, sizeof(buf)),
					   cfg->ports[n->port].name, i);
	return 0;
}

static const struct dps_field dps_neighbour_fields[] = {
	{.key = "address",
	 .parse = dps_parse_addr,
	 DPS_AT(struct dps_neigh_cfg, addr),
	 .required = true},
	{.key = "mac", .parse = dps_parse_mac, DPS_AT(struct dps_neigh_cfg, mac), .required = true},
	{.key = "port",
	 .parse = dps_parse_port_ref,
	 DPS_AT(struct dps_neigh_cfg, port),
	 .required = true},
	{0},
};

DPS_SCHEMA(dps_neighbour_schema, dps_neighbour_fields, dps_neigh_check);

static const struct dps_seq dps_neighbours_seq = {
	.count_off = offsetof(struct dps_config, n_neighs),
	.array_off = offsetof(struct dps_config, neighs),
	.alloc = true,
	.elem = {.parse = dps_parse_map,
		 .size = sizeof(struct dps_neigh_cfg),
		 .map = &dps_neighbour_schema},
};

/* ---- top level ------------------------------------------------------------ */

static int dps_top_check(struct dps_ctx *ctx, yaml_node_t *map, void *obj)
{
	struct dps_config *cfg = obj;

	(void)map;
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
	cfg->crypto.sessions = 4096;
	cfg->ipsec.def_policy4 = DPS_ACTION_BYPASS;
	cfg->ipsec.def_policy6 = DPS_ACTION_BYPASS;
	cfg->ipsec.esp_trans_deflev = DPS_LEVEL_USE;
	cfg->ipsec.esp_net_deflev = DPS_LEVEL_USE;
	cfg->ipsec.ah_trans_deflev = DPS_LEVEL_USE;
	cfg->ipsec.ah_net_deflev = DPS_LEVEL_USE;
	cfg->ipsec.dfbit = DPS_DF_COPY;
	cfg->ipsec.ecn = true;
	cfg->ipsec.ah_cleartos = true;
	cfg->ipsec.replay_window = 64;
	cfg->pfkey.enabled = true;
	dps_strlcpy(cfg->pfkey.socket, "/run/dpsec/pfkey.sock", sizeof(cfg->pfkey.socket));
	dps_strlcpy(cfg->pfkey.state, "/run/dpsec/pfkey.state", sizeof(cfg->pfkey.state));
	cfg->pfkey.acquire_retry_s = 30; /* Linux: XFRM_ACQ_EXPIRES */
	cfg->pfkey.acquire_rate = 100;
	cfg->pfkey.larval_s = 30;
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
	if (cfg->sas) /* keys */
		explicit_bzero(cfg->sas, cfg->n_sas * sizeof(*cfg->sas));
	free(cfg->sas);
	cfg->sas = NULL;
	cfg->n_sas = 0;
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
	yaml_document_delete(&doc);
	return rc;
}

int dps_config_parse(const char *text, size_t len, const char *name, struct dps_config *cfg,
		     char *err, size_t errlen)
{
	struct dps_config tmp;
	struct dps_ctx ctx = {
		.cfg = &tmp,
		.name = name ? name : "<config>",
		.err = err,
		.errlen = errlen,
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
			if (!(nb = realloc(buf, cap)))
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
	free(buf);
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
	rc = dps_config_parse(text, len, path, cfg, err, errlen);
	explicit_bzero(text, len); /* it may hold SA keys */
	free(text);
	return rc;
}
