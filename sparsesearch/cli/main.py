"""The ``sparsesearch`` command: thin commands over the library. Owns the console.

Bad input (a :class:`~sparsesearch.errors.SparseSearchError`) is printed as one clear message with exit
code 2, never as a traceback.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

import click

from sparsesearch.errors import SparseSearchError
from sparsesearch.records.urls import STORAGE_ENV, TRACKING_ENV, from_environment, mask_text


class _Group(click.Group):
    """Turns sparsesearch's own errors into a message and exit code 2."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except SparseSearchError as exc:
            click.echo(f"error: {mask_text(str(exc))}", err=True)
            sys.exit(2)


class _MaskSecrets(logging.Filter):
    """Masks URL credentials in every log line, whatever library wrote it."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = mask_text(message)
        if masked != message:
            record.msg, record.args = masked, ()
        return True


@click.group(cls=_Group)
@click.version_option(package_name="sparsesearch")
@click.option("-v", "--verbose", count=True, help="More log output (-v info, -vv debug).")
def main(verbose: int) -> None:
    """Experiment-tracked AutoML sparsity search for PyTorch models."""
    level = logging.WARNING if verbose == 0 else (logging.INFO if verbose == 1 else logging.DEBUG)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    for handler in logging.getLogger().handlers:
        handler.addFilter(_MaskSecrets())


# ---------------------------------------------------------------- validate / convert (recipes, INC, LPOT)


@main.command()
@click.argument("file", type=click.Path(dir_okay=True, path_type=str))
@click.option("--task", "task", metavar="NAME", help="Check against this task's model (built-in or module:callable).")
@click.option("--model", "model_ref", metavar="MODULE:CALLABLE", help="Check against the model this callable builds.")
@click.option("--steps-per-epoch", type=click.IntRange(min=1), help="Show epoch-based schedules in steps.")
def validate(file: str, task: str | None, model_ref: str | None, steps_per_epoch: int | None) -> None:
    """Check a recipe, study spec, INC or LPOT config and print what it would do."""
    from sparsesearch.api import study_file
    from sparsesearch.cli.describe import describe, model_from_reference, model_from_task
    from sparsesearch.errors import ConfigError
    from sparsesearch.formats.files import read_config_file
    from sparsesearch.pruning import match_model

    if task and model_ref:
        raise ConfigError("give --task or --model, not both", key="--model", value=model_ref,
                          allowed="one of --task NAME, --model module:callable")
    loaded = read_config_file(study_file(file))
    match, label = None, ""
    if (task or model_ref) and loaded.recipe is not None:
        if task:
            model, task_spe = model_from_task(task)
            label, steps_per_epoch = f"task {task}", steps_per_epoch or task_spe
        elif model_ref:
            model, label = model_from_reference(model_ref), model_ref
        try:
            match = match_model(loaded.recipe, model, steps_per_epoch=steps_per_epoch)
        except ConfigError as exc:
            raise loaded.locate(exc) from None
    for line in describe(loaded, match=match, model_label=label, steps_per_epoch=steps_per_epoch):
        click.echo(line)


@main.command()
@click.argument("source", metavar="IN", type=click.Path(dir_okay=True, path_type=str))
@click.option("--to", "to", type=click.Choice(["sparsesearch", "inc"]), required=True,
              help="sparsesearch: a recipe; inc: an INC WeightPruningConfig YAML.")
@click.option("-o", "--output", required=True, type=click.Path(path_type=str), help="The file to write.")
@click.option("--force", is_flag=True, help="Replace OUT if it exists (never the input file).")
@click.option("--steps-per-epoch", type=click.IntRange(min=1), help="For epoch-based schedules going to INC.")
def convert(source: str, to: str, output: str, force: bool, steps_per_epoch: int | None) -> None:
    """Convert a recipe, INC or LPOT config to a sparsesearch recipe or an INC config."""
    from pathlib import Path

    from sparsesearch.errors import ConfigError
    from sparsesearch.formats.files import kind_name, read_config_file
    from sparsesearch.formats.inc import export_inc_yaml
    from sparsesearch.formats.recipe import recipe_to_yaml
    from sparsesearch.formats.safe_yaml import write_text_safely

    if Path(output).exists() and Path(output).resolve() == Path(source).resolve():
        raise ConfigError("the output would replace the input file", value=output,
                          allowed="a different output file name", file=output)
    loaded = read_config_file(source)
    if loaded.recipe is None:
        raise ConfigError(f"a {kind_name(loaded.kind)} cannot be converted; run the study and export its recipe "
                          "with `sparsesearch export`", file=source)
    recipe = loaded.recipe
    if to == "sparsesearch":
        text, remarks = recipe_to_yaml(recipe), list(recipe.provenance.notes)
        heading = "notes (differences from the original):"
    else:
        text, remarks = export_inc_yaml(recipe, steps_per_epoch=steps_per_epoch)
        heading = "not expressed exactly in INC (also written at the top of the file):"
    write_text_safely(output, text, overwrite=force)
    click.echo(f"wrote {output} ({'sparsesearch recipe' if to == 'sparsesearch' else 'INC WeightPruningConfig'}) "
               f"from {kind_name(loaded.kind)} {source}")
    if remarks:
        click.echo(heading)
        for remark in remarks:
            click.echo(f"  - {remark}")


# ---------------------------------------------------------------- the search: run / show / export / studies / ui


def _quiet_libraries(verbose: int) -> None:
    """MLflow and Optuna log at INFO by themselves; keep them to warnings unless -v was given."""
    if verbose == 0:
        import os

        os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")  # read when mlflow is imported
        for name in ("mlflow", "alembic"):
            logging.getLogger(name).setLevel(logging.WARNING)
        logging.getLogger("optuna").setLevel(logging.ERROR)  # failed trials are reported by sparsesearch itself


def _study_ref(spec_path: str | None, study: str | None, storage: str | None):
    from sparsesearch.cli.common import study_ref

    return study_ref(spec_path, study, storage)


def _spec_options(f):
    f = click.option("--storage", metavar="URL", help="Optuna storage (default: the spec's, or sqlite:///sparsesearch.db).")(f)
    f = click.option("--study", "study_name", metavar="NAME", help="Study name (default: the spec's).")(f)
    return click.argument("spec", required=False, type=click.Path(dir_okay=False, path_type=str))(f)


def _signal_number(name: str | None) -> int:
    """The number of a signal named like ``SIGTERM`` (SIGINT's when there is none: Ctrl-C in Python)."""
    import signal

    return int(getattr(signal, name, signal.SIGINT)) if name else int(signal.SIGINT)


@main.command()
@click.argument("spec_path", metavar="SPEC", type=click.Path(dir_okay=False, path_type=str))
@click.option("--n-trials", type=click.IntRange(min=1), help="Finished trials the study should have (all workers).")
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), help="Seconds this run may start trials for.")
@click.option("--storage", metavar="URL", help="Optuna storage URL (PostgreSQL for several workers).")
@click.option("--tracking-uri", metavar="URI", help="MLflow tracking URI ('none' turns tracking off).")
@click.option("--seed", type=click.IntRange(min=0), help="Seed of the data split, baseline, sampler and trials.")
@click.option("--task", "task_ref", metavar="MODULE:CALLABLE",
              help="Your task (imported and called): overrides the spec's task, which a file cannot run by itself.")
@click.option("--trust-task", is_flag=True, help="Allow the spec file's own module:callable task to be imported.")
@click.pass_context
def run(ctx: click.Context, spec_path: str, n_trials: int | None, timeout: float | None, storage: str | None,
        tracking_uri: str | None, seed: int | None, task_ref: str | None, trust_task: bool) -> None:
    """Run a study, or resume the study of the same name: sample, prune, train, track.

    Several workers may run the same spec against one shared storage (PostgreSQL); a worker that dies is
    noticed by the others, which run its trial again. Ctrl-C or SIGTERM stops cleanly (exit 130 or 143).
    """
    import dataclasses

    from sparsesearch.api import study_file
    from sparsesearch.cli.console import ProgressEvents, result_lines
    from sparsesearch.formats.files import read_spec
    from sparsesearch.records.urls import mask_uri
    from sparsesearch.search.runner import run_study
    from sparsesearch.search.storage import load
    from sparsesearch.search.tables import pareto_table

    _quiet_libraries(ctx.find_root().params.get("verbose", 0))
    spec_path = str(study_file(spec_path))
    spec = read_spec(spec_path)
    tracking = spec.tracking
    tracking_uri = from_environment(tracking_uri, TRACKING_ENV, None)
    if tracking_uri is not None:
        tracking = dataclasses.replace(tracking, uri=None if tracking_uri.lower() in ("none", "null", "") else tracking_uri)
    spec = spec.with_overrides(n_trials=n_trials, timeout=timeout, storage=from_environment(storage, STORAGE_ENV, None),
                               seed=seed, tracking=tracking, task=task_ref)
    click.echo(f"study {spec.name!r} on {spec.task}: {spec.n_trials or 'unlimited'} trials"
               + (f" or {spec.timeout:g}s" if spec.timeout else "") + f", sampler {spec.sampler}", err=True)
    click.echo(f"  storage  {mask_uri(spec.storage)}", err=True)
    click.echo(f"  tracking {('MLflow ' + str(mask_uri(spec.tracking.uri))) if spec.tracking.uri else 'off'}", err=True)
    events = ProgressEvents()
    try:
        result = run_study(spec, events=events, trust_task=trust_task or task_ref is not None, source=spec_path)
    finally:
        events.close()
    study = load(result.name, spec.storage)
    from sparsesearch.search.pareto import front_trials

    rows = pareto_table(study, front_trials(study), result.dense, result.selected)
    rule = spec.export.rule + (f" (max drop {spec.export.max_drop:g})" if spec.export.rule == "max_sparsity_within_drop"
                               else "")
    for line in result_lines(result, rows, rule):
        click.echo(line)
    for message in result.messages:
        click.echo(f"note: {message}")
    if result.interrupted:
        by = f" by {result.stopped_by}" if result.stopped_by else ""
        click.echo(f"interrupted{by}: the running trial is marked interrupted (FAIL in Optuna, KILLED in MLflow); "
                   f"finished trials are kept.\nresume with: sparsesearch run {spec_path}", err=True)
        sys.exit(128 + _signal_number(result.stopped_by))
    if result.error:  # every trial failed: the study has nothing to show, and says why
        raise SparseSearchError(result.error)
    _end_of_run_report(study, spec.name, spec.tracking.uri)
    click.echo("next:")
    click.echo(f"  sparsesearch show {spec_path}          # the front and the study summary")
    click.echo(f"  sparsesearch export {spec_path} -o {spec.name}.recipe.yaml")
    if spec.tracking.uri:
        click.echo(f"  sparsesearch ui {spec_path}            # MLflow UI: parent run, trial runs, curves")


def _end_of_run_report(study: Any, name: str, tracking_uri: str | None) -> None:
    """The study report at the end of ``run``: NAME.report.html here (never replacing a file that is not one of
    its own reports) and, when tracked, the page and its figures on the study's MLflow run."""
    from sparsesearch.cli.report import _check_output
    from sparsesearch.errors import ConfigError
    from sparsesearch.report import publish, write_report

    path = f"{name}.report.html"
    try:
        report = publish(study, tracking_uri) if tracking_uri else None
        _check_output(path, None, force=False)
        if report is not None:
            Path(path).write_text(report.html, encoding="utf-8")
        else:
            write_report(study, path, tracking_uri)
        click.echo(f"report: {path}" + (" (also on the study's MLflow run)" if report is not None else ""))
    except ConfigError as exc:
        click.echo(f"note: no report written: {exc}", err=True)
    except Exception as exc:  # noqa: BLE001 - the study is recorded; a report failure must not hide that
        logging.getLogger(__name__).warning("the study report could not be built: %s", exc)


@main.command()
@_spec_options
def show(spec: str | None, study_name: str | None, storage: str | None) -> None:
    """The Pareto table and a summary of a study."""
    from sparsesearch.cli.console import counts_text, pareto_lines
    from sparsesearch.records.state import StudyState, TrialRecord
    from sparsesearch.records.study import Export
    from sparsesearch.records.urls import mask_uri
    from sparsesearch.search import pareto
    from sparsesearch.search.storage import load, state_counts
    from sparsesearch.search.tables import pareto_table

    name, url, spec_obj = _study_ref(spec, study_name, storage)
    study = load(name, url)
    trials = study.get_trials(deepcopy=False)
    state = StudyState.of(study.user_attrs)
    dense, stored = state.baseline, state.spec
    rule = spec_obj.export if spec_obj else Export(**state.export)
    metric = state.metric
    front = pareto.front_trials(study)
    pts = pareto.points(front, state.maximize)
    try:
        selected, why = pareto.select(pts, rule, state.dense_value, metric=metric), None
    except pareto.NoTrialSelected as exc:
        selected, why = None, str(exc)
    click.echo(f"study {name!r} in {mask_uri(url)}: task {stored.get('task', '?')}, {len(trials)} trials "
               f"({counts_text(state_counts(trials))}); objective: {metric} "
               f"({'higher' if state.maximize else 'lower'} is better) and sparsity")
    if dense:
        test = dense.get(f"test_{metric}", dense.get("test_accuracy"))
        click.echo(f"dense baseline: val {metric} {state.dense_value or 0:.4f}"
                   + (f", test {test:.4f}" if test is not None else "")
                   + (" (measured: pretrained weights)" if dense.get("pretrained") else
                      f" ({dense.get('epochs', '?')} epochs)"))
    if pts:
        hv = pareto.study_hypervolume(pts, stored, state.dense_value)
        click.echo(f"Pareto front ({len(pts)} trials, hypervolume {hv:.4f}; "
                   f"* = chosen by {rule.rule}):")
        for line in pareto_lines(pareto_table(study, front, dense, selected)):
            click.echo(line)
    else:
        click.echo("no Pareto front yet: the study has no completed feasible trial")
    if why:
        click.echo(f"no trial selected: {why}")
    beyond = _beyond_constraint(study, trials, state.maximize)
    if beyond:
        click.echo(f"beyond the constraint ({len(beyond)} trials too far from dense, best per sparsity; "
                   "export one with --trial N):")
        for t in beyond[:8]:
            s = TrialRecord.of(t.user_attrs).summary
            click.echo(f"  trial {t.number:>3}  val {metric} {t.values[0]:.4f}  sparsity {t.values[1]:.4f}  "
                       f"{s.get('pruning_type', '?')} {s.get('pattern', '?')} {s.get('scope', '?')}")
    stopped = [t for t in trials if t.state.name == "PRUNED"]
    if stopped:
        click.echo(f"stopped early: {len(stopped)} trials (e.g. trial {stopped[-1].number}: "
                   f"{TrialRecord.of(stopped[-1].user_attrs).stop_reason or '?'})")
    for uri, info in state.tracking.items():
        click.echo(f"tracking: {uri}, experiment {info.get('experiment')!r}, study run {info.get('parent_run_id')}")


def _beyond_constraint(study: Any, trials: list, maximize: bool) -> list:
    """Complete trials that break the constraint and that no other such trial beats on both objectives,
    sparsest first: the high end a user came for, shown even though the constraint keeps it off the front."""
    from sparsesearch.search import pareto

    feasible = pareto.feasibility(study)
    broken = [t for t in trials if t.state.name == "COMPLETE" and t.values and not feasible.get(t.number, True)]
    keep = {p.number for p in pareto.non_dominated(pareto.points(broken, maximize))}
    return sorted((t for t in broken if t.number in keep), key=lambda t: -t.values[1])


def _model_options(f):
    """--save and --register of export and reproduce (sparsesearch.cli.models does the work)."""
    f = click.option("--register", metavar="NAME", help="Also register the logged model in MLflow's model registry.")(f)
    return click.option("--save", metavar="FILE|DIR", help="Write the pruned model: FILE (model.pt) its sparse state, "
                        "DIR an MLflow model of the compacted (or masked) model; also logs it to the trial's run.")(f)


@main.command()
@_spec_options
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=str),
              help="Recipe file to write (default: STUDY.recipe.yaml).")
@click.option("--rule", type=click.Choice(["max_sparsity_within_drop", "knee", "max_accuracy_at_sparsity"]),
              help="Selection rule (default: the spec's export.rule).")
@click.option("--max-drop", type=click.FloatRange(0, 1), help="max_sparsity_within_drop: allowed accuracy drop (0.01 = 1 point).")
@click.option("--min-sparsity", type=click.FloatRange(0, 1, max_open=True), help="max_accuracy_at_sparsity: the sparsity floor.")
@click.option("--trial", "trial_number", type=click.IntRange(min=0), help="Export this trial instead of applying a rule.")
@click.option("--force", is_flag=True, help="Replace the output file if it exists.")
@_model_options
def export(spec: str | None, study_name: str | None, storage: str | None, output: str | None, rule: str | None,
           max_drop: float | None, min_sparsity: float | None, trial_number: int | None, force: bool,
           save: str | None, register: str | None) -> None:
    """Write the chosen Pareto trial's recipe YAML (with provenance and test accuracy); with --save or
    --register, also the trial's pruned model (from its MLflow run, else re-trained)."""
    import dataclasses

    from sparsesearch.errors import ConfigError
    from sparsesearch.records.state import StudyState
    from sparsesearch.records.study import Export
    from sparsesearch.records.urls import mask_uri
    from sparsesearch.search import pareto
    from sparsesearch.search.export import export_recipe, recipe_for_trial
    from sparsesearch.search.storage import load

    name, url, spec_obj = _study_ref(spec, study_name, storage)
    study = load(name, url)
    state = StudyState.of(study.user_attrs)
    chosen_rule = spec_obj.export if spec_obj else Export(**state.export)
    changes = {k: v for k, v in (("rule", rule), ("max_drop", max_drop), ("min_sparsity", min_sparsity)) if v is not None}
    chosen_rule = dataclasses.replace(chosen_rule, **changes)
    if trial_number is not None:
        trials = [t for t in study.get_trials(deepcopy=False) if t.number == trial_number]
        if not trials or trials[0].state.name != "COMPLETE":
            raise ConfigError("no completed trial with this number", key="--trial", value=trial_number,
                              allowed="the number of a COMPLETE trial (see sparsesearch show)")
        trial, how = trials[0], f"trial {trial_number} as asked"
    else:
        front = pareto.front_trials(study)
        try:
            point = pareto.select(pareto.points(front, state.maximize), chosen_rule, state.dense_value,
                                  metric=state.metric)
        except pareto.NoTrialSelected as exc:
            raise ConfigError(str(exc), key="--rule", value=chosen_rule.rule) from None
        trial = next(t for t in front if t.number == point.number)
        how = f"chosen by {chosen_rule.rule}"
    recipe = recipe_for_trial(study, trial)
    path = export_recipe(recipe, output or f"{name}.recipe.yaml", overwrite=force)
    m = recipe.provenance.metrics
    metric = m.objective or "accuracy"
    value = m.value if m.value is not None else m.val_accuracy
    dense_value = m.dense_value if m.dense_value is not None else m.dense_val_accuracy
    test = m.test_value if m.test_value is not None else m.test_accuracy
    drop = ""
    if dense_value is not None and value is not None:
        worse = (dense_value - value) if m.direction != "minimize" else (value - dense_value)
        drop = f", {worse:+.4f} worse than dense" if metric != "accuracy" else f", {100 * worse:.2f} points below dense"
    g = recipe.pruning.groups[0]
    click.echo(f"wrote {path}: trial {trial.number} ({how}) — {g.pruning_type} {g.pattern} {g.pruning_scope}")
    click.echo(f"  val {metric} {value:.4f}{drop}; test {test if test is None else round(test, 4)}; "
               f"sparsity {m.sparsity:.4f}")
    click.echo(f"check it:  sparsesearch validate {path} --task {recipe.training.task if recipe.training else '?'}")
    click.echo(f"re-run it: sparsesearch reproduce {path}" + (f" --storage {mask_uri(url)}" if storage else ""))
    if save or register:
        from sparsesearch.cli.models import export_model

        export_model(recipe, storage=url, save=save, register=register, overwrite=force, echo=click.echo,
                     tracking_uri=from_environment(None, TRACKING_ENV, (state.spec.get("tracking") or {}).get("uri")))


@main.command()
@click.option("--storage", metavar="URL", help="Optuna storage (default: sqlite:///sparsesearch.db).")
def studies(storage: str | None) -> None:
    """The studies in a storage, with their trial counts."""
    from sparsesearch.cli.console import table
    from sparsesearch.records.state import StudyState
    from sparsesearch.records.study import DEFAULT_STORAGE
    from sparsesearch.records.urls import mask_uri
    from sparsesearch.search.storage import list_studies, load, state_counts

    url = from_environment(storage, STORAGE_ENV, DEFAULT_STORAGE) or DEFAULT_STORAGE
    rows = []
    for summary in list_studies(url):
        counts = state_counts(load(summary.study_name, url).get_trials(deepcopy=False))
        rows.append({"study": summary.study_name, "task": StudyState.of(summary.user_attrs).task or "-",
                     "trials": summary.n_trials, "complete": counts.get("COMPLETE", 0),
                     "stopped": counts.get("PRUNED", 0), "failed": counts.get("FAIL", 0),
                     "running": counts.get("RUNNING", 0),
                     "started": summary.datetime_start.strftime("%Y-%m-%d %H:%M") if summary.datetime_start else "-"})
    if not rows:
        click.echo(f"no studies in {mask_uri(url)}; start one with: sparsesearch run studies/quickstart.yaml")
        return
    click.echo(f"studies in {mask_uri(url)}:")
    for line in table(rows, [(k, k) for k in rows[0]]):
        click.echo("  " + line)


@main.command()
@click.argument("spec", required=False, type=click.Path(dir_okay=False, path_type=str))
@click.option("--tracking-uri", metavar="URI", help="MLflow store (default: the spec's, or sqlite:///mlflow.db).")
@click.option("--port", type=click.IntRange(1, 65535), default=5000, show_default=True)
@click.option("--open", "open_browser", is_flag=True, help="Also open the link in your web browser.")
def ui(spec: str | None, tracking_uri: str | None, port: int, open_browser: bool) -> None:
    """Start the MLflow UI on 127.0.0.1 and print a link to the study's runs (model-training view).

    Exits with an error, starting nothing, when the port is taken. Ctrl-C stops the server.
    """
    import signal
    import subprocess
    from pathlib import Path

    from sparsesearch.cli import ui as server
    from sparsesearch.errors import ConfigError
    from sparsesearch.formats.files import read_spec
    from sparsesearch.records.study import DEFAULT_TRACKING_URI
    from sparsesearch.records.urls import mask_uri
    from sparsesearch.report.links import experiment_runs_url, experiments_url

    spec_obj = read_spec(spec) if spec else None
    uri = from_environment(tracking_uri, TRACKING_ENV, spec_obj.tracking.uri if spec_obj else DEFAULT_TRACKING_URI)
    if not uri:
        raise ConfigError("this study has tracking turned off", key="tracking.uri", value=None,
                          allowed="--tracking-uri URI of an MLflow store")
    if uri.startswith("sqlite:///") and not Path(uri[len("sqlite:///"):]).exists():
        raise ConfigError("no MLflow database here yet; run a study first (sparsesearch run SPEC), or point "
                          "--tracking-uri at the store", key="--tracking-uri", value=uri,
                          allowed="an existing MLflow store")
    server.check_port(port)
    _quiet_libraries(0)
    experiment_id, experiment = server.find_experiment(uri, spec_obj.experiment if spec_obj else None)
    base = f"http://{server.HOST}:{port}"
    if experiment_id is None and spec_obj is not None:
        click.echo(f"note: no experiment {spec_obj.experiment!r} in {mask_uri(uri)} yet; linking the experiment list",
                   err=True)
    link = experiment_runs_url(experiment_id, base) if experiment_id is not None else experiments_url(base)
    click.echo(f"starting the MLflow UI for {mask_uri(uri)} on {base} ...", err=True)
    process = subprocess.Popen(server.server_command(uri, port), env=server.server_env())

    def _stop(signum, frame):  # SIGTERM: stop the server too, then leave
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, _stop)
    try:
        if not server.wait_until_up(process, port):
            server.stop(process)
            raise ConfigError(f"the MLflow UI did not start (exit code {process.returncode}); see its messages above",
                              key="--tracking-uri", value=mask_uri(uri))
        click.echo(f"MLflow UI: {link}")
        click.echo((f"the runs of experiment {experiment!r} (one per trial, and the study run); " if experiment else "")
                   + "Ctrl-C stops it", err=True)
        if open_browser:
            import webbrowser

            webbrowser.open(link)
        code = process.wait()
    except KeyboardInterrupt:
        server.stop(process)
        code = 0
    finally:
        signal.signal(signal.SIGTERM, previous)
    sys.exit(code)


@main.command()
@click.argument("recipe_path", metavar="RECIPE", type=click.Path(dir_okay=False, path_type=str))
@click.option("--storage", metavar="URL", help="Optuna storage of the recipe's study (default: sqlite:///sparsesearch.db).")
@click.option("--tracking-uri", metavar="URI", help="MLflow store holding the study's dense baseline.")
@click.option("--dense", type=click.Path(exists=True, dir_okay=False, path_type=str),
              help="Start from this dense state_dict instead of the study's baseline.")
@click.option("--task", "task_ref", metavar="NAME|MODULE:CALLABLE",
              help="The task to train on (overrides the recipe's; a module:callable is imported and called).")
@click.option("--trust-task", is_flag=True, help="Allow the recipe file's own module:callable task to be imported.")
@_model_options
def reproduce(recipe_path: str, storage: str | None, tracking_uri: str | None, dense: str | None,
              task_ref: str | None, trust_task: bool, save: str | None, register: str | None) -> None:
    """Re-run an exported recipe with its seed and compare with the trial it came from (--save/--register:
    keep the re-trained pruned model)."""
    from sparsesearch.formats.recipe import load_recipe
    from sparsesearch.records.study import DEFAULT_STORAGE, DEFAULT_TRACKING_URI
    from sparsesearch.search.reproduce import TOLERANCE_POINTS
    from sparsesearch.search.reproduce import reproduce as rerun

    _quiet_libraries(0)
    recipe = load_recipe(recipe_path)
    tracking_uri = from_environment(tracking_uri, TRACKING_ENV, DEFAULT_TRACKING_URI)
    rep = rerun(recipe, storage=from_environment(storage, STORAGE_ENV, DEFAULT_STORAGE), tracking_uri=tracking_uri,
                dense=dense, task=task_ref, trust_task=trust_task, source=recipe_path)
    r = rep.result
    test = r.test_value
    click.echo(f"re-ran {recipe_path}: val {r.objective} {r.value:.4f}"
               + (f", test {test:.4f}" if test is not None else "") + f", sparsity {r.sparsity:.6f} in {r.seconds:.1f}s")
    rec = rep.recorded
    if rep.delta is not None:
        recorded = rec.get("value", rec.get("val_accuracy"))
        click.echo(f"recorded: val {recorded:.4f}, sparsity {rec.get('sparsity', float('nan')):.6f}; "
                   f"{r.objective} {rep.accuracy_delta_points:+.2f} points, sparsity "
                   f"{'exact' if rep.sparsity_exact else 'DIFFERENT'}")
        click.echo("reproduced" if rep.ok else f"NOT reproduced (tolerance {TOLERANCE_POINTS} points, exact sparsity)")
    if save or register:
        from sparsesearch.cli.models import take_home

        take_home(rep.model, rep.task, recipe, save=save, register=register, tracking_uri=tracking_uri,
                  overwrite=False, echo=click.echo)
    if rep.delta is not None and not rep.ok:
        sys.exit(1)


from sparsesearch.cli.report import report as _report  # noqa: E402 (registered after the commands above)

main.add_command(_report)
from sparsesearch.cli.models import compact as _compact  # noqa: E402 (heavy imports only when it runs)

main.add_command(_compact)

if __name__ == "__main__":  # pragma: no cover
    main()
