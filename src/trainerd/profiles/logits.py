"""Generation-time logits processors of the built-in profiles.

They follow transformers' LogitsProcessor protocol — `__call__(input_ids, scores) -> scores` on
batched torch tensors — without subclassing it, so this module imports neither torch nor
transformers (only tensor methods are used). `generate(logits_processor=LogitsProcessorList([...]))`
accepts them as they are.

Both processors count generation steps from the length of `input_ids`: the first call of a
`generate()` records the prompt length, and a call whose length is not the previous one + 1 starts a
new count. Make fresh processors per `generate()` call anyway (`profile.logits_processors(tok)` is
cheap); assisted/speculative decoding, which feeds several tokens per step, is not supported.

Interpretation of profiles.md, "a penalty on the <think>/</think> tokens (base 80, multiplied by
8, 2, 1.5 over the first 3×4 steps)": the first 12 generated tokens form three phases of 4 steps;
the penalty subtracted from those tokens' scores is 80×8 = 640 for steps 0–3, 80×2 = 160 for steps
4–7, 80×1.5 = 120 for steps 8–11, and the base 80 from step 12 on (so the tokens stay suppressed).

"after a complete stop sequence has been generated, every token but EOS is penalised (base 100,
×10 per extra token) and EOS is rewarded (+50)": once the generated text (never the prompt) ends
with a stop string, every later step subtracts 100 × 10^k from all non-EOS scores, where k is the
number of tokens generated after the stop string (0 right after it), and adds 50 to the EOS scores.
Detection decodes the generated tokens, so it does not depend on how a stop string is tokenized.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

# The penalty growth is capped so that scores stay finite in fp16/fp32 (100 × 10^6 is plenty).
_MAX_GROWTH_EXPONENT = 6


class _GenerationClock:
    """How many tokens the current generate() call has produced, from input_ids' length alone."""

    def __init__(self) -> None:
        self._prompt_len = 0
        self._last_len: int | None = None

    def reset(self) -> None:
        self._last_len = None

    def step(self, seq_len: int) -> int:
        if self._last_len is None or seq_len != self._last_len + 1:
            self._prompt_len = seq_len
        self._last_len = seq_len
        return seq_len - self._prompt_len

    @property
    def prompt_len(self) -> int:
        return self._prompt_len


class ThinkTokenPenalty:
    """Keep `<think>`/`</think>` out of generation, hardest at the start where Qwen3 habits pull."""

    supports_continuous_batching = False

    def __init__(
        self,
        token_ids: Sequence[int],
        base: float = 80.0,
        multipliers: Sequence[float] = (8.0, 2.0, 1.5),
        steps_per_phase: int = 4,
    ) -> None:
        if not token_ids:
            raise ValueError("ThinkTokenPenalty needs at least one token id")
        self.token_ids = list(token_ids)
        self.base = base
        self.multipliers = tuple(multipliers)
        self.steps_per_phase = steps_per_phase
        self._clock = _GenerationClock()

    def penalty(self, step: int) -> float:
        """Penalty subtracted at generation step `step` (0 = first generated token)."""
        phase = step // self.steps_per_phase
        return self.base * (self.multipliers[phase] if phase < len(self.multipliers) else 1.0)

    def reset(self) -> None:
        self._clock.reset()

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        step = self._clock.step(int(input_ids.shape[-1]))
        scores = scores.clone()
        scores[:, self.token_ids] -= self.penalty(step)
        return scores


class PostStopPenalty:
    """Once a row has generated a complete stop sequence, push it to end right there."""

    supports_continuous_batching = False

    def __init__(
        self,
        stop_strings: Sequence[str],
        eos_token_ids: Sequence[int],
        decode: Callable[[list[int]], str],
        base: float = 100.0,
        growth: float = 10.0,
        eos_bonus: float = 50.0,
    ) -> None:
        if not stop_strings or not eos_token_ids:
            raise ValueError("PostStopPenalty needs stop strings and at least one EOS token id")
        self.stop_strings = list(stop_strings)
        self.eos_token_ids = sorted(set(eos_token_ids))
        self.decode = decode
        self.base = base
        self.growth = growth
        self.eos_bonus = eos_bonus
        self._clock = _GenerationClock()

    @classmethod
    def from_tokenizer(
        cls, tokenizer: Any, stop_strings: Sequence[str], eos_token_ids: Sequence[int], **kwargs: Any
    ) -> PostStopPenalty:
        """Decode generated tokens with `tokenizer` (special tokens kept, so positions stay honest)."""
        return cls(
            stop_strings,
            eos_token_ids,
            lambda ids: tokenizer.decode(ids, skip_special_tokens=False),
            **kwargs,
        )

    def reset(self) -> None:
        self._clock.reset()

    def tokens_after_stop(self, generated: list[int]) -> int | None:
        """Tokens generated after the first complete stop sequence, or None if there is none yet."""
        if not generated or not self._has_stop(generated):
            return None
        # Smallest prefix that holds a stop string (containment only grows with the prefix).
        lo, hi = 1, len(generated)
        while lo < hi:
            mid = (lo + hi) // 2
            if self._has_stop(generated[:mid]):
                hi = mid
            else:
                lo = mid + 1
        return len(generated) - lo

    def _has_stop(self, ids: list[int]) -> bool:
        text = self.decode(ids)
        return any(stop in text for stop in self.stop_strings)

    def penalty(self, extra: int) -> float:
        """Penalty on every non-EOS token `extra` tokens after the stop sequence."""
        return self.base * self.growth ** min(extra, _MAX_GROWTH_EXPONENT)

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        self._clock.step(int(input_ids.shape[-1]))
        start = self._clock.prompt_len
        out = scores
        for row in range(int(input_ids.shape[0])):
            extra = self.tokens_after_stop(input_ids[row, start:].tolist())
            if extra is None:
                continue
            if out is scores:
                out = scores.clone()
            eos_scores = out[row, self.eos_token_ids] + self.eos_bonus
            out[row] -= self.penalty(extra)
            out[row, self.eos_token_ids] = eos_scores
        return out
