/* SPDX-License-Identifier: BSD-3-Clause */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "control/eal.h"
#include "dataplane/port.h"

static void arg(struct dps_eal_args *a, const char *fmt, ...)
{
	va_list ap;

	if (a->argc >= DPS_EAL_MAX_ARGS - 1)
		return;
	va_start(ap, fmt);
	vsnprintf(a->buf[a->argc], sizeof(a->buf[a->argc]), fmt, ap);
	va_end(ap);
	a->argv[a->argc] = a->buf[a->argc];
	a->argc++;
	a->argv[a->argc] = NULL;
}

void dps_eal_args_build(struct dps_eal_args *a, const struct dps_config *cfg, const char *prog)
{
	const struct dps_eal_cfg *e = &cfg->eal;
	bool pci = false;

	a->argc = 0;
	arg(a, "%s", prog);
	/* "N@C" items map lcores to CPUs, which only --lcores understands. */
	arg(a, strchr(e->lcores, '@') ? "--lcores" : "-l");
	arg(a, "%s", e->lcores);
	arg(a, "--main-lcore=%u", e->main_lcore);
	arg(a, "--file-prefix=%s", e->file_prefix);
	arg(a, "--log-level=%d", cfg->log_level);
	if (!e->hugepages)
		arg(a, "--no-huge");
	if (e->memory_mb)
		arg(a, "-m%u", e->memory_mb);
	if (e->in_memory)
		arg(a, "--in-memory");
	for (unsigned int i = 0; i < cfg->n_ports; i++) {
		const char *dev = cfg->ports[i].device;

		if (dp_device_is_pci(dev)) {
			arg(a, "-a");
			pci = true;
		} else {
			arg(a, "--vdev");
		}
		arg(a, "%s", dev);
	}
	for (unsigned int i = 0; i < cfg->crypto.n_devices; i++) {
		const char *dev = cfg->crypto.devices[i];

		arg(a, dp_device_is_pci(dev) ? "-a" : "--vdev");
		pci |= dp_device_is_pci(dev);
		arg(a, "%s", dev);
	}
	for (unsigned int i = 0; i < cfg->compress.n_devices; i++) {
		const char *dev = cfg->compress.devices[i];

		arg(a, dp_device_is_pci(dev) ? "-a" : "--vdev");
		pci |= dp_device_is_pci(dev);
		arg(a, "%s", dev);
	}
	/* Only the configured PCI devices: never grab the host's other NICs. With
	 * software devices alone nothing needs physical addresses: virtual ones
	 * spare EAL and the pools the page-map walk (a third of a restart's
	 * outage), unless extra_args says otherwise. */
	bool iova_given = false;

	for (unsigned int i = 0; i < e->n_extra; i++)
		iova_given |= strncmp(e->extra[i], "--iova-mode", 11) == 0;
	if (!pci) {
		arg(a, "--no-pci");
		if (!iova_given)
			arg(a, "--iova-mode=va");
	}
	for (unsigned int i = 0; i < e->n_extra; i++)
		arg(a, "%s", e->extra[i]);
}
