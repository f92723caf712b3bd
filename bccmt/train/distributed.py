"""torchrun / DistributedDataParallel plumbing: process group, device, rank-0 helpers.

A plain ``python -m bccmt.bin.train`` is a world of size 1 (no process group). Under torchrun
(RANK, WORLD_SIZE, LOCAL_RANK set) a group is initialised with nccl on GPU and gloo on CPU; the
rendezvous (id, endpoint) is torchrun's, given by ``--rdzv-id``/``--rdzv-endpoint`` or
``--standalone``.
"""

from __future__ import annotations

import dataclasses
import datetime
import logging
import os

import torch
import torch.distributed as dist

log = logging.getLogger(__name__)


@dataclasses.dataclass
class DistInfo:
    rank: int = 0  # global rank
    world_size: int = 1  # number of processes in the job
    local_rank: int = 0  # rank on this node (selects the GPU)
    local_world_size: int = 1  # processes on this node (divides the CPU threads)
    device: torch.device = dataclasses.field(default_factory=lambda: torch.device("cpu"))

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def setup(device: str = "auto") -> DistInfo:
    """Reads torchrun's environment, picks the device, initialises the process group if needed."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    info = DistInfo(rank=int(os.environ.get("RANK", "0")), world_size=world,
                    local_rank=int(os.environ.get("LOCAL_RANK", "0")),
                    local_world_size=int(os.environ.get("LOCAL_WORLD_SIZE", str(world))))
    use_cuda = torch.cuda.is_available() if device == "auto" else device.startswith("cuda")
    if use_cuda and not torch.cuda.is_available():
        raise RuntimeError("--device cuda requested but CUDA is not available")
    if use_cuda:
        torch.cuda.set_device(info.local_rank)
        info.device = torch.device("cuda", info.local_rank)
    if info.enabled and not dist.is_initialized():
        backend = "nccl" if use_cuda else "gloo"
        dist.init_process_group(backend=backend, timeout=datetime.timedelta(minutes=30))
        log.info("rank %d/%d (local %d) joined the %s group on %s, rendezvous id %s", info.rank,
                 world, info.local_rank, backend, info.device,
                 os.environ.get("TORCHELASTIC_RUN_ID", "?"))
    return info


def barrier(info: DistInfo) -> None:
    if info.enabled:
        if info.device.type == "cuda":
            dist.barrier(device_ids=[info.local_rank])
        else:
            dist.barrier()


def all_reduce_mean(values: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """Mean of a small float64 tensor over ranks (for logging), returned on the CPU."""
    if info.enabled:
        values = values.to(info.device, dtype=torch.float64)
        dist.all_reduce(values)
        values = values / info.world_size
    return values.cpu()


def broadcast_flag(flag: bool, info: DistInfo) -> bool:
    """Rank 0's boolean, on every rank (e.g. 'the teacher check failed')."""
    if not info.enabled:
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=info.device)
    dist.broadcast(t, 0)
    return bool(t.item())


def cleanup(info: DistInfo) -> None:
    if info.enabled and dist.is_initialized():
        dist.destroy_process_group()
