"""Configuration of a Ground-R1 GRPO run: `GroundR1Config` (TRL's GRPOConfig + the method's knobs) and the
script arguments (model, data). Presets live in configs/grpo/*.yaml, each value commented with its SPEC source.

`__post_init__` checks the settings the method needs and says what to set when they are wrong.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from trl import GRPOConfig


@dataclass
class GroundR1Config(GRPOConfig):
    """GRPOConfig plus the Ground-R1 rollout (SPEC §2-§5).

    Each field is documented once, in its ``help`` (what ``--help`` prints and what
    ``tests/trainer/test_trl_contract.py`` checks is there); the presets in configs/grpo/*.yaml give each value with
    its SPEC source. Groups: tree sampling, rounds and budgets, images and crops, model, rewards, generation, loss
    batch (trainer/loss_batch.py), faults, learning signal (DAPO's group filter, collapse alarms; TRL's
    ``mask_truncated_completions`` also leaves out trajectories that hit the turn cap unanswered), reporting.
    """

    # Tree sampling
    num_first_round_samples: int = field(
        default=2,
        metadata={
            "help": "G1: grounding samples per question in round 1, each shared by G2 = num_generations / G1 trajectories (SPEC §2; release N=8, G1=2; paper G1=4, G2=2)."
        },
    )
    # Rounds and budgets
    max_turns: int = field(
        default=5, metadata={"help": "Assistant turns per trajectory, 4 crops at most (SPEC §2: 5)."}
    )
    max_new_tokens_per_turn: int = field(
        default=512,
        metadata={
            "help": "New tokens per turn (SPEC §2: 512, the release's per-round limit); max_completion_length stays the total budget of a trajectory, sampled and injected tokens alike."
        },
    )
    # Images and crops
    min_pixels: int = field(
        default=3136, metadata={"help": "Image processor min_pixels, passed explicitly (SPEC §2: 3136)."}
    )
    max_pixels: int = field(
        default=401408, metadata={"help": "Image processor max_pixels, passed explicitly (SPEC §2: 401408)."}
    )
    min_crop_size: int = field(
        default=28, metadata={"help": "Crops are widened to at least this many pixels per side (SPEC §2)."}
    )
    max_aspect_ratio: float = field(
        default=200.0, metadata={"help": "Boxes with aspect ratio >= this are rejected (SPEC §2)."}
    )
    crop_fallback: str = field(
        default="full_image", metadata={"help": "No valid box: 'full_image' (release) or 'end' (SPEC §2)."}
    )
    no_crop: bool = field(default=False, metadata={"help": "Control run: feed the original image instead of the crop."})
    coordinates: str | None = field(
        default=None,
        metadata={
            "help": "Box convention of the prompt and of every box mapping (crops, the trajectory log, evaluation): 'input_pixels' (absolute pixels of the resized input, SPEC §2) or 'relative_1000' (a 0-1000 grid); None: the model family's (Qwen2.5-VL: input_pixels; Qwen2-VL, Qwen3-VL, Qwen3.5: relative_1000; docs/model_families.md). Recorded in rollout_settings.json, so evaluation maps boxes in the convention training used."
        },
    )
    box_parse: str = field(
        default="tag_first",
        metadata={
            "help": "Box rule (SPEC §2): 'tag_first' (ours: inside <box> first, then the release's rule) or 'release' (the release's rule alone); reaches the rollout of training and of both evaluation CLIs."
        },
    )
    # Model
    freeze_vision_tower: bool = field(default=True, metadata={"help": "Freeze the vision tower (SPEC §5)."})
    freeze_projector: bool = field(default=True, metadata={"help": "Freeze the projector/merger too (SPEC §5)."})
    # Rewards
    reward_functions: list[str] = field(
        default_factory=lambda: ["format", "accuracy"],
        metadata={
            "help": "Reward functions: names of ground_r1.rewards.trl_functions.REWARD_FUNCTIONS ('format', 'accuracy') or dotted paths 'pkg.mod:func'."
        },
    )
    accuracy_default_handler: str | None = field(
        default=None,
        metadata={
            "help": "Accuracy handler for dataset names with no rule (a handler name, a dataset name or 'pkg.mod:func'); None: such a name is a validation error."
        },
    )
    letter_rule: str = field(
        default="spec",
        metadata={
            "help": "Option-letter rule of v7w/gqa/openimages (SPEC §3): 'spec' (SPEC rule + bare-letter fallback) or 'release' (the release's full rule); the evaluation tables take the same value."
        },
    )
    question_reward_log: bool = field(
        default=False,
        metadata={"help": "Write per-question rewards to question_rewards.jsonl (the release's data-selection log)."},
    )
    # Generation
    record_sampling_logprobs: bool = field(
        default=True,
        metadata={
            "help": "Keep generate's per-token log-probs and pass them to the loss inputs as sampling_per_token_logps (TRL's off-policy mask uses them); costs B x V memory per decoding step."
        },
    )
    generation_max_batch_rows: int | None = field(
        default=None,
        metadata={"help": "Split each round's generate call into chunks of this many rows (None: one call)."},
    )
    scripted_policy: str | None = field(
        default=None,
        metadata={
            "help": "Tests/benchmarks only: replace sampling by a scripted policy (a name of ground_r1.demo.scripted.POLICIES or pkg.mod:func); the model still runs one forward per generate call."
        },
    )
    eval_max_new_tokens_per_turn: int | None = field(
        default=None, metadata={"help": "Per-turn budget in evaluation (default: training's)."}
    )
    eval_repetition_penalty: float = field(
        default=1.05, metadata={"help": "Greedy evaluation repetition penalty (SPEC §2)."}
    )
    # Loss batch (the loss, reference and old log-prob passes alike)
    loss_batch_layout: str = field(
        default="auto",
        metadata={
            "help": "Loss-pass layout: 'bucketed' (trajectories of similar length share a forward, each padded to its bucket's longest), 'packed' (padding-free, per-trajectory positions; pays with flash-attention, sdpa builds a [W x W] mask), 'padded' (TRL's own batch), 'auto' (packed with flash-attention, else bucketed). All but 'padded' score only loss-mask positions through the LM head (SPEC §10)."
        },
    )
    loss_bucket_min_fill: float = field(
        default=0.9,
        metadata={
            "help": "Bucketed layout: the fewest buckets whose tokens fill at least this share of their rows x longest row."
        },
    )
    # Faults
    nonfinite_policy: str = field(
        default="skip",
        metadata={
            "help": "Non-finite loss/gradient: 'skip' the optimizer step (logged with the record ids), 'raise', or 'ignore'."
        },
    )
    max_consecutive_nonfinite_steps: int = field(
        default=5, metadata={"help": "Stop after more consecutive non-finite steps than this (0 = no limit)."}
    )
    checkpoint_on_sigterm: bool = field(
        default=True, metadata={"help": "On SIGTERM: finish the step, save a complete checkpoint, exit 143."}
    )
    # Learning signal
    dynamic_sampling: bool = field(
        default=False,
        metadata={
            "help": "DAPO's group filter: drop groups whose rewards are all equal and refill the batch with rollouts of further questions (trainer/dynamic_sampling.py)."
        },
    )
    dynamic_sampling_max_refills: int = field(
        default=2,
        metadata={
            "help": "Dynamic sampling: extra rollouts per step at most; then the step trains on what it has and logs the shortfall."
        },
    )
    collapse_alarms: bool = field(
        default=True,
        metadata={
            "help": "Watch the run for the signs of collapse and warn by name (trainer/alarms.py); alarms.jsonl, the report and curves.png mark them."
        },
    )
    alarm_action: str = field(
        default="warn",
        metadata={
            "help": "On a collapse alarm: 'warn' (log it and go on) or 'stop' (save a checkpoint of that step and end the run, exit code 3)."
        },
    )
    alarm_window: int = field(
        default=20, metadata={"help": "Collapse alarms: each signal is the mean over this many logged steps."}
    )
    alarm_min_turns: float = field(
        default=1.1, metadata={"help": "Alarm one_round_collapse: turns per trajectory at or below this."}
    )
    alarm_length_ratio: float = field(
        default=0.5,
        metadata={
            "help": "Alarm length_collapse: sampled tokens per trajectory below this share of the run's first window."
        },
    )
    alarm_max_zero_std: float = field(
        default=0.75, metadata={"help": "Alarm no_signal: the share of groups with all-equal rewards at or above this."}
    )
    alarm_format_drop: float = field(
        default=0.3,
        metadata={"help": "Alarm format_drop: the format reward this far below its best window of the run."},
    )
    alarm_no_box_rise: float = field(
        default=0.25,
        metadata={"help": "Alarm no_box_rise: the no-box rate this far above its lowest window of the run."},
    )
    # Reporting
    trajectory_log_steps: int = field(
        default=0,
        metadata={
            "help": "Every this many steps (and at step 1), append one question's trajectories to OUTPUT_DIR/trajectories.jsonl (the gallery's input); 0: off."
        },
    )
    write_report: bool = field(
        default=True,
        metadata={
            "help": "At the end of training write curves.png (and trajectories.html when trajectories were logged) to OUTPUT_DIR (ground_r1.reporting)."
        },
    )
    heldout_eval_questions: int = field(
        default=0,
        metadata={
            "help": "After training: greedy held-out evaluation with controls (grounded, no-crop lower bound, ground-truth-crop upper bound, random box) on this many eval questions, written to OUTPUT_DIR/heldout_eval.json; 0: off."
        },
    )
    heldout_eval_steps: int = field(
        default=0,
        metadata={
            "help": "With heldout_eval_questions: the greedy held-out accuracy (grounded) before step 1 (the base model) and every this many steps, logged as heldout/* (metrics.jsonl, trackers, console, curves.png); 0: only after training."
        },
    )

    def __post_init__(self):
        # Our checks first: GRPOConfig's own would otherwise stop at its first problem with a less useful message.
        problems = []
        if self.use_vllm:
            problems.append(
                "use_vllm=True is not supported yet: the crop turns have not been tested with vLLM. Set use_vllm: false "
                "(generation runs through transformers)."
            )
        n, g1 = self.num_generations, self.num_first_round_samples
        if g1 < 1 or n % g1 != 0:
            problems.append(
                f"num_generations ({n}) must be a multiple of num_first_round_samples ({g1}): each first-round "
                f"grounding sample is shared by num_generations / num_first_round_samples trajectories."
            )
        if self.per_device_train_batch_size % n != 0:
            problems.append(
                f"per_device_train_batch_size ({self.per_device_train_batch_size}) must be a multiple of "
                f"num_generations ({n}): TRL counts the batch in completions and all {n} trajectories of a question "
                f"must live on one rank (they share round-1 turns). Set per_device_train_batch_size: {n} "
                f"(one question per device) or a multiple of it."
            )
        if self.heldout_eval_steps < 0:
            problems.append(f"heldout_eval_steps must be >= 0, got {self.heldout_eval_steps}")
        if self.max_turns < 1:
            problems.append(f"max_turns must be >= 1, got {self.max_turns}")
        if self.max_new_tokens_per_turn < 1:
            problems.append(f"max_new_tokens_per_turn must be >= 1, got {self.max_new_tokens_per_turn}")
        if self.crop_fallback not in ("full_image", "end"):
            problems.append(f"crop_fallback must be 'full_image' or 'end', got {self.crop_fallback!r}")
        from ground_r1.boxes import BOX_PARSE_RULES
        from ground_r1.rewards.accuracy import LETTER_RULES

        from ground_r1.models.families.coordinates import CONVENTIONS

        if self.coordinates is not None and self.coordinates not in CONVENTIONS:
            problems.append(
                f"coordinates must be one of {', '.join(CONVENTIONS)} or unset (the model family's), "
                f"got {self.coordinates!r}"
            )
        if self.box_parse not in BOX_PARSE_RULES:
            problems.append(f"box_parse must be one of {', '.join(BOX_PARSE_RULES)}, got {self.box_parse!r}")
        if self.letter_rule not in LETTER_RULES:
            problems.append(f"letter_rule must be one of {', '.join(LETTER_RULES)}, got {self.letter_rule!r}")
        from ground_r1.trainer.loss_batch import LAYOUTS

        if self.loss_batch_layout not in LAYOUTS:
            problems.append(f"loss_batch_layout must be one of {', '.join(LAYOUTS)}, got {self.loss_batch_layout!r}")
        if not 0.0 < self.loss_bucket_min_fill <= 1.0:
            problems.append(f"loss_bucket_min_fill must be in (0, 1], got {self.loss_bucket_min_fill}")
        if self.dynamic_sampling_max_refills < 0:
            problems.append(f"dynamic_sampling_max_refills must be >= 0, got {self.dynamic_sampling_max_refills}")
        from ground_r1.trainer.alarms import settings_problems

        problems.extend(settings_problems(self))
        if self.min_pixels > self.max_pixels:
            problems.append(f"min_pixels ({self.min_pixels}) must not exceed max_pixels ({self.max_pixels})")
        from ground_r1.trainer.nonfinite import policy_problem

        problems.extend(policy_problem(self.nonfinite_policy, self.max_consecutive_nonfinite_steps))
        if self.remove_unused_columns:
            problems.append("remove_unused_columns must be false: the rollout reads image, problem, solution and bboxs")
        if problems:
            raise ValueError("invalid GroundR1Config:\n  - " + "\n  - ".join(problems))
        super().__post_init__()


@dataclass
class GroundR1ScriptArguments:
    """Data of a run (the launcher maps DATA_PATH, IMAGE_ROOT to these). The model (MODEL_PATH, dtype, attention,
    LoRA) is TRL's `ModelConfig`."""

    data_path: str | None = field(
        default=None,
        metadata={"help": "Training JSONL in the VisCoT record format (default: built-in synthetic data)."},
    )
    eval_data_path: str | None = field(default=None, metadata={"help": "Held-out JSONL for periodic evaluation."})
    image_root: str | None = field(
        default=None, metadata={"help": "Folder that relative (or rewritten) image paths resolve against."}
    )
    image_path_prefix: str | None = field(
        default=None, metadata={"help": "Prefix of the records' absolute image paths to replace by image_root."}
    )
    skip_bad_records: bool = field(
        default=False,
        metadata={"help": "Train on the valid records and write the skipped ones to OUTPUT_DIR/skipped_records.jsonl."},
    )
    max_image_pixels: int = field(
        default=178_956_970,
        metadata={
            "help": "Decompression-bomb limit of dataset images in pixels (default: PIL's own error threshold; 0: no limit)."
        },
    )
    max_train_questions: int | None = field(
        default=None, metadata={"help": "Budget in questions (SPEC §5: the release consumed 8,000); sets max_steps."}
    )
    lr_schedule_span: str = field(
        default="budget",
        metadata={
            "help": "'budget': the schedule ends with max_train_questions; 'epoch': it spans num_train_epochs and training stops at the budget (the release)."
        },
    )
    max_eval_questions: int | None = field(
        default=64, metadata={"help": "Held-out questions used by periodic evaluation."}
    )
    synthetic_num_train: int = field(default=512, metadata={"help": "Built-in synthetic data: training questions."})
    synthetic_num_eval: int = field(default=64, metadata={"help": "Built-in synthetic data: held-out questions."})
