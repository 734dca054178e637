// SPDX-License-Identifier: BSD-3-Clause
/*
 * Fault injection for the integration tests, LD_PRELOADed into dpsecd: while
 * the file named by DPSEC_FAULT_ZMALLOC exists, rte_zmalloc() and rte_malloc()
 * fail as they do when hugepage memory runs out; while the file named by
 * DPSEC_FAULT_ACL_BUILD exists, rte_acl_build() fails as it does when the
 * SPD's classifier cannot be compiled. Each failure is counted in the file
 * named by DPSEC_FAULT_COUNT (one line per failure), so a test knows the
 * failure it meant to cause happened. DPDK's own prototypes are not needed:
 * the symbols are looked up by name in the next library.
 */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdlib.h>
#include <unistd.h>

static int armed(const char *var)
{
	const char *path = getenv(var);

	return path != NULL && access(path, F_OK) == 0;
}

static void count(const char *what)
{
	const char *path = getenv("DPSEC_FAULT_COUNT");
	int fd;
	size_t n = 0;

	if (path == NULL || (fd = open(path, O_WRONLY | O_APPEND | O_CREAT, 0644)) < 0)
		return;
	while (what[n])
		n++;
	if (write(fd, what, n) < 0 || write(fd, "\n", 1) < 0)
		n = 0;
	close(fd);
}

void *rte_zmalloc(const char *type, size_t size, unsigned int align)
{
	static void *(*real)(const char *, size_t, unsigned int);

	if (armed("DPSEC_FAULT_ZMALLOC")) {
		count("rte_zmalloc");
		return NULL;
	}
	if (real == NULL)
		*(void **)&real = dlsym(RTLD_NEXT, "rte_zmalloc");
	return real(type, size, align);
}

/* The slabs of policies' hit counters (store.c) come from rte_malloc. */
void *rte_malloc(const char *type, size_t size, unsigned int align)
{
	static void *(*real)(const char *, size_t, unsigned int);

	if (armed("DPSEC_FAULT_ZMALLOC")) {
		count("rte_malloc");
		return NULL;
	}
	if (real == NULL)
		*(void **)&real = dlsym(RTLD_NEXT, "rte_malloc");
	return real(type, size, align);
}

int rte_acl_build(void *ctx, const void *cfg)
{
	static int (*real)(void *, const void *);

	if (armed("DPSEC_FAULT_ACL_BUILD")) {
		count("rte_acl_build");
		return -ENOMEM;
	}
	if (real == NULL)
		*(void **)&real = dlsym(RTLD_NEXT, "rte_acl_build");
	return real(ctx, cfg);
}
