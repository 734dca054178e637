// SPDX-License-Identifier: BSD-3-Clause
/*
 * The configuration loader's YAML engine: error messages with their position
 * and key path, node access, the generic value parsers and the schema walk
 * that config.c and the section files (config_gateway.c, config_ipsec.c) run
 * their tables on. See config_schema.h for the types and config.c for how a
 * document is walked.
 */
#include "control/config_schema.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <yaml.h>

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

int __attribute__((format(printf, 3, 4)))
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

void dps_strlcpy(char *dst, const char *src, size_t size)
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
int __attribute__((format(printf, 5, 6)))
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
int dps_parse_pow2(struct dps_ctx *ctx, const struct dps_field *f, yaml_node_t *node, void *obj)
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
