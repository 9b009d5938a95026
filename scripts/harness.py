"""What every benchmark in scripts/ shares: timing, engines in their own
processes, the machine's description, and the Markdown log.

Speed is measured with each engine in a fresh process of its own (two
engines in one process disturb each other: a thread pool left spinning by
one slows the other), the engines in turn over several rounds (this machine
moves single runs by 20-40%), and reported as the median over rounds with
the range (min-max) of the rounds beside it.

    from harness import Engine, run_isolated, time_calls, machine, write_log

    def worker(batch, repeat):               # module level: the worker process imports it
        x = torch.randn(batch, 3, 224, 224)
        return {"times": {"b1": time_calls(lambda: model(x), repeat)}, "info": {...}}

    results = run_isolated([Engine("eager", worker, {"batch": 1, "repeat": 7}), ...], rounds=3)
    results["eager"].stats("b1").median      # seconds: the median of the rounds' medians

A worker is a module-level function of a script (or of any importable
module) taking JSON-able keyword arguments and returning a JSON-able dict:
"times" (key -> seconds of each timed call) and anything else it likes
("info"). It runs in `python -c`, in a new process, its result as one line
of JSON on stdout (its own prints go to stderr).
"""

from __future__ import annotations

import datetime
import json
import math
import os
import shlex
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import click

SCRIPTS = Path(__file__).resolve().parent
ROOT = SCRIPTS.parent
LOGS = ROOT / "bench-logs"
RESULT = "@@harness-result@@ "  # marks the worker's result line on stdout


# -- timing ----------------------------------------------------------------------------------------


def time_calls(fn: Callable[[], object], repeat: int = 7, warmup: int = 2, min_repeat_ms: float = 0.0,
               sync: Callable[[], None] | None = None) -> list[float]:
    """Seconds per call of `fn()`: `warmup` untimed calls, then `repeat`
    timed ones. With `min_repeat_ms`, each of the `repeat` values is the mean
    of as many calls as last that long (as TVM's time_evaluator does), for
    calls too short to time one by one. `sync` (e.g. torch.cuda.synchronize)
    runs before each clock read."""
    sync = sync or (lambda: None)
    for _ in range(warmup):
        fn()
    number = 1
    if min_repeat_ms > 0:
        sync()
        start = time.perf_counter()
        fn()
        sync()
        number = max(1, math.ceil(min_repeat_ms / 1e3 / max(time.perf_counter() - start, 1e-9)))
    times = []
    for _ in range(repeat):
        sync()
        start = time.perf_counter()
        for _ in range(number):
            fn()
        sync()
        times.append((time.perf_counter() - start) / number)
    return times


@dataclass(frozen=True)
class Stats:
    """The median of some samples and their range."""

    median: float
    low: float
    high: float
    n: int

    @classmethod
    def of(cls, samples: list[float]) -> "Stats":
        if not samples:
            raise ValueError("no samples")
        return cls(statistics.median(samples), min(samples), max(samples), len(samples))

    @property
    def spread_pct(self) -> float:
        """Half the range, in % of the median."""
        return 50 * (self.high - self.low) / self.median if self.median else 0.0

    def ms(self, digits: int = 1) -> str:
        """'12.3 (11.9-13.0)': milliseconds, median (min-max)."""
        return f"{self.median * 1e3:.{digits}f} ({self.low * 1e3:.{digits}f}-{self.high * 1e3:.{digits}f})"

    def rate(self, amount: float, digits: int = 1) -> str:
        """`amount` per second (images/s, GFLOP/s): median (min-max); the fastest round gives the max."""
        return f"{amount / self.median:.{digits}f} ({amount / self.high:.{digits}f}-{amount / self.low:.{digits}f})"


# -- engines, each in its own process ------------------------------------------------------------------


@dataclass
class Engine:
    """One thing to measure: `worker(**args)` in a fresh process.

    `threads` sets TVM_NUM_THREADS and torch's thread count in that process
    (None: all the cores this process may use); `env` adds variables."""

    name: str
    worker: Callable[..., dict]
    args: dict = field(default_factory=dict)
    threads: int | None = None
    env: dict = field(default_factory=dict)


@dataclass
class Result:
    """An engine's measurements over the rounds it ran."""

    rounds: list[dict] = field(default_factory=list)  # what the worker returned, per round
    error: str | None = None

    def round_medians(self, key: str) -> list[float]:
        return [statistics.median(r["times"][key]) for r in self.rounds if r.get("times", {}).get(key)]

    def stats(self, key: str) -> Stats | None:
        """Median and range over the rounds of each round's median; None if never measured."""
        medians = self.round_medians(key)
        return Stats.of(medians) if medians else None

    @property
    def info(self) -> dict:
        """The last round's "info"."""
        return self.rounds[-1].get("info", {}) if self.rounds else {}


class WorkerError(RuntimeError):
    pass


def _worker_spec(engine: Engine) -> dict:
    module_name = engine.worker.__module__
    module = sys.modules[module_name]
    path = Path(module.__file__).resolve()
    if module_name == "__main__":  # a script run as `python scripts/x.py`: import it as x
        module_name = path.stem
    return {"module": module_name, "path": str(path.parent), "function": engine.worker.__qualname__,
            "args": engine.args, "threads": engine.threads}


def run_worker(engine: Engine, timeout: float | None = None) -> dict:
    """`engine`'s worker in a new Python process; what it returned. Its
    stderr (and its prints) pass through; WorkerError if it fails."""
    env = {**os.environ, **{k: str(v) for k, v in engine.env.items()}}
    if engine.threads:
        env["TVM_NUM_THREADS"] = str(engine.threads)
    code = f"import sys; sys.path.insert(0, {str(SCRIPTS)!r}); import harness; harness._worker_main()"
    try:
        proc = subprocess.run([sys.executable, "-c", code, json.dumps(_worker_spec(engine))], env=env,
                              stdout=subprocess.PIPE, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise WorkerError(f"{engine.name}: no result within {timeout:.0f} s") from None
    lines = [line for line in proc.stdout.splitlines() if line.startswith(RESULT)]
    if proc.returncode != 0 or not lines:
        raise WorkerError(f"{engine.name}: worker exited with status {proc.returncode} (its error is above)")
    return json.loads(lines[-1][len(RESULT):])


def _worker_main() -> None:
    """The worker process: import the worker function, call it, print its result."""
    spec = json.loads(sys.argv[1])
    for path in (spec["path"], str(ROOT)):
        if path not in sys.path:
            sys.path.insert(0, path)
    stdout, sys.stdout = sys.stdout, sys.stderr  # the worker's own prints must not look like a result
    threads = spec["threads"] or len(os.sched_getaffinity(0))
    try:
        import torch

        torch.set_num_threads(threads)
    except ImportError:
        pass
    import importlib

    function = importlib.import_module(spec["module"])
    for part in spec["function"].split("."):
        function = getattr(function, part)
    result = function(**spec["args"])
    sys.stdout = stdout
    print(RESULT + json.dumps(result), flush=True)


def run_isolated(engines: list[Engine], rounds: int, timeout: float | None = None,
                 rotate: bool = True) -> dict[str, Result]:
    """Each engine's worker in a fresh process, the engines in turn, for
    `rounds` rounds (with `rotate`, each round starts one engine later, so
    that no engine always runs first or right after the same one). An
    engine that fails is reported on stderr and left out of later rounds;
    its Result has `error` set."""
    results = {e.name: Result() for e in engines}
    for r in range(rounds):
        order = engines[r % len(engines):] + engines[:r % len(engines)] if rotate else engines
        for engine in order:
            result = results[engine.name]
            if result.error:
                continue
            start = time.perf_counter()
            try:
                result.rounds.append(run_worker(engine, timeout))
            except WorkerError as e:
                result.error = str(e)
                _note(f"round {r + 1}/{rounds}: {e}; left out from now on")
                continue
            _note(f"round {r + 1}/{rounds}: {engine.name} done in {time.perf_counter() - start:.1f} s")
    return results


def _note(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


# -- the machine ----------------------------------------------------------------------------------------


def cpu_flags() -> set[str]:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def isa(flags: set[str] | None = None) -> str:
    """The widest x86 vector ISA: 'AVX-512', 'AVX2' or 'SSE'; '+AMX' with AMX tiles."""
    flags = cpu_flags() if flags is None else flags
    name = "AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags else "SSE"
    return name + ("+AMX" if "amx_tile" in flags else "")


def machine() -> dict:
    """The CPU (its name, LLVM's name for it, its ISA), the cores this
    process may use, the library versions and the date."""
    import torch
    import tvm

    from tvm_alexnet import target

    info = {"cpu": target.cpu_name(), "llvm_cpu": target.host_cpu(), "isa": isa(),
            "cores": len(os.sched_getaffinity(0)), "torch": torch.__version__, "tvm": tvm.__version__,
            "date": datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")}
    try:  # what TVM's default CPU schedules size their tiles for
        info["schedules_for"] = target.vector_unit(target.parse_target("llvm")).isa
    except AttributeError:
        pass
    try:
        import onnxruntime

        info["onnxruntime"] = onnxruntime.__version__
    except ImportError:
        pass
    return info


def machine_line(m: dict) -> str:
    versions = f"torch {m['torch']}, TVM {m['tvm']}" + (f", ONNX Runtime {m['onnxruntime']}"
                                                         if "onnxruntime" in m else "")
    schedules = f"; TVM's default schedules sized for {m['schedules_for']}" if "schedules_for" in m else ""
    return (f"{m['cpu']} (LLVM: {m['llvm_cpu']}, {m['isa']}), {m['cores']} cores; {versions}{schedules}; "
            f"{m['date']}")


def gpu_line() -> str | None:
    """The GPU torch sees, if any."""
    import torch

    return f"GPU: {torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else None


# -- Markdown logs ----------------------------------------------------------------------------------------


def markdown_table(columns: list[str], rows: list[list], left: int = 1) -> str:
    """A Markdown table; the first `left` columns left-aligned, the rest right-aligned."""
    lines = ["| " + " | ".join(columns) + " |",
             "|" + "|".join("---" if i < left else "---:" for i in range(len(columns))) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def command_line() -> str:
    """This script's command line, as typed from the repository root."""
    script = Path(sys.argv[0]).resolve()
    shown = script.relative_to(ROOT) if script.is_relative_to(ROOT) else script
    return "python " + shlex.join([str(shown), *sys.argv[1:]])


def write_log(out: str | os.PathLike | None, sections: list[str], info: dict | None = None) -> Path | None:
    """Print the command line, the machine (`info`, from machine()) and the
    sections (Markdown), blank lines between, and write them to `out`."""
    header = [f"$ {command_line()}"]
    if info is not None:
        header.append(machine_line(info))
    text = "\n".join(header) + "\n\n" + "\n\n".join(s.strip("\n") for s in sections if s) + "\n"
    print("\n" + text, end="", flush=True)
    if out is None:
        return None
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    _note(f"written to {out}")
    return out


def plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def how_timed(rounds: int, repeat: int, warmup: int, calls: str = "call", engines: str = "engine") -> str:
    """The sentence every table states its timing in."""
    return (f"median of {plural(rounds, 'round')} (each the median of {plural(repeat, calls)} after "
            f"{plural(warmup, 'warm-up')}), the rounds' range in brackets; every {engines} in its own process, "
            "in turn")


def errors(results: dict[str, Result]) -> str:
    """One line per engine that failed, for a log."""
    return "\n".join(f"- {r.error}" for r in results.values() if r.error)


def log_path(name: str) -> Path:
    """bench-logs/<name>.txt"""
    return LOGS / f"{name}.txt"


def resolve_tuning_log(option: str | None, variant: str = "paper", width: float = 1.0,
                       batch: int | None = None, target: str = "llvm") -> tuple[str | None, str]:
    """--tuning-log as the CLI reads it: a folder, 'none', or 'auto' (the
    package's log for the target where it holds the network at `batch`, or
    at any batch size with `batch` None). Returns the folder (None: default
    schedules) and a line saying which log was taken, or why none was."""
    from tvm_alexnet import spec, tuning
    from tvm_alexnet.target import parse_target

    path, line = tuning.resolve_log(option or "none", spec.network(variant, width=width), batch,
                                    parse_target(target))
    return (str(path) if path else None), line


# -- click options every benchmark shares ---------------------------------------------------------------


def _tuning_log_value(ctx, param, value: str) -> str:
    if value not in ("auto", "none") and not Path(value).is_dir():
        raise click.BadParameter(f"{value}: no such tuning log folder (or 'auto', 'none')")
    return value


def rounds_option(default: int = 3):
    return click.option("--rounds", type=click.IntRange(min=1), default=default, show_default=True,
                        help="Rounds: every engine once per round, each in a new process.")


def repeat_option(default: int = 7):
    return click.option("--repeat", type=click.IntRange(min=1), default=default, show_default=True,
                        help="Timed calls per engine and round (after --warmup untimed ones).")


def warmup_option(default: int = 2):
    return click.option("--warmup", type=click.IntRange(min=0), default=default, show_default=True,
                        help="Untimed calls before the timed ones.")


def width_option():
    return click.option("--width", type=float, default=1.0, show_default=True,
                        help="Channel and hidden-unit scale of the network (0.25 for a quick try).")


def variant_option():
    return click.option("--variant", default="paper", show_default=True)


def tuning_log_option(default: str = "auto"):
    return click.option("--tuning-log", default=default, show_default=True, callback=_tuning_log_value,
                        help="A tuning log folder, 'auto' (the repository's log for this CPU, where it holds "
                             "the network) or 'none' (default schedules).")
