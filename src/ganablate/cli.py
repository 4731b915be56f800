"""The `ganablate` command: one subcommand per step of the study; bad input exits 2 with one line."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ganablate.config import ConfigError, UsageError, load_config, validate_config


class _OneLineParser(argparse.ArgumentParser):
    """Usage errors as one line naming the argument, like every other bad input; --help keeps the full usage."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message}\n")


def _add_config_args(parser: argparse.ArgumentParser) -> None:
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--config", default="config.yaml", help="study config YAML (default: config.yaml)")
    source.add_argument(
        "--config-json",
        help="the config (or the sections a step needs) as inline JSON; used by the workflow so that each rule "
        "depends only on its own sections",
    )


def config_from_args(args: argparse.Namespace) -> dict:
    if getattr(args, "config_json", None):
        try:
            raw = json.loads(args.config_json)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"--config-json: not valid JSON ({exc.msg})") from None
        return validate_config(raw, source="--config-json")
    return load_config(args.config)


# --- subcommands -------------------------------------------------------------------------------


def _cmd_prepare_data(args: argparse.Namespace) -> None:
    from ganablate.data import load_dataset

    config = config_from_args(args)
    data = load_dataset(config["dataset"])
    data.save(args.out)
    print(f"{data.name}: {len(data.train_images)} train, {len(data.test_images)} test images {data.image_shape} -> {args.out}")


def _cmd_train(args: argparse.Namespace) -> None:
    from ganablate.train import train_run

    config = config_from_args(args)
    for key in ("steps", "device", "threads"):
        if getattr(args, key) is not None:
            config["train"][key] = getattr(args, key)
    config = validate_config(config, source="command line")
    summary = train_run(config, feed=args.feed, norm=args.norm, seed=args.seed, out=Path(args.out), data_path=args.data)
    print(f"{args.out}: {summary['status']} after {summary['steps_done']} steps in {summary['wall_seconds']:.1f} s")


def build_parser() -> argparse.ArgumentParser:
    from ganablate.feed import FEEDS
    from ganablate.models import NORMS

    parser = _OneLineParser(prog="ganablate", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_OneLineParser)

    p = sub.add_parser("prepare-data", help="validate the dataset and cache it as one tensor file")
    _add_config_args(p)
    p.add_argument("--out", required=True, help="output .pt file")
    p.set_defaults(func=_cmd_prepare_data)

    p = sub.add_parser("train", help="train one run (dataset, feed, norm, seed)")
    _add_config_args(p)
    p.add_argument("--feed", required=True, choices=list(FEEDS))
    p.add_argument("--norm", required=True, choices=list(NORMS))
    p.add_argument("--seed", required=True, type=int)
    p.add_argument("--out", required=True, help="run directory")
    p.add_argument("--data", help="a dataset file from `ganablate prepare-data` (default: load from the config)")
    p.add_argument("--steps", type=int)
    p.add_argument("--device", choices=["auto", "cpu", "cuda"])
    p.add_argument("--threads", type=int)
    p.set_defaults(func=_cmd_train)

    return parser


def main(argv: list[str] | None = None) -> int:
    from ganablate.data import DataError

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
