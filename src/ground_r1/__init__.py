"""Ground-R1: grounded visual reasoning by reinforcement learning (GRPO) on Qwen2.5-VL.

The training flow reads top to bottom through the package:
``data -> prompt -> rollout (grounding, crop via boxes, answering) -> rewards -> trainer -> checkpoints``;
the evaluation flow: ``evaluation.benchmarks -> predictions -> judge -> scores -> tables``.
"""

__version__ = "0.1.0"
