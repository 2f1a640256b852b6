"""Spec -> checked, shape-annotated model graph."""
from ocdsl.graph.build import build_graph, output_key
from ocdsl.graph.infer import infer_shapes, output_shapes, resolve_sizes

__all__ = ["build_graph", "infer_shapes", "output_key", "output_shapes", "resolve_sizes", "analyse"]


def analyse(spec):
    """build_graph + infer_shapes: the checked graph of ``spec``."""
    return infer_shapes(spec, build_graph(spec))
