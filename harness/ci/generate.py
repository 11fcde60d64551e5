# SPDX-License-Identifier: GPL-2.0
"""CI pipelines for a kernel tree (GitHub Actions, GitLab CI), rendered from the templates in
data/ci/: a job per shard, the harness's cache, run dirs as artifacts, and a merge job."""

from __future__ import annotations

import hashlib
import json
import shlex
import string
from dataclasses import dataclass
from pathlib import Path

from harness.data import DATA, read_toml
from harness.errors import UserError
from harness.files import write_atomic

CI_DATA = DATA / "ci"
# Run options the pipeline sets itself: each job's share and where its results go.
OWNED_OPTIONS = ("--shard", "--run-dir", "--kernel-src")


@dataclass(frozen=True)
class CiKind:
    """One kind of pipeline, from [kinds.NAME] of data/ci/ci.toml."""

    name: str
    template: Path
    schema: str
    example: str
    install_as: str
    max_shards: int


@dataclass(frozen=True)
class CiSettings:
    harness_spec: str
    shards: int
    kinds: dict[str, CiKind]

    def kind(self, name: str) -> CiKind:
        """The kind called name; an unknown name lists the valid ones."""
        if name not in self.kinds:
            raise UserError(f"no CI pipeline kind called {name!r}; "
                            f"choose one of: {', '.join(sorted(self.kinds))}")
        return self.kinds[name]


@dataclass(frozen=True)
class CiOptions:
    """What a pipeline runs: how many shards, which harness to install, the kernel tree
    (relative to the checkout) and the options every shard's `futex-harness run` gets."""

    shards: int
    harness_spec: str
    kernel_src: str = "."
    run_args: tuple[str, ...] = ()


class _Template(string.Template):
    # '$' belongs to the shell and to GitHub's ${{ }}: the placeholders are @@name.
    delimiter = "@@"


def load_ci(path: Path = CI_DATA / "ci.toml") -> CiSettings:
    raw = read_toml(path)
    kinds = {
        name: CiKind(name, path.parent / k["template"], k["schema"], k["example"],
                     k["install_as"], int(k["max_shards"]))
        for name, k in raw["kinds"].items()
    }
    return CiSettings(raw["harness_spec"], int(raw["shards"]), kinds)


def default_options(settings: CiSettings | None = None) -> CiOptions:
    """The options the committed examples under ci/ are generated with."""
    settings = settings or load_ci()
    return CiOptions(settings.shards, settings.harness_spec)


def render(kind: str, options: CiOptions) -> str:
    """The pipeline of the given kind (github or gitlab) as text."""
    settings = load_ci()
    spec = settings.kind(kind)
    check_options(options, spec)
    values = {
        "command": shlex.join(generator_argv(kind, options, settings)),
        "harness_spec": json.dumps(options.harness_spec),  # a YAML double-quoted scalar
        "shards": str(options.shards),
        "shard_list": json.dumps(list(range(1, options.shards + 1))),
        "run_args": shlex.join(shard_run_args(options)),
        # Cache keys allow no '/' (GitLab) or ',' (GitHub); a spec may hold both.
        "cache_tag": hashlib.sha256(options.harness_spec.encode()).hexdigest()[:12],
    }
    return _Template(spec.template.read_text()).substitute(values)


def write_pipeline(text: str, out: Path) -> None:
    """Write a rendered pipeline to out, creating its directory."""
    out.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(out, text.encode())


def shard_run_args(options: CiOptions) -> list[str]:
    """Every shard's `futex-harness run` options, before its --shard and --run-dir."""
    tree = [] if _gives(options.run_args, "--debian") else ["--kernel-src", options.kernel_src]
    return [*tree, *options.run_args]


def generator_argv(kind: str, options: CiOptions, settings: CiSettings) -> list[str]:
    """The `futex-harness ci` command line that renders this pipeline again."""
    argv = ["futex-harness", "ci", kind, "--shards", str(options.shards)]
    if options.harness_spec != settings.harness_spec:
        argv += ["--harness-spec", options.harness_spec]
    if options.kernel_src != ".":
        argv += ["--kernel-src", options.kernel_src]
    return [*argv, *options.run_args]


def check_options(options: CiOptions, kind: CiKind) -> None:
    """Refuse what would make a broken pipeline, naming the culprit."""
    if not 1 <= options.shards <= kind.max_shards:
        raise UserError(f"--shards {options.shards}: a {kind.name} pipeline takes 1 to "
                        f"{kind.max_shards}")
    if not options.harness_spec.strip():
        raise UserError("--harness-spec is empty; give a pip requirement or URL")
    for text in (options.harness_spec, options.kernel_src, *options.run_args):
        # A newline would break the YAML block; GitHub evaluates ${{ }} even in quotes.
        if "\n" in text or "\r" in text or "${{" in text:
            raise UserError(f"{text!r} cannot go into a pipeline: no newlines or '${{{{'")
    owned = [o for o in OWNED_OPTIONS if _gives(options.run_args, o)]
    if owned:
        raise UserError(f"{', '.join(owned)}: the pipeline sets these itself")
    if _gives(options.run_args, "--debian") and options.kernel_src != ".":
        raise UserError("--kernel-src and --debian choose the tree two ways; give one")


def _gives(args: tuple[str, ...], option: str) -> bool:
    return any(a == option or a.startswith(option + "=") for a in args)
