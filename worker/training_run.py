"""The input of one training run, and nothing about where it came from: worker/runner.py builds it from a
claimed job, `gxft train` from its config file, the benchmarks from their settings."""

from dataclasses import dataclass
from pathlib import Path

import torch

from contract.graders import Grader
from contract.literals import DataFormat, Method
from contract.training_settings import TrainingSettings
from grading.model_graders import ChatModel, Embedder


@dataclass(frozen=True)
class ContinuedModel:
    """A fine-tuned model that a run trains further: its files in a folder."""

    folder: Path
    adapter: bool  # True: a LoRA adapter on the run's base model; False: full weights
    name: str  # for messages


@dataclass(frozen=True)
class TrainingRun:
    method: Method
    model_path: str  # the base model's folder (or a hub id already in the local cache)
    model_name: str  # the registry id (or the folder a local run names): messages, and saved adapters
    train_path: Path
    valid_path: Path | None
    data_format: DataFormat
    seed: int
    settings: TrainingSettings
    workdir: Path  # checkpoints and training state are written here before they are delivered
    device: torch.device
    continued: ContinuedModel | None = None  # None: the run starts from the base model
    model_gguf: str | None = None  # converted into `model_path` first, where that folder is not there yet
    grader: Grader | None = None  # reinforcement: what each sampled answer is worth
    grader_model: ChatModel | None = None  # reinforcement: how a model grader reaches its model
    grader_embedder: Embedder | None = None  # reinforcement: how a cosine grader reaches the embedding model
