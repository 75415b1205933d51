"""The run engine shared by the image and text trainers (docs/architecture.md).

Pure run machinery, no model or loss logic: `run_dir` creates the run folder and writes files into it atomically,
`metrics` appends JSONL + TensorBoard scalars, `plots` draws reward curves and sample grids, `checkpoint` saves and
restores bit-exact training state, `progress` is the tqdm bar.
"""
