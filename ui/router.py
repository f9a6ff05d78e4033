"""Keep every page behind app.py's ``st.navigation`` router.

A ``pages/`` folder beside app.py makes Streamlit start in its legacy page
discovery: until some session has run app.py, a link straight to a page
(``/learn?chapter=...``, a shared lesson) runs that file alone, with the
legacy sidebar and without app.py's router. A page calls ``require_router``
first: outside the router it switches discovery off, as ``st.navigation``
itself does, and reruns, so app.py routes the same URL.
"""

from __future__ import annotations

import streamlit as st

ROUTED = "_routed_by_app"


def mark_routed() -> None:
    """Called by app.py on every run, before the page runs."""
    st.session_state[ROUTED] = True


def require_router() -> None:
    if st.session_state.get(ROUTED):
        return
    from streamlit.runtime.pages_manager import PagesManager

    PagesManager.uses_pages_directory = False
    st.rerun()
