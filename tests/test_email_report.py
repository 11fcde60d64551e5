# SPDX-License-Identifier: GPL-2.0
"""The mailing-list reply, from records shaped like real runs: a passing base, a mutant
failing with counters, a bisect result, a revision that stopped at a stage."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from harness.cli import main
from harness.data.email import load_email_spec
from harness.data.guest_tests import load_guest_tests
from harness.outputs.email import render_email, wrap_command
from harness.outputs.record import Bisect, Revision, Run, Stage
from harness.outputs.report import write_reports
from harness.verdicts.checks import Check, Verdict
from harness.verdicts.counters import judge_counters

TESTS = {t.name: t for t in load_guest_tests()}
ORIGIN = "Debian linux-source-7.3 7.3.4-1~bpo13+1 (trixie-backports)"
COMMAND = ("futex-harness run --series msgid:20261102100000.0-robust-v1@example.org "
           "--mbox /home/maintainer/mail/robust-unlock.mbox -v 1 -v 2 "
           "--run-dir runs/robust-unlock")
TESTER = "A Tester <tester@example.org>"
# What cs-fixup-singlestep-64 counts on pristine 7.3 (runs/bench-flakiness-stress).
SINGLESTEP = {"iterations": 100, "steps": 1100, "hits": 300, "hits_zf_set": 200,
              "hits_zf_clear": 100, "hits_success_label": 100, "bad_steps": 0,
              "first_bad_offset": 0, "dx_mismatch": 0, "semantics_bad": 0, "canary_bad": 0,
              "window_stops": 200, "window_bad": 0, "old_hits_zf_set": 0, "stale_fixups": 0}
REMAP = {"rounds": 18, "window_hits": 18, "not_reached": 0, "zf_clear_stops": 0,
         "corruptions": 0, "owner_died": 0, "wrong_values": 0, "last_value": 0,
         "first_corrupt_variant": 0}


def judged(name: str, counters: dict[str, int]) -> Check:
    return judge_counters(TESTS[name], counters)


def revision(label: str, checks: list[Check], **fields: object) -> Revision:
    rev = Revision(label, ORIGIN, kernel="7.3", variant="lean", accel="tcg",
                   accel_reason="kvm_pvm", checks=checks,
                   stages=[Stage("build", "ok", 30.0)])
    for key, value in fields.items():
        setattr(rev, key, value)
    return rev


def passing() -> list[Check]:
    return [Check("elf-vdso64", Verdict.PASS, "", {"functions": 2, "problems": 0}),
            judged("cs-fixup-singlestep-64", SINGLESTEP),
            judged("remap-exit-vdso-64", REMAP),
            Check("kselftest-futex/futex_numa_mpol/global.futex_numa_mpol",
                  Verdict.NOT_APPLICABLE, "futex2 MPOL hints test requires libnuma 2.0.18+")]


def mutant() -> Revision:
    checks = passing()
    checks[1] = judged("cs-fixup-singlestep-64", {**SINGLESTEP, "bad_steps": 200,
                                                  "first_bad_offset": 21, "window_bad": 200})
    checks[2] = judged("remap-exit-vdso-64", {**REMAP, "corruptions": 18})
    return revision("v2", checks, series="msgid:x", bisect=Bisect(
        ["cs-fixup-singlestep-64"], "2/3 x86/entry: skip the robust unlock fixup"))


def broken() -> Revision:
    detail = ("make O=/home/m/.cache/futex-harness/build/linux-lean bzImage exited with 2 "
              "(log: runs/robust-unlock/v3/logs/build.log)\n--- last output ---\n"
              "kernel/futex/core.c:1187:9: error: implicit declaration of function "
              "'futex_fixup_robust_unlock'")
    return revision("v3", [], series="msgid:y", accel=None,
                    stages=[Stage("build", "error", 41.0, detail)])


def flat(text: str) -> str:
    """The reply with wrapped lines joined again, to look for whole sentences."""
    return re.sub(r"\n {4}", " ", text)


def test_every_line_fits_and_nothing_is_quoted() -> None:
    text = render_email(Run(COMMAND, "", [revision("base", passing()), mutant(), broken()]),
                        TESTER)
    lines = text.splitlines()
    assert max(len(ln) for ln in lines) <= 72
    assert not [ln for ln in lines if ln.startswith(">") or ln.startswith(("diff ", "@@"))]
    assert "Tested-by" not in text  # v2 failed: say nothing about it


def test_passing_base_failing_mutant_bisect_and_stage_error() -> None:
    text = render_email(Run(COMMAND, "", [revision("base", passing()), mutant(), broken()]))
    blocks = text.split("\n\n")
    assert " ".join(blocks[0].splitlines()) == (
        "futex-harness results (x86 vDSO robust-futex unlock tests), overall ERROR; "
        "revisions: base, v2, v3.")
    assert blocks[1] == (
        "base: PASS, 4 checks: 3 passed, 0 failed, 1 N/A\n"
        f"  kernel: {ORIGIN}\n"
        "  config: lean; accelerator: tcg")
    v2 = flat(blocks[2])
    assert v2.startswith("v2: FAIL, 4 checks: 1 passed, 2 failed, 1 N/A\n")
    assert "  first bad patch: 2/3 x86/entry: skip the robust unlock fixup\n" in v2
    assert ("  - cs-fixup-singlestep-64: FAIL bad_steps=200: pop not cleared at 200 stops "
            "after a successful cmpxchg (or changed after a failed one)\n") in v2
    assert ("  - remap-exit-vdso-64: FAIL corruptions=18: the kernel wrote FUTEX_OWNER_DIED "
            "into memory mapped over a released lock 18 times") in v2
    v3 = flat(blocks[3])
    assert "  config: lean; accelerator: none (not booted)\n" in v3
    assert ("  - stopped at the build stage: make "
            "O=/home/m/.cache/futex-harness/build/linux-lean bzImage exited with 2 (log: "
            "runs/robust-unlock/v3/logs/build.log) ... kernel/futex/core.c:1187:9: error: "
            "implicit declaration of function 'futex_fixup_robust_unlock'") in v3
    assert blocks[4].splitlines() == ["To reproduce (the first line of harness.log):",
                                      *wrap_command(COMMAND, 72)]


def test_tested_by_only_when_everything_passed() -> None:
    clean = Run(COMMAND, "", [revision("base", passing()), revision("v2", passing())])
    text = render_email(clean, TESTER)
    assert text.endswith("\n\nTested-by: A Tester <tester@example.org>\n")
    assert "Tested-by" not in render_email(clean, None)


def test_checks_without_a_counter_line_fall_back_to_their_detail() -> None:
    long_name = "kselftest-futex/futex_requeue_pi/args.t_2000000000_broadcast_owner." \
                "futex_requeue_pi"
    checks = [
        Check("elf-vdso64", Verdict.FAIL,
              "vdso64: export __vdso_futex_robust_list32_try_unlock missing",
              {"functions": 1, "problems": 1}),
        Check(long_name, Verdict.FAIL, "FAIL: futex_requeue_pi.c:123: returned -1\nmore"),
        judged("remap-exit-legacy", {**REMAP, "corruptions": 0}),
        Check("console", Verdict.FAIL, "1 kernel report(s):\nline 88: [oops] Oops: int3",
              {"oops": 1}),
        Check("vdso-mremap", Verdict.TIMEOUT, "killed after 120s; no stderr"),
        Check("fork-exec-64", Verdict.ERROR, "no result: the guest never ran this test"),
    ]
    text = render_email(Run("", "", [revision("v1", checks)]))
    assert max(len(ln) for ln in text.splitlines()) <= 72
    lines = flat(text)
    assert ("  - elf-vdso64: FAIL: vdso64: export __vdso_futex_robust_list32_try_unlock "
            "missing\n") in lines
    assert "FAIL: FAIL: futex_requeue_pi.c:123: returned -1 more" in lines
    assert ("  - remap-exit-legacy: INCONCLUSIVE owner_died=0: the kernel never wrote "
            "FUTEX_OWNER_DIED over the old unlock's page") in lines
    assert "  - console: FAIL: 1 kernel report(s): line 88: [oops] Oops: int3\n" in lines
    assert "  - vdso-mremap: TIMEOUT: killed at its time limit: killed after 120s" in lines
    assert ("  - fork-exec-64: ERROR: no verdict: no result: the guest never ran this "
            "test\n") in lines
    assert "To reproduce" not in text  # no command recorded, nothing to say


@pytest.mark.parametrize("command", [
    COMMAND,
    "futex-harness run --series https://lore.kernel.org/lkml/"
    "20251216-robust-unlock-v3-0-0123456789abcdef0123456789abcdef@linutronix.de/ -v 3",
    "futex-harness run --kernel-src '/home/m/src/linux tree' --series \"it's.mbx\" "
    "--run-dir /very/long/path/" + "x" * 150 + "/with spaces and 'quotes'/end",
    "futex-harness report runs/1",
])
def test_the_wrapped_command_is_the_same_argv(command: str) -> None:
    import shlex

    lines = wrap_command(command, 72)
    assert max(len(ln) for ln in lines) <= 72
    script = "printf '%s\\0' " + "\n".join(lines).lstrip()
    out = subprocess.run(["sh", "-c", script], check=True, capture_output=True, text=True)
    assert out.stdout.split("\0")[:-1] == shlex.split(command)


def test_every_failing_counter_is_explained() -> None:
    spec = load_email_spec()
    counters = {k for t in TESTS.values() for k in t.fail_if}
    assert sorted(counters - set(spec.failed)) == []
    for line in [*spec.failed.values(), *spec.unreached.values(), *spec.fallback.values()]:
        line.format_map({"n": 7, "counter": "x", "detail": "d", "stage": "build"})


def git_identity(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "gitconfig"
    config.write_text("[user]\n\tname = A Tester\n\temail = tester@example.org\n")
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(config))


def test_report_format_email(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                             capsys: pytest.CaptureFixture[str]) -> None:
    write_reports(tmp_path / "ok", Run(COMMAND, "", [revision("base", passing())]))
    write_reports(tmp_path / "bad", Run(COMMAND, "", [revision("base", passing()), mutant()]))
    # No identity configured: no Tested-by, however green the run.
    assert main(["report", str(tmp_path / "ok"), "--format", "email"]) == 0
    assert "Tested-by" not in capsys.readouterr().out
    git_identity(tmp_path, monkeypatch)
    assert main(["report", str(tmp_path / "ok"), "--format", "email"]) == 0
    assert capsys.readouterr().out.endswith(f"\nTested-by: {TESTER}\n")
    assert main(["report", str(tmp_path / "bad"), "--format", "email"]) == 1
    out = capsys.readouterr().out
    assert "Tested-by" not in out and "first bad patch: 2/3" in out
    assert main(["report", str(tmp_path / "bad")]) == 1
    assert "== comparison" in capsys.readouterr().out


GOLDEN = Path(__file__).parent / "data" / "email" / "session.txt"


def session() -> Run:
    """The README's maintainer session: v1 and v2 of a thread, v2 bisected to a patch."""
    from harness.outputs.record import Changes, PatchChange

    v1 = revision("v1", passing(), series=f"msgid:{COMMAND.split('msgid:')[1].split()[0]}")
    v2 = mutant()
    v2.series = v1.series
    v2.changes = Changes("v1", (
        PatchChange("!", "1/3 futex: robust unlock in the vDSO",
                    "1/3 futex: robust unlock in the vDSO"),
        PatchChange("!", "2/3 x86/entry: fix up the robust unlock",
                    "2/3 x86/entry: skip the robust unlock fixup"),
        PatchChange("=", "3/3 selftests/futex: vDSO unlock", "3/3 selftests/futex: vDSO unlock"),
    ))
    return Run(COMMAND, "", [revision("base", passing()), v1, v2])


def test_the_readme_session_reply() -> None:
    """The reply in the README is this test's output, byte for byte."""
    text = render_email(session(), TESTER)
    assert text == GOLDEN.read_text()
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    assert "\n".join("    " + ln if ln else "" for ln in text.splitlines()) in readme
