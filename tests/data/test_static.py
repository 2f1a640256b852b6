"""ocdsl/data/static.py: what `run` would find wrong with a dataset table, found by
`validate` without reading the data."""

from __future__ import annotations

from ocdsl.data.static import check_dataset

KP = ("data",)
TETRO = (3, 35, 35)


def _messages(diags):
    return [(d.severity, d.keypath, d.message) for d in diags]


def test_a_generated_dataset_of_the_model_resolution_passes():
    assert check_dataset({"dataset": "tetrominoes"}, KP, None, TETRO) == []
    assert check_dataset({"dataset": "tetrominoes", "resolution": 64}, KP, None, (3, 64, 64)) == []


def test_unknown_dataset_has_a_hint():
    (d,) = check_dataset({"dataset": "tetrominos"}, KP, None, TETRO)
    assert d.keypath == ("data", "dataset") and "unknown dataset 'tetrominos'" in d.message
    assert "tetrominoes" in (d.hint or "")


def test_resolution_mismatch_is_found_before_reading():
    (d,) = check_dataset({"dataset": "multi_dsprites"}, KP, None, TETRO)
    assert d.severity == "error" and d.keypath == KP
    assert "gives images of shape (3, 64, 64) (C, H, W), but the model input image is (3, 35, 35)" in d.message


def test_a_dataset_without_generator_needs_a_path():
    (d,) = check_dataset({"dataset": "clevr_with_masks"}, KP, None, (3, 128, 128))
    assert "has no built-in generator" in d.message and d.keypath == ("data", "dataset")


def test_missing_files(tmp_path):
    missing = tmp_path / "nope.npz"
    (d,) = check_dataset({"dataset": "tetrominoes", "path": "nope.npz"}, KP, missing, TETRO)
    assert d.severity == "error" and d.keypath == ("data", "path") and "not found" in d.message
    kp = ("eval", "datasets", 0)
    (w,) = check_dataset({"dataset": "tetrominoes", "path": "nope.npz", "optional": True, "name": "real"}, kp,
                         missing, TETRO)
    assert w.severity == "warning" and "will be skipped" in w.message


def test_unknown_extension(tmp_path):
    f = tmp_path / "data.bin"
    f.write_bytes(b"x")
    (d,) = check_dataset({"dataset": "tetrominoes", "path": "data.bin"}, KP, f, TETRO)
    assert "cannot tell the format" in d.message


def test_max_objects_needs_a_file():
    (d,) = check_dataset({"dataset": "tetrominoes", "max_objects": 2}, KP, None, TETRO)
    assert d.keypath == ("data", "max_objects")
