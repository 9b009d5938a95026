"""A tuning log on disk, in MetaSchedule's own format.

A log is a folder holding MetaSchedule's `database_workload.json` and
`database_tuning_record.json`, readable by stock TVM, plus `log.json` (which
machines, TVM versions and dates it came from) and `defaults.json` (the
measured times of the default schedules).
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import re
import warnings
from pathlib import Path

import tvm
import tvm_ffi
from tvm.s_tir import meta_schedule as ms

from ..errors import UserError
from ..files import write_atomic
from ..spec import Network
from ..target import cpu_name, target_dirname
from .search import task_module

WORKLOADS = "database_workload.json"
RECORDS = "database_tuning_record.json"
PENDING = ".repaired"  # a repair's new file, before it is moved into place
PROVENANCE = "log.json"
# Beside MetaSchedule's files, not in them: a later measurement replaces an
# earlier one, and MetaSchedule's records can only be appended.
DEFAULTS = "defaults.json"
FAILED = 1e10  # MetaSchedule's run time for a candidate that failed


class LogError(UserError):
    """A tuning log that cannot be read."""


def read_lines(path: Path) -> list[tuple[str, object]]:
    """Each non-blank line and its JSON value (None where it is not JSON)."""
    if not path.exists():
        return []
    out = []
    for line in path.read_text(errors="replace").splitlines():
        if not line.strip():
            continue
        try:
            out.append((line, json.loads(line)))
        except json.JSONDecodeError:
            out.append((line, None))
    return out


def write_lines(path: Path, lines: list[str]) -> None:
    write_atomic(path, "".join(line + "\n" for line in lines))


def write_json(path: Path, value) -> None:
    write_atomic(path, json.dumps(value, indent=2))


def repair(log_dir: Path) -> int:
    """Drop what a killed writer left half-written (a truncated last line, a
    record whose workload line is missing) and merge repeated workload lines,
    rewriting atomically. Returns the number of lines dropped; a file that is
    not a MetaSchedule log at all is an error naming the file and line.

    Repeated workloads matter: JSONDatabase numbers a new workload by how
    many distinct ones it holds, not by its line, so after a repeated line
    every new record points at the wrong workload (and fails to read back)."""
    finish_repair(log_dir)
    dropped = 0
    workloads = read_lines(log_dir / WORKLOADS)
    records = read_lines(log_dir / RECORDS)
    good_workloads = []
    for i, (line, value) in enumerate(workloads):
        if value is None and i == len(workloads) - 1:
            dropped += 1  # the tail of an interrupted append
            continue
        if not (isinstance(value, list) and len(value) == 2):
            raise LogError(f"{log_dir / WORKLOADS}: line {i + 1} is not a MetaSchedule workload")
        good_workloads.append(line)
    first, renumber = {}, []
    for line in good_workloads:
        renumber.append(first.setdefault(line, len(first)))
    dropped += len(good_workloads) - len(first)
    good_records = []
    for i, (line, value) in enumerate(records):
        if value is None and i == len(records) - 1:
            dropped += 1
            continue
        if not (isinstance(value, list) and len(value) == 2 and isinstance(value[0], int)
                and isinstance(value[1], list) and len(value[1]) == 4):
            raise LogError(f"{log_dir / RECORDS}: line {i + 1} is not a MetaSchedule tuning record")
        if value[0] >= len(good_workloads):
            dropped += 1  # its workload was the truncated line
            continue
        good_records.append(re.sub(r"^\[\s*\d+", f"[{renumber[value[0]]}", line, count=1))
    if dropped:
        write_lines(log_dir / (RECORDS + PENDING), good_records)
        write_lines(log_dir / (WORKLOADS + PENDING), list(first))
        finish_repair(log_dir)
    return dropped


def finish_repair(log_dir: Path) -> None:
    """Move a repair's two files into place: the records, then the workloads.
    The renumbered records fit only the merged workloads, and two moves are
    not one atomic step, so a repair a kill interrupted is finished here (or,
    killed before its workloads were written, undone)."""
    records, workloads = log_dir / (RECORDS + PENDING), log_dir / (WORKLOADS + PENDING)
    if workloads.exists():
        if records.exists():
            os.replace(records, log_dir / RECORDS)
        os.replace(workloads, log_dir / WORKLOADS)
    elif records.exists():
        records.unlink()


def open_log(log_dir: str | os.PathLike) -> ms.database.JSONDatabase:
    """A log to tune into (created where missing): a record a killed writer
    left half-written is dropped first; any other bad line is an error, as
    appending to a log that is not what it seems could lose its records."""
    log_dir = Path(log_dir)
    log_dir.mkdir(parents=True, exist_ok=True)
    repair(log_dir)
    try:
        return ms.database.JSONDatabase(str(log_dir / WORKLOADS), str(log_dir / RECORDS), allow_missing=True)
    except Exception as e:  # TVM reports parse errors as its own error types
        raise LogError(f"{log_dir}: not a readable MetaSchedule log ({str(e).splitlines()[-1]})") from None


def read_log(log_dir: str | os.PathLike, best_only: bool = False) -> ms.database.MemoryDatabase:
    """A log to read, in memory; the files are left as they are (but for
    finishing a repair a kill interrupted). A workload or record that cannot
    be read is skipped with a warning naming the file and line, so its
    kernels fall back to the default schedule. With `best_only`, only the
    fastest successful record of each workload and target that reads (what
    best_record gives, and all builds use), as reading a record replays its trace."""
    log_dir = Path(log_dir)
    finish_repair(log_dir)
    if not (log_dir / WORKLOADS).exists():
        raise LogError(f"{log_dir}: no tuning log here ({WORKLOADS} missing)")
    database = ms.database.MemoryDatabase()

    def skip(path, i, what, e):
        reason = str(e).strip().splitlines()[-1][:120]
        warnings.warn(f"{path}: line {i + 1} is not a MetaSchedule {what} ({reason}); skipped")

    workloads = []
    for i, (_, value) in enumerate(read_lines(log_dir / WORKLOADS)):
        workload = None
        try:
            if value is None:
                raise ValueError("not JSON")
            workload = database.commit_workload(ms.database.Workload.from_json(value).mod)
        except Exception as e:  # TVM raises its own error types for malformed JSON objects
            skip(log_dir / WORKLOADS, i, "workload", e)
        workloads.append(workload)

    def commit(i, value) -> bool:
        try:
            if not (isinstance(value, list) and len(value) == 2 and isinstance(value[0], int)):
                raise ValueError("expected [workload index, record]")
            if not 0 <= value[0] < len(workloads) or workloads[value[0]] is None:
                raise ValueError(f"workload {value[0]} is missing")
            database.commit_tuning_record(ms.database.TuningRecord.from_json(value[1], workloads[value[0]]))
            return True
        except Exception as e:
            skip(log_dir / RECORDS, i, "tuning record", e)
            return False

    lines = [(i, value) for i, (_, value) in enumerate(read_lines(log_dir / RECORDS))]
    for group in _fastest_first(lines) if best_only else [[line] for line in lines]:
        for i, value in group:
            if commit(i, value) and best_only:
                break
    return database


def _record_json(value, targets: dict[str, str]) -> tuple[int, list[float], str] | None:
    """(workload index, run seconds, target folder name) of a record line, or
    None where it is not in a record's shape; `targets` caches the names."""
    try:
        workload, (_, run_secs, target, _) = value
        seconds = [float(s) for s in run_secs]
        text = json.dumps(target, sort_keys=True)
        if text not in targets:
            targets[text] = target_dirname(tvm.target.Target(target))
    except Exception:  # not a record: read_log names what is wrong with it
        return None
    return (workload, seconds, targets[text]) if isinstance(workload, int) else None


def _fastest_first(lines: list[tuple[int, object]]) -> list[list[tuple[int, object]]]:
    """The successful records of each workload and target (as same_target
    tells them apart), fastest first, from their JSON alone; then each line
    not in a record's shape in a group of its own, for read_log to warn about."""
    groups, malformed, targets = {}, [], {}
    for i, value in lines:
        parsed = _record_json(value, targets)
        if parsed is None:
            malformed.append([(i, value)])
            continue
        workload, seconds, target = parsed
        if seconds and max(seconds) < FAILED:
            groups.setdefault((workload, target), []).append((sum(seconds) / len(seconds), i, value))
    return [[(i, value) for _, i, value in sorted(group, key=lambda g: g[:2])]
            for group in groups.values()] + malformed


def record_count(log_dir: str | os.PathLike) -> int:
    """The records that read: lines in a record's shape whose workload line
    reads. (A trace that no longer replays shows, with a warning, only where
    a build reads it: replaying every record would take seconds.)"""
    log_dir = Path(log_dir)
    workloads = []
    for _, value in read_lines(log_dir / WORKLOADS):
        try:
            ms.database.Workload.from_json(value)
            workloads.append(True)
        except Exception:  # TVM raises its own error types for malformed JSON objects
            workloads.append(False)
    targets, count = {}, 0
    for _, value in read_lines(log_dir / RECORDS):
        parsed = _record_json(value, targets)
        count += parsed is not None and 0 <= parsed[0] < len(workloads) and workloads[parsed[0]]
    return count


def provenance(log_dir: str | os.PathLike) -> list[dict]:
    path = Path(log_dir) / PROVENANCE
    try:
        return json.loads(path.read_text()) if path.exists() else []
    except json.JSONDecodeError as e:
        raise LogError(f"{path}: not valid JSON ({e.msg}, line {e.lineno})") from None


def record_provenance(log_dir: Path, target: tvm.target.Target | None, note: str) -> None:
    """Append who made this log, where and when, to log.json."""
    write_json(log_dir / PROVENANCE, provenance(log_dir) + [dict(
        date=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"), machine=platform.node(),
        cpu=cpu_name(), target=None if target is None else json.loads(str(target)), tvm=tvm.__version__,
        note=note)])


def default_times(log_dir: str | os.PathLike) -> dict[str, dict]:
    """The log's measured default-schedule times, by key (see defaults.default_key)."""
    path = Path(log_dir) / DEFAULTS
    try:
        return json.loads(path.read_text()) if path.exists() else {}
    except (json.JSONDecodeError, OSError) as e:
        warnings.warn(f"{path}: not readable ({e}); default schedule times ignored")
        return {}


def merge(sources: list[str | os.PathLike], log_dir: str | os.PathLike) -> int:
    """Add the records of `sources` to the log in `log_dir` (created where
    missing), each distinct (kernel, schedule, target) once, and their
    provenance. Returns the number of records added."""
    log_dir = Path(log_dir)
    database = open_log(log_dir)

    def key(record):
        return tvm_ffi.structural_hash(record.workload.mod), str(record.trace), target_dirname(record.target)

    seen = {key(r) for r in database.get_all_tuning_records()}
    added = 0
    history = provenance(log_dir)
    for source in sources:
        for record in read_log(source).get_all_tuning_records():
            if key(record) in seen:
                continue
            seen.add(key(record))
            workload = database.commit_workload(record.workload.mod)
            database.commit_tuning_record(ms.database.TuningRecord(
                record.trace, workload, record.run_secs, record.target, record.args_info))
            added += 1
        history += [entry for entry in provenance(source) if entry not in history]
        times = default_times(log_dir)
        times.update({k: v for k, v in default_times(source).items() if k not in times})
        write_json(log_dir / DEFAULTS, times)
    write_json(log_dir / PROVENANCE, history)
    record_provenance(log_dir, None, f"merged {added} records from {', '.join(map(str, sources))}")
    return added


def prune(log_dir: str | os.PathLike, net: Network) -> tuple[int, int]:
    """Drop the records of every workload that is no kernel of `net` at the
    batch size it holds: left by a kernel whose computation changed since it
    was tuned, or by another variant (whose records go too). The workload
    lines stay: records name them by line number, and dropping lines would
    renumber every record after them. Returns (records dropped, workloads
    pruned); a workload that does not read is left to read_log's warning."""
    log_dir = Path(log_dir)
    repair(log_dir)
    kernels = net.kernels() + net.compiled_kernels()  # inference and training forms
    hashes = {}  # batch -> the kernels' workload hashes at that batch

    def known(mod: tvm.IRModule) -> bool:
        shape = mod["main"].params[0].shape
        if not (shape and isinstance(shape[0], tvm.tirx.IntImm)):
            return False
        batch = int(shape[0])
        if batch not in hashes:
            hashes[batch] = {tvm_ffi.structural_hash(task_module(k, batch)) for k in kernels}
        return tvm_ffi.structural_hash(mod) in hashes[batch]

    stale = set()
    for i, (_, value) in enumerate(read_lines(log_dir / WORKLOADS)):
        try:
            mod = ms.database.Workload.from_json(value).mod
        except Exception:  # TVM raises its own error types for malformed JSON objects
            continue
        if not known(mod):
            stale.add(i)
    lines = read_lines(log_dir / RECORDS)
    kept = [line for line, value in lines if value[0] not in stale]
    if len(kept) < len(lines):
        write_lines(log_dir / RECORDS, kept)
        record_provenance(log_dir, None, f"pruned {len(lines) - len(kept)} records of workloads no kernel of "
                                         f"{net.variant} (width {net.width:g}, {net.num_classes} classes) has")
    pruned = {value[0] for _, value in lines} & stale
    return len(lines) - len(kept), len(pruned)
