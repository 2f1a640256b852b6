"""The spec front end: read a spec (TOML/YAML) with source locations, resolve ``extends``
and overrides, validate it (JSON Schema + semantic checks, every error at once), and parse
its expressions and shape signatures.

Public entry point: :func:`load` (``ocdsl.load``). Submodules: ``source`` (reading),
``merge`` (extends, overrides), ``schema`` (the JSON Schema), ``validate``, ``expr``
(expression language), ``shape`` (signatures), ``model`` (the Spec dataclasses).
"""

from ocdsl.spec.load import load, loads
from ocdsl.spec.model import BATCH, Location, Locations, NodeSpec, Ref, Signature, Spec
from ocdsl.spec.schema import spec_schema
from ocdsl.spec.shape import parse_signature

__all__ = ["load", "loads", "spec_schema", "parse_signature", "Spec", "NodeSpec", "Signature", "Ref",
           "Location", "Locations", "BATCH"]
