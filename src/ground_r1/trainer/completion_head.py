"""LM head and log-softmax on the scored positions only, on every device (SPEC §10: the release ran the
full-vocabulary log-softmax over the whole sequence).

TRL's fused head (`trl.trainer.utils.add_fused_lm_head`, TRL 1.16) projects only the labelled positions on
Triton devices; elsewhere (CPU) every position of ``[rows x width]`` goes through the full-vocabulary
log-softmax ("every position is scored"), ~29 % of a tiny CPU step (benchmarks/perf/README.md). On CPU TRL
keeps every position because tile shapes that change per batch would recompile on Neuron; eager CPU has no
such cost.

`add_scored_head(model)` wraps the forward TRL installed. Called with ``score_positions=`` (a bool
``[R, W]`` mask of the tokens whose log-probs are wanted) and ``scored_head=ScoredHead(...)``, it runs the
backbone, keeps the hidden states of the positions just before the scored tokens, and projects only those,
through TRL's own chunked kernel (`trl.kernels.chunked_logprob.ChunkedLogProbFunction`, the function TRL's
compact path calls, with the same temperature, logit scale and soft-cap), so its values are TRL's to float
rounding. Called without them it is the forward it wrapped (generation, TRL's padded path). The call goes
through the model's own ``__call__`` (DDP, DeepSpeed and PEFT wrappers see an ordinary forward); under ZeRO-3
the head weight is gathered as TRL gathers it (`maybe_gather_lm_head_ctx`).

The head settings travel with each call rather than being fixed at install time: several trainers may wrap
the same model object (the benchmark does), and the outermost wrapper answers every scored call.
"""

from __future__ import annotations

import functools
import types
from contextlib import nullcontext
from dataclasses import dataclass

import torch
from transformers.utils import ModelOutput

# Borrowed from TRL 1.16 (pinned in tests/trainer/test_trl_contract.py).
from trl.kernels.chunked_logprob import ChunkedLogProbFunction
from trl.trainer.utils import _CHUNKED_LOGPROB_CHUNK_SIZE, maybe_gather_lm_head_ctx

# Text-config attributes that change the logits in TRL's head and that this head does not reproduce.
_UNSUPPORTED_SCALES = ("output_multiplier", "lm_head_multiplier", "logits_scaling")


@dataclass(frozen=True)
class ScoredHead:
    """What TRL's fused head is given: the sampling temperature, fp32 projection, which outputs to compute."""

    temperature: float = 1.0
    cast_lm_head_to_fp32: bool = False
    outputs: tuple[str, ...] = ("log_probs",)


@dataclass
class ScoredLogProbs(ModelOutput):
    """One value per scored position, in the row-major order of ``score_positions``."""

    log_probs: torch.Tensor | None = None  # [n]
    entropy: torch.Tensor | None = None  # [n] (None unless asked for)


def unsupported_reason(model) -> str | None:
    """Why the scored head cannot reproduce TRL's for this model (None: it can)."""
    text = model.config.get_text_config()
    for name in _UNSUPPORTED_SCALES:
        if getattr(text, name, None) is not None:
            return f"the model's text config sets {name}, which this head does not apply"
    if getattr(text, "output_router_logits", False):
        return "the model returns MoE router logits (TRL adds their load-balancing loss in its own head)"
    return None


def add_scored_head(model) -> None:
    """Wrap `model.forward` (after TRL's `add_fused_lm_head`): see the module docstring."""
    inner = model.forward
    text_config = model.config.get_text_config()
    softcap = getattr(text_config, "final_logit_softcapping", None)
    logit_scale = getattr(text_config, "logit_scale", None)
    logit_scale = 1.0 if logit_scale is None else logit_scale

    @functools.wraps(type(model).forward)  # generate validates its kwargs against the signature
    def forward(self, *args, score_positions=None, scored_head: ScoredHead | None = None, **kwargs):
        if score_positions is None:
            return inner(*args, **kwargs)
        head_settings = scored_head or ScoredHead()
        kwargs["use_cache"] = False
        hidden = self.base_model(*args, **kwargs).last_hidden_state  # [R, W, H]
        before = score_positions[:, 1:].to(hidden.device)  # the token at q is predicted from position q - 1
        hidden = hidden[:, :-1][before]  # [n, H]
        targets = kwargs["input_ids"][:, 1:].to(hidden.device)[before]  # [n]
        head = self.get_output_embeddings()
        hidden, targets = hidden.to(head.weight.device), targets.to(head.weight.device)
        autocast_ctx = nullcontext()
        if head_settings.cast_lm_head_to_fp32:
            hidden = hidden.float()
            autocast_ctx = torch.autocast(hidden.device.type, enabled=False)
        weight, bias = head.weight, head.bias
        if _is_dtensor(weight):  # FSDP2, as TRL does
            weight = weight.full_tensor()
            bias = bias.full_tensor() if bias is not None else None
        with autocast_ctx, maybe_gather_lm_head_ctx(weight, bias):
            log_probs, entropy, *_ = ChunkedLogProbFunction.apply(
                hidden,
                weight,
                bias,
                targets,
                head_settings.temperature,
                _CHUNKED_LOGPROB_CHUNK_SIZE,
                softcap,
                logit_scale,
                head_settings.outputs,
            )
        return ScoredLogProbs(log_probs=log_probs, entropy=entropy)

    model.forward = types.MethodType(forward, model)


def _is_dtensor(tensor) -> bool:
    try:
        from torch.distributed.tensor import DTensor
    except ImportError:  # pragma: no cover - torch without distributed
        return False
    return isinstance(tensor, DTensor)
