"""TVM against torch eager, torch.compile and ONNX Runtime on this CPU:
inference at each --batch, and a training step (forward, loss, backward,
torch's fused SGD) at the largest.

    python scripts/bench_engines.py                          # batch 1 and 32, 3 rounds, with training
    python scripts/bench_engines.py --width 0.25 --batch 2 --rounds 1 --repeat 2 --out /tmp/smoke.txt

Every engine runs the same network (weights from one seed) in a new
process of its own, the engines in turn, for --rounds rounds; each round
times --repeat calls after --warmup untimed ones (torch.compile compiles,
ONNX Runtime and TVM load, before those). Reported: the median over rounds
of each round's median, the rounds' range in brackets, and TVM's speed
against each engine (its time / TVM's: above 1, TVM is faster), in
particular against torch.compile and the faster of torch.compile and ONNX
Runtime.

- torch eager: the model's torch reference (`AlexNet.reference_forward`:
  LRN within each tower, as the TVM kernels compute it).
- torch.compile: that function compiled (inductor, static shapes, one
  compile per batch size); in training the loss (forward and cross entropy)
  compiled, so AOTAutograd compiles its backward too.
- ONNX Runtime: the reference exported by torch.onnx (dynamo) for each batch
  size, LRN as ONNX's LRN operator per tower (--ort-lrn decomposed: torch's
  own decomposition into pooling and powers); CPU execution provider, all
  graph optimisations, one intra-op thread per core. Inference only.
- TVM: `AlexNet(variant).compile("llvm", tuning_log=..., batches=--batch)`
  for any batch size and for each --batch where a static build runs
  faster kernels (Winograd convolutions from batch 8), as `run` and `eval`
  compile for their --batch-size; training compiles for the batch
  (`compile("llvm", batch=N, ...)`).
  A CPU build keeps glibc from unmapping freed blocks (runtime.keep_freed_memory);
  --keep-freed-memory gives every engine's process that setting, to compare
  the kernels alone.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import click
import harness

INFERENCE = ("torch eager", "torch.compile", "ONNX Runtime", "TVM")
TRAINING = ("torch eager", "torch.compile", "TVM")


# -- the workers: each runs in a process of its own --------------------------------------------------


def _model(variant: str, width: float, training: bool, keep_freed_memory: bool = False):
    import torch

    from tvm_alexnet import AlexNet
    from tvm_alexnet.runtime import keep_freed_memory as keep

    if keep_freed_memory:
        keep()

    torch.manual_seed(0)
    return AlexNet(variant, width=width).train(training)


def _input(model, batch: int):
    import torch

    generator = torch.Generator().manual_seed(batch)
    x = torch.randn(batch, *model.spec.input_shape, generator=generator)
    labels = torch.randint(0, model.spec.num_classes, (batch,), generator=generator)
    return x, labels


_CUSTOM_LRN = []


def _lrn_as_onnx_operator():
    """A stand-in for F.local_response_norm exported as ONNX's LRN operator
    (the same convention: alpha divided by the size), and its translation."""
    import torch
    import torch.nn.functional as F
    from onnxscript import opset18 as op

    if not _CUSTOM_LRN:
        local_response_norm = F.local_response_norm

        @torch.library.custom_op("bench_engines::lrn", mutates_args=(),
                                 schema="(Tensor x, int size, float alpha, float beta, float k) -> Tensor")
        def lrn(x, size, alpha, beta, k):
            return local_response_norm(x, size, alpha=alpha, beta=beta, k=k)

        @lrn.register_fake
        def _(x, size, alpha, beta, k):
            return torch.empty_like(x)

        def onnx_lrn(x, size: int, alpha: float, beta: float, k: float):
            return op.LRN(x, size=size, alpha=alpha, beta=beta, bias=k)

        def stand_in(x, size, alpha=1e-4, beta=0.75, k=1.0):
            return lrn(x, size, alpha, beta, k)

        _CUSTOM_LRN.append((stand_in, {torch.ops.bench_engines.lrn.default: onnx_lrn}))
    return _CUSTOM_LRN[0]


def _onnx_session(model, x, path: Path, lrn: str):
    """An ONNX Runtime session of the model's reference at x's batch size
    (exported once per path), and the count of each ONNX operator in it."""
    from collections import Counter

    import onnx
    import onnxruntime as ort
    import torch
    import torch.nn.functional as F

    if not path.exists():
        class Reference(torch.nn.Module):
            def __init__(self, model):
                super().__init__()
                self.model = model

            def forward(self, x):
                return self.model.reference_forward(x)

        extra, original = {}, F.local_response_norm
        if lrn == "native":  # the reference's LRN (per tower) calls F.local_response_norm
            F.local_response_norm, extra["custom_translation_table"] = _lrn_as_onnx_operator()
        try:
            partial = path.with_suffix(".partial")
            torch.onnx.export(Reference(model).eval(), (x,), partial, input_names=["x"], output_names=["logits"],
                              dynamo=True, optimize=True, verbose=False, **extra)
            partial.rename(path)
        finally:
            F.local_response_norm = original
    ops = Counter(node.op_type for node in onnx.load(str(path)).graph.node)
    options = ort.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"]), dict(ops)


def infer(engine: str, variant: str, width: float, batches: list[int], repeat: int, warmup: int,
          tuning_log: str, onnx_dir: str, ort_lrn: str, keep_freed_memory: bool) -> dict:
    """Seconds per inference call of `engine` at each batch size."""
    import torch

    model = _model(variant, width, training=False, keep_freed_memory=keep_freed_memory)
    info, times = {}, {}
    if engine == "TVM":
        log, info["tuning_log_line"] = harness.resolve_tuning_log(tuning_log, variant, width)
        start = time.perf_counter()
        model.compile("llvm", tuning_log=log, batches=tuple(batches))
        info.update(load_s=round(time.perf_counter() - start, 1), tuning_log=log,
                    fixed_batches=sorted(model.fixed_batches))
    with torch.no_grad():
        for batch in batches:
            x, _ = _input(model, batch)
            if engine == "torch eager":
                fn = model.reference_forward
            elif engine == "torch.compile":
                fn = torch.compile(model.reference_forward, dynamic=False)
            elif engine == "TVM":
                fn = model
            elif engine == "ONNX Runtime":
                session, info["onnx_ops"] = _onnx_session(
                    model, x, Path(onnx_dir) / f"{variant}-w{width}-b{batch}-{ort_lrn}.onnx", ort_lrn)
                feed = {"x": x.numpy()}

                def fn(_, session=session, feed=feed):
                    return torch.from_numpy(session.run(None, feed)[0])
            else:
                raise ValueError(f"unknown engine {engine!r}")
            start = time.perf_counter()
            y = fn(x)  # torch.compile compiles here
            info[f"first_call_s_b{batch}"] = round(time.perf_counter() - start, 2)
            reference = model.reference_forward(x)
            info[f"max_error_b{batch}"] = float((y - reference).abs().max() / reference.abs().max())
            times[f"b{batch}"] = harness.time_calls(lambda fn=fn, x=x: fn(x), repeat, warmup)
    return {"times": times, "info": info}


def train_step(engine: str, variant: str, width: float, batch: int, repeat: int, warmup: int,
               tuning_log: str, keep_freed_memory: bool) -> dict:
    """Seconds per training step of `engine` (train mode, dropout on, torch's fused SGD as `train` uses)."""
    import torch
    import torch.nn.functional as F

    model = _model(variant, width, training=True, keep_freed_memory=keep_freed_memory)
    info = {}
    if engine == "TVM":
        log, info["tuning_log_line"] = harness.resolve_tuning_log(tuning_log, variant, width, batch)
        start = time.perf_counter()
        model.compile("llvm", batch=batch, tuning_log=log)
        info.update(load_s=round(time.perf_counter() - start, 1), tuning_log=log,
                    tuned_kernels=len(model.compiled.manifest.tuned))
    forward = model if engine == "TVM" else model.reference_forward

    def loss(x, labels):
        return F.cross_entropy(forward(x), labels)

    if engine == "torch.compile":
        loss = torch.compile(loss, dynamic=False)
    elif engine not in ("torch eager", "TVM"):
        raise ValueError(f"unknown engine {engine!r}")
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4, fused=True)
    x, labels = _input(model, batch)

    def step():
        optimizer.zero_grad(set_to_none=True)
        loss(x, labels).backward()
        optimizer.step()

    start = time.perf_counter()
    step()  # torch.compile compiles here
    info["first_call_s"] = round(time.perf_counter() - start, 2)
    return {"times": {f"b{batch}": harness.time_calls(step, repeat, warmup)}, "info": info}


# -- the table --------------------------------------------------------------------------------------------


def _ratio(other, tvm) -> str:
    return f"{other.median / tvm.median:.2f}x" if other and tvm else "-"


def _rows(results: dict, engines: tuple, prefix: str, batch: int):
    key = f"b{batch}"
    tvm = results[prefix + "TVM"].stats(key)
    rows = []
    for name in engines:
        result = results[prefix + name]
        s = result.stats(key)
        if s is None:
            rows.append([batch, name, "failed" if result.error else "-", "-", "-"])
            continue
        rows.append([batch, name, s.ms(), s.rate(batch), "1.00x" if name == "TVM" else _ratio(s, tvm)])
    return rows


@click.command(help=__doc__.split("\n\n")[0])
@click.option("--batch", "batches", type=click.IntRange(min=1), multiple=True, default=(1, 32), show_default=True,
              help="Inference batch sizes (repeatable); training runs at the largest.")
@harness.width_option()
@harness.variant_option()
@harness.rounds_option(3)
@harness.repeat_option(7)
@harness.warmup_option(2)
@click.option("--train/--no-train", default=True, show_default=True, help="Also time a training step.")
@harness.tuning_log_option("auto")
@click.option("--ort-lrn", type=click.Choice(["native", "decomposed"]), default="native", show_default=True,
              help="ONNX Runtime's LRN: ONNX's LRN operator per tower, or torch's decomposition.")
@click.option("--keep-freed-memory", is_flag=True,
              help="Every engine's process keeps freed memory for reuse, as TVM's does (the kernels alone).")
@click.option("--out", type=click.Path(dir_okay=False), default=None,
              help="Write the tables here too  [default: bench-logs/engines-<LLVM cpu>.txt]")
def main(batches, width, variant, rounds, repeat, warmup, train, tuning_log, ort_lrn, keep_freed_memory, out):
    batches = sorted(set(batches))
    train_batch = max(batches)
    info = harness.machine()
    out = out or harness.log_path(f"engines-{info['llvm_cpu']}")
    with tempfile.TemporaryDirectory(prefix="bench-engines-onnx-") as onnx_dir:
        common = dict(variant=variant, width=width, repeat=repeat, warmup=warmup, tuning_log=tuning_log,
                      keep_freed_memory=keep_freed_memory)
        engines = [harness.Engine(name, infer, dict(common, engine=name, batches=batches, onnx_dir=onnx_dir,
                                                    ort_lrn=ort_lrn))
                   for name in INFERENCE]
        if train:
            engines += [harness.Engine(f"training: {name}", train_step,
                                       dict(common, engine=name, batch=train_batch))
                        for name in TRAINING]
        results = harness.run_isolated(engines, rounds)

    how = (f"{variant} (width {width}), float32; {harness.how_timed(rounds, repeat, warmup)}. "
           "vs TVM: the engine's time / TVM's (above 1x, TVM is faster). Freed memory kept for reuse "
           + ("in every engine's process (--keep-freed-memory)." if keep_freed_memory else "by TVM's process only."))
    tvm_info = results["TVM"].info
    tvm_line = f"TVM inference: {tvm_info.get('tuning_log_line', 'did not run')}"
    if tvm_info.get("fixed_batches"):
        tvm_line += (f" (builds for batch {', '.join(map(str, tvm_info['fixed_batches']))}; other sizes "
                     "in chunks of those or on the any-batch build)")
    if train:
        tvm_line += f". TVM training: {results['training: TVM'].info.get('tuning_log_line', 'did not run')}"
    sections = [how, tvm_line, "Inference (ms per batch, images/s):",
                harness.markdown_table(["batch", "engine", "ms", "images/s", "vs TVM"],
                                       [row for b in batches for row in _rows(results, INFERENCE, "", b)], left=2)]
    if train:
        sections += [f"Training step at batch {train_batch} (forward, cross entropy, backward, fused SGD; "
                     "train mode, dropout on; ms per step, images/s):",
                     harness.markdown_table(["batch", "engine", "ms", "images/s", "vs TVM"],
                                            _rows(results, TRAINING, "training: ", train_batch), left=2)]
    summary = []
    tasks = [("inference", "", b) for b in batches] + ([("training", "training: ", train_batch)] if train else [])
    for task, prefix, batch in tasks:
        key = f"b{batch}"
        tvm, compiled = results[prefix + "TVM"].stats(key), results[prefix + "torch.compile"].stats(key)
        rivals = {n: results[prefix + n].stats(key) for n in ("torch.compile", "ONNX Runtime")
                  if prefix + n in results and results[prefix + n].stats(key)}
        best = min(rivals, key=lambda n: rivals[n].median) if rivals else None
        summary.append([task, batch, _ratio(compiled, tvm), best or "-",
                        _ratio(rivals[best], tvm) if best else "-"])
    sections += ["TVM's speed against the best of the others (their time / TVM's):",
                 harness.markdown_table(["task", "batch", "vs torch.compile", "faster of torch.compile and ORT",
                                         "vs it"], summary, left=2)]
    notes = []
    for name, result in results.items():
        if result.error:
            notes.append(f"- {result.error}")
        elif name.endswith("torch.compile"):
            first = {k: v for k, v in result.info.items() if k.startswith("first_call")}
            notes.append(f"- {name}: first call (compiling) {', '.join(f'{v} s' for v in first.values())}")
        elif name == "ONNX Runtime":
            errors = [v for k, v in result.info.items() if k.startswith("max_error")]
            ops = result.info.get("onnx_ops", {})
            notes.append(f"- ONNX Runtime: {ops.get('LRN', 0)} ONNX LRN nodes (--ort-lrn {ort_lrn}); "
                         f"{sum(ops.values())} nodes in all; largest difference from the torch reference "
                         f"{max(errors):.1e} of its largest logit")
    sections.append("\n".join(notes))
    harness.write_log(out, sections, info)


if __name__ == "__main__":
    main()
