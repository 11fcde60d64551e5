# SPDX-License-Identifier: GPL-2.0
"""CI pipelines for a kernel tree (GitHub Actions, GitLab CI), rendered from the templates in
data/ci/: a job per shard, the harness's cache, run dirs as artifacts, and a merge job. The
actions and images they fetch are pinned in data/ci/pins.toml."""

from __future__ import annotations

import hashlib
import json
import re
import shlex
import string
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.data import DATA, read_toml
from harness.errors import UserError
from harness.files import write_atomic

CI_DATA = DATA / "ci"
PINS = CI_DATA / "pins.toml"
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


@dataclass(frozen=True)
class ActionPin:
    """A GitHub Action's release from [actions] of data/ci/pins.toml: its tag and the tag's
    full commit, which is what the pipeline uses."""

    repo: str
    version: str
    sha: str


@dataclass(frozen=True)
class Pins:
    """data/ci/pins.toml: the actions (by owner/name) and images (by name) pipelines fetch."""

    origin: Path
    actions: dict[str, ActionPin]
    images: dict[str, str]

    def uses(self, action: str) -> str:
        """A `uses:` value for action (owner/name, or owner/name/path): its repository's
        commit, with the release tag as a YAML comment after it."""
        repo = "/".join(action.split("/")[:2])
        if repo not in self.actions:
            raise UserError(f"{action}: {self.origin} [actions] pins no {repo}; "
                            f"it pins: {', '.join(sorted(self.actions)) or 'nothing'}")
        pin = self.actions[repo]
        return f"{action}@{pin.sha} # {pin.version}"


class _Template(string.Template):
    # '$' belongs to the shell and to GitHub's ${{ }}: the placeholders are @@name, and an
    # action is @@{owner/name} or @@{owner/name/path}, replaced by its pinned reference.
    delimiter = "@@"
    braceidpattern = r"(?a:[_a-z][_a-z0-9]*|[a-z0-9][a-z0-9_.-]*(?:/[a-z0-9_.-]+)+)"


def load_ci(path: Path = CI_DATA / "ci.toml") -> CiSettings:
    raw = read_toml(path)
    kinds = {
        name: CiKind(name, path.parent / k["template"], k["schema"], k["example"],
                     k["install_as"], int(k["max_shards"]))
        for name, k in raw["kinds"].items()
    }
    return CiSettings(raw["harness_spec"], int(raw["shards"]), kinds)


_REPO = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9_.-]+")
_SHA = re.compile(r"[0-9a-f]{40}")
_VERSION = re.compile(r"v\d+(\.\d+)*")
# [registry[:port]/]name[:tag][@sha256:digest]; pinned takes the tag or the digest.
_IMAGE = re.compile(r"(?:[a-z0-9.-]+(?::\d+)?/)?[a-z0-9][a-z0-9_./-]*"
                    r"(?P<tag>:[A-Za-z0-9_][A-Za-z0-9_.-]*)?(?P<digest>@sha256:[0-9a-f]{64})?")


def load_pins(path: Path = PINS) -> Pins:
    """The pins, checked: a full commit and a release tag for each action, a tag or a digest
    for each image. A broken entry is a UserError naming it."""
    raw = read_toml(path)
    unknown = sorted(set(raw) - {"actions", "images"})
    if unknown:
        raise UserError(f"{path}: unknown tables {unknown}; it has [actions] and [images]")
    actions = {repo: _action_pin(path, repo, entry)
               for repo, entry in raw.get("actions", {}).items()}
    images = {name: _image_pin(path, name, ref) for name, ref in raw.get("images", {}).items()}
    return Pins(path, actions, images)


def _action_pin(path: Path, repo: str, entry: Any) -> ActionPin:
    where = f"{path} [actions] {repo!r}"
    if not _REPO.fullmatch(repo):
        raise UserError(f"{where}: not an owner/name repository")
    if not isinstance(entry, dict) or set(entry) != {"version", "sha"}:
        raise UserError(f"{where}: give exactly {{ version = \"vX.Y.Z\", sha = \"<40 hex>\" }}")
    version, sha = str(entry["version"]), str(entry["sha"])
    if not _SHA.fullmatch(sha):
        raise UserError(f"{where}: sha {sha!r} is not a full commit (40 lowercase hex digits)")
    if not _VERSION.fullmatch(version):
        raise UserError(f"{where}: version {version!r} is not a release tag such as v7.0.1")
    return ActionPin(repo, version, sha)


def _image_pin(path: Path, name: str, ref: Any) -> str:
    image = ref if isinstance(ref, str) else ""
    match = _IMAGE.fullmatch(image)
    if match is None or not (match["digest"] or match["tag"] not in (None, ":latest")):
        raise UserError(f"{path} [images] {name!r}: {ref!r} is not pinned; give name:tag "
                        f"(not latest) or name@sha256:DIGEST")
    return image


def default_options(settings: CiSettings | None = None) -> CiOptions:
    """The options the committed examples under ci/ are generated with."""
    settings = settings or load_ci()
    return CiOptions(settings.shards, settings.harness_spec)


def render(kind: str, options: CiOptions) -> str:
    """The pipeline of the given kind (github or gitlab) as text."""
    settings = load_ci()
    spec = settings.kind(kind)
    check_options(options, spec)
    template = _Template(spec.template.read_text())
    values = {
        "command": shlex.join(generator_argv(kind, options, settings)),
        "harness_spec": json.dumps(options.harness_spec),  # a YAML double-quoted scalar
        "shards": str(options.shards),
        "shard_list": json.dumps(list(range(1, options.shards + 1))),
        "run_args": shlex.join(shard_run_args(options)),
        # Cache keys allow no '/' (GitLab) or ',' (GitHub); a spec may hold both.
        "cache_tag": hashlib.sha256(options.harness_spec.encode()).hexdigest()[:12],
        **pinned_values(template.get_identifiers()),
    }
    try:
        return template.substitute(values)
    except KeyError as exc:
        raise UserError(f"{spec.template}: no value for @@{exc.args[0]}") from exc


def pinned_values(names: list[str]) -> dict[str, str]:
    """The values of a template's pinned placeholders: each @@{owner/name[/path]} and each
    @@image_NAME. data/ci/pins.toml is read only when a template has one."""
    actions = [n for n in names if "/" in n]
    images = [n for n in names if n.startswith("image_")]
    if not actions and not images:
        return {}
    pins = load_pins()
    values = {action: pins.uses(action) for action in actions}
    for name in images:
        image = name.removeprefix("image_")
        if image not in pins.images:
            raise UserError(f"@@{name}: {pins.origin} [images] has no {image!r}; it has: "
                            f"{', '.join(sorted(pins.images)) or 'nothing'}")
        values[name] = pins.images[image]
    return values


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
