"""The checks of a spec's expressions: ``[losses]``, ``[schedules]`` and the optimizers'
``lr`` (names allowed in each, ``node.port`` against the op's outputs) and cycles among
losses and schedules; a mixin of the validator in validate.py (it uses its ``data``,
``locs``, ``node_tables``, ``loss_names``, ``schedule_names``, ``input_names``,
``has_epoch``, ``dim_names``, ``losses``, ``schedules``, ``error``, ``error_at``,
``parse_expr`` and ``opdef``). Also the names an expression may use without defining them
(:data:`RESERVED`). Moved out of validate.py unchanged.
"""

from __future__ import annotations

from typing import Any

import networkx as nx

from ocdsl.errors import did_you_mean
from ocdsl.spec import expr as E
from ocdsl.spec.validate_run import _table

__all__ = ["ExpressionChecks", "RESERVED", "STEP", "EPOCH", "PHASE_STEP", "PHASE_STEPS", "TOTAL_STEPS"]


STEP = "step"
EPOCH = "epoch"   # step / train.steps_per_epoch, or step * batch_size / train.epoch_size
PHASE_STEP = "phase_step"    # steps completed in the current phase (or run of phases sharing a clock)
PHASE_STEPS = "phase_steps"  # that phase's (or clock's) length in steps
TOTAL_STEPS = "total_steps"  # the run's length in steps (after --steps N): N
RESERVED = {STEP: "the training step", EPOCH: "the training epoch",
            PHASE_STEP: "steps done in the current training phase",
            PHASE_STEPS: "the current training phase's length",
            TOTAL_STEPS: "the training run's length in steps"}


class ExpressionChecks:
    # -- losses, schedules, learning rates
    def check_expressions(self) -> None:
        for name, text in _table(self.data.get("schedules")).items():
            kp = ("schedules", name)
            expr = self.parse_expr(text, kp)
            if expr is not None:
                self.check_refs(expr, kp, "schedule", f"schedule '{name}'")
                self.schedules[name] = expr
        for name, text in _table(self.data.get("losses")).items():
            kp = ("losses", name)
            expr = self.parse_expr(text, kp)
            if expr is not None:
                self.check_refs(expr, kp, "loss", f"loss '{name}'")
                self.losses[name] = expr
        train = _table(self.data.get("train"))
        self.check_lr(train.get("optimizer"), ("train", "optimizer"))
        phases = train.get("phases")
        if isinstance(phases, list):
            for i, ph in enumerate(phases):
                if isinstance(ph, dict):
                    self.check_lr(ph.get("optimizer"), ("train", "phases", i, "optimizer"))
        self.check_cycles()

    def check_lr(self, opt: Any, kp: tuple) -> None:
        if isinstance(opt, dict) and isinstance(opt.get("lr"), str):
            expr = self.parse_expr(opt["lr"], kp + ("lr",))
            if expr is not None:
                self.check_refs(expr, kp + ("lr",), "schedule", "the learning rate")

    def check_refs(self, expr: E.Expr, kp: tuple, context: str, what: str) -> None:
        """Names of ``expr`` allowed in ``context`` ("loss" or "schedule")."""
        numeric = [STEP] + ([EPOCH] if self.has_epoch else []) + self.dim_names + self.schedule_names
        if context == "schedule":
            numeric += [PHASE_STEP, PHASE_STEPS, TOTAL_STEPS]
        allowed = numeric + (self.loss_names + self.input_names + list(self.node_tables) if context == "loss" else [])
        for node in E.walk(expr):
            if isinstance(node, E.Name):
                n = node.id
                if n in allowed:
                    continue
                if n in (PHASE_STEP, PHASE_STEPS):
                    self.error_at(node, kp, f"'{n}' in {what}: only [schedules] see the phase clock",
                                  f"define a schedule (e.g. warm = \"min(1, {PHASE_STEP} / 1000)\") and use it here")
                elif n == TOTAL_STEPS:
                    self.error_at(node, kp, f"'{n}' in {what}: only [schedules] see the run's length",
                                  f"define a schedule (e.g. progress = \"step / {TOTAL_STEPS}\") and use it here")
                elif n == EPOCH:
                    self.error_at(node, kp, f"'{EPOCH}' in {what} needs the length of an epoch",
                                  "set train.steps_per_epoch (steps) or train.epoch_size (images; "
                                  "epoch = step * batch_size / epoch_size)")
                elif context == "schedule" and (n in self.loss_names or n in self.input_names or n in self.node_tables):
                    kind = "loss" if n in self.loss_names else ("model input" if n in self.input_names else "node")
                    self.error_at(node, kp, f"{what} cannot use the {kind} '{n}'",
                                  "schedules are numbers computed from step, dims and other schedules")
                else:
                    self.error_at(node, kp, f"unknown name '{n}' in {what}",
                                  did_you_mean(n, allowed) or _known(context, allowed))
            elif isinstance(node, E.Attr):
                if context == "schedule":
                    self.error_at(node, kp, f"{what} cannot use the node output '{node.text}'",
                                  "schedules are numbers computed from step, dims and other schedules")
                    continue
                self.check_port_ref(node.node, node.port, node.text, kp, node)

    def check_port_ref(self, node: str, port: str | None, text: str, kp: tuple, at: Any = None) -> None:
        """``node`` (``.port``) must name a node (and one of its op's outputs)."""
        report = (lambda m, h=None: self.error_at(at, kp, m, h)) if at is not None else \
            (lambda m, h=None: self.error(kp, m, h))
        if node in self.input_names:
            if port is not None:
                report(f"'{text}': model input '{node}' has no ports")
            return
        if node not in self.node_tables:
            report(f"unknown node '{node}' in '{text}'",
                   did_you_mean(node, list(self.node_tables) + self.input_names)
                   or "nodes: " + ", ".join(self.node_tables))
            return
        opdef = self.opdef(node)
        if port is not None and opdef is not None and port not in opdef.outputs:
            report(f"'{text}': node '{node}' ({opdef.name}) has no output '{port}'",
                   did_you_mean(port, opdef.outputs) or f"outputs: {', '.join(opdef.outputs)}")

    def check_cycles(self) -> None:
        G = nx.DiGraph()
        kinds = {}
        for table, exprs in (("schedules", self.schedules), ("losses", self.losses)):
            for name, expr in exprs.items():
                G.add_node(name)
                kinds[name] = table
                for n in E.names(expr):
                    if n in self.schedules or n in self.losses:
                        G.add_edge(name, n)
        for comp in nx.strongly_connected_components(G):
            if len(comp) == 1:
                (n,) = comp
                if not G.has_edge(n, n):
                    continue
                cycle = [n, n]
            else:
                order = {n: i for i, n in enumerate(G.nodes)}
                start = min(comp, key=order.get)
                edges = nx.find_cycle(G.subgraph(comp), source=start)
                cycle = [edges[0][0]] + [e[1] for e in edges]
            cycle = self.from_most_derived(cycle, kinds)
            first = cycle[0]
            self.error((kinds[first], first), f"{kinds[first]} refer to each other in a cycle: "
                                              f"{' -> '.join(cycle)}",
                       "a loss or schedule cannot depend on itself")

    def from_most_derived(self, cycle: list[str], kinds: dict[str, str]) -> list[str]:
        """``cycle`` (first == last) rotated to start at the member set last: an override,
        else one in the spec's own file rather than a spec it extends. A variant that closes
        a cycle is told so at its own line, not at the base's."""
        members = cycle[:-1]

        i = min(range(len(members)), key=lambda j: self.locs.derivation((kinds[members[j]], members[j])))
        return members[i:] + members[:i] + [members[i]]


def _known(context: str, allowed: list[str]) -> str:
    if context == "schedule":
        return "a schedule may use step, [dims] and other [schedules]"
    return "known names: " + ", ".join(sorted(allowed)) if len(allowed) <= 20 else \
        "a loss may use step, dims, schedules, losses, model inputs and nodes"
