// SPDX-License-Identifier: GPL-2.0
/*
 * The skeleton of 7.3's tools/testing/selftests/futex/functional/robust_list.c: its
 * kselftest_harness declarations in order, bodies left out. The test of sources.py checks
 * that it names exactly the 17 subtests the 7.3 program printed
 * (tests/data/ktap/guest-7.3-robust_list.txt).
 */
#include "kselftest_harness.h"

TEST(test_robustness) {}
TEST(test_set_robust_list_invalid_size) {}
TEST(test_get_robust_list_self) {}
TEST(test_get_robust_list_child) {}
TEST(test_set_list_op_pending) {}
TEST(test_robust_list_multiple_elements) {}
TEST(test_circular_list) {}

FIXTURE(vdso_unlock)
{
	void *fn;
};

FIXTURE_VARIANT(vdso_unlock)
{
	int bits;
};

FIXTURE_SETUP(vdso_unlock) {}
FIXTURE_TEARDOWN(vdso_unlock) {}

FIXTURE_VARIANT_ADD(vdso_unlock, 32)
{
	.bits = 32,
};

FIXTURE_VARIANT_ADD(vdso_unlock, 64)
{
	.bits = 64,
};

TEST_F(vdso_unlock, test_robust_try_unlock_uncontended) {}
TEST_F(vdso_unlock, test_robust_try_unlock_contended) {}

FIXTURE(futex_op) {};

FIXTURE_VARIANT(futex_op)
{
	unsigned int op;
};

FIXTURE_SETUP(futex_op) {}
FIXTURE_TEARDOWN(futex_op) {}

FIXTURE_VARIANT_ADD(futex_op, wake) {};
FIXTURE_VARIANT_ADD(futex_op, wake_bitset) {};
FIXTURE_VARIANT_ADD(futex_op, unlock_pi) {};
FIXTURE_VARIANT_ADD(futex_op, wake32) {};
FIXTURE_VARIANT_ADD(futex_op, wake_bitset32) {};
FIXTURE_VARIANT_ADD(futex_op, unlock_pi32) {};

TEST_F(futex_op, test_futex_robust_unlock) {}

TEST_HARNESS_MAIN
