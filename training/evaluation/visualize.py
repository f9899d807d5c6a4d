"""Pictures of a trained model: a latent traversal image and a reconstruction grid (PNG, written with Pillow).

* Latent traversal (as disentanglement_lib's visualisations show it): for each of a few inputs, the encoder mean is
  taken as the base code; each row varies one latent dimension over ``num_values`` evenly spaced values in
  [-2, 2] (the prior's bulk) with the other dimensions held at the base code, and shows the decoded means
  (sigmoid of the logits). Blocks of different inputs are stacked vertically, separated by a gap; the first column of
  every block shows the input itself.
* Reconstruction grid: pairs of rows, originals above their reconstructions (decoded mean of the encoder mean).

Images are (H, W, C) arrays in [0, 1]; one channel is written as greyscale, three as RGB.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from training.models.architecture import GaussianVAE

GAP = 4  # pixels between tiles
BACKGROUND = 0.5


def tile(images: np.ndarray, gap: int = GAP, background: float = BACKGROUND) -> np.ndarray:
    """Grid of images: ``images`` (rows, cols, H, W, C) in [0, 1] -> one (H', W', C) array with ``gap`` pixels between."""
    rows, cols, h, w, c = images.shape
    out = np.full((rows * h + (rows - 1) * gap, cols * w + (cols - 1) * gap, c), background, dtype=np.float32)
    for r in range(rows):
        for k in range(cols):
            out[r * (h + gap):r * (h + gap) + h, k * (w + gap):k * (w + gap) + w] = images[r, k]
    return out


def save_png(image: np.ndarray, path) -> Path:
    """Write an (H, W, 1 or 3) array in [0, 1] as an 8-bit PNG; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.clip(np.rint(np.asarray(image) * 255.0), 0, 255).astype(np.uint8)
    mode = "L" if pixels.shape[2] == 1 else "RGB"
    Image.fromarray(pixels[:, :, 0] if mode == "L" else pixels, mode=mode).save(path)
    return path


def _decode_mean(vae: GaussianVAE, z: torch.Tensor) -> np.ndarray:
    """Decoded Bernoulli means (n, 64, 64, C) for codes ``z`` (n, L)."""
    return torch.sigmoid(vae.decoder(z)).permute(0, 2, 3, 1).float().cpu().numpy()


def latent_traversal(vae: GaussianVAE, inputs: np.ndarray, num_values: int = 9, limit: float = 2.0) -> np.ndarray:
    """Traversal image (H', W', C) for ``inputs`` (k, 64, 64, C); layout in the module docstring."""
    device = next(vae.parameters()).device
    values = torch.linspace(-limit, limit, num_values, device=device)
    blocks = []
    with torch.inference_mode():
        x = torch.from_numpy(np.ascontiguousarray(inputs, np.float32)).to(device).permute(0, 3, 1, 2)
        means, _ = vae.encoder(x)
        for i in range(inputs.shape[0]):
            codes = means[i].repeat(vae.num_latent * num_values, 1)
            for d in range(vae.num_latent):
                codes[d * num_values:(d + 1) * num_values, d] = values
            decoded = _decode_mean(vae, codes).reshape(vae.num_latent, num_values, 64, 64, -1)
            original = np.repeat(inputs[i][None, None].astype(np.float32), vae.num_latent, axis=0)
            original[1:] = BACKGROUND
            blocks.append(tile(np.concatenate([original, decoded], axis=1)))
    spacer = np.full((3 * GAP, blocks[0].shape[1], blocks[0].shape[2]), 1.0, np.float32)
    parts = []
    for b in blocks:
        parts.extend([b, spacer])
    return np.concatenate(parts[:-1], axis=0)


def reconstruction_grid(vae: GaussianVAE, inputs: np.ndarray, per_row: int = 8) -> np.ndarray:
    """Reconstruction grid (H', W', C): rows of up to ``per_row`` inputs, each above its reconstruction."""
    device = next(vae.parameters()).device
    with torch.inference_mode():
        x = torch.from_numpy(np.ascontiguousarray(inputs, np.float32)).to(device).permute(0, 3, 1, 2)
        means, _ = vae.encoder(x)
        recon = _decode_mean(vae, means)
    n = inputs.shape[0]
    rows = -(-n // per_row)
    pad = rows * per_row - n
    originals = np.concatenate([inputs.astype(np.float32), np.full((pad,) + inputs.shape[1:], BACKGROUND, np.float32)])
    recon = np.concatenate([recon, np.full((pad,) + inputs.shape[1:], BACKGROUND, np.float32)])
    grid = np.stack([originals.reshape(rows, per_row, *inputs.shape[1:]),
                     recon.reshape(rows, per_row, *inputs.shape[1:])], axis=1).reshape(2 * rows, per_row,
                                                                                       *inputs.shape[1:])
    return tile(grid)


def save_latent_traversal(vae: GaussianVAE, inputs: np.ndarray, path, num_values: int = 9) -> Path:
    """Write :func:`latent_traversal` of ``inputs`` to ``path`` (PNG)."""
    return save_png(latent_traversal(vae, inputs, num_values=num_values), path)


def save_reconstruction_grid(vae: GaussianVAE, inputs: np.ndarray, path) -> Path:
    """Write :func:`reconstruction_grid` of ``inputs`` to ``path`` (PNG)."""
    return save_png(reconstruction_grid(vae, inputs), path)
