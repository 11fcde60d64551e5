# SPDX-License-Identifier: GPL-2.0
"""--bisect on the real kernel: a three-patch series whose middle patch is a mutant
(patches/mutants/no-fixup-call.patch between two harmless comments, in
tests/data/bisect/series.mbox) is bisected to that patch."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from test_e2e import harness_run

SERIES = Path(__file__).resolve().parent / "data" / "bisect" / "series.mbox"

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def bisected(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return harness_run(tmp_path_factory.mktemp("e2e-bisect") / "run", ["--bisect"], [SERIES],
                       40 * 60)


def test_the_mutant_in_the_middle_is_the_first_bad_patch(bisected: dict[str, Any]) -> None:
    bisect = bisected["revisions"][1]["bisect"]
    assert bisect["first_bad"] == "2/3 entry: never call futex_fixup_robust_unlock()", \
        bisected["_report"]
    assert "cs-fixup-singlestep-64" in bisect["checks"]
    assert [(s["index"], s["status"]) for s in bisect["steps"]] == [(1, "good"), (2, "bad")]
    bad = bisect["steps"][1]
    assert any(c["name"] == "cs-fixup-singlestep-64" and c["verdict"] == "FAIL"
               for c in bad["checks"])
    assert "first bad: 2/3 entry: never call" in bisected["_report"]
    assert bisected["_exit"] == 1


def test_steps_run_only_the_broken_checks(bisected: dict[str, Any]) -> None:
    bisect = bisected["revisions"][1]["bisect"]
    for step in bisect["steps"]:
        assert {c["name"] for c in step["checks"]} <= set(bisect["checks"])
    print("bisect wall time:", sum(s["seconds"] for s in bisect["steps"]), "s")
