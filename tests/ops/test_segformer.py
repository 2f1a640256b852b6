"""segformer (AST-Seg's backbone) and unet_features (the Table 8 ablation): size rules,
variants, and loading encoder weights from a local checkpoint directory.

Importing transformers' Segformer costs about 4 s (once per session); a b0 model builds in
about 0.1 s, so the tests below use b0 at 29-64 px, batch 1-2."""

import json
import math
import socket

import pytest
import torch

from ocdsl.ops import get
from ocdsl.ops.segformer import (SEGFORMER_MIN_SIZE, VARIANTS, Segformer, UNetFeatures,
                                 segformer_config, segformer_output_size,
                                 segformer_stage_sizes, unet_output_size)
from ocdsl.shapes import Dim, ShapeError

from ._helpers import run_op, sym

# ---- segformer: the size rule (no model needed) ---------------------------------------------


def test_stage_sizes_are_ceil_of_the_strides():
    for n in range(1, 300):
        assert segformer_stage_sizes(n) == [math.ceil(n / s) for s in (4, 8, 16, 32)], n
        assert segformer_output_size(n) == math.ceil(n / 4)


def test_min_size_is_where_every_stage_covers_its_reduction_ratio():
    assert SEGFORMER_MIN_SIZE == 29
    assert segformer_stage_sizes(29)[:3] == [8, 4, 2]     # exactly the ratios 8, 4, 2
    assert segformer_stage_sizes(28)[0] == 7              # one short of stage 1's 8


@pytest.mark.parametrize("shapes, match", [
    ({"image": sym("B", 3, 64)}, "expected 4 axes"),
    ({"image": sym("B", 4, 64, 64)}, "channels: expected 3, got 4"),
    ({"image": sym("B", 3, 28, 64)}, r"expected H >= 29 .*got \(B, 3, 28, 64\)"),
    ({"image": sym("B", 3, 64, 20)}, r"expected W >= 29"),
    ({"image": sym("B", 3, "H", 64)}, r"expected a symbolic H divisible by 4"),
])
def test_segformer_shape_errors_say_expected_and_got(shapes, match):
    with pytest.raises(ShapeError, match=match):
        get("segformer").infer(shapes, {"channels": 5, "variant": "b0"})


def test_segformer_infer_quarter_resolution():
    infer = get("segformer").infer
    assert infer({"image": sym("B", 3, 128, 128)}, {"channels": 17})["out"] == sym("B", 17, 32, 32)
    assert infer({"image": sym("B", 3, 30, 33)}, {"channels": 5})["out"] == sym("B", 5, 8, 9)
    four_h = Dim(4, ("H",))
    assert infer({"image": sym("B", 3, four_h, 64)}, {"channels": 5})["out"] == sym("B", 5, "H", 16)


def test_segformer_registry_entry():
    op = get("segformer")
    assert op.compile_on_cpu is False
    assert op.params["pretrained"]["x-pretrained"] is True
    assert op.params["variant"]["enum"] == ["b0", "b1", "b2", "b3", "b4", "b5"]
    assert op.params["variant"]["default"] == "b3"
    # the path never reaches the constructor: the pipeline calls load_pretrained
    kwargs = op.init_args({"image": sym("B", 3, 64, 64)},
                          {"channels": 5, "variant": "b0", "pretrained": "weights/mit-b0"})
    assert kwargs == {"channels": 5, "variant": "b0"}


# ---- segformer: variants and forward --------------------------------------------------------

def test_variant_configs_are_the_official_mit_sizes():
    b3 = segformer_config("b3", 17)     # docs/papers.md, AST-Seg: the paper's encoder
    assert (list(b3.hidden_sizes), list(b3.depths), b3.decoder_hidden_size) == \
        ([64, 128, 320, 512], [3, 4, 18, 3], 768)
    assert b3.classifier_dropout_prob == 0.1 and b3.drop_path_rate == 0.1
    assert b3.num_labels == 17 and list(b3.num_attention_heads) == [1, 2, 5, 8]
    assert list(b3.sr_ratios) == [8, 4, 2, 1] and list(b3.strides) == [4, 2, 2, 2]
    assert list(b3.patch_sizes) == [7, 3, 3, 3] and b3.layer_norm_eps == 1e-6
    b0 = segformer_config("b0", 3)
    assert (list(b0.hidden_sizes), list(b0.depths), b0.decoder_hidden_size) == \
        ([32, 64, 160, 256], [2, 2, 2, 2], 256)
    depths = {v: list(segformer_config(v, 1).depths) for v in VARIANTS}
    assert depths == {"b0": [2, 2, 2, 2], "b1": [2, 2, 2, 2], "b2": [3, 4, 6, 3],
                      "b3": [3, 4, 18, 3], "b4": [3, 8, 27, 3], "b5": [3, 6, 40, 3]}
    assert [segformer_config(v, 1).decoder_hidden_size for v in VARIANTS] == \
        [256, 256, 768, 768, 768, 768]
    with pytest.raises(ValueError, match="expected one of b0, b1"):
        segformer_config("b6", 3)


@pytest.fixture(scope="module")
def b0():
    torch.manual_seed(0)
    return Segformer(channels=5, variant="b0").eval()


def test_segformer_forward_matches_the_size_rule(b0):
    infer = get("segformer").infer
    with torch.no_grad():
        for h, w in ((64, 64), (29, 29), (30, 33)):
            out = b0(torch.rand(1, 3, h, w))
            want = infer({"image": sym("B", 3, h, w)}, {"channels": 5})["out"]
            assert out.shape == (1, 5, want[2].value, want[3].value), (h, w)
        # the bound the shape rule enforces is Segformer's own: 28 px fails inside torch
        with pytest.raises(RuntimeError, match="Kernel size can't be greater"):
            b0(torch.rand(1, 3, 28, 64))


def test_segformer_run_op_and_random_init_by_seed():
    _, out, m = run_op("segformer", {"image": sym("B", 3, 32, 32)},
                       {"channels": 4, "variant": "b0"},
                       inputs={"image": torch.rand(2, 3, 32, 32)})
    assert out["out"].shape == (2, 4, 8, 8)
    assert m.net.config.num_labels == 4 and m.net.decode_head.classifier.out_channels == 4
    n = sum(p.numel() for p in m.net.segformer.parameters())
    assert 3.3e6 < n < 3.4e6          # the MiT-b0 encoder: 3.3M parameters


# ---- segformer: local pretrained weights ----------------------------------------------------

def _random_encoder(variant_or_config, seed):
    from transformers import SegformerModel
    torch.manual_seed(seed)
    cfg = segformer_config(variant_or_config, 5) if isinstance(variant_or_config, str) \
        else variant_or_config
    return SegformerModel(cfg)


def _state(module):
    return {k: v.clone() for k, v in module.state_dict().items()}


@pytest.fixture
def no_network(monkeypatch):
    """Any attempt to open a connection fails the test: weights are never downloaded."""
    def refuse(*args, **kwargs):
        raise AssertionError("load_pretrained tried to open a network connection")
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def test_load_pretrained_copies_the_encoder_and_keeps_the_head(b0, tmp_path, no_network):
    src = _random_encoder("b0", seed=1)
    src.save_pretrained(tmp_path / "mit")          # config.json + model.safetensors
    head = _state(b0.net.decode_head)
    assert not torch.equal(b0.net.segformer.stages[0].patch_embeddings.proj.weight,
                           src.stages[0].patch_embeddings.proj.weight)
    b0.load_pretrained(tmp_path / "mit")
    got, want = b0.net.segformer.state_dict(), src.state_dict()
    assert got.keys() == want.keys()
    assert all(torch.equal(got[k], want[k]) for k in want)
    assert all(torch.equal(v, head[k]) for k, v in b0.net.decode_head.state_dict().items())


def test_load_pretrained_reads_hub_style_checkpoints(b0, tmp_path, no_network):
    """nvidia/mit-b* checkpoints are SegformerForImageClassification in the legacy naming
    (segformer.encoder.block.0.0.attention.self.query...), with a 1000-class classifier."""
    import re

    from safetensors.torch import save_file
    legacy = [(r"stages\.(\d+)\.patch_embeddings\.", r"encoder.patch_embeddings.\1."),
              (r"stages\.(\d+)\.blocks\.", r"encoder.block.\1."),
              (r"stages\.(\d+)\.layer_norm", r"encoder.layer_norm.\1"),
              (r"attention\.(q|k|v)_proj", lambda m: "attention.self." +
               {"q": "query", "k": "key", "v": "value"}[m.group(1)]),
              ("attention.sequence_reduction.sequence_reduction", "attention.self.sr"),
              ("attention.sequence_reduction.layer_norm", "attention.self.layer_norm"),
              ("attention.o_proj", "attention.output.dense"), ("mlp.fc1", "mlp.dense1"),
              ("mlp.fc2", "mlp.dense2"), ("layernorm_before", "layer_norm_1"),
              ("layernorm_after", "layer_norm_2")]
    src = _random_encoder("b0", seed=2)
    tensors = {}
    for key, value in src.state_dict().items():
        for pattern, repl in legacy:
            key = re.sub(pattern, repl, key)
        tensors["segformer." + key] = value.contiguous()
    assert "segformer.encoder.block.0.0.attention.self.query.weight" in tensors
    tensors["classifier.weight"] = torch.zeros(1000, 256)
    tensors["classifier.bias"] = torch.zeros(1000)
    (tmp_path / "hub").mkdir()
    save_file(tensors, str(tmp_path / "hub" / "model.safetensors"))
    cfg = segformer_config("b0", 1000).to_dict()
    cfg["architectures"] = ["SegformerForImageClassification"]
    (tmp_path / "hub" / "config.json").write_text(json.dumps(cfg))
    b0.load_pretrained(tmp_path / "hub")
    got = b0.net.segformer.state_dict()
    assert all(torch.equal(got[k], v) for k, v in src.state_dict().items())


def test_load_pretrained_missing_paths(b0, tmp_path):
    with pytest.raises(FileNotFoundError, match=r"expected a local checkpoint directory of a "
                                                r"mit-b0 encoder .*no such file or directory"):
        b0.load_pretrained(tmp_path / "nowhere")
    (tmp_path / "weights.txt").write_text("x")
    with pytest.raises(FileNotFoundError, match="a file, not a directory"):
        b0.load_pretrained(tmp_path / "weights.txt")
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "README.md").write_text("x")
    with pytest.raises(FileNotFoundError, match=r"expected one of model.safetensors, .*"
                                                r"pytorch_model.bin.*found README.md"):
        b0.load_pretrained(tmp_path / "empty")


def test_load_pretrained_rejects_weights_that_do_not_fit(b0, tmp_path):
    from safetensors.torch import save_file
    before = _state(b0)

    # another variant's config.json: named, with the variant it looks like
    src = _random_encoder("b0", seed=3)
    src.save_pretrained(tmp_path / "b1cfg")
    cfg = json.loads((tmp_path / "b1cfg" / "config.json").read_text())
    cfg["hidden_sizes"] = [64, 128, 320, 512]
    (tmp_path / "b1cfg" / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match=r"expected a mit-b0 encoder \(hidden_sizes "
                                         r"\[32, 64, 160, 256\]\), found hidden_sizes "
                                         r"\[64, 128, 320, 512\] \(a mit-b1 checkpoint"):
        b0.load_pretrained(tmp_path / "b1cfg")

    # not a Segformer at all
    cfg["model_type"] = "vit"
    (tmp_path / "b1cfg" / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match="model_type 'segformer'.*found model_type 'vit'"):
        b0.load_pretrained(tmp_path / "b1cfg")

    # weights alone (no config.json): other widths, fewer blocks
    tiny = segformer_config("b0", 5)
    tiny.hidden_sizes, tiny.depths = [8, 16, 40, 64], [1, 1, 1, 1]
    (tmp_path / "tiny").mkdir()
    save_file({k: v.contiguous() for k, v in _random_encoder(tiny, 4).state_dict().items()},
              str(tmp_path / "tiny" / "model.safetensors"))
    with pytest.raises(ValueError, match=r"expected the weights of a mit-b0 encoder .*found "
                                         r"\d+ encoder tensors missing .*tensors of another "
                                         r"shape \(e.g. .*: expected \(\d+.*\), found \(\d+"):
        b0.load_pretrained(tmp_path / "tiny")

    # more blocks than b0 has, as a pytorch_model.bin
    deep = segformer_config("b0", 5)
    deep.depths = [3, 2, 2, 2]
    (tmp_path / "deep").mkdir()
    torch.save(_random_encoder(deep, 5).state_dict(), tmp_path / "deep" / "pytorch_model.bin")
    with pytest.raises(ValueError, match=r"found \d+ encoder tensors this variant does not "
                                         r"have \(e.g. stages.0.blocks.2"):
        b0.load_pretrained(tmp_path / "deep")

    after = b0.state_dict()
    assert all(torch.equal(after[k], v) for k, v in before.items())   # nothing half-loaded


# ---- unet_features ----------------------------------------------------------------------------

@pytest.mark.parametrize("h, w, params, out_hw", [
    (64, 64, {}, (16, 16)),                                       # the segformer drop-in
    (70, 66, {}, (17, 16)),                                       # odd sizes: floor(n / 4)
    (35, 40, {"widths": [4, 8, 8, 16]}, (8, 10)),
    (12, 10, {"widths": [4, 8, 8], "output_stride": 2}, (6, 5)),
    (9, 8, {"widths": [4, 8], "output_stride": 1}, (9, 8)),       # full resolution
])
def test_unet_shapes(h, w, params, out_hw):
    torch.manual_seed(0)
    inferred, out, m = run_op("unet_features", {"image": sym("B", 3, h, w)},
                              {"channels": 6, **params},
                              inputs={"image": torch.rand(2, 3, h, w)})
    assert inferred["out"] == sym("B", 6, *out_hw)
    assert unet_output_size(h, params.get("output_stride", 4)) == out_hw[0]


def test_unet_architecture_and_every_level_is_used():
    torch.manual_seed(0)
    m = UNetFeatures(channels=5, widths=[4, 8, 12, 16, 16])
    assert len(m.down) == 5 and len(m.up) == len(m.fuse) == 2        # levels 4 -> 3 -> 2
    assert [u.out_channels for u in m.up] == [12, 16]
    assert m.head.in_channels == 12 and m.head.kernel_size == (1, 1)
    convs = [x for x in m.modules() if isinstance(x, torch.nn.Conv2d)]
    norms = [x for x in m.modules() if isinstance(x, torch.nn.GroupNorm)]
    assert len(norms) == 2 * (5 + 2) and all(c.bias is None for c in convs if c is not m.head)
    assert {n.num_groups for n in norms} == {4, 8}                  # gcd(c, 8)
    out = m(torch.rand(1, 3, 32, 32))
    out.square().sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in m.parameters())
    # the bottom level reaches the output: changing one input corner moves the far corner
    x = torch.rand(1, 3, 32, 32)
    y = x.clone()
    y[..., :4, :4] += 1.0
    with torch.no_grad():
        assert not torch.allclose(m(x)[..., -1, -1], m(y)[..., -1, -1])


@pytest.mark.parametrize("shape, params, match", [
    (sym("B", 3, 16, 64), {}, r"expected H >= 32 \(6 levels halve it 5 times\)"),
    (sym("B", 1, 64, 64), {}, "channels: expected 3, got 1"),
    (sym("B", 3, 64, 64), {"widths": [4, 8, 16]},
     "expected at least 4 levels for output_stride 4"),
    (sym("B", 3, 64, 64), {"widths": [4, 8], "output_stride": 3}, "expected 1, 2 or 4"),
])
def test_unet_errors(shape, params, match):
    with pytest.raises(ShapeError, match=match):
        get("unet_features").infer({"image": shape}, {"channels": 4, **params})
    if "widths" in params:
        with pytest.raises(ValueError, match=match):
            UNetFeatures(4, **params)
