"""Loss primitives and math functions callable from spec expressions."""
from ocdsl.losses.functions import FUNCTIONS, Function, get, names

__all__ = ["FUNCTIONS", "Function", "get", "names"]
