"""Batch corruptions: Gaussian noise per modality and whole-modality dropout.

Every function takes a batch ``{modality: Tensor [B, ...]}`` and returns a new
mapping (the inputs are never modified in place), so one corrupted batch can
be fed to every fusion strategy under comparison. Randomness comes from an
optional :class:`torch.Generator`; with one, the result is deterministic.
Modalities are visited in sorted name order, so the draws do not depend on
the order of the keys.

The dropout functions also return the per-sample presence mask
``{modality: bool [B]}`` (:obj:`True` = present) that
:meth:`wsfusion.fusion.FusionModule.forward` takes as ``mask=``.

:func:`noise_transform` and :func:`missing_transform` wrap them as the
``transform(inputs, index) -> (inputs, mask)`` that :func:`wsfusion.train.evaluate`
applies to every test batch (``compare``'s robustness and missing-modality columns).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence

import torch
from torch import Tensor

from wsfusion._validation import check_batch_sizes, check_fraction, check_probability

__all__ = ["gaussian_noise", "modality_dropout", "drop_modality", "noise_transform", "missing_transform"]


def _check_batch(inputs: object, what: str) -> int:
    if not isinstance(inputs, Mapping) or not inputs:
        raise ValueError(f"{what} takes a non-empty mapping modality -> tensor [B, ...], got {inputs!r}")
    for name, x in inputs.items():
        if not isinstance(x, Tensor) or x.dim() < 1:
            got = f"a {x.dim()}-d tensor" if isinstance(x, Tensor) else type(x).__name__
            raise ValueError(f"{what}: inputs[{name!r}] must be a tensor [B, ...], got {got}")
    return check_batch_sizes({m: x.shape[0] for m, x in inputs.items()}, what)


def _check_known(names: object, inputs: Mapping[str, Tensor], arg: str) -> None:
    for name in names:  # type: ignore[union-attr]
        if name not in inputs:
            raise ValueError(f"{arg} names unknown modality {name!r}; the batch has {sorted(inputs)}")


def _per_modality(value: object, inputs: Mapping[str, Tensor], arg: str, default: float) -> dict[str, object]:
    """A scalar for every modality, or a mapping (unlisted modalities get ``default``)."""
    if isinstance(value, Mapping):
        _check_known(value, inputs, arg)
        return {m: value.get(m, default) for m in inputs}
    return {m: value for m in inputs}


def _randn_like(x: Tensor, generator: torch.Generator | None) -> Tensor:
    device = generator.device if generator is not None else x.device
    return torch.randn(x.shape, generator=generator, device=device, dtype=x.dtype).to(x.device)


def _rand(shape: tuple[int, ...], like: Tensor, generator: torch.Generator | None) -> Tensor:
    device = generator.device if generator is not None else like.device
    return torch.rand(shape, generator=generator, device=device).to(like.device)


def _broadcast(keep: Tensor, x: Tensor) -> Tensor:
    return keep.view(-1, *([1] * (x.dim() - 1)))


def gaussian_noise(
    inputs: Mapping[str, Tensor],
    level: float | Mapping[str, float],
    *,
    scale: float | Mapping[str, float] | None = None,
    generator: torch.Generator | None = None,
) -> dict[str, Tensor]:
    r"""Add Gaussian noise to each modality at a level in [0, 1].

    .. math::
        \tilde{\mathbf{x}}_m = \mathbf{x}_m + \ell_m \, \sigma_m \, \boldsymbol{\epsilon},
        \qquad \boldsymbol{\epsilon} \sim \mathcal{N}(0, \mathbf{I})

    The noise std is the level :math:`\ell_m` times the modality's standard
    deviation :math:`\sigma_m`: ``scale[m]`` when given, else the std of
    ``inputs[m]`` over the whole batch. Level 0 returns the input unchanged,
    level 1 adds noise as strong as the signal (0 dB). For standardised
    data (:class:`~wsfusion.data.AVDigits`) ``scale=1.0`` makes the noise
    independent of the batch. With one generator seed, the noise at level
    :math:`\ell` is :math:`\ell` times the same draw, so accuracy-vs-level
    curves are smooth.

    Args:
        inputs (Mapping[str, Tensor]): The batch ``{m: (B, ...)}``, floating point.
        level (float or Mapping[str, float]): One level for every modality,
            or a level per modality (unlisted modalities are left clean).
        scale (float or Mapping[str, float], optional): Reference std
            :math:`\sigma_m`, one for all or per modality (unlisted: batch
            std). (default: :obj:`None`, the batch std)
        generator (torch.Generator, optional): Source of the noise.
            (default: :obj:`None`, torch's global RNG)

    Returns:
        dict[str, Tensor]: the noisy batch, same keys, shapes and dtypes.

    Raises:
        ValueError: a level outside [0, 1], a negative scale, a modality
            not in the batch.
    """
    _check_batch(inputs, "gaussian_noise")
    levels = {m: check_fraction(v, "level" if not isinstance(level, Mapping) else f"level[{m!r}]")
              for m, v in _per_modality(level, inputs, "level", 0.0).items()}
    scales = _per_modality(scale, inputs, "scale", None) if scale is not None else dict.fromkeys(inputs)
    for m, s in scales.items():
        if s is not None and (isinstance(s, bool) or not isinstance(s, (int, float)) or not math.isfinite(s) or s < 0):
            raise ValueError(f"scale for modality {m!r} must be a non-negative number, got {s!r}")
    out = dict(inputs)
    for m in sorted(inputs):
        x = inputs[m]
        if not x.is_floating_point():
            raise ValueError(f"gaussian_noise: inputs[{m!r}] must be floating point, got dtype {x.dtype}")
        if levels[m] == 0.0:
            continue
        sigma = scales[m] if scales[m] is not None else float(x.detach().float().std(unbiased=False))
        out[m] = x + (levels[m] * sigma) * _randn_like(x, generator)
    return out


def modality_dropout(
    inputs: Mapping[str, Tensor],
    p: float | Mapping[str, float],
    *,
    mask: Mapping[str, Tensor] | None = None,
    generator: torch.Generator | None = None,
) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
    r"""Train-time augmentation: drop whole modalities of random samples.

    Each modality :math:`m` of each sample is dropped independently with
    probability ``p[m]``; a dropped input is set to zero and its mask entry
    to :obj:`False`. A sample never loses every modality: if all of its
    (present) modalities were drawn, one of them, chosen uniformly at
    random, is kept.

    Args:
        inputs (Mapping[str, Tensor]): The batch ``{m: (B, ...)}``.
        p (float or Mapping[str, float]): Drop probability in [0, 1), one for
            every modality or one per modality (unlisted: never dropped).
        mask (Mapping[str, Tensor], optional): An existing presence mask
            ``{m: bool (B,)}`` to combine with (entries already
            :obj:`False` stay so). (default: :obj:`None`, all present)
        generator (torch.Generator, optional): Source of the draws.
            (default: :obj:`None`, torch's global RNG)

    Returns:
        (dict[str, Tensor], dict[str, Tensor]): the batch with dropped inputs
        zeroed, and the presence mask ``{m: bool (B,)}`` for every modality.

    Raises:
        ValueError: a probability outside [0, 1), a modality not in the
            batch, a malformed mask.
    """
    batch = _check_batch(inputs, "modality_dropout")
    probs = {m: check_probability(v, "p" if not isinstance(p, Mapping) else f"p[{m!r}]")
             for m, v in _per_modality(p, inputs, "p", 0.0).items()}
    present = _check_mask(mask, inputs, batch)
    names = sorted(inputs)
    ref = inputs[names[0]]
    draws = _rand((batch, len(names)), ref, generator)  # [B, M]
    threshold = torch.tensor([probs[m] for m in names], device=draws.device)
    before = torch.stack([present[m] for m in names], dim=1)  # [B, M]
    after = before & (draws >= threshold)
    # Always drawn (even when unused) so the generator advances the same way for every batch.
    pick = _rand((batch, len(names)), ref, generator).masked_fill(~before, -1.0).argmax(1)
    lost_all = before.any(1) & ~after.any(1)
    after = after | (torch.nn.functional.one_hot(pick, len(names)).bool() & lost_all[:, None])
    new_mask = {m: after[:, i] for i, m in enumerate(names)}
    return _apply_mask(inputs, new_mask), {m: new_mask[m] for m in inputs}


def drop_modality(
    inputs: Mapping[str, Tensor],
    modality: str | Sequence[str],
    *,
    mask: Mapping[str, Tensor] | None = None,
) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
    """Test-time evaluation: remove the named modality (or modalities) from every sample.

    The dropped inputs are set to zero (keeping the key, so models that
    need every key still run) and their mask entries to :obj:`False`; feed
    both to the model, e.g. ``model(x, mask=m)``, or delete the key for a
    fusion built with ``allow_missing=True``.

    Args:
        inputs (Mapping[str, Tensor]): The batch ``{m: (B, ...)}``.
        modality (str or Sequence[str]): The modality (or modalities) to drop.
        mask (Mapping[str, Tensor], optional): An existing presence mask
            to combine with. (default: :obj:`None`, all present)

    Returns:
        (dict[str, Tensor], dict[str, Tensor]): the batch with the modality
        zeroed, and the presence mask ``{m: bool (B,)}``.

    Raises:
        ValueError: an unknown modality, or dropping every modality.
    """
    batch = _check_batch(inputs, "drop_modality")
    names = [modality] if isinstance(modality, str) else list(modality)
    if not names:
        raise ValueError("modality must name at least one modality to drop, got an empty sequence")
    _check_known(names, inputs, "modality")
    if set(names) >= set(inputs):
        raise ValueError(f"modality {names} would drop every modality of the batch {sorted(inputs)}; keep at least one")
    present = _check_mask(mask, inputs, batch)
    new_mask = {m: torch.zeros_like(present[m]) if m in names else present[m] for m in inputs}
    return _apply_mask(inputs, new_mask), new_mask


#: An evaluation-time corruption: ``transform(inputs, index) -> (inputs, mask)``.
Transform = Callable[[Mapping[str, Tensor], Tensor], tuple[dict[str, Tensor], "dict[str, Tensor] | None"]]


def noise_transform(modality: str, level: float, seed: int) -> Transform:
    """:func:`gaussian_noise` at ``level`` on ``modality`` as an evaluation transform, drawn from a generator
    seeded with ``seed``: every model evaluated with the same seed and batch order sees the same noise."""
    generator = torch.Generator().manual_seed(seed)

    def transform(inputs: Mapping[str, Tensor], index: Tensor) -> tuple[dict[str, Tensor], None]:
        return gaussian_noise(inputs, {modality: level}, generator=generator), None

    return transform


def missing_transform(modality: str) -> Transform:
    """:func:`drop_modality` of ``modality`` for every sample as an evaluation transform (zeroed input and a
    :obj:`False` mask, which each fusion handles its own way). Unlike :func:`drop_modality`, a batch holding
    only ``modality`` is not refused: it comes back zeroed and masked out, what a unimodal model of that
    modality sees when it is missing."""

    def transform(inputs: Mapping[str, Tensor], index: Tensor) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
        if set(inputs) == {modality}:
            x = inputs[modality]
            return {modality: torch.zeros_like(x)}, {modality: torch.zeros(x.shape[0], dtype=torch.bool, device=x.device)}
        return drop_modality(inputs, modality)

    return transform


def _check_mask(mask: Mapping[str, Tensor] | None, inputs: Mapping[str, Tensor], batch: int) -> dict[str, Tensor]:
    ref = next(iter(inputs.values()))
    out = {m: torch.ones(batch, dtype=torch.bool, device=ref.device) for m in inputs}
    if mask is None:
        return out
    if not isinstance(mask, Mapping):
        raise ValueError(f"mask must be a mapping modality -> bool tensor [{batch}], got {type(mask).__name__}")
    _check_known(mask, inputs, "mask")
    for m, v in mask.items():
        if not isinstance(v, Tensor) or v.dtype != torch.bool or tuple(v.shape) != (batch,):
            got = f"{tuple(v.shape)} {v.dtype}" if isinstance(v, Tensor) else type(v).__name__
            raise ValueError(f"mask[{m!r}] must be a bool tensor of shape [{batch}], got {got}")
        out[m] = v.to(ref.device)
    return out


def _apply_mask(inputs: Mapping[str, Tensor], mask: Mapping[str, Tensor]) -> dict[str, Tensor]:
    out = dict(inputs)
    for m, x in inputs.items():
        keep = mask[m].to(x.device)
        if not bool(keep.all()):
            out[m] = torch.where(_broadcast(keep, x), x, torch.zeros((), dtype=x.dtype, device=x.device))
    return out
