"""Remote commands: files, jobs, models, chat and check-connection, through the official openai
client, so they work against GXFT, OpenAI and Nebius alike."""

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx2
import openai

from gxft.output import ProgressReader, print_json, print_table, printable, progress, timestamp

DEFAULT_BASE_URL = "http://127.0.0.1:8000/v1"
TERMINAL = ("succeeded", "failed", "cancelled")


def make_client(args: argparse.Namespace) -> openai.OpenAI:
    base_url = args.base_url or os.environ.get("OPENAI_BASE_URL") or DEFAULT_BASE_URL
    # A local GXFT without GXFT_API_KEYS accepts any key; the client only insists that there is one.
    api_key = args.api_key or os.environ.get("OPENAI_API_KEY") or "gxft-local"
    return openai.OpenAI(base_url=base_url, api_key=api_key, max_retries=2)


# Files


def upload(client: openai.OpenAI, path: Path, purpose: str, wait: bool = True):
    size = path.stat().st_size
    with open(path, "rb") as handle, progress(size, f"Uploading {path.name}", unit="B", unit_scale=True) as bar:
        created = client.files.create(file=(path.name, ProgressReader(handle, bar)), purpose=purpose)  # type: ignore[arg-type]
    if not wait:
        return created
    with progress(None, f"Validating {created.id}", unit="s", bar_format="{desc}: {elapsed}") as bar:
        result = client.files.wait_for_processing(created.id, poll_interval=0.2)
        bar.update()
    return result


def files_upload(args, client) -> int:
    file = upload(client, Path(args.file), args.purpose, wait=not args.no_wait)
    if args.json:
        print_json(file)
    elif file.status == "error":
        print(printable(f"{file.id} ({file.filename}): INVALID\n  {file.status_details}", newlines=True))
    else:
        details = f": {file.status_details}" if file.status_details else ""
        print(printable(f"{file.id} ({file.filename}): {file.status}{details}"))
    return 1 if file.status == "error" else 0


def files_list(args, client) -> int:
    files = list(client.files.list(purpose=args.purpose) if args.purpose else client.files.list())
    if args.json:
        print_json(files)
        return 0
    print_table(
        ({"id": f.id, "filename": f.filename, "purpose": f.purpose, "bytes": f.bytes, "status": f.status,
          "created": timestamp(f.created_at)} for f in files),
        ["id", "filename", "purpose", "bytes", "status", "created"],
    )
    return 0


def files_get(args, client) -> int:
    print_json(client.files.retrieve(args.id))
    return 0


def files_download(args, client) -> int:
    file = client.files.retrieve(args.id)
    target = Path(args.output or Path(file.filename).name)
    with client.files.with_streaming_response.content(args.id) as response, open(target, "wb") as out, \
            progress(file.bytes, f"Downloading {file.filename}", unit="B", unit_scale=True) as bar:
        for chunk in response.iter_bytes():
            out.write(chunk)
            bar.update(len(chunk))
    print(target)
    return 0


def files_delete(args, client) -> int:
    deleted = client.files.delete(args.id)
    print_json(deleted) if args.json else print(f"{deleted.id}: deleted")
    return 0


def _training_message(stored) -> dict[str, Any]:
    """A stored request message as a training file holds it: as it was sent, its parts where it had parts."""
    message = stored.to_dict()
    message.pop("id", None)
    if parts := message.pop("content_parts", None):
        message["content"] = parts
    return {name: value for name, value in message.items() if value is not None or name == "content"}


def completion_rows(client, model: str | None, metadata: dict[str, str]) -> tuple[list[dict], int]:
    """Training rows of the stored completions that match, one per whole choice, oldest first; and how many
    choices were left out because they ran out of tokens (a cut answer teaches cutting off)."""
    filters: dict[str, Any] = {"metadata": metadata} if metadata else {}
    if model:
        filters["model"] = model
    rows, cut = [], 0
    for completion in client.chat.completions.list(**filters, limit=100):
        # The SDK types every stored message as the assistant's: read them as they come.
        messages = [_training_message(message) for message in client.chat.completions.messages.list(
            completion.id, limit=100)]
        for choice in completion.choices:
            if choice.finish_reason == "length":
                cut += 1
                continue
            answer = {name: value for name, value in choice.message.to_dict().items()
                      if name in ("role", "content", "tool_calls")}
            row: dict[str, Any] = {"messages": [*messages, answer]}
            if getattr(completion, "tools", None):  # GXFT keeps them; OpenAI's stored completions may not
                row["tools"] = completion.tools
            rows.append(row)
    return rows, cut


def files_from_completions(args, client) -> int:
    rows, cut = completion_rows(client, args.model, dict(args.metadata))
    if cut:
        print(f"left out {cut} choices that ran out of tokens (finish_reason length)", file=sys.stderr)
    if not rows:
        print("gxft: no stored completion matches" if not cut else "gxft: no whole answer left to train on",
              file=sys.stderr)
        return 1
    text = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
    if args.output:
        Path(args.output).write_text(text)
        print(f"{args.output}: {len(rows)} examples")
        return 0
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"completions-{time.strftime('%Y%m%d-%H%M%S')}.jsonl"
        path.write_text(text)
        print(f"{len(rows)} examples", file=sys.stderr)
        return files_upload(argparse.Namespace(file=str(path), purpose="fine-tune", no_wait=False, json=args.json),
                            client)


# Jobs


def _file_id(client, value: str | None) -> str | None:
    """A file id as it is, or a local path: uploaded first."""
    if value is None or not Path(value).is_file():
        return value
    file = upload(client, Path(value), "fine-tune")
    if file.status == "error":
        raise SystemExit(f"{value} is not a valid training file:\n  {file.status_details}")
    return file.id


def _hyperparameters(args) -> dict[str, Any]:
    chosen = {
        "n_epochs": args.epochs, "batch_size": args.batch_size, "learning_rate": args.learning_rate,
        "learning_rate_multiplier": args.learning_rate_multiplier, "lora": args.lora, "lora_r": args.lora_r,
        "lora_alpha": args.lora_alpha, "packing": args.packing, "beta": args.beta,
        "quantization": args.quantization, "compute_multiplier": args.compute_multiplier,
        "max_completion_tokens": args.max_completion_tokens, "eval_interval": args.eval_interval,
        "eval_samples": args.eval_samples,
    }
    return {name: value for name, value in chosen.items() if value is not None}


def jobs_create(args, client) -> int:
    training = _file_id(client, args.training_file)
    validation = _file_id(client, args.validation_file)
    hyperparameters = _hyperparameters(args)
    # In OpenAI's current dialect: the method names the hyperparameters (DPO takes them nowhere else).
    body: dict[str, Any] = {"hyperparameters": hyperparameters}
    if args.method == "reinforcement":
        if args.grader is None:
            raise SystemExit("--method reinforcement needs --grader FILE, a JSON file holding the grader "
                             "(`gxft graders validate FILE` checks one)")
        body["grader"] = _json_file(args.grader)
    elif args.grader is not None:
        raise SystemExit("--grader goes with --method reinforcement")
    options: dict[str, Any] = {"method": {"type": args.method, args.method: body}}
    if args.validation_file:
        options["validation_file"] = validation
    for name in ("suffix", "seed"):
        if getattr(args, name) is not None:
            options[name] = getattr(args, name)
    job = client.fine_tuning.jobs.create(model=args.model, training_file=training, **options)
    if args.json:
        print_json(job)
    else:
        print(f"{job.id}: {job.status}")
    return watch(client, job.id) if args.watch else 0


def _json_file(path: str) -> Any:
    try:
        return json.loads(Path(path).read_text())
    except OSError as exc:
        raise SystemExit(f"cannot read {path}: {exc.strerror}") from None
    except json.JSONDecodeError as exc:
        raise SystemExit(f"{path} is not JSON: {exc}") from None


def _job_rows(jobs) -> list[dict]:
    return [{"id": j.id, "model": j.model, "status": j.status, "created": timestamp(j.created_at),
             "fine_tuned_model": j.fine_tuned_model} for j in jobs]


def jobs_list(args, client) -> int:
    jobs = client.fine_tuning.jobs.list(limit=args.limit).data
    print_json(jobs) if args.json else print_table(_job_rows(jobs), ["id", "model", "status", "created",
                                                                      "fine_tuned_model"])
    return 0


def jobs_get(args, client) -> int:
    print_json(client.fine_tuning.jobs.retrieve(args.id))
    return 0


def jobs_action(args, client) -> int:
    job = getattr(client.fine_tuning.jobs, args.action)(args.id)
    print_json(job) if args.json else print(f"{job.id}: {job.status}")
    return 0


def latest_events(client, job_id: str, limit: int) -> list:
    """The job's latest `limit` events, oldest first. `order=desc` asks a GXFT server of either dialect for the
    latest; OpenAI lists them so anyway, and Nebius, which lists oldest first, ignores it."""
    page = client.fine_tuning.jobs.list_events(job_id, limit=limit, extra_query={"order": "desc"}).data
    return sorted(reversed(page), key=lambda event: event.created_at)


def jobs_events(args, client) -> int:
    events = latest_events(client, args.id, args.limit)
    if args.json:
        print_json(events)
    else:
        for event in events:
            print(f"{timestamp(event.created_at)}  {event.level:<5}  {printable(event.message)}")
    return 0


def jobs_checkpoints(args, client) -> int:
    checkpoints = client.fine_tuning.jobs.checkpoints.list(args.id).data
    if args.json:
        print_json(checkpoints)
        return 0
    print_table(
        ({"step": c.step_number, "train_loss": f"{c.metrics.train_loss:.4f}" if c.metrics.train_loss else None,
          "model": c.fine_tuned_model_checkpoint} for c in checkpoints),
        ["step", "train_loss", "model"],
    )
    return 0


def watch(client, job_id: str) -> int:
    """A live bar over the job's steps with its latest loss; exit status 0 only when it succeeds."""
    seen: set[str] = set()
    with progress(None, job_id, unit="step") as bar:
        while True:
            job = client.fine_tuning.jobs.retrieve(job_id)
            extra = job.model_extra or {}
            if extra.get("total_steps"):
                bar.total = extra["total_steps"]
            bar.n = extra.get("trained_steps") or 0
            for event in latest_events(client, job_id, 20):
                if event.id in seen:
                    continue
                seen.add(event.id)
                data = event.data if isinstance(event.data, dict) else {}
                if event.type == "metrics" and "train_loss" in data:
                    bar.set_postfix(loss=f"{data['train_loss']:.4f}", refresh=False)
            bar.set_description(f"{job_id} {job.status}", refresh=False)
            bar.refresh()
            if job.status in TERMINAL:
                break
            time.sleep(0.5)
    print(f"{job.id}: {job.status}" + (f": {printable(job.error.message)}" if job.error else "") +
          (f" → {job.fine_tuned_model}" if job.fine_tuned_model else ""))
    return 0 if job.status == "succeeded" else 1


def jobs_watch(args, client) -> int:
    return watch(client, args.id)


def jobs_download(args, client) -> int:
    checkpoints = client.fine_tuning.jobs.checkpoints.list(args.id, limit=100).data
    if args.checkpoint is not None:
        checkpoints = [c for c in checkpoints if c.step_number == args.checkpoint]
    if not checkpoints:
        steps = ", ".join(str(c.step_number) for c in client.fine_tuning.jobs.checkpoints.list(args.id).data)
        print(f"{args.id} has no checkpoint at step {args.checkpoint}; its checkpoints: {steps or 'none'}",
              file=sys.stderr)
        return 1
    checkpoint = max(checkpoints, key=lambda c: c.step_number)
    folder = Path(args.dir or f"{args.id}-step-{checkpoint.step_number}")
    folder.mkdir(parents=True, exist_ok=True)
    for file_id in (checkpoint.model_extra or {}).get("result_files", []):
        file = client.files.retrieve(file_id)
        files_download(argparse.Namespace(id=file_id, output=str(folder / Path(file.filename).name)), client)
    return 0


# Models and chat


# Graders


def graders_run(args, client) -> int:
    item = None
    if args.item is not None:
        item = _json_file(args.item) if Path(args.item).is_file() else _json_argument(args.item)
    result = client.fine_tuning.alpha.graders.run(grader=_json_file(args.grader), model_sample=args.sample,
                                                  **({"item": item} if item is not None else {}))
    if args.json:
        print_json(result)
        return 0
    errors = [name for name, value in result.metadata.errors.model_dump(by_alias=True).items() if value is True]
    print(f"reward {result.reward:.4g}" + (f" (errors: {', '.join(errors)})" if errors else ""))
    for name, value in result.sub_rewards.items():
        print(f"  {name}: {value:.4g}")
    details = result.metadata.errors.python_grader_runtime_error_details
    if details:
        print(details.rstrip(), file=sys.stderr)
    return 0


def _json_argument(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise SystemExit(f"--item is neither a file nor JSON: {exc}") from None


def graders_validate(args, client) -> int:
    validated = client.fine_tuning.alpha.graders.validate(grader=_json_file(args.grader))
    print_json(validated) if args.json else print(f"{args.grader}: a valid {validated.grader.type} grader")
    return 0


def models_list(args, client) -> int:
    models = list(client.models.list())
    print_json(models) if args.json else print_table(
        ({"id": m.id, "owned_by": m.owned_by, "created": timestamp(m.created)} for m in models),
        ["id", "owned_by", "created"],
    )
    return 0


def models_delete(args, client) -> int:
    deleted = client.models.delete(args.model)
    print_json(deleted) if args.json else print(f"{deleted.id}: deleted")
    return 0


def chat(args, client) -> int:
    messages = ([{"role": "system", "content": args.system}] if args.system else []) + [
        {"role": "user", "content": args.prompt}
    ]
    stream = client.chat.completions.create(
        model=args.model, messages=messages, stream=True, max_tokens=args.max_tokens, temperature=args.temperature,
    )
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            print(printable(chunk.choices[0].delta.content, newlines=True), end="", flush=True)
    print()
    return 0


def check_connection(args, client) -> int:
    """One line per endpoint: status and latency, the connection test that fine-tuning web UIs offer."""
    checks = {
        "models": lambda: client.models.with_raw_response.list(),
        "fine_tuning.jobs": lambda: client.fine_tuning.jobs.with_raw_response.list(limit=1),
        "files": lambda: client.files.with_raw_response.list(limit=1),
    }
    failures = 0
    print(f"endpoint: {client.base_url}")
    for name, call in checks.items():
        started = time.perf_counter()
        try:
            status, detail = call().http_response.status_code, "OK"
        except openai.APIStatusError as exc:
            status, detail = exc.status_code, exc.message
        except (openai.APIConnectionError, httpx2.HTTPError) as exc:
            status, detail = "-", f"cannot connect: {exc}"
        milliseconds = (time.perf_counter() - started) * 1000
        ok = detail == "OK"
        failures += not ok
        print(f"{name:<17} {'OK' if ok else 'FAIL':<4} {status!s:>3}  {milliseconds:7.1f} ms" +
              ("" if ok else f"  {detail}"))
    return 1 if failures else 0
