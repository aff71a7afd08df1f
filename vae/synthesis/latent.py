"""Moving through latent space: linear and spherical interpolation between codes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from vae.model.checkpoints import LATENTS_FILE, read_latents

INTERPOLATION_MODES = ("lerp", "slerp")
# The Synthesise page offers sliders along at most this many main directions.
SLIDER_DIRECTIONS = 8


def lerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor | float) -> torch.Tensor:
    """Straight line from ``a`` to ``b``: codes (..., D), ``t`` broadcastable to (..., 1)."""
    t = torch.as_tensor(t, dtype=a.dtype)
    return a + (b - a) * t


def slerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor | float) -> torch.Tensor:
    """Great-circle path from ``a`` to ``b`` with the norm interpolated linearly.

    Under a Gaussian prior most mass lies near a shell, and a straight line between two
    codes cuts through the low-norm interior; slerp keeps to the shell. Nearly parallel
    codes fall back to lerp. Shapes as in :func:`lerp`.
    """
    t = torch.as_tensor(t, dtype=a.dtype)
    na, nb = a.norm(dim=-1, keepdim=True), b.norm(dim=-1, keepdim=True)
    ua, ub = a / na.clamp(min=1e-12), b / nb.clamp(min=1e-12)
    cos = (ua * ub).sum(dim=-1, keepdim=True).clamp(-1.0, 1.0)
    omega = torch.arccos(cos)
    sin = torch.sin(omega)
    safe = sin.abs() > 1e-4
    wa = torch.where(safe, torch.sin((1 - t) * omega) / sin.clamp(min=1e-12), 1 - t)
    wb = torch.where(safe, torch.sin(t * omega) / sin.clamp(min=1e-12), t)
    direction = wa * ua + wb * ub
    direction = direction / direction.norm(dim=-1, keepdim=True).clamp(min=1e-12)
    return direction * (na + (nb - na) * t)


def interpolation_path(
    a: torch.Tensor, b: torch.Tensor, steps: int, mode: str = "lerp"
) -> torch.Tensor:
    """``steps`` codes from ``a`` to ``b`` inclusive: (D,), (D,) -> (steps, D)."""
    if steps < 2:
        raise ValueError(f"steps={steps}: an interpolation needs at least 2 steps (A and B)")
    if mode not in INTERPOLATION_MODES:
        raise ValueError(f"mode={mode!r}: choose one of {INTERPOLATION_MODES}")
    t = torch.linspace(0.0, 1.0, steps, dtype=a.dtype).unsqueeze(-1)  # (steps, 1)
    fn = slerp if mode == "slerp" else lerp
    return fn(a.unsqueeze(0), b.unsqueeze(0), t)


def principal_directions(means: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Top ``k`` principal directions of latent means (N, D).

    Returns:
        (centre (D,), directions (k, D) unit rows, spread (k,) standard deviations).
    """
    centre = means.mean(axis=0)
    _, s, vt = np.linalg.svd(means - centre, full_matrices=False)
    k = min(k, vt.shape[0])
    spread = s[:k] / np.sqrt(max(len(means) - 1, 1))
    return centre.astype(np.float32), vt[:k].astype(np.float32), spread.astype(np.float32)


def along_directions(
    centre: np.ndarray, directions: np.ndarray, spread: np.ndarray, amounts: np.ndarray
) -> np.ndarray:
    """The code ``centre + sum_k amounts[k] * spread[k] * directions[k]``.

    Args:
        centre (D,), directions (k, D), spread (k,): from :func:`principal_directions`.
        amounts (k,): how far along each direction, in standard deviations of the data.
    Returns:
        (D,) float32 code.
    """
    amounts = np.asarray(amounts, dtype=np.float32)
    return (centre + (amounts * spread) @ directions).astype(np.float32)


def to_directions(
    code: np.ndarray, centre: np.ndarray, directions: np.ndarray, spread: np.ndarray
) -> np.ndarray:
    """Inverse of :func:`along_directions` for the part of ``code`` (D,) the directions span:
    (k,) amounts in standard deviations."""
    return ((np.asarray(code, np.float32) - centre) @ directions.T) / np.maximum(spread, 1e-8)


def latent_axes(
    means: np.ndarray | None, latent_dim: int, k: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The axes sliders move along: the top ``k`` principal directions of a checkpoint's
    latent means (N, D), or without them (None, or a single clip) the prior's own axes,
    centred at 0 with unit spread. Returns as :func:`principal_directions`."""
    if means is not None and len(means) > 1:
        return principal_directions(np.asarray(means, dtype=np.float32), k)
    eye = np.eye(latent_dim, dtype=np.float32)[: min(k, latent_dim)]
    return np.zeros(latent_dim, np.float32), eye, np.ones(len(eye), np.float32)


def checkpoint_axes(
    path: str | Path, latent_dim: int, k: int | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The slider axes of the checkpoint folder ``path``: :func:`latent_axes` of its
    latents.npz means, or of the prior when it has none; ``k`` defaults to
    ``min(SLIDER_DIRECTIONS, latent_dim)``. One definition for the Synthesise page, the
    CLI's ``decode`` and exports. Returns as :func:`principal_directions`."""
    k = min(SLIDER_DIRECTIONS, latent_dim) if k is None else k
    means = (
        read_latents(path, latent_dim)["means"] if (Path(path) / LATENTS_FILE).is_file() else None
    )
    return latent_axes(means, latent_dim, k)


def parse_amounts(text: str, k: int) -> np.ndarray:
    """``"1=2.0,3=-1"`` (1-based direction = standard deviations) -> amounts (k,)."""
    amounts = np.zeros(k, np.float32)
    for part in filter(None, (p.strip() for p in text.split(","))):
        index, sep, value = part.partition("=")
        try:
            i, amount = int(index), float(value)
        except ValueError:
            i, amount, sep = 0, 0.0, ""
        if not sep or not 1 <= i <= k:
            raise ValueError(
                f"{part!r}: write DIRECTION=AMOUNT with DIRECTION in 1..{k}, e.g. 1=2.0"
            )
        amounts[i - 1] = amount
    return amounts
