# SPDX-License-Identifier: GPL-2.0
"""The plan, its shards and their merge: pure checks, then the whole command line on the
fake tree (one run against three shard processes' worth of runs, merged)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from fake_tree import fake_tree, fragment
from plans import FAKEBIN
from test_patches import mail

from harness.cli import main
from harness.errors import UserError
from harness.orchestration.jobs import (
    JobRequest,
    Kernel,
    Revision,
    list_jobs,
    parse_shard,
    revisions,
)
from harness.orchestration.merge import load_shards, merge
from harness.outputs import report
from harness.outputs.record import Revision as Record
from harness.outputs.record import Run
from harness.paths import revision_dir
from harness.verdicts.checks import Check, Verdict


def plan_of(n_series: int, kernels: tuple[str, ...] = ("7.3",),
            variants: tuple[str, ...] = ("lean",), **options: str) -> JobRequest:
    revs = revisions([f"s{i}.patch" for i in range(n_series)], None)
    return JobRequest(tuple(Kernel(k) for k in kernels), variants, revs,
                       tuple(sorted(options.items())))


def test_shards_are_balanced_cover_every_job_once_and_carry_their_bases() -> None:
    plan = list_jobs(plan_of(7, kernels=("7.3", "7.2"), variants=("lean", "nocompat")))
    assert len(plan.jobs) == 2 * 2 * 8
    for total in (1, 2, 3, 5, 28, 40):
        shards = plan.shards(total)
        tested = [j.id for s in shards for j in s if not j.is_base]
        assert sorted(tested) == sorted(j.id for j in plan.jobs if not j.is_base)
        sizes = [sum(not j.is_base for j in s) for s in shards]
        assert max(sizes) - min(sizes) <= 1
        for share in shards:
            groups = {(j.kernel, j.variant) for j in share}
            bases = {(j.kernel, j.variant) for j in share if j.is_base}
            assert groups == bases, "a shard tests a column without its base"
            # Same tree, same variant: one after another, in plan order.
            order = [plan.jobs.index(j) for j in share]
            assert order == sorted(order)
    assert plan.shards(3) == list_jobs(plan_of(7, ("7.3", "7.2"), ("lean", "nocompat"))).shards(3)


def test_labels_name_kernel_and_variant_only_when_the_request_spans_several() -> None:
    assert [j.label for j in list_jobs(plan_of(1)).jobs] == ["base", "s0"]
    two = list_jobs(plan_of(1, kernels=("7.3", "7.2")))
    assert [j.label for j in two.jobs] == ["base@7.3-lean", "s0@7.3-lean",
                                           "base@7.2-lean", "s0@7.2-lean"]
    assert [j.id for j in two.jobs][:2] == ["7.3:lean:base", "7.3:lean:s0"]


def test_every_revision_dir_is_one_virtme_ng_takes_as_rwdir(tmp_path: Path) -> None:
    """A multi-kernel run's labels hold '@' (and '~' for a release candidate), which
    virtme-ng refuses in --rwdir: the guest directory of such a run never booted."""
    from virtme.commands.run import _RWDIR_RE

    labels = [j.label for j in list_jobs(plan_of(1, kernels=("7.3", "7.2"))).jobs]
    labels += ["base@7.3~rc7-1~exp1-minimal", "series/bisect/02"]
    for label in labels:
        assert _RWDIR_RE.match(str(revision_dir(tmp_path, label) / "guest")), label
    assert revision_dir(tmp_path, "base@7.2-minimal").name == "base_7.2-minimal"
    # The fooled case: the label itself as the directory name.
    assert not _RWDIR_RE.match(str(tmp_path / "base@7.2-minimal" / "guest"))


def test_request_id_is_the_request() -> None:
    assert list_jobs(plan_of(3)).request == list_jobs(plan_of(3)).request
    assert list_jobs(plan_of(3)).request != list_jobs(plan_of(2)).request
    assert list_jobs(plan_of(3)).request != list_jobs(plan_of(3, expect="early-rfc")).request
    assert list_jobs(plan_of(3)).request != list_jobs(plan_of(3, kernels=("7.2",))).request


def test_only_bases_split_among_themselves_and_spare_shards_are_empty() -> None:
    plan = list_jobs(plan_of(0, kernels=("7.3", "7.2")))
    assert [[j.id for j in s] for s in plan.shards(3)] == [["7.3:lean:base"],
                                                           ["7.2:lean:base"], []]


@pytest.mark.parametrize("text", ["1", "0/3", "4/3", "a/b", "1/0", "-1/2"])
def test_bad_shard(text: str) -> None:
    with pytest.raises(UserError, match="--shard"):
        parse_shard(text)


def test_same_series_twice_is_refused() -> None:
    with pytest.raises(UserError, match="twice"):
        list_jobs(JobRequest((Kernel("7.3"),), ("lean", "lean"), (Revision("base"),)))


def shard_run(index: int, total: int, revs: list[Record], plan: list[str]) -> Run:
    return Run("cmd", f"2026-11-29T0{index}:00", revs, "req1", f"{index}/{total}",
               [r.job for r in revs], plan)


def rev(label: str, *verdicts: Verdict) -> Record:
    return Record(label, job=f"7.3:lean:{label}",
                  checks=[Check(f"c{i}", v) for i, v in enumerate(verdicts)])


def write(tmp_path: Path, name: str, run: Run) -> Path:
    report.write_reports(tmp_path / name, run)
    return tmp_path / name


PLAN = ["7.3:lean:base", "7.3:lean:a", "7.3:lean:b"]


def test_merge_orders_by_plan_and_keeps_one_base(tmp_path: Path) -> None:
    ok, bad = Verdict.PASS, Verdict.FAIL
    dirs = [write(tmp_path, "s2", shard_run(2, 2, [rev("base", ok), rev("b", bad)], PLAN)),
            write(tmp_path, "s1", shard_run(1, 2, [rev("base", ok), rev("a", ok)], PLAN))]
    merged = merge(load_shards(dirs), "merge")
    assert [r.label for r in merged.revisions] == ["base", "a", "b"]
    assert report.exit_code(merged) == report.EXIT_FAIL
    assert merged.started == "2026-11-29T01:00"


def test_a_base_the_shards_disagree_on_is_a_flaky_base(tmp_path: Path) -> None:
    dirs = [write(tmp_path, "s1", shard_run(1, 2, [rev("base", Verdict.PASS), rev("a")], PLAN)),
            write(tmp_path, "s2", shard_run(2, 2, [rev("base", Verdict.FAIL), rev("b")], PLAN))]
    base = merge(load_shards(dirs), "merge").revisions[0]
    assert base.checks[0].verdict == Verdict.FAIL
    assert base.checks[0].detail == "flaky base: PASS in shard 1/2; FAIL in shard 2/2"


def test_a_missing_or_foreign_shard_is_named(tmp_path: Path) -> None:
    one = write(tmp_path, "s1", shard_run(1, 3, [rev("base")], PLAN))
    three = write(tmp_path, "s3", shard_run(3, 3, [rev("base")], PLAN))
    with pytest.raises(UserError, match=r"shard 2/3 is missing; given: 1/3, 3/3"):
        load_shards([one, three])
    other = shard_run(2, 3, [rev("base")], PLAN)
    other.request = "req2"
    with pytest.raises(UserError, match="different requests"):
        load_shards([one, write(tmp_path, "x", other), three])
    with pytest.raises(UserError, match="given twice"):
        load_shards([one, one, three])


def test_a_shard_that_died_leaves_an_error_not_a_gap(tmp_path: Path) -> None:
    died = shard_run(2, 2, [rev("base", Verdict.PASS)], PLAN)
    died.jobs = ["7.3:lean:base", "7.3:lean:b"]
    dirs = [write(tmp_path, "s1", shard_run(1, 2, [rev("base", Verdict.PASS),
                                                   rev("a", Verdict.PASS)], PLAN)),
            write(tmp_path, "s2", died)]
    merged = merge(load_shards(dirs), "merge")
    assert merged.revisions[2].failed_stage is not None
    assert "shard 2/2 has no result for job 7.3:lean:b" in merged.revisions[2].stages[0].detail
    assert report.exit_code(merged) == report.EXIT_ERROR


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    monkeypatch.setenv("PATH", f"{FAKEBIN}:{os.environ['PATH']}")
    frags = fragment(tmp_path, "s.config", "CONFIG_FUTEX=y\nCONFIG_RSEQ=y\n").parent
    series = tmp_path / "series"
    series.mkdir()
    for i, new in enumerate(("1", "2", "3")):
        (series / f"p{i}.patch").write_text(mail(f"[PATCH] p{i}", "0", new, f"p{i}@x"))
    return {"tree": fake_tree(tmp_path), "frags": frags, "series": series}


def build_args(w: dict[str, Path], run_dir: Path, *extra: str) -> list[str]:
    return ["build", "--kernel-src", str(w["tree"]), "--config-dir", str(w["frags"]),
            "--config-variant", "vng", "--run-dir", str(run_dir),
            *[a for i in range(3) for a in ("--series", str(w["series"] / f"p{i}.patch"))],
            *extra]


def verdicts(run_dir: Path) -> list[tuple[str, str, list[tuple[str, str]]]]:
    record = report.load_record(run_dir)
    return [(r.label, r.job, [(c.name, c.verdict.value) for c in r.checks])
            for r in record.revisions]


def test_three_shards_merged_equal_one_run(world: dict[str, Path], tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    single = main(build_args(world, tmp_path / "one"))
    codes = [main(build_args(world, tmp_path / f"shard{i}", "--shard", f"{i}/3"))
             for i in (1, 2, 3)]
    assert main(["plan", *build_args(world, tmp_path / "unused")[1:], "--shards", "3",
                 "--format", "json"]) == 0
    capsys.readouterr()
    merged = main(["merge", *(str(tmp_path / f"shard{i}") for i in (3, 1, 2)),
                   "--run-dir", str(tmp_path / "merged")])
    assert "== comparison" in capsys.readouterr().out
    assert merged == single == max(codes)
    assert verdicts(tmp_path / "merged") == verdicts(tmp_path / "one")
    assert len(verdicts(tmp_path / "one")) == 4
    assert (tmp_path / "merged" / "p1" / "logs").is_dir()
    assert "== comparison" in (tmp_path / "merged" / "report.txt").read_text()


def test_plan_json_lists_the_shards(world: dict[str, Path], tmp_path: Path,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", *build_args(world, tmp_path / "x")[1:], "--shards", "2",
                 "--format", "json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [len(s) for s in out["shards"]] == [3, 2]
    assert out["jobs"][0]["id"].endswith(":vng:base")


def test_merge_refuses_a_request_mix(world: dict[str, Path], tmp_path: Path,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    main(build_args(world, tmp_path / "a", "--shard", "1/2"))
    main(build_args(world, tmp_path / "b", "--shard", "2/2", "--expect", "early-rfc"))
    capsys.readouterr()
    assert main(["merge", str(tmp_path / "a"), str(tmp_path / "b"),
                 "--run-dir", str(tmp_path / "m")]) == 2
    assert "different requests" in capsys.readouterr().err
