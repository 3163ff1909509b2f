"""`gxft migrate`: recreate the fine-tuning jobs of any OpenAI-compatible endpoint (OpenAI, Nebius, another
GXFT) on this GXFT, on open models: each job's training and validation files are downloaded and uploaded
again, and the job is created again with its method, hyperparameters, suffix, seed, metadata and
integrations, on the model that `--model-map` names for it.

What cannot come along is said, per job, before anything is done (`--dry-run` stops there): a job that
continued a fine-tuned model starts from that model's base (the source keeps the weights), and
`learning_rate_multiplier` scales GXFT's base rate for the new model, not the source's. Each recreated job
carries `migrated_from` in its metadata, so that running the command again skips what it already did.
"""

import argparse
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import openai

from gxft.output import printable
from gxft.remote import make_client

METADATA_LIMIT = 16  # keys, as OpenAI allows
CARRIED_METHODS = ("supervised", "dpo", "reinforcement")


@dataclass
class FileCopy:
    file_id: str
    filename: str
    size: int
    local: Path | None  # a copy found in --files-dir, used when the source will not hand the file back


@dataclass
class JobPlan:
    job: Any
    model: str | None
    method: dict[str, Any] | None
    files: dict[str, FileCopy]  # "training_file" / "validation_file" → the file
    notes: list[str] = field(default_factory=list)  # what does not carry over, and why
    skip: str | None = None  # why the job is not recreated

    @property
    def metadata(self) -> dict[str, str]:
        metadata = dict(self.job.metadata or {})
        if len(metadata) < METADATA_LIMIT:
            metadata["migrated_from"] = self.job.id
        return metadata


def parse_model_map(pairs: list[str]) -> dict[str, str]:
    model_map = {}
    for pair in pairs:
        old, sep, new = pair.partition("=")
        if not sep or not old or not new:
            raise ValueError(f"--model-map {pair!r}: write it as OLD=NEW, e.g. gpt-4o-mini-2024-07-18=gxft/tiny-chat")
        model_map[old] = new
    return model_map


def base_of(model: str) -> str:
    """`ft:BASE:org:suffix:id` → BASE; a base model's name is its own base."""
    return model.split(":")[1] if model.startswith("ft:") and model.count(":") >= 2 else model


def method_of(job: Any) -> tuple[dict[str, Any] | None, str | None]:
    """The job's method in OpenAI's current dialect, or why it cannot be recreated here."""
    method = job.method
    kind = method.type if method is not None else "supervised"
    if kind not in CARRIED_METHODS:
        return None, f"its method {kind!r} is not one GXFT trains ({', '.join(CARRIED_METHODS)})"
    details = getattr(method, kind, None) if method is not None else None
    hyperparameters = details.hyperparameters if details is not None and details.hyperparameters else \
        job.hyperparameters
    values = hyperparameters.to_dict(exclude_unset=False) if hyperparameters is not None else {}
    body: dict[str, Any] = {"hyperparameters": {k: v for k, v in values.items() if v is not None}}
    if kind == "reinforcement" and details is not None:
        # The grader as the source holds it; one that names a grader model must find that model here.
        body["grader"] = details.grader if isinstance(details.grader, dict) else details.grader.to_dict()
    return {"type": kind, kind: body}, None


def plan_job(job: Any, source: openai.OpenAI, target_models: set[str], model_map: dict[str, str],
             files_dir: Path | None, done: set[str]) -> JobPlan:
    method, refused = method_of(job)
    base = base_of(job.model)
    model = model_map.get(job.model) or model_map.get(base) or (base if base in target_models else None)
    plan = JobPlan(job=job, model=model, method=method, files={}, skip=refused)
    if job.id in done:
        plan.skip = "already migrated (a job here has it as migrated_from)"
    elif model is None and plan.skip is None:
        plan.skip = f"no model here is {base}: map it with --model-map {base}=MODEL (see gxft models list)"
    elif model is not None and model not in target_models:
        plan.skip = f"{model} is not a model here (see gxft models list)"
    if job.model != base:
        plan.notes.append(f"it continued {job.model}, whose weights stay at the source: it starts from {model}")
    if method is not None and "learning_rate_multiplier" in method[method["type"]]["hyperparameters"]:
        plan.notes.append("learning_rate_multiplier scales GXFT's base rate for the new model (see its registry "
                          "entry), not the source's")
    for role in ("training_file", "validation_file"):
        file_id = getattr(job, role)
        if not file_id:
            continue
        try:
            file = source.files.retrieve(file_id)
        except openai.NotFoundError:
            plan.skip = plan.skip or f"its {role.replace('_', ' ')} {file_id} is gone from the source"
            continue
        local = files_dir / file.filename if files_dir and (files_dir / file.filename).is_file() else None
        plan.files[role] = FileCopy(file_id=file_id, filename=file.filename, size=file.bytes, local=local)
    return plan


def describe(plan: JobPlan) -> list[str]:
    job = plan.job
    target = plan.model or "?"
    lines = [f"{job.id} ({job.status}): {job.model} → {target}, {plan.method['type'] if plan.method else '?'}"
             + (f", suffix {job.user_provided_suffix!r}" if job.user_provided_suffix else "")
             + (f", seed {job.seed}" if job.seed is not None else "")]
    for role, copy in plan.files.items():
        origin = f"from {copy.local}" if copy.local else "from the source"
        lines.append(f"  {role.replace('_', ' ')}: {copy.file_id} {copy.filename}, {copy.size:,} bytes, {origin}")
    if plan.method is not None:
        values = plan.method[plan.method["type"]]["hyperparameters"]
        lines.append("  hyperparameters: " + (", ".join(f"{k}={v}" for k, v in values.items()) or "defaults"))
    lines += [f"  does not carry over: {note}" for note in plan.notes]
    if plan.skip:
        lines.append(f"  skipped: {plan.skip}")
    return lines


def copy_file(source: openai.OpenAI, target: openai.OpenAI, copy: FileCopy, copied: dict[str, str]) -> str:
    """Upload the file here once (however many jobs use it); its new id."""
    if copy.file_id in copied:
        return copied[copy.file_id]
    try:
        content = source.files.content(copy.file_id).read()
    except openai.APIStatusError as exc:
        if copy.local is None:
            raise MigrationError(
                f"the source will not hand back {copy.file_id} ({copy.filename}): {exc.message}. OpenAI keeps "
                "fine-tuning uploads to itself: pass --files-dir with your own copy, named as uploaded") from exc
        content = copy.local.read_bytes()
    created = target.files.create(file=(copy.filename, content), purpose="fine-tune")
    processed = target.files.wait_for_processing(created.id, poll_interval=0.2)
    if processed.status != "processed":
        raise MigrationError(f"{copy.filename} was refused here: {processed.status_details}")
    copied[copy.file_id] = processed.id
    return processed.id


class MigrationError(Exception):
    pass


def migrate(args: argparse.Namespace) -> int:
    try:
        model_map = parse_model_map(args.model_map or [])
    except ValueError as exc:
        print(f"gxft migrate: {exc}", file=sys.stderr)
        return 2
    source = openai.OpenAI(base_url=args.from_base_url, api_key=args.from_api_key, max_retries=2)
    target = make_client(args)
    try:
        target_models = {model.id for model in target.models.list()}
        done = {job.metadata["migrated_from"] for job in target.fine_tuning.jobs.list(limit=100)
                if job.metadata and "migrated_from" in job.metadata}
        jobs = [job for job in source.fine_tuning.jobs.list(limit=100) if not args.job or job.id in args.job]
        files_dir = Path(args.files_dir) if args.files_dir else None
        plans = [plan_job(job, source, target_models, model_map, files_dir, done) for job in reversed(jobs)]
        for plan in plans:
            print(printable("\n".join(describe(plan)), newlines=True))
        todo = [plan for plan in plans if plan.skip is None]
        print(f"{len(todo)} of {len(plans)} jobs to recreate on {target.base_url}")
        if args.dry_run:
            return 0
        copied: dict[str, str] = {}
        failures = 0
        for plan in todo:
            try:
                files = {role: copy_file(source, target, copy, copied) for role, copy in plan.files.items()}
            except MigrationError as exc:
                print(f"{plan.job.id}: not recreated: {exc}", file=sys.stderr)
                failures += 1
                continue
            options: dict[str, Any] = {"method": plan.method, "metadata": plan.metadata}
            if plan.job.user_provided_suffix:
                options["suffix"] = plan.job.user_provided_suffix
            if plan.job.seed is not None:
                options["seed"] = plan.job.seed
            if "validation_file" in files:
                options["validation_file"] = files["validation_file"]
            if plan.job.integrations:
                options["integrations"] = [integration.to_dict() for integration in plan.job.integrations]
            assert plan.model is not None
            created = target.fine_tuning.jobs.create(model=plan.model, training_file=files["training_file"],
                                                     **options)
            print(f"{plan.job.id} → {created.id} ({created.status})")
        return 1 if failures else 0
    except openai.APIConnectionError as exc:
        print(f"gxft migrate: cannot reach {exc.request.url.host}: {exc}", file=sys.stderr)
    except openai.APIStatusError as exc:
        print(f"gxft migrate: {exc.request.url}: {exc.status_code} {exc.message}", file=sys.stderr)
    return 1
