"""`ocdsl export`: a run's weights as safetensors, equal to the checkpoint's, with the spec
in the metadata, read back into a model of the same spec; wrong inputs exit 2."""

import pytest
import torch
from safetensors.torch import load_file

from ocdsl.cli import main
from ocdsl.pipeline import build
from ocdsl.train.export import load_weights
from tests.graph.test_graph import TINY, write

SIZE = ["--set", "dims.H=35", "--set", "dims.W=35"]      # the Tetrominoes generator's resolution


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("export")
    spec = write(tmp, TINY)
    out = tmp / "run"
    assert main(["run", str(spec), "--steps", "1", "--no-progress", "--no-compile", "--out", str(out), *SIZE]) == 0
    return spec, out


def test_export_writes_the_checkpoint_weights_with_the_spec_in_the_metadata(run, capsys):
    spec, out = run
    assert main(["export", str(spec), str(out), *SIZE]) == 0
    path = out / "model.safetensors"
    assert f"wrote {path}" in capsys.readouterr().out
    weights = load_file(str(path))
    ckpt = torch.load(out / "checkpoint.pt", weights_only=True)["model"]
    assert weights.keys() == ckpt.keys()
    assert all(torch.equal(weights[k], ckpt[k]) for k in ckpt)
    c = build(spec, overrides=[s for s in SIZE if s != "--set"])
    model = c.instantiate(torch_compile=False)
    meta = load_weights(model, path)
    assert meta["spec"] == c.spec.name and meta["spec_hash"] == c.spec.source_hash and meta["step"] == "1"
    assert all(torch.equal(model.state_dict()[k], ckpt[k]) for k in ckpt)


def test_export_refuses_another_spec_and_a_folder_as_output(run, capsys, tmp_path):
    spec, out = run
    assert main(["export", str(spec), str(out), *SIZE, "--set", "dims.D=12"]) == 2
    err = capsys.readouterr().err
    assert "checkpoint does not match the spec" in err and "Traceback" not in err
    (tmp_path / "folder").mkdir()
    assert main(["export", str(spec), str(out), *SIZE, "-o", str(tmp_path / "folder")]) == 2
    err = capsys.readouterr().err
    assert "is a folder" in err and "Traceback" not in err


def test_weights_of_another_spec_do_not_load(run, tmp_path):
    spec, out = run
    assert main(["export", str(spec), str(out), *SIZE, "-o", str(tmp_path / "w.safetensors")]) == 0
    other = build(spec, overrides=["dims.H=35", "dims.W=35", "dims.D=12"]).instantiate(torch_compile=False)
    from ocdsl.errors import UserError
    with pytest.raises(UserError, match="do not fit the model"):
        load_weights(other, tmp_path / "w.safetensors")
