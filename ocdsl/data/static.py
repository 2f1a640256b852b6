"""What ``ocdsl run`` would find wrong with a dataset table, found without reading the data.

:func:`check_dataset` judges one ``[data]`` table or ``[[eval.datasets]]`` entry as
:func:`ocdsl.data.make_dataset` will: the dataset and variant are known, a dataset without a
generator has a ``path``, the path exists (a missing ``optional`` entry is only a warning)
and has a known format, ``max_objects`` needs a file, ``resolution`` / ``crop`` are valid,
and the images it gives (the registry's size after crop and resize, its channels) have the
shape of the model's ``image`` input. The errors are ``make_dataset``'s own where it has one
(the same UserError text), plus the shape check of the trainer (ocdsl/train/evaluate.py,
``check_data_fits``). ``ocdsl validate`` runs it on every dataset of a spec, so a spec that
validates does not fail at ``run`` for its data's names, paths or resolution.
:func:`skipped_mask_metrics` says which ``[eval] metrics`` a dataset without ground-truth
masks (an image folder) cannot score; evaluation skips them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from ocdsl.errors import Diagnostic, UserError, format_keypath
from ocdsl.data.registry import READERS, get_info

__all__ = ["check_dataset", "generator_problem", "format_problem", "skipped_mask_metrics"]


def generator_problem(info, max_objects: int | None, kp: tuple, spec_file: str) -> Diagnostic | None:
    """Why a table without ``path`` cannot use ``info``'s generator (it has none, or
    ``max_objects`` asks to filter a file), or None; :func:`ocdsl.data.make_dataset` raises
    it, ``ocdsl validate`` reports it."""
    if info.generator is None:
        return Diagnostic(
            f"dataset '{info.name}' has no built-in generator; it must be read from "
            + ("a folder" if info.reader in ("clevrtex", "image_folder") else "a file"),
            file=spec_file, keypath=kp + ("dataset",),
            hint=f"set `{format_keypath(kp + ('path',))}` to your copy of {info.name} "
                 + {"clevrtex": "(the clevrtex_<variant> folder)",
                    "clevr_scenes": "(the CLEVR_v1.0 folder or a scenes .json file)",
                    "image_folder": "(a folder of .png / .jpg images)"}.get(
                     info.reader, "(.tfrecords, EMORL .h5 or .npz)"))
    if max_objects is not None:
        return Diagnostic(
            f"`{format_keypath(kp + ('max_objects',))}` filters the scenes of a dataset file; "
            f"the {info.name} generator draws its own number of objects",
            file=spec_file, keypath=kp + ("max_objects",), hint="remove `max_objects` or set `path`")
    return None


def format_problem(path: Path, kp: tuple, spec_file: str) -> Diagnostic | None:
    """A file whose extension names no reader (``READERS``), or None."""
    if READERS.get(path.suffix.lower()) is None:
        return Diagnostic(f"cannot tell the format of {path} from its extension '{path.suffix}' "
                          f"(supported: {', '.join(sorted(READERS))})", file=spec_file, keypath=kp + ("path",))
    return None


def check_dataset(cfg: Mapping[str, Any], keypath: tuple, path: Path | None,
                  image_shape: tuple[int, int, int] | None, *, name: str = "train",
                  spec_file: str = "<spec>") -> list[Diagnostic]:
    """Problems of the dataset table ``cfg`` at ``keypath`` (errors, and a warning for an
    absent optional file). ``path``: its ``path`` resolved (None without one);
    ``image_shape``: the model input ``image`` as (C, H, W), or None. Diagnostics carry
    ``keypath`` (the caller places them in the file)."""
    from .preprocess import parse_options

    kp = tuple(keypath)
    if "dataset" not in cfg:
        return []  # the schema requires it
    try:
        info = get_info(cfg["dataset"], cfg.get("variant"), file=spec_file, keypath=kp + ("dataset",))
        prep, max_objects = parse_options(cfg, info, spec_file=spec_file, keypath=kp)
    except UserError as e:
        return list(e.diagnostics)
    out: list[Diagnostic] = []
    if path is None:
        problem = generator_problem(info, max_objects, kp, spec_file)
        if problem is not None:
            out.append(problem)
    else:
        problem = _path_problem(info, path, kp, cfg, spec_file)
        if problem is not None:
            return [problem]
    if image_shape is not None and not out:
        h, w = prep.output_hw((info.height, info.width))
        got = (info.channels, int(h), int(w))
        if got != tuple(image_shape):
            out.append(Diagnostic(f"dataset '{name}' gives images of shape {got} (C, H, W), but the model "
                                  f"input image is {tuple(image_shape)}", file=spec_file, keypath=kp,
                                  hint="set [dims] to the data's resolution, or set "
                                       f"`{format_keypath(kp + ('resolution',))}` to the model's"))
    return out


def _path_problem(info, path: Path, kp: tuple, cfg: Mapping[str, Any], spec_file: str) -> Diagnostic | None:
    where = format_keypath(kp + ("path",))
    if info.reader in ("clevrtex", "clevr_scenes", "image_folder") and path.is_dir():
        return None
    if info.reader == "image_folder":
        what = "not a folder" if path.exists() else "not found"
        return Diagnostic(f"image folder {what}: {path} (`{where}` = \"{cfg.get('path')}\")",
                          file=spec_file, keypath=kp + ("path",),
                          severity="warning" if cfg.get("optional", False) and not path.exists() else "error",
                          hint=f"point `{where}` at a folder of .png / .jpg images (relative to the spec's folder)")
    if not path.is_file():
        if cfg.get("optional", False):
            return Diagnostic(f"optional dataset file {path} does not exist: it will be skipped",
                              file=spec_file, keypath=kp + ("path",), severity="warning")
        what = "is a directory" if path.is_dir() else "not found"
        return Diagnostic(f"dataset file {what}: {path} (`{where}` = \"{cfg.get('path')}\")",
                          file=spec_file, keypath=kp + ("path",),
                          hint=f"point `{where}` at your copy of the dataset (relative to the spec's folder)")
    return format_problem(path, kp, spec_file)


def skipped_mask_metrics(cfg: Mapping[str, Any], metrics) -> list[str]:
    """The names among ``metrics`` (``[eval] metrics``) that need ground-truth masks (the
    catalogue's ``labels``, ocdsl/catalog.py: ari, ari_fg, miou, miou_fg, otsu_iou) when the
    dataset of the table ``cfg`` has none (``DatasetInfo.masks`` False: an image folder), in
    their order; ``[]`` when it has masks, or when its dataset does not resolve
    (:func:`check_dataset` reports that). Evaluation skips exactly these
    (ocdsl/train/evaluate.py)."""
    from ocdsl.catalog import needing

    if not isinstance(cfg, Mapping) or not isinstance(cfg.get("dataset"), str):
        return []
    try:
        info = get_info(cfg["dataset"], cfg.get("variant"))
    except UserError:
        return []
    if info.masks:
        return []
    return needing(metrics, "labels")
