# SPDX-License-Identifier: GPL-2.0
"""Compiled guest binaries, kept in the cache and reused while nothing they are made of
changed: their sources and every header they include (the built tree's uapi headers for
the kernel's selftests), the compiler command line and the compiler's version.

Like ccache's direct mode, a lookup takes two steps: the command, compiler and sources name
a manifest listing the headers the last compile read (from gcc -M); their contents complete
the key of the binary, stored as <cache>/<key>/<name>."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from collections.abc import Sequence
from pathlib import Path

from harness.commands import run
from harness.errors import CommandError

log = logging.getLogger("harness")

# Bump when the key's recipe changes.
FORMAT = "1"


class BinaryCache:
    """One per guest plan: it remembers file digests and compiler versions meanwhile, and
    counts what it compiled and what it reused. root None: always compile."""

    def __init__(self, root: Path | None) -> None:
        self.root = root
        self.compiled = 0
        self.reused = 0
        self._digests: dict[Path, str] = {}
        self._compilers: dict[str, str] = {}

    def compile(self, argv: Sequence[str | os.PathLike[str]], output: Path, *, log_file: Path,
                timeout: float, cwd: Path | None = None) -> bool:
        """Make output with argv (a compiler command without -o); True when reused.
        Raises CommandError when the compiler fails."""
        args = [str(a) for a in argv]
        if self.root is None:
            self._compile(args, output, log_file, timeout, cwd)
            return False
        front = self._front_key(args, cwd, log_file, timeout)
        key = self._full_key(front)
        if key and self._reuse(self.root / key / output.name, output):
            self.reused += 1
            log.debug("guest build: reused %s (%s)", output.name, key[:12])
            return True
        self._compile(args, output, log_file, timeout, cwd)
        try:
            self._store(args, output, front, log_file, timeout, cwd)
        except (OSError, CommandError) as exc:
            # The binary is built; a cache that cannot keep it costs only the next compile.
            log.warning("guest build: %s not kept in the cache: %s", output.name, exc)
        return False

    def _compile(self, args: list[str], output: Path, log_file: Path, timeout: float,
                 cwd: Path | None) -> None:
        run([*args, "-o", output], log_file=log_file, timeout=timeout, cwd=cwd)
        self.compiled += 1

    def _front_key(self, args: list[str], cwd: Path | None, log_file: Path,
                   timeout: float) -> str:
        """The command, where it runs, the compiler's and C library's versions, and the
        contents of the sources named on the command line."""
        sources = [self.digest(p) for p in _sources(args, cwd)]
        parts = [FORMAT, args, str(cwd or ""), self._compiler(args[0], log_file, timeout),
                 os.confstr("CS_GNU_LIBC_VERSION") or "", sources]
        return hashlib.sha256(json.dumps(parts).encode()).hexdigest()

    def _full_key(self, front: str) -> str | None:
        """The front key completed with the digests of the files the manifest lists."""
        assert self.root is not None
        try:
            deps = json.loads((self.root / "manifests" / f"{front}.json").read_text())["deps"]
        except (OSError, ValueError, KeyError, TypeError):
            return None
        return _complete(front, [(d, self.digest(Path(d))) for d in deps])

    def _store(self, args: list[str], output: Path, front: str, log_file: Path,
               timeout: float, cwd: Path | None) -> None:
        """Keep the binary and the manifest of what it was made from."""
        assert self.root is not None
        deps = _dependencies(args, self.root, log_file, timeout, cwd)
        key = _complete(front, [(d, self.digest(Path(d))) for d in deps])
        entry = self.root / key / output.name
        entry.parent.mkdir(parents=True, exist_ok=True)
        _atomic_copy(output, entry)
        manifest = self.root / "manifests" / f"{front}.json"
        manifest.parent.mkdir(parents=True, exist_ok=True)
        scratch = manifest.with_name(f"{manifest.name}.{os.getpid()}")
        scratch.write_text(json.dumps({"deps": deps}) + "\n")
        scratch.replace(manifest)

    def _reuse(self, entry: Path, output: Path) -> bool:
        if not entry.is_file():
            return False
        output.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(entry, output)
        return True

    def digest(self, path: Path) -> str:
        """sha256 of a file's content ('missing' when it is gone), once per cache object."""
        if path not in self._digests:
            try:
                self._digests[path] = hashlib.sha256(path.read_bytes()).hexdigest()
            except OSError:
                self._digests[path] = "missing"
        return self._digests[path]

    def _compiler(self, name: str, log_file: Path, timeout: float) -> str:
        """The compiler's own account of its version (gcc --version)."""
        if name not in self._compilers:
            self._compilers[name] = run([name, "--version"], log_file=log_file,
                                        timeout=timeout).tail
        return self._compilers[name]


def _sources(args: list[str], cwd: Path | None) -> list[Path]:
    """The input files of a compiler command: its arguments that are not options."""
    found = []
    for arg in args[1:]:
        path = (cwd or Path.cwd()) / arg
        if not arg.startswith("-") and path.is_file():
            found.append(path)
    return found


def _complete(front: str, deps: list[tuple[str, str]]) -> str:
    text = front + "".join(f"\n{path}\0{digest}" for path, digest in deps)
    return hashlib.sha256(text.encode()).hexdigest()


def _dependencies(args: list[str], root: Path, log_file: Path, timeout: float,
                  cwd: Path | None) -> list[str]:
    """Every file the compile read, from the preprocessor (gcc -M), as absolute paths."""
    rules = root / "tmp" / f"deps.{os.getpid()}"
    rules.parent.mkdir(parents=True, exist_ok=True)
    run([*args, "-M"], log_file=log_file, timeout=timeout, cwd=cwd, stdout_file=rules)
    words = rules.read_text().replace("\\\n", " ").split()
    rules.unlink()
    base = cwd or Path.cwd()
    return sorted({str((base / w).resolve()) for w in words if not w.endswith(":")})


def _atomic_copy(src: Path, dest: Path) -> None:
    """Two runs may store the same entry at once; each renames a whole file into place."""
    scratch = dest.with_name(f".{dest.name}.{os.getpid()}")
    shutil.copy2(src, scratch)
    scratch.replace(dest)
