"""Tiny Qwen3-architecture models built offline, so tests and demos never download anything.

The tokenizer is a byte-level BPE trained in seconds on a corpus generated here (deterministic), so
any text, emoji included, encodes; the model is a randomly initialised `Qwen3ForCausalLM` small
enough to train for a few steps on a CPU.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import GenerationConfig, PreTrainedTokenizerFast, Qwen3Config, Qwen3ForCausalLM

from trainerd.data.chat_template import CHATML_TEMPLATE, END_OF_TURN
from trainerd.errors import ModelError

PAD_TOKEN = "<|endoftext|>"
IM_START = "<|im_start|>"
EOS_TOKEN = END_OF_TURN
THINK_TOKENS = ("<think>", "</think>")
SPECIAL_TOKENS = (PAD_TOKEN, IM_START, EOS_TOKEN)


@dataclass(frozen=True)
class TinyPreset:
    """Shape of one tiny model; head_dim is explicit because Qwen3Config defaults it to 128."""

    vocab_size: int
    hidden_size: int
    num_hidden_layers: int
    num_attention_heads: int
    num_key_value_heads: int
    head_dim: int
    intermediate_size: int
    max_position_embeddings: int = 4096


TINY_PRESETS: dict[str, TinyPreset] = {
    "tiny": TinyPreset(
        vocab_size=2048,
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=16,
        intermediate_size=128,
    ),
    "small": TinyPreset(
        vocab_size=4096,
        hidden_size=256,
        num_hidden_layers=4,
        num_attention_heads=8,
        num_key_value_heads=4,
        head_dim=32,
        intermediate_size=704,
    ),
}


def _words(text: str) -> tuple[str, ...]:
    """Word lists are written as one string to keep the module short."""
    return tuple(text.split())


_NAMES = ("Ada", "Ben", "Cleo", "Dan", "Eve", "Finn", "Gus", "Hana", "Ivo", "Jade", "Kai", "Lena", "Maya", "Noah")
_PLACES = ("the park", "the garden", "the river", "the city", "the forest", "the kitchen", "school", "the market")
_NOUNS = _words(
    "cat dog fox owl horse rabbit whale sparrow turtle bee bird fish tree flower river mountain house "
    "garden city road bridge boat train car bike book letter story song picture window door table chair "
    "kitchen room school teacher student friend family mother father sister brother child baby farmer "
    "doctor driver king queen village forest island ocean lake field valley cloud rain snow storm wind "
    "sun moon star planet light fire water stone sand apple bread cheese cake cookie soup milk tea coffee "
    "market shop street corner morning evening night winter summer spring autumn minute hour week month "
    "year number question answer problem idea plan game ball toy box basket bag hat coat shoe sock key "
    "clock phone computer screen music word sentence page paper pencil color shape circle square line "
    "point garden path hill cave castle tower"
)
_VERBS = _words(
    "like see help find follow draw feed watch meet call walk run jump swim climb read write sing play "
    "paint cook bake open close carry build clean fix learn teach count move push pull throw catch hold "
    "keep bring visit wait listen answer ask plant water visit pick wash fill check start finish show "
    "explain remember"
)
_ADJS = _words(
    "small quick quiet happy bright old young clever gentle brave large tiny soft loud warm cold dark "
    "sweet tall short long round busy lazy calm wild kind funny strange simple heavy light early late "
    "fresh clean friendly careful curious hungry sleepy lucky famous golden silver wooden empty"
)
_ADVERBS = _words("slowly quickly quietly happily carefully gently loudly often always never sometimes today")
_COLORS = ("red", "blue", "green", "yellow", "white", "black", "orange", "purple", "brown", "pink", "gray")
_QUESTIONS = (
    ("What is the capital of France?", "The capital of France is Paris."),
    ("How many days are in a week?", "There are seven days in a week."),
    ("What color is the sky on a clear day?", "The sky is blue on a clear day."),
    ("Can you say hello?", "Hello! How can I help you today?"),
    ("What do bees make?", "Bees make honey."),
    ("Is water wet?", "Yes, water makes things wet."),
    ("Name a fruit.", "An apple is a fruit."),
    ("Thank you!", "You are welcome."),
    ("Who are you?", "I am a small helpful assistant."),
    ("Tell me a short story.", "Once upon a time a little fox found a bright red ball."),
)
_SYLLABLES = _words("ba be bo ka ki ko la li lo ma mi mo na ne no ra ri ro sa se so ta te to va ve vi za zu")
_EMOJI = ("🙂", "🤔", "✅", "🎉", "🌟", "💡", "🚀", "👍", "😀", "🐍", "🌈", "🔥", "❤️", "📚")


def _past(verb: str) -> str:
    """Rough English past tense; the corpus only needs word shapes, not grammar."""
    if verb.endswith("e"):
        return verb + "d"
    return verb + "ed"


def _ing(verb: str) -> str:
    return (verb[:-1] if verb.endswith("e") and verb != "see" else verb) + "ing"


def _town(rng: random.Random) -> str:
    """A made-up place name; gives the tokenizer many distinct word pieces to merge."""
    return "".join(rng.choice(_SYLLABLES) for _ in range(rng.randint(2, 3))).capitalize()


def _sentence(rng: random.Random) -> str:
    name, noun, other = rng.choice(_NAMES), rng.choice(_NOUNS), rng.choice(_NOUNS)
    verb, adj, adv = rng.choice(_VERBS), rng.choice(_ADJS), rng.choice(_ADVERBS)
    forms = (
        f"The {adj} {noun} {verb}s the {other} {adv}.",
        f"{name} {_past(verb)} a {rng.choice(_COLORS)} {noun} near the {other} of {_town(rng)}.",
        f"Yesterday {name} was {_ing(verb)} {noun}s in {_town(rng)}.",
        f"Why do {noun}s {verb} {other}s? Because they are {adj}.",
        f"Many {adj}er {noun}s were {_ing(verb)} while the {other} {verb}s {adv}.",
    )
    return rng.choice(forms)


def tiny_corpus(n_lines: int = 6000, seed: int = 0) -> list[str]:
    """Deterministic English-ish lines (sentences, ChatML QA, arithmetic) to train the tokenizer on."""
    rng = random.Random(seed)
    lines: list[str] = []
    for i in range(n_lines):
        kind = i % 6
        if kind in (0, 1):
            lines.append(_sentence(rng) + " " + _sentence(rng))
        elif kind == 2:
            question, answer = rng.choice(_QUESTIONS)
            lines.append(f"{IM_START}user\n{question}{EOS_TOKEN}\n{IM_START}assistant\n{answer}{EOS_TOKEN}\n")
        elif kind == 3:
            a, b = rng.randint(0, 9999), rng.randint(0, 99)
            op = rng.choice("+-*")
            value = a + b if op == "+" else a - b if op == "-" else a * b
            lines.append(f"What is {a} {op} {b}? The answer is {value}.")
        elif kind == 4:
            lines.append(
                f"{rng.choice(_NAMES)} has a {rng.choice(_COLORS)} {rng.choice(_NOUNS)} "
                f"and it is very {rng.choice(_ADJS)} {rng.choice(_EMOJI)}"
            )
        else:
            lines.append(
                f"Question: where does {rng.choice(_NAMES)} go? Answer: to {_town(rng)} or {rng.choice(_PLACES)} "
                f"with the {rng.choice(_ADJS)} {rng.choice(_NOUNS)}, {rng.choice(_ADVERBS)}."
            )
    return lines


def tiny_chat_tokenizer(vocab_size: int = 2048, seed: int = 0) -> PreTrainedTokenizerFast:
    """Train a byte-level BPE on `tiny_corpus` and wrap it with the ChatML template and special tokens."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(tiny_corpus(n_lines=max(6000, 3 * vocab_size), seed=seed), trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token=EOS_TOKEN,
        pad_token=PAD_TOKEN,
        bos_token=None,
        unk_token=None,
        extra_special_tokens=[IM_START],
        model_max_length=TINY_PRESETS["tiny"].max_position_embeddings,
        clean_up_tokenization_spaces=False,
    )
    # Added but not special: profiles must see and penalise them, and decode must keep them.
    fast.add_tokens(list(THINK_TOKENS), special_tokens=False)
    fast.chat_template = CHATML_TEMPLATE
    return fast


def _token_id(tokenizer: PreTrainedTokenizerFast, token: str) -> int:
    """Id of one token (convert_tokens_to_ids is typed as maybe-a-list)."""
    token_id = tokenizer.convert_tokens_to_ids(token)
    assert isinstance(token_id, int), token
    return token_id


def build_tiny_model(out_dir: Path | str, preset: str = "tiny", seed: int = 0) -> Path:
    """Write a tokenizer and a random-init Qwen3 model into `out_dir`; seconds, no network."""
    if preset not in TINY_PRESETS:
        raise ModelError(
            f"unknown tiny model preset {preset!r}",
            hint=f"use one of: {', '.join(sorted(TINY_PRESETS))}",
        )
    shape = TINY_PRESETS[preset]
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)

    tokenizer = tiny_chat_tokenizer(vocab_size=shape.vocab_size, seed=seed)
    pad_id = _token_id(tokenizer, PAD_TOKEN)
    eos_id = _token_id(tokenizer, EOS_TOKEN)
    # Like Qwen3: no BOS is prepended by the tokenizer; config's bos id is the end-of-text token.
    bos_id = pad_id

    config = Qwen3Config(
        vocab_size=len(tokenizer),
        hidden_size=shape.hidden_size,
        num_hidden_layers=shape.num_hidden_layers,
        num_attention_heads=shape.num_attention_heads,
        num_key_value_heads=shape.num_key_value_heads,
        head_dim=shape.head_dim,
        intermediate_size=shape.intermediate_size,
        max_position_embeddings=shape.max_position_embeddings,
        tie_word_embeddings=True,
        # Wider than Qwen3's 0.02: with a frozen random base (LoRA) the tied output embeddings must be
        # large enough for adapters to move the logits; at 0.02 LoRA cannot get far from uniform.
        initializer_range=0.2,
        bos_token_id=bos_id,
        eos_token_id=eos_id,
        pad_token_id=pad_id,
    )
    torch.manual_seed(seed)
    model = Qwen3ForCausalLM(config)
    model.generation_config = GenerationConfig(bos_token_id=bos_id, eos_token_id=eos_id, pad_token_id=pad_id)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out
