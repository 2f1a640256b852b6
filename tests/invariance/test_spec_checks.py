"""`ocdsl check`: spec declarations -> property checks, the table, exit codes, and errors
in declarations reported with their location."""

import io
import re
from pathlib import Path

import pytest

import ocdsl.invariance as inv
from ocdsl.errors import SpecError, UserError
from ocdsl.invariance import check, format_table, main_check, run_checks
from ocdsl.invariance.declarations import resolve
from ocdsl.pipeline import build

from ._broken import SoftArgmaxOffByOne, swap_module
from .conftest import CI_EXAMPLES

ROOT = Path(__file__).resolve().parents[2]
SPEC = ROOT / "specs" / "slot_attention.toml"
TINY = ["dims.H=6", "dims.W=6", "dims.F=4", "dims.D=8", "dims.M=8"]

LOCALIZER = """
[meta]
name = "localizer"

[dims]
H = 7
W = 6
K = 2
C = 3

[model.inputs]
image = "B C H W"

[model.nodes.heat]
op = "conv_stack"
input = "image"
channels = ["K"]
kernel = 3
output = "B K H W"

[model.nodes.locate]
op = "soft_argmax"
inputs = { logits = "heat", features = "image" }
output = { coords = "B K 2", features = "B K C", attention = "B K H W" }

[losses]
total = "mse(locate.attention, locate.attention)"
"""


def slot_spec(tmp_path: Path, invariances: str) -> Path:
    """specs/slot_attention.toml with its [[invariances]] replaced by ``invariances``."""
    text = SPEC.read_text()
    text = text[: text.index("[[invariances]]")] + invariances
    p = tmp_path / "slot_attention.toml"
    p.write_text(text)
    return p


def localizer(tmp_path: Path, invariances: str) -> Path:
    p = tmp_path / "localizer.toml"
    p.write_text(LOCALIZER + invariances)
    return p


def test_main_check_prints_the_table_and_exits_0():
    out = io.StringIO()
    assert main_check(SPEC, examples=3, out=out) == 0
    text = out.getvalue()
    header = text.splitlines()[2]
    for col in ("property", "node", "examples", "largest deviation", "tolerance", "result"):
        assert col in header
    assert re.search(r"permutation_equivariance K\s+slots\s+3\s+\S+\s+1e-05 \+ 1e-05\*\|expected\|\s+pass",
                     text), text
    assert "all 1 passed" in text


def test_a_false_declaration_fails_with_exit_1_and_a_counterexample(tmp_path):
    spec = slot_spec(tmp_path, """
[[invariances]]
kind = "permutation_invariance"     # false: the slots follow their initial order
node = "slots"
port = "slots"
axis = "K"
""")
    out = io.StringIO()
    assert main_check(spec, examples=CI_EXAMPLES, overrides=TINY, out=out) == 1
    text = out.getvalue()
    assert "FAIL permutation_invariance K at node 'slots'" in text
    assert f"{spec}:" in text or "slot_attention.toml:" in text
    assert "smallest counterexample" in text
    assert "permutation of K (size 4)" in text and "slots.slots[" in text
    assert "0 passed, 1 failed" in text


def test_permutation_invariance_over_the_input_tokens(tmp_path):
    spec = slot_spec(tmp_path, """
[[invariances]]
kind = "permutation_invariance"
node = "slots"
axis = "(H W)"
""")
    (r,) = run_checks(spec, examples=CI_EXAMPLES, overrides=TINY)
    assert r.passed, r.counterexample
    compared = "\n".join(r.compared)
    assert "slots.slots: unchanged" in compared                  # invariant
    assert "slots.attention: permuted along (H W)" in compared   # columns follow the tokens
    assert "composite.image: unchanged" in compared


def test_op_port_letter_names_the_same_axis(tmp_path):
    spec = slot_spec(tmp_path, """
[[invariances]]
kind = "permutation_invariance"
node = "slots"
axis = "N"
inputs = ["inputs"]
""")
    (d,) = resolve(build(spec, overrides=TINY))
    assert d.names == ("(H W)",) and d.sizes == (36,)
    assert d.sites[0].label == "slots.inputs" and not d.sites[0].inject


def test_overrides_reach_the_model():
    (d,) = resolve(build(SPEC, overrides=TINY + ["dims.K=3"]))
    assert d.sizes == (3,)
    assert d.sites[0].inject and d.sites[0].label == "slots.slots (initial state)"


def test_explicit_outputs_and_tolerance(tmp_path):
    spec = slot_spec(tmp_path, """
[[invariances]]
kind = "permutation_equivariance"
node = "slots"
axis = "K"
tolerance = 1e-4
""")
    c = build(spec, overrides=TINY)
    # `outputs` (schema change pending): set it on the loaded spec's data
    c.spec.data["invariances"][0]["outputs"] = ["composite.image", "composite.masks"]
    (d,) = resolve(c)
    assert [(e.key, e.action) for e in d.expects] == [("composite.image", "same"),
                                                      ("composite.masks", "permute")]
    (r,) = run_checks(c, examples=CI_EXAMPLES)
    assert r.passed and r.tolerance == "0.0001 + 1e-05*|expected|"


@pytest.mark.parametrize("decl, message, key", [
    ('kind = "permutation_equivariance"\nnode = "slots"\naxis = "Q"',
     "no input of node 'slots' (slot_attention) has axis 'Q'", "axis"),
    ('kind = "permutation_equivariance"\nnode = "slots"\naxis = "K"\ninputs = ["imgae"]',
     "'imgae' is neither a model input nor an input port", "inputs"),
    ('kind = "permutation_equivariance"\nnode = "slots"\naxis = "K"\ninputs = ["image"]',
     "model input 'image' has no axis 'K'", "inputs"),
    ('kind = "permutation_equivariance"\nnode = "slots"\naxis = "H W"',
     "needs exactly one axis", "axis"),
    ('kind = "permutation_equivariance"\nnode = "decoder"\naxis = "K"\ninputs = ["decoder.slotz"]',
     "has no input port 'slotz'", "inputs"),
])
def test_bad_declarations_are_user_errors_with_locations(tmp_path, decl, message, key):
    spec = slot_spec(tmp_path, "[[invariances]]\n" + decl + "\n")
    with pytest.raises(SpecError) as e:
        run_checks(spec, examples=1, overrides=TINY)
    (d,) = e.value.errors
    assert message in d.message
    assert d.file.endswith("slot_attention.toml") and d.line > 0
    assert d.keypath[:2] == ("invariances", 0)
    lines = spec.read_text().splitlines()
    assert lines[d.line - 1].lstrip().startswith(key) or d.keypath[-1] == key


def test_all_declaration_errors_are_reported_together(tmp_path):
    spec = slot_spec(tmp_path, """
[[invariances]]
kind = "permutation_equivariance"
node = "slots"
axis = "Q"

[[invariances]]
kind = "permutation_equivariance"
node = "slots"
axis = "K"
inputs = ["nope"]
""")
    with pytest.raises(UserError) as e:
        main_check(spec, examples=1, overrides=TINY)
    assert [d.keypath[1] for d in e.value.errors] == [0, 1]


def test_a_spec_without_declarations(tmp_path):
    p = localizer(tmp_path, "")
    assert run_checks(p, examples=1) == []
    out = io.StringIO()
    assert main_check(p, examples=1, out=out) == 0
    assert "no [[invariances]] declared" in out.getvalue()


def test_bad_examples_count_is_a_user_error():
    with pytest.raises(UserError, match="--examples"):
        main_check(SPEC, examples=0)


# ---- translation declarations (soft_argmax in a spec) --------------------------------------

TRANSLATION = """
[[invariances]]
kind = "translation_equivariance"
node = "locate"
axis = "H W"
"""


def test_soft_argmax_translation_equivariance_in_a_spec(tmp_path):
    c = build(localizer(tmp_path, TRANSLATION))
    (d,) = resolve(c)
    assert [s.label for s in d.sites] == ["locate.logits", "locate.features"]
    assert d.sites[0].fill == -1e4                  # no attention mass in the blanked border
    actions = {e.key: e.action for e in d.expects}
    assert actions == {"locate.coords": "coords", "locate.features": "same",
                       "locate.attention": "shift"}
    coords = next(e for e in d.expects if e.action == "coords")
    assert coords.components == (1, 0)              # H moves y, W moves x
    assert coords.scales == pytest.approx((2 / 6, 2 / 5))
    report = check(c, examples=CI_EXAMPLES)
    assert report.passed, str(report)


def test_off_by_one_soft_argmax_is_caught_in_a_spec(tmp_path):
    c = build(localizer(tmp_path, TRANSLATION))
    model = c.instantiate(torch_compile=False)
    swap_module(c, model, "locate", SoftArgmaxOffByOne)
    (r,) = run_checks(c, model=model, examples=CI_EXAMPLES)
    assert not r.passed
    assert "shift by" in r.counterexample and "locate.coords[" in r.counterexample


def test_ocdsl_check_returns_a_report():
    report = inv.check(SPEC, examples=2)
    assert report.passed and len(report.results) == 1
    assert format_table(report.results) in str(report)


def test_without_hypothesis_checking_is_a_user_error(monkeypatch):
    import sys
    monkeypatch.setitem(sys.modules, "hypothesis", None)
    with pytest.raises(UserError, match="needs the 'hypothesis' package"):
        main_check(SPEC, examples=1)
    (d,) = resolve(build(SPEC))          # resolving (validation) needs no hypothesis
    assert d.names == ("K",)


def _undeclared_decoder(tmp_path: Path, outputs: str) -> Path:
    """slot_attention.toml with the decoder's output signature left out and a permutation
    declaration over the slots (K) that compares ``outputs``."""
    p = slot_spec(tmp_path, f"""
[[invariances]]
kind = "permutation_equivariance"
node = "slots"
axis = "K"
{outputs}
""")
    text = p.read_text()
    p.write_text(text.replace('output = { rgb = "B K C H W", alpha_logits = "B K 1 H W" }\n', ""))
    return p


def test_an_output_without_signature_named_by_the_declaration_is_an_error(tmp_path):
    spec = _undeclared_decoder(tmp_path, 'outputs = ["decoder.rgb"]')
    with pytest.raises(SpecError) as ei:
        resolve(build(spec, overrides=TINY))
    assert ("decoder.rgb: no declared signature, so which axis is K is unknown "
            "(declare `output` on node 'decoder')") in ei.value.format()


def test_an_output_without_signature_found_downstream_is_a_note(tmp_path):
    (d,) = resolve(build(_undeclared_decoder(tmp_path, ""), overrides=TINY))
    assert ("not compared: decoder.rgb: no declared signature, so which axis is K is unknown "
            "(declare `output` on node 'decoder')") in d.notes
