"""``build(name, modality_dims, out_dim, **options)``: every fusion strategy by name."""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Mapping

from wsfusion.fusion.base import FusionModule

_REGISTRY: dict[str, type[FusionModule]] = {}


def register(name: str) -> Callable[[type[FusionModule]], type[FusionModule]]:
    """Class decorator adding a fusion module to :func:`build` under ``name``."""

    def add(cls: type[FusionModule]) -> type[FusionModule]:
        if name in _REGISTRY and _REGISTRY[name] is not cls:
            raise ValueError(f"fusion name {name!r} is already registered to {_REGISTRY[name].__name__}")
        _REGISTRY[name] = cls
        return cls

    return add


def available() -> tuple[str, ...]:
    """Names accepted by :func:`build`, in registration order."""
    return tuple(_REGISTRY)


def fusion_class(name: str) -> type[FusionModule]:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown fusion {name!r}; available: {', '.join(_REGISTRY)}") from None


def options(name: str) -> tuple[str, ...]:
    """The keyword options that :func:`build` accepts for ``name``."""
    params = inspect.signature(fusion_class(name)).parameters
    return tuple(p for p in params if p not in ("modality_dims", "out_dim"))


def describe(name: str) -> str:
    """The first line of the fusion's docstring, as plain text (see :func:`plain_text`)."""
    doc = inspect.getdoc(fusion_class(name)) or ""
    return plain_text(doc.splitlines()[0]) if doc else ""


_ROLE = re.compile(r":[\w:.-]+:`(?P<body>[^`]+)`")
_LINK = re.compile(r"`(?P<body>[^`<]+?)\s*(?:<[^>]*>)?`__?")
_LITERAL = re.compile(r"``(?P<body>[^`]+)``")


def _role_text(match: re.Match[str]) -> str:
    body = match["body"]
    explicit = re.fullmatch(r"(?P<text>.+?)\s*<[^>]*>", body)
    if explicit:  # :class:`text <target>`
        return explicit["text"]
    if body.startswith("~"):  # :class:`~a.b.C` shows as C
        return body[1:].rsplit(".", 1)[-1]
    return body


def plain_text(text: str) -> str:
    """reStructuredText inline markup reduced to its text: roles (``:class:`~wsfusion.nn.WSLinear```
    -> ``WSLinear``), links (```Zadeh et al. <https://...>`_`` -> ``Zadeh et al.``), inline
    literals and strong/emphasis markers."""
    text = _ROLE.sub(_role_text, text)
    text = _LITERAL.sub(lambda m: m["body"], text)
    text = _LINK.sub(lambda m: m["body"], text)
    return re.sub(r"(?<!\w)\*\*?(?=\S)(.+?)(?<=\S)\*\*?(?!\w)", r"\1", text)


def build(name: str, modality_dims: Mapping[str, int], out_dim: int, **kwargs: object) -> FusionModule:
    """Build the fusion module registered as ``name``.

    Args:
        name (str): One of :func:`available`.
        modality_dims (Mapping[str, int]): Feature size of each modality.
        out_dim (int): Output size.
        **kwargs: Options of that module (see :func:`options`).

    Example:
        >>> fusion = build("low-rank", {"visual": 256, "audio": 256}, out_dim=10, rank=8)
    """
    cls = fusion_class(name)
    accepted = options(name)
    unknown = [k for k in kwargs if k not in accepted]
    if unknown:
        raise TypeError(f"fusion {name!r} has no option {unknown[0]!r}; options: {', '.join(accepted)}")
    params = inspect.signature(cls).parameters
    required = [p for p in accepted if params[p].default is inspect.Parameter.empty
                and params[p].kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)]
    missing = [p for p in required if p not in kwargs]
    if missing:
        raise TypeError(f"fusion {name!r} needs the option {missing[0]!r}: {_explain(missing[0], modality_dims)}")
    _check_token_counts(name, kwargs.get("tokens"), modality_dims)
    _check_degree(name, params, kwargs, modality_dims)
    return cls(modality_dims, out_dim, **kwargs)


def _token_example(modality_dims: Mapping[str, int]) -> str:
    names = list(modality_dims) if isinstance(modality_dims, Mapping) and modality_dims else ["visual", "audio"]
    return "tokens={" + ", ".join(f"{m!r}: 16" for m in names) + "}"


def _explain(option: str, modality_dims: Mapping[str, int]) -> str:
    if option == "tokens":
        return (f"the number of tokens of each modality, e.g. {_token_example(modality_dims)}: each encoder's "
                "encoder.num_tokens, i.e. tokens={m: e.num_tokens for m, e in encoders.items()} for the encoders of a "
                "MultiModalNetwork (wsfusion.models.build_model fills it in this way)")
    return "it has no default"


def _check_token_counts(name: str, tokens: object, modality_dims: Mapping[str, int]) -> None:
    """``tokens`` is ``None``, a count for every modality, or a mapping modality -> count."""
    if tokens is None:
        return
    if tokens is True:
        raise TypeError(
            f"fusion {name!r}: tokens=True asks the trainer to fill in each modality's token count; build() needs "
            f"the counts themselves, e.g. {_token_example(modality_dims)} (each encoder's encoder.num_tokens)"
        )
    if isinstance(tokens, Mapping):
        if isinstance(modality_dims, Mapping) and set(tokens) != set(modality_dims):
            raise ValueError(
                f"fusion {name!r}: tokens gives token counts for {list(tokens)} but the modalities are "
                f"{list(modality_dims)}; give one count per modality, e.g. {_token_example(modality_dims)}"
            )
        for m, count in tokens.items():
            if isinstance(count, bool) or not isinstance(count, int) or count < 1:
                raise ValueError(f"fusion {name!r}: tokens[{m!r}] must be a positive integer (that modality's "
                                 f"token count), got {count!r}")
    elif isinstance(tokens, bool) or not isinstance(tokens, int) or tokens < 1:
        raise TypeError(f"fusion {name!r}: tokens must be a mapping modality -> token count such as "
                        f"{_token_example(modality_dims)[7:]}, got {tokens!r}")


def _node_count(params: Mapping[str, inspect.Parameter], kwargs: Mapping[str, object],
                modality_dims: Mapping[str, int]) -> tuple[int, str, str] | None:
    """Nodes of the WS graph a graph fusion will build, where the count comes from and the option that
    sets it (``None``: unknown)."""
    for option in ("tokens", "nodes_per_modality", "segments"):
        if option not in params:
            continue
        value = kwargs.get(option, params[option].default)
        if value is None:
            continue  # ws-gnn without tokens: segment nodes
        given = "" if option in kwargs else ", its default"
        if isinstance(value, Mapping):
            counts = list(value.values())
            if all(isinstance(c, int) and not isinstance(c, bool) and c > 0 for c in counts):
                return sum(counts), f"{option}={dict(value)}", option
        elif isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value * len(modality_dims), f"{len(modality_dims)} modalities x {option}={value}{given}", option
        return None
    return None


def _check_degree(name: str, params: Mapping[str, inspect.Parameter], kwargs: Mapping[str, object],
                  modality_dims: Mapping[str, int]) -> None:
    """A WS degree ``k`` that does not fit the graph's node count, said in terms of the fusion's options."""
    if "k" not in params or kwargs.get("graph") is not None or not isinstance(modality_dims, Mapping) or not modality_dims:
        return
    k = kwargs.get("k", params["k"].default)
    nodes = _node_count(params, kwargs, modality_dims)
    if nodes is None or isinstance(k, bool) or not isinstance(k, int):
        return
    n, source, option = nodes
    if k >= n:
        default = "" if "k" in kwargs else " (the fusion's default)"
        largest = n - 1 if (n - 1) % 2 == 0 else n - 2
        more = f"more nodes (a larger {option})"
        fix = (f"pass a smaller even k, e.g. k={largest} (build(..., k={largest}); --option k={largest} on the "
               f"command line), or {more}" if largest >= 2 else f"give the graph {more}")
        raise ValueError(f"fusion {name!r}: k={k}{default} needs a WS graph of more than k nodes, but it has "
                         f"N={n} ({source}); {fix}")
