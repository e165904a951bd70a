"""A set of definitions and the resolution of feature references against it.

A reference is ``"view:feature"`` or a bare feature name that only one view (or one
on-demand feature) defines; ``"view:*"`` means every feature of the view.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from driftloop.core.errors import InvalidParameterError, UnknownFeatureError
from driftloop.features._definitions import Entity, FeatureView
from driftloop.features._on_demand import OnDemandFeature, check_no_cycles, evaluation_order
from driftloop.features._windows import StreamFeatureView

__all__ = ["Catalog", "Definition", "Resolved"]

AnyView = FeatureView | StreamFeatureView
Definition = Entity | FeatureView | StreamFeatureView | OnDemandFeature


@dataclass
class Resolved:
    """What a list of references asks for: per view, its features; on-demand, in order."""

    views: dict[str, list[str]] = field(default_factory=dict)
    on_demand: list[OnDemandFeature] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)


class Catalog:
    """Named definitions, checked together (unique names, no on-demand cycles)."""

    def __init__(self, definitions: Iterable[Definition] = ()) -> None:
        self.entities: dict[str, Entity] = {}
        self.views: dict[str, AnyView] = {}
        self.on_demand: dict[str, OnDemandFeature] = {}
        self._resolved: dict[tuple[str, ...], Resolved] = {}
        self.add(*definitions)

    def add(self, *definitions: Definition) -> None:
        for d in definitions:
            if isinstance(d, Entity):
                self.entities[d.name] = d
            elif isinstance(d, FeatureView | StreamFeatureView):
                if d.name in self.on_demand:
                    raise InvalidParameterError(f"Name '{d.name}' is both a view and a feature.")
                self.views[d.name] = d
                for e in d.entities:
                    self.entities.setdefault(e.name, e)
            elif isinstance(d, OnDemandFeature):
                self.on_demand[d.name] = d
            else:
                raise InvalidParameterError(
                    f"Cannot register {type(d).__name__}: expected an Entity, FeatureView, "
                    "StreamFeatureView or OnDemandFeature."
                )
        check_no_cycles(list(self.on_demand.values()))
        self._resolved.clear()

    def all(self) -> list[Definition]:
        return [*self.entities.values(), *self.views.values(), *self.on_demand.values()]

    def view(self, name: str) -> AnyView:
        if name not in self.views:
            raise UnknownFeatureError(
                f"Feature view '{name}' is not defined. Known: {', '.join(sorted(self.views))}."
            )
        return self.views[name]

    def known_features(self) -> list[str]:
        names = [f"{v.name}:{f}" for v in self.views.values() for f in v.feature_names]
        return sorted(names) + sorted(self.on_demand)

    def _owner_of(self, feature: str) -> list[str]:
        return [v.name for v in self.views.values() if feature in v.feature_names]

    def resolve(self, references: Sequence[str]) -> Resolved:
        """What ``references`` ask for (cached: serving asks the same list every time)."""
        key = (references,) if isinstance(references, str) else tuple(references)
        if key not in self._resolved:
            if len(self._resolved) > 1_000:
                self._resolved.clear()
            self._resolved[key] = self._resolve(key)
        return self._resolved[key]

    def _resolve(self, references: Sequence[str]) -> Resolved:
        out = Resolved()
        wanted_on_demand: list[str] = []
        for ref in references:
            for view_name, feature in self._expand(ref):
                if view_name is None:
                    wanted_on_demand.append(feature)
                else:
                    self._add(out, view_name, feature)
        out.on_demand = evaluation_order(wanted_on_demand, self.on_demand)
        for od in out.on_demand:
            for name in od.inputs:
                if name in self.on_demand:
                    continue
                owners = self._owner_of(name)
                if len(owners) == 1:
                    self._add(out, owners[0], name, output=False)
                elif len(owners) > 1:
                    raise InvalidParameterError(
                        f"Input '{name}' of on-demand feature '{od.name}' is defined by several "
                        f"views ({', '.join(owners)}); rename one of them."
                    )
                # else: a request field, checked when the function runs
        out.outputs += [od.name for od in out.on_demand if od.name in wanted_on_demand]
        dupes = sorted({n for n in out.outputs if out.outputs.count(n) > 1})
        if dupes:
            raise InvalidParameterError(
                f"Features {', '.join(dupes)} are requested from several views; "
                "output columns must be unique."
            )
        return out

    def _add(self, out: Resolved, view_name: str, feature: str, *, output: bool = True) -> None:
        feats = out.views.setdefault(view_name, [])
        if feature not in feats:
            feats.append(feature)
        if output and feature not in out.outputs:
            out.outputs.append(feature)

    def _expand(self, ref: str) -> list[tuple[str | None, str]]:
        if ":" in ref:
            view_name, _, feature = ref.partition(":")
            view = self.views.get(view_name)
            if view is not None and feature == "*":
                return [(view_name, f) for f in view.feature_names]
            if view is not None and feature in view.feature_names:
                return [(view_name, feature)]
            raise self._unknown(ref)
        if ref in self.on_demand:
            return [(None, ref)]
        owners = self._owner_of(ref)
        if len(owners) == 1:
            return [(owners[0], ref)]
        if len(owners) > 1:
            raise InvalidParameterError(
                f"Feature '{ref}' is defined by several views ({', '.join(owners)}); "
                f"say which: {', '.join(f'{o}:{ref}' for o in owners)}."
            )
        raise self._unknown(ref)

    def _unknown(self, ref: str) -> UnknownFeatureError:
        return UnknownFeatureError(
            f"Feature '{ref}' is not defined. Known: {', '.join(self.known_features())}."
        )
