"""Airflow DAGs of model-metrics (issue 4): the daily run and a sharded backfill, as Kubernetes pods.

Copy this file and model_metrics_commands.py into the DAGs folder. Needs Airflow >= 2.7 (or 3.x)
with apache-airflow-providers-cncf-kubernetes >= 7.0 (skip_on_exit_code taking several codes) and a
triggerer (the "not ready" wait is a deferral). The pods run in the namespace of
infra/kubernetes: its ServiceAccount (IRSA on EKS), ConfigMaps (job options, dataset root, S3
endpoint) and Pod Security "restricted" profile, so an overlay must be applied there first, and
Airflow's Kubernetes connection needs the right to create pods and exec into them (XCom) there.

model_metrics_daily, at 06:00 UTC over the interval [D 06:00, D+1 06:00):
  preliminary  `run --date D --stage preliminary --as-of <interval end>`  (D = {{ ds }})
  final        `run --date F --stage final --as-of <interval end>`, F the latest day whose label
               window has closed by the interval's end (F = D - 7 with the P7D window)
  Each pushes the run summary (the `--json` document) to XCom through /airflow/xcom/return.json.
  Exit 3 ("not ready") is not a failure: the task waits (deferred, no worker held) and runs again
  an hour later, until two days past the interval; exit 2 (bad usage or config) fails at once,
  without retries; exit 4 (done, and an alert fired: both daily commands carry --fail-on-alert) fails
  at once too, so the failure callbacks and e-mails reach someone, while the outputs stay committed;
  exit 1 is retried like any failure.
model_metrics_daily_sharded, the same days and timetable, each stage split over K pods (SPEC §9):
  plan -> partition (one mapped pod per shard, `run … --shards K --phase partition --shard-index i`)
       -> join (the same, `--phase join`) -> commit (one pod, `--phase commit`, the only one that
  publishes and the only one with --fail-on-alert). Every phase of a stage has the same --as-of.
  K is the run's `shards` param, else the Airflow Variable model_metrics_shards, else 4. Created
  paused: run either this DAG or model_metrics_daily, not both (they compute the same days).
model_metrics_backfill, triggered by hand with a range (Trigger DAG w/ config):
  one pod per shard, `backfill --from … --to … --stage … --shard-index i --shard-count n`, so the
  days of the range are spread over n pods (day k to shard k mod n); a shard whose days are not
  ready yet ends "skipped". Without --fail-on-alert (never exit 4), like the Kubernetes backfill
  Job: the alerts of past days are read from each shard's summary (XCom) and alerts/, not paged.

Airflow cannot be installed on the project's build machines, so this file is only compiled there;
the commands it runs come from model_metrics_commands.py, which test/infra/airflow-commands.integ.test.ts renders
for sample intervals and runs through the real CLI.
"""

from __future__ import annotations

import os
import sys
from datetime import date, datetime, timedelta, timezone

import pendulum
from kubernetes.client import models as k8s

from airflow.exceptions import AirflowException, AirflowFailException, AirflowSkipException
from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
from airflow.timetables.interval import CronDataIntervalTimetable

try:  # Airflow 3
    from airflow.sdk import DAG, Param, Variable, task
except ImportError:  # Airflow 2
    from airflow import DAG
    from airflow.decorators import task
    from airflow.models import Variable
    from airflow.models.param import Param

try:  # Airflow 3: the standard provider
    from airflow.providers.standard.triggers.temporal import DateTimeTrigger
except ImportError:  # Airflow 2
    from airflow.triggers.temporal import DateTimeTrigger

_HERE = os.path.dirname(os.path.abspath(__file__))
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)
import model_metrics_commands as commands  # noqa: E402  (beside this file in the DAGs folder)

# The image of the aws overlay (infra/kubernetes/overlays/aws/image); both must run the same release.
IMAGE = "111122223333.dkr.ecr.eu-west-1.amazonaws.com/model-metrics:0.1.0"
NAMESPACE = "model-metrics"
SERVICE_ACCOUNT = "model-metrics"
# Must equal `label-window` in infra/kubernetes/base/config.yaml, or the DAG and the CronJob would
# publish finals of different windows (test/infra/airflow-commands.integ.test.ts checks it).
SETTINGS = commands.CommandSettings(label_window="P7D")
NOT_READY_RETRY_EVERY = timedelta(hours=1)
NOT_READY_GIVE_UP_AFTER = timedelta(days=2)
CONTAINER_NAME = "base"  # KubernetesPodOperator's name for the job's container

# The pod of infra/kubernetes/base/cronjob.yaml: non-root, read-only root filesystem, no privilege
# escalation, no capabilities, temp files on an emptyDir at /tmp, the job options from ConfigMaps.
POD_SECURITY = k8s.V1PodSecurityContext(
    run_as_non_root=True, run_as_user=1000, run_as_group=1000, fs_group=1000,
    seccomp_profile=k8s.V1SeccompProfile(type="RuntimeDefault"),
)
CONTAINER_SECURITY = k8s.V1SecurityContext(
    allow_privilege_escalation=False, read_only_root_filesystem=True, run_as_non_root=True,
    capabilities=k8s.V1Capabilities(drop=["ALL"]),
)
POD_SETTINGS = dict(
    namespace=NAMESPACE,
    image=IMAGE,
    service_account_name=SERVICE_ACCOUNT,
    automount_service_account_token=False,
    security_context=POD_SECURITY,
    container_security_context=CONTAINER_SECURITY,
    env_vars=[
        k8s.V1EnvVar(name="MODEL_METRICS_CONFIG", value="/etc/model-metrics/config.yaml"),
        k8s.V1EnvVar(name="TMPDIR", value=commands.TMPDIR),
        k8s.V1EnvVar(name="NODE_OPTIONS", value=commands.NODE_OPTIONS),
    ],
    env_from=[
        k8s.V1EnvFromSource(config_map_ref=k8s.V1ConfigMapEnvSource(name="model-metrics-env")),
        k8s.V1EnvFromSource(secret_ref=k8s.V1SecretEnvSource(name="model-metrics-credentials", optional=True)),
    ],
    volumes=[
        # Spill and temp files (TMPDIR, the default --spill-dir), on the node's disk.
        k8s.V1Volume(name="tmp", empty_dir=k8s.V1EmptyDirVolumeSource(size_limit=commands.SPILL_SIZE_LIMIT)),
        k8s.V1Volume(name="config", config_map=k8s.V1ConfigMapVolumeSource(name="model-metrics-config")),
    ],
    volume_mounts=[
        k8s.V1VolumeMount(name="tmp", mount_path=commands.TMPDIR),
        k8s.V1VolumeMount(name="config", mount_path="/etc/model-metrics", read_only=True),
    ],
    # 2 GiB, requested in full: a 1.2 GiB default --memory-budget (model_metrics_commands.POD_RESOURCES).
    container_resources=k8s.V1ResourceRequirements(**commands.POD_RESOURCES),
    # The job stops at the next block on SIGTERM and removes its partial outputs (SPEC §6).
    termination_grace_period=120,
    get_logs=True,
    on_finish_action="delete_pod",
    do_xcom_push=True,
)


class ModelMetricsPodOperator(KubernetesPodOperator):
    """A KubernetesPodOperator that runs one model-metrics command and reads its exit code (SPEC §6).

    `command_builder(data_interval_start, data_interval_end)` renders the arguments when the task
    runs (model_metrics_commands); without it, `arguments` are used as given (mapped backfill shards).
    Exit 3 "not ready" ends the pod as a skip (skip_on_exit_code); with on_not_ready="wait" the task
    then defers until an hour later and runs again, up to a deadline; with "skip" it stays skipped.
    """

    def __init__(self, *, command_builder=None, on_not_ready: str = "wait", **kwargs):
        if on_not_ready not in ("wait", "skip"):
            raise ValueError(f"on_not_ready must be 'wait' or 'skip', got {on_not_ready!r}")
        super().__init__(skip_on_exit_code=[commands.EXIT_NOT_READY], base_container_name=CONTAINER_NAME, **kwargs)
        self.command_builder = command_builder
        self.on_not_ready = on_not_ready

    def build_pod_request_obj(self, context=None):
        """The pod, with the XCom sidecar made to pass Pod Security "restricted" like the job's container."""
        pod = super().build_pod_request_obj(context)
        for container in pod.spec.containers:
            if container.name != CONTAINER_NAME and container.security_context is None:
                container.security_context = CONTAINER_SECURITY
        return pod

    def execute(self, context):
        if self.command_builder is not None:
            self.arguments = self.command_builder(context["data_interval_start"], context["data_interval_end"])
        self.log.info("model-metrics %s", " ".join(self.arguments or []))
        try:
            return super().execute(context)
        except AirflowSkipException:
            if self.on_not_ready == "skip":
                raise
            step = commands.after_not_ready(datetime.now(timezone.utc), context["data_interval_end"],
                                            NOT_READY_RETRY_EVERY, NOT_READY_GIVE_UP_AFTER)
            if step.wait_until is None:
                raise AirflowFailException(step.message)
            self.log.info(step.message)
            self.defer(trigger=DateTimeTrigger(moment=pendulum.instance(step.wait_until)), method_name="execute_after_wait")
        except AirflowException:
            # Bad usage or config (exit 2) cannot get better by retrying: fail without the retries.
            exit_code = self._job_exit_code()
            if exit_code == commands.EXIT_USAGE:
                raise AirflowFailException("model-metrics exited 2 (bad usage or config); see the pod log for the option to fix")
            # Alerts fired (exit 4, --fail-on-alert): the outputs are committed, so a retry would only
            # find them done and exit 4 again. Fail at once: on_failure_callback and e-mails go out.
            if exit_code == commands.EXIT_ALERT:
                raise AirflowFailException("model-metrics exited 4: alerts fired (SPEC §8); the day's outputs are committed; see the pod log (event: alert) and alerts/stage=…/dt=…/alerts.avro")
            raise

    def execute_after_wait(self, context, event=None):
        """Resumes after the "not ready" wait with a new pod."""
        self.pod = None
        self.pod_request_obj = None
        return self.execute(context)

    def _job_exit_code(self):
        remote_pod = getattr(self, "remote_pod", None)
        statuses = (remote_pod.status.container_statuses if remote_pod is not None and remote_pod.status else None) or []
        for status in statuses:
            if status.name == CONTAINER_NAME and status.state is not None and status.state.terminated is not None:
                return status.state.terminated.exit_code
        return None


# The timetable and run settings of the daily DAG and its sharded variant.
DAILY = dict(
    schedule=CronDataIntervalTimetable("0 6 * * *", timezone="UTC"),
    start_date=pendulum.datetime(2026, 3, 1, tz="UTC"),
    # A missed day is filled with model_metrics_backfill (or `airflow dags backfill`), not by a burst of catch-up runs.
    catchup=False,
    max_active_runs=1,
    default_args={"retries": 2, "retry_delay": timedelta(minutes=15)},
    tags=["model-metrics"],
)

with DAG(
    dag_id="model_metrics_daily",
    description="Preliminary metrics of yesterday and final metrics of the day whose label window just closed",
    **DAILY,
) as daily:
    ModelMetricsPodOperator(
        task_id="preliminary",
        name="model-metrics-preliminary",
        command_builder=lambda start, end: commands.preliminary_args(start, end, SETTINGS),
        **POD_SETTINGS,
    )
    ModelMetricsPodOperator(
        task_id="final",
        name="model-metrics-final",
        command_builder=lambda start, end: commands.final_args(end, SETTINGS),
        **POD_SETTINGS,
    )


with DAG(
    dag_id="model_metrics_backfill",
    description="A date range, spread over several pods (one shard of the days each)",
    schedule=None,
    start_date=pendulum.datetime(2026, 3, 1, tz="UTC"),
    catchup=False,
    tags=["model-metrics"],
    params={
        "from": Param("2026-01-01", type="string", format="date", description="first day (inclusive)"),
        "to": Param("2026-03-31", type="string", format="date", description="last day (inclusive)"),
        "stage": Param("final", enum=["preliminary", "final"]),
        "shards": Param(4, type="integer", minimum=1, maximum=64, description="pods running at once"),
    },
) as backfill:

    @task
    def shard_commands(params=None):
        """One argument list per shard, from the run's parameters."""
        return commands.backfill_shards(date.fromisoformat(params["from"]), date.fromisoformat(params["to"]),
                                        params["stage"], int(params["shards"]), settings=SETTINGS)

    ModelMetricsPodOperator.partial(
        task_id="backfill_shard",
        name="model-metrics-backfill",
        on_not_ready="skip",
        **POD_SETTINGS,
    ).expand(arguments=shard_commands())


with DAG(
    dag_id="model_metrics_daily_sharded",
    description="The daily run with each day split over several pods: partition and join per shard, then commit",
    **DAILY,
    # The daily DAG's replacement for days too large for one pod, not a second copy of it.
    is_paused_upon_creation=True,
    params={
        "shards": Param(None, type=["null", "integer"], minimum=1, maximum=commands.MAX_SHARDS,
                        description=f"pods per phase; empty: the Variable {commands.SHARDS_VARIABLE}, else {commands.DEFAULT_SHARDS}"),
    },
) as daily_sharded:
    for stage in ("preliminary", "final"):

        @task(task_id=f"{stage}_plan", multiple_outputs=True)
        def plan(stage=stage, params=None, data_interval_start=None, data_interval_end=None):
            """The stage's commands: one per shard for partition and join, then commit (K read at run time, not parse time).

            The Variable's default is positional: Airflow 2 names it default_var, Airflow 3's SDK default.
            """
            shards = commands.shard_count(params.get("shards"), Variable.get(commands.SHARDS_VARIABLE, None))
            return commands.sharded_plan(stage, data_interval_start, data_interval_end, shards, SETTINGS)

        commands_of = plan()
        # --shard-index is in each mapped task's arguments: there is no JOB_COMPLETION_INDEX here.
        partition = ModelMetricsPodOperator.partial(task_id=f"{stage}_partition", name=f"model-metrics-{stage}-partition", **POD_SETTINGS).expand(arguments=commands_of["partition"])
        join = ModelMetricsPodOperator.partial(task_id=f"{stage}_join", name=f"model-metrics-{stage}-join", **POD_SETTINGS).expand(arguments=commands_of["join"])
        commit = ModelMetricsPodOperator(task_id=f"{stage}_commit", name=f"model-metrics-{stage}-commit", arguments=commands_of["commit"], **POD_SETTINGS)
        partition >> join >> commit
