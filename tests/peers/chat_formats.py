"""Format checks for the unsigned chat channels that tests/peers/channel_receiver.py plays the far end
of: what Slack's incoming webhooks and Microsoft Teams' Workflows webhooks would accept. Each check
takes the parsed JSON body and returns a list of reasons it is wrong (empty when it is right). It
judges with the vendors' own rules, never with rules of its own making: Slack's through the
official Slack SDK's Block Kit models (PyPI `slack-sdk`), Teams' through the official Adaptive Card
1.5 JSON schema (vendored in tests/fixtures/schemas/, checked with PyPI `jsonschema`).
"""

from __future__ import annotations

import json
from pathlib import Path

from jsonschema.validators import validator_for
from referencing import Registry
from slack_sdk.models.blocks import Block

# Slack: https://docs.slack.dev/reference/block-kit/blocks ("up to 50 blocks in each message").
SLACK_MAX_BLOCKS = 50
# Rules the SDK documents in its models' docstrings but does not check: a section field's text is
# at most 2000 characters (SectionBlock), block_id is unique in a message (Block subclasses),
# action_id unique in its block (ButtonElement), header and button text plain_text only.
SLACK_FIELD_MAX = 2000

SCHEMA_PATH = Path(__file__).resolve().parents[1] / "fixtures/schemas/adaptive-card-1.5.json"
ADAPTIVE_CARD = "application/vnd.microsoft.card.adaptive"
MAX_CARD_VERSION = (1, 5)
MESSAGE_MAX = 300  # characters of one error message kept (jsonschema's quote whole instances)


def slack_errors(body: object) -> list[str]:
    """What Slack would refuse in an incoming-webhook payload `{"text": ..., "blocks": [...]}`."""
    if not isinstance(body, dict):
        return ["body is not a JSON object"]
    errors = []
    text = body.get("text")
    if not isinstance(text, str) or not text.strip():
        errors.append("text: missing or empty (Slack's fallback for notifications)")
    blocks = body.get("blocks", [])
    if not isinstance(blocks, list):
        return errors + ["blocks: not a list"]
    if len(blocks) > SLACK_MAX_BLOCKS:
        errors.append(f"blocks: {len(blocks)} items, Slack allows {SLACK_MAX_BLOCKS}")
    block_ids: set[str] = set()
    for i, raw in enumerate(blocks):
        errors += [f"blocks[{i}]: {e}" for e in slack_block_errors(raw)]
        block_id = raw.get("block_id") if isinstance(raw, dict) else None
        if block_id is not None and block_id in block_ids:
            errors.append(f"blocks[{i}]: block_id {block_id!r} repeats (must be unique in a message)")
        if block_id is not None:
            block_ids.add(block_id)
    return errors


def slack_block_errors(raw: object) -> list[str]:
    """One block through the SDK's model: parsed, validated (limits), and compared with its own
    rendering, so that a field the model dropped or renamed shows."""
    if not isinstance(raw, dict):
        return ["not a JSON object"]
    try:
        [block] = Block.parse_all([raw])
        if block is None:
            return [f"unknown block type {raw.get('type')!r}"]
        block.validate_json()
        rendered = block.to_dict()  # validates the nested elements too
    except Exception as e:  # SlackObjectFormationError; TypeError for a missing or wrong argument
        return [f"{type(e).__name__}: {e}"]
    errors = [f"{path}: {why}" for path, why in differences(raw, rendered, "")]
    for j, field in enumerate(raw.get("fields") or []):
        text = field.get("text") if isinstance(field, dict) else None
        if isinstance(text, str) and len(text) > SLACK_FIELD_MAX:
            errors.append(f"fields[{j}].text: {len(text)} characters, Slack allows {SLACK_FIELD_MAX}")
    if raw.get("type") == "header":
        errors += plain_text_errors(raw.get("text"), "text")
    for j, element in enumerate(raw.get("elements") or []):
        if isinstance(element, dict) and element.get("type") == "button":
            errors += plain_text_errors(element.get("text"), f"elements[{j}].text")
    action_ids = [e.get("action_id") for e in raw.get("elements") or [] if isinstance(e, dict)]
    repeated = {a for a in action_ids if a is not None and action_ids.count(a) > 1}
    errors += [f"action_id {a!r} repeats (must be unique in its block)" for a in sorted(repeated)]
    return errors


def plain_text_errors(text: object, path: str) -> list[str]:
    """A header's and a button's text "can only be of type: plain_text" (the SDK's docstrings of
    HeaderBlock and ButtonElement), which the SDK's models do not check."""
    if isinstance(text, dict) and text.get("type") != "plain_text":
        return [f"{path}.type: {json.dumps(text.get('type'))}, Slack allows only \"plain_text\" here"]
    return []


def differences(sent: object, model: object, path: str) -> list[tuple[str, str]]:
    """Where what was sent differs from the SDK model's rendering of it."""
    if isinstance(sent, dict) and isinstance(model, dict):
        out = []
        for key in sorted(set(sent) | set(model), key=str):
            here = f"{path}.{key}" if path else str(key)
            if key not in model:
                out.append((here, "not in Slack's model (dropped)"))
            elif key not in sent:
                out.append((here, f"added by Slack's model as {json.dumps(model[key])}"))
            else:
                out += differences(sent[key], model[key], here)
        return out
    if isinstance(sent, list) and isinstance(model, list) and len(sent) == len(model):
        return [d for i, (s, m) in enumerate(zip(sent, model)) for d in differences(s, m, f"{path}[{i}]")]
    if sent != model:
        return [(path, f"sent {json.dumps(sent)}, Slack's model has {json.dumps(model)}")]
    return []


def teams_errors(body: object) -> list[str]:
    """What a Teams Workflows webhook would refuse in `{"type": "message", "attachments":
    [{"contentType": "application/vnd.microsoft.card.adaptive", "content": CARD}]}`."""
    if not isinstance(body, dict):
        return ["body is not a JSON object"]
    errors = [f"{k}: unexpected" for k in sorted(set(body) - {"type", "attachments"})]
    if body.get("type") != "message":
        errors.append(f"type: {json.dumps(body.get('type'))}, expected \"message\"")
    attachments = body.get("attachments")
    if not isinstance(attachments, list) or len(attachments) != 1 or not isinstance(attachments[0], dict):
        return errors + ["attachments: expected a list of exactly one object"]
    attachment = attachments[0]
    # `contentUrl: null` is in Microsoft's own examples of this payload.
    allowed = {"contentType", "content"} | ({"contentUrl"} if attachment.get("contentUrl") is None else set())
    extra = set(attachment) - allowed
    errors += [f"attachments[0].{k}: unexpected" for k in sorted(extra)]
    if attachment.get("contentType") != ADAPTIVE_CARD:
        errors.append(f"attachments[0].contentType: expected {ADAPTIVE_CARD}")
    return errors + [f"attachments[0].content{e}" for e in card_errors(attachment.get("content"))]


def card_errors(card: object) -> list[str]:
    """An Adaptive Card against the official 1.5 schema, plus what the schema leaves optional but
    a top-level card needs: `type` "AdaptiveCard" and a `version` of at most 1.5."""
    if not isinstance(card, dict):
        return [": not a JSON object"]
    errors = []
    if card.get("type") != "AdaptiveCard":
        errors.append(f".type: {json.dumps(card.get('type'))}, expected \"AdaptiveCard\"")
    version = card.get("version")
    if not isinstance(version, str) or card_version(version) is None:
        errors.append(f".version: {json.dumps(version)}, expected \"MAJOR.MINOR\" like \"1.5\"")
    elif card_version(version) > MAX_CARD_VERSION:
        errors.append(f".version: {version} is newer than 1.5")
    found = leaves(card_validator().iter_errors(card))
    for e in sorted(found, key=lambda e: list(map(str, e.absolute_path))):
        where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in e.absolute_path)
        errors.append(f"{where}: {e.message[:MESSAGE_MAX]}")
    return errors


def leaves(errors) -> list:
    """jsonschema's errors with each `anyOf` opened up to the branch the instance meant: the only
    branch, or the one whose `type` (JSON type, or the card's `"type": "TextBlock"`...) it matches.
    When it matches none, the `anyOf` error itself, said plainly for an element or action."""
    out = []
    for e in errors:
        if e.validator not in ("anyOf", "oneOf") or not e.context:
            out.append(e)
            continue
        branches: dict[int, list] = {}
        for c in e.context:
            branches.setdefault(c.relative_schema_path[0], []).append(c)
        meant = [b for b in branches.values() if not any(wrong_type(c) for c in b)]
        if len(branches) == 1 or len(meant) == 1:
            out += leaves((list(branches.values()) if len(branches) == 1 else meant)[0])
        elif not meant and isinstance(e.instance, dict):
            kind = e.instance.get("type")
            e.message = "no \"type\"" if kind is None else f"unknown type {json.dumps(kind)}"
            out.append(e)
        else:
            out.append(e)
    return out


def wrong_type(e) -> bool:
    """The branch this error is in is for another kind of thing."""
    if e.validator == "type" and not e.relative_path:
        return True
    if e.validator == "enum" and list(e.relative_path) == ["type"]:
        return True
    return e.validator == "required" and not e.relative_path and "'type'" in e.message


def card_version(version: str) -> tuple[int, int] | None:
    """"1.5" as (1, 5); None unless it is two numbers, as the schema's examples are."""
    parts = version.split(".")
    if len(parts) != 2 or not all(p.isdigit() for p in parts):
        return None
    return int(parts[0]), int(parts[1])


_validator = None


def card_validator():
    """The schema's own draft (it declares draft-06), with an empty registry: every `$ref` in it is
    local (`#/definitions/...`), and nothing is ever fetched."""
    global _validator
    if _validator is None:
        schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
        cls = validator_for(schema)
        cls.check_schema(schema)
        _validator = cls(schema, registry=Registry(), format_checker=cls.FORMAT_CHECKER)
    return _validator
