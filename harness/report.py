# SPDX-License-Identifier: GPL-2.0
"""Reports from the run record alone: a human table, results.json and JUnit XML."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from harness.errors import InfraError, UserError
from harness.results import Check, Verdict

EXIT_PASS, EXIT_FAIL, EXIT_ERROR = 0, 1, 2
# Characters XML 1.0 cannot carry at all, even escaped.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
# Counters shown in the table; the rest are in results.json.
KEY_COUNTERS = ("iterations", "rounds", "cases", "hits", "hits_zf_set", "bad_steps",
                "window_stops", "window_bad", "stale_fixups", "kills", "window_hits", "fixups",
                "corruptions", "first_corruption_ms", "semantics_bad", "image_mismatch",
                "alt_patched", "functions", "problems")


def revision_exit(rev: dict[str, Any]) -> int:
    """2 if a stage stopped with an error, 1 if any check is not a pass, else 0."""
    if any(s["status"] == "error" for s in rev.get("stages", [])):
        return EXIT_ERROR
    checks = [Check.from_json(c) for c in rev.get("checks", [])]
    return EXIT_PASS if checks and all(c.verdict.ok for c in checks) else EXIT_FAIL


def exit_code(record: dict[str, Any]) -> int:
    revs = record.get("revisions", [])
    return max((revision_exit(r) for r in revs), default=EXIT_ERROR)


def verdict_word(code: int) -> str:
    return {EXIT_PASS: "PASS", EXIT_FAIL: "FAIL"}.get(code, "ERROR")


def _counters(check: Check) -> str:
    shown = [f"{k}={v}" for k, v in check.counters.items() if k in KEY_COUNTERS]
    return " ".join(shown)


def render_table(record: dict[str, Any]) -> str:
    """The table a user reads: one row per stage and per check, a verdict per revision."""
    out = []
    for rev in record.get("revisions", []):
        out.append(f"== {rev['label']}: {rev.get('origin', '')}")
        if rev.get("applied"):
            out.append("   series: " + "; ".join(rev["applied"]))
        if rev.get("target"):
            out.append(f"   target: {rev['target']}")
        if rev.get("accel"):
            out.append(f"   accelerator: {rev['accel']} ({rev.get('accel_reason', '')})")
        for b in rev.get("boots", []):
            if b.get("qemu_opts"):
                out.append(f"   {b['suite']} suite ran with QEMU {' '.join(b['qemu_opts'])}")
        out.append(f"   {'STAGE / CHECK':<28} {'VERDICT':<13} {'TIME':>7}  COUNTERS / DETAIL")
        for stage in rev.get("stages", []):
            out.append(f"   {'stage ' + stage['name']:<28} {stage['status']:<13} "
                       f"{stage['seconds']:>6.1f}s  {stage.get('detail', '')}".rstrip())
        for raw in rev.get("checks", []):
            c = Check.from_json(raw)
            shown = _counters(c)
            extra = " ".join(w for w in c.detail.split() if w not in shown.split())
            detail = " ".join(x for x in (shown, extra) if x)
            out.append(f"   {c.name:<28} {c.verdict.value:<13} {c.seconds:>6.1f}s  "
                       f"{detail}".rstrip())
        out.append(f"   verdict: {verdict_word(revision_exit(rev))}")
    out.append(f"overall: {verdict_word(exit_code(record))} (exit {exit_code(record)})")
    return "\n".join(out) + "\n"


def _clean(text: str) -> str:
    return _NOT_XML.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def render_junit(record: dict[str, Any]) -> bytes:
    """One testsuite per revision, one testcase per check; stage errors are errors too."""
    root = ET.Element("testsuites", name="futex-harness")
    for rev in record.get("revisions", []):
        checks = [Check.from_json(c) for c in rev.get("checks", [])]
        suite = ET.SubElement(root, "testsuite", name=_clean(rev["label"]),
                              tests=str(len(checks)))
        failures = errors = skipped = 0
        for stage in rev.get("stages", []):
            if stage["status"] == "error":
                case = ET.SubElement(suite, "testcase", classname=_clean(rev["label"]),
                                     name=f"stage-{stage['name']}")
                ET.SubElement(case, "error", message=_clean(stage.get("detail", "")[:500]))
                errors += 1
        for c in checks:
            case = ET.SubElement(suite, "testcase", classname=_clean(rev["label"]), name=c.name,
                                 time=f"{c.seconds:.3f}")
            message = _clean(" ".join(x for x in (c.verdict.value, c.detail, _counters(c)) if x))
            if c.verdict == Verdict.NOT_APPLICABLE:
                ET.SubElement(case, "skipped", message=message)
                skipped += 1
            elif c.verdict == Verdict.FAIL:
                ET.SubElement(case, "failure", message=message)
                failures += 1
            elif not c.verdict.ok:
                ET.SubElement(case, "error", message=message)
                errors += 1
        suite.set("failures", str(failures))
        suite.set("errors", str(errors))
        suite.set("skipped", str(skipped))
    return bytes(ET.tostring(root, encoding="utf-8", xml_declaration=True))


def write_atomic(path: Path, data: bytes) -> None:
    """Write a whole file or leave the old one; a full disk is the machine's fault."""
    tmp = path.with_name(path.name + ".tmp")
    try:
        tmp.write_bytes(data)
        tmp.replace(path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise InfraError(f"cannot write {path}: {exc.strerror}") from exc


def write_reports(run_dir: Path, record: dict[str, Any]) -> None:
    """results.json, junit.xml and report.txt, each replaced whole so none is ever half-written."""
    run_dir.mkdir(parents=True, exist_ok=True)
    record = {**record, "exit_code": exit_code(record)}
    write_atomic(run_dir / "results.json", (json.dumps(record, indent=1) + "\n").encode())
    write_atomic(run_dir / "junit.xml", render_junit(record))
    write_atomic(run_dir / "report.txt", render_table(record).encode())


def load_record(run_dir: Path) -> dict[str, Any]:
    path = run_dir / "results.json" if run_dir.is_dir() else run_dir
    try:
        return dict(json.loads(path.read_text()))
    except (OSError, json.JSONDecodeError) as exc:
        raise UserError(f"cannot read results from {path}: {exc}") from exc


def _cell(check: Check) -> str:
    """A verdict with its most telling counter: for a failure, the first one that failed."""
    if check.verdict == Verdict.FAIL and check.detail:
        return f"FAIL {check.detail.split(',')[0].split(';')[0].strip()[:40]}"
    for key in ("bad_steps", "corruptions", "stale_fixups", "semantics_bad", "image_mismatch",
                "problems", "hits_zf_set", "window_hits", "cases"):
        if key in check.counters and (check.counters[key] or not check.verdict.ok):
            return f"{check.verdict.value} {key}={check.counters[key]}"
    return check.verdict.value


def render_comparison(record: dict[str, Any]) -> str:
    """Rows are checks, columns are revisions; '*' marks a verdict that changed from the
    revision to its left."""
    revs = record.get("revisions", [])
    grid: dict[str, dict[str, Check]] = {}
    for rev in revs:
        for raw in rev.get("checks", []):
            grid.setdefault(raw["name"], {})[rev["label"]] = Check.from_json(raw)
    labels = [r["label"] for r in revs]
    width = max([len(n) for n in grid] + [len("stages")]) + 2
    col = max([len(label) for label in labels] + [22]) + 2
    out = ["", "== comparison (* = verdict changed from the column to the left)",
           "   " + "CHECK".ljust(width) + "".join(label.ljust(col) for label in labels)]
    stages = [_stages_cell(r) for r in revs]
    out.append("   " + "stages".ljust(width) + "".join(c.ljust(col) for c in stages))
    for name, row in grid.items():
        cells, previous = [], None
        for label in labels:
            check = row.get(label)
            text = _cell(check) if check else "-"
            verdict = check.verdict if check else None
            mark = "*" if previous is not None and verdict != previous else " "
            cells.append((mark + text).ljust(col))
            previous = verdict
        out.append("   " + name.ljust(width) + "".join(cells))
    out.append("   " + "verdict".ljust(width)
               + "".join((" " + verdict_word(revision_exit(r))).ljust(col) for r in revs))
    return "\n".join(out) + "\n"


def _stages_cell(rev: dict[str, Any]) -> str:
    failed = [s["name"] for s in rev.get("stages", []) if s["status"] == "error"]
    return f" error: {failed[0]}" if failed else " ok"
