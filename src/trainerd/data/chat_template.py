"""Clean ChatML chat template shared by the tiny model and the profiles.

Assistant content and its `<|im_end|>` sit inside `{% generation %}` so that
`apply_chat_template(..., return_assistant_tokens_mask=True)` (and TRL's assistant-only loss)
can find them; that is the independent reference our own label masks are tested against.
No default system prompt and no `<think>` injection.
"""

CHATML_TEMPLATE = (
    "{%- for message in messages -%}"
    "{{- '<|im_start|>' + message['role'] + '\\n' -}}"
    "{%- if message['role'] == 'assistant' -%}"
    "{% generation %}{{- message['content'] + '<|im_end|>' -}}{% endgeneration %}{{- '\\n' -}}"
    "{%- else -%}"
    "{{- message['content'] + '<|im_end|>' + '\\n' -}}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- '<|im_start|>assistant\\n' -}}{%- endif -%}"
)

END_OF_TURN = "<|im_end|>"

# Markers that show a template injects or handles thinking blocks (Qwen3 style).
THINKING_TEMPLATE_MARKERS = ("<think>", "</think>", "reasoning_content", "enable_thinking")


def injects_thinking(template: str | None) -> bool:
    """True when a chat template handles `<think>` blocks and so would fight a profile's own format."""
    return template is not None and any(marker in template for marker in THINKING_TEMPLATE_MARKERS)
