"""DeepMind multi-object TFRecords, read without TensorFlow.

Format (docs/formats.md, DeepMind multi-object TFRecords;
github.com/google-deepmind/multi_object_datasets): one ``tf.train.Example`` per scene in a
GZIP-compressed TFRecord file. ``image`` and ``mask`` are bytes_lists of ``prod(shape)``
separate one-byte strings (decoded by DeepMind with ``decode_raw(uint8)``); per-object
factors are float_lists; CLEVR's ``size``/``material``/``shape``/``color`` are bytes_lists
of one uint8 code per object.
Shapes are not stored in the file: they come from the dataset's ``tf_shapes`` in
:mod:`ocdsl.data.registry`.

Framing and protobuf parsing are done by the PyPI ``tfrecord`` package (1.14.6). Two
facts about it (checked here): a bytes_list of n > 1 items comes back as a numpy ``S1``
array, which we reinterpret with ``.view(np.uint8)`` (never ``tolist()``/``b"".join``:
numpy drops ``b"\\x00"`` items there); a bytes_list of one item comes back as ``bytes``.
It does not verify the record CRCs.

Cost: a CLEVR record is ~3 MB serialized and takes ~0.2 s to parse; for training on a
full dataset convert it once (:func:`ocdsl.data.convert.tfrecord_to_hdf5`).
"""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path
from typing import Iterator

import numpy as np

from ocdsl.errors import Diagnostic, UserError

from .masks import masks_to_labels
from .registry import DatasetInfo

__all__ = ["iter_tfrecord", "read_tfrecord", "write_tfrecord"]


def _compression(path: Path) -> str | None:
    with open(path, "rb") as f:
        magic = f.read(2)
    return "gzip" if magic == b"\x1f\x8b" else None


def _as_uint8(value) -> np.ndarray:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return np.frombuffer(bytes(value), dtype=np.uint8)
    arr = np.asarray(value)
    if arr.dtype.kind == "S":
        if arr.dtype.itemsize != 1:
            raise ValueError(f"bytes_list items of {arr.dtype.itemsize} bytes, expected 1")
        return arr.view(np.uint8)
    return arr


def _decode(raw: dict, info: DatasetInfo) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    for key in ("image", "mask"):
        if key not in raw:
            raise ValueError(f"record has no '{key}' feature (features: {sorted(raw)})")
    # image and mask first: a shape mismatch there is the clearest message
    for key in ("image", "mask", *(k for k in raw if k not in ("image", "mask"))):
        value = raw[key]
        if isinstance(value, (bytes, bytearray, memoryview)) or (
            isinstance(value, np.ndarray) and value.dtype.kind == "S"
        ):
            arr = _as_uint8(value)
        else:
            arr = np.asarray(value)
        shape = info.tf_shapes.get(key)
        if shape is not None:
            want = int(np.prod(shape))
            if arr.size != want:
                raise ValueError(
                    f"feature '{key}' has {arr.size} values, expected {want} = "
                    f"{'x'.join(map(str, shape))} for dataset '{info.name}'"
                )
            arr = arr.reshape(shape)
        out[key] = arr
    if info.mask_layout == "HWK1":  # Multi-dSprites: stored [H, W, K, 1] -> [K, H, W, 1]
        out["mask"] = np.ascontiguousarray(out["mask"].transpose(2, 0, 1, 3))
    return out


def _corrupt(path: Path, err: Exception, index: int) -> UserError:
    return UserError(
        Diagnostic(
            f"cannot read TFRecord file {path} (record {index}): {type(err).__name__}: {err}",
            file=str(path),
            hint="is it a DeepMind multi_object_datasets .tfrecords file of the dataset named "
            "in `data.dataset`, and complete?",
        )
    )


def iter_tfrecord(path: str | Path, info: DatasetInfo, *, limit: int | None = None) -> Iterator[dict]:
    """Yield one dict per record of a DeepMind TFRecord file (GZIP or uncompressed).

    Each dict: ``image`` uint8 [H, W, C]; ``mask`` uint8 [K, H, W, 1] values 0/255, slot 0
    = background (DeepMind canonical layout, Multi-dSprites transposed to it); every
    other feature present in the file as a numpy array (float32 factors reshaped per
    ``info.tf_shapes``, e.g. ``visibility`` [K], ``color`` [K, 3]; bytes features uint8).
    A truncated or corrupt file raises :class:`UserError` naming it.
    """
    from tfrecord.reader import tfrecord_loader  # imported here: pulls in protobuf

    path = Path(path)
    index = 0
    try:
        comp = _compression(path)
        loader = tfrecord_loader(str(path), None, None, compression_type=comp)
        for raw in loader:
            if limit is not None and index >= limit:
                break
            yield _decode(raw, info)
            index += 1
    except UserError:
        raise
    except (OSError, EOFError, RuntimeError, ValueError, KeyError, TypeError, zlib.error,
            gzip.BadGzipFile) as err:
        raise _corrupt(path, err, index) from err
    except Exception as err:  # protobuf DecodeError and friends
        if type(err).__module__.startswith("google.protobuf"):
            raise _corrupt(path, err, index) from err
        raise


def read_tfrecord(path: str | Path, info: DatasetInfo, *, limit: int | None = None,
                  keep=None, transform=None) -> dict[str, np.ndarray]:
    """Decode records into stacked arrays, keeping the first ``limit`` (all when None).

    Returns ``image`` uint8 [N, H, W, C], ``label`` uint8 [N, H, W] (label map from the
    K masks, :func:`ocdsl.data.masks.masks_to_labels`), and each other feature stacked
    [N, ...] (only features present in every record). Memory: the whole result is held
    in RAM (labels, not the K masks, to save K-fold).

    ``keep(label [H, W]) -> bool`` drops records (``limit`` counts kept ones);
    ``transform(image [1, H, W, C], label [1, H, W]) -> (image, label)`` is applied to each
    kept record as it is read (crop/resize: a full CLEVR file never sits in RAM uncropped).
    """
    images, labels, extra = [], [], {}
    for rec in iter_tfrecord(path, info):
        label = masks_to_labels(rec.pop("mask"))
        if keep is not None and not keep(label):
            continue
        image = rec.pop("image")
        if transform is not None:
            image, label = transform(image[None], label[None])
            image, label = image[0], label[0]
        images.append(image)
        labels.append(label)
        for k, v in rec.items():
            extra.setdefault(k, []).append(v)
        if limit is not None and len(images) >= limit:
            break
    n = len(images)
    if n == 0:
        what = "no records" if keep is None else "no records that pass the filter (max_objects)"
        raise UserError(Diagnostic(f"TFRecord file {path} holds {what}", file=str(path)))
    out = {"image": np.stack(images), "label": np.stack(labels)}
    for k, vs in extra.items():
        if len(vs) == n:
            out[k] = np.stack(vs)
    return out


def write_tfrecord(path: str | Path, records: list[dict], info: DatasetInfo, *, gzip_: bool = True) -> None:
    """Write records in DeepMind's feature layout (for fixtures and tests).

    Each record: ``image`` uint8 [H,W,C], ``mask`` uint8 [K,H,W,1] (canonical layout;
    stored [H,W,K,1] for Multi-dSprites), float factors, uint8 arrays for bytes features.
    uint8 arrays become bytes_lists of one-byte strings, as in the real files. Framing
    and CRCs are written by the ``tfrecord`` package.
    """
    import tempfile

    from tfrecord.writer import TFRecordWriter

    path = Path(path)
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "raw.tfrecords"
        w = TFRecordWriter(str(raw))
        for rec in records:
            datum = {}
            for key, arr in rec.items():
                arr = np.asarray(arr)
                if key == "mask" and info.mask_layout == "HWK1":
                    arr = arr.transpose(1, 2, 0, 3)
                if arr.dtype == np.uint8:
                    datum[key] = ([bytes([v]) for v in arr.ravel().tolist()], "byte")
                else:
                    datum[key] = (arr.astype(np.float32).ravel().tolist(), "float")
            w.write(datum)
        w.close()
        data = raw.read_bytes()
    if gzip_:
        with gzip.open(path, "wb") as f:
            f.write(data)
    else:
        path.write_bytes(data)
