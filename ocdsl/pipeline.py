"""The compiler pipeline in one place: spec -> graph -> (exact rewrites) -> source -> module.

Used by the public API (``ocdsl.compile``), the CLI and the tests, so every entry point
runs the same passes.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import networkx as nx

from ocdsl.codegen import generate_source, import_generated, instantiate, should_compile, write_source
from ocdsl.codegen.load import default_cache_dir
from ocdsl.graph import analyse, check_resources
from ocdsl.graph.rewrites import apply_rewrites
from ocdsl.spec import load
from ocdsl.errors import SpecError, format_keypath
from ocdsl.spec.model import Spec

__all__ = ["Compiled", "build", "compiled_path", "load_pretrained", "check_data", "mask_metric_warnings"]


def compiled_path(spec: Spec, root: Path | str = "compiled") -> Path:
    """Where ``ocdsl compile`` writes a spec's module: ``compiled/<spec file stem>.py``."""
    return Path(root) / f"{spec.path.stem}.py"


@dataclass
class Compiled:
    spec: Spec
    graph: nx.MultiDiGraph
    source: str
    path: Path | None = None
    data_warnings: list = field(default_factory=list)

    @property
    def warnings(self) -> list:
        """The spec's validation warnings, then the graph analysis's (unused nodes), then the
        data's (:func:`mask_metric_warnings`)."""
        return [*self.spec.warnings, *self.graph.graph.get("warnings", ()), *self.data_warnings]

    def write(self, path: Path | str) -> Path:
        self.path = write_source(self.source, Path(path))
        return self.path

    def instantiate(self, *, device: str = "cpu", torch_compile: bool | str = "auto"):
        if self.path is None:
            # named by the generated code's own hash: two ocdsl versions (or checkouts) sharing
            # the cache never overwrite each other's module for the same spec
            digest = hashlib.sha256(self.source.encode("utf-8")).hexdigest()[:12]
            self.write(default_cache_dir() / f"{self.spec.path.stem}_{digest}.py")
        model = instantiate(import_generated(self.path), self.spec, device)
        load_pretrained(self.spec, self.graph, model)
        if should_compile(self.graph, device, torch_compile):
            if any(d["opdef"].warmup_before_compile for _, d in self.graph.nodes(data=True)
                   if d.get("kind") == "op"):
                _eager_forward(self.spec, model, device)
            model.compile()
        return model

    def will_compile(self, device: str, torch_compile: bool | str) -> bool:
        return should_compile(self.graph, device, torch_compile)


def build(spec_or_path: Spec | str | Path, *, overrides: list[str] | None = None,
          out: Path | str | None = None, max_memory: int | None = None) -> Compiled:
    """Load (if given a path), check the graph and shapes, apply the exact rewrites of
    ``[compile] rewrites`` (ocdsl.graph.rewrites), estimate the memory (refused beyond
    ``max_memory`` bytes, default this machine's: ocdsl/graph/resources.py) and generate
    the source. With ``out``, also write the source there."""
    spec = spec_or_path if isinstance(spec_or_path, Spec) else load(spec_or_path, overrides)
    G = apply_rewrites(spec, analyse(spec))
    check_resources(spec, G, max_memory=max_memory)
    c = Compiled(spec, G, generate_source(spec, G, source_name=_display_path(spec.path)),
                 data_warnings=mask_metric_warnings(spec))
    if out is not None:
        c.write(out)
    return c


def _eager_forward(spec: Spec, model, device: str) -> None:
    """One no-grad forward on random inputs of the spec's shapes (batch 2), in eval mode."""
    import torch

    inputs = {name: torch.rand(*shape, device=device) for name, shape in spec.input_shapes(2).items()}
    was_training = model.training
    model.eval()
    with torch.no_grad():
        model(next(iter(inputs.values())) if len(inputs) == 1 else inputs)
    model.train(was_training)


def load_pretrained(spec: Spec, G: nx.MultiDiGraph, model) -> None:
    """Load the local weights that op params marked ``"x-pretrained"`` name (segformer's
    ``pretrained = "weights/mit-b3"``): the path is relative to the spec file that wrote it,
    and the node's module loads it with ``load_pretrained(path)``. Nothing is downloaded.

    Raises SpecError at the param's line: no such directory, or weights that do not load
    (the module's message says what was expected and found)."""
    hint = ("nothing is downloaded: point it at a local copy of the checkpoint (a folder with "
            "config.json and model.safetensors), relative to the spec file, or leave it out for "
            "random initialisation")
    for name, data in G.nodes(data=True):
        if data.get("kind") != "op":
            continue
        node = data["node"]
        for key, prop in data["opdef"].params.items():
            if not prop.get("x-pretrained") or not node.params.get(key):
                continue
            kp = tuple(node.keypath) + (key,)
            path = spec.resolve_path(kp)
            if not path.is_dir():
                raise SpecError(spec.diag(kp, f"node '{name}': {key}: no directory {path}", hint=hint))
            try:
                getattr(model, name).load_pretrained(path)
            except (OSError, ValueError, KeyError, RuntimeError) as e:
                raise SpecError(spec.diag(kp, f"node '{name}': {key}: the weights in {path} do not load: {e}",
                                          hint=hint)) from None


def _display_path(path: Path) -> str:
    """The spec path as written in generated headers, the same however the path is spelled
    (relative, absolute, ``./``) and wherever ``ocdsl`` runs, so ``compile --check`` gives one
    answer: relative to the project holding the spec (the nearest folder above it with a
    ``pyproject.toml`` or ``.git``), else to the working folder when inside it, else the
    file name. Same spec, same bytes on every machine."""
    p = Path(path).resolve()
    for folder in p.parents:
        if (folder / "pyproject.toml").is_file() or (folder / ".git").exists():
            return str(p.relative_to(folder))
    try:
        return str(p.relative_to(Path.cwd().resolve()))
    except ValueError:
        return p.name


def check_data(spec: Spec) -> list:
    """The checks ``ocdsl run`` makes of the spec's datasets, without reading them
    (ocdsl/data/static.py): names, variants, paths, formats and the images' shape against
    the model input ``image``. Raises SpecError (located at the keys) with every error;
    returns the warnings (an optional evaluation file that is absent)."""
    from ocdsl.data.static import check_dataset

    sig = spec.inputs.get("image")
    image = tuple(d.value for d in sig.resolve(spec.dims)[1:]) if sig is not None else None
    diags = []
    for kp, cfg, name in _dataset_tables(spec, "train"):
        path = spec.resolve_path(kp + ("path",)) if cfg.get("path") is not None else None
        for d in check_dataset(cfg, kp, path, image if image and len(image) == 3 else None, name=name,
                               spec_file=str(spec.path)):
            diags.append(spec.diag(d.keypath or kp, d.message, d.hint, severity=d.severity))
    errors = [d for d in diags if d.severity == "error"]
    if errors:
        raise SpecError(diags)
    return diags


def _dataset_tables(spec: Spec, data_name: str) -> list[tuple[tuple, Any, str]]:
    """(key path, table, name) of [data] (named ``data_name``) and of each
    ``[[eval.datasets]]`` entry, the tables that are mappings."""
    tables = [(("data",), spec.data.get("data"), data_name)]
    tables += [(("eval", "datasets", i), e, str(e.get("name"))) for i, e in enumerate(spec.eval_cfg.datasets)]
    return [(kp, cfg, name) for kp, cfg, name in tables if isinstance(cfg, Mapping)]


def mask_metric_warnings(spec: Spec) -> list:
    """A warning for each evaluation set whose dataset has no ground-truth masks (an image
    folder; ocdsl/data/static.py, ``skipped_mask_metrics``) while ``[eval] metrics`` lists
    metrics that need them: evaluation will skip those there. Located at the key set last
    (``Locations.derivation``): the dataset's, when a variant or ``--set`` chose it, else the
    first such metric's entry in ``eval.metrics``."""
    from ocdsl.data.static import skipped_mask_metrics

    metrics = list(spec.eval_cfg.metrics)
    out = []
    for kp, cfg, name in _dataset_tables(spec, "test"):
        skipped = skipped_mask_metrics(cfg, metrics)
        if not skipped:
            continue
        at, chosen = ("eval", "metrics", metrics.index(skipped[0])), kp + ("dataset",)
        if spec.locations.derivation(chosen) < spec.locations.derivation(at):
            at = chosen
        table = "[data]" if kp == ("data",) else format_keypath(kp)
        out.append(spec.diag(
            at, f"evaluation set '{name}' ({table}, dataset '{cfg['dataset']}') has no ground-truth "
                f"masks: {', '.join(skipped)} in eval.metrics will be skipped on it",
            hint="drop them from eval.metrics, or score them on an [[eval.datasets]] entry that has masks",
            severity="warning"))
    return out
