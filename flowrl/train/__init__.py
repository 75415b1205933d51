"""Training utilities shared by the image and text trainers: run folders, metrics, plots, checkpoints, progress bars.

Pure utilities with no model or trainer logic (DESIGN.md section 6): `run_dir` creates the run folder and writes files
into it atomically, `metrics` appends JSONL + TensorBoard scalars, `plots` draws reward curves and sample grids,
`checkpoint` saves and restores bit-exact training state, `progress` is the tqdm bar.
"""
