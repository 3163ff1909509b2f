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
    beta: float = 0.1  # DPO only: how far the policy may move from the reference model
    quantization: str | None = None  # "nf4": the frozen base is loaded in 4 bits (QLoRA)
