"""Multi-process training under ``torchrun``: DistributedDataParallel, gloo on CPU, nccl on GPU."""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

#: Collectives that wait longer than this raise instead of hanging (a rank died or stalled).
DEFAULT_TIMEOUT_S = 120


@dataclass(frozen=True)
class DistEnv:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def from_environment() -> DistEnv:
    """Read ``RANK``/``WORLD_SIZE``/``LOCAL_RANK`` (set by ``torchrun``); a single process otherwise."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistEnv()
    return DistEnv(int(os.environ["RANK"]), world, int(os.environ.get("LOCAL_RANK", "0")))


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The module inside a :class:`~torch.nn.parallel.DistributedDataParallel` wrapper (``model`` itself otherwise)."""
    return model.module if isinstance(model, torch.nn.parallel.DistributedDataParallel) else model


def setup(env: DistEnv, device: torch.device, timeout_s: float | None = None) -> None:
    """Join the process group (gloo for CPU, nccl for CUDA) with a collective timeout."""
    if not env.enabled or dist.is_initialized():
        return
    timeout = datetime.timedelta(seconds=timeout_s or float(os.environ.get("WSFUSION_DIST_TIMEOUT", DEFAULT_TIMEOUT_S)))
    backend = "nccl" if device.type == "cuda" else "gloo"
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group(backend, rank=env.rank, world_size=env.world_size, timeout=timeout)


def teardown(env: DistEnv) -> None:
    if env.enabled and dist.is_initialized():
        dist.destroy_process_group()


def all_reduce_sum(values: torch.Tensor, env: DistEnv, what: str,
                   device: torch.device | str | None = None) -> torch.Tensor:
    """Sum ``values`` over ranks on ``device`` (the training device: NCCL reduces only CUDA
    tensors) and return the sum where ``values`` lives; a dead or stalled peer becomes a clear
    ``RuntimeError``."""
    if not env.enabled:
        return values
    work = values if device is None else values.to(device)
    try:
        dist.all_reduce(work)
    except Exception as exc:  # gloo raises RuntimeError/DistBackendError on a lost peer or timeout
        raise peer_failure(env, what, exc) from exc
    return work.to(values.device)


class CollectiveWatch:
    """Knows whether the collective that opens a training step failed, so that a lost peer is told
    apart from any other error by state, not by the exception's text (gloo reports a dead or
    stalled peer as a plain ``RuntimeError`` whose message varies).

    Every step starts with :meth:`sync_buffers` (used instead of DDP's own buffer broadcast): an
    all-reduce that needs every rank, so a peer that died or stalled since the last step makes it
    fail (after ``WSFUSION_DIST_TIMEOUT`` at most) and sets :attr:`failed`. A peer lost in the
    middle of a step's backward pass surfaces as DDP's own error, unchanged.
    """

    def __init__(self, env: DistEnv) -> None:
        self.env = env
        self.failed = False

    def sync_buffers(self, module: torch.nn.Module) -> None:
        """Every rank takes rank 0's buffers (e.g. BatchNorm running statistics), one all-reduce per dtype
        (the other ranks contribute zeros: a broadcast that every rank must join)."""
        by_dtype: dict[torch.dtype, list[torch.Tensor]] = {}
        for buffer in module.buffers():
            by_dtype.setdefault(buffer.dtype, []).append(buffer)
        for buffers in by_dtype.values():
            flat = torch.cat([b.detach().reshape(-1) for b in buffers])
            if self.env.rank != 0:
                flat.zero_()
            try:
                dist.all_reduce(flat)
            except Exception:
                self.failed = True
                raise
            with torch.no_grad():
                for b, value in zip(buffers, flat.split([b.numel() for b in buffers])):
                    b.copy_(value.view_as(b))


def peer_failure(env: DistEnv, what: str, exc: BaseException) -> RuntimeError:
    return RuntimeError(
        f"rank {env.rank}/{env.world_size}: {what} failed because another training process died or "
        f"stopped responding ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}). "
        "Check the other ranks' output for the original error; every rank stops instead of hanging."
    )
