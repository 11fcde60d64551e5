# SPDX-License-Identifier: GPL-2.0
"""Every Debian release pinned in settings.toml on every config variant in kernel-config/
(found there, so a new release or variant is covered without touching this file): the source
and config stages for real, no build. Each must configure. A kernel without the series (6.12)
fails at the checks, never at the config: its series options are reported absent, and what
its Kconfig lacks that the fragments turn off is off already.

The trees come through the harness's own apt state and cache (downloaded once per version,
about 2 minutes each). Each (release, variant) has its own build dir under
~/.cache/futex-harness/config-check/, apart from the pipeline's: a later run skips the config
while nothing that makes it changed (seconds for all), and a run of the harness building in
its own build dir at the same time is never disturbed. The configs run side by side, one per
CPU. Each step's time is printed at the end."""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import SUMMARY

from harness.data import KERNEL_CONFIG
from harness.data.expectations import expectation_names, load_expectations
from harness.data.settings import load_settings
from harness.errors import HarnessError
from harness.paths import cache_root
from harness.stages import kconfig, kconfig_variants, source

SETTINGS = load_settings()
RELEASES = sorted(SETTINGS.releases)
VARIANTS = kconfig_variants.variant_names(KERNEL_CONFIG)
COMBOS = [(r, v) for r in RELEASES for v in VARIANTS]

pytestmark = pytest.mark.e2e


@dataclass(frozen=True)
class Configured:
    """One (release, variant): its config, or the error that stopped it, and its time."""

    seconds: float
    result: kconfig.ConfigResult | None = None
    error: str = ""


def config_request(src: source.SourceResult, variant: str, logs: Path) -> kconfig.ConfigRequest:
    """What the pipeline asks for this variant (harness/pipeline.py), in a build dir of its own."""
    base = kconfig_variants.variant_base(KERNEL_CONFIG, variant)
    # A variant with expectations of its own (nocompat) is run with them (--expect).
    expect = variant if variant in expectation_names() else "upstream"
    return kconfig.ConfigRequest(
        src.tree, cache_root() / "config-check" / f"{src.key}-{variant}",
        kconfig_variants.variant_fragments(KERNEL_CONFIG, variant), base or SETTINGS.defconfig,
        SETTINGS.arch, logs, SETTINGS.timeouts.config, SETTINGS.timeouts.config_tool,
        load_expectations(expect).kconfig, variant, indexed=src.owned,
        virtme_items=base is None,
        kbuild_arch=kconfig_variants.variant_arch(KERNEL_CONFIG, variant))


def configure(src: source.SourceResult, variant: str, logs: Path) -> Configured:
    start = time.monotonic()
    try:
        result = kconfig.configure(config_request(src, variant, logs))
    except HarnessError as exc:
        return Configured(time.monotonic() - start, error=str(exc))
    return Configured(time.monotonic() - start, result)


@pytest.fixture(scope="module")
def sources(tmp_path_factory: pytest.TempPathFactory,
            ) -> dict[str, tuple[source.SourceResult, float]]:
    """Each release's tree, and how long the source stage took for it."""
    logs = tmp_path_factory.mktemp("config-kernels")
    found = {}
    for release in RELEASES:
        start = time.monotonic()
        found[release] = (source.prepare_source(source.SourceRequest(
            None, release, cache_root(), logs / release), SETTINGS), time.monotonic() - start)
    return found


@pytest.fixture(scope="module")
def configured(sources: dict[str, tuple[source.SourceResult, float]],
               tmp_path_factory: pytest.TempPathFactory,
               request: pytest.FixtureRequest) -> dict[tuple[str, str], Configured]:
    logs = tmp_path_factory.mktemp("config-logs")
    start = time.monotonic()
    with ThreadPoolExecutor(os.cpu_count() or 1) as pool:
        runs = {(r, v): pool.submit(configure, sources[r][0], v, logs / f"{r}-{v}")
                for r, v in COMBOS}
        done = {combo: job.result() for combo, job in runs.items()}
    lines = timing_lines(sources, done, time.monotonic() - start)
    request.config.stash.setdefault(SUMMARY, []).extend(lines)
    return done


def timing_lines(sources: dict[str, tuple[source.SourceResult, float]],
                 done: dict[tuple[str, str], Configured], total: float) -> list[str]:
    lines = ["", "config of every release and variant (source, then config per variant):"]
    for release in RELEASES:
        src, seconds = sources[release]
        lines.append(f"  {release}: source {seconds:.1f}s ({src.origin})")
        for variant in VARIANTS:
            c = done[(release, variant)]
            how = ("failed" if c.result is None else "skipped, unchanged" if c.result.skipped
                   else "merged and olddefconfig")
            extra = (f"; series absent: {', '.join(c.result.absent)}" if c.result and
                     c.result.absent else "")
            extra += (f"; off already: {', '.join(c.result.gone)}" if c.result and
                      c.result.gone else "")
            lines.append(f"    {variant:<10} {c.seconds:6.1f}s  {how}{extra}")
    lines.append(f"  all {len(done)} configs: {total:.1f}s with {os.cpu_count()} side by side")
    return lines


@pytest.mark.parametrize(("release", "variant"), COMBOS, ids=[f"{r}-{v}" for r, v in COMBOS])
def test_every_release_configures_on_every_variant(
        configured: dict[tuple[str, str], Configured], release: str, variant: str) -> None:
    done = configured[(release, variant)]
    assert done.result is not None, f"{release} on {variant}: {done.error}"
    assert done.result.final and done.result.requested
    # The config checks every requested option stuck; only the series' may be absent.
    expect = variant if variant in expectation_names() else "upstream"
    assert set(done.result.absent) <= set(load_expectations(expect).kconfig)


def test_the_default_release_carries_the_series(
        configured: dict[tuple[str, str], Configured]) -> None:
    """The absent rule must not swallow the series where it is: on the default kernel every
    series option is asked for and sticks."""
    for variant in VARIANTS:
        result = configured[(SETTINGS.debian_default, variant)].result
        assert result is not None and result.absent == (), variant
        assert result.final["FUTEX_ROBUST_UNLOCK"] == "y", variant


def test_every_variant_directory_is_covered() -> None:
    assert {d.name for d in KERNEL_CONFIG.iterdir() if d.is_dir()} | {"vng"} == set(VARIANTS)
