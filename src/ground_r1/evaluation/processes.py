"""The processes of an evaluation launch (``torchrun``): this one's place, and the barrier rank 0 waits at before
merging the shards every process wrote."""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass

__all__ = ["DistContext", "barrier", "init_distributed", "shutdown"]


@dataclass(frozen=True)
class DistContext:
    """This process's place in a ``torchrun`` launch (RANK / WORLD_SIZE / LOCAL_RANK; 0 / 1 / 0 without one)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def device(self) -> str:
        import torch

        return f"cuda:{self.local_rank}" if torch.cuda.is_available() else "cpu"


def init_distributed(timeout_minutes: float = 600.0) -> DistContext:
    """Read the launch environment; with WORLD_SIZE > 1 start a process group (nccl on GPUs, else gloo) so
    that rank 0 can wait for every shard before merging. The timeout is long: shards finish at different times."""
    ctx = DistContext(
        int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)), int(os.environ.get("LOCAL_RANK", 0))
    )
    if ctx.world_size > 1:
        import torch
        import torch.distributed as dist

        if not dist.is_initialized():
            backend = "nccl" if torch.cuda.is_available() else "gloo"
            if backend == "nccl":
                torch.cuda.set_device(ctx.local_rank)
            dist.init_process_group(backend, timeout=datetime.timedelta(minutes=timeout_minutes))
    return ctx


def barrier(ctx: DistContext) -> None:
    """Wait for every process (no-op for a single process)."""
    if ctx.world_size > 1:
        import torch.distributed as dist

        dist.barrier()


def shutdown(ctx: DistContext) -> None:
    if ctx.world_size > 1:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()
