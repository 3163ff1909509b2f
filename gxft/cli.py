"""gxft: serve, train and use fine-tuned models.

`serve` runs the server and `worker` a training worker. `files`, `jobs`, `models`, `chat` and
`check-connection` drive any OpenAI-compatible fine-tuning API (GXFT, OpenAI, Nebius); `migrate` brings
another endpoint's jobs here and `models import` a model of your own. `validate`,
`create-config`, `train` and `evaluate` work locally, with no server."""

import argparse
import logging
import os
import subprocess
import sys
from pathlib import Path


def serve(args: argparse.Namespace) -> int:
    import uvicorn

    from server.app import create_app
    from server.base_models import BaseModelRegistry, RegistryError
    from server.config import SettingsError, load_settings
    from server.http_protocol import BoundedHttpToolsProtocol

    os.umask(0o077)  # the data dir, its database, blobs and token: the owner's alone, from their creation
    try:
        settings = load_settings(data_dir=args.data_dir, host=args.host, port=args.port, profile=args.profile,
                                 dialect=args.dialect)
        registry = BaseModelRegistry.load(settings.models_file, settings.profile, settings.models_dir)
    except (RegistryError, SettingsError) as exc:
        print(f"gxft serve: {exc}", file=sys.stderr)
        return 2
    if registry.stand_in is not None:
        print(f"gxft serve: the {settings.profile} profile's model names are played by {registry.stand_in}",
              file=sys.stderr)
    worker = None
    if not args.no_worker:
        worker = start_embedded_worker(settings)
    try:
        protocol = BoundedHttpToolsProtocol.with_limits(settings.head_timeout_seconds, settings.body_idle_seconds,
                                                        settings.body_grace_seconds, settings.body_min_rate)
        uvicorn.run(create_app(settings, registry), host=settings.host, port=settings.port, log_level=args.log_level,
                    http=protocol)
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

    return run_worker(server_url=args.server, queue_path=args.queue, parent_pid=args.parent_pid, procs=args.procs)


def _procs(text: str) -> int:
    if text == "all":
        import torch

        if not torch.cuda.is_available():
            raise argparse.ArgumentTypeError("`all` counts GPUs, and this machine has none; give a number")
        return torch.cuda.device_count()
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of processes (1 or more), nor `all`")
    return int(text)


def validate(args: argparse.Namespace) -> int:
    """Check JSONL training files with the server's own validator."""
    from contract.data_formats import validate_file

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


def _remote(name: str):
    """Run gxft/remote.py's `name` with a client; API and connection errors end it with a message and status 1.
    By name: the openai SDK takes about a second to import, which `serve`, `worker` and `train` never pay."""

    def run(args: argparse.Namespace) -> int:
        import openai

        from gxft import remote

        client = remote.make_client(args)
        try:
            return getattr(remote, name)(args, client)
        except openai.APIStatusError as exc:
            print(f"gxft: {exc.status_code} {exc.message}", file=sys.stderr)
        except openai.APIConnectionError as exc:
            print(f"gxft: cannot reach {client.base_url}: {exc}", file=sys.stderr)
        return 1

    return run


def _local(name: str):
    def run(args: argparse.Namespace) -> int:
        from gxft import local

        return getattr(local, name)(args)

    return run


def _migrate(args: argparse.Namespace) -> int:
    from gxft.migrate import migrate

    return migrate(args)


def _model_import(args: argparse.Namespace) -> int:
    from gxft.model_import import models_import

    return models_import(args)


def _metadata_pair(text: str) -> tuple[str, str]:
    key, equals, value = text.partition("=")
    if not equals or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, not {text!r}")
    return key, value


def _add_remote_commands(commands, endpoint: argparse.ArgumentParser) -> None:
    def leaf(group, name: str, handler: str, help: str) -> argparse.ArgumentParser:
        parser = group.add_parser(name, help=help, description=help, parents=[endpoint])
        parser.set_defaults(run=_remote(handler))
        return parser

    files = commands.add_parser("files", help="upload, list, get, download and delete files").add_subparsers(
        dest="files_command", required=True)
    upload = leaf(files, "upload", "files_upload", "upload a file, then wait for its validation")
    upload.add_argument("file")
    upload.add_argument("--purpose", default="fine-tune")
    upload.add_argument("--no-wait", action="store_true", help="do not wait for validation")
    leaf(files, "list", "files_list", "list files, newest first").add_argument("--purpose")
    leaf(files, "get", "files_get", "show one file").add_argument("id")
    download = leaf(files, "download", "files_download", "save a file's content")
    download.add_argument("id")
    download.add_argument("-o", "--output", help="where to save it (default: its file name)")
    leaf(files, "delete", "files_delete", "delete a file").add_argument("id")
    distil = leaf(files, "from-completions", "files_from_completions",
                  "build a training file from stored chat completions (store: true), then upload it")
    distil.add_argument("--metadata", action="append", default=[], type=_metadata_pair, metavar="KEY=VALUE",
                        help="keep the completions stored with this metadata (repeat: all must match)")
    distil.add_argument("--model", help="keep the completions of this model")
    distil.add_argument("-o", "--output", help="write the file here instead of uploading it")

    jobs = commands.add_parser("jobs", help="create, watch and manage fine-tuning jobs").add_subparsers(
        dest="jobs_command", required=True)
    create = leaf(jobs, "create", "jobs_create", "create a fine-tuning job (local files are uploaded first)")
    create.add_argument("--model", required=True, help="a base model, or a fine-tuned model (ft:…) to train further")
    create.add_argument("--training-file", required=True, help="a file id, or a local JSONL path")
    create.add_argument("--method", choices=["supervised", "dpo", "reinforcement"], default="supervised",
                        help="dpo trains on preference files, reinforcement on prompts with a --grader")
    create.add_argument("--grader", help="reinforcement: a JSON file holding the grader (OpenAI's shapes)")
    create.add_argument("--beta", type=float, help="DPO and reinforcement: how far the model may move from where "
                        "it started")
    create.add_argument("--compute-multiplier", type=float,
                        help="reinforcement: scales the answers sampled per prompt (1: four)")
    create.add_argument("--max-completion-tokens", type=int, help="reinforcement: the longest sampled answer")
    create.add_argument("--eval-interval", type=int, help="reinforcement: steps between validations")
    create.add_argument("--eval-samples", type=int, help="reinforcement: answers sampled per validation prompt")
    create.add_argument("--quantization", choices=["nf4"], help="QLoRA: a 4-bit base under the adapter (GPU)")
    create.add_argument("--validation-file", help="a file id, or a local JSONL path")
    create.add_argument("--epochs", type=int)
    create.add_argument("--batch-size", type=int)
    create.add_argument("--learning-rate", type=float, help="the rate itself (Nebius)")
    create.add_argument("--learning-rate-multiplier", type=float, help="scales the model's base rate (OpenAI)")
    create.add_argument("--lora", action=argparse.BooleanOptionalAction, help="LoRA adapter or all weights")
    create.add_argument("--lora-r", type=int)
    create.add_argument("--lora-alpha", type=float)
    create.add_argument("--packing", action=argparse.BooleanOptionalAction)
    create.add_argument("--suffix")
    create.add_argument("--seed", type=int)
    create.add_argument("--watch", action="store_true", help="then watch it to its end")
    leaf(jobs, "list", "jobs_list", "list jobs, newest first").add_argument("--limit", type=int, default=20)
    leaf(jobs, "get", "jobs_get", "show one job").add_argument("id")
    for action in ("cancel", "pause", "resume"):
        leaf(jobs, action, "jobs_action", f"{action} a job").add_argument("id")
        jobs.choices[action].set_defaults(action=action)
    events = leaf(jobs, "events", "jobs_events", "a job's events, oldest first")
    events.add_argument("id")
    events.add_argument("--limit", type=int, default=100)
    leaf(jobs, "checkpoints", "jobs_checkpoints", "a job's checkpoints").add_argument("id")
    leaf(jobs, "watch", "jobs_watch", "a live bar over a job's steps; exit status 0 only on success"
         ).add_argument("id")
    fetch = leaf(jobs, "download", "jobs_download", "fetch a checkpoint's files into a folder that peft loads")
    fetch.add_argument("id")
    fetch.add_argument("--checkpoint", type=int, metavar="STEP", help="its step number (default: the last)")
    fetch.add_argument("--dir", help="the folder (default: JOB-step-N)")

    graders = commands.add_parser("graders", help="try or check a grader before a reinforcement job").add_subparsers(
        dest="graders_command", required=True)
    run_grader = leaf(graders, "run", "graders_run", "grade one sample with a grader, as a reinforcement job would")
    run_grader.add_argument("grader", help="a JSON file holding the grader")
    run_grader.add_argument("--sample", required=True, help="the model's answer to grade (sample.output_text)")
    run_grader.add_argument("--item", help="the dataset line, as JSON or a JSON file (item.*)")
    leaf(graders, "validate", "graders_validate", "check a grader; exit status 0 only if it is valid"
         ).add_argument("grader", help="a JSON file holding the grader")

    models = commands.add_parser("models", help="list, delete and import models").add_subparsers(
        dest="models_command", required=True)
    leaf(models, "list", "models_list", "base and fine-tuned models")
    leaf(models, "delete", "models_delete", "delete a fine-tuned model").add_argument("model")
    import_help = ("bring a model into the data dir as a base model: a Hugging Face folder, a .gguf file or a hub "
                   "id, checked (it loads, its chat template renders turn by turn, generation stops at its "
                   "end-of-turn token) and registered, so that a running server offers it at once")
    model_import = models.add_parser("import", help=import_help, description=import_help)
    model_import.add_argument("source", help="a model folder, a .gguf file, a hub id (owner/name), or a registry "
                              "model that is converted from a GGUF file (to convert it now)")
    model_import.add_argument("--id", dest="model_id", help="its name (default: the folder's, file's or hub id)")
    model_import.add_argument("--data-dir", help="the server's data dir (default $GXFT_DATA_DIR or ./gxft-data)")
    model_import.add_argument("--context-length", type=int, help="longest example (default: the model's)")
    model_import.set_defaults(run=_model_import)

    chat = leaf(commands, "chat", "chat", "ask a model, streaming its answer")
    chat.add_argument("model")
    chat.add_argument("prompt")
    chat.add_argument("--system", help="a system message")
    chat.add_argument("--max-tokens", type=int)
    chat.add_argument("--temperature", type=float)
    leaf(commands, "check-connection", "check_connection",
         "check the models, jobs and files endpoints: status and latency")

    migrate_help = ("recreate the fine-tuning jobs of another OpenAI-compatible endpoint (OpenAI, Nebius, a GXFT) "
                    "here: their files are copied and each job is created again, with its method, hyperparameters, "
                    "suffix, seed and metadata, on the model --model-map names")
    migrate = commands.add_parser("migrate", help=migrate_help, description=migrate_help, parents=[endpoint])
    migrate.add_argument("--from-base-url", required=True, help="the source API, e.g. https://api.openai.com/v1")
    migrate.add_argument("--from-api-key", required=True)
    migrate.add_argument("--model-map", action="append", metavar="OLD=NEW",
                         help="train OLD's jobs on NEW here (repeatable); unmapped jobs keep their model's name")
    migrate.add_argument("--job", action="append", metavar="ID", help="only this job (repeatable)")
    migrate.add_argument("--files-dir", help="your own copies of the files, by name, for a source that will not "
                         "hand back fine-tuning uploads (OpenAI)")
    migrate.add_argument("--dry-run", action="store_true", help="print the plan, change nothing")
    migrate.set_defaults(run=_migrate)


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
        "played by SmolLM2 where it is installed, else gxft/tiny-chat (default $GXFT_PROFILE or 'default')",
    )
    serve_parser.add_argument(
        "--dialect", choices=("openai", "nebius"), help="where OpenAI's and Nebius's APIs differ (checkpoints kept "
        "and their order, result file names, learning_rate_multiplier), follow this one (default $GXFT_DIALECT or "
        "'openai')",
    )
    serve_parser.add_argument("--log-level", default="info")
    serve_parser.set_defaults(run=serve)

    worker_parser = commands.add_parser("worker", help="run a training worker that serves a GXFT server")
    worker_parser.add_argument("--server", required=True, help="the server's URL, e.g. http://127.0.0.1:8000")
    worker_parser.add_argument(
        "--queue", help="the SQLite queue file (default $GXFT_DATA_DIR/queue.sqlite3); GXFT_REDIS_URL selects Redis"
    )
    worker_parser.add_argument(
        "--procs", type=_procs, default=1, metavar="N|all",
        help="train each job as N processes (torch.distributed; `all`: one per GPU); default 1",
    )
    worker_parser.add_argument("--parent-pid", type=int, help=argparse.SUPPRESS)
    worker_parser.set_defaults(run=worker)

    validate_parser = commands.add_parser("validate", help="check JSONL training files, with line-numbered problems")
    validate_parser.add_argument("files", nargs="+", metavar="FILE")
    validate_parser.add_argument(
        "--min-examples", type=int, default=10, help="fewest examples a training file needs (default 10)"
    )
    validate_parser.set_defaults(run=validate)

    endpoint = argparse.ArgumentParser(add_help=False)
    endpoint.add_argument("--base-url", help="the API (default $OPENAI_BASE_URL or http://127.0.0.1:8000/v1)")
    endpoint.add_argument("--api-key", help="default $OPENAI_API_KEY")
    endpoint.add_argument("--json", action="store_true", help="print JSON")
    _add_remote_commands(commands, endpoint)

    config_parser = commands.add_parser("create-config", help="write a training config file for `gxft train`")
    config_parser.add_argument("name", help="writes NAME.json, or NAME.yaml with --yaml")
    config_parser.add_argument("--model", required=True, help="a registry id or a model folder")
    config_parser.add_argument("--dataset", required=True, help="a JSONL file")
    config_parser.add_argument("--method", choices=("sft", "lora", "qlora"), default="lora")
    config_parser.add_argument("--format", choices=("chat", "alpaca", "prompt_completion", "text"),
                               help="the dataset's format (default: detected)")
    config_parser.add_argument("--yaml", action="store_true")
    config_parser.set_defaults(run=_local("create_config"))

    train_parser = commands.add_parser("train", help="train locally from a config file, no server needed")
    train_parser.add_argument("config", help="a .json, .yaml or .yml file from create-config")
    train_parser.set_defaults(run=_local("train"))

    evaluate_parser = commands.add_parser("evaluate",
                                          help="loss, perplexity and token accuracy of a model on a dataset")
    evaluate_parser.add_argument("model", metavar="MODEL", help="a registry id (gxft/tiny-chat), or a folder with a "
                                 "model or an adapter (from train or jobs download)")
    evaluate_parser.add_argument("--dataset", required=True)
    evaluate_parser.add_argument("--format", choices=("chat", "alpaca", "prompt_completion", "text"))
    evaluate_parser.add_argument("--max-length", type=int, default=2048)
    evaluate_parser.add_argument("--batch-size", type=int, default=8)
    evaluate_parser.add_argument("--json", action="store_true", help="print JSON")
    evaluate_parser.set_defaults(run=_local("evaluate"))
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    # The server and workers log their work; a command's output is its result, and its warnings.
    level = logging.INFO if args.command in ("serve", "worker") else logging.WARNING
    if args.command == "serve":
        level = logging.getLevelName(args.log_level.upper())
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    sys.exit(args.run(args))
