"""Spec -> checked, shape-annotated model graph."""
from ocdsl.graph.build import build_graph, output_key, unused_warnings
from ocdsl.graph.infer import infer_shapes, output_shapes, resolve_sizes
from ocdsl.graph.static import check_resources, check_static

__all__ = ["build_graph", "infer_shapes", "output_key", "output_shapes", "resolve_sizes", "analyse", "unused_warnings",
           "check_static", "check_resources"]


def analyse(spec):
    """build_graph + infer_shapes + the static checks of ocdsl/graph/static.py (loss types,
    value domains): the checked graph of ``spec``. Its warnings (unused nodes and inputs,
    losses that train nothing) are ``G.graph["warnings"]``; ``spec`` is not changed, so
    analysing twice gives the same graph and the same warnings. A spec with ``[blocks]``
    analyses each block first (ocdsl/graph/blocks.py; the blocks are ``G.graph["blocks"]``).
    The resource estimate (``check_resources``) runs after the rewrites, in
    ocdsl/pipeline.py."""
    if spec.blocks:
        from ocdsl.graph.blocks import analyse_with_blocks
        G = analyse_with_blocks(spec)
    else:
        G = infer_shapes(spec, build_graph(spec))
    check_static(spec, G)
    return G
