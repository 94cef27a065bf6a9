"""The `default` profile: data trained as written, no system prompt unless the config sets one."""

from __future__ import annotations

from trainerd.profiles.base import Profile


class DefaultProfile(Profile):
    """No changes to the text; the system prompt comes only from `profile.system_prompt`."""

    name = "default"
