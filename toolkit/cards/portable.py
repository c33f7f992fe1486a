"""Training records without the folders of the machine they were made on.

A shipped checkpoint and its card repeat the command that trained it; a user must be able to run it.
Absolute paths become placeholders: the training photos ``PHOTOS/``, a run folder ``runs/NAME``,
anything inside the repository its relative path, anything else its file name.
"""

from __future__ import annotations

import shlex
from pathlib import Path

from toolkit.provenance import REPO_ROOT

DATA_PLACEHOLDER = "PHOTOS/"
# Flags whose value is a folder the run made or read: rewritten by role, not by location.
ROLE_FLAGS = {"--data": lambda p: DATA_PLACEHOLDER, "--out": lambda p: f"runs/{Path(p).name}"}
PATH_KEYS = ("init", "init_path")


def portable_path(text: str) -> str:
    path = Path(text)
    if not path.is_absolute():
        return text
    try:
        return str(path.resolve().relative_to(REPO_ROOT))
    except ValueError:
        return path.name


def portable_command(command: str) -> str:
    """Rewrite the absolute paths of a ``pcarn ...`` command line."""
    try:
        words = shlex.split(command)
    except ValueError:
        return command
    out = []
    for i, word in enumerate(words):
        flag = words[i - 1] if i else ""
        if flag in ROLE_FLAGS and Path(word).is_absolute():
            out.append(ROLE_FLAGS[flag](word))
        else:
            out.append(portable_path(word) if word.startswith("/") else word)
    return shlex.join(out)


def portable_training(training: dict | None) -> dict | None:
    """A copy of a checkpoint's training record (and its lineage) with portable paths."""
    if not training:
        return training
    record = dict(training)
    if "command" in record:
        record["command"] = portable_command(record["command"])
    if isinstance(record.get("data"), str) and Path(record["data"]).is_absolute():
        record["data"] = DATA_PLACEHOLDER
    for key in PATH_KEYS:
        if isinstance(record.get(key), str):
            record[key] = portable_path(record[key])
    options = record.get("options")
    if isinstance(options, dict):
        options = dict(options)
        if isinstance(options.get("data"), str) and Path(options["data"]).is_absolute():
            options["data"] = DATA_PLACEHOLDER
        if isinstance(options.get("out"), str) and Path(options["out"]).is_absolute():
            options["out"] = f"runs/{Path(options['out']).name}"
        if isinstance(options.get("command"), str):
            options["command"] = portable_command(options["command"])
        for key in ("init", "val", "vgg_weights"):
            if isinstance(options.get(key), str):
                options[key] = portable_path(options[key])
        record["options"] = options
    if isinstance(record.get("init_training"), dict):
        record["init_training"] = portable_training(record["init_training"])
    return record
