"""The validated spec as the rest of the pipeline sees it.

``ocdsl.spec.load`` produces a :class:`Spec`; graph/, codegen/ and train/ read only this.
Every part keeps the key path it came from, and ``Spec.diag(keypath, msg)`` turns that into
a :class:`~ocdsl.errors.Diagnostic` with the file, line and column of the key.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ocdsl.errors import Diagnostic
from ocdsl.spec.config import DataSpec, EvalSpec, PhaseSpec, Sections, TrainSpec, build_sections
from ocdsl.shapes import Dim, Shape, ShapeError

__all__ = ["Location", "Locations", "Signature", "Ref", "NodeSpec", "Spec", "BATCH", "OVERRIDE_FILE"]

BATCH = "B"  # the one size that is always free (symbolic) in a signature
#: The "file" of a value set by a command-line override (``--set key=value``).
OVERRIDE_FILE = "--set"


@dataclass(frozen=True)
class Location:
    file: str
    line: int = 0
    col: int = 0


class Locations:
    """Key path -> source location. A key path missing from the map (a default filled in,
    a value inside an inline array) reports the location of its nearest ancestor."""

    def __init__(self, default_file: str = "<spec>"):
        self._map: dict[tuple, Location] = {}
        self._values: dict[tuple, Location] = {}
        self.default_file = default_file

    def set(self, keypath: tuple, loc: Location) -> None:
        self._map[tuple(keypath)] = loc

    def get(self, keypath: tuple) -> Location:
        kp = tuple(keypath)
        while kp:
            if kp in self._map:
                return self._map[kp]
            kp = kp[:-1]
        return self._map.get((), Location(self.default_file))

    def __contains__(self, keypath) -> bool:
        return tuple(keypath) in self._map

    def items(self):
        return self._map.items()

    def update(self, other: "Locations") -> None:
        self._map.update(other._map)
        self._values.update(other._values)

    # ---- helpers added by the spec front end (ocdsl.spec.source / merge) --------------------

    def set_value(self, keypath: tuple, loc: Location) -> None:
        """Record where the *value* at ``keypath`` starts: the first character inside the
        quotes of a single-line string whose text maps 1:1 to the file (no escapes)."""
        self._values[tuple(keypath)] = loc

    def value(self, keypath: tuple) -> Location | None:
        """Where the string value at ``keypath`` starts, or None when not known exactly."""
        return self._values.get(tuple(keypath))

    def remove_under(self, keypath: tuple) -> None:
        """Forget ``keypath`` and everything below it (its value was replaced)."""
        kp = tuple(keypath)
        n = len(kp)
        for m in (self._map, self._values):
            for k in [k for k in m if k[:n] == kp]:
                del m[k]

    def derivation(self, keypath: tuple) -> int:
        """How directly the spec sets ``keypath``: 0 by a ``--set`` override, 1 in the spec's
        own file, 2 in a spec it extends. Where an error involves several keys, the one with
        the smallest derivation is the one the user changed last: a variant is told about
        its own line, not about the base's."""
        f = self.get(keypath).file
        return 0 if f.startswith(OVERRIDE_FILE) else (1 if f == self.default_file else 2)

    def copy(self) -> "Locations":
        """An independent copy (same default file)."""
        out = Locations(self.default_file)
        out.update(self)
        return out


@dataclass(frozen=True)
class Signature:
    """An einops-style shape signature such as ``"B K (H W) D"``.

    ``groups``: one tuple per axis; each element is a dim name or an int literal, and a
    parenthesised group is a product (``("H", "W")``). ``text`` is what the user wrote.
    """

    text: str
    groups: tuple[tuple[str | int, ...], ...]

    @property
    def names(self) -> list[str]:
        return [n for g in self.groups for n in g if isinstance(n, str)]

    def axis_names(self) -> list[str]:
        """Readable name of each axis: ``["B", "K", "(H W)", "D"]``."""
        return [str(g[0]) if len(g) == 1 else "(" + " ".join(map(str, g)) + ")" for g in self.groups]

    def resolve(self, dims: dict[str, int], free: tuple[str, ...] | frozenset = ()) -> Shape:
        """Shape with [dims] substituted; ``B`` and the names in ``free`` (run-time sizes
        named by ops, e.g. ``L``) stay symbolic. Raises ShapeError for any other name."""
        out = []
        for g in self.groups:
            d = Dim(1, ())
            for n in g:
                if isinstance(n, int):
                    d = d * n
                elif n in dims:
                    d = d * int(dims[n])
                elif n == BATCH or n in free:
                    d = d * n
                else:
                    raise ShapeError(f"unknown size {n!r} in signature {self.text!r}")
            out.append(d)
        return tuple(out)

    def __str__(self) -> str:
        return self.text


@dataclass(frozen=True)
class Ref:
    """A reference to a tensor: ``"image"`` (a model input), ``"encoder"`` (a node's
    default output) or ``"slots.attention"`` (a named output port)."""

    node: str
    port: str | None
    text: str
    keypath: tuple = ()

    @staticmethod
    def parse(text: str, keypath: tuple = ()) -> "Ref":
        node, _, port = text.partition(".")
        return Ref(node, port or None, text, tuple(keypath))


@dataclass
class NodeSpec:
    """One ``[model.nodes.<name>]`` table.

    ``inputs``: op input port -> Ref (``input = "x"`` fills the op's first port);
    ``params``: the op's parameters as written (sizes may still be strings like "K");
    ``outputs``: op output port -> declared Signature (``output = "B D"`` declares the
    first port); a port not declared is inferred and not checked.
    """

    name: str
    op: str
    inputs: dict[str, Ref]
    params: dict[str, Any]
    outputs: dict[str, Signature]
    keypath: tuple
    shared_with: str | None = None  # reuse another node's module (shared weights)


@dataclass
class Spec:
    """A loaded, validated spec. ``data`` is the merged raw mapping (after ``extends`` and
    overrides); the run configuration is read from the typed sections (:attr:`train`,
    :attr:`phases`, :attr:`data_cfg`, :attr:`eval_cfg`), never from ``data``.
    Analysing the spec (ocdsl/graph) reads it and does not change it."""

    path: Path
    name: str
    data: dict[str, Any]
    locations: Locations
    dims: dict[str, int]
    inputs: dict[str, Signature]
    nodes: dict[str, NodeSpec]
    losses: dict[str, Any]       # name -> expression AST (ocdsl.spec.expr)
    schedules: dict[str, Any]    # name -> expression AST
    source_hash: str             # sha256 of the canonical merged spec (JSON, sorted keys)
    warnings: list[Diagnostic] = field(default_factory=list)
    # Sizes known only at run time, named by ops (random_masking's kept = "L") -> that node.
    dynamic_sizes: dict[str, str] = field(default_factory=dict)
    sections: Sections | None = None  # the typed sections: see ``config``
    blocks: dict[str, Any] = field(default_factory=dict)  # [blocks]: name -> ocdsl.spec.blocks.BlockSpec

    @property
    def meta(self) -> dict[str, Any]:
        return self.data.get("meta", {})

    @property
    def config(self) -> Sections:
        """The typed ``[train]`` / ``[data]`` / ``[eval]`` sections (ocdsl/spec/config.py),
        built from :attr:`data` on first use and kept (``load`` builds them at once)."""
        if self.sections is None:
            self.sections = build_sections(self.data, list(self.losses))
        return self.sections

    @property
    def train(self) -> TrainSpec:
        """``[train]``, typed, with its defaults."""
        return self.config.train

    @property
    def data_cfg(self) -> DataSpec:
        """``[data]``, typed."""
        return self.config.data

    @property
    def eval_cfg(self) -> EvalSpec:
        """``[eval]``, typed, with its defaults."""
        return self.config.eval

    @property
    def invariances(self) -> list[dict[str, Any]]:
        return self.data.get("invariances", [])

    @property
    def steps_per_epoch(self) -> float | None:
        """Steps in one epoch: ``train.steps_per_epoch``, or ``train.epoch_size`` (images)
        / ``train.batch_size``; None when neither is set. Expressions see
        ``epoch = step / steps_per_epoch`` (fractional)."""
        return self.train.epoch_steps

    def input_shapes(self, batch: int) -> dict[str, tuple[int, ...]]:
        """Each model input's shape with its free sizes (the batch ``B``) set to ``batch``."""
        return {name: tuple(d.value if d.is_concrete else batch for d in sig.resolve(self.dims))
                for name, sig in self.inputs.items()}

    @property
    def phases(self) -> tuple[PhaseSpec, ...]:
        """``[[train.phases]]``, typed (empty when the spec has none)."""
        return self.train.phases

    @property
    def total_steps(self) -> int | None:
        """Steps of the whole run as written: the phases' sum, else ``train.steps``."""
        return self.train.total_steps

    def schedule_values(self, step: int = 0, phase_step: int | None = None,
                        phase_steps: int | None = None, total_steps: int | None = None) -> dict[str, Any]:
        """Every [schedules] entry evaluated at ``step`` by the expression interpreter
        (the generated ``schedules(step, phase_step, phase_steps, total_steps)`` computes the
        same values). ``total_steps`` (the run's length; the trainer passes it, ``--steps``
        included) defaults to :attr:`total_steps` (as written, 1 when unknown),
        ``phase_step`` to ``step`` and ``phase_steps`` to ``total_steps`` (one phase spanning
        the run). Raises SpecError naming the schedule whose expression fails (e.g. a
        division by zero)."""
        from ocdsl.spec import expr as E

        env: dict[str, Any] = dict(self.dims, step=step)
        env["total_steps"] = (self.total_steps or 1) if total_steps is None else total_steps
        env["phase_step"] = step if phase_step is None else phase_step
        env["phase_steps"] = env["total_steps"] if phase_steps is None else phase_steps
        spe = self.steps_per_epoch
        if spe:
            env["epoch"] = step / spe
        out: dict[str, Any] = {}
        pending = dict(self.schedules)
        while pending:
            ready = [n for n, e in pending.items()
                     if all(m in env or m not in pending for m in E.names(e))]
            if not ready:  # a cycle; validation reports it
                break
            for n in ready:
                loc = self.locations.get(("schedules", n))
                env[n] = out[n] = E.evaluate(pending.pop(n), env, file=loc.file,
                                             keypath=("schedules", n))
        return out

    def resolve_path(self, keypath: tuple) -> Path:
        """The file path stored at ``keypath``, made absolute relative to the folder of the
        spec file that wrote it (a base spec's path stays relative to the base spec, even
        when a variant in another folder ``extends`` it); a ``--set`` override is relative
        to the working directory."""
        node: Any = self.data
        for k in keypath:
            node = node[k]
        p = Path(str(node)).expanduser()
        if p.is_absolute():
            return p
        loc = self.locations.get(tuple(keypath))
        f = Path(loc.file)
        if loc.file.startswith("--set") or loc.file.startswith("<") or not f.exists():
            return Path.cwd() / p
        return (f.parent / p).resolve()

    def diag(self, keypath: tuple, message: str, hint: str | None = None,
             severity: str = "error") -> Diagnostic:
        loc = self.locations.get(tuple(keypath))
        return Diagnostic(message, file=loc.file, line=loc.line, col=loc.col,
                          keypath=tuple(keypath), hint=hint, severity=severity)
