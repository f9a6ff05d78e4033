"""Stage 4, figures: Plotly figures and GIFs drawn from replayed frames."""
