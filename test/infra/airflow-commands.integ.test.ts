/**
 * infra/airflow (issue 4). Airflow itself cannot be installed on this project's machines (PyPI is
 * out of reach), so the DAG file is compiled, not run; the commands it runs come from the pure module
 * model_metrics_commands.py, exercised here with the machine's Python: the rendered commands for
 * sample data intervals, the label-window grammar against the CLI's own parser, the "not ready"
 * policy and the backfill shards; and the DAG shares the deployment's settings. The rendered
 * commands are run through the real CLI in airflow.integ.test.ts.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseLabelWindow } from '../../src/join/policy.js';
import { AIRFLOW, INTERVALS, PRELUDE, PYTHON, XCOM_RETURN_FILE, python, renderDaily, renderSharded } from '../helpers/airflow-commands.js';
import { flagValue, jobContainer, optionNames, readYaml, repoPath, unknownRunOptions } from '../helpers/infra-helpers.js';

describe('the DAG and the command module', () => {
  it('compile with the machine\'s Python', async () => {
    const cache = await mkdtemp(join(tmpdir(), 'mm-pycache-'));
    try {
      for (const file of ['model_metrics_dag.py', 'model_metrics_commands.py']) {
        const result = spawnSync(PYTHON, ['-m', 'py_compile', join(AIRFLOW, file)], { encoding: 'utf8', env: { PATH: process.env.PATH ?? '', PYTHONPYCACHEPREFIX: cache } });
        expect(result.status, `${file}: ${result.stderr}`).toBe(0);
      }
    } finally {
      await rm(cache, { recursive: true, force: true });
    }
  });

  it('share the deployment\'s label window, image, namespace, ServiceAccount and ConfigMaps', () => {
    const dag = readFileSync(join(AIRFLOW, 'model_metrics_dag.py'), 'utf8');
    const options = readYaml(repoPath('infra', 'kubernetes', 'base', 'config.yaml'));
    expect(/CommandSettings\(label_window="([^"]+)"\)/.exec(dag)?.[1]).toBe(options['label-window']);
    const image = readYaml(repoPath('infra', 'kubernetes', 'overlays', 'aws', 'image', 'kustomization.yaml')).images[0];
    expect(/^IMAGE = "([^"]+)"$/m.exec(dag)?.[1]).toBe(`${image.newName}:${image.newTag}`);
    const base = readYaml(repoPath('infra', 'kubernetes', 'base', 'kustomization.yaml'));
    expect(/^NAMESPACE = "([^"]+)"$/m.exec(dag)?.[1]).toBe(base.namespace);
    expect(/^SERVICE_ACCOUNT = "([^"]+)"$/m.exec(dag)?.[1]).toBe(readYaml(repoPath('infra', 'kubernetes', 'base', 'serviceaccount.yaml')).metadata.name);
    for (const name of base.configMapGenerator.map((g: { name: string }) => g.name)) expect(dag).toContain(`name="${name}"`);
    // Exit 3 is handed to the operator's skip mechanism and turned into a wait; exit 2 fails without retries.
    expect(dag).toContain('skip_on_exit_code=[commands.EXIT_NOT_READY]');
    expect(dag).toContain('commands.EXIT_USAGE');
    // Exit 4 (alerts fired, outputs committed) fails at once: a retry would only exit 4 again.
    expect(dag).toMatch(/exit_code == commands\.EXIT_ALERT:\s+raise AirflowFailException/);
    expect(dag).toContain('do_xcom_push=True');
  });

  it('render the preliminary of {{ ds }} and the final of the latest closed window, as of the interval\'s end', () => {
    const rendered = renderDaily('P7D');
    expect(rendered[1]).toEqual({
      preliminary: ['run', '--date', '2026-03-09', '--stage', 'preliminary', '--as-of', '2026-03-10T06:00:00Z', '--label-window', 'P7D', '--summary-file', XCOM_RETURN_FILE, '--fail-on-alert'],
      final: ['run', '--date', '2026-03-02', '--stage', 'final', '--as-of', '2026-03-10T06:00:00Z', '--label-window', 'P7D', '--summary-file', XCOM_RETURN_FILE, '--fail-on-alert'],
    });
    expect(rendered.map((r) => flagValue(r.final, '--date'))).toEqual(['2026-02-23', '2026-03-02', '2026-03-06']);
    expect(renderDaily('PT36H').map((r) => flagValue(r.final, '--date'))).toEqual(['2026-02-28', '2026-03-07', '2026-03-11']);
  });

  it('accept exactly the label windows the CLI accepts, with the same lengths', () => {
    const windows = ['P7D', 'PT36H', 'P2DT12H', 'P1W', 'PT0.5S', 'PT90M', 'P1M', 'P1Y', 'P', 'PT', 'P0D', '7D', 'p7d', 'PT1.0001S', 'P-1D', ' P7D'];
    const fromPython = python<Record<string, number | 'refused'>>(
      `${PRELUDE}
result = {}
for text in request:
    try:
        result[text] = c.parse_label_window(text).total_seconds()
    except ValueError:
        result[text] = "refused"
print(json.dumps(result))`,
      windows,
    );
    const fromCli: Record<string, number | 'refused'> = {};
    for (const text of windows) {
      try {
        fromCli[text] = parseLabelWindow(text).micros / 1e6;
      } catch {
        fromCli[text] = 'refused';
      }
    }
    expect(fromPython).toEqual(fromCli);
    expect(fromPython.P7D).toBe(604_800);
    expect(fromPython.P1M).toBe('refused');
  });

  it('treat exit 3 as "try again in an hour" until two days past the interval, then give up', () => {
    const steps = python<Array<{ wait_until: string | null; message: string }>>(
      `${PRELUDE}
end = instant("2026-03-10T06:00:00Z")
steps = [c.after_not_ready(instant(now), end, timedelta(hours=1), timedelta(days=2)) for now in request]
print(json.dumps([{"wait_until": None if s.wait_until is None else c.format_instant(s.wait_until), "message": s.message} for s in steps]))`,
      ['2026-03-10T06:05:00Z', '2026-03-12T05:30:00Z', '2026-03-12T06:00:00Z'],
    );
    expect(steps.map((s) => s.wait_until)).toEqual(['2026-03-10T07:05:00Z', '2026-03-12T06:00:00Z', null]);
    expect(steps[2]!.message).toMatch(/past the deadline 2026-03-12T06:00:00Z/);
  });

  it('deal the backfill range over shards, never more shards than days, without paging on alerts', () => {
    const shards = python<string[][]>(`${PRELUDE}
print(json.dumps(c.backfill_shards(date(2026, 3, 2), date(2026, 3, 4), "final", 8)))`);
    expect(shards.map((args) => [flagValue(args, '--shard-index'), flagValue(args, '--shard-count')])).toEqual([['0', '3'], ['1', '3'], ['2', '3']]);
    // Like the Kubernetes backfill Job: the alerts of historical days are not paged (no exit 4).
    for (const args of shards) expect(args).not.toContain('--fail-on-alert');
  });
  it('give the pods the CronJob\'s resources, spill volume, TMPDIR and heap cap', () => {
    const pod = readYaml(repoPath('infra', 'kubernetes', 'base', 'cronjob.yaml')).spec.jobTemplate.spec.template.spec;
    const container = jobContainer(pod);
    const env = Object.fromEntries(container.env.map((e: { name: string; value: string }) => [e.name, e.value]));
    const tmpVolume = container.volumeMounts.find((m: { mountPath: string }) => m.mountPath === env.TMPDIR).name;
    const fromPython = python<{ resources: unknown; tmpdir: string; spill: string; node_options: string }>(`${PRELUDE}
print(json.dumps({"resources": c.POD_RESOURCES, "tmpdir": c.TMPDIR, "spill": c.SPILL_SIZE_LIMIT, "node_options": c.NODE_OPTIONS}))`);
    expect(fromPython).toEqual({
      resources: container.resources,
      tmpdir: env.TMPDIR,
      spill: pod.volumes.find((v: { name: string }) => v.name === tmpVolume).emptyDir.sizeLimit,
      node_options: env.NODE_OPTIONS,
    });
    const dag = readFileSync(join(AIRFLOW, 'model_metrics_dag.py'), 'utf8');
    expect(dag).toContain('container_resources=k8s.V1ResourceRequirements(**commands.POD_RESOURCES)');
    expect(dag).toContain('size_limit=commands.SPILL_SIZE_LIMIT');
  });

  it('split each daily stage over K pods: partition and join mapped over the shards, then one commit', () => {
    const dag = readFileSync(join(AIRFLOW, 'model_metrics_dag.py'), 'utf8');
    expect(dag).toContain('dag_id="model_metrics_daily_sharded"');
    // Mapped tasks, one per shard index, from the plan task's XCom; commit after every join.
    for (const phase of ['partition', 'join']) expect(dag).toMatch(new RegExp(`ModelMetricsPodOperator\\.partial\\(task_id=f"\\{stage\\}_${phase}".*\\.expand\\(arguments=commands_of\\["${phase}"\\]\\)`));
    expect(dag).toContain('arguments=commands_of["commit"]');
    expect(dag).toContain('partition >> join >> commit');
    expect(dag).toContain('@task(task_id=f"{stage}_plan", multiple_outputs=True)');
    // K from the run's param, else the Variable, read when the plan runs (not when the file is parsed).
    expect(dag).toMatch(/commands\.shard_count\(params\.get\("shards"\), Variable\.get\(commands\.SHARDS_VARIABLE, None\)\)/);
    expect(dag).toContain('is_paused_upon_creation=True');

    for (const [stage, plan] of Object.entries(renderSharded(INTERVALS[1], 3))) {
      expect(plan.partition.map((args) => flagValue(args, '--shard-index')), stage).toEqual(['0', '1', '2']);
      expect(plan.join.map((args) => flagValue(args, '--shard-index')), stage).toEqual(['0', '1', '2']);
      expect(plan.commit, `${stage}: commit has no index`).not.toContain('--shard-index');
      const all = [...plan.partition, ...plan.join, plan.commit];
      for (const args of all) {
        expect(args.slice(0, 1), stage).toEqual(['run']);
        expect(flagValue(args, '--shards'), stage).toBe('3');
        // Every phase reads the labels as of the same instant, the interval's end.
        expect(flagValue(args, '--as-of'), stage).toBe(INTERVALS[1][1]);
        expect(unknownRunOptions(args), `${stage}: ${args.join(' ')}`).toEqual([]);
        expect(optionNames(args).filter((name) => name === 'fail-on-alert').length, stage).toBe(args === plan.commit ? 1 : 0);
      }
      expect(all.map((args) => flagValue(args, '--phase')), stage).toEqual(['partition', 'partition', 'partition', 'join', 'join', 'join', 'commit']);
    }
    const daily = renderDaily('P7D')[1]!;
    expect(flagValue(renderSharded(INTERVALS[1], 2).final.commit, '--date')).toBe(flagValue(daily.final, '--date'));
  });

  it('take K from the run\'s param, else the Variable, else 4, and refuse a bad K naming where it came from', () => {
    const outcomes = python<Array<number | string>>(
      `${PRELUDE}
out = []
for param, variable in request:
    try:
        out.append(c.shard_count(param, variable))
    except ValueError as error:
        out.append(str(error))
print(json.dumps(out))`,
      [[8, '2'], [null, '2'], [null, null], ['', ''], [0, null], [null, '65'], [null, 'four'], [2.5, null]],
    );
    expect(outcomes.slice(0, 4)).toEqual([8, 2, 4, 4]);
    expect(outcomes[4]).toMatch(/^param shards must be a whole number from 1 to 64, got 0$/);
    expect(outcomes[5]).toMatch(/^Variable model_metrics_shards must be a whole number from 1 to 64, got '65'$/);
    expect(outcomes[6]).toMatch(/^Variable model_metrics_shards must be/);
    expect(outcomes[7]).toMatch(/^param shards must be/);
    const refused = python<string[]>(
      `${PRELUDE}
day = ["run", "--date", "2026-03-02", "--stage", "final"]
out = []
for phase, shards, index in request:
    try:
        c.sharded_args(day, phase, shards, index)
        out.append("accepted")
    except ValueError as error:
        out.append(str(error))
print(json.dumps(out))`,
      [['commit', 2, 0], ['join', 2, 2], ['partition', 2, null], ['merge', 2, 0], ['partition', 0, 0]],
    );
    expect(refused).toEqual([
      'commit runs once, without a shard index',
      'join needs a shard index from 0 to 1, got 2',
      'partition needs a shard index from 0 to 1, got None',
      'phase must be one of partition, join, commit, got \'merge\'',
      'shards must be from 1 to 64, got 0',
    ]);
  });
});
