"""``dstudy data info NAME`` and ``dstudy data preview NAME``: what a dataset is, where it comes from, how it looks."""
from __future__ import annotations

import argparse
import json

from training.errors import UserError
from training.vocabulary import DATASETS


def _human_bytes(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"


def describe(dataset) -> str:
    """Multi-line description: factors and sizes, observation shape, source, memory."""
    from numpy import prod

    lines = [f"dataset: {dataset.name}",
             f"observation shape: {tuple(dataset.observation_shape)} float32 in [0, 1]",
             f"latent factors ({dataset.num_factors}):"]
    for name, size in zip(dataset.factor_names, dataset.factors_num_values):
        lines.append(f"  {name:<12} {size}")
    nuisance = [i for i in range(len(dataset.factor_sizes)) if i not in dataset.latent_factor_indices]
    if nuisance:
        lines.append("observation (nuisance) factors, redrawn on every call:")
        for i in nuisance:
            lines.append(f"  {dataset.all_factor_names[i]:<12} {dataset.factor_sizes[i]}")
    lines.append(f"states: {int(prod(dataset.factor_sizes)):,}")
    lines.append(f"source: {json.dumps(dataset.source, sort_keys=True)}")
    held = dataset.memory_bytes()
    batch = 64 * int(prod(dataset.observation_shape)) * 4
    lines.append(f"memory: {_human_bytes(held)} held"
                 + (" (images rendered per batch)" if dataset.source.get("kind") == "procedural" else "")
                 + f"; a float32 batch of 64 is {_human_bytes(batch)}")
    return "\n".join(lines)


def _info(args: argparse.Namespace) -> int:
    from training.data import get_dataset

    print(describe(get_dataset(args.name, data_dir=args.data_dir)))
    return 0


def _preview(args: argparse.Namespace) -> int:
    from training.data import get_dataset
    from training.data.preview import save_preview

    if args.seed < 0:
        raise UserError(f"--seed must be non-negative, got {args.seed}")
    if args.columns < 2:
        raise UserError(f"--columns must be at least 2, got {args.columns}")
    dataset = get_dataset(args.name, data_dir=args.data_dir)
    out = args.out or f"preview_{args.name}.png"
    path = save_preview(dataset, out, seed=args.seed, max_columns=args.columns)
    print(f"wrote {path} (one row per factor: {', '.join(dataset.factor_names)})")
    return 0


def register(subparsers) -> None:
    """Add ``data info`` and ``data preview`` to the ``dstudy`` command line."""
    data = subparsers.add_parser("data", help="inspect the ground-truth datasets",
                                 description="Inspect the study's ground-truth datasets.")
    commands = data.add_subparsers(dest="data_command", metavar="SUBCOMMAND")
    data.set_defaults(func=lambda args: (data.print_help(), 2)[1])
    names = ", ".join(DATASETS)

    info = commands.add_parser("info", help="factors, sizes, source and memory of a dataset")
    info.add_argument("name", metavar="NAME", help=f"dataset name: {names}")
    info.add_argument("--data-dir", default=None,
                      help="data root (default: $DSTUDY_DATA, else $DISENTANGLEMENT_LIB_DATA)")
    info.set_defaults(func=_info)

    preview = commands.add_parser("preview", help="PNG grid traversing each factor from a random sample")
    preview.add_argument("name", metavar="NAME", help=f"dataset name: {names}")
    preview.add_argument("--out", default=None, help="output PNG (default: preview_NAME.png)")
    preview.add_argument("--seed", type=int, default=0, help="seed of the base sample (default 0)")
    preview.add_argument("--columns", type=int, default=10, help="most values shown per factor (default 10)")
    preview.add_argument("--data-dir", default=None,
                         help="data root (default: $DSTUDY_DATA, else $DISENTANGLEMENT_LIB_DATA)")
    preview.set_defaults(func=_preview)
