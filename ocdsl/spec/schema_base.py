"""The building blocks of the spec's JSON Schema (ocdsl/spec/schema.py, schema_run.py): a
described subschema, expressions, signatures, references, positive integers and the name
patterns."""

from __future__ import annotations

from typing import Any

from ocdsl.ops.registry import NAME_PATTERN
from ocdsl.spec.bounds import MAX_COUNT

__all__ = ["IDENT", "PATH_PATTERN", "REF_PATTERN"]

# One grammar for every name a spec gives (nodes, ports, losses, dims, schedules, phases ...):
# the op registry's, so op parameters that name things use it too. Patterns are ECMA-262, as
# JSON Schema says: `$` is the end of the text (ocdsl.spec.validate checks them that way).
IDENT = NAME_PATTERN
REF_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$"
PATH_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$"   # node, or node.inner...


def _d(description: str, **schema: Any) -> dict:
    return {"description": description, **schema}


def _expression(description: str) -> dict:
    return _d(description, type="string", minLength=1)


def _number_or_expression(description: str, **num: Any) -> dict:
    return _d(description, anyOf=[{"type": "number", **num}, {"type": "string", "minLength": 1}])


def _signature(description: str = "Shape signature, einops style: 'B K (H W) D'. Names are [dims] "
                                  "entries or the free batch size B; integers are literal sizes.") -> dict:
    return {"$ref": "#/$defs/signature", "description": description}


def _ref(description: str) -> dict:
    return {"$ref": "#/$defs/ref", "description": description}


_SIZE_HINT = "an evaluation set holds at most 2**24 images"
_BATCH_HINT = "a batch holds at most 2**20 examples; the memory estimate (ocdsl validate) says what fits"


def _pos_int(description: str, **extra: Any) -> dict:
    return _d(description, **{"type": "integer", "minimum": 1, "maximum": MAX_COUNT, **extra})
