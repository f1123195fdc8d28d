"""One validation pass over a config (types, ranges, choices) before anything is written.

A package lists its fields once as rules and calls `check_fields` first thing in its entry point
(before `open_run` writes `config.json`, before any data is read), so a bad number fails at once
with every offending field named, and the corrected run is not refused as a config change:

    RULES = {
        "optimizer.learning_rate": tf_runtime.number(above=0),
        "epochs": tf_runtime.number(at_least=0),
        "num_steps": tf_runtime.integer(at_least=1, optional=True),
        "model": tf_runtime.one_of(models.BUILDERS),
    }
    tf_runtime.check_fields(config, RULES)

`open_run` itself checks the run settings (`RUN_SETTING_RULES`) of every config it records.
"""

import math
import numbers

from tf_runtime import config as config_lib


class Rule:
    """A predicate on one value and the phrase shown when it fails ("an int >= 1")."""

    def __init__(self, expected, accept, *, optional=False):
        self.expected = expected
        self._accept = accept
        self.optional = optional

    def ok(self, value):
        if value is None:
            return self.optional
        try:
            return bool(self._accept(value))
        except (TypeError, ValueError):
            return False


def _is_int(value):
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_number(value):
    return (
        isinstance(value, numbers.Real)
        and not isinstance(value, bool)
        and math.isfinite(float(value))
    )


def _bounds(at_least, above, at_most, below):
    parts = []
    if at_least is not None:
        parts.append(f">= {at_least}")
    if above is not None:
        parts.append(f"> {above}")
    if at_most is not None:
        parts.append(f"<= {at_most}")
    if below is not None:
        parts.append(f"< {below}")
    return " and ".join(parts)


def _in_bounds(value, at_least, above, at_most, below):
    return (
        (at_least is None or value >= at_least)
        and (above is None or value > above)
        and (at_most is None or value <= at_most)
        and (below is None or value < below)
    )


def integer(*, at_least=None, above=None, at_most=None, below=None, optional=False):
    """An int (not a bool) within the bounds; `optional` also accepts None."""
    bounds = _bounds(at_least, above, at_most, below)
    return Rule(
        f"an int{' ' + bounds if bounds else ''}{' or None' if optional else ''}",
        lambda v: _is_int(v) and _in_bounds(v, at_least, above, at_most, below),
        optional=optional,
    )


def number(*, at_least=None, above=None, at_most=None, below=None, optional=False):
    """A finite int or float (not a bool) within the bounds; `optional` also accepts None."""
    bounds = _bounds(at_least, above, at_most, below)
    return Rule(
        f"a finite number{' ' + bounds if bounds else ''}{' or None' if optional else ''}",
        lambda v: _is_number(v) and _in_bounds(v, at_least, above, at_most, below),
        optional=optional,
    )


def boolean():
    """True or False."""
    return Rule("True or False", lambda v: isinstance(v, bool))


def one_of(choices, *, optional=False):
    """One of `choices` (any iterable, e.g. a registry dict's keys)."""
    choices = tuple(choices)
    return Rule(
        f"one of {choices}{' or None' if optional else ''}",
        lambda v: v in choices,
        optional=optional,
    )


def string(*, optional=False):
    """A non-empty string."""
    return Rule(
        f"a non-empty string{' or None' if optional else ''}",
        lambda v: isinstance(v, str) and bool(v),
        optional=optional,
    )


def sequence_of(item, *, min_length=0):
    """A list or tuple of at least `min_length` items, each accepted by the rule `item`."""
    length = f" of at least {min_length}" if min_length else ""
    return Rule(
        f"a list/tuple{length} of {item.expected.replace('an ', '').replace('a ', '')}s",
        lambda v: (
            isinstance(v, (list, tuple)) and len(v) >= min_length and all(item.ok(x) for x in v)
        ),
    )


_MISSING = object()


def _get(config, dotted):
    node = config
    for part in dotted.split("."):
        try:
            node = node[part]
        except (KeyError, TypeError, AttributeError, IndexError):
            return _MISSING
    return node


def field_errors(config, rules, *, prefix="config"):
    """`["config.<field>=<value> (expected ...)", ...]` for every field that breaks its rule.

    A field absent from the config is an error unless its rule is optional.
    """
    errors = []
    for dotted, rule in rules.items():
        value = _get(config, dotted)
        if value is _MISSING:
            if not rule.optional:
                errors.append(f"{prefix}.{dotted} is missing (expected {rule.expected})")
            continue
        if not rule.ok(value):
            errors.append(f"{prefix}.{dotted}={value!r} (expected {rule.expected})")
    return errors


def check_fields(config, rules, *, prefix="config", source=None):
    """Raises one ValueError naming every field of `config` that breaks its rule.

    Args:
      config: a `ConfigDict` or dict.
      rules: `{dotted field: Rule}`.
      prefix: how fields are spelt in the message (the flag prefix, e.g. "config.train").
      source: optional origin named in the message (a file or a binary).

    Raises:
      ValueError: "Invalid config (...): config.a=-1 (expected ...); config.b=..." listing all.
    """
    if not hasattr(config, "keys"):
        raise ValueError(
            f"Invalid config{f' ({source})' if source else ''}: expected a config object, "
            f"received a {type(config).__name__}."
        )
    errors = field_errors(config, rules, prefix=prefix)
    if errors:
        where = f" ({source})" if source else ""
        raise ValueError(
            f"Invalid config{where}, nothing was written: {'; '.join(errors)}. Fix the config "
            "file or pass --config.<field>=<value>."
        )


def _profile_steps(value):
    value = tuple(value)
    return value == () or (
        len(value) == 2 and all(_is_int(v) for v in value) and 1 <= value[0] <= value[1]
    )


RUN_SETTING_RULES = {
    "checkpoint_every": integer(at_least=1),
    "summary_every": integer(at_least=1),
    "log_every": integer(at_least=0),
    "profile_steps": Rule("() or (first, last) with 1 <= first <= last", _profile_steps),
}


def check_run_settings(config, *, prefix="config"):
    """Checks the run settings (`config.runtime.*` or their top-level fallbacks).

    Raises:
      ValueError: naming every invalid setting.
    """
    if not hasattr(config, "keys"):
        return
    values = {}
    for name in RUN_SETTING_RULES:
        value = config_lib.run_setting(config, name)
        values[name] = () if value is None and name == "profile_steps" else value
    if "runtime" in config.keys() and config["runtime"] is not None:
        prefix = f"{prefix}.runtime"
    errors = field_errors(values, RUN_SETTING_RULES, prefix=prefix)
    if errors:
        raise ValueError(
            f"Invalid run settings, nothing was written: {'; '.join(errors)}. Fix the config "
            "file or pass --config.<field>=<value>."
        )
