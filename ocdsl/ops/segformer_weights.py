"""Loading a Segformer's MiT encoder from a local Hugging Face checkpoint directory
(:meth:`ocdsl.ops.segformer.Segformer.load_pretrained`): the directory, its config.json and
every tensor are checked against the variant, with an error saying what differs. Nothing is
downloaded (``local_files_only``); transformers is imported only when weights are loaded.
"""

from __future__ import annotations

import json
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from ocdsl.ops.segformer import COMMON, VARIANTS, WEIGHT_FILES, segformer_config

__all__ = ["load_mit_encoder"]


def load_mit_encoder(path: Path, variant: str, channels: int):
    """The ``transformers.SegformerModel`` of ``variant`` (for a head of ``channels`` output
    channels) holding the encoder weights in ``path``; raises as
    :meth:`~ocdsl.ops.segformer.Segformer.load_pretrained` documents."""
    want = VARIANTS[variant]
    expected = (f"a local checkpoint directory of a mit-{variant} encoder "
                f"(config.json + model.safetensors or pytorch_model.bin)")
    if not path.exists():
        raise FileNotFoundError(f"segformer pretrained weights: expected {expected}, "
                                f"got {path}: no such file or directory")
    if not path.is_dir():
        raise FileNotFoundError(f"segformer pretrained weights: expected {expected}, "
                                f"got {path}: a file, not a directory")
    if not any((path / f).is_file() for f in WEIGHT_FILES):
        found = sorted(p.name for p in path.iterdir())
        shown = ", ".join(found[:8]) + (", ..." if len(found) > 8 else "") or "nothing"
        raise FileNotFoundError(f"segformer pretrained weights: expected one of "
                                f"{', '.join(WEIGHT_FILES)} in {path}, found {shown}")
    _check_checkpoint_config(path, variant)

    from transformers import SegformerModel
    config = segformer_config(variant, channels)
    try:
        with _quiet_transformers():
            encoder, info = SegformerModel.from_pretrained(
                str(path), config=config, local_files_only=True, output_loading_info=True,
                ignore_mismatched_sizes=True)     # reported below, with shapes
    except (RuntimeError, ValueError, OSError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ValueError(f"segformer pretrained weights in {path}: expected the weights "
                         f"of a mit-{variant} encoder, loading failed: {first}") from e
    problems = []
    missing = sorted(info.get("missing_keys") or ())
    if missing:
        problems.append(f"{len(missing)} encoder tensors missing (e.g. "
                        f"{', '.join(missing[:2])})")
    # Unused classifier / decode-head tensors are expected; extra encoder tensors
    # (more blocks than this variant has) are not.
    extra = sorted(k for k in info.get("unexpected_keys") or ()
                   if k.startswith(("stages.", "encoder.")))
    if extra:
        problems.append(f"{len(extra)} encoder tensors this variant does not have (e.g. "
                        f"{', '.join(extra[:2])})")
    mismatched = list(info.get("mismatched_keys") or ())
    if mismatched:
        key, got, exp = mismatched[0]
        problems.append(f"{len(mismatched)} tensors of another shape (e.g. {key}: "
                        f"expected {tuple(exp)}, found {tuple(got)})")
    problems += [str(m) for m in info.get("error_msgs") or ()]
    if problems:
        raise ValueError(f"segformer pretrained weights in {path}: expected the weights "
                         f"of a mit-{variant} encoder (hidden sizes "
                         f"{list(want['hidden_sizes'])}, depths {list(want['depths'])}), "
                         f"found {'; '.join(problems)}")
    return encoder


def _check_checkpoint_config(path: Path, variant: str) -> None:
    """Where ``path`` holds a config.json: it is a Segformer config of ``variant``'s
    encoder (hidden sizes, depths, heads). Raises ValueError naming what differs."""
    want = VARIANTS[variant]
    cfg_file = path / "config.json"
    if not cfg_file.is_file():
        return      # the weights alone are checked tensor by tensor
    try:
        cfg = json.loads(cfg_file.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ValueError(f"segformer pretrained weights: {cfg_file} is not valid JSON "
                         f"({e})") from e
    if cfg.get("model_type", "segformer") != "segformer":
        raise ValueError(f"segformer pretrained weights: expected a Segformer checkpoint "
                         f"(model_type 'segformer') in {path}, found model_type "
                         f"{cfg.get('model_type')!r}")
    found = {k: cfg.get(k) for k in ("hidden_sizes", "depths", "num_attention_heads")}
    expect = {"hidden_sizes": list(want["hidden_sizes"]), "depths": list(want["depths"]),
              "num_attention_heads": list(COMMON["num_attention_heads"])}
    diff = [k for k in expect if found[k] is not None and list(found[k]) != expect[k]]
    if diff:
        like = [v for v, s in VARIANTS.items()
                if list(s["hidden_sizes"]) == list(found["hidden_sizes"] or [])
                and list(s["depths"]) == list(found["depths"] or [])]
        hint = f" (a mit-{like[0]} checkpoint: set variant = \"{like[0]}\")" if like else ""
        raise ValueError(
            f"segformer pretrained weights in {path}: expected a mit-{variant} encoder "
            f"({', '.join(f'{k} {expect[k]}' for k in diff)}), found "
            f"{', '.join(f'{k} {list(found[k])}' for k in diff)}{hint}")


@contextmanager
def _quiet_transformers() -> Iterator[None]:
    """Silence transformers' load report (unused classifier weights are expected here);
    every problem it would warn about is checked and raised by the caller instead."""
    from transformers.utils import logging as hf_logging
    level, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)
        if bars:
            hf_logging.enable_progress_bar()
