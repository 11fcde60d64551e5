# SPDX-License-Identifier: GPL-2.0
"""Putting the stages together: the pipeline, jobs and shards, bisection, merging
shards, range-diff."""
