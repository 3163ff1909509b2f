"""The numbers a training run uses: resolved by the server from a job's hyperparameters (or by
`gxft train` from its config file) and read by the training loop."""

import msgspec


class TrainingSettings(msgspec.Struct, kw_only=True):
    n_epochs: int
    batch_size: int
    learning_rate: float
    learning_rate_multiplier: float
    warmup_ratio: float
    weight_decay: float
    lora: bool
    lora_r: int
    lora_alpha: float
    lora_dropout: float
    packing: bool
    max_grad_norm: float
    context_length: int
    lora_target_modules: list[str] | None = None  # None: every linear layer but the output head
    beta: float = 0.1  # DPO and reinforcement: how far the policy may move from the reference model
    # Reinforcement only: answers sampled per prompt (the group GRPO compares), their length, and validation.
    samples_per_prompt: int = 4
    max_completion_tokens: int = 64
    eval_interval: int | None = None  # steps between validations; None: at each epoch's end
    eval_samples: int = 1  # answers sampled per validation prompt
    quantization: str | None = None  # "nf4": the frozen base is loaded in 4 bits (QLoRA)
