"""The Learn page's content: chapters, narration, pseudo-code, questions, all computed from runs."""
