"""MetaSchedule tuning of every kernel, into resumable logs in MetaSchedule's own format.

    search    what is tuned: tasks, tunable kernels, search spaces, default schedules
    logfile   the log on disk: read, repair, merge, prune, provenance
    records   queries: a kernel's best record for a target, trials spent, batches held
    workers   MetaSchedule's builder, runner and log as a small machine needs them
    remote    measuring on devices registered with an RPC tracker, instead of here
    defaults  the default schedules' times, and whether a build takes a record or the default
    tuner     the `tune` driver and re-targeting of logs from other targets
    shipped   the logs shipped in the package, and which a build takes
"""

from ..target import cpu_name, same_target, target_dirname
from .defaults import (
                       default_entry,
                       default_key,
                       default_seconds,
                       record_default,
                       settle,
                       trace_digest,
                       tuned_kernel,
)
from .logfile import (
                       DEFAULTS,
                       FAILED,
                       PENDING,
                       PROVENANCE,
                       RECORDS,
                       WORKLOADS,
                       LogError,
                       default_times,
                       finish_repair,
                       merge,
                       open_log,
                       provenance,
                       prune,
                       read_log,
                       record_count,
                       record_provenance,
                       repair,
)
from .records import (
                       best_record,
                       has_record,
                       log_batches,
                       log_targets,
                       mean_seconds,
                       succeeded,
                       trials_done,
)
from .remote import RemoteDevices, RemoteError, RemoteRunner, make_runner
from .search import (
                       default_schedule,
                       in_default_space,
                       search_space,
                       task_module,
                       tunable,
)
from .shipped import SHIPPED_LOGS, resolve_log, shipped_targets
from .tuner import (
                       ProgressCallback,
                       Retargeted,
                       TaskProgress,
                       TuneOptions,
                       TuneResult,
                       retarget,
                       tune,
)
from .workers import (
                       PoolBuilder,
                       QuietRunner,
                       ReadableRecords,
                       dies_with,
                       import_intrinsics,
                       measure_and_record,
)

__all__ = [
    "DEFAULTS", "FAILED", "PENDING", "PROVENANCE", "RECORDS", "SHIPPED_LOGS", "WORKLOADS", "LogError",
    "PoolBuilder", "ProgressCallback", "QuietRunner", "ReadableRecords", "RemoteDevices", "RemoteError",
    "RemoteRunner", "Retargeted", "TaskProgress",
    "TuneOptions", "TuneResult", "best_record", "cpu_name", "default_entry", "default_key", "default_schedule",
    "default_seconds", "default_times", "dies_with", "finish_repair", "has_record", "import_intrinsics",
    "in_default_space", "log_batches", "log_targets", "make_runner", "mean_seconds", "measure_and_record", "merge", "open_log",
    "provenance", "prune", "read_log", "record_count", "record_default", "record_provenance", "repair",
    "resolve_log", "retarget", "same_target", "search_space", "settle", "shipped_targets", "succeeded",
    "target_dirname", "task_module", "trace_digest", "trials_done", "tune", "tunable", "tuned_kernel",
]
