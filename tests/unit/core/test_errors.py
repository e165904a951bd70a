from __future__ import annotations

import inspect
import re

from driftloop.core import errors


def all_errors() -> list[type[errors.DriftloopError]]:
    return [
        obj
        for _, obj in inspect.getmembers(errors, inspect.isclass)
        if issubclass(obj, errors.DriftloopError)
    ]


def test_every_error_has_its_own_kebab_case_code() -> None:
    codes = [cls.code for cls in all_errors()]
    assert len(codes) == len(set(codes))
    assert all(re.fullmatch(r"[a-z]+(-[a-z]+)*", code) for code in codes)


def test_every_error_is_drawn_in_the_module_docstring_and_exported() -> None:
    doc = errors.__doc__ or ""
    for cls in all_errors():
        assert f"{cls.__name__}" in doc
        assert f": {cls.code}" in doc
        assert cls.__name__ in errors.__all__


def test_errors_callers_catch_as_builtins_keep_working() -> None:
    assert issubclass(errors.ConfigError, ValueError)
    assert issubclass(errors.UnknownFeatureError, LookupError)
    assert issubclass(errors.BackendUnavailableError, ConnectionError)
    assert str(errors.ModelNotFoundError("Model 'fraud' is not registered.")) == (
        "Model 'fraud' is not registered."
    )
