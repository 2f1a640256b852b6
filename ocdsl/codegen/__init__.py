"""Graph -> Python source -> imported module -> (optionally) torch.compile."""
from ocdsl.codegen.emit import class_name, generate_source
from ocdsl.codegen.load import import_generated, instantiate, should_compile, write_source

__all__ = ["class_name", "generate_source", "import_generated", "instantiate", "should_compile", "write_source"]
