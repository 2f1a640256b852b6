"""The op library. Importing this package registers every op family."""
from ocdsl.ops.registry import OpDef, Port, Symmetry, all_ops, get, names, register

__all__ = ["OpDef", "Port", "Symmetry", "all_ops", "get", "names", "register"]
