"""Logits processors on small tensors, then inside a real generate() on a tiny random model."""

from __future__ import annotations

import pytest
import torch

from trainerd.profiles.emoji_think import EmojiThinkProfile
from trainerd.profiles.logits import PostStopPenalty, ThinkTokenPenalty

# A character vocabulary: id -> text.
CHARS = ["<eos>", "a", "b", "c", "🛑", "⛔", "\n", "<think>", "</think>"]
EOS = 0


def decode(ids: list[int]) -> str:
    return "".join(CHARS[i] for i in ids)


def ids(text: str) -> list[int]:
    return [CHARS.index(ch) for ch in text]


def run_steps(processor, prompt: list[list[int]], generated: list[list[int]]) -> list[torch.Tensor]:
    """Feed the processor step by step as generate() would; return the processed scores of each step."""
    outputs = []
    batch = torch.tensor(prompt)
    for step in range(len(generated[0]) + 1):
        scores = torch.zeros(len(prompt), len(CHARS))
        outputs.append(processor(batch, scores))
        if step < len(generated[0]):
            batch = torch.cat([batch, torch.tensor([[row[step]] for row in generated])], dim=1)
    return outputs


def test_think_penalty_schedule() -> None:
    processor = ThinkTokenPenalty([7, 8])
    assert [processor.penalty(s) for s in range(14)] == [640.0] * 4 + [160.0] * 4 + [120.0] * 4 + [80.0] * 2
    outputs = run_steps(processor, [[1, 2], [2, 3]], [[1] * 13, [2] * 13])
    for step, out in enumerate(outputs):
        expected = processor.penalty(step)
        assert torch.equal(out[:, 7], torch.full((2,), -expected))
        assert torch.equal(out[:, 8], torch.full((2,), -expected))
        assert torch.count_nonzero(out[:, :7]) == 0


def test_think_penalty_restarts_for_a_new_generation() -> None:
    processor = ThinkTokenPenalty([7])
    run_steps(processor, [[1, 2, 3]], [[1] * 9])
    # A new prompt (length not previous + 1) starts again at step 0.
    out = processor(torch.tensor([[1, 2]]), torch.zeros(1, len(CHARS)))
    assert out[0, 7] == -640.0


def test_post_stop_penalty_after_complete_sequence() -> None:
    processor = PostStopPenalty(["🛑🛑"], [EOS], decode)
    # The prompt holds a full stop sequence: it must not count.
    prompt = [ids("a🛑🛑b"), ids("a🛑🛑b")]
    generated = [ids("c🛑🛑ab"), ids("c🛑⛔🛑a")]
    outputs = run_steps(processor, prompt, generated)
    row0 = [out[0] for out in outputs]
    # Steps 0-2 see "", "c", "c🛑": no penalty.
    for out in row0[:3]:
        assert torch.count_nonzero(out) == 0
    # Step 3: "c🛑🛑" just completed -> 100 on every non-EOS token, EOS +50.
    assert row0[3][EOS] == 50.0 and torch.all(row0[3][1:] == -100.0)
    # Each extra token multiplies by 10.
    assert row0[4][EOS] == 50.0 and torch.all(row0[4][1:] == -1000.0)
    assert torch.all(row0[5][1:] == -10000.0)
    # Row 1 never completes a sequence ("🛑⛔🛑" is not "🛑🛑").
    for out in outputs:
        assert torch.count_nonzero(out[1]) == 0


def test_post_stop_penalty_is_capped_and_finite() -> None:
    processor = PostStopPenalty(["🛑🛑"], [EOS], decode)
    assert processor.penalty(0) == 100.0 and processor.penalty(2) == 10_000.0
    assert processor.penalty(50) == processor.penalty(6) == 1e8
    assert processor.tokens_after_stop(ids("🛑🛑")) == 0
    assert processor.tokens_after_stop(ids("a🛑🛑bc🛑🛑")) == 4
    assert processor.tokens_after_stop(ids("a🛑")) is None


def test_processors_validate_their_inputs() -> None:
    with pytest.raises(ValueError):
        ThinkTokenPenalty([])
    with pytest.raises(ValueError):
        PostStopPenalty([], [EOS], decode)


def test_works_in_a_transformers_processor_list() -> None:
    from transformers import LogitsProcessorList

    processors = LogitsProcessorList([ThinkTokenPenalty([7]), PostStopPenalty(["🛑🛑"], [EOS], decode)])
    out = processors(torch.tensor([ids("a")]), torch.zeros(1, len(CHARS)))
    assert out[0, 7] == -640.0


def _char_tokenizer():
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {ch: i for i, ch in enumerate(CHARS)}
    vocab["<|im_end|>"] = len(vocab)
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="a"))
    backend.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
    backend.decoder = decoders.Fuse()
    return PreTrainedTokenizerFast(
        tokenizer_object=backend, eos_token="<eos>", additional_special_tokens=["<think>", "</think>", "<|im_end|>"]
    )


class _Force:
    """Test helper: force fixed token ids at the first generation steps (a real processor, no mock)."""

    def __init__(self, prompt_len: int, forced: list[int]) -> None:
        self.prompt_len = prompt_len
        self.forced = forced

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        step = input_ids.shape[1] - self.prompt_len
        if step < len(self.forced):
            scores = torch.full_like(scores, -1e9)
            scores[:, self.forced[step]] = 0.0
        return scores


def test_emoji_think_processors_end_generation_after_the_stop_emojis() -> None:
    from transformers import LogitsProcessorList, Qwen3Config, Qwen3ForCausalLM

    tokenizer = _char_tokenizer()
    processors = EmojiThinkProfile().logits_processors(tokenizer)
    assert [type(p) for p in processors] == [ThinkTokenPenalty, PostStopPenalty]
    assert sorted(processors[0].token_ids) == [7, 8]
    assert processors[1].eos_token_ids == [0, 9]

    torch.manual_seed(0)
    config = Qwen3Config(
        vocab_size=len(tokenizer.get_vocab()),
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=1,
        head_dim=8,
        max_position_embeddings=64,
        eos_token_id=[EOS, 9],  # <eos> and <|im_end|>, as chat models' generation configs have
        pad_token_id=EOS,
    )
    model = Qwen3ForCausalLM(config).eval()
    prompt = torch.tensor([ids("ab")])
    stop = tokenizer.convert_tokens_to_ids("🛑")
    out = model.generate(
        prompt,
        attention_mask=torch.ones_like(prompt),
        max_new_tokens=10,
        do_sample=False,
        logits_processor=LogitsProcessorList([_Force(2, [1, stop, stop]), *processors]),
    )
    generated = out[0, 2:].tolist()
    assert generated[:3] == [1, stop, stop] and generated[3:] in ([EOS], [9])
    assert tokenizer.decode(generated[:-1]) == "a🛑🛑"
