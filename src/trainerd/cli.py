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
    if int(os.environ.get("RANK", "0")) != 0:  # under torchrun/accelerate launch rank 0 reports for all
        return EXIT_OK if result.success else (EXIT_STOPPED if result.stopped else EXIT_FAILED)
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


# -- daemon commands ---------------------------------------------------------------------------


def _base(args: argparse.Namespace, must_exist: bool = True) -> Any:
    from trainerd.daemon.layout import BaseDir, is_base_dir

    base = BaseDir(Path(args.base_dir))
    if must_exist and not is_base_dir(base.root):
        raise TrainerdError(
            f"{base.root} is not a trainerd base dir",
            hint=f"create it with `trainerd init {args.base_dir} --model DIR_OR_HUB_ID`",
        )
    return base


def cmd_init(args: argparse.Namespace) -> int:
    import tempfile

    from trainerd.daemon.layout import BaseDir, is_base_dir
    from trainerd.daemon.store import ModelStore
    from trainerd.files import atomic_write_json

    base = BaseDir(Path(args.base))
    if is_base_dir(base.root):
        raise TrainerdError(f"{base.root} is already a trainerd base dir", hint="use it, or pick another path")
    config: dict[str, Any] = {"model": {"path": args.model}}
    if args.lora:
        config["lora"] = {"enabled": True}
    if args.profile:
        config["profile"] = {"name": args.profile}
    from trainerd.config.load import load_config, parse_override

    for override in args.set or ():
        dotted, value = parse_override(override)
        section, _, key = dotted.partition(".")
        if not key:
            raise TrainerdError(
                f"--set {override}: expected SECTION.KEY=VALUE", hint="e.g. hyperparams.learning_rate=1e-4"
            )
        config.setdefault(section, {})[key] = value

    with tempfile.TemporaryDirectory() as tmp:  # validate the config before creating anything
        probe = Path(tmp) / "config.json"
        atomic_write_json(probe, config)
        load_config(probe)
        if args.model == "tiny":
            from trainerd.models.tiny import build_tiny_model

            source = build_tiny_model(Path(tmp) / "tiny-model")
        else:
            from trainerd.models.fetch import fetch_model_dir

            source = fetch_model_dir(args.model)
        base.ensure()
        version = ModelStore(base).init_from(source, {"source": args.model})
    atomic_write_json(base.config_file, config)
    from trainerd.monitor.auth import ensure_token

    ensure_token(base)
    print(f"initialised {base.root}: current model {version.name} ({version.kind}) from {args.model}")
    print(f"drop JSONL files into {base.inbox} and run: trainerd daemon --base-dir {args.base}")
    return EXIT_OK


def cmd_daemon(args: argparse.Namespace) -> int:
    from trainerd.daemon.lock import DaemonRunningError
    from trainerd.daemon.loop import Daemon

    base = _base(args)
    monitor = None
    if args.monitor:
        from trainerd.monitor import serve

        monitor = serve(base, host=args.host, port=args.port)
        print(f"monitor: {monitor.url}", file=sys.stderr)
    try:
        return Daemon(base, exit_when_idle=args.exit_when_idle).run()
    except DaemonRunningError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_FAILED
    finally:
        if monitor is not None:
            monitor.stop()


def cmd_monitor(args: argparse.Namespace) -> int:
    from trainerd.monitor import run_monitor

    run_monitor(_base(args), host=args.host, port=args.port, token=args.token)
    return EXIT_OK


def cmd_submit(args: argparse.Namespace) -> int:
    from trainerd.daemon.submit import submit_file

    path = submit_file(_base(args), args.file, args.priority)
    print(f"submitted {args.file} as {path.name} ({args.priority} priority)")
    return EXIT_OK


def cmd_status(args: argparse.Namespace) -> int:
    from trainerd.daemon.lock import daemon_running
    from trainerd.daemon.status import format_status, is_stale, read_status

    base = _base(args)
    status = read_status(base)
    pid = daemon_running(base)
    if args.json:
        _print_json({"daemon_pid": pid, "stale": status is None or is_stale(status), "status": status})
    else:
        print(format_status(status, pid))
    return EXIT_OK


def cmd_control(args: argparse.Namespace) -> int:
    from trainerd.daemon import control
    from trainerd.daemon.lock import daemon_running

    base = _base(args)
    running = daemon_running(base)
    action = args.command
    if running is None and action in ("stop", "skip"):
        raise TrainerdError("no daemon is running on this base dir", hint=f"nothing to {action}")
    if running is None:
        control.write_state(base, paused=action == "pause")
        print(f"{action}: no daemon is running; the next `trainerd daemon` starts {action}d")
        return EXIT_OK
    command = control.send_command(base, action)
    print(f"{action} sent to the daemon (PID {running}, command {command.id})")
    return EXIT_OK


def cmd_history(args: argparse.Namespace) -> int:
    import datetime as dt

    from trainerd.daemon.status import read_history

    rows = read_history(_base(args), limit=args.limit)
    if args.json:
        _print_json(rows)
        return EXIT_OK
    if not rows:
        print("no finished jobs yet")
    for row in rows:
        when = dt.datetime.fromtimestamp(float(row.get("finished_at", 0))).strftime("%Y-%m-%d %H:%M:%S")
        loss = ""
        if row.get("initial_loss") is not None and row.get("final_loss") is not None:
            loss = f" loss {row['initial_loss']:.4f}->{row['final_loss']:.4f}"
        steps = f" {row['steps']} steps (global {row.get('global_step')})" if row.get("steps") is not None else ""
        version = f" -> {row['version']}" if row.get("version") else ""
        error = f"  [{row['error']}]" if row.get("error") else ""
        print(f"{when}  {row.get('outcome', '?'):9s} {row.get('file', '?')}{steps}{loss}{version}{error}")
    return EXIT_OK


def cmd_snapshot(args: argparse.Namespace) -> int:
    from trainerd.daemon.snapshots import create_snapshot, list_snapshots, resolve_snapshot, verify_snapshot
    from trainerd.daemon.store import ModelStore

    base = _base(args)
    if args.action == "create":
        current = ModelStore(base).current()
        if current is None:
            raise TrainerdError("there is no current model to snapshot")
        snap = create_snapshot(base, current, reason="manual")
        print(f"snapshot {snap.name} of {current.name} created in {snap.path}")
        from trainerd.config.load import load_config
        from trainerd.daemon.snapshots import snapshot_retention

        for name in snapshot_retention(base, load_config(base.config_file).config.daemon.keep_snapshots):
            print(f"retention removed snapshot {name} (daemon.keep_snapshots)")
        return EXIT_OK
    if args.action == "list":
        snaps = list_snapshots(base)
        if args.json:
            _print_json([{"name": s.name, "version": s.version, "reason": s.reason, "created_at": s.created_at}
                         for s in snaps])  # fmt: skip
            return EXIT_OK
        for snap in snaps:
            print(f"{snap.name}  {snap.reason:7s} {snap.version}  {snap.path}")
        if not snaps:
            print("no snapshots yet")
        return EXIT_OK
    names = [args.name] if args.name else [s.name for s in list_snapshots(base)]
    bad = 0
    for name in names:
        report = verify_snapshot(resolve_snapshot(base, name).path)
        if report.ok:
            print(f"{name}: ok ({report.checked} files)")
        else:
            bad += 1
            print(f"{name}: FAILED")
            for problem in report.problems():
                print(f"  {problem}")
    return EXIT_OK if bad == 0 else EXIT_FAILED


def cmd_rollback(args: argparse.Namespace) -> int:
    from trainerd.daemon import control
    from trainerd.daemon.lock import DaemonLock, DaemonRunningError, daemon_running
    from trainerd.daemon.loop import rollback_to
    from trainerd.daemon.store import ModelStore

    base = _base(args)
    running = daemon_running(base)
    if running is not None:
        command = control.send_command(base, "rollback", to=args.to)
        print(f"rollback to {args.to} sent to the daemon (PID {running}, command {command.id}); "
              "it applies once no job is running")  # fmt: skip
        return EXIT_OK
    lock = DaemonLock(base)
    try:
        lock.acquire()
    except DaemonRunningError:
        control.send_command(base, "rollback", to=args.to)
        print(f"a daemon just started; rollback to {args.to} sent to it")
        return EXIT_OK
    try:
        version = rollback_to(base, ModelStore(base), args.to)
    finally:
        lock.release()
    print(f"current model is now {version.name}")
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

    init = commands.add_parser("init", help="create a base dir for the daemon")
    init.add_argument("base", help="directory to create")
    init.add_argument("--model", required=True, help="model dir, hub id, or 'tiny' for the offline demo model")
    init.add_argument("--lora", action="store_true", help="train LoRA adapters on this base model")
    init.add_argument("--profile", help="profile name or dotted path")
    init.add_argument("--set", action="append", metavar="SECTION.KEY=VALUE", help="write a config value")
    init.set_defaults(func=cmd_init)

    daemon = commands.add_parser("daemon", help="train continuously from the base dir's inbox")
    daemon.add_argument("--base-dir", required=True)
    daemon.add_argument("--exit-when-idle", action="store_true", help="exit once the inbox and queue are empty")
    daemon.add_argument("--monitor", action="store_true", help="also serve the dashboard (see `trainerd monitor`)")
    daemon.add_argument("--host", default="127.0.0.1")
    daemon.add_argument("--port", type=int, default=8765)
    daemon.set_defaults(func=cmd_daemon)

    monitor = commands.add_parser("monitor", help="dashboard and JSON API for a base dir")
    monitor.add_argument("--base-dir", required=True)
    monitor.add_argument("--host", default="127.0.0.1", help="bind address (non-loopback needs a token)")
    monitor.add_argument("--port", type=int, default=8765)
    monitor.add_argument("--token", help="token for actions (default: BASE/monitor.token)")
    monitor.set_defaults(func=cmd_monitor)

    submit = commands.add_parser("submit", help="put a JSONL file into the inbox (atomically)")
    submit.add_argument("file")
    submit.add_argument("--base-dir", required=True)
    submit.add_argument("--priority", choices=("high", "normal", "low"), default="normal")
    submit.set_defaults(func=cmd_submit)

    status = commands.add_parser("status", help="what the daemon is doing")
    status.add_argument("--base-dir", required=True)
    status.add_argument("--json", action="store_true")
    status.set_defaults(func=cmd_status)

    for action, text in (
        ("pause", "checkpoint the running job at its next step and wait"),
        ("resume", "continue the paused job from its checkpoint"),
        ("stop", "checkpoint and stop the daemon (exit 0); the job resumes on the next start"),
        ("skip", "abandon the current file without changing the model"),
    ):
        sub = commands.add_parser(action, help=text)
        sub.add_argument("--base-dir", required=True)
        sub.set_defaults(func=cmd_control)

    history = commands.add_parser("history", help="finished jobs")
    history.add_argument("--base-dir", required=True)
    history.add_argument("--limit", type=int)
    history.add_argument("--json", action="store_true")
    history.set_defaults(func=cmd_history)

    snapshot = commands.add_parser("snapshot", help="verified copies of the current model")
    snapshot.add_argument("action", choices=("create", "list", "verify"))
    snapshot.add_argument("name", nargs="?", help="snapshot to verify (default: all)")
    snapshot.add_argument("--base-dir", required=True)
    snapshot.add_argument("--json", action="store_true")
    snapshot.set_defaults(func=cmd_snapshot)

    rollback = commands.add_parser("rollback", help="make an earlier version (or a snapshot) current")
    rollback.add_argument("--base-dir", required=True)
    rollback.add_argument("--to", required=True, metavar="VERSION_OR_SNAPSHOT")
    rollback.set_defaults(func=cmd_rollback)
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
