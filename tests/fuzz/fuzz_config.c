// SPDX-License-Identifier: BSD-3-Clause
/*
 * libFuzzer harness for the configuration loader: every input is a YAML
 * document given to dps_config_parse, which is dps_config_load without the
 * file read (so no file is written per input). A document that parses must
 * free cleanly; one that does not must leave an error message and a config
 * holding only defaults (nothing allocated). LeakSanitizer checks the rest.
 *
 * Seeds: the YAML files of config/ and config/examples/ (scripts/test.sh copies
 * them into a scratch corpus). Built with -Dfuzz=true (clang).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "control/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(bool ok)
{
	if (!ok)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct dps_config cfg; /* large: not on the stack */
	char err[512];
	int rc;

	memset(err, 'x', sizeof(err));
	rc = dps_config_parse((const char *)data, size, "fuzz.yaml", &cfg, err, sizeof(err));
	check(memchr(err, '\0', sizeof(err)) != NULL);
	if (rc) {
		check(rc == -1 && err[0] != '\0');
		check(!cfg.routes && !cfg.neighs && !cfg.sas && !cfg.policies);
		check(!cfg.n_routes && !cfg.n_neighs && !cfg.n_sas && !cfg.n_policies);
	} else {
		check(cfg.n_ports <= DPS_MAX_PORTS && cfg.n_workers <= DPS_MAX_WORKERS);
		check(!cfg.n_sas == !cfg.sas && !cfg.n_policies == !cfg.policies);
		check(!cfg.n_routes == !cfg.routes && !cfg.n_neighs == !cfg.neighs);
	}
	dps_config_free(&cfg);
	return 0;
}
