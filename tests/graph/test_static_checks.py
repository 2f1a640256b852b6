"""The static checks after shape inference: loss types (graph/losstypes.py), values over the
run (graph/values.py) and the resource estimate (graph/resources.py)."""

from __future__ import annotations

import math

import pytest

from ocdsl.errors import SpecError
from ocdsl.graph import analyse, build_graph, infer_shapes
from ocdsl.graph.losstypes import broadcast, loss_types
from ocdsl.graph.resources import check_memory, estimate, format_bytes, parameter_counts, parse_memory
from ocdsl.graph.values import FULL_RUN, check_values, phase_clocks, steps_to_check
from ocdsl.pipeline import build
from ocdsl.shapes import shape
from ocdsl.spec import load
from tests.graph.test_graph import TINY, edit, write


def _graph(tmp_path, text):
    spec = load(write(tmp_path, text))
    return spec, infer_shapes(spec, build_graph(spec))


def _loss(text: str, expr: str) -> str:
    return edit(text, 'reconstruction = "mse(composite.image, image)"', f'reconstruction = {expr!r}')


# ---- loss types ---------------------------------------------------------------------------------

def test_broadcast_follows_torch():
    assert broadcast(shape("B", 3, 8, 8), shape(1, 8, 1)) == shape("B", 3, 8, 8)
    assert broadcast(shape(3), shape("B", 1)) == shape("B", 3)
    assert broadcast(None, shape(3)) is None
    with pytest.raises(ValueError):
        broadcast(shape("B", 3), shape("B", 4))


def test_types_of_the_tiny_spec(tmp_path):
    spec, G = _graph(tmp_path, TINY)
    types, errors = loss_types(spec, G, with_params={"encoder", "decoder"})
    assert errors == []
    t = types["reconstruction"]
    assert t.tensor and t.shape == () and t.is_scalar
    assert t.params == {"encoder", "decoder"}  # reached through composite, slots, ...


@pytest.mark.parametrize("expr, message", [
    ("composite.image - image", "is not a scalar: it is a tensor (B, 3, 8, 8)"),
    ("mse(composite.masks, image)", "mse(): the operands' shapes differ"),
    ("mean(composite.masks * image)", "the operands' shapes do not broadcast (size 2 against 3)"),
    ("mean(composite.image) if step < 10 else 1", "differ in kind: a tensor () if the condition holds, a number"),
    ("mean(composite.image if composite.image > 0 else image)", "is a tensor (B, 3, 8, 8), not a single truth value"),
    ("mean(2)", "mean() needs a tensor, got a number"),
    ("pixel_entropy(slots.slots)", "pixel_entropy() needs a 4-D or 5-D tensor"),
])
def test_bad_loss_expressions_are_located_errors(tmp_path, expr, message):
    with pytest.raises(SpecError) as ei:
        analyse(load(write(tmp_path, _loss(TINY, expr))))
    text = ei.value.format()
    assert message in text, text
    assert "[losses.reconstruction]" in text


def test_error_points_into_the_expression(tmp_path):
    p = write(tmp_path, _loss(TINY, "mse(composite.masks, image)"))
    line = next(i for i, ln in enumerate(p.read_text().splitlines(), 1) if ln.startswith("reconstruction"))
    with pytest.raises(SpecError) as ei:
        analyse(load(p))
    d = ei.value.diagnostics[0]
    assert (d.line, d.col) == (line, len('reconstruction = "') + 1)


def test_a_term_without_parameters_is_a_warning_and_the_training_loss_an_error(tmp_path):
    text = TINY.replace('reconstruction = "mse(composite.image, image)"',
                        'reconstruction = "mse(composite.image, image)"\npixels = "mean(image)"')
    G = analyse(load(write(tmp_path, text)))
    warnings = [w.format() for w in G.graph["warnings"]]
    assert any("loss 'pixels' depends on no trainable parameter" in w for w in warnings), warnings
    bad = edit(text, 'loss = "reconstruction"', 'loss = "pixels"')
    with pytest.raises(SpecError) as ei:
        analyse(load(write(tmp_path, bad, "bad.toml")))
    assert "the training loss 'pixels' depends on no trainable parameter" in ei.value.format()


# ---- values over the run --------------------------------------------------------------------------

def _with_schedule(text: str, sched: str, steps: int) -> str:
    text = edit(text, "[train]", f"[schedules]\ns = {sched!r}\n\n[train]")
    return edit(text, "steps = 2", f"steps = {steps}")


def test_short_runs_are_checked_at_every_step(tmp_path):
    spec, _ = _graph(tmp_path, _with_schedule(TINY, "step", 50))
    assert steps_to_check(spec, 50, phase_clocks(spec)) == list(range(51))


def test_long_runs_check_the_steps_that_matter(tmp_path):
    spec, _ = _graph(tmp_path, _with_schedule(TINY, "min(1, step / 12345)", 10 ** 6))
    steps = steps_to_check(spec, 10 ** 6, phase_clocks(spec))
    assert len(steps) < 5 * FULL_RUN
    assert {0, 10 ** 6 - 1, 10 ** 6, 12345, 12346, 2 ** 19} <= set(steps)


@pytest.mark.parametrize("sched, steps, message", [
    ("log(1 - step / total_steps)", 100, "log(): math domain error at step 100"),
    ("sqrt(50 - step)", 10 ** 6, "sqrt(): math domain error at step 51"),
    ("exp(step)", 10 ** 5, "exp(): result too large at step 710"),      # sampled, then bisected
    ("1 / (step - 30)", 100, "division by zero in '1 / (step - 30)' at step 30"),
    ("(0 - step) ** 0.5", 10, "schedule 's' is the complex number"),
    ("2.0 ** step", 5000, "result of '2.0 ** step' is too large at step 1024"),
    ("1e308 * step", 10, "schedule 's' is inf at step 2"),
])
def test_schedule_failures_name_key_and_step(tmp_path, sched, steps, message):
    spec, G = _graph(tmp_path, _with_schedule(TINY, sched, steps))
    diags = check_values(spec, G)
    assert len(diags) == 1
    assert message in diags[0].message, diags[0].message
    assert diags[0].keypath == ("schedules", "s")


def test_fine_schedules_pass_and_run_length_counts(tmp_path):
    spec, G = _graph(tmp_path, _with_schedule(TINY, "log(1 + total_steps - step)", 100))
    assert check_values(spec, G) == []
    spec, G = _graph(tmp_path, _with_schedule(TINY, "sqrt(200 - step)", 100))
    assert check_values(spec, G) == []
    assert "at step 201" in check_values(spec, G, total_steps=300)[0].message   # --steps 300


def test_negative_learning_rate_is_an_error(tmp_path):
    text = edit(edit(TINY, 'lr = 1e-3', 'lr = "1e-3 - step * 1e-4"'), "steps = 2", "steps = 20")
    spec, G = _graph(tmp_path, text)
    (d,) = check_values(spec, G)
    assert "the learning rate is negative" in d.message and "at step 11" in d.message


# ---- resources ---------------------------------------------------------------------------------------

def test_parameters_counted_on_the_meta_device(tmp_path):
    c = build(write(tmp_path, TINY))
    counts = parameter_counts(c.graph)
    model = c.instantiate(torch_compile=False)
    for name, n in counts.items():
        assert n == sum(p.numel() for p in getattr(model, name).parameters()), name
    assert c.graph.graph["estimate"].parameters == sum(p.numel() for p in model.parameters())


def test_estimate_grows_with_the_batch(tmp_path):
    c = build(write(tmp_path, TINY))
    small, large = estimate(c.spec, c.graph, 2), estimate(c.spec, c.graph, 64)
    assert small.param_bytes == large.param_bytes
    assert large.activation_bytes > 16 * small.activation_bytes
    assert large.step_bytes > small.step_bytes
    assert not large.partial


def test_memory_limit_names_the_driving_key(tmp_path):
    c = build(write(tmp_path, TINY))
    est = c.graph.graph["estimate"]
    assert check_memory(c.spec, est, est.total_bytes, "x") == []
    (d,) = check_memory(c.spec, est, est.total_bytes - 1, "allowed by --max-memory")
    assert "allowed by --max-memory" in d.message and format_bytes(est.total_bytes) in d.message
    with pytest.raises(SpecError) as ei:
        build(write(tmp_path, TINY), max_memory=1000)
    assert "the spec needs about" in ei.value.format()


def test_parse_memory():
    assert parse_memory("4GB") == 4 * 10 ** 9
    assert parse_memory("512 MiB") == 512 * 2 ** 20
    assert parse_memory("1e6") == 10 ** 6
    assert math.isclose(parse_memory("1.5kb"), 1500)
    for bad in ("", "lots", "-1GB", "0"):
        with pytest.raises(ValueError):
            parse_memory(bad)
