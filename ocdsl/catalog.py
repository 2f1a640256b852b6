"""The metric catalogue: one list of the metric names, torch-free.

The spec schema (``[eval] metrics``, ocdsl/spec/schema.py) and validation (a metric's
needed outputs) read it; ocdsl/metrics registers one function per entry and a test keeps
the two in step. It lives outside both packages because the spec front end must not import
torch (ocdsl/metrics does) and ocdsl/metrics must not import the spec front end.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["MetricInfo", "METRICS", "METRIC_INPUTS", "needing"]

#: What a metric may read: the predicted ``masks`` (eval.masks), the ground-truth ``labels``
#: (the data's masks), the ``recon`` (eval.reconstruction), the input ``image``, the per-slot
#: ``features`` (eval.features), the per-slot property ``predictions`` (eval.predictions) and
#: the data's per-object ``factors``.
METRIC_INPUTS = ("masks", "labels", "recon", "image", "features", "predictions", "factors")


@dataclass(frozen=True)
class MetricInfo:
    """One metric: its ``name`` in ``[eval] metrics``, a one-line ``description``, the
    inputs (among :data:`METRIC_INPUTS`) it ``needs`` and whether it is computed ``per_image``
    (averaged over images) or once over the whole evaluated dataset (a fitted probe)."""

    name: str
    description: str
    needs: frozenset[str]
    per_image: bool = True


def _m(name: str, description: str, *needs: str, per_image: bool = True) -> MetricInfo:
    return MetricInfo(name, description, frozenset(needs), per_image)


#: name -> MetricInfo, in the order the documentation lists them.
METRICS: dict[str, MetricInfo] = {m.name: m for m in (
    _m("ari", "adjusted Rand index of the argmax segmentation, all pixels", "masks", "labels"),
    _m("ari_fg", "adjusted Rand index on the foreground pixels (labels > 0); NaN for an image "
                 "without foreground", "masks", "labels"),
    _m("miou", "Hungarian-matched mean IoU, background included (ClevrTex)", "masks", "labels"),
    _m("miou_fg", "Hungarian-matched mean IoU over the foreground objects (ClevrTex tables)",
       "masks", "labels"),
    _m("mse", "sum over channels and pixels of the squared reconstruction error (ClevrTex "
              "\"MSE\")", "recon", "image"),
    _m("mse_mean", "mean over channels and pixels of the squared reconstruction error "
                   "(per-pixel MSE)", "recon", "image"),
    _m("otsu_iou", "per-slot maps binarised by Otsu's threshold, Hungarian-matched to the "
                   "objects (background dropped), mean IoU (contrastive slot attention, Table 2)",
       "masks", "labels"),
    _m("probe_ap", "mean average precision of linear probes answering \"is there a (size, colour, "
                   "shape) object\" from the max-pooled slot features (contrastive slot attention, "
                   "Table 3); fitted on half the evaluated images, scored on the other half",
       "features", "factors", per_image=False),
    *(_m(f"ap_{t}", f"average precision of the per-slot property predictions, a detection counting "
                    f"when its argmax classes match a real object {within} (Slot Attention set "
                    f"prediction, Table 1; distances in scene units); over the evaluated set",
         "predictions", "factors", per_image=False)
      for t, within in (("inf", "at any distance"), ("1", "closer than 1"), ("0_5", "closer than 0.5"),
                        ("0_25", "closer than 0.25"), ("0_125", "closer than 0.125"))),
)}


def needing(names, what: str) -> list[str]:
    """The names among ``names`` (in their order) of catalogued metrics that need the input
    ``what`` (one of :data:`METRIC_INPUTS`); other entries are left out. ``needing(names,
    "labels")``: the metrics a dataset without ground-truth masks cannot score."""
    if what not in METRIC_INPUTS:
        raise ValueError(f"unknown metric input {what!r} (known: {', '.join(METRIC_INPUTS)})")
    return [n for n in names if isinstance(n, str) and n in METRICS and what in METRICS[n].needs]
