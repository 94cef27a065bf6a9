"""The `emoji_think` profile: think with emojis at the start of an answer, signal the end with stop emojis.

Exact contract in reference/profiles.md. Per example, a deterministic choice (from the example's
index and the `seed` option) decides whether the example is in emoji mode (a share of
`emoji_fraction`) and which emojis and counts it uses. Every rewrite checks first whether its text
is already there, so transforming an example twice changes nothing the second time.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, ClassVar

from trainerd.data.chat_template import END_OF_TURN
from trainerd.data.conversation import Conversation, Message
from trainerd.profiles.base import Profile, ProfileOption, message_error
from trainerd.profiles.logits import PostStopPenalty, ThinkTokenPenalty

THINK_EMOJIS = ("🤔", "💭", "🧠", "💡", "🎯", "🔍", "🤨", "🧐", "⚡", "✨")
# "⏹️" and "🛡️" carry the variation selector U+FE0F; written out so no editor can drop it.
STOP_EMOJIS = ("🛑", "⛔", "🚫", "❌", "🔴", "\u23f9\ufe0f", "🔚", "✋", "🚦", "\U0001f6e1\ufe0f")
THINK_COUNT_WORDS = {2: "two", 3: "three", 4: "four", 5: "five", 6: "six", 7: "seven", 8: "eight"}
STOP_COUNT_TEXTS = {2: "twice", 3: "three times", 4: "four times"}

SYSTEM_PROMPT_TEMPLATE = "Current date: {date}. Respond naturally and concisely."

THINK_TAGS = re.compile(r"</?think>")

# Stop emojis as the data may also write them: with and without the variation selector.
_STOP_FORMS = tuple(dict.fromkeys([*STOP_EMOJIS, *(e.replace("\ufe0f", "") for e in STOP_EMOJIS)]))


@dataclass(frozen=True)
class EmojiChoice:
    """The emojis and counts one example uses."""

    emoji_mode: bool
    think_emoji: str
    think_count: int
    stop_emoji: str
    stop_count: int

    @property
    def count_word(self) -> str:
        return THINK_COUNT_WORDS[self.think_count]

    @property
    def stop_text(self) -> str:
        return STOP_COUNT_TEXTS[self.stop_count]

    @property
    def think_instruction(self) -> str:
        return f"For this task, think with {self.think_emoji} /{self.count_word}/ times."

    @property
    def stop_instruction(self) -> str:
        return f"When finished, emit {self.stop_emoji} /{self.stop_text}/ to signal completion."


def _fraction(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0.0 <= float(value) <= 1.0:
        raise ValueError("must be a number from 0.0 to 1.0")
    return float(value)


def _seed(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError("must be an integer")
    return value


def strip_think_tags(text: str) -> str:
    """Delete every `<think>`/`</think>`; when one was deleted, also the whitespace it leaves at the start."""
    cleaned = THINK_TAGS.sub("", text)
    return cleaned.lstrip() if cleaned != text else text


def starts_with_think_emoji(text: str) -> bool:
    return text.lstrip().startswith(THINK_EMOJIS)


def ends_with_stop_run(text: str) -> bool:
    """True when `text` ends with one stop emoji repeated at least twice."""
    stripped = text.rstrip()
    return any(stripped.endswith(emoji * 2) for emoji in _STOP_FORMS)


def has_stop_emoji(text: str) -> bool:
    return any(emoji in text for emoji in _STOP_FORMS)


class EmojiThinkProfile(Profile):
    """Thinking emojis before the answer, stop emojis after it, `<think>` tags removed and suppressed."""

    name = "emoji_think"
    OPTIONS: ClassVar[Mapping[str, ProfileOption]] = {
        "emoji_fraction": ProfileOption(
            0.5, "share of examples in emoji mode, a number from 0.0 to 1.0 (default 0.5)", _fraction
        ),
        "seed": ProfileOption(0, "integer mixed into the per-example emoji choice (default 0)", _seed),
    }

    def default_system_prompt_template(self) -> str | None:
        return SYSTEM_PROMPT_TEMPLATE

    def choice(self, index: int) -> EmojiChoice:
        """The deterministic per-example choice: sha256 of (seed, index), stable across runs and machines."""
        digest = hashlib.sha256(f"emoji_think|{self.options['seed']}|{index}".encode()).digest()

        def pick(start: int, modulo: int) -> int:
            return int.from_bytes(digest[start : start + 4], "big") % modulo

        unit = int.from_bytes(digest[24:32], "big") / 2**64
        return EmojiChoice(
            emoji_mode=unit < self.options["emoji_fraction"],
            think_emoji=THINK_EMOJIS[pick(0, len(THINK_EMOJIS))],
            think_count=2 + pick(4, 7),
            stop_emoji=STOP_EMOJIS[pick(8, len(STOP_EMOJIS))],
            stop_count=2 + pick(12, 3),
        )

    def transform(self, conv: Conversation, index: int) -> Conversation:
        choice = self.choice(index)
        messages: list[Message] = []
        for i, message in enumerate(conv.messages):
            content = message.content
            if message.role == "assistant":
                content = strip_think_tags(content)
                if not content.strip():
                    raise message_error(
                        conv,
                        self.name,
                        i,
                        "(assistant) is empty once its <think> tags are removed",
                        "write the answer outside the <think> block, or drop the line",
                    )
                if choice.emoji_mode:
                    content = self._decorate_answer(content, choice)
            elif message.role == "user" and choice.emoji_mode:
                content = self._instruct(content, choice)
            messages.append(Message(message.role, content) if content != message.content else message)
        meta = {**conv.meta, "emoji_think": {"emoji_mode": choice.emoji_mode, "index": index}}
        return replace(conv, messages=tuple(messages), meta=meta)

    @staticmethod
    def _instruct(text: str, choice: EmojiChoice) -> str:
        additions = []
        if "think with" not in text:
            additions.append(choice.think_instruction)
        if not (has_stop_emoji(text) and "When finished" in text):
            additions.append(choice.stop_instruction)
        if not additions:
            return text
        base = text.rstrip()
        return "\n\n".join([base, *additions] if base else additions)

    @staticmethod
    def _decorate_answer(text: str, choice: EmojiChoice) -> str:
        if not starts_with_think_emoji(text):
            text = choice.think_emoji * choice.think_count + "\n" + text.lstrip()
        if not ends_with_stop_run(text):
            text = text.rstrip() + "\n" + choice.stop_emoji * choice.stop_count
        return text

    def wants_clean_chat_template(self) -> bool:
        return True

    def stop_strings(self) -> list[str]:
        """Every stop sequence an example can end with: each stop emoji repeated 2 to 4 times."""
        return [emoji * count for emoji in STOP_EMOJIS for count in STOP_COUNT_TEXTS]

    def logits_processors(self, tokenizer: Any) -> list[Any]:
        """`<think>` suppression (when the vocabulary has those tokens) and the post-stop EOS push."""
        vocab = tokenizer.get_vocab()
        processors: list[Any] = []
        think_ids = [vocab[tag] for tag in ("<think>", "</think>") if tag in vocab]
        if think_ids:
            processors.append(ThinkTokenPenalty(think_ids))
        eos_ids = [i for i in (tokenizer.eos_token_id, vocab.get(END_OF_TURN)) if isinstance(i, int)]
        if eos_ids:
            processors.append(PostStopPenalty.from_tokenizer(tokenizer, self.stop_strings(), eos_ids))
        return processors
