"""One run over several processes (torch.distributed): data parallel, the global batch split between ranks.

A LoRA run replicates the model and averages gradients with DDP; a full fine-tuning run shards weights,
gradients and optimizer state with FSDP2 (`fully_shard`, one unit per decoder layer, the rest in the
root). Both wrap the same thing, a `StepModule` whose forward is "run this computation on the model",
so that the objective's loss (the fused loss reaching into the decoder and the head included) runs inside
the wrapper's forward, where DDP prepares its gradient reduction and FSDP2 gathers the root's weights.

Equal to one process, by construction: every rank sees the whole dataset in the same seeded order and
takes its part of each global batch (`split_batch`); its loss weighs its share of the batch's
denominator (labelled tokens, pairs), so the sum of the ranks' gradients is the one-process gradient.
Checkpoints are whole (gathered to rank 0), so a job resumes on any number of processes.
"""

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
import torch.distributed as dist

T = TypeVar("T")


@dataclass(frozen=True)
class Share:
    """This process's place among the run's: rank `rank` of `world`."""

    rank: int = 0
    world: int = 1

    @property
    def leader(self) -> bool:
        """Rank 0: the one that talks to the server and writes checkpoints."""
        return self.rank == 0


SINGLE = Share()


def split_batch(indices: list[int], sizes: list[int], world: int) -> list[list[int]]:
    """The batch's examples dealt between `world` ranks: as many each (to one), and as even in tokens as a
    greedy deal allows (largest first, to the rank with the fewest tokens that still has room). Each part
    keeps the batch's order."""
    if world == 1:
        return [indices]
    room = -(-len(indices) // world)
    parts: list[list[int]] = [[] for _ in range(world)]
    tokens = [0] * world
    for position in sorted(range(len(indices)), key=lambda p: -sizes[p]):
        rank = min((r for r in range(world) if len(parts[r]) < room), key=lambda r: tokens[r])
        parts[rank].append(position)
        tokens[rank] += sizes[position]
    return [[indices[p] for p in sorted(part)] for part in parts]


def share_of(indices: list[int], sizes: list[int], weights: list[int], share: Share) -> tuple[list[int], float]:
    """This rank's examples of a batch (dealt by `sizes`, their tokens) and its fraction of the batch's
    `weights` (what the loss averages over). A rank left without an example (a batch smaller than the
    ranks) still runs one, weighing nothing: every rank must take part in every step's collectives."""
    if share.world == 1:
        return indices, 1.0
    part = split_batch(indices, sizes, share.world)[share.rank]
    if not part:
        return indices[:1], 0.0
    weight = {index: w for index, w in zip(indices, weights, strict=True)}
    return part, sum(weight[i] for i in part) / max(sum(weights), 1)


class StepModule(torch.nn.Module):
    """What DDP and FSDP2 wrap: the model, and a forward that runs any computation on it."""

    def __init__(self, model: Any):
        super().__init__()
        self.model = model

    def forward(self, compute: Callable[[], T]) -> T:
        return compute()


def start(share: Share, address: str, port: int) -> None:
    os.environ.update(MASTER_ADDR=address, MASTER_PORT=str(port))
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    if torch.cuda.is_available():
        torch.cuda.set_device(share.rank)
    dist.init_process_group(backend, rank=share.rank, world_size=share.world)


def wrap(model: Any, lora: bool) -> torch.nn.Module:
    module = StepModule(model)
    if lora:
        from torch.nn.parallel import DistributedDataParallel

        device_ids = [torch.cuda.current_device()] if torch.cuda.is_available() else None
        return DistributedDataParallel(module, device_ids=device_ids)
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    mesh = init_device_mesh("cuda" if torch.cuda.is_available() else "cpu", (dist.get_world_size(),))
    for layer in model.get_decoder().layers:
        fully_shard(layer, mesh=mesh)
    fully_shard(module, mesh=mesh)
    return module


def summed(values: dict[str, float], device: torch.device) -> dict[str, float]:
    """Each value summed over the ranks (every rank passes the same keys)."""
    names = sorted(values)
    totals = torch.tensor([float(values[name]) for name in names], dtype=torch.float64, device=device)
    dist.all_reduce(totals)
    return dict(zip(names, totals.tolist(), strict=True))


def clip_grad_norm(parameters: list[torch.nn.Parameter], max_norm: float) -> None:
    """Clipping by the norm of the whole gradient, also when each rank holds a shard of it (FSDP2)."""
    from torch.distributed.tensor import DTensor

    grads = [p.grad for p in parameters if p.grad is not None]
    norm = torch.nn.utils.get_total_norm(grads)
    if isinstance(norm, DTensor):
        norm = norm.full_tensor()
    torch.nn.utils.clip_grads_with_norm_(parameters, max_norm, norm)


def broadcast(value: int, device: torch.device) -> int:
    """Rank 0's `value`, on every rank."""
    carrier = torch.tensor([value], dtype=torch.int64, device=device)
    dist.broadcast(carrier, src=0)
    return int(carrier.item())


def barrier() -> None:
    dist.barrier()


def stop() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()
