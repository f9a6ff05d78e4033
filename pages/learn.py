"""Learn: balanced packing taught chapter by chapter, from the real engine's recorded events."""

from __future__ import annotations

import html
import json
import random
import time

import streamlit as st
import torch

from packviz.metrics import lower_bound
from packviz.packer import PackResult
from packviz.teach.aging_lesson import AGING_CODE
from packviz.teach.chapter_texts import chapter_text
from packviz.teach.eplb_lessons import HIERARCHY_CODE, REPLICATION_CODE, EplbStep, chapter_steps, eplb_text
from packviz.teach.lesson_frames import lesson_frames
from packviz.teach.lessons import (
    CHAPTER_BY_KEY,
    CHAPTERS,
    MAX_INLINE_ITEMS,
    Chapter,
    format_loads,
    parse_load,
    parse_loads,
    random_loads,
)
from packviz.teach.narration import fmt, learn
from packviz.teach.practice import Practice, fresh_question, lesson_recap
from packviz.teach.pseudocode import line_of, lines
from packviz.teach.quiz import Question, question_for
from packviz.teach.quiz_session import SessionQuestion, session_questions
from packviz.trace.timeline import phase_starts
from packviz.viz.bars_gif import bars_gif
from packviz.viz.figures import bars_figure, lesson_step_figure
from packviz.viz.gif import animation_gif
from ui.router import require_router
from ui.state import Param, parse_bool, parse_choice, parse_int, publish, restore, show_bool

require_router()

SPEEDS = {"slow": 2.0, "normal": 1.0, "fast": 0.5, "faster": 0.25}
# the chart's height in present mode: what is left of the screen under the controls
SCREENS = {"laptop 1366 x 768": 470, "projector 1920 x 1080": 720}
# a window at least this tall (CSS px) presents at the projector's size
PROJECTOR_MIN_HEIGHT = 950
PRESENT_FONT = 20
MAX_QUIZ = 30  # questions in one quiz session  # px: read from the back of a room
RUN_END_HOLD_S = 0.12  # s: see the end of _step_view (0.06 still dropped a frame on a busy machine)


def _chapter() -> Chapter:
    return CHAPTER_BY_KEY[st.session_state.chapter]


def _packs() -> int:
    return st.session_state.get("packs") or _chapter().num_packs


def _per_loads() -> int:
    """What the loads must split evenly into: the packs, or for EPLB any count of experts (the slots split)."""
    return 1 if _chapter().eplb else _packs()


def _parse_shape(raw: str) -> str:
    """An EPLB instance's slots (replication) or slots,groups,nodes (hierarchy), as in a link; empty
    for the chapter's own."""
    if not raw:
        return ""
    parts = [int(part) for part in raw.split(",")]
    if len(parts) not in (1, 3) or not all(1 <= part <= MAX_INLINE_ITEMS for part in parts):
        raise ValueError(f"{raw[:20]!r} is not slots or slots,groups,nodes (each 1 to {MAX_INLINE_ITEMS})")
    return ",".join(map(str, parts))


def _shape() -> dict[str, int]:
    """The EPLB chapter's slots, groups and nodes: the student's own (``shape``) or the chapter's."""
    default = _chapter().eplb or {}
    raw = st.session_state.get("shape")
    if not raw:
        return dict(default)
    parts = [int(part) for part in raw.split(",")]
    if "groups" in default and len(parts) == 3:
        return {"slots": parts[0], "groups": parts[1], "nodes": parts[2]}
    return {**default, "slots": parts[0]}


PARAMS = [
    Param("chapter", parse_choice([c.key for c in CHAPTERS])),
    Param("packs", parse_int(1, 16)),
    Param("loads", lambda raw: format_loads(parse_loads(raw, _per_loads()))),
    Param("shape", _parse_shape),
    Param("step", parse_int(0, 10_000)),
    Param("quiz", parse_bool, show_bool),
    Param("present", parse_bool, show_bool),
    Param("speed", parse_choice(list(SPEEDS))),
    Param("screen", parse_choice(list(SCREENS))),
    Param("quiz_seed", parse_int(0, 1 << 30)),
    Param("quiz_size", parse_int(1, MAX_QUIZ)),
]

st.session_state.setdefault("chapter", CHAPTERS[0].key)
screen_in_link = "screen" in st.query_params
problems = restore(PARAMS)
chapter = _chapter()
st.session_state.setdefault("packs", chapter.num_packs)
st.session_state.setdefault("loads", format_loads(chapter.loads))
st.session_state.setdefault("quiz", False)
st.session_state.setdefault("shape", "")
st.session_state.setdefault("quiz_seed", 0)  # 0: no quiz session running
st.session_state.setdefault("quiz_size", 8)
st.session_state.setdefault("present", False)
st.session_state.setdefault("speed", "normal")
st.session_state.setdefault("playing", False)


def _chapter_changed() -> None:
    new = _chapter()
    st.session_state.packs = new.num_packs
    st.session_state.loads = format_loads(new.loads)
    st.session_state.pop("step", None)
    st.session_state.shape = ""
    st.session_state.playing = False


def _plain_title(key: str) -> str:
    """A chapter's title for Markdown: "10. EPLB..." at a line's start is a numbered list item there."""
    return CHAPTER_BY_KEY[key].title.replace(". ", "\\. ", 1)


@st.cache_data(show_spinner=False, max_entries=64)
def _run(key: str, loads: str, packs: int) -> PackResult:
    return CHAPTER_BY_KEY[key].run(parse_loads(loads, packs), packs)


@st.cache_data(show_spinner=False, max_entries=16)
def _lesson_gif(key: str, loads: str, packs: int, dark: bool) -> bytes:
    """The lesson's steps as the page shows them (one GIF frame a step), in the page's colours."""
    trace = _run(key, loads, packs).traces[0]
    frames = lesson_frames(trace)
    captions = [learn(trace, frames, index) for index in range(len(frames))]
    weight = torch.tensor([trace.weight], dtype=torch.float64)
    return animation_gif(trace, frames, captions, float(lower_bound(weight, trace.num_packs)[0]), dark=dark,
                         break_axis=False)


@st.cache_data(show_spinner=False, max_entries=16)
def _eplb_gif(shape: tuple[tuple[str, int], ...], loads: str, packs: int, dark: bool) -> bytes:
    """An EPLB chapter's steps as the page shows them (one GIF frame a step), in the page's colours."""
    steps = _eplb(shape, loads, packs)
    return bars_gif([step.bars for step in steps], [step.narration for step in steps], dark=dark)


@st.cache_data(show_spinner=False, max_entries=32)
def _eplb(shape: tuple[tuple[str, int], ...], loads: str, packs: int) -> list[EplbStep]:
    return chapter_steps(dict(shape), parse_loads(loads, 1), packs)


@st.cache_data(show_spinner=False)
def _recap() -> list[str]:
    return lesson_recap()


@st.cache_data(show_spinner=False, max_entries=32)
def _practice_question(seed: int) -> Practice:
    return fresh_question(seed)


@st.cache_data(show_spinner=False, max_entries=64)
def _compare(key: str, loads: str, packs: int) -> PackResult:
    chapter = CHAPTER_BY_KEY[key]
    return chapter.run(parse_loads(loads, packs), packs, **(chapter.compare_options or {}))


# the server's configured theme (--theme.base) when it has one, else the browser's (st.context)
dark = (st.get_option("theme.base") or st.context.theme.type) == "dark"
presenting = st.session_state.present
# Each Next sends a new figure, and Streamlit mounts a new chart element for it (the element's id
# is a hash of the figure). Streamlit keeps the old element as "retained" but hides it, and the new
# one draws nothing until it has measured its width: on 4 to 8 of 10 clicks a frame went blank
# between them. Our own fixed CSS: the retained chart stays shown where it was, over the new one
# and taking no room, until the new one beside it has drawn (the charts are transparent, so not
# both at once); a new plot is shown as soon as it is drawn, before Streamlit has measured its box.
CHART_STAYS_CSS = """<style>
  .stElementContainer[data-retained="true"]:has(.stPlotlyChart) {
    display: block !important; position: absolute !important; pointer-events: none;}
  .stElementContainer:has(.js-plotly-plot .main-svg) + .stElementContainer[data-retained="true"],
  .stElementContainer[data-retained="true"]:has(+ .stElementContainer .js-plotly-plot .main-svg) {
    display: none !important;}
  .stPlotlyChart .js-plotly-plot {display: block !important;}
</style>"""
st.html(CHART_STAYS_CSS)
if presenting:
    # Our own fixed CSS (never user text): the room sees the lesson, not the app's chrome.
    st.html("""<style>
      [data-testid="stSidebar"], [data-testid="stSidebarCollapsedControl"], header {display: none !important;}
      .block-container {padding-top: 0.6rem !important; padding-bottom: 0 !important; max-width: 100% !important;}
      .stMarkdown p, .stMarkdown li {font-size: 1.3rem !important; line-height: 1.35;}
      .stButton button p {font-size: 1.25rem !important;}
      [data-testid="stAlert"] p {font-size: 1.25rem !important; line-height: 1.35;}
      [data-testid="stAlert"] > div {padding: 0.5rem 0.75rem !important;}
      [data-testid="stRadio"] label p, [data-testid="stCaptionContainer"],
      [data-testid="stCaptionContainer"] p, [data-testid="stExpander"] summary p {font-size: 1.25rem !important;}
      [data-testid="stVerticalBlock"] {gap: 0.45rem !important;}
      [data-testid="stSlider"] {padding-top: 0 !important; margin-top: -0.4rem;}
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
if presenting and not screen_in_link:
    # No screen named in the link: the browser's window picks one (the server cannot see it), and the
    # page reloads with it named. Our own fixed script, no user text in it.
    laptop, projector = (json.dumps(name) for name in SCREENS)
    st.html(f"""<script>
      const url = new URL(window.location.href);
      const fits = window.innerHeight >= {PROJECTOR_MIN_HEIGHT} ? {projector} : {laptop};
      if (url.searchParams.get("screen") !== fits) {{
        url.searchParams.set("screen", fits); window.location.replace(url); }}
    </script>""", unsafe_allow_javascript=True)
for problem in problems:
    st.warning(f"Shared link: {problem}.")

try:
    parse_loads(st.session_state.loads, _per_loads())
except ValueError:
    st.session_state.packs = chapter.num_packs
    st.session_state.loads = format_loads(chapter.loads)

# an EPLB chapter's own story is its steps; the packer's run is only the packing chapters'
result = _run(chapter.key, format_loads(chapter.loads), chapter.num_packs) if chapter.eplb else \
    _run(chapter.key, st.session_state.loads, st.session_state.packs)
trace = result.traces[0]
frames = lesson_frames(trace)
compared = _compare(chapter.key, st.session_state.loads, st.session_state.packs).traces[0] \
    if chapter.compare_options else None
eplb_steps = None
if chapter.eplb is not None:
    # EPLB's other half: its steps replace the packer's story (the packing is one of them)
    try:
        eplb_steps = _eplb(tuple(_shape().items()), st.session_state.loads, st.session_state.packs)
    except ValueError as error:
        st.warning(f"This instance does not fit this chapter ({error}); it shows its own.")
        st.session_state.packs, st.session_state.loads = chapter.num_packs, format_loads(chapter.loads)
        st.session_state.shape = ""
        eplb_steps = _eplb(tuple(chapter.eplb.items()), st.session_state.loads, st.session_state.packs)
    frames = eplb_steps
told = eplb_text(chapter.key, eplb_steps) if eplb_steps else chapter_text(chapter.key, trace, compared)
if not presenting:
    st.markdown(told.text)
elif told.point:
    # the chapter's point stays on screen; the whole text is below the step, where opening it moves nothing
    st.markdown(told.point)
bound = float(lower_bound(torch.tensor([trace.weight], dtype=torch.float64), trace.num_packs)[0])
chart_height = SCREENS[screen] if screen else 500
options = ", ".join(f"{name}={value}" for name, value in chapter.options.items())
about_run = (f"{trace.num_items} items into {trace.num_packs} packs of {trace.items_per_pack}; packer: "
             f"{chapter.preset}{' with ' + options if options else ''}; lower bound LB = {fmt(bound)}.")


def _new_instance(kind: str) -> None:
    """A student's own instance of the size chosen: random loads, or all 0 to type over."""
    packs, per_pack = st.session_state.new_packs, st.session_state.new_per_pack
    # a session's own sequence of instances: a counter alone gave every session the same "random" loads
    st.session_state.setdefault("instance_seed", random.randrange(1 << 30))
    st.session_state.instances = st.session_state.get("instances", 0) + 1
    loads = random_loads(packs * per_pack, st.session_state.instance_seed + st.session_state.instances) \
        if kind == "random" else \
        (0.0,) * (packs * per_pack)
    st.session_state.packs = packs
    st.session_state.loads = format_loads(loads)
    st.session_state.pop("step", None)
    st.session_state.playing = False


def _new_eplb_instance(kind: str) -> None:
    """A student's own EPLB instance: experts, slots, groups, nodes and GPUs as chosen; random loads or all 0."""
    experts = st.session_state.new_experts
    st.session_state.setdefault("instance_seed", random.randrange(1 << 30))
    st.session_state.instances = st.session_state.get("instances", 0) + 1
    loads = random_loads(experts, st.session_state.instance_seed + st.session_state.instances) \
        if kind == "random" else (0.0,) * experts
    st.session_state.loads = format_loads(loads)
    st.session_state.packs = st.session_state.new_gpus
    shape = [st.session_state.new_slots]
    if "groups" in (chapter.eplb or {}):
        shape += [st.session_state.new_groups, st.session_state.new_nodes]
    st.session_state.shape = ",".join(map(str, shape))
    st.session_state.pop("step", None)
    st.session_state.playing = False


def _eplb_sizes() -> None:
    """The EPLB chapters' own sizes: experts, slots, (groups, nodes,) GPUs."""
    shape = _shape()
    experts = len(parse_loads(st.session_state.loads, 1))
    fields = [("Experts", "new_experts", experts), ("Slots", "new_slots", shape["slots"])]
    if "groups" in shape:
        fields += [("Groups", "new_groups", shape["groups"]), ("Nodes", "new_nodes", shape["nodes"])]
    fields.append(("GPUs", "new_gpus", st.session_state.packs))
    size = st.columns(len(fields) + 2)
    for column, (label, key, value) in zip(size, fields):
        column.number_input(label, 1, MAX_INLINE_ITEMS, value=value, key=key)
    size[-2].button("Random loads", key="random_loads", on_click=_new_eplb_instance, args=("random",),
                    width="stretch")
    size[-1].button("Blank (all 0)", key="blank_loads", on_click=_new_eplb_instance, args=("blank",),
                    width="stretch")
    st.caption("Slots must split evenly over the GPUs and hold every expert at least once"
               + ("; experts split into the groups, groups and GPUs over the nodes." if "groups" in shape else "."))
    st.button("Back to the chapter's own instance", key="reset_loads", on_click=_chapter_changed)


def _loads_editor() -> None:
    """The teacher edits the loads in place, item by item; the run follows at
    at once and the step stays where it was."""
    with st.expander("Edit the loads, or make your own instance", expanded=False):
        current = parse_loads(st.session_state.loads, _per_loads())
        # typed as text, so that a bad cell reaches the message as it was typed
        edited = st.data_editor(
            {"item": list(range(len(current))), "load": [format_loads((v,)) for v in current]},
            key=f"editor_{chapter.key}_{st.session_state.packs}_{hash(st.session_state.loads)}", num_rows="fixed",
            width="stretch", hide_index=True, disabled=["item"],
            column_config={"item": st.column_config.NumberColumn("item", width="small"),
                           "load": st.column_config.TextColumn("load")})
        try:
            cells = [parse_load(item, str(cell) if cell is not None else "") for item, cell in
                     enumerate(edited["load"])]
        except ValueError as error:
            st.error(f"Not used, the previous loads are kept: {error}.")
        else:
            new_loads = format_loads(tuple(cells))
            if new_loads != st.session_state.loads:
                st.session_state.loads = new_loads
                st.rerun()
        if chapter.eplb:
            _eplb_sizes()
            return
        size = st.columns([1, 1, 1, 1])
        size[0].number_input("Packs m", 1, 16, value=st.session_state.packs, key="new_packs")
        size[1].number_input("Items per pack", 1, 16, value=trace.items_per_pack, key="new_per_pack")
        too_many = st.session_state.new_packs * st.session_state.new_per_pack > MAX_INLINE_ITEMS
        size[2].button("Random loads", key="random_loads", on_click=_new_instance, args=("random",),
                       disabled=too_many, width="stretch")
        size[3].button("Blank (all 0)", key="blank_loads", on_click=_new_instance, args=("blank",),
                       disabled=too_many, width="stretch")
        if too_many:
            st.caption(f"A lesson takes at most {MAX_INLINE_ITEMS} items.")
        st.button("Back to the chapter's loads", key="reset_loads", on_click=_chapter_changed)


if "step" not in st.session_state:
    st.session_state.step = 0 if eplb_steps else phase_starts(frames).get(chapter.start_phase, 0)
elif not 0 <= st.session_state.step < len(frames):
    # edited loads can make a shorter story: keep the step as near as it can be
    st.session_state.step = len(frames) - 1


def _go(index: int) -> None:
    st.session_state.step = max(0, min(index, len(frames) - 1))


def _toggle_play() -> None:
    st.session_state.playing = not st.session_state.playing
    if st.session_state.playing and st.session_state.step >= len(frames) - 1:
        st.session_state.step = 0


PSEUDOCODE = list(AGING_CODE if chapter.eplb and "windows" in chapter.eplb else
                  HIERARCHY_CODE if chapter.eplb and "groups" in chapter.eplb else
                  REPLICATION_CODE if chapter.eplb else lines(trace.config))


# Lines of pseudo-code shown around the current one when presenting: the whole
# algorithm does not fit beside the chart at 20 px, the line being run must.
PRESENT_CONTEXT = 1


def _pseudocode(current: int) -> str:
    """Our own fixed pseudo-code as HTML (no user text), the current line marked."""
    marked = "background: rgba(230, 159, 0, 0.35); font-weight: 700; border-left: 4px solid #E69F00;"
    rows = []
    shown = range(len(PSEUDOCODE))
    if presenting:
        shown = range(max(0, current - PRESENT_CONTEXT), min(len(PSEUDOCODE), current + PRESENT_CONTEXT + 1))
    plain = "border-left: 4px solid transparent;"
    if shown.start > 0:
        rows.append(f'<div style="{plain} padding: 0 6px; opacity: 0.6;">⋮</div>')
    for number in shown:
        style = marked if number == current else plain
        text = html.escape(PSEUDOCODE[number])
        rows.append(f'<div style="{style} padding: 1px 6px; white-space: pre-wrap;">{text}</div>')
    if shown.stop < len(PSEUDOCODE):
        rows.append(f'<div style="{plain} padding: 0 6px; opacity: 0.6;">⋮</div>')
    size = f"{PRESENT_FONT}px" if presenting else "0.85rem"
    return (f'<div style="font-family: monospace; font-size: {size}; line-height: 1.45; '
            f'text-indent: 0;">{"".join(rows)}</div>')


def _ask(place, question: Question, asked: str, book: str, label: str) -> None:
    """A question with Reveal: once revealed the answer is locked, scored once
    in ``book`` (asked -> (choice, right)), and told why."""
    place.markdown(f"**{label}:** {question.prompt}")
    answers = st.session_state.setdefault(book, {})
    revealed = answers.get(asked)
    if revealed is not None:
        # the verdict alone (it names the choice): the options would push the pseudo-code off a projector
        (place.success if revealed[1] else place.error)(question.verdict(revealed[0]))
        place.caption(f"Score: {sum(right for _, right in answers.values())} of {len(answers)}")
        return
    picks = st.session_state.setdefault(f"{book}_picks", {})
    choice = picks.get(asked)
    # buttons, not a radio: a focused radio takes the arrow keys that step the lesson
    columns = place.columns(2) if len(question.options) > 2 and max(map(len, question.options)) <= 16 else [place]
    for number, option in enumerate(question.options):
        columns[number % len(columns)].button(
            option, key=f"option_{book}_{number}", width="stretch",
            type="primary" if option == choice else "secondary",
            on_click=lambda option=option: picks.__setitem__(asked, option))
    # scored in the click's callback, so the run it starts draws the answer locked
    place.button("Reveal", key=f"reveal_{book}", disabled=choice is None,
                 on_click=lambda: answers.__setitem__(asked, (choice, question.is_right(choice))))


def _question_widget(place, question: Question) -> None:
    _ask(place, question, f"{chapter.key}:{st.session_state.loads}:{st.session_state.step}", "predicted", "Predict")


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
    # a button, not a slider or radio: a focused slider or radio takes the arrow keys that step the lesson
    controls[5].button(f"Speed: {st.session_state.speed} ⟳", key="speed_button", on_click=_next_speed,
                       width="stretch", help="Time per step when playing: " +
                       ", ".join(f"{name} {seconds:g} s" for name, seconds in SPEEDS.items()))
    if len(frames) > 1:
        # the slider's own key, set from the step each run: the step is the state, the slider a view of it
        st.session_state.step_pick = st.session_state.step
        st.slider("Step", 0, len(frames) - 1, key="step_pick", on_change=lambda: _go(st.session_state.step_pick),
                  label_visibility="collapsed")


def _next_speed() -> None:
    names = list(SPEEDS)
    st.session_state.speed = names[(names.index(st.session_state.speed) + 1) % len(names)]


def _next_chapter() -> None:
    position = [c.key for c in CHAPTERS].index(chapter.key)
    st.session_state.chapter = CHAPTERS[position + 1].key
    _chapter_changed()
    st.session_state.chapter_moved = True


def _step_view() -> None:
    """The controls, chart, narration and pseudo-code: a fragment, so Prev / Next
    rerun and resend only this, not the chapter text, editor and download."""
    if st.session_state.pop("chapter_moved", False):
        st.rerun()  # Next chapter: the whole page is a new chapter's, not only this fragment
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
    # presenting, the narration and pseudo-code at 20 px need a wider column than at a desk
    left, right = st.columns([1.5, 1.2] if presenting else [2.1, 1])
    font = PRESENT_FONT + 2 if presenting else None
    figure = bars_figure(frame.bars, height=chart_height, font=font) if eplb_steps else \
        lesson_step_figure(trace, frames, index, bound, height=chart_height, font=font)
    left.plotly_chart(figure, width="stretch", key="lesson_chart")
    restart = trace.chosen_candidate.restart
    shown = f" · restart {restart}" if not eplb_steps and (len(trace.candidates) > 1 or restart) else ""
    right.markdown(f"**Step {index} of {len(frames) - 1}** · {frame.phase}{shown}")
    asking = st.session_state.quiz and not st.session_state.playing
    question = (frame.question if eplb_steps else question_for(trace, frames, index)) if asking else None
    code = _pseudocode(frame.line if eplb_steps else line_of(frame.event, trace.config))
    last = index == len(frames) - 1
    following = list(CHAPTERS[[c.key for c in CHAPTERS].index(chapter.key) + 1:])[:1]
    if question is not None:
        if presenting:
            right.html(code)  # above the question: a revealed answer must not push the line being run off screen
        # the room sees the question beside the chart, the answer only on Reveal
        _question_widget(right, question)
        if not presenting:
            right.html(code)
    else:
        right.info(frame.narration if eplb_steps else learn(trace, frames, index))
        if asking and not last:
            right.caption("Nothing to predict at this step (no choice to make): Next shows it.")
        if not (presenting and last and not following):
            right.html(code)
    if last and following:
        # the number on the button and the title beside it: a whole title was cut with "…" in the narrow column
        number, _, name = following[0].title.partition(". ")
        right.button(f"Next chapter: {number} ›", key="next_chapter", on_click=_next_chapter, type="primary",
                     help=following[0].title)
        right.caption(name)
    elif last:
        right.success("**The lesson in its numbers**\n" + "\n".join(f"- {line}" for line in _recap()))
    publish(PARAMS)
    # Streamlit drops the retained old chart when the run ends; the new one needs a frame or two
    # to measure its width and draw. Ended at once, the run's end often came first (5 of 10 clicks
    # blank for a frame in present mode): holding it a moment keeps the old chart until the new one
    # is drawn. Everything is already sent; only the end of the run waits.
    time.sleep(RUN_END_HOLD_S)


playing_at_start = (st.session_state.playing, st.session_state.speed)
interval = SPEEDS[st.session_state.speed] if st.session_state.playing else None
st.fragment(run_every=interval)(_step_view)()

if presenting:
    with st.expander(f"About this chapter: {chapter.title}"):
        st.markdown(told.text)
if not eplb_steps:
    st.caption(about_run)
if compared is not None:
    other = compared
    changes = ", ".join(f"{k}={v}" for k, v in chapter.compare_options.items())
    st.caption(f"The same fill with {changes}: {len(other.chosen_candidate.swaps)} moves, then "
               f"{other.chosen_candidate.stopped.reason}; spread {fmt(other.chosen_candidate.final_spread)} "
               f"(here: {fmt(trace.chosen_candidate.final_spread)}).")
_loads_editor()


def _practice() -> None:
    """Self-study: a question on a fresh instance (a new one on each click), scored."""
    st.session_state.setdefault("practice_seed", random.randrange(1 << 30))
    with st.expander("Practice on your own: a new instance and a new question each time, scored"):
        seed = st.session_state.practice_seed
        practice = _practice_question(seed)
        run = practice.trace
        st.caption(f"{_plain_title(practice.chapter)}, on new random loads: {run.num_items} items into "
                   f"{run.num_packs} packs.")
        weight = torch.tensor([run.weight], dtype=torch.float64)
        st.plotly_chart(lesson_step_figure(run, practice.frames, practice.index,
                                           float(lower_bound(weight, run.num_packs)[0]), height=420),
                        width="stretch", key="practice_chart")
        _ask(st, practice.question, str(seed), "practiced", "Question")
        st.button("Another question", key="another_question",
                  on_click=lambda: st.session_state.update(practice_seed=seed + 1))


_practice()


@st.cache_data(show_spinner="Drawing the questions, each from a run of its own…", max_entries=8)
def _session(seed: int, size: int) -> list[SessionQuestion]:
    return session_questions(seed, size)


def _start_quiz() -> None:
    st.session_state.quiz_seed = random.randrange(1, 1 << 30)
    st.session_state.quiz_size = st.session_state.quiz_size_pick
    st.session_state.quiz_at = 0


def _quiz_session() -> None:
    """N questions across every chapter, each from a real run on a fresh instance, scored; the
    link (quiz_seed, quiz_size) replays the same questions."""
    seed, size = st.session_state.quiz_seed, st.session_state.quiz_size
    with st.expander("Quiz: questions across all chapters, each on a fresh instance, scored", expanded=seed > 0):
        start = st.columns([1, 1, 2])
        start[0].number_input("Questions", 1, MAX_QUIZ, value=size, key="quiz_size_pick")
        start[1].button("Start a new quiz", key="start_quiz", on_click=_start_quiz, width="stretch")
        if not seed:
            return
        questions = _session(seed, size)
        book = f"quizbook_{seed}"
        answers = st.session_state.setdefault(book, {})
        right = sum(ok for _, ok in answers.values())
        current = min(st.session_state.setdefault("quiz_at", 0), size)
        st.progress(len(answers) / size, text=f"{len(answers)} of {size} answered · score {right} of {len(answers)}")
        start[2].caption("This page's link replays these questions (quiz_seed and quiz_size in it).")
        if current >= size:
            st.success(f"Final score: {right} of {size}.")
            return
        asked = questions[current]
        st.caption(f"{_plain_title(asked.chapter)}: {asked.kind}, on new random loads.")
        if asked.practice is not None:
            run = asked.practice.trace
            weight = torch.tensor([run.weight], dtype=torch.float64)
            figure = lesson_step_figure(run, asked.practice.frames, asked.practice.index,
                                        float(lower_bound(weight, run.num_packs)[0]), height=420)
        else:
            figure = bars_figure(asked.bars, height=420)
        st.plotly_chart(figure, width="stretch", key="quiz_chart")
        _ask(st, asked.question, str(current), book, f"Question {current + 1} of {size}")
        if str(current) in answers:
            st.button("Next question ›" if current + 1 < size else "See the final score", key="next_question",
                      type="primary", on_click=lambda: st.session_state.update(quiz_at=current + 1))


_quiz_session()
lesson_loads, lesson_packs = st.session_state.loads, st.session_state.packs
lesson_shape = tuple(_shape().items()) if eplb_steps else ()
# both themes offered: the app's theme can change from its menu without a run that would tell us
downloads = st.columns(2)
for column, (theme, is_dark) in zip(downloads, (("light", False), ("dark", True))):
    column.download_button(f"Download this lesson as a GIF, {theme} (for slides)",
                           data=(lambda is_dark=is_dark: _eplb_gif(lesson_shape, lesson_loads, lesson_packs, is_dark))
                           if eplb_steps else
                           (lambda is_dark=is_dark: _lesson_gif(chapter.key, lesson_loads, lesson_packs, is_dark)),
                           file_name=f"packviz_{chapter.key}_{theme}.gif", mime="image/gif",
                           key=f"download_gif_{theme}", type="primary" if is_dark == dark else "secondary")
publish(PARAMS)
