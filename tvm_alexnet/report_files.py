"""Kernel performance reports as files: read and checked against
report.schema.json, written as JSON, Markdown and plots, rendered as tables
and compared."""

from __future__ import annotations

import json
import os
from pathlib import Path

from .errors import UserError

SCHEMA = Path(__file__).with_name("report.schema.json")
FORMAT = "tvm-alexnet-report/1"


class ReportError(UserError):
    """A report file that cannot be read."""


# -- reading and writing -----------------------------------------------------------------------


def validate(report: dict, source: str) -> dict:
    """`report` if it matches the schema, else ReportError naming the first problem."""
    import jsonschema

    error = jsonschema.exceptions.best_match(
        jsonschema.Draft202012Validator(json.loads(SCHEMA.read_text())).iter_errors(report))
    if error is not None:
        where = "/".join(map(str, error.absolute_path)) or "top level"
        raise ReportError(f"{source}: not a tvm-alexnet report ({where}: {error.message})")
    return report


def load(path: str | os.PathLike) -> dict:
    path = Path(path)
    try:
        report = json.loads(path.read_text())
    except OSError as e:
        raise ReportError(f"{path}: cannot read ({e.strerror})") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ReportError(f"{path}: not JSON ({e})") from None
    return validate(report, str(path))


def basename(report: dict) -> str:
    """The file name stem of a report: variant, batch, target."""
    net = report["network"]
    width = "" if net["width"] == 1 else f"-w{net['width']:g}"
    return f"{net['variant']}{width}-b{net['batch']}-{report['target_name']}"


# -- rendering -------------------------------------------------------------------------------------


KERNEL_COLUMNS = ("kernel", "output", "MFLOP", "MB", "ms", "spread", "GFLOP/s", "FLOP/B", "% SGEMM", "% BW",
                  "schedule", "torch ms", "vs torch")


def _cell(value, form: str) -> str:
    """A number as `form` formats it; "-" for one not measured (None: torch and the peaks on a remote device)."""
    return "-" if value is None else form.format(value)


def kernel_table(report: dict) -> list[list[str]]:
    rows = []
    for r in report["kernels"]:
        rows.append([r["name"], "x".join(map(str, r["output"])), f"{r['flops'] / 1e6:.1f}", f"{r['bytes'] / 1e6:.2f}",
                     f"{r['ms']:.3f}", f"±{50 * (r['ms_max'] - r['ms_min']) / r['ms']:.0f}%", f"{r['gflops']:.1f}",
                     f"{r['intensity']:.1f}", _cell(r["pct_peak_flops"], "{:.0f}%"),
                     _cell(r["pct_peak_bandwidth"], "{:.0f}%"), r["schedule"], _cell(r["torch_ms"], "{:.3f}"),
                     _cell(r["speedup_vs_torch"], "{:.2f}x")])
    return rows


NETWORK_COLUMNS = ("engine", "ms/batch", "spread", "images/s", "vs eager")


def network_table(report: dict) -> list[list[str]]:
    return [[r["engine"], f"{r['ms']:.2f}", f"±{50 * (r['ms_max'] - r['ms_min']) / r['ms']:.0f}%",
             f"{r['images_per_s']:.1f}", _cell(r["speedup_vs_eager"], "{:.2f}x")] for r in report["network_rows"]]


def title(report: dict) -> str:
    net, m = report["network"], report["machine"]
    remote = m.get("remote")
    where = (f"device {remote['device']} (key {remote['key']!r} at the RPC tracker {remote['tracker']}): "
             if remote else "")
    cores = f" ({m['cores']} cores)" if m["cores"] else ""
    return (f"{net['variant']} (width {net['width']:g}), batch {net['batch']}, {report['target_name']}, "
            f"{'log ' + report['tuning_log'] if report['tuning_log'] else 'default schedules'}; "
            f"{where}{m['gpu'] or m['cpu']}{cores}; TVM {report['versions']['tvm']}, "
            f"torch {report['versions']['torch']}; {report['created']}")


def summary(report: dict) -> list[str]:
    p, o = report["peak"], report["overhead"]
    peaks = (f"peaks: SGEMM {p['sgemm_gflops']:.1f} GFLOP/s (torch, n={p['sgemm_size']}), "
             f"copy {p['bandwidth_gbs']:.1f} GB/s ({p['copy_mib']} MiB)" if p else
             "peaks and torch: not measured (a remote device: TVM's kernels and network only)")
    return [peaks,
            f"whole network {o['network_ms']:.2f} ms = forward kernels {o['forward_kernels_ms']:.2f} ms + "
            f"overhead {o['overhead_ms']:.2f} ms ({o['overhead_pct']:.1f}%: the VM's calls and allocations, "
            "and the machine's drift: the network is timed before and after its kernels)",
            "spread: half the range of the repeats, in % of the median; vs torch: torch's time / TVM's "
            "(above 1x TVM is faster); on CPU both processes keep freed memory for reuse",
            "% BW counts each byte once; above 100% the data stayed in cache between calls, or a kernel only "
            "reads (the copy roof pays for writes too)"]


def markdown_table(columns, rows) -> str:
    right = ["---" if i == 0 else "---:" for i in range(len(columns))]
    lines = ["| " + " | ".join(columns) + " |", "|" + "|".join(right) + "|"]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])


def markdown(report: dict) -> str:
    return "\n\n".join([f"# Kernel report: {title(report)}", "\n".join(f"- {line}" for line in summary(report)),
                        "## Whole network", markdown_table(NETWORK_COLUMNS, network_table(report)),
                        "## Kernels", markdown_table(KERNEL_COLUMNS, kernel_table(report))]) + "\n"


COMPARE_COLUMNS = ("kernel", "A ms", "B ms", "B vs A")


def compare(a: dict, b: dict) -> tuple[list[list[str]], list[list[str]]]:
    """Per-kernel and per-engine rows of two reports: times and B's speed-up over A."""
    def side_by_side(rows_a, rows_b, key, digits):
        other = {r[key]: r for r in rows_b}
        return [[r[key], f"{r['ms']:.{digits}f}", f"{other[r[key]]['ms']:.{digits}f}",
                 f"{r['ms'] / other[r[key]]['ms']:.2f}x"] for r in rows_a if r[key] in other]

    return (side_by_side(a["kernels"], b["kernels"], "name", 3),
            side_by_side(a["network_rows"], b["network_rows"], "engine", 2))


def plot(report: dict, out_dir: str | os.PathLike) -> list[Path]:
    """breakdown.png (per-kernel time, TVM and torch) and roofline.png
    (GFLOP/s vs FLOP/byte under the measured roofs)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .files import save_figure

    out_dir = Path(out_dir)
    stem = basename(report)
    rows = report["kernels"]
    paths = []

    fig, ax = plt.subplots(figsize=(9, 0.22 * len(rows) + 1.5))
    y = range(len(rows))
    ax.barh([i - 0.2 for i in y], [r["ms"] for r in rows], height=0.4, label="TVM")
    if any(r["torch_ms"] is not None for r in rows):  # not measured on a remote device
        ax.barh([i + 0.2 for i in y], [r["torch_ms"] or 0 for r in rows], height=0.4, label="torch")
    ax.set_yticks(list(y), [f"{r['name']}{' *' if r['schedule'] == 'tuned' else ''}" for r in rows], fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel(f"time per call of batch {report['network']['batch']} (ms)")
    ax.set_title(f"{report['network']['variant']} kernels, batch {report['network']['batch']} (* tuned)", fontsize=9)
    ax.legend()
    fig.tight_layout()
    paths.append(save_figure(fig, out_dir / f"{stem}-breakdown.png", dpi=120))

    fig, ax = plt.subplots(figsize=(7, 5))
    intensities = [r["intensity"] for r in rows]
    lo, hi = min(intensities) / 2, max(intensities) * 2
    if report["peak"]:  # not measured on a remote device
        peak, bandwidth = report["peak"]["sgemm_gflops"], report["peak"]["bandwidth_gbs"]
        ridge = peak / bandwidth
        xs = [lo, min(max(ridge, lo), hi), hi]
        ax.plot(xs, [min(peak, bandwidth * x) for x in xs], "k-", lw=1,
                label=f"roof: {peak:.0f} GFLOP/s SGEMM, {bandwidth:.0f} GB/s copy")
    for direction, marker in (("forward", "o"), ("backward", "^")):
        mine = [r for r in rows if r["direction"] == direction]
        ax.scatter([r["intensity"] for r in mine], [r["gflops"] for r in mine], marker=marker, label=f"TVM {direction}")
        mine = [r for r in mine if r["torch_ms"] is not None]
        ax.scatter([r["intensity"] for r in mine], [r["flops"] / r["torch_ms"] / 1e6 for r in mine], marker=marker,
                   facecolors="none", edgecolors="grey", label=f"torch {direction}")
    for r in sorted(rows, key=lambda r: -r["ms"])[:6]:
        ax.annotate(r["name"], (r["intensity"], r["gflops"]), fontsize=6, xytext=(3, 3), textcoords="offset points")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("arithmetic intensity (FLOP/byte, compulsory traffic)")
    ax.set_ylabel("performance (GFLOP/s)")
    ax.set_title(f"roofline: {report['network']['variant']}, batch {report['network']['batch']}", fontsize=9)
    ax.legend(fontsize=7)
    ax.grid(True, which="both", lw=0.3)
    fig.tight_layout()
    paths.append(save_figure(fig, out_dir / f"{stem}-roofline.png", dpi=120))
    return paths


def write(report: dict, out_dir: str | os.PathLike) -> list[Path]:
    """The report as JSON and Markdown, and its plots, in `out_dir`."""
    from .files import write_atomic

    out_dir = Path(out_dir)
    stem = basename(report)
    write_atomic(out_dir / f"{stem}.json", json.dumps(report, indent=1) + "\n")
    write_atomic(out_dir / f"{stem}.md", markdown(report))
    return [out_dir / f"{stem}.json", out_dir / f"{stem}.md", *plot(report, out_dir)]
