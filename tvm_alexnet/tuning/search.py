"""What MetaSchedule tunes: each kernel as a task, whether it is worth a
trial, the space its candidates are drawn from, and its default CPU schedule.

These read the ops' facts (ops.op_of); the rest of the tuning package asks
them, never the op names.
"""

from __future__ import annotations

import tvm
from tvm.s_tir import meta_schedule as ms

from .. import graph
from ..ops import op_of
from ..spec import Kernel
from ..target import vector_unit


def task_module(kernel: Kernel, batch: int) -> tvm.IRModule:
    """The kernel as MetaSchedule sees it: a module with one `main`."""
    return tvm.IRModule({"main": graph.kernel_func(kernel, batch).with_attr("global_symbol", "main")})


def tunable(kernel: Kernel) -> bool:
    return op_of(kernel).tunable


def search_space(kernel: Kernel, batch: int, target: tvm.target.Target) -> dict:
    """What the search draws candidates from, and how (TuneContext's
    arguments). For a CPU op whose default schedule has parameters, those
    parameters, drawn afresh each round: MetaSchedule's own candidates run
    slower than the defaults, and its records in the log would otherwise seed
    the population. Otherwise MetaSchedule's own space and search."""
    space = op_of(kernel).space
    if space is None or "cpu" not in target.keys:
        return {"space_generator": "post-order-apply", "search_strategy": "evolutionary"}
    unit = vector_unit(target)
    return {"space_generator": ms.space_generator.ScheduleFn(lambda sch: space(sch, kernel, batch, unit)),
            "search_strategy": ms.search_strategy.EvolutionarySearch(population_size=256, init_measured_ratio=0.0)}


def default_schedule(kernel: Kernel, batch: int, target: tvm.target.Target):
    """The task of the kernel with its default CPU schedule for `target` applied (None for ops without one)."""
    from tvm.s_tir import Schedule

    rule = op_of(kernel).schedule
    if rule is None:
        return None
    sch = Schedule(task_module(kernel, batch))
    rule(sch, kernel, batch, vector_unit(target))
    return sch


def in_default_space(record) -> bool:
    """Whether a record came from a default schedule's space (search_space):
    those repack the weights with a layout transform, which MetaSchedule's
    own CPU candidates never do."""
    return "transform_layout" in str(record.trace)
