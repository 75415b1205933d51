"""The image trainer (`flowrl.train.image`: the loop) and its pieces: the estimator families (`estimators/`),
rollouts, the update, evaluation and grids, the run state, adapters, rewards, config, CLI, EMA, prompts, sharding,
LayerTuning-RL, ShapeWorld evaluation by split, model card. The run machinery both trainers share is in
`flowrl.runtime`."""
