"""The text branch: GRPO-family RL of transformers causal LMs on the shared core (`flowrl.grpo`), a token per edge.

One concept per module: `arith` (the procedural task of the shipped model), `char_tokenizer` (an offline
character-level tokenizer), `prompts` (chat template / plain prompt, tokenisation, left padding), `data` (task JSONL,
per-step rows), `rollout` (prefill-once group sampling with `generate`), `logprobs` (chunked fp32 token log-probs and
entropies), `policy` (model, tokenizer and reference from a local folder), `task_rewards` (exact match and reward
loading), `evaluate` (greedy held-out exact match), `config` (the run schema) and `train` (the loop and
`flowrl train-text`). Nothing is imported here, so `import flowrl.text` stays light.
"""
