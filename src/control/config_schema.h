/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The configuration loader's private interface: the schema types that the
 * walk in yaml.c runs on, and the generic handlers and error helpers that
 * the section tables are built with. The gateway sections (config_gateway.c)
 * and the IPsec sections (config_ipsec.c) use it; nothing outside the
 * configuration loader (config*.c, yaml.c) includes it, and it is not
 * installed: the public API is control/config.h. The functions are described
 * where they are defined.
 */
#ifndef DPS_CONFIG_SCHEMA_H
#define DPS_CONFIG_SCHEMA_H

#include "control/config.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <yaml.h>

#define DPS_MAX_LCORE 1024 /* lcore ids accepted in eal.lcores are below this */
#define DPS_MAX_KEYS  32   /* rows in one schema table */

struct dps_ctx {
	yaml_document_t *doc;
	struct dps_config *cfg;
	const char *name;
	char *err;
	size_t errlen;
	char path[256]; /* dotted key path of the node being parsed */
	size_t plen;
	uint64_t lcores[DPS_MAX_LCORE / 64]; /* eal.lcores as a set */
	yaml_node_t *lcores_node;	     /* where eal.lcores was given, if it was */
	yaml_node_t *root;
	bool runnable; /* also refuse what this build's dataplane cannot run yet */
};

struct dps_field;
struct dps_schema;
struct dps_seq;

typedef int (*dps_parse_fn)(struct dps_ctx *ctx, const struct dps_field *f, yaml_node_t *node,
			    void *obj);

struct dps_enum {
	const char *name;
	int value;
};

/* One key of a mapping. */
struct dps_field {
	const char *key;
	dps_parse_fn parse;
	size_t off;		     /* of the value in the enclosing object */
	size_t size;		     /* of the value: integer width, string buffer */
	unsigned long long min, max; /* integer range; minimum string length */
	bool required;
	const char *(*valid)(const char *s); /* strings: NULL or why @s is bad */
	const struct dps_enum *names;	     /* enums */
	const struct dps_schema *map;	     /* nested mappings */
	const struct dps_seq *seq;	     /* sequences */
};

struct dps_schema {
	const struct dps_field *fields; /* ends with a row without key */
	int (*check)(struct dps_ctx *ctx, yaml_node_t *map, void *obj);
};

/*
 * A sequence stored as a count and an array in the enclosing object. Fixed
 * arrays give their capacity as max; alloc arrays are a pointer that gets
 * calloc()ed to the length of the sequence.
 */
struct dps_seq {
	size_t count_off; /* unsigned int */
	size_t array_off;
	unsigned int min, max; /* max 0: unbounded, alloc only */
	bool alloc;
	void (*init)(void *elem); /* element defaults */
	struct dps_field elem;	  /* parses one element; elem.size is the stride */
	int (*check)(struct dps_ctx *ctx, yaml_node_t *seq, void *obj);
};

/* A mapping's table; the walk keeps one slot per row on the stack. */
#define DPS_SCHEMA(name, rows, chk)                                                                \
	_Static_assert(sizeof(rows) / sizeof(rows[0]) <= DPS_MAX_KEYS + 1, "raise DPS_MAX_KEYS");  \
	static const struct dps_schema name = {rows, chk}

/* The same, for a table that a row in another file points at (declared below). */
#define DPS_SCHEMA_SHARED(name, rows, chk)                                                         \
	_Static_assert(sizeof(rows) / sizeof(rows[0]) <= DPS_MAX_KEYS + 1, "raise DPS_MAX_KEYS");  \
	const struct dps_schema name = {rows, chk}

#define DPS_SIZEOF(type, member) sizeof(((type *)0)->member)
#define DPS_AT(type, member)	 .off = offsetof(type, member), .size = DPS_SIZEOF(type, member)

#define DPS_Q(node) dps_quote((node), (char[48]){0}, 48)

/* ---- error reporting and the key path (yaml.c) ----------------------------- */

int __attribute__((format(printf, 3, 4)))
dps_err_mark(struct dps_ctx *ctx, const yaml_mark_t *mark, const char *fmt, ...);
int __attribute__((format(printf, 3, 4)))
dps_err(struct dps_ctx *ctx, const yaml_node_t *node, const char *fmt, ...);
int __attribute__((format(printf, 4, 5)))
dps_err_key(struct dps_ctx *ctx, yaml_node_t *map, const char *key, const char *fmt, ...);
int __attribute__((format(printf, 4, 5)))
dps_err_at_key(struct dps_ctx *ctx, yaml_node_t *map, const char *key, const char *fmt, ...);
int __attribute__((format(printf, 5, 6)))
dps_err_sub(struct dps_ctx *ctx, yaml_node_t *map, const char *key, const char *sub,
	    const char *fmt, ...);
int __attribute__((format(printf, 5, 6)))
dps_err_item(struct dps_ctx *ctx, yaml_node_t *map, const char *key, size_t i, const char *fmt,
	     ...);
int __attribute__((format(printf, 4, 5)))
dps_err_index(struct dps_ctx *ctx, yaml_node_t *seq, size_t i, const char *fmt, ...);
size_t dps_push_key(struct dps_ctx *ctx, const char *key, size_t len);
size_t dps_push_index(struct dps_ctx *ctx, size_t i);
void dps_pop(struct dps_ctx *ctx, size_t old);
const char *dps_quote(const yaml_node_t *node, char *buf, size_t len);

/* ---- small helpers (yaml.c) ------------------------------------------------ */

void dps_strlcpy(char *dst, const char *src, size_t size);
const char *dps_str(const yaml_node_t *node);
yaml_node_pair_t *dps_map_pair(struct dps_ctx *ctx, yaml_node_t *map, const char *key);
yaml_node_t *dps_map_get(struct dps_ctx *ctx, yaml_node_t *map, const char *key);
yaml_node_t *dps_seq_item(struct dps_ctx *ctx, yaml_node_t *seq, size_t i);
const char *dps_want_str(struct dps_ctx *ctx, yaml_node_t *node);
void dps_store_uint(void *p, size_t size, unsigned long long v);
int dps_hexval(char c);

/* ---- generic parsers (yaml.c) ---------------------------------------------- */

int dps_get_uint(struct dps_ctx *ctx, yaml_node_t *node, unsigned long long min,
		 unsigned long long max, unsigned long long *out);
int dps_parse_uint(struct dps_ctx *ctx, const struct dps_field *f, yaml_node_t *node, void *obj);
int dps_parse_pow2(struct dps_ctx *ctx, const struct dps_field *f, yaml_node_t *node, void *obj);
int dps_parse_xuint(struct dps_ctx *ctx, const struct dps_field *f, yaml_node_t *node, void *obj);
int dps_parse_window(struct dps_ctx *ctx, const struct dps_field *f, yaml_node_t *node, void *obj);
int dps_parse_range(struct dps_ctx *ctx, const struct dps_field *f, yaml_node_t *node, void *obj);
int dps_parse_bool(struct dps_ctx *ctx, const struct dps_field *f, yaml_node_t *node, void *obj);
int dps_parse_str(struct dps_ctx *ctx, const struct dps_field *f, yaml_node_t *node, void *obj);
const char *dps_enum_list(const struct dps_enum *names, char *buf, size_t len);
const struct dps_enum *dps_enum_find(const struct dps_enum *names, yaml_node_t *node);
int dps_get_enum(struct dps_ctx *ctx, const struct dps_enum *names, yaml_node_t *node, int *out);
int dps_parse_enum(struct dps_ctx *ctx, const struct dps_field *f, yaml_node_t *node, void *obj);
int dps_walk_map(struct dps_ctx *ctx, const struct dps_schema *schema, yaml_node_t *node,
		 void *obj);
int dps_parse_map(struct dps_ctx *ctx, const struct dps_field *f, yaml_node_t *node, void *obj);
int dps_parse_seq(struct dps_ctx *ctx, const struct dps_field *f, yaml_node_t *node, void *obj);

/* ---- gateway sections (config_gateway.c) ----------------------------------- */

const char *dps_valid_device(const char *s);
int dps_parse_addr(struct dps_ctx *ctx, const struct dps_field *f, yaml_node_t *node, void *obj);
int dps_parse_net(struct dps_ctx *ctx, const struct dps_field *f, yaml_node_t *node, void *obj);
int dps_lcores_set(const char *s, uint64_t *set);
int dps_default_worker(struct dps_ctx *ctx);

/* Rows of the top-level table. */
extern const struct dps_enum dps_log_levels[];
extern const struct dps_schema dps_eal_schema;
extern const struct dps_schema dps_dataplane_schema;
extern const struct dps_schema dps_neigh_schema;
extern const struct dps_seq dps_ports_seq;
extern const struct dps_seq dps_workers_seq;
extern const struct dps_seq dps_routes_seq;
extern const struct dps_seq dps_neighbours_seq;

/* ---- IPsec sections (config_ipsec.c), rows of the top-level table ----------- */

extern const struct dps_schema dps_crypto_schema;
extern const struct dps_schema dps_compress_schema;
extern const struct dps_schema dps_ipsec_schema;
extern const struct dps_seq dps_sas_seq;
extern const struct dps_seq dps_policies_seq;

#endif
