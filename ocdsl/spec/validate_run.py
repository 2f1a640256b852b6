"""The semantic checks of ``[train]``, ``[eval]`` and ``[[invariances]]``: a mixin of the
validator in validate.py (it uses its ``data``, ``locs``, ``errors``, ``warnings``,
``node_tables``, ``loss_names``, ``schedule_names``, ``input_names``, ``error``, ``where``,
``opdef`` and ``check_port_ref``). Moved out of validate.py unchanged.
"""

from __future__ import annotations

from typing import Any

from ocdsl.catalog import METRICS
from ocdsl.errors import SpecError, did_you_mean
from ocdsl.spec.config import EVAL_OUTPUTS, optimizer_spec
from ocdsl.spec.schema import REF_PATTERN
from ocdsl.spec.schema_errors import _diag, pattern_matches
from ocdsl.spec.threshold import parse_threshold

__all__ = ["RunChecks"]


def _table(x: Any) -> dict:
    return x if isinstance(x, dict) else {}


class RunChecks:
    # -- train / eval / invariances
    def check_train(self) -> None:
        train = self.data.get("train")
        if not isinstance(train, dict):
            return
        loss = train.get("loss")
        if isinstance(loss, str):
            if loss not in self.loss_names:
                self.error(("train", "loss"), f"train.loss names no loss '{loss}'",
                           did_you_mean(loss, self.loss_names) or
                           (f"losses: {', '.join(self.loss_names)}" if self.loss_names else "define it in [losses]"))
        phases = train.get("phases")
        phases = phases if isinstance(phases, list) else []
        if loss is None and self.loss_names and not (phases and all(isinstance(p, dict) and "loss" in p for p in phases)):
            self.error(("train",), "train.loss is missing: which loss does training minimise?",
                       f"add loss = \"{self.loss_names[0]}\" to [train]")
        if phases and "steps" in train:
            self.warnings.append(_diag(self.locs, ("train", "steps"),
                                       "train.steps is ignored: the phases' steps are used", severity="warning"))
        names_seen: dict[str, int] = {}
        clocks: list[str | None] = []
        for i, ph in enumerate(phases):
            if not isinstance(ph, dict):
                clocks.append(None)
                continue
            kp = ("train", "phases", i)
            pname = ph.get("name", f"phase{i + 1}")
            if isinstance(pname, str):
                if pname in names_seen:
                    self.error(kp + ("name",), f"two phases are named '{pname}'",
                               f"phase {names_seen[pname] + 1} already is; phase names must be unique")
                names_seen.setdefault(pname, i)
            clock = ph.get("clock")
            clock = clock if isinstance(clock, str) else None
            if clock is not None and clock in clocks and clocks[-1] != clock:
                self.error(kp + ("clock",), f"clock '{clock}' is shared by phases that are not consecutive",
                           "a clock spans a run of consecutive phases; give this phase its own clock")
            clocks.append(clock)
            if ph.get("fresh_optimizer") is False and i == 0:
                self.error(kp + ("fresh_optimizer",), "the first phase has no previous optimizer to keep",
                           "drop fresh_optimizer = false from the first phase")
            elif ph.get("fresh_optimizer") is False and isinstance(phases[i - 1], dict):
                self.check_kept_optimizer(train, phases[i - 1], ph, i)
            if "trainable" in ph and "frozen" in ph:
                self.error(kp + ("frozen",), "give either trainable or frozen, not both",
                           "trainable lists what trains (every other node is frozen); frozen lists what does not")
            pl = ph.get("loss")
            if isinstance(pl, str) and pl not in self.loss_names:
                self.error(kp + ("loss",), f"phase loss names no loss '{pl}'", did_you_mean(pl, self.loss_names))
            seen: dict[str, str] = {}
            for key in ("trainable", "frozen"):
                names = ph.get(key)
                if not isinstance(names, list):
                    continue
                for j, n in enumerate(names):
                    if not isinstance(n, str):
                        continue
                    if n not in self.node_tables:
                        self.error(kp + (key, j), f"{key}: no node '{n}'", did_you_mean(n, self.node_tables))
                    elif n in seen and seen[n] != key:
                        self.error(kp + (key, j), f"node '{n}' is both trainable and frozen")
                    seen[n] = key

    def check_kept_optimizer(self, train: dict, before: dict, ph: dict, i: int) -> None:
        """Phase ``i`` keeps the optimizer of phase ``i - 1``: same optimizer settings (as
        typed, defaults filled in) and the same frozen nodes."""
        def frozen(p: dict) -> frozenset:
            if isinstance(p.get("trainable"), list):
                return frozenset(self.node_tables) - frozenset(p["trainable"])
            return frozenset(p["frozen"]) if isinstance(p.get("frozen"), list) else frozenset()

        def optimizer(p: dict) -> Any:
            table = p.get("optimizer", train.get("optimizer"))
            try:
                return optimizer_spec(table, ())
            except (TypeError, ValueError, KeyError):
                return None  # the schema reports a malformed table
        prev, this = before.get("name", f"phase{i}"), ph.get("name", f"phase{i + 1}")
        hint = "drop fresh_optimizer = false (a new optimizer), or train the same nodes with the same optimizer"
        if optimizer(before) != optimizer(ph):
            self.error(("train", "phases", i, "fresh_optimizer"),
                       f"phase '{this}' keeps the optimizer of '{prev}' but sets another optimizer", hint)
        elif frozen(before) != frozen(ph):
            self.error(("train", "phases", i, "fresh_optimizer"),
                       f"phase '{this}' keeps the optimizer of '{prev}' but trains other nodes", hint)

    def check_eval(self) -> None:
        ev = _table(self.data.get("eval"))
        for name in _table(ev.get("schedules")):
            if name not in self.schedule_names:
                self.error(("eval", "schedules", name), f"eval.schedules names no schedule '{name}'",
                           did_you_mean(name, self.schedule_names) or "define it in [schedules]")
        for key in EVAL_OUTPUTS:
            ref = ev.get(key)
            if isinstance(ref, str) and pattern_matches(REF_PATTERN, ref):
                node, _, port = ref.partition(".")
                if node in self.input_names:
                    self.error(("eval", key), f"eval.{key} must be a node output, not the model input '{node}'")
                else:
                    self.check_port_ref(node, port or None, ref, ("eval", key))
        self.check_success(ev)
        self.check_metric_outputs(ev)
        taken = {"test": None}  # the [data] test split is evaluated as "test"
        datasets = ev.get("datasets")
        for i, entry in enumerate(datasets if isinstance(datasets, list) else []):
            name = entry.get("name") if isinstance(entry, dict) else None
            if isinstance(name, str) and name in taken:
                self.error(("eval", "datasets", i, "name"), f"two evaluation datasets are named '{name}'",
                           "the test split of [data] is 'test'" if taken[name] is None
                           else "give each [[eval.datasets]] entry its own name")
            taken.setdefault(name, i)

    def check_augment(self) -> None:
        """[data.augment]: each [lo, hi] range ordered, mean and std of one length."""
        aug = _table(_table(self.data.get("data")).get("augment"))
        for key in ("crop_scale", "crop_ratio", "saturation"):
            v = aug.get(key)
            if isinstance(v, list) and len(v) == 2 and all(isinstance(x, (int, float)) for x in v) and v[0] > v[1]:
                self.error(("data", "augment", key), f"data.augment.{key} is [lo, hi] with lo <= hi, got {v}",
                           f"write [{v[1]}, {v[0]}]")
        mean, std = aug.get("mean"), aug.get("std")
        if isinstance(mean, list) and isinstance(std, list) and len(mean) != len(std):
            self.error(("data", "augment", "std"), f"data.augment.std has {len(std)} values and mean "
                       f"{len(mean)}", "give one mean and one std per image channel")

    def check_metric_outputs(self, ev: dict) -> None:
        """Each metric's needed outputs are named: masks by eval.masks, the reconstruction
        by eval.reconstruction (ocdsl/catalog.py says which metric needs which)."""
        metrics = ev.get("metrics")
        for i, name in enumerate(metrics if isinstance(metrics, list) else []):
            info = METRICS.get(name) if isinstance(name, str) else None
            for need, key in (("masks", "masks"), ("recon", "reconstruction"), ("features", "features"),
                              ("predictions", "predictions")):
                if info is not None and need in info.needs and not ev.get(key):
                    self.error(("eval", "metrics", i), f"metric '{name}' needs eval.{key}",
                               f"set eval.{key} to the output holding the {key}")

    def check_success(self, ev: dict) -> None:
        text = ev.get("success")
        if not isinstance(text, str) or not text.strip():
            return  # the schema reports other types
        metrics = ev.get("metrics")
        metrics = [m for m in metrics if isinstance(m, str)] if isinstance(metrics, list) else []
        sk, mk = ("eval", "success"), ("eval", "metrics")
        try:
            threshold = parse_threshold(text, **self.where(sk))
            if mk in self.locs and self.locs.derivation(mk) < self.locs.derivation(sk) \
                    and threshold.metric not in metrics:
                # a variant (or override) that drops the metric its base's success uses
                at = self.locs.get(sk)
                self.error(mk, f"eval.metrics leaves out '{threshold.metric}', which eval.success "
                               f"({at.file}:{at.line}) uses: {text!r}",
                           f"list '{threshold.metric}' in eval.metrics too, or set eval.success here")
                return
            parse_threshold(text, metrics=metrics, **self.where(sk))
        except SpecError as e:
            self.errors += e.diagnostics

    def check_invariances(self) -> None:
        invs = self.data.get("invariances")
        if not isinstance(invs, list):
            return
        for i, inv in enumerate(invs):
            if not isinstance(inv, dict):
                continue
            node = inv.get("node")
            if not isinstance(node, str):
                continue
            kp = ("invariances", i)
            if "." in node:
                table = self.block_node_table(node, kp + ("node",))
                if table is None:
                    continue
                opdef = self.ops.get(table.get("op")) if isinstance(table.get("op"), str) else None
            elif node not in self.node_tables:
                self.error(kp + ("node",), f"no node '{node}'", did_you_mean(node, self.node_tables))
                continue
            else:
                opdef = self.opdef(node)
            port = inv.get("port")
            if isinstance(port, str) and opdef is not None and port not in opdef.outputs:
                self.error(kp + ("port",), f"node '{node}' ({opdef.name}) has no output '{port}'",
                           did_you_mean(port, opdef.outputs) or f"outputs: {', '.join(opdef.outputs)}")

    def block_node_table(self, path: str, kp: tuple) -> dict | None:
        """The table of the node a path ``outer.inner`` names: node ``inner`` of the block that
        model node ``outer`` runs (deeper paths go on through nested blocks). None after
        reporting a located error."""
        blocks = _table(self.data.get("blocks"))
        tables, where = self.node_tables, "the model"
        names = path.split(".")
        for depth, name in enumerate(names):
            t = tables.get(name)
            if not isinstance(t, dict):
                self.error(kp, f"no node '{name}' in {where} (in '{path}')",
                           did_you_mean(name, list(tables)) or f"its nodes: {', '.join(tables)}")
                return None
            if depth == len(names) - 1:
                return t
            b = t.get("block") if t.get("op") == "repeat" else t.get("op")
            if b not in blocks:
                self.error(kp, f"node '{name}' runs no block, so '{path}' names nothing",
                           "a path 'node.inner' names node 'inner' of the block that 'node' runs")
                return None
            tables, where = _table(_table(blocks[b]).get("nodes")), f"block '{b}'"
        return None
