"""Spec -> checked, shape-annotated model graph."""
from ocdsl.graph.build import build_graph, output_key, unused_warnings
from ocdsl.graph.infer import infer_shapes, output_shapes, resolve_sizes

__all__ = ["build_graph", "infer_shapes", "output_key", "output_shapes", "resolve_sizes", "analyse", "unused_warnings"]


def analyse(spec):
    """build_graph + infer_shapes: the checked graph of ``spec``. Its warnings (unused
    nodes and inputs) are ``G.graph["warnings"]``; ``spec`` is not changed, so analysing
    twice gives the same graph and the same warnings. A spec with ``[blocks]`` analyses
    each block first (ocdsl/graph/blocks.py; the blocks are ``G.graph["blocks"]``)."""
    if spec.blocks:
        from ocdsl.graph.blocks import analyse_with_blocks
        return analyse_with_blocks(spec)
    return infer_shapes(spec, build_graph(spec))
