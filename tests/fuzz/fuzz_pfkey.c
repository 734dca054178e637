// SPDX-License-Identifier: BSD-3-Clause
/*
 * libFuzzer harness for the PF_KEY codec: every input goes through
 * pfk_parse; what parses is translated, and what translates is rebuilt,
 * parsed again and translated again, which must give the same object
 * (the builders produce only what the parser accepts).
 *
 * Built with -Dfuzz=true (clang, -fsanitize=fuzzer,address,undefined) this
 * is a libFuzzer target. Otherwise PFK_FUZZ_REPLAY gives it a main() that
 * runs the files and directories named on its command line, so the unit
 * build replays the seed corpus.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pfkey_emul/codec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint8_t out[PFK_MSG_MAX];

static void check(bool ok)
{
	if (!ok)
		abort();
}

/* What charon would reject: extension types above 25, bad lengths. */
static void check_built(long n)
{
	size_t off = sizeof(struct sadb_msg);

	check(n > 0 && n % 8 == 0);
	while (off < (size_t)n) {
		const struct sadb_ext *e = (const void *)(out + off);

		check(e->sadb_ext_len >= 1 && e->sadb_ext_type >= 1 &&
		      e->sadb_ext_type <= PFK_EXT_SEND_MAX);
		off += (size_t)e->sadb_ext_len * 8;
	}
	check(off == (size_t)n);
}

static void sa_round_trip(const struct pfk_msg *m, const struct dps_sa *sa)
{
	struct pfk_sa_state st = {SADB_SASTATE_MATURE, 7, 700, 1700000000, 1700000001};
	struct sadb_msg h = *m->hdr;
	struct dps_sa back;
	struct pfk_msg m2;
	long n;

	h.sadb_msg_type = SADB_GET;
	n = pfk_build_sa(out, sizeof(out), &h, sa, &st, true);
	check_built(n);
	check(pfk_parse(out, (size_t)n, &m2) == 0);
	check(pfk_sa_from_msg(&m2, &back) == 0);
	/* Replies carry the window in sadb_sa_replay's 8 bits (never SA_REPLAY: charon refuses it).
	 */
	if (back.replay_window == 255 && sa->replay_window > 255)
		back.replay_window = sa->replay_window;
	check(memcmp(&back, sa, sizeof(back)) == 0);
	for (int hard = 0; hard < 2; hard++) {
		n = pfk_build_expire(out, sizeof(out), 0, sa, &st, hard);
		check_built(n);
		check(pfk_parse(out, (size_t)n, &m2) == 0);
	}
}

static void policy_round_trip(const struct pfk_msg *m, const struct dps_policy *p)
{
	struct pfk_algs algs = {.n_auth = 1, .n_enc = 2};
	struct sadb_msg h = *m->hdr;
	struct dps_policy back;
	struct pfk_msg m2;
	long n;

	h.sadb_msg_type = SADB_X_SPDGET;
	n = pfk_build_policy(out, sizeof(out), &h, p, 1, 2);
	check_built(n);
	check(pfk_parse(out, (size_t)n, &m2) == 0);
	check(pfk_policy_from_msg(&m2, &back) == 0);
	check(memcmp(&back, p, sizeof(back)) == 0);
	algs.auth[0].sadb_alg_id = SADB_AALG_SHA1HMAC;
	algs.enc[0].sadb_alg_id = SADB_X_EALG_AESCBC;
	algs.enc[1].sadb_alg_id = SADB_X_EALG_AES_GCM_ICV16;
	n = pfk_build_acquire(out, sizeof(out), 1, SADB_SATYPE_ESP, &p->sel.src.addr,
			      &p->sel.dst.addr, p, &algs);
	check_built(n);
	check(pfk_parse(out, (size_t)n, &m2) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct dps_policy p;
	struct pfk_msg m;
	struct dps_sa sa;
	long n;

	if (pfk_parse(data, size, &m) != 0) {
		if (size >= sizeof(struct sadb_msg)) {
			n = pfk_build_error(out, sizeof(out), (const void *)data, 22);
			check(n == sizeof(struct sadb_msg));
		}
		return 0;
	}
	if (pfk_sa_from_msg(&m, &sa) == 0)
		sa_round_trip(&m, &sa);
	if (pfk_policy_from_msg(&m, &p) == 0)
		policy_round_trip(&m, &p);
	return 0;
}

#ifdef PFK_FUZZ_REPLAY
#include <dirent.h>
#include <stdio.h>

static int replay_file(const char *path)
{
	static uint8_t buf[PFK_MSG_MAX + 1];
	FILE *f = fopen(path, "rb");
	size_t n;

	if (!f) {
		perror(path);
		return 1;
	}
	n = fread(buf, 1, sizeof(buf), f);
	fclose(f);
	LLVMFuzzerTestOneInput(buf, n);
	return 0;
}

int main(int argc, char **argv)
{
	int err = 0, runs = 0;

	for (int i = 1; i < argc; i++) {
		DIR *d = opendir(argv[i]);
		struct dirent *de;
		char path[4096];

		if (!d) {
			err |= replay_file(argv[i]);
			runs++;
			continue;
		}
		while ((de = readdir(d))) {
			if (de->d_name[0] == '.')
				continue;
			snprintf(path, sizeof(path), "%s/%s", argv[i], de->d_name);
			err |= replay_file(path);
			runs++;
		}
		closedir(d);
	}
	printf("replayed %d inputs\n", runs);
	return err || !runs;
}
#endif
