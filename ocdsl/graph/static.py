"""The static checks that follow shape inference, before any tensor exists.

- loss expressions typed and shape-checked (:mod:`ocdsl.graph.losstypes`);
- schedules and learning rates evaluated over the run (:mod:`ocdsl.graph.values`);
- the resource estimate against the memory limit (:mod:`ocdsl.graph.resources`), run by
  :func:`check_resources` after the exact rewrites (ocdsl/pipeline.py), so that it measures
  the model that will run.

``check_static`` reports every error of the first two together (SpecError) and adds its
warnings to ``G.graph["warnings"]``; ``check_resources`` stores ``G.graph["estimate"]``.
"""

from __future__ import annotations

import networkx as nx

from ocdsl.errors import Diagnostic, SpecError
from ocdsl.graph.losstypes import check_losses
from ocdsl.graph.resources import check_memory, estimate, machine_memory, parameter_counts
from ocdsl.graph.values import check_values
from ocdsl.spec.model import Spec

__all__ = ["check_static", "check_resources", "memory_limit"]


def memory_limit(max_memory: int | None) -> tuple[int, str]:
    """The limit in bytes and how to name it: ``--max-memory``, else this machine's memory."""
    if max_memory is not None:
        return int(max_memory), "allowed by --max-memory"
    return machine_memory(), "of this machine's memory"


def check_static(spec: Spec, G: nx.MultiDiGraph, *, total_steps: int | None = None) -> None:
    """Type the losses and evaluate the values over the run, on the shape-checked graph
    ``G``. ``total_steps``: the run's length when it differs from the spec's (``--steps``).
    Raises SpecError with every error found."""
    errors: list[Diagnostic] = []
    with_params = {n for n, c in parameter_counts(G).items() if c > 0}
    with_params |= {n for n, d in G.nodes(data=True)
                    if d["kind"] == "op" and d["node"].shared_with in with_params}
    warnings: list[Diagnostic] = []
    try:
        warnings = check_losses(spec, G, with_params)
    except SpecError as e:
        errors += e.diagnostics
    errors += check_values(spec, G, total_steps)
    if errors:
        raise SpecError(errors)
    G.graph["warnings"] = tuple(G.graph.get("warnings", ())) + tuple(warnings)


def check_resources(spec: Spec, G: nx.MultiDiGraph, *, max_memory: int | None = None) -> None:
    """Estimate the memory of ``spec`` (``G.graph["estimate"]``) and raise SpecError when it
    exceeds ``max_memory`` bytes (default: this machine's memory)."""
    est = estimate(spec, G)
    G.graph["estimate"] = est
    errors = check_memory(spec, est, *memory_limit(max_memory))
    if errors:
        raise SpecError(errors)
