"""Resume fixes shared by every HF-Trainer-based trainer here (GRPO and SFT): ``ResumeFixesMixin``.

Two defects of HF's resume path (transformers 5.23), measured on the tiny Qwen2.5-VL:

- **weights**: HF loads a checkpoint's safetensors with ``load_state_dict(strict=False)``, but ``save_pretrained``
  wrote them under the checkpoint key names (Qwen2.5-VL: ``model.layers.*``; the module has
  ``model.language_model.layers.*``): 56 of 57 tensors were skipped with a warning, and the "resumed" run went on
  from the base weights with the checkpoint's Adam state. ``_load_from_checkpoint`` here goes through
  ``from_pretrained`` (which applies the key conversion) and copies strictly;
- **a finished run trains one more step**: resumed from the checkpoint at ``max_steps`` (a run killed during its
  final save), HF's loop trains a step past ``max_steps`` (its stop check runs after a step). ``train`` loads
  that checkpoint and returns.

Adapter-only (PEFT) and FSDP checkpoints keep HF's path; DeepSpeed never reaches ``_load_from_checkpoint`` (it
resumes from its own ``global_step*`` partitions) and keeps HF's extra step, with a warning.
"""

from __future__ import annotations

import logging
from pathlib import Path

logger = logging.getLogger(__name__)


class ResumeFixesMixin:
    """Put before the HF/TRL trainer class in the bases: ``class T(ResumeFixesMixin, SFTTrainer)``."""

    def train(self, resume_from_checkpoint=None, trial=None, ignore_keys_for_eval=None):
        from transformers import TrainerState
        from transformers.trainer_utils import TrainOutput

        state_file = Path(str(resume_from_checkpoint)) / "trainer_state.json"
        if isinstance(resume_from_checkpoint, str) and state_file.is_file() and self.args.max_steps > 0:
            state = TrainerState.load_from_json(str(state_file))
            if state.global_step >= self.args.max_steps:
                if self.is_deepspeed_enabled or self.is_fsdp_enabled:
                    logger.warning(
                        "%s is at max_steps: HF trains one extra step under DeepSpeed/FSDP", resume_from_checkpoint
                    )
                else:
                    logger.info(
                        "%s is at step %d = max_steps: the run is finished, nothing left to train",
                        resume_from_checkpoint,
                        state.global_step,
                    )
                    self._load_from_checkpoint(resume_from_checkpoint)
                    self.state = state
                    return TrainOutput(state.global_step, 0.0, {})
        return super().train(
            resume_from_checkpoint=resume_from_checkpoint, trial=trial, ignore_keys_for_eval=ignore_keys_for_eval
        )

    def _load_from_checkpoint(self, resume_from_checkpoint, model=None):
        folder = Path(resume_from_checkpoint)
        full = (folder / "model.safetensors").is_file() or (folder / "model.safetensors.index.json").is_file()
        if not full or self.is_fsdp_enabled:
            return super()._load_from_checkpoint(resume_from_checkpoint, model)
        target = self.accelerator.unwrap_model(model if model is not None else self.model)
        loaded = type(target).from_pretrained(folder, dtype=target.dtype)
        target.load_state_dict(loaded.state_dict(), strict=True)
        logger.info("model weights loaded from %s (%d tensors)", folder, len(loaded.state_dict()))
