"""The app's state in the URL: what each page keeps in its query parameters.

Every page names its parameters once (a :class:`Param` per session-state
key). ``restore`` runs before the page draws a widget: when the URL holds
values this session did not write (a shared link, a reload, the back
button), they win. ``publish`` runs after the widgets and writes the state
back, so the address bar always names the view on screen.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import streamlit as st

_WRITTEN = "_url_written"


@dataclass(frozen=True)
class Param:
    key: str  # the session-state key, and the query parameter's name unless ``url`` names it
    parse: Callable[[str], Any]
    show: Callable[[Any], str] = str
    url: str | None = None
    old_url: str | None = None  # a name earlier links used: still read, never written

    @property
    def name(self) -> str:
        """The query parameter's name."""
        return self.url or self.key

    def raw(self) -> str | None:
        value = st.query_params.get(self.name)
        return value if value is not None or self.old_url is None else st.query_params.get(self.old_url)


def restore(params: Sequence[Param]) -> list[str]:
    """Copy URL values into session state when the URL is not what this
    session last wrote; returns a sentence for each value that was refused."""
    query = {p.name: p.raw() for p in params if p.raw() is not None}
    written = st.session_state.get(_WRITTEN, {})
    if not query or all(written.get(key) == value for key, value in query.items()):
        return []
    problems = []
    for param in params:
        raw = query.get(param.name)
        if raw is None:
            continue
        try:
            st.session_state[param.key] = param.parse(raw)
        except (ValueError, KeyError) as error:
            problems.append(f"the link's {param.name}={raw!r} was ignored ({error})")
    return problems


def publish(params: Sequence[Param]) -> None:
    """Write the current values of ``params`` into the URL."""
    values = {p.name: p.show(st.session_state[p.key]) for p in params if p.key in st.session_state}
    for key, value in values.items():
        if st.query_params.get(key) != value:
            st.query_params[key] = value
    for param in params:
        if param.old_url is not None and param.old_url in st.query_params:
            del st.query_params[param.old_url]
    st.session_state[_WRITTEN] = {**st.session_state.get(_WRITTEN, {}), **values}


def parse_int(low: int, high: int) -> Callable[[str], int]:
    def parse(raw: str) -> int:
        value = int(raw)
        if not low <= value <= high:
            raise ValueError(f"not within {low}..{high}")
        return value
    return parse


def parse_choice(choices: Sequence[str]) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        if raw not in choices:
            raise ValueError(f"not one of {', '.join(choices)}")
        return raw
    return parse


def parse_bool(raw: str) -> bool:
    if raw not in ("0", "1"):
        raise ValueError("not 0 or 1")
    return raw == "1"


def show_bool(value: bool) -> str:
    return "1" if value else "0"


def forget(keys: Sequence[str]) -> None:
    """Drop parameters that no longer describe the view (a knob back at its preset's value)."""
    written = st.session_state.get(_WRITTEN, {})
    for key in keys:
        if key in st.query_params:
            del st.query_params[key]
        written.pop(key, None)


def parse_float(raw: str) -> float:
    value = float(raw)
    if not 0 <= value < float("inf"):
        raise ValueError("not a finite number >= 0")
    return value
