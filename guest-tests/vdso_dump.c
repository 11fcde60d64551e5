// SPDX-License-Identifier: GPL-2.0
/*
 * vdso-runtime-image: write the vDSO this process has mapped to a file, so the
 * host can compare it byte for byte with the image it built. If they match, the
 * booted kernel is the one whose range offsets the other tests were given.
 */
#include "vdso_helpers.h"

#include <stdio.h>

int main(int argc, char **argv)
{
	struct test_args o = { 0 };
	uintptr_t start, end;
	FILE *out;

	parse_test_args(argc, argv, &o, "vdso-dump --check NAME --out FILE");
	if (!o.out) {
		fprintf(stderr, "usage: vdso-dump --check NAME --out FILE\n");
		return 2;
	}
	if (vdso_mapping(&start, &end) || start != vdso_base()) {
		fprintf(stderr, "%s: no [vdso] mapping at AT_SYSINFO_EHDR\n", o.check);
		return 3;
	}
	out = fopen(o.out, "wb");
	if (!out || fwrite((void *)start, 1, end - start, out) != end - start || fclose(out)) {
		perror(o.out);
		return 2;
	}
	emit_record(o.check, "bytes", (unsigned long)(end - start), NULL);
	return 0;
}
