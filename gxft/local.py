"""The local workflow, no server needed: `create-config`, `train` and `evaluate`, on the same data and
training code the worker runs."""

import math
import shutil
import sys
import tempfile
from pathlib import Path

from contract.internal_api import Order
from contract.literals import DataFormat
from contract.training_settings import TrainingSettings
from gxft.local_config import ConfigError, LocalConfig, default_config, dump, load
from gxft.output import print_json, progress


def _model_path(name: str) -> tuple[str, int | None, str | None]:
    """A registry id (or alias, or a model `gxft models import` brought into the data dir) → its folder,
    context length and the GGUF file it is converted from; anything else is a folder or hub id."""
    from server.base_models import BaseModelRegistry, RegistryError

    try:
        model = BaseModelRegistry.load_default().get(name)
    except RegistryError as exc:
        raise ConfigError(str(exc)) from exc
    if model is not None:
        return model.path, model.context_length, model.gguf
    return name, None, None


def _check_dataset(path_text: str, declared: str | None, field: str) -> tuple[Path, DataFormat]:
    from contract.data_formats import METHOD_FORMATS, validate_file

    path = Path(path_text)
    if not path.is_file():
        raise ConfigError(f"{field}: {path} does not exist")
    report = validate_file(path)
    if not report.ok:
        raise ConfigError(f"{field}: {path} is not a valid training file:\n  " + "\n  ".join(report.problems))
    if declared is not None and declared != report.data_format:
        raise ConfigError(f"{field}: {path} is in the {report.data_format} format, not {declared}")
    if report.data_format not in METHOD_FORMATS["supervised"]:
        raise ConfigError(f"{field}: {path} holds {report.data_format} examples, which supervised training cannot use")
    return path, report.data_format


def create_config(args) -> int:
    data_format = args.format
    if data_format is None and Path(args.dataset).is_file():
        from contract.data_formats import validate_file

        data_format = validate_file(Path(args.dataset)).data_format
    config = default_config(args.model, args.dataset, args.method, data_format, f"./{args.name}_output")
    path = Path(f"{args.name}.{'yaml' if args.yaml else 'json'}")
    path.write_text(dump(config, args.yaml))
    print(path)
    return 0


class LocalHooks:
    """The training loop's hooks for a local run: a progress bar, and checkpoints into output_dir."""

    def __init__(self, bar, output_dir: Path, tokenizer):
        self.bar = bar
        self.output_dir = output_dir
        self.tokenizer = tokenizer

    def step_done(self, step: int, total_steps: int, metrics: dict, trained_tokens: int) -> None:
        self.bar.total = total_steps
        self.bar.update(step - self.bar.n)
        self.bar.set_postfix(loss=f"{metrics['train_loss']:.4f}")

    def order(self) -> Order:
        return "continue"

    def save_checkpoint(self, step, metrics, weights_dir: Path, state_path, final: bool, paused: bool) -> Order:
        target = self.output_dir if final else self.output_dir / f"checkpoint-{step}"
        target.mkdir(parents=True, exist_ok=True)
        for path in weights_dir.iterdir():
            shutil.move(str(path), target / path.name)
        self.tokenizer.save_pretrained(target)  # the folder loads on its own, adapter or full model
        shutil.rmtree(weights_dir, ignore_errors=True)
        if state_path is not None:
            state_path.unlink(missing_ok=True)
        return "continue"


def _settings(config: LocalConfig, context_length: int | None) -> TrainingSettings:
    training = config.training
    lora = training.lora
    targets = lora.target_modules if lora and lora.target_modules != "all-linear" else None
    return TrainingSettings(
        n_epochs=training.num_train_epochs,
        # One optimizer step covers the accumulated micro-batches: here, one packed batch of them all.
        batch_size=training.per_device_train_batch_size * training.gradient_accumulation_steps,
        learning_rate=training.learning_rate,
        learning_rate_multiplier=1.0,
        warmup_ratio=training.warmup_ratio,
        weight_decay=training.weight_decay,
        lora=training.method != "sft",
        lora_r=lora.r if lora else 8,
        lora_alpha=float(lora.lora_alpha) if lora else 16.0,
        lora_dropout=lora.lora_dropout if lora else 0.0,
        packing=True,
        max_grad_norm=1.0,
        context_length=min(config.model.max_length, context_length or config.model.max_length),
        lora_target_modules=targets,
        quantization="nf4" if training.method == "qlora" else None,
    )


def train(args) -> int:
    try:
        config = load(Path(args.config))
        train_path, data_format = _check_dataset(config.dataset.path, config.dataset.format, "dataset.path")
        valid_path = None
        if config.dataset.validation_path:
            valid_path, _ = _check_dataset(config.dataset.validation_path, data_format, "dataset.validation_path")
        import torch

        if config.training.method == "qlora" or config.model.device_map == "cuda":
            if not torch.cuda.is_available():
                what = "QLoRA (4-bit base weights with bitsandbytes)" if config.training.method == "qlora" else \
                    "model.device_map 'cuda'"
                raise ConfigError(f"{what} needs a CUDA GPU, and this machine has none; use method 'lora' on the CPU")
        model_path, context_length, model_gguf = _model_path(config.model.name)
    except ConfigError as exc:
        print(f"gxft train: {exc}", file=sys.stderr)
        return 2

    from modeling.loading import ModelLoadError, pick_device
    from worker.metrics_csv import metrics_csv
    from worker.trainer import Trainer
    from worker.training_run import TrainingRun

    output_dir = Path(config.training.output_dir)
    with tempfile.TemporaryDirectory(prefix="gxft-train-") as workdir:
        trainer = Trainer(TrainingRun(
            method="supervised", model_path=model_path, model_name=config.model.name, train_path=train_path,
            valid_path=valid_path, data_format=data_format, seed=config.training.seed,
            settings=_settings(config, context_length), workdir=Path(workdir),
            device=pick_device(config.model.device_map), model_gguf=model_gguf,
        ))
        try:
            trainer.setup()
        except ModelLoadError as exc:
            print(f"gxft train: model.name: {exc}", file=sys.stderr)
            return 2
        with progress(trainer.total_steps, f"Training {config.model.name} ({config.training.method})",
                      unit="step") as bar:
            result = trainer.train(LocalHooks(bar, output_dir, trainer.tokenizer))
    (output_dir / "step_metrics.csv").write_text(metrics_csv(result.metric_rows))
    last = result.metric_rows[-1]
    print(f"{output_dir}: {trainer.total_steps} steps, {result.trained_tokens} tokens, "
          f"final training loss {last['train_loss']:.4f}")
    return 0


def _local_folder(name: str) -> str:
    """A registry id's folder, converted from its GGUF file first where it has one; anything else as it is."""
    path, _, gguf = _model_path(name)
    if gguf is not None:
        from modeling.importing import ensure_converted

        ensure_converted(gguf, Path(path), lambda message: print(f"gxft: {message}", file=sys.stderr))
    return path


def evaluate(args) -> int:
    from modeling.importing import ImportRefused
    from modeling.loading import ModelLoadError

    try:
        model_dir = Path(_local_folder(args.model))
        if not (model_dir / "config.json").exists() and not (model_dir / "adapter_config.json").exists():
            raise ConfigError(f"{args.model} is neither a model of the registry nor a folder that holds one "
                              "(config.json or adapter_config.json)")
        dataset, data_format = _check_dataset(args.dataset, args.format, "--dataset")
    except (ConfigError, ImportRefused, ModelLoadError) as exc:
        print(f"gxft evaluate: {exc}", file=sys.stderr)
        return 2
    from modeling.loading import load_model_folder, pick_device
    from worker.data import tokenize_file
    from worker.objectives.supervised import evaluate as evaluate_examples

    device = pick_device()
    try:
        model, tokenizer = load_model_folder(model_dir, device, _local_folder)
    except (ConfigError, ImportRefused, ModelLoadError) as exc:
        print(f"gxft evaluate: {exc}", file=sys.stderr)
        return 2
    model.eval()
    examples = tokenize_file(tokenizer, dataset, data_format, args.max_length)
    metrics = evaluate_examples(model, examples, args.batch_size, True, tokenizer.pad_token_id, device)
    result = {
        "model": args.model, "dataset": str(dataset), "format": data_format, "examples": len(examples),
        "loss": metrics["loss"], "perplexity": math.exp(metrics["loss"]), "token_accuracy": metrics["accuracy"],
    }
    if args.json:
        print_json(result)
    else:
        width = max(len(name) for name in result)
        for name, value in result.items():
            print(f"{name:<{width}}  {value:.4f}" if isinstance(value, float) else f"{name:<{width}}  {value}")
    return 0
