"""The `gxft` command: `serve` runs the server, `worker` a training worker, `validate` checks JSONL files."""

import argparse
import logging
import os
import subprocess
import sys
from pathlib import Path


def serve(args: argparse.Namespace) -> int:
    import uvicorn

    from server.app import create_app
    from server.config import load_settings
    from server.model_registry import ModelRegistry, RegistryError

    settings = load_settings(data_dir=args.data_dir, host=args.host, port=args.port, profile=args.profile)
    try:
        ModelRegistry.load(settings.models_file, settings.profile)
    except RegistryError as exc:
        print(f"gxft serve: {exc}", file=sys.stderr)
        return 2
    worker = None
    if not args.no_worker:
        worker = start_embedded_worker(settings)
    try:
        uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_level=args.log_level)
    finally:
        if worker is not None:
            worker.terminate()
            try:
                worker.wait(timeout=10)
            except subprocess.TimeoutExpired:
                worker.kill()
    return 0


def start_embedded_worker(settings) -> subprocess.Popen:
    """The embedded worker: a child process, so training never runs in the server's process."""
    host = "127.0.0.1" if settings.host in ("0.0.0.0", "::") else settings.host
    env = {**os.environ, "GXFT_WORKER_TOKEN": settings.worker_token, "GXFT_DATA_DIR": str(settings.data_dir)}
    command = [sys.executable, "-m", "gxft", "worker", "--server", f"http://{host}:{settings.port}",
               "--parent-pid", str(os.getpid())]
    return subprocess.Popen(command, env=env)


def worker(args: argparse.Namespace) -> int:
    from worker.main import run_worker

    return run_worker(server_url=args.server, queue_path=args.queue, parent_pid=args.parent_pid)


def validate(args: argparse.Namespace) -> int:
    """Check JSONL training files with the server's own validator."""
    from server.training_data import validate_file

    all_ok = True
    for path in args.files:
        try:
            report = validate_file(Path(path))
        except OSError as exc:
            print(f"{path}: cannot read: {exc.strerror}")
            all_ok = False
            continue
        if report.ok and (too_few := report.too_few_examples(args.min_examples)):
            report.problems.append(too_few + " (use --min-examples 1 for a validation file)")
        if report.ok:
            print(f"{path}: OK, {report.example_count} examples in the {report.data_format} format")
        else:
            all_ok = False
            print(f"{path}: INVALID")
            for problem in report.problems:
                print(f"  {problem}")
    return 0 if all_ok else 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gxft", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    serve_parser = commands.add_parser("serve", help="run the API server (with an embedded worker by default)")
    serve_parser.add_argument("--host", default="127.0.0.1")
    serve_parser.add_argument("--port", type=int, default=8000)
    serve_parser.add_argument("--data-dir", help="metadata, blobs and queue (default $GXFT_DATA_DIR or ./gxft-data)")
    serve_parser.add_argument("--no-worker", action="store_true", help="do not start the embedded worker")
    serve_parser.add_argument(
        "--profile", help="model names to answer to: 'emulator' adds OpenAI's and Nebius's fine-tunable models, "
        "played by gxft/tiny-chat (default $GXFT_PROFILE or 'default')",
    )
    serve_parser.add_argument("--log-level", default="info")
    serve_parser.set_defaults(run=serve)

    worker_parser = commands.add_parser("worker", help="run a training worker that serves a GXFT server")
    worker_parser.add_argument("--server", required=True, help="the server's URL, e.g. http://127.0.0.1:8000")
    worker_parser.add_argument(
        "--queue", help="the SQLite queue file (default $GXFT_DATA_DIR/queue.sqlite3); GXFT_REDIS_URL selects Redis"
    )
    worker_parser.add_argument("--parent-pid", type=int, help=argparse.SUPPRESS)
    worker_parser.set_defaults(run=worker)

    validate_parser = commands.add_parser("validate", help="check JSONL training files, with line-numbered problems")
    validate_parser.add_argument("files", nargs="+", metavar="FILE")
    validate_parser.add_argument(
        "--min-examples", type=int, default=10, help="fewest examples a training file needs (default 10)"
    )
    validate_parser.set_defaults(run=validate)
    return parser


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    sys.exit(args.run(args))
