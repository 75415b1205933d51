"""The image trainer (`flowrl.train.image`) and its pieces: config, CLI, EMA, prompts, sharding, LayerTuning-RL,
ShapeWorld evaluation by split, model card. The run machinery both trainers share is in `flowrl.runtime`."""
