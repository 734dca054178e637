/* SPDX-License-Identifier: BSD-3-Clause */
/* Ports: the configured devices and their exception TAPs. */
#ifndef DP_PORT_H
#define DP_PORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/** True if @dev names a PCI device ("0000:01:00.0" or "01:00.0", devargs allowed). */
bool dp_device_is_pci(const char *dev);

/** Copy the device name (before any ",devargs") of @dev into @name. */
void dp_device_name(const char *dev, char *name, size_t len);

/** Find, configure and set up port @idx and its exception TAP (dp.cfg->ports[idx]). */
int dp_port_setup(uint16_t idx);

/** Start port @idx and its TAP. */
int dp_port_start(uint16_t idx);

/** Stop and close port @idx and its TAP. */
void dp_port_close(uint16_t idx);

#endif
