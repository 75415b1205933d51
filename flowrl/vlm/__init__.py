"""The vision-language branch: a tiny LLaVA (`transformers.LlavaForConditionalGeneration`) that answers ShapeWorld
questions, trained by the text trainer with an image-conditioned policy (`flowrl train-vlm`, docs/vlm.md).

Modules: `tokenizer` (the question / answer vocabulary with the reasoning format), `images` (pixel checks, the
image processor and image keys), `model` (build, save, load; the keyed-image wrapper the trainer calls like a causal
LM), `rewards` (answer extraction, exact match, partial credit, format), `tasks` (question task files and binding
their images to the policy), `methods` (the seed papers' multimodal GRPO pieces), `synth` (Syn-GRPO's data server),
`evaluate` (held-out accuracy per family, lengths, pass@k).
"""
