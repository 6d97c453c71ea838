"""Constructing a table model asks pydantic, for every field with a ``default_factory``,
whether that factory takes the validated data — and pydantic answers with
``inspect.signature`` on each call (pydantic 2.14, through SQLModel's table-model
constructor). A ticket's intake builds a handful of rows with a dozen such fields each,
so that question was a tenth of its CPU. The answer depends only on the factory: it is
remembered here, once per factory. (Unhashable factories, if any, are asked as before.)"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from pydantic._internal import _fields

_asked: Callable[[Any], bool] = _fields.takes_validated_data_argument


@functools.lru_cache(maxsize=1024)
def _remembered(factory: Callable[..., Any]) -> bool:
    return bool(_asked(factory))


def takes_validated_data_argument(factory: Callable[..., Any]) -> bool:
    try:
        return _remembered(factory)
    except TypeError:  # an unhashable callable
        return bool(_asked(factory))


def install() -> None:
    """Idempotent; pydantic.fields looks the function up on the module at each call."""
    if _fields.takes_validated_data_argument is not takes_validated_data_argument:
        _fields.takes_validated_data_argument = takes_validated_data_argument  # type: ignore[assignment]
