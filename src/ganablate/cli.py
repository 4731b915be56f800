"""The `ganablate` command: one subcommand per step of the study; bad input exits 2 with one line."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from ganablate.allocator import keep_freed_memory
from ganablate.device import DEVICES
from ganablate.errors import ConfigError, DataError, UsageError
from ganablate.study import job, layout, vocab


class _OneLineParser(argparse.ArgumentParser):
    """Usage errors as one line naming the argument, like every other bad input; --help keeps the full usage."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message}\n")


def _add_config_args(parser: argparse.ArgumentParser) -> None:
    source = parser.add_mutually_exclusive_group()
    source.add_argument(
        "--config", default="config/config.yaml", help="study config YAML (default: config/config.yaml)"
    )
    source.add_argument(
        "--config-json",
        help="the config (or the sections a step needs) as inline JSON; used by the workflow so that each rule "
        "depends only on its own sections",
    )


def _given(args: argparse.Namespace) -> tuple[dict, str, bool]:
    return job.given(args.config, args.config_json)


def _config(args: argparse.Namespace, overrides: dict[str, dict] | None = None) -> dict:
    """The step's config (study/job.py): the one given, the command line's values added, validated once."""
    return job.job_config(*_given(args), overrides=overrides)


def _run_config(args: argparse.Namespace, overrides: dict[str, dict]):
    """(the config of the run(s) `ganablate train` or `run` is asked for, their RunTag): the cell's levels applied
    and the command line's values added (study/job.py)."""
    cell = job.cell_of(args.cell)
    return job.job_config(*_given(args), cell, overrides), job.run_tag(cell, args.plan)


# --- subcommands -------------------------------------------------------------------------------


def _cmd_config_docs(args: argparse.Namespace) -> None:
    from ganablate.study.config_docs import reference_markdown

    print(reference_markdown(), end="")


def _cmd_prepare_data(args: argparse.Namespace) -> None:
    from ganablate.data import load_dataset

    # --download: how the workflow passes it, since how the data is found is none of the job's params
    download = {"true": True, "false": False}.get(args.download, args.download)
    config = _config(args, {"dataset": {"download": download}})
    data = load_dataset(config["dataset"])
    data.save(args.out)
    print(
        f"{data.name}: {len(data.train_images)} train, {len(data.test_images)} test images {data.image_shape}"
        f" -> {args.out}"
    )


def _cmd_train(args: argparse.Namespace) -> None:
    from ganablate.study.design import run_dir
    from ganablate.training.train import train_run, train_seeds

    # --seed goes with --out, --seeds with --out-root (argparse's groups cannot say so).
    if args.seed is not None and (args.out is None or args.out_root is not None):
        raise UsageError("--out: a run directory is required with --seed (--out-root goes with --seeds)")
    if args.seeds is not None and (args.out_root is None or args.out is not None):
        raise UsageError("--out-root: a root of run directories is required with --seeds (--out goes with --seed)")
    train = {key: getattr(args, key) for key in ("steps", "device", "threads", "stack")}
    config, label = _run_config(args, {"train": train})
    cell = label.cell
    if args.seed is not None:
        summary = train_run(config, args.seed, Path(args.out), data_path=args.data, tag=label)
        print(f"{args.out}: {summary['status']} after {summary['steps_done']} steps in {summary['wall_seconds']:.1f} s")
        return
    for summary in train_seeds(config, args.seeds, Path(args.out_root), data_path=args.data, tag=label):
        print(
            f"{run_dir(Path(args.out_root), config, cell, summary['seed'])}: {summary['status']} after "
            f"{summary['steps_done']} steps in {summary['wall_seconds']:.1f} s"
            + (f" (stack of seeds {','.join(map(str, summary['stack']))})" if "stack" in summary else "")
        )


def _cmd_run(args: argparse.Namespace) -> None:
    from ganablate.scoring.evaluate import evaluate_run
    from ganablate.training.train import train_run

    config, label = _run_config(
        args,
        {
            "train": {"device": args.device, "threads": args.threads},
            "eval": {"device": args.eval_device, "threads": args.eval_threads},
        },
    )
    summary = train_run(config, args.seed, Path(args.out), data_path=args.data, tag=label)
    print(f"{args.out}: {summary['status']} after {summary['steps_done']} steps in {summary['wall_seconds']:.1f} s")
    _scored(args.out, lambda: evaluate_run(config, args.out, args.domain_extractor, args.cache_root, args.data))


def _scored(run: str, evaluate) -> None:
    """evaluate() and its line in the job's log, with the seconds it took (benchmarks/run.py sums them)."""
    start = time.perf_counter()
    table = evaluate()
    seconds = time.perf_counter() - start
    print(f"{Path(run) / 'metrics.csv'}: {table['step'].nunique()} checkpoints, {len(table)} rows in {seconds:.1f} s")


def _seed_list(text: str) -> list[int]:
    """--seeds: comma-separated seeds, each at least 0, none twice."""
    try:
        seeds = [int(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of seeds, e.g. 0,1,2") from None
    if any(seed < 0 for seed in seeds) or len(set(seeds)) != len(seeds):
        raise argparse.ArgumentTypeError(f"{text!r}: seeds are integers from 0, each given once")
    return seeds


def _stack_arg(text: str) -> int | str:
    if text == "auto" or (text.isdigit() and int(text) >= 1):
        return text if text == "auto" else int(text)
    raise argparse.ArgumentTypeError(f"{text!r}: a number of seeds (1 or more) or auto")


def _eval_config(args: argparse.Namespace) -> dict:
    return _config(args, {"eval": {"device": args.device, "threads": args.threads}})


def _cmd_train_extractor(args: argparse.Namespace) -> None:
    from ganablate.scoring.extractor import train_extractor

    record = train_extractor(_eval_config(args), Path(args.out), data_path=args.data)
    print(
        f"{args.out}: {record['dataset']} extractor, test accuracy {record['test_accuracy']:.4f} "
        f"after {record['epochs']} epochs in {record['train_seconds']:.1f} s"
    )


def _cmd_floor(args: argparse.Namespace) -> None:
    from ganablate.scoring.evaluate import floor

    result = floor(_eval_config(args), args.extractor, args.out, args.domain_extractor, args.cache_root, args.data)
    print(
        f"{args.out}: {result['dataset']} {result['extractor']} floor: fid={result['fid']:.4g} kid={result['kid']:.4g}"
    )


def _cmd_evaluate(args: argparse.Namespace) -> None:
    from ganablate.scoring.evaluate import evaluate_runs

    tables = evaluate_runs(_eval_config(args), args.run, args.domain_extractor, args.cache_root, args.data)
    for run in args.run:
        _scored(run, lambda: next(tables))


def _cmd_plan(args: argparse.Namespace) -> None:
    from ganablate.study.plan import Plan

    study = job.checked(*_given(args))
    plan = Plan.from_config(study.config)
    _check_user_architectures(study)
    boundaries = None
    if plan.looks is not None:  # a sequential study's boundaries, calibrated once and frozen with the plan
        from ganablate.analysis.looks import frozen_boundaries

        boundaries = frozen_boundaries(plan)
    print(plan.write(args.out, boundaries))


def _cmd_interim(args: argparse.Namespace) -> None:
    from ganablate.analysis.looks import write_decision

    print(write_decision(_config(args), args.plan, args.look, args.runs, args.out, args.previous))


def _check_user_architectures(study) -> None:
    """Every cell's architecture that is not built in, checked in every cell before the plan, the workflow's first
    job: a broken one stops the study before any run. Torch is imported only when a cell has such an architecture."""
    from ganablate.components.architectures import BUILTIN

    if any(cell["model"]["arch"] not in BUILTIN for cell in study.cells.values()):
        from ganablate.training.archcheck import require_study

        require_study(study.config, study.design)


def _cmd_aggregate(args: argparse.Namespace) -> None:
    from ganablate.analysis.aggregate import write_aggregate

    for path in write_aggregate(args.runs, args.out_dir):
        print(path)


def _cmd_stats(args: argparse.Namespace) -> None:
    from ganablate.analysis.tables import write_stats
    from ganablate.files import read_json_digested

    config = _config(args)
    decision = read_json_digested(args.decision, "run the study again") if args.decision else None
    for path in write_stats(config, args.tables or layout.tables_dir(config), decision):
        print(path)


def _cmd_figures(args: argparse.Namespace) -> None:
    from ganablate.report.figures import write_figures

    paths = args.tables, args.runs_root, args.out_dir
    if None in paths:  # a default path: the config's study folder (the workflow gives every path, and no config)
        config = _config(args)
        paths = (
            args.tables or layout.tables_dir(config),
            args.runs_root or layout.runs_root(config),
            args.out_dir or layout.figures_dir(config),
        )
    for path in write_figures(*paths):
        print(path)


def _cmd_findings(args: argparse.Namespace) -> None:
    from ganablate.report.findings import write_findings

    tables, out = args.tables, args.out
    if None in (tables, out):  # a default path: the config's study folder (the workflow gives both, and no config)
        config = _config(args)
        tables, out = tables or layout.tables_dir(config), out or layout.findings_file(config)
    print(*write_findings(tables, out), sep="\n")


def _cmd_check_arch(args: argparse.Namespace) -> None:
    from ganablate.components.architectures import architecture
    from ganablate.training.archcheck import check

    try:
        architecture(args.name)
    except ValueError as exc:  # an unknown name, or an entry point without build_g and build_d
        raise ConfigError(str(exc)) from None
    raw, source, _ = job.given(args.config, None) if args.config else ({}, "check-arch", True)
    checks = check(job.job_config(raw, source, True, overrides={"model": {"arch": args.name}}), args.name)
    for c in checks:
        print(f"{args.name}: {c.line()}")
    failed = sum(c.problem is not None for c in checks)
    if failed:
        raise ConfigError(f"model.arch: {args.name} fails {failed} of the architecture protocol's checks (above)")


def build_parser() -> argparse.ArgumentParser:
    parser = _OneLineParser(prog="ganablate", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_OneLineParser)

    p = sub.add_parser("prepare-data", help="validate the dataset and cache it as one tensor file")
    _add_config_args(p)
    p.add_argument("--out", required=True, help="output .pt file")
    p.add_argument("--download", choices=["auto", "true", "false"], help="dataset.download (default: the config's)")
    p.set_defaults(func=_cmd_prepare_data)

    run_args = argparse.ArgumentParser(add_help=False)
    _add_config_args(run_args)
    run_args.add_argument(
        "--cell",
        help="the run's cell, axis=label,... (with --config: its levels are applied; with "
        "--config-json the config is taken as the cell's own, and the labels are recorded)",
    )
    run_args.add_argument(
        "--plan", help="the study's plan.json, frozen at launch: its hash is recorded in summary.json"
    )
    run_args.add_argument("--data", help="a dataset file from `ganablate prepare-data` (default: load from the config)")
    run_args.add_argument("--device", choices=DEVICES, help="train.device")
    run_args.add_argument("--threads", type=int, help="train.threads")

    p = sub.add_parser(
        "train", parents=[run_args], help="train one run (a cell and a seed), or several seeds of one cell"
    )
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--seed", type=int, help="one run's seed (with --out)")
    which.add_argument(
        "--seeds",
        type=_seed_list,
        help="comma-separated seeds trained in this process, train.stack at a time (with --out-root)",
    )
    p.add_argument("--out", help="run directory (with --seed)")
    p.add_argument(
        "--out-root", help="root of run directories <root>/<dataset>/<axis>~<label>/.../seed<S>/ (with --seeds)"
    )
    p.add_argument("--steps", type=int)
    p.add_argument("--stack", type=_stack_arg, help="seeds per stack with --seeds, a number or auto (train.stack)")
    p.set_defaults(func=_cmd_train)

    eval_args = argparse.ArgumentParser(add_help=False)
    _add_config_args(eval_args)
    eval_args.add_argument("--data", help="a dataset file from `ganablate prepare-data` (default: from the config)")
    eval_args.add_argument("--device", choices=DEVICES)
    eval_args.add_argument("--threads", type=int)
    scoring_args = argparse.ArgumentParser(add_help=False)
    scoring_args.add_argument("--domain-extractor", help="the file from `ganablate train-extractor`")
    scoring_args.add_argument(
        "--cache-root",
        default=str(layout.CACHE),
        help=f"torch-fidelity's cache of reference statistics (default: {layout.CACHE})",
    )

    p = sub.add_parser("train-extractor", parents=[eval_args], help="train the domain feature extractor")
    p.add_argument("--out", required=True, help="output .pt file")
    p.set_defaults(func=_cmd_train_extractor)

    p = sub.add_parser(
        "floor",
        parents=[eval_args, scoring_args],
        help="score real train images against the test split; warms the reference cache",
    )
    p.add_argument("--extractor", required=True, choices=vocab.EXTRACTORS)
    p.add_argument("--out", required=True, help="output .json file")
    p.set_defaults(func=_cmd_floor)

    p = sub.add_parser(
        "evaluate", parents=[eval_args, scoring_args], help="score every checkpoint of one run, or of several"
    )
    p.add_argument(
        "--run",
        required=True,
        nargs="+",
        help="run directories from `ganablate train`, scored one after the other in this process",
    )
    p.set_defaults(func=_cmd_evaluate)

    p = sub.add_parser(
        "run",
        parents=[run_args, scoring_args],
        help="train one run and score its checkpoints in one process (train, then evaluate: the same files)",
    )
    p.add_argument("--seed", type=int, required=True, help="the run's seed")
    p.add_argument("--out", required=True, help="run directory")
    p.add_argument("--eval-device", choices=DEVICES, help="eval.device")
    p.add_argument("--eval-threads", type=int, help="eval.threads")
    p.set_defaults(func=_cmd_run)

    p = sub.add_parser(
        "check-arch",
        help="check an architecture against the protocol (docs/extending.md) in every cell of a study, and train "
        "it a few steps in each",
    )
    p.add_argument("name", help="model.arch: dcgan, or a name an installed package registers")
    p.add_argument(
        "--config", help="the study config whose cells to check, on its dataset (default: the defaults' study)"
    )
    p.set_defaults(func=_cmd_check_arch)

    p = sub.add_parser("plan", help="freeze the analysis plan at launch: plan.json, whose hash every run records")
    _add_config_args(p)
    p.add_argument("--out", required=True, help="output file, e.g. results/default/plan.json")
    p.set_defaults(func=_cmd_plan)

    p = sub.add_parser(
        "interim",
        help="a sequential study's decision at one look: which contrasts are decided, which cells run the next block",
    )
    _add_config_args(p)
    p.add_argument("--plan", required=True, help="the plan.json frozen at launch, with its boundaries")
    p.add_argument("--look", required=True, type=int, help="the look, from 0")
    p.add_argument("--previous", help="the decision of the look before (from look 1 on)")
    p.add_argument("--runs", required=True, nargs="+", help="the run folders read at this look")
    p.add_argument("--out", required=True, help="the decision file, e.g. results/default/looks/look0.json")
    p.set_defaults(func=_cmd_interim)

    tables_help = "folder of the tables (default: results/<study.name>/tables)"
    p = sub.add_parser("aggregate", help="collect run folders into runs.csv and train_logs.csv")
    p.add_argument("--runs", required=True, nargs="+", help="run folders, or folders above them")
    p.add_argument("--out-dir", required=True, help="folder of the tables, e.g. results/default/tables")
    p.set_defaults(func=_cmd_aggregate)

    p = sub.add_parser(
        "stats", help="summary, contrasts, trend, mechanism, mixed model, failures and power tables from runs.csv"
    )
    _add_config_args(p)
    p.add_argument("--tables", help=tables_help)
    p.add_argument("--decision", help="a sequential study's last decision (ganablate interim): its looks table")
    p.set_defaults(func=_cmd_stats)

    p = sub.add_parser("figures", help="the study's figures, PNG and PDF")
    _add_config_args(p)
    p.add_argument("--tables", help=tables_help)
    p.add_argument("--runs-root", help="root of the run folders, for sample grids (default: results/<study.name>/runs)")
    p.add_argument("--out-dir", help="output folder (default: results/<study.name>/figures)")
    p.set_defaults(func=_cmd_figures)

    p = sub.add_parser("findings", help="the findings page, generated from the tables")
    _add_config_args(p)
    p.add_argument("--tables", help=tables_help)
    p.add_argument(
        "--out", help="output file (default: results/<study.name>/findings.md), and the same as .rst beside it"
    )
    p.set_defaults(func=_cmd_findings)

    p = sub.add_parser("config-docs", help="the reference of every config key, from the schema (config/README.md)")
    p.set_defaults(func=_cmd_config_docs)

    return parser


def main(argv: list[str] | None = None) -> int:
    keep_freed_memory()  # before torch allocates anything: the process's malloc policy (allocator.py)
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        args.func(args)
    except (ConfigError, DataError, UsageError) as exc:
        print(f"ganablate {args.command}: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
