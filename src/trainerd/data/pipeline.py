"""From dataset files to tokenized examples, with every decision logged.

Shared by the engine (before training), `trainerd data check` and the daemon's gate, so that what
is checked is exactly what is trained: read + validate each line, apply the profile (system prompt
policy, per-example transform), choose the chat template, tokenize with loss masks, and refuse a
trainable-token ratio outside the configured band.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from trainerd.config.schema import TrainerdConfig
from trainerd.data.chat_template import CHATML_TEMPLATE
from trainerd.data.prepare import prepare_conversations, resolve_system_prompt
from trainerd.data.tokenize import TokenizedDataset, check_trainable_ratio, tokenize_conversations
from trainerd.data.validate import read_datasets_with_config
from trainerd.profiles.base import Profile
from trainerd.profiles.registry import get_profile


@dataclass
class TrainingData:
    """Tokenized examples plus what was decided on the way (for logs and results)."""

    dataset: TokenizedDataset
    chat_template: str
    system_prompt: str | None
    profile: Profile
    decisions: list[str] = field(default_factory=list)
    skipped_lines: list[str] = field(default_factory=list)


def chat_template_for(tokenizer: Any, profile: Profile, replace_thinking: bool | None) -> tuple[str, str]:
    """The template to train with, and why (the profile decides; see Profile.resolve_chat_template)."""
    current = getattr(tokenizer, "chat_template", None)
    if isinstance(current, dict):  # several named templates: the default one is what chat uses
        current = current.get("default")
    choice = profile.resolve_chat_template(current, replace_thinking)
    return (choice.template or current or CHATML_TEMPLATE), f"chat template: {choice.reason}"


def build_training_data(paths: Sequence[str], cfg: TrainerdConfig, tokenizer: Any) -> TrainingData:
    """Read, validate, shape and tokenize `paths`; raises DataError before any training on bad data."""
    profile = get_profile(cfg.profile.name, cfg.profile.options)
    read = read_datasets_with_config(paths, cfg.data)  # every bad line of every file in one error
    conversations = read.conversations
    skipped = [str(problem) for problem in read.problems]
    system_prompt = resolve_system_prompt(profile, cfg.profile.system_prompt)
    prepared = prepare_conversations(conversations, profile, system_prompt, cfg.profile.system_prompt_policy)
    template, template_reason = chat_template_for(tokenizer, profile, cfg.profile.replace_thinking_template)
    dataset = tokenize_conversations(
        prepared.conversations,
        tokenizer,
        max_length=cfg.hyperparams.max_length,
        train_on=cfg.data.train_on,
        chat_template=template,
    )
    what = ", ".join(str(p) for p in paths)
    check_trainable_ratio(dataset, cfg.data.min_trainable_ratio, cfg.data.max_trainable_ratio, what)
    stats = dataset.summary()
    decisions = [
        f"profile: {profile.name}",
        prepared.describe(),
        template_reason,
        f"loss on: {'assistant tokens (with end-of-turn)' if cfg.data.train_on == 'assistant' else 'all tokens'}",
        f"data: {stats['examples']} examples, {stats['tokens']} tokens, {stats['truncated_examples']} truncated "
        f"at {cfg.hyperparams.max_length}, {stats['dropped_examples']} dropped",
        f"trainable-token ratio: {dataset.trainable_ratio:.4f} ({dataset.trainable_tokens} of {dataset.total_tokens} "
        f"tokens carry loss; band [{cfg.data.min_trainable_ratio}, {cfg.data.max_trainable_ratio}])",
    ]
    if skipped:
        decisions.append(f"skipped {len(skipped)} invalid line(s) (data.on_invalid_line=skip); first: {skipped[0]}")
    return TrainingData(
        dataset=dataset,
        chat_template=template,
        system_prompt=system_prompt,
        profile=profile,
        decisions=decisions,
        skipped_lines=skipped,
    )
