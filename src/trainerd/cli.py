"""The `trainerd` command. Each subcommand is a thin function over the library.

Heavy libraries (torch, transformers) are imported only inside the commands that need them, so
`trainerd --help`, `config show` and `model inspect` answer instantly.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from trainerd import __version__
from trainerd.errors import TrainerdError

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_STOPPED = 3


def _print_json(obj: Any) -> None:
    print(json.dumps(obj, indent=2, ensure_ascii=False, default=str))


def _load_config(args: argparse.Namespace, flags: dict[str, Any] | None = None) -> Any:
    from trainerd.config.load import load_config

    # warnings (deprecated keys, conflicts) reach stderr through the `trainerd.config` logger
    return load_config(getattr(args, "config", None), overrides=getattr(args, "set", None) or (), flags=flags or {})


# -- commands ---------------------------------------------------------------------------------


def cmd_tiny_model(args: argparse.Namespace) -> int:
    from trainerd.models.tiny import build_tiny_model

    path = build_tiny_model(args.out, preset=args.preset, seed=args.seed)
    print(f"tiny model ({args.preset}) saved to {path}")
    return EXIT_OK


def cmd_sample_data(args: argparse.Namespace) -> int:
    from trainerd.data.samples import write_invalid_sample, write_sample_jsonl

    if args.invalid:
        write_invalid_sample(args.out)
        print(f"wrote a deliberately invalid sample file to {args.out}")
    else:
        write_sample_jsonl(args.out, args.count, seed=args.seed, fmt=args.format)
        print(f"wrote {args.count} sample conversations ({args.format} format) to {args.out}")
    return EXIT_OK


def cmd_train(args: argparse.Namespace) -> int:
    from trainerd.config.load import config_to_dict

    flags: dict[str, Any] = {}
    if args.max_steps is not None:
        flags["hyperparams.max_steps"] = args.max_steps
    if args.profile is not None:
        flags["profile.name"] = args.profile
    if args.lora:
        flags["lora.enabled"] = True
    if args.model is not None:
        flags["model.path"] = args.model
    loaded = _load_config(args, flags)
    cfg = loaded.config
    if not cfg.model.path:
        raise TrainerdError("no model to train", hint="pass --model DIR_OR_HUB_ID or set model.path in the config")
    output = Path(args.output)
    for dataset in args.dataset:
        if not Path(dataset).is_file():
            raise TrainerdError(f"dataset {dataset} does not exist", hint="pass the path of a JSONL file")
    leftovers = [name for name in ("checkpoints", "result.json") if (output / name).exists()]
    if leftovers and args.resume is None:
        raise TrainerdError(
            f"{output} already holds a training run ({', '.join(leftovers)})",
            hint="add --resume to continue it from its newest checkpoint, or choose another --output",
        )
    from trainerd.engine.engine import run_job
    from trainerd.engine.spec import JobSpec

    spec = JobSpec(
        datasets=[str(Path(d).resolve()) for d in args.dataset],
        model=cfg.model.path,
        output_dir=str(output.resolve()),
        config=config_to_dict(cfg),
        resume=args.resume if args.resume is not None else None,
    )
    output.mkdir(parents=True, exist_ok=True)
    from trainerd.files import atomic_write_json

    atomic_write_json(output / "trainerd_config.json", spec.config)
    result = run_job(spec)
    if args.json:
        _print_json(result.to_json())
    elif result.success:
        print(
            f"trained {result.steps} steps: loss {result.initial_loss:.4f} -> {result.final_loss:.4f}, "
            f"{result.tokens_per_second:.0f} tokens/s; model in {result.output_dir}"
        )
    else:
        print(f"training did not finish: {result.error}", file=sys.stderr)
    if result.success:
        return EXIT_OK
    return EXIT_STOPPED if result.stopped else EXIT_FAILED


def cmd_model_inspect(args: argparse.Namespace) -> int:
    from trainerd.models.inspect import inspect_model_dir

    info = inspect_model_dir(args.path)
    if args.json:
        _print_json(info.to_dict())
    else:
        print(f"path:          {info.path}")
        print(f"valid:         {'yes' if info.valid else 'no'}")
        if info.reason:
            print(f"reason:        {info.reason}")
        print(f"kind:          {info.kind or '-'}")
        print(f"weights:       {info.weight_format or '-'}")
        print(f"architecture:  {info.architecture or '-'}")
        if info.base_model:
            print(f"base model:    {info.base_model}")
        print(f"tokenizer:     {'yes' if info.has_tokenizer else 'no'}")
    return EXIT_OK if info.valid else EXIT_FAILED


def cmd_data_check(args: argparse.Namespace) -> int:
    loaded = _load_config(args, {"model.path": args.model} if args.model else {})
    cfg = loaded.config
    if not cfg.model.path:
        from trainerd.data.validate import read_dataset_with_config

        total = 0
        for path in args.files:
            read = read_dataset_with_config(path, cfg.data)
            total += len(read.conversations)
            for problem in read.problems:
                print(problem)
        print(f"{total} valid examples (pass --model to count tokens and the trainable-token ratio)")
        return EXIT_OK
    from trainerd.data.pipeline import build_training_data
    from trainerd.models.load import load_tokenizer

    tokenizer = load_tokenizer(
        cfg.model.path, revision=cfg.model.revision, trust_remote_code=cfg.model.trust_remote_code
    )
    data = build_training_data(args.files, cfg, tokenizer)
    summary = data.dataset.summary()
    if args.json:
        _print_json({**summary, "decisions": data.decisions, "skipped_lines": data.skipped_lines})
    else:
        for line in data.decisions:
            print(line)
        for key, value in summary.items():
            print(f"  {key}: {value}")
    return EXIT_OK


def cmd_config_show(args: argparse.Namespace) -> int:
    from trainerd.config.load import config_to_dict, format_config_show

    loaded = _load_config(args)
    if args.json:
        _print_json(config_to_dict(loaded.config))
    else:
        print(format_config_show(loaded))
    return EXIT_OK


def cmd_config_migrate(args: argparse.Namespace) -> int:
    from trainerd.config.migrate import migrate_config_file

    result = migrate_config_file(args.file, dry_run=args.dry_run)
    if not result.changed:
        print(f"{args.file} is already nested; nothing to do")
        return EXIT_OK
    if args.dry_run:
        print(result.diff, end="" if result.diff.endswith("\n") else "\n")
        print("(dry run: nothing written)")
    else:
        print(f"migrated {args.file} to the nested format; backup at {result.backup_path}")
    return EXIT_OK


# -- parser -----------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="trainerd", description="Keep a small language model learning from JSONL chat data."
    )
    parser.add_argument("--version", action="version", version=f"trainerd {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True

    tiny = commands.add_parser("tiny-model", help="build the offline tiny demo model + tokenizer")
    tiny.add_argument("out", help="directory to create")
    tiny.add_argument("--preset", choices=("tiny", "small"), default="tiny")
    tiny.add_argument("--seed", type=int, default=0)
    tiny.set_defaults(func=cmd_tiny_model)

    sample = commands.add_parser("sample-data", help="write the bundled demo chat data as JSONL")
    sample.add_argument("out", help="JSONL file to write")
    sample.add_argument("--count", type=int, default=200)
    sample.add_argument("--seed", type=int, default=0)
    sample.add_argument("--format", choices=("messages", "prompt_response", "sharegpt", "alpaca"), default="messages")
    sample.add_argument("--invalid", action="store_true", help="write a file with deliberately broken lines instead")
    sample.set_defaults(func=cmd_sample_data)

    train = commands.add_parser("train", help="run one training job with the engine")
    train.add_argument("--dataset", action="append", required=True, help="JSONL file (repeat for several)")
    train.add_argument("--model", help="model dir (full or LoRA adapter) or hub id; default: model.path")
    train.add_argument("--output", required=True, help="output dir: model, checkpoints, metrics, log, result.json")
    train.add_argument("--max-steps", type=int, help="stop after N optimizer steps")
    train.add_argument("--config", help="config JSON (nested; legacy flat keys accepted with a warning)")
    train.add_argument("--profile", help="profile name or dotted path")
    train.add_argument("--lora", action="store_true", help="train a LoRA adapter instead of all weights")
    train.add_argument("--set", action="append", metavar="SECTION.KEY=VALUE", help="override one config value")
    train.add_argument(
        "--resume",
        nargs="?",
        const="auto",
        default=None,
        metavar="CHECKPOINT",
        help="continue the run in --output from its newest complete checkpoint (or the one given)",
    )
    train.add_argument("--json", action="store_true", help="print result.json")
    train.set_defaults(func=cmd_train)

    model = commands.add_parser("model", help="model dir tools").add_subparsers(dest="model_command", metavar="ACTION")
    model.required = True
    inspect = model.add_parser("inspect", help="what a model dir is and whether it is valid")
    inspect.add_argument("path")
    inspect.add_argument("--json", action="store_true")
    inspect.set_defaults(func=cmd_model_inspect)

    data = commands.add_parser("data", help="data tools").add_subparsers(dest="data_command", metavar="ACTION")
    data.required = True
    check = data.add_parser("check", help="validate JSONL files and count tokens / trainable ratio")
    check.add_argument("files", nargs="+")
    check.add_argument("--model", help="model dir whose tokenizer to use (default: model.path)")
    check.add_argument("--config")
    check.add_argument("--set", action="append", metavar="SECTION.KEY=VALUE")
    check.add_argument("--json", action="store_true")
    check.set_defaults(func=cmd_data_check)

    config = commands.add_parser("config", help="configuration tools").add_subparsers(
        dest="config_command", metavar="ACTION"
    )
    config.required = True
    show = config.add_parser("show", help="effective config and where each value came from")
    show.add_argument("--config")
    show.add_argument("--set", action="append", metavar="SECTION.KEY=VALUE")
    show.add_argument("--json", action="store_true", help="print the effective config as nested JSON")
    show.set_defaults(func=cmd_config_show)
    migrate = config.add_parser("migrate", help="rewrite a flat/mixed config as nested (keeps a backup)")
    migrate.add_argument("file")
    migrate.add_argument("--dry-run", action="store_true", help="print the diff, write nothing")
    migrate.set_defaults(func=cmd_config_migrate)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    parser = build_parser()
    args = parser.parse_args(argv)
    from trainerd.logs import setup_logging

    setup_logging()
    try:
        return int(args.func(args))
    except TrainerdError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
