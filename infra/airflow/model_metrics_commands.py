"""The model-metrics commands the Airflow DAGs run, as pure functions of the data interval.

Kept apart from the DAG file and free of Airflow imports (standard library only), so that the
commands can be rendered and checked without Airflow: test/infra/airflow-commands.integ.test.ts renders them for
sample data intervals and runs the real CLI with them (SPEC §6). Also a small command line, to see
what the DAG would run for an interval:

    python3 infra/airflow/model_metrics_commands.py daily 2026-03-09T06:00:00Z 2026-03-10T06:00:00Z
    python3 infra/airflow/model_metrics_commands.py backfill 2026-01-01 2026-03-31 final 4
    python3 infra/airflow/model_metrics_commands.py sharded 2026-03-09T06:00:00Z 2026-03-10T06:00:00Z 4

The daily DAG runs at 06:00 UTC over the interval [D 06:00, D+1 06:00), like the CronJob of
infra/kubernetes: the preliminary metrics of D (`{{ ds }}`, the interval's first day) with the labels
that arrived by the interval's end, and the final metrics of the latest day whose label window has
closed by then. Both use the interval's end as `--as-of`, so a rerun of an old interval computes
exactly what the original run did.
"""

from __future__ import annotations

import json
import re
import sys
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone

# SPEC §6 exit codes.
EXIT_DONE = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_NOT_READY = 3
# Done and committed, and an alert fired (--fail-on-alert, SPEC §8).
EXIT_ALERT = 4

# Where KubernetesPodOperator(do_xcom_push=True) reads the task's XCom return value.
XCOM_RETURN_FILE = "/airflow/xcom/return.json"

# The pod of infra/kubernetes/base/cronjob.yaml, for the DAGs' KubernetesPodOperator (that file says
# why these numbers; test/infra/airflow-commands.integ.test.ts checks that the two agree): a 2 GiB
# memory limit, so a 1.2 GiB default --memory-budget (60% of it), requested in full; the spill and
# temp files on an 8 GiB emptyDir at TMPDIR (the default --spill-dir), on the node's disk.
POD_RESOURCES = {
    "requests": {"cpu": "1", "memory": "2Gi", "ephemeral-storage": "9Gi"},
    "limits": {"cpu": "2", "memory": "2Gi", "ephemeral-storage": "9Gi"},
}
TMPDIR = "/tmp"
SPILL_SIZE_LIMIT = "8Gi"
NODE_OPTIONS = "--max-old-space-size=1536"

# One day across pods (SPEC §9): partition and join run once per shard index, then commit once.
PHASES = ("partition", "join", "commit")
# The Airflow Variable that sets the sharded DAG's number of shards when its run has no `shards` param.
SHARDS_VARIABLE = "model_metrics_shards"
DEFAULT_SHARDS = 4
MAX_SHARDS = 64

# The same grammar the CLI accepts for --label-window (src/join/policy.ts parseLabelWindow): fixed
# units only — weeks, days, hours, minutes, seconds (at most milliseconds); months and years have no
# fixed length and are refused.
_DURATION = re.compile(
    r"^P(?!$)(?:(?P<weeks>\d+)W)?(?:(?P<days>\d+)D)?"
    r"(?:T(?=\d)(?:(?P<hours>\d+)H)?(?:(?P<minutes>\d+)M)?(?:(?P<seconds>\d+(?:[.,]\d{1,3})?)S)?)?$"
)


def parse_label_window(text: str) -> timedelta:
    """The label window as a timedelta; raises ValueError naming the accepted forms."""
    match = _DURATION.match(text) if isinstance(text, str) else None
    if match is None:
        raise ValueError(
            f"label window {text!r} is not an ISO-8601 duration in weeks, days, hours, minutes or "
            "seconds (e.g. P7D, PT36H, P2DT12H); months and years have no fixed length"
        )
    parts = {name: float((value or "0").replace(",", ".")) for name, value in match.groupdict().items()}
    window = timedelta(**parts)
    if window <= timedelta(0):
        raise ValueError(f"label window {text!r} is zero; the window must be a positive duration, e.g. P7D")
    return window


def _utc(moment: datetime) -> datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{moment.isoformat()} has no time zone; Airflow's data intervals are aware datetimes")
    return moment.astimezone(timezone.utc)


def format_instant(moment: datetime) -> str:
    """An aware datetime as the CLI's --as-of: ISO-8601 in UTC with a Z (microseconds kept if any)."""
    utc = _utc(moment)
    text = utc.strftime("%Y-%m-%dT%H:%M:%S")
    if utc.microsecond:
        text += f".{utc.microsecond:06d}"
    return text + "Z"


def _day_start(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=timezone.utc)


def latest_final_date(as_of: datetime, label_window: timedelta) -> date:
    """The latest UTC day whose final is ready at `as_of`: its window closes (end of day + window) by then.

    Mirrors the job's readiness rule (SPEC §3, src/join/policy.ts finalReadyAtMicros): day D is ready
    when start(D) + 1 day + window <= as_of, so the latest such D is the day of (as_of - window),
    minus one.
    """
    return (_utc(as_of) - label_window).date() - timedelta(days=1)


def final_window_closes(day: date, label_window: timedelta) -> datetime:
    """When the final of `day` becomes ready: the end of the day plus the label window."""
    return _day_start(day) + timedelta(days=1) + label_window


@dataclass(frozen=True)
class CommandSettings:
    """What every rendered command shares; the rest comes from the pod's config (infra/kubernetes)."""

    label_window: str = "P7D"
    summary_file: str | None = XCOM_RETURN_FILE
    log_level: str | None = None
    # The daily commands exit 4 when an alert fired (SPEC §8): the task fails without retries, so
    # the DAG's failure callbacks and e-mails reach someone; the day's outputs are committed all the
    # same. A backfill never passes it (backfill_args), like the Kubernetes backfill Job.
    fail_on_alert: bool = True

    def common_args(self, paging: bool = True) -> list[str]:
        """Flags every command of the DAGs carries; `paging`: --fail-on-alert too, where fail_on_alert is set."""
        args = ["--label-window", self.label_window]
        if self.summary_file is not None:
            args += ["--summary-file", self.summary_file]
        if self.log_level is not None:
            args += ["--log-level", self.log_level]
        if paging and self.fail_on_alert:
            args += ["--fail-on-alert"]
        return args


def preliminary_args(data_interval_start: datetime, data_interval_end: datetime, settings: CommandSettings = CommandSettings()) -> list[str]:
    """`run` of the interval's first day (`{{ ds }}`), preliminary, with the labels known at its end."""
    start, end = _utc(data_interval_start), _utc(data_interval_end)
    if end <= start:
        raise ValueError(f"data interval [{format_instant(start)}, {format_instant(end)}) is empty; the daily DAG needs an interval timetable")
    return ["run", "--date", start.date().isoformat(), "--stage", "preliminary", "--as-of", format_instant(end), *settings.common_args()]


def final_args(data_interval_end: datetime, settings: CommandSettings = CommandSettings()) -> list[str]:
    """`run` of the latest day whose label window has closed by the interval's end, final."""
    as_of = _utc(data_interval_end)
    day = latest_final_date(as_of, parse_label_window(settings.label_window))
    return ["run", "--date", day.isoformat(), "--stage", "final", "--as-of", format_instant(as_of), *settings.common_args()]


def backfill_args(
    first_day: date,
    last_day: date,
    stage: str,
    shard_index: int,
    shard_count: int,
    as_of: datetime | None = None,
    settings: CommandSettings = CommandSettings(),
) -> list[str]:
    """`backfill` of shard `shard_index` of `shard_count` over [first_day, last_day] (day k goes to shard k mod count)."""
    if stage not in ("preliminary", "final"):
        raise ValueError(f"stage must be preliminary or final, got {stage!r}")
    if last_day < first_day:
        raise ValueError(f"backfill range {first_day.isoformat()} … {last_day.isoformat()} is empty: the last day comes before the first")
    if not 0 <= shard_index < shard_count:
        raise ValueError(f"shard index must be from 0 to {shard_count - 1}, got {shard_index}")
    args = ["backfill", "--from", first_day.isoformat(), "--to", last_day.isoformat(), "--stage", stage,
            "--shard-index", str(shard_index), "--shard-count", str(shard_count)]
    if as_of is not None:
        args += ["--as-of", format_instant(as_of)]
    # No --fail-on-alert: a backfill recomputes history, whose alerts page no one; they are in the
    # committed alerts/ partitions and in each shard's summary (XCom) for whoever reviews it.
    return args + settings.common_args(paging=False)


def backfill_shards(first_day: date, last_day: date, stage: str, shard_count: int, as_of: datetime | None = None,
                    settings: CommandSettings = CommandSettings()) -> list[list[str]]:
    """One backfill command per shard; never more shards than days (an empty shard would only cost a pod)."""
    days = (last_day - first_day).days + 1
    count = max(1, min(shard_count, days))
    return [backfill_args(first_day, last_day, stage, index, count, as_of, settings) for index in range(count)]


def shard_count(param: object, variable: object = None) -> int:
    """The shards of a sharded run: the run's `shards` param, else the Airflow Variable, else DEFAULT_SHARDS."""
    for source, value in (("param shards", param), (f"Variable {SHARDS_VARIABLE}", variable)):
        if value is None or value == "":
            continue
        text = str(value).strip()
        if not re.fullmatch(r"\d+", text) or not 1 <= int(text) <= MAX_SHARDS:
            raise ValueError(f"{source} must be a whole number from 1 to {MAX_SHARDS}, got {value!r}")
        return int(text)
    return DEFAULT_SHARDS


def sharded_args(day_args: list[str], phase: str, shards: int, shard_index: int | None = None) -> list[str]:
    """One phase of a `run` split over `shards` pods: partition and join name their shard, commit none.

    `day_args` is the unsharded `run` (preliminary_args, final_args). --fail-on-alert stays on commit
    alone: the alerts are computed when the day is published.
    """
    if phase not in PHASES:
        raise ValueError(f"phase must be one of {', '.join(PHASES)}, got {phase!r}")
    if day_args[:1] != ["run"]:
        raise ValueError(f"a sharded phase splits a `run`, got {' '.join(day_args[:1])!r}")
    if not 1 <= shards <= MAX_SHARDS:
        raise ValueError(f"shards must be from 1 to {MAX_SHARDS}, got {shards}")
    args = ["run", *(arg for arg in day_args[1:] if phase == "commit" or arg != "--fail-on-alert"), "--shards", str(shards), "--phase", phase]
    if phase == "commit":
        if shard_index is not None:
            raise ValueError("commit runs once, without a shard index")
        return args
    if shard_index is None or not 0 <= shard_index < shards:
        raise ValueError(f"{phase} needs a shard index from 0 to {shards - 1}, got {shard_index}")
    return args + ["--shard-index", str(shard_index)]


def sharded_plan(stage: str, data_interval_start: datetime, data_interval_end: datetime, shards: int,
                 settings: CommandSettings = CommandSettings()) -> dict[str, object]:
    """The commands of one stage of the daily run over `shards` pods, every phase with the same --as-of.

    {"partition": [args of shard 0, …], "join": [args of shard 0, …], "commit": args}.
    """
    if stage == "preliminary":
        day = preliminary_args(data_interval_start, data_interval_end, settings)
    elif stage == "final":
        day = final_args(data_interval_end, settings)
    else:
        raise ValueError(f"stage must be preliminary or final, got {stage!r}")
    return {
        "partition": [sharded_args(day, "partition", shards, index) for index in range(shards)],
        "join": [sharded_args(day, "join", shards, index) for index in range(shards)],
        "commit": sharded_args(day, "commit", shards),
    }


@dataclass(frozen=True)
class NotReadyStep:
    """What to do after exit 3: wait until `wait_until`, or give up (`wait_until` is None) with `message`."""

    wait_until: datetime | None
    message: str


def after_not_ready(now: datetime, data_interval_end: datetime, retry_every: timedelta, give_up_after: timedelta) -> NotReadyStep:
    """Exit 3 (not ready) is not a failure: try again `retry_every` later, until `give_up_after` past the interval's end."""
    now, deadline = _utc(now), _utc(data_interval_end) + give_up_after
    if now >= deadline:
        return NotReadyStep(None, f"still not ready {format_instant(now)}, past the deadline {format_instant(deadline)} "
                                  f"(data interval end + {give_up_after}); check that the labels of the window have landed, then clear the task")
    wait_until = min(now + retry_every, deadline)
    return NotReadyStep(wait_until, f"not ready yet (exit {EXIT_NOT_READY}); trying again at {format_instant(wait_until)}")


def _parse_instant(text: str) -> datetime:
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return _utc(moment)


def main(argv: list[str]) -> int:
    """Prints, as JSON, the commands the DAGs would run; see the module docstring."""
    usage = ("usage: model_metrics_commands.py daily START END [LABEL_WINDOW]\n"
             "       model_metrics_commands.py backfill FROM TO STAGE SHARDS [AS_OF]\n"
             "       model_metrics_commands.py sharded START END SHARDS")
    try:
        if len(argv) in (3, 4) and argv[0] == "daily":
            settings = CommandSettings(label_window=argv[3]) if len(argv) == 4 else CommandSettings()
            start, end = _parse_instant(argv[1]), _parse_instant(argv[2])
            rendered: object = {"preliminary": preliminary_args(start, end, settings), "final": final_args(end, settings)}
        elif len(argv) in (5, 6) and argv[0] == "backfill":
            as_of = _parse_instant(argv[5]) if len(argv) == 6 else None
            rendered = backfill_shards(date.fromisoformat(argv[1]), date.fromisoformat(argv[2]), argv[3], int(argv[4]), as_of)
        elif len(argv) == 4 and argv[0] == "sharded":
            start, end, shards = _parse_instant(argv[1]), _parse_instant(argv[2]), shard_count(argv[3])
            rendered = {stage: sharded_plan(stage, start, end, shards) for stage in ("preliminary", "final")}
        else:
            print(usage, file=sys.stderr)
            return EXIT_USAGE
    except ValueError as error:
        print(f"model_metrics_commands: {error}", file=sys.stderr)
        return EXIT_USAGE
    print(json.dumps(rendered))
    return EXIT_DONE


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
