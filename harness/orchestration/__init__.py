# SPDX-License-Identifier: GPL-2.0
"""The stages put together: pipeline, jobs and shards, bisection, merge, range-diff."""
