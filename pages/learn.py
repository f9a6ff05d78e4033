"""Learn: balanced packing taught chapter by chapter, from the real engine's recorded events."""

from __future__ import annotations

import html

import streamlit as st
import torch

from packviz.metrics import lower_bound
from packviz.packer import PackResult
from packviz.teach.chapter_texts import chapter_text
from packviz.teach.lesson_frames import lesson_frames
from packviz.teach.lessons import CHAPTER_BY_KEY, CHAPTERS, Chapter, format_loads, parse_loads
from packviz.teach.narration import fmt, learn
from packviz.teach.pseudocode import line_of, lines
from packviz.teach.quiz import Question, question_for
from packviz.trace.timeline import build_frames, phase_starts
from packviz.viz.figures import lesson_step_figure
from packviz.viz.gif import animation_gif
from ui.router import require_router
from ui.state import Param, parse_bool, parse_choice, parse_int, publish, restore, show_bool

require_router()

SPEEDS = {"slow": 2.0, "normal": 1.0, "fast": 0.5, "faster": 0.25}
SCREENS = {"laptop 1366 x 768": 360, "projector 1920 x 1080": 560}


def _chapter() -> Chapter:
    return CHAPTER_BY_KEY[st.session_state.chapter]


PARAMS = [
    Param("chapter", parse_choice([c.key for c in CHAPTERS])),
    Param("loads", lambda raw: format_loads(parse_loads(raw, _chapter().num_packs))),
    Param("step", parse_int(0, 10_000)),
    Param("quiz", parse_bool, show_bool),
    Param("present", parse_bool, show_bool),
    Param("speed", parse_choice(list(SPEEDS))),
    Param("screen", parse_choice(list(SCREENS))),
]

st.session_state.setdefault("chapter", CHAPTERS[0].key)
problems = restore(PARAMS)
chapter = _chapter()
st.session_state.setdefault("loads", format_loads(chapter.loads))
st.session_state.setdefault("quiz", False)
st.session_state.setdefault("present", False)
st.session_state.setdefault("speed", "normal")
st.session_state.setdefault("playing", False)


def _chapter_changed() -> None:
    new = _chapter()
    st.session_state.loads = format_loads(new.loads)
    st.session_state.pop("step", None)
    st.session_state.playing = False


@st.cache_data(show_spinner=False, max_entries=64)
def _run(key: str, loads: str) -> PackResult:
    chapter = CHAPTER_BY_KEY[key]
    return chapter.run(parse_loads(loads, chapter.num_packs))


@st.cache_data(show_spinner=False, max_entries=16)
def _lesson_gif(key: str, loads: str, dark: bool) -> bytes:
    trace = _run(key, loads).traces[0]
    frames = build_frames(trace)
    captions = [learn(trace, frames, index) for index in range(len(frames))]
    weight = torch.tensor([trace.weight], dtype=torch.float64)
    return animation_gif(trace, frames, captions, float(lower_bound(weight, trace.num_packs)[0]), dark=dark)


@st.cache_data(show_spinner=False, max_entries=64)
def _compare(key: str, loads: str) -> PackResult:
    chapter = CHAPTER_BY_KEY[key]
    return chapter.run(parse_loads(loads, chapter.num_packs), **(chapter.compare_options or {}))


dark = st.context.theme.type == "dark"
presenting = st.session_state.present
if presenting:
    # Our own fixed CSS (never user text): the room sees the lesson, not the app's chrome.
    st.html("""<style>
      [data-testid="stSidebar"], [data-testid="stSidebarCollapsedControl"], header {display: none !important;}
      .block-container {padding-top: 0.6rem !important; padding-bottom: 0 !important; max-width: 100% !important;}
      .stMarkdown p, .stMarkdown li {font-size: 1.35rem !important; line-height: 1.4;}
      .stButton button p {font-size: 1.25rem !important;}
      [data-testid="stAlert"] p {font-size: 1.25rem !important;}
    </style>""")
else:
    st.title("Learn balanced packing")

top = st.columns([3, 1, 1, 1])
top[0].selectbox("Chapter", [c.key for c in CHAPTERS], key="chapter", on_change=_chapter_changed,
                 format_func=lambda key: CHAPTER_BY_KEY[key].title, label_visibility="collapsed")
top[1].toggle("Predict", key="quiz", help="Before each step, guess what the algorithm does next")
top[2].toggle("Present", key="present", help="Large type, no sidebar: for a projector")
screen = top[3].selectbox("Screen", list(SCREENS), key="screen", label_visibility="collapsed") \
    if presenting else None
for problem in problems:
    st.warning(f"Shared link: {problem}.")

try:
    parse_loads(st.session_state.loads, chapter.num_packs)
except ValueError:
    st.session_state.loads = format_loads(chapter.loads)

result = _run(chapter.key, st.session_state.loads)
trace = result.traces[0]
frames = lesson_frames(trace)
compared = _compare(chapter.key, st.session_state.loads).traces[0] if chapter.compare_options else None
told = chapter_text(chapter.key, trace, compared)
if not presenting:
    st.markdown(told.text)
else:
    st.caption(told.text)
bound = float(lower_bound(torch.tensor([trace.weight], dtype=torch.float64), trace.num_packs)[0])
chart_height = SCREENS[screen] if screen else 500
options = ", ".join(f"{name}={value}" for name, value in chapter.options.items())
about_run = (f"{trace.num_items} items into {trace.num_packs} packs of {trace.items_per_pack}; packer: "
             f"{chapter.preset}{' with ' + options if options else ''}; lower bound LB = {fmt(bound)}.")


def _loads_editor() -> None:
    """The teacher edits the loads in place; the run follows at once."""
    with st.expander("Edit the loads", expanded=False):
        current = parse_loads(st.session_state.loads, chapter.num_packs)
        edited = st.data_editor({"load": list(current)}, key=f"editor_{chapter.key}", num_rows="fixed",
                                width="stretch")
        try:
            new_loads = format_loads(parse_loads(",".join(str(v) for v in edited["load"]), chapter.num_packs))
        except (ValueError, TypeError) as error:
            st.error(f"Not used, the previous loads are kept: {error}")
        else:
            if new_loads != st.session_state.loads:
                st.session_state.loads = new_loads
                st.session_state.pop("step", None)
                st.rerun()
        st.button("Back to the chapter's loads", key="reset_loads", on_click=_chapter_changed)


if "step" not in st.session_state or not 0 <= st.session_state.step < len(frames):
    st.session_state.step = phase_starts(frames).get(chapter.start_phase, 0)


def _go(index: int) -> None:
    st.session_state.step = max(0, min(index, len(frames) - 1))
    st.session_state.pop("answer", None)


def _toggle_play() -> None:
    st.session_state.playing = not st.session_state.playing
    if st.session_state.playing and st.session_state.step >= len(frames) - 1:
        st.session_state.step = 0


PSEUDOCODE = lines(trace.config)


def _pseudocode(current: int) -> str:
    """Our own fixed pseudo-code as HTML (no user text), the current line marked."""
    marked = "background: rgba(230, 159, 0, 0.35); font-weight: 700; border-left: 4px solid #E69F00;"
    rows = []
    for number, text in enumerate(PSEUDOCODE):
        style = marked if number == current else "border-left: 4px solid transparent;"
        rows.append(f'<div style="{style} padding: 1px 6px; white-space: pre-wrap;">{html.escape(text)}</div>')
    size = "0.9rem" if presenting else "0.85rem"
    return (f'<div style="font-family: monospace; font-size: {size}; line-height: 1.45; '
            f'text-indent: 0;">{"".join(rows)}</div>')


def _question_widget(place, question: Question) -> None:
    place.markdown(f"**Predict:** {question.prompt}")
    choice = place.radio("Your answer", question.options, index=None, key=f"guess_{st.session_state.step}",
                         label_visibility="collapsed", horizontal=len(question.options) <= 6)
    if place.button("Reveal", key="reveal", disabled=choice is None):
        st.session_state.answer = (st.session_state.step, choice)
    answer = st.session_state.get("answer")
    if answer and answer[0] == st.session_state.step:
        if question.is_right(answer[1]):
            place.success(f"Right: {answer[1]}. {question.explanation}")
        else:
            place.error(f"Not this time: the answer is {question.answer}. {question.explanation}")


def _controls() -> None:
    controls = st.columns([1, 1, 1.3, 1, 1, 2.2])
    controls[0].button("« Start", on_click=_go, args=(0,), key="start", width="stretch")
    controls[1].button("‹ Prev", on_click=_go, args=(st.session_state.step - 1,), key="prev", shortcut="Left",
                       disabled=st.session_state.step == 0,
                       width="stretch")
    controls[2].button("❚❚ Pause" if st.session_state.playing else "▶ Play", on_click=_toggle_play, key="play",
                       shortcut="Space", width="stretch")
    controls[3].button("Next ›", on_click=_go, args=(st.session_state.step + 1,), key="next", shortcut="Right",
                       disabled=st.session_state.step >= len(frames) - 1,
                       width="stretch", type="primary")
    controls[4].button("End »", on_click=_go, args=(len(frames) - 1,), key="end", width="stretch")
    controls[5].select_slider("Speed", list(SPEEDS), key="speed", label_visibility="collapsed")


def _step_view() -> None:
    """The controls, chart, narration and pseudo-code: a fragment, so Prev / Next
    rerun and resend only this, not the chapter text, editor and download."""
    if (st.session_state.playing, st.session_state.speed) != playing_at_start:
        # Play, Pause or a new speed changes the fragment's timer, which only a full run sets.
        st.rerun()
    if st.session_state.playing:
        if st.session_state.step < len(frames) - 1:
            st.session_state.step += 1
        else:
            st.session_state.playing = False
    index = st.session_state.step
    frame = frames[index]
    _controls()
    left, right = st.columns([2.1, 1])
    left.plotly_chart(lesson_step_figure(trace, frames, index, bound, height=chart_height), width="stretch",
                      key="lesson_chart")
    restart = trace.chosen_candidate.restart
    shown = f" · restart {restart}" if len(trace.candidates) > 1 or restart else ""
    right.markdown(f"**Step {index} of {len(frames) - 1}** · {frame.phase}{shown}")
    question = question_for(trace, frames, index) if st.session_state.quiz and not st.session_state.playing else None
    if question is not None:
        # the room sees the question beside the chart, the answer only on Reveal
        _question_widget(right, question)
    else:
        right.info(learn(trace, frames, index))
    right.html(_pseudocode(line_of(frame.event, trace.config)))
    publish(PARAMS)


playing_at_start = (st.session_state.playing, st.session_state.speed)
interval = SPEEDS[st.session_state.speed] if st.session_state.playing else None
st.fragment(run_every=interval)(_step_view)()

st.caption(about_run)
if compared is not None:
    other = compared
    changes = ", ".join(f"{k}={v}" for k, v in chapter.compare_options.items())
    st.caption(f"The same fill with {changes}: {len(other.chosen_candidate.swaps)} moves, then "
               f"{other.chosen_candidate.stopped.reason}; spread {fmt(other.chosen_candidate.final_spread)} "
               f"(here: {fmt(trace.chosen_candidate.final_spread)}).")
_loads_editor()
lesson_loads = st.session_state.loads
st.download_button("Download this lesson as a GIF (for slides)",
                   data=lambda: _lesson_gif(chapter.key, lesson_loads, dark),
                   file_name=f"packviz_{chapter.key}.gif", mime="image/gif", key="download_gif")
publish(PARAMS)
