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


# ---- mask metrics on a dataset without masks ------------------------------------------------

def test_skipped_mask_metrics_are_the_mask_metrics_of_a_maskless_dataset():
    from ocdsl.data.static import skipped_mask_metrics

    metrics = ["mse", "ari_fg", "miou", "probe_ap", "otsu_iou", "ari", "miou_fg"]
    assert skipped_mask_metrics({"dataset": "image_folder", "path": "."}, metrics) == [
        "ari_fg", "miou", "otsu_iou", "ari", "miou_fg"]
    assert skipped_mask_metrics({"dataset": "tetrominoes"}, metrics) == []       # it has masks
    assert skipped_mask_metrics({"dataset": "image_folder"}, ["mse"]) == []
    assert skipped_mask_metrics({"dataset": "no_such_dataset"}, metrics) == []    # check_dataset's to report


_TINY = """\
[dims]
H = 64
W = 64

[model.inputs]
image = "B 3 H W"

[model.nodes.encoder]
op = "conv_stack"
input = "image"
channels = [4, 3]
kernel = 3
output = "B 3 H W"

[losses]
rec = "mse(encoder, image)"

[train]
loss = "rec"
optimizer = { name = "adam", lr = 1e-3 }
batch_size = 2
steps = 1

[data]
dataset = "{dataset}"
path = "."

[eval]
masks = "encoder"
reconstruction = "encoder"
metrics = ["mse", "ari_fg", "miou"]
"""


def _validate(spec, capsys, *sets):
    from ocdsl.cli import main

    argv = ["validate", str(spec)] + [a for s in sets for a in ("--set", s)]
    assert main(argv) == 0
    return capsys.readouterr().err


def test_validate_warns_at_the_metric_when_the_data_has_no_masks(tmp_path, capsys):
    spec = tmp_path / "s.toml"
    spec.write_text(_TINY.replace("{dataset}", "image_folder"))
    err = _validate(spec, capsys)
    assert (f"{spec}:31:19: warning: [eval.metrics[1]] evaluation set 'test' ([data], dataset 'image_folder') "
            "has no ground-truth masks: ari_fg, miou in eval.metrics will be skipped on it") in err
    assert "error" not in err


def test_the_warning_follows_the_key_set_last_and_eval_datasets(tmp_path, capsys):
    """A variant that picks the maskless dataset is told at its own line; an
    [[eval.datasets]] entry without masks gets its own warning; data with masks: none."""
    (tmp_path / "base.toml").write_text(_TINY.replace("{dataset}", "tetrominoes").replace(
        "H = 64\nW = 64", "H = 35\nW = 35").replace('path = "."\n', ""))
    assert "warning" not in _validate(tmp_path / "base.toml", capsys)
    variant = tmp_path / "v.toml"
    variant.write_text('extends = "base.toml"\n\n[dims]\nH = 64\nW = 64\n\n[data]\n'
                       'dataset = "image_folder"\npath = "."\n')
    err = _validate(variant, capsys)
    assert f"{variant}:8:1: warning: [data.dataset] evaluation set 'test' ([data]" in err
    err = _validate(tmp_path / "base.toml", capsys,
                    'eval.datasets=[{name = "photos", dataset = "image_folder", path = ".", resolution = 35}]')
    assert ("warning: [eval.datasets[0].dataset] evaluation set 'photos' (eval.datasets[0], dataset "
            "'image_folder') "
            "has no ground-truth masks: ari_fg, miou") in err
    assert "evaluation set 'test'" not in err


def test_validate_checks_the_eval_datasets_entries(tmp_path, capsys):
    """pipeline.check_data judges each [[eval.datasets]] entry too (they are read-only
    mappings in the typed config, which a dict test used to skip)."""
    from ocdsl.cli import main

    spec = tmp_path / "s.toml"
    spec.write_text(_TINY.replace("{dataset}", "image_folder") + '\n[[eval.datasets]]\nname = "x"\n'
                    'dataset = "tetrominos"\n')
    assert main(["validate", str(spec)]) == 2
    assert "[eval.datasets[0].dataset] unknown dataset 'tetrominos'" in capsys.readouterr().err


def test_every_shipped_specs_evaluation_datasets_fit_its_model():
    """The [[eval.datasets]] a spec has (its own or inherited) give images of its model's
    input shape: a 128 x 128 variant must not inherit the 35 x 35 real Tetrominoes entry.
    Judged from the registry (``path`` None), so also where the real files are absent."""
    from pathlib import Path

    from ocdsl.spec import load

    root = Path(__file__).resolve().parents[2] / "specs"
    bad = []
    for path in sorted([*root.glob("*.toml"), *root.glob("variants/*.toml")]):
        spec = load(path)
        image = tuple(d.value for d in spec.inputs["image"].resolve(spec.dims)[1:])
        for i, entry in enumerate(spec.eval_cfg.datasets):
            bad += [f"{path.name}: {d.message}" for d in check_dataset(entry, ("eval", "datasets", i), None, image,
                                                                      name=str(entry.get("name")))
                    if "gives images of shape" in d.message]
    assert not bad, "\n".join(bad)
