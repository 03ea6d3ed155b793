"""SFT ablations of SPEC §8: Vanilla SFT and Ground SFT.

- :mod:`ground_r1.sft.data`: examples from VisCoT records (one JSONL format for both sets; crops on disk);
- :mod:`ground_r1.sft.collator`: chat -> tensors with labels on assistant tokens only, ``mm_token_type_ids``;
- :mod:`ground_r1.sft.train`: the recipe on TRL's ``SFTTrainer`` (vision tower frozen, projector and LLM trained).

Submodules are imported on use: ``ground_r1.sft.train`` pulls in TRL and torch.
"""
