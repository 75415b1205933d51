"""`flowrl demo`: a local Gradio page comparing a base ShapeWorld model with a trained run, with reward scores.

Modules: `inputs` (validation of what the page sends), `models` (base and tuned weights from command-line paths),
`scoring` (grader and reward scores as text), `run_view` (a run's curves and sample grids), `app` (the page and
the command).
"""
