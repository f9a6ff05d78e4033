"""Background jobs: progress, result, errors, a shared cap on jobs at once, and abandonment."""

from __future__ import annotations

import threading
import time

from packviz.jobs import BackgroundJob


def test_a_job_reports_progress_and_its_result():
    gate = threading.Event()

    def work(progress):
        progress(1, 3)
        gate.wait(5)
        progress(3, 3)
        return "done"
    job = BackgroundJob(work)
    deadline = time.monotonic() + 5
    while job.done < 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert (job.done, job.total) == (1, 3) and job.running and job.result is None and not job.failed
    gate.set()
    assert job.wait(5) == "done" and not job.running and (job.done, job.total) == (3, 3)


def test_an_error_is_a_sentence_and_the_job_may_start_again():
    job = BackgroundJob(lambda progress: 1 / 0)
    assert job.wait(5) is None
    assert job.error == "division by zero" and job.failed


def test_at_most_the_slots_run_at_once_and_the_rest_wait():
    slots = threading.Semaphore(1)
    gate = threading.Event()
    first = BackgroundJob(lambda progress: gate.wait(5) and "first", slots)
    # a free slot is the job's from the start, before its thread has run at all
    assert not first.waiting
    second = BackgroundJob(lambda progress: "second", slots)
    time.sleep(0.1)
    assert not first.waiting and second.waiting and second.result is None
    gate.set()
    assert first.wait(5) == "first" and second.wait(5) == "second"


def test_a_job_nobody_asks_about_stops_at_its_next_progress_call():
    steps = []

    def work(progress):
        for step in range(200):
            steps.append(step)
            progress(step, 200)
            time.sleep(0.01)
        return "finished"
    job = BackgroundJob(work, abandon_after_s=0.2)
    assert job.wait(10) is None
    assert job.abandoned and job.failed and len(steps) < 200
    # asked about often enough, the same work finishes
    kept = BackgroundJob(work, abandon_after_s=0.2)
    while kept.running:
        kept.touch()
        time.sleep(0.05)
    assert kept.result == "finished"


def test_done_is_called_with_the_result_before_it_shows():
    seen = []
    job = BackgroundJob(lambda progress: 42, on_done=seen.append)
    assert job.wait(5) == 42 and seen == [42]
