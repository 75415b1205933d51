"""The vision-language branch: a tiny LLaVA (`transformers.LlavaForConditionalGeneration`) that answers ShapeWorld
questions, trained by the text trainer with an image-conditioned policy (`flowrl train-vlm`, docs/vlm.md).

Modules: `tokenizer` (the question / answer vocabulary with the reasoning format), `images` (pixel checks, the
image processor and image keys), `model` (build, save, load; the keyed-image wrapper the trainer calls like a causal
LM), `rewards` (answer extraction, exact match, partial credit, format), `tasks` (question task files and binding
their images to the policy), `synth` (Syn-GRPO's data server and its feed into training steps),
`evaluate` (held-out accuracy per family, lengths, pass@k). The seed papers' multimodal GRPO pieces are core functions
in `flowrl/grpo/` (consistency, variance_sampling, vade, reg_grpo) wired as text-trainer hooks (`flowrl/text/hooks.py`,
`flowrl/text/prompt_samplers.py`) and `train-vlm` presets.
"""
