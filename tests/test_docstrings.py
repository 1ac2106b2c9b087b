r"""Every docstring of the package is clean text: no control characters.

A docstring with a backslash escape that is not a raw string (``"\alpha"``) silently holds a control
character (BEL, ``\x07``), which renders as garbage in ``help()`` and the docs.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import unicodedata

import wsfusion

ALLOWED = {"\n", "\t"}


def _docstrings():
    """``(qualified name, docstring)`` of every module, class, function and method defined in wsfusion."""
    modules = [wsfusion] + [importlib.import_module(info.name)
                            for info in pkgutil.walk_packages(wsfusion.__path__, "wsfusion.")]
    for module in modules:
        yield module.__name__, module.__doc__
        for name, obj in vars(module).items():
            if getattr(obj, "__module__", None) != module.__name__:
                continue  # imported from elsewhere: checked where it is defined
            yield f"{module.__name__}.{name}", getattr(obj, "__doc__", None)
            if inspect.isclass(obj):
                for attr, member in vars(obj).items():
                    target = member.fget if isinstance(member, property) else getattr(member, "__func__", member)
                    if callable(target) or isinstance(member, property):
                        yield f"{module.__name__}.{name}.{attr}", getattr(target, "__doc__", None)


def test_no_docstring_holds_a_control_character():
    bad = []
    for name, doc in _docstrings():
        if not isinstance(doc, str):
            continue
        chars = sorted({c for c in doc if unicodedata.category(c) == "Cc" and c not in ALLOWED})
        if chars:
            bad.append(f"{name}: {', '.join(repr(c) for c in chars)}")
    assert not bad, "docstrings with control characters (make them raw strings, r\"\"\"...\"\"\"):\n" + "\n".join(bad)


def test_the_walk_reaches_methods():
    names = {name for name, _ in _docstrings()}
    assert "wsfusion.nn.cross_modal_attention_conv.CrossModalAttentionConv.edge_update" in names
    assert "wsfusion.topology.learnable.LearnableWSGraph.beta" in names  # a property
