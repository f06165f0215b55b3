"""Safe, strict YAML reading with line numbers, and a deterministic YAML writer.

Reading never runs code: a :class:`yaml.SafeLoader` subclass builds only plain data (mappings, lists, strings,
numbers, booleans, null), and every mapping key and list item of the document is recorded with its line, so
a :class:`~sparsesearch.errors.ConfigError` raised later for the key path ``groups[1].pattern`` can say
``recipe.yaml:14``. Every failure to read a file (missing, unreadable, not UTF-8, empty, tabs in the
indentation, not YAML, duplicate keys, a top level that is not a mapping) is a ``ConfigError`` naming the
file and, where YAML gives one, the line.

The scalars follow YAML 1.2 rather than PyYAML's YAML 1.1 defaults, because the 1.1 rules corrupt pruning
configs silently: ``pattern: 2:4`` would be the sexagesimal integer 124, ``lr: 1e-4`` a string, ``on``/``no``
booleans and ``2024-01-01`` a date. Here ``2:4``, ``on`` and dates stay strings, ``1e-4`` is a float, and
only ``true``/``false`` are booleans. The writer quotes every string that either rule set would read as
something else, so what it writes means the same to PyYAML's ``safe_load`` (and to INC, which reads YAML
with it) as to this reader.

Two application tags are read, as plain mappings and nothing more: INC's ``!PrunerV2`` (every INC 2.x
``weight_compression_v2`` file tags its pruners with it) and ``!Pruner`` (INC 1.x and LPOT 1.4-1.6
``weight_compression`` files). INC registered them as PyYAML constructors that build its own classes; here no
class is built and no code runs. Every other tag (``!!python/object``, ``!Foo``) stays an error.

The writer is deterministic: block style, keys in the order given (schema order for config objects), floats
as the shortest text that reads back to the same float, so write -> read -> write gives identical bytes.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from sparsesearch.errors import ConfigError
from sparsesearch.records.schema import join

__all__ = ["INC_TAGS", "YamlDocument", "read_yaml", "parse_yaml", "dump_yaml", "write_text_safely", "locate"]

_INT_TAG = "tag:yaml.org,2002:int"
_FLOAT_TAG = "tag:yaml.org,2002:float"
_BOOL_TAG = "tag:yaml.org,2002:bool"
_STR_TAG = "tag:yaml.org,2002:str"
_REPLACED = {_INT_TAG, _FLOAT_TAG, _BOOL_TAG, "tag:yaml.org,2002:timestamp"}

_BOOL_RE = re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$")
_INT_RE = re.compile(r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$")
_FLOAT_RE = re.compile(
    r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
)


class _Loader(yaml.SafeLoader):
    """SafeLoader with YAML 1.2 core-schema scalars (see the module docstring)."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag not in _REPLACED]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(_BOOL_TAG, _BOOL_RE, list("tTfF"))
_Loader.add_implicit_resolver(_INT_TAG, _INT_RE, list("-+0123456789"))
_Loader.add_implicit_resolver(_FLOAT_TAG, _FLOAT_RE, list("-+0123456789."))


def _construct_int(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> int:
    text = loader.construct_scalar(node)
    if text.startswith("0o"):
        return int(text[2:], 8)
    return int(text, 0) if text.startswith("0x") else int(text, 10)


def _construct_float(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> float:
    text = str(loader.construct_scalar(node)).lower()
    if text.endswith("inf"):
        return -math.inf if text.startswith("-") else math.inf
    if text.endswith("nan"):
        return math.nan
    return float(text)


#: application tags read as plain mappings (see the module docstring)
INC_TAGS = ("!Pruner", "!PrunerV2")


def _construct_tagged_mapping(loader: yaml.SafeLoader, node: yaml.Node) -> dict[Any, Any]:
    if not isinstance(node, yaml.MappingNode):
        raise yaml.constructor.ConstructorError(
            None, None, f"the tag {node.tag} must be on a mapping (key: value lines)", node.start_mark)
    return loader.construct_mapping(node, deep=True)


_Loader.add_constructor(_INT_TAG, _construct_int)
_Loader.add_constructor(_FLOAT_TAG, _construct_float)
_Loader.add_constructor(_BOOL_TAG, lambda loader, node: loader.construct_scalar(node).lower() == "true")  # type: ignore[arg-type]
for _tag in INC_TAGS:
    _Loader.add_constructor(_tag, _construct_tagged_mapping)


@dataclass
class YamlDocument:
    """The plain data of a YAML file, with the line (1-based) of each key path it contains."""

    data: Any
    file: str | None = None
    lines: dict[str, int] = field(default_factory=dict)

    def line_of(self, key: str | None) -> int | None:
        """The line of ``key`` or, when the file lacks it (a missing key), of its nearest parent."""
        path = key or ""
        while path:
            if path in self.lines:
                return self.lines[path]
            path = _parent(path)
        return None

    def locate(self, err: ConfigError, prefix: str | None = None) -> ConfigError:
        """``err`` with this file and the line of its key path added."""
        key = err.key
        if prefix:
            key = prefix if not key else (f"{prefix}{key}" if key.startswith("[") else f"{prefix}.{key}")
        return err.located(file=self.file, line=self.line_of(key))


def _parent(path: str) -> str:
    if path.endswith("]"):
        return path[: path.rindex("[")]
    cut = max(path.rfind("."), path.rfind("["))
    return path[:cut] if cut > 0 else ""


def locate(err: ConfigError, doc: YamlDocument | None) -> ConfigError:
    """``err`` located in ``doc`` when there is one."""
    return doc.locate(err) if doc is not None else err


def _record_lines(node: yaml.Node, path: str, lines: dict[str, int], file: str | None,
                  seen_nodes: set[int] | None = None) -> None:
    """Walk the composed node tree: the line of every key path, and an error for duplicate keys.

    An aliased node is walked once (``seen_nodes``), so an alias bomb costs nothing here.
    """
    seen_nodes = set() if seen_nodes is None else seen_nodes
    if id(node) in seen_nodes:
        return
    seen_nodes.add(id(node))
    if isinstance(node, yaml.MappingNode):
        seen: dict[Any, int] = {}
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else None
            line = key_node.start_mark.line + 1
            if key is None:
                continue  # a complex key: construct_document reports it
            if key in seen:
                raise ConfigError(f"duplicate key (first given on line {seen[key]})", key=join(path, key),
                                  allowed="each key once per mapping", file=file, line=line)
            seen[key] = line
            sub = join(path, key)
            lines.setdefault(sub, line)
            _record_lines(value_node, sub, lines, file, seen_nodes)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            sub = join(path, i)
            lines.setdefault(sub, item.start_mark.line + 1)
            _record_lines(item, sub, lines, file, seen_nodes)


def parse_yaml(text: str, file: str | None = None, *, require_mapping: bool = True) -> YamlDocument:
    """Parse YAML ``text`` safely into a :class:`YamlDocument`; ConfigError for anything malformed."""
    for number, line in enumerate(text.splitlines(), start=1):
        indent = line[: len(line) - len(line.lstrip(" \t"))]
        if "\t" in indent and line.strip() and not line.lstrip().startswith("#"):
            raise ConfigError("a tab character in the indentation; YAML indents with spaces only",
                              value=line.strip()[:40], allowed="indentation with spaces", file=file, line=number)
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            raise ConfigError("the file is empty (no YAML document in it)",
                              allowed="a YAML mapping of keys to values", file=file)
        lines: dict[str, int] = {}
        _record_lines(node, "", lines, file)
        data = loader.construct_document(node)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or "not valid YAML"
        if exc.context:
            problem = f"{exc.context}, {problem}"
        raise ConfigError(f"not valid YAML: {problem}", allowed="YAML text (safe subset: no tags but INC's !Pruner and !PrunerV2, no code)",
                          file=file, line=mark.line + 1 if mark else None) from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"not valid YAML: {exc}", allowed="YAML text", file=file) from None
    except RecursionError:
        raise ConfigError("not valid YAML: nested too deeply", allowed="YAML text", file=file) from None
    finally:
        loader.dispose()
    if require_mapping and not isinstance(data, Mapping):
        kind = "a list" if isinstance(data, list) else f"a single {type(data).__name__} value"
        raise ConfigError(f"expected a mapping of keys to values at the top level, but the file holds {kind}",
                          value=data, allowed="a YAML mapping (key: value lines)", file=file,
                          line=node.start_mark.line + 1)
    return YamlDocument(data=data, file=file, lines=lines)


def read_yaml(path: str | os.PathLike[str], *, require_mapping: bool = True) -> YamlDocument:
    """Read and parse a YAML file safely; every failure is a ConfigError naming the file."""
    name = str(path)
    p = Path(path)
    try:
        raw = p.read_bytes()
    except FileNotFoundError:
        raise ConfigError("file not found", allowed="the path of an existing YAML file", file=name) from None
    except IsADirectoryError:
        raise ConfigError("is a directory, not a file", allowed="the path of a YAML file", file=name) from None
    except PermissionError:
        raise ConfigError("permission denied: the file cannot be read", file=name) from None
    except OSError as exc:
        raise ConfigError(f"cannot be read: {exc.strerror or exc}", file=name) from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ConfigError("not a UTF-8 text file (binary data?)", allowed="a UTF-8 YAML text file", file=name,
                          line=line) from None
    if "\x00" in text:
        raise ConfigError("not a text file (it contains NUL bytes)", allowed="a UTF-8 YAML text file", file=name,
                          line=text[: text.index("\x00")].count("\n") + 1)
    return parse_yaml(text, name, require_mapping=require_mapping)


# --------------------------------------------------------------------------------------------- writing


def _ambiguous(text: str) -> bool:
    """True when a plain scalar ``text`` would not read back as this string (here or in PyYAML)."""
    if text == "" or text != text.strip():
        return True
    for resolver in (_Loader, yaml.SafeLoader):
        candidates = resolver.yaml_implicit_resolvers.get(text[0], [])
        if any(rx.match(text) and tag != _STR_TAG for tag, rx in candidates):
            return True
    return False


class _Dumper(yaml.SafeDumper):
    """Block style, no aliases, shortest round-trip floats, strings quoted where any reader could misread."""

    def ignore_aliases(self, data: Any) -> bool:
        return True

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        super().increase_indent(flow, False)  # indent list items under their key


def _represent_float(dumper: yaml.SafeDumper, value: float) -> yaml.ScalarNode:
    if math.isnan(value):
        text = ".nan"
    elif math.isinf(value):
        text = ".inf" if value > 0 else "-.inf"
    else:
        text = repr(value).lower()
        if "e" in text and "." not in text.split("e")[0]:
            mantissa, exponent = text.split("e")
            text = f"{mantissa}.0e{exponent}"  # PyYAML's YAML 1.1 floats need the dot
    return dumper.represent_scalar(_FLOAT_TAG, text)


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    if _ambiguous(value):
        return dumper.represent_scalar(_STR_TAG, value, style="'" if "\n" not in value else '"')
    return dumper.represent_scalar(_STR_TAG, value)


def _represent_tuple(dumper: yaml.SafeDumper, value: tuple) -> yaml.SequenceNode:
    return dumper.represent_list(list(value))


_Dumper.add_representer(float, _represent_float)
_Dumper.add_representer(str, _represent_str)
_Dumper.add_representer(tuple, _represent_tuple)


def dump_yaml(data: Any, *, header: str | None = None) -> str:
    """Deterministic block-style YAML for plain data (mappings keep their key order)."""
    text = yaml.dump(data, Dumper=_Dumper, sort_keys=False, default_flow_style=False, allow_unicode=True,
                     width=100, indent=2)
    if header:
        comment = "".join(f"# {line}".rstrip() + "\n" for line in header.splitlines())
        text = comment + text
    return text


def write_text_safely(path: str | os.PathLike[str], text: str, *, overwrite: bool = False) -> Path:
    """Write ``text`` to ``path`` atomically; never replace an existing file unless ``overwrite``.

    The text goes to a temporary file next to ``path`` that is renamed over it only once fully written, so
    an interrupted write never leaves a half-written or emptied file behind.
    """
    target = Path(path)
    if target.is_dir():
        raise ConfigError("is a directory; give a file name to write", file=str(target))
    if target.exists() and not overwrite:
        raise ConfigError("already exists; not overwritten", allowed="a new file name, or --force to replace it",
                          file=str(target))
    if not target.parent.exists():
        raise ConfigError("the folder to write into does not exist", value=str(target.parent), file=str(target))
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "x", encoding="utf-8", newline="\n") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        if overwrite:
            os.replace(tmp, target)
        else:
            try:
                os.link(tmp, target)  # fails if target appeared meanwhile: never clobbers
            except FileExistsError:
                raise ConfigError("already exists; not overwritten",
                                  allowed="a new file name, or --force to replace it", file=str(target)) from None
            except OSError:
                if target.exists():
                    raise ConfigError("already exists; not overwritten",
                                      allowed="a new file name, or --force to replace it", file=str(target)) from None
                os.replace(tmp, target)
    except PermissionError:
        raise ConfigError("permission denied: cannot write here", file=str(target)) from None
    finally:
        if tmp.exists():
            tmp.unlink()
    return target
